//! Part 4: HR and sales events acted out in Google Workspace, each as the
//! event's own user, by gluefleet-workspace through domain-wide
//! delegation.
//!
//! No local Workspace exists: the target is the testkit's Workspace double,
//! which issues delegation tokens (verifying each signed assertion) and
//! checks every request against Google's Discovery documents. Runs only
//! with the Pub/Sub emulator; it is the earlier parts' when it still runs.

mod report;
mod samples;

use super::part::{Part, Topics, run_worker};
use super::report::logged;
use super::{Result, Stage, WORKER_LOG_FILTER};
use gluefleet_testkit::file_source;
use gluefleet_testkit::workspace::{Fault, WorkspaceConfig, WorkspaceDouble};
use samples::{ADMIN, ALICE, BOB, SHEET, SPREADSHEET};
use std::collections::BTreeMap;
use std::path::Path;

const PART: Part = Part {
    number: 4,
    connector: "workspace",
    topics: Topics {
        topic: "people",
        subscription: "people-gluefleet",
        dead_letter_topic: "people-dead-letter",
        inspect: "people-dead-letter-inspect",
    },
};

/// The users whose token calls the report shows.
const USERS: [&str; 3] = [ALICE, BOB, ADMIN];

/// Runs part 4; Ok(true) when everything happened as expected.
pub(crate) async fn run(stage: &mut Stage) -> Result<bool> {
    PART.heading("HR and sales events acted out in Google Workspace as each event's own user");
    println!(
        "• building gluefleet-{} and starting the Workspace double…",
        PART.connector
    );
    let (binary, double) = PART
        .build_while(
            WorkspaceDouble::start(WorkspaceConfig::default()),
            "the Workspace double is the testkit's, in process",
        )
        .await?;
    double.create_spreadsheet(SPREADSHEET, &[SHEET]);
    let pubsub = PART.pubsub(stage).await?;
    println!(
        "  Workspace double at {} (Sheets, Gmail, Calendar, Directory; a domain with {ALICE}, \
         {BOB} and the administrator {ADMIN};\n  every request checked against Google's \
         Discovery documents); Pub/Sub emulator on {} (project {}): {}",
        double.url(),
        pubsub.host(),
        pubsub.project(),
        PART.topics.describe(),
    );

    let key_file = stage
        .tmp
        .write("service-account.json", double.service_account_key_json())?;
    let config = PART.write_config(stage, &config_toml(&double, &key_file))?;
    let before = book_before(&binary, &config, &double, stage).await?;

    let tokens_before: BTreeMap<&str, u64> = USERS
        .iter()
        .map(|u| (*u, double.token_calls_for(u)))
        .collect();
    let inserts_before = double.calls("calendar.events.insert");
    double.fail_next(
        "calendar.events.insert",
        samples::RATE_LIMITED_INSERTS,
        Fault::UserRateLimit,
    );
    println!(
        "• Calendar will answer the next {} events.insert calls 403 userRateLimitExceeded \
         (the user's quota)",
        samples::RATE_LIMITED_INSERTS
    );

    let samples = samples::samples();
    let messages: Vec<_> = samples.iter().map(|s| s.message.clone()).collect();
    let env = [("RUST_LOG", WORKER_LOG_FILTER.to_owned())];
    let run = PART
        .run_job(stage, &pubsub, &binary, &config, &messages, &env)
        .await?;
    stage.pubsub = Some(pubsub);

    let observed = report::Observed {
        rows: double.rows(SPREADSHEET, SHEET),
        sent: double.sent(ALICE),
        events: double.events(BOB),
        cancelled: double.event(BOB, &before),
        users: samples
            .iter()
            .filter(|s| s.event_type() == "employee.hired")
            .map(|s| {
                let email = s.field("email").to_owned();
                let user = double.user(&email);
                (email, user)
            })
            .collect(),
        token_calls: USERS
            .iter()
            .map(|u| {
                let before = tokens_before.get(u).copied().unwrap_or(0);
                ((*u).to_owned(), double.token_calls_for(u) - before)
            })
            .collect(),
        calendar_inserts: double.calls("calendar.events.insert") - inserts_before,
        violations: double.violations(),
        run,
    };
    Ok(report::print(&samples, &observed))
}

/// Books the meeting the run cancels, through the same worker and config
/// from a one-line local file, and returns its Calendar event id.
async fn book_before(
    binary: &Path,
    config: &Path,
    double: &WorkspaceDouble,
    stage: &Stage,
) -> Result<String> {
    let booked = samples::booked_before();
    println!(
        "• before the run: {} books {} (\"{}\") on {BOB}'s calendar, from a local file",
        booked.label,
        samples::BOOKED_BEFORE,
        booked.field("title")
    );
    let (jsonl, ids) = file_source::events_jsonl(std::slice::from_ref(&booked.message));
    let source = stage.tmp.write("booked-before.jsonl", jsonl)?;
    let dead_letter_file = stage.tmp.path().join("booked-before-dead-letters.jsonl");
    let config_arg = config.display().to_string();
    let source_arg = format!("file:{}", source.display());
    let dead_letter_arg = dead_letter_file.display().to_string();
    let args = [
        "run",
        "--config",
        &config_arg,
        "--source",
        &source_arg,
        "--dead-letters",
        &dead_letter_arg,
    ];
    // `run` also serves health probes; keep them off port 8080.
    let envs = [
        ("PORT", gluefleet_testkit::free_port().to_string()),
        ("RUST_LOG", WORKER_LOG_FILTER.to_owned()),
    ];
    let (log, _) = run_worker(binary, &args, &envs).await?;
    let reason = ids
        .first()
        .and_then(|id| logged(&log).remove(id))
        .and_then(|l| l.acked);
    let event = double
        .events(BOB)
        .into_iter()
        .find(|e| e["summary"].as_str() == booked.data["title"].as_str());
    match (reason.as_deref(), event) {
        (Some("delivered"), Some(event)) => {
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            println!("  on the calendar as event {id}");
            Ok(id)
        }
        (reason, event) => Err(format!(
            "booking {} before the run: the worker said {reason:?}, the calendar has {event:?}\n{}",
            samples::BOOKED_BEFORE,
            log.join("\n")
        )
        .into()),
    }
}

/// The connector's config. Pub/Sub settings come from the environment, as
/// on Cloud Run.
fn config_toml(double: &WorkspaceDouble, key_file: &Path) -> String {
    CONFIG
        .replace("@API_ROOT@", &double.url())
        .replace("@TOKEN_URL@", &double.token_url())
        .replace("@KEY_FILE@", &key_file.display().to_string())
        .replace("@SPREADSHEET@", SPREADSHEET)
        .replace("@SHEET@", SHEET)
}

const CONFIG: &str = r#"# [pubsub] project, subscription and dead_letter_topic come from the
# environment here: GOOGLE_CLOUD_PROJECT, GLUEFLEET_SUBSCRIPTION,
# GLUEFLEET_DEAD_LETTER_TOPIC (and PUBSUB_EMULATOR_HOST).

[target]
api_root = "@API_ROOT@"   # the double serves every API; default: each API's Google host

[auth]
kind = "google_delegated"     # domain-wide delegation: a token per user, cached per user
key_file = "@KEY_FILE@"
                              # (the double's key; on Cloud Run keyless instead:
                              # service_account = "...", signed by IAM signJwt)
token_url = "@TOKEN_URL@"   # default https://oauth2.googleapis.com/token
scopes = [                    # each allowlisted for the client id in the Admin console
  "https://www.googleapis.com/auth/spreadsheets",
  "https://www.googleapis.com/auth/gmail.send",
  "https://www.googleapis.com/auth/gmail.readonly",   # the rfc822msgid: search before a resend
  "https://www.googleapis.com/auth/calendar.events",
  "https://www.googleapis.com/auth/admin.directory.user",
]

[[routes]]
type = "order.created"
subject = "{data.owner}"      # the sales rep who owns the order
[routes.action]
operation = "sheets_append"
spreadsheet = "@SPREADSHEET@"
range = "@SHEET@!A:D"
row = "[.data.id, .data.customer, .data.total, .data.owner]"
value_input = "RAW"
key_column = "A"              # read before appending: an order already there adds no row

[[routes]]
type = "order.shipped"
subject = "{data.seller}"     # the mail goes out from the seller's own mailbox
[routes.action]
operation = "gmail_send"      # needs the idempotency store (on by default): no mail twice
to = "{data.buyer}"
subject = "Order {data.id} shipped"
text = '"Your order \(.data.id) is on its way."'
headers = { "Reply-To" = "{data.seller}" }

[[routes]]
type = "meeting.booked"
subject = "{data.organizer}"
[routes.action]
operation = "calendar_insert"
event_key = "{data.meetingId}"   # the event id derives from it: a repeat answers 409, done
event = "{summary: .data.title, start: {dateTime: .data.start}, end: {dateTime: .data.end}}"
send_updates = "none"

[[routes]]
type = "meeting.cancelled"
subject = "{data.organizer}"
[routes.action]
operation = "calendar_delete"    # the same event_key reaches the same event; gone: done
event_key = "{data.meetingId}"

[[routes]]
type = "employee.hired"
subject = "{data.hiredBy}"    # Directory needs an administrator
[routes.action]
operation = "directory_insert"   # the user exists (409): done
user = "{primaryEmail: .data.email, name: {givenName: .data.first, familyName: .data.last}, password: .data.initialPassword}"
"#;
