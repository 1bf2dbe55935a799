//! Part 3: an order system publishes business-partner events, and
//! gluefleet-sap-odata applies them to SAP over OData.
//!
//! The SAP system is a real SAP CAP server (`tests/sandboxes/sap-cap`,
//! started by the testkit): OData V4 and V2, Gateway-style CSRF tokens,
//! ETags, SAP's error bodies. Runs only with the Pub/Sub emulator and
//! Node.js; the Pub/Sub emulator is the earlier parts' when it still runs.

mod partners;
mod report;

use super::part::{Part, Topics};
use super::{Result, Stage, WORKER_LOG_FILTER};
use gluefleet_testkit::sap::SapCap;
use partners::ENTITY_SET;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const PART: Part = Part {
    number: 3,
    connector: "sap-odata",
    topics: Topics {
        topic: "partners",
        subscription: "partners-gluefleet",
        dead_letter_topic: "partners-dead-letter",
        inspect: "partners-dead-letter-inspect",
    },
};

/// Runs part 3; Ok(true) when everything happened as expected.
pub(crate) async fn run(stage: &mut Stage) -> Result<bool> {
    PART.heading("an order system's business partners kept in SAP (OData)");
    println!(
        "• building gluefleet-{} and starting the SAP CAP server (a few seconds; the \
         first time runs npm ci in tests/sandboxes/sap-cap)…",
        PART.connector
    );
    let (binary, cap) = PART
        .build_while(
            SapCap::start(),
            "the SAP CAP server needs Node.js 20 and npm; `cargo xtask demo \
             --no-emulator` skips this part",
        )
        .await?;
    let pubsub = PART.pubsub(stage).await?;
    println!(
        "  SAP CAP server (OData V4 and V2, Gateway-style CSRF tokens, ETags) at {}; Pub/Sub \
         emulator on {} (project {}): {}",
        cap.url(),
        pubsub.host(),
        pubsub.project(),
        PART.topics.describe(),
    );

    let samples = partners::samples();
    // Every partner the demo looks at, read before and after the run. A
    // key longer than SAP's String(10) cannot be read (or written).
    let keys: BTreeSet<&str> = partners::SEEDED
        .iter()
        .map(|(key, _, _)| *key)
        .chain(samples.iter().filter(|s| s.key_fits()).map(|s| s.partner))
        .collect();
    let before = read_partners(&cap, &keys).await?;
    let existing: Vec<String> = before
        .iter()
        .filter_map(|(key, entity)| {
            let e = entity.as_ref()?;
            Some(format!(
                "{key} {} ({})",
                e["name"].as_str().unwrap_or("?"),
                e["city"].as_str().unwrap_or("?")
            ))
        })
        .collect();
    println!(
        "• the partners SAP has before the run (the sandbox's seed rows): {}",
        existing.join(", ")
    );

    let config = PART.write_config(stage, &config_toml(&cap.v4_service()))?;
    let messages: Vec<_> = samples.iter().map(|s| s.message.clone()).collect();
    let env = [("RUST_LOG", WORKER_LOG_FILTER.to_owned())];
    let run = PART
        .run_job(stage, &pubsub, &binary, &config, &messages, &env)
        .await?;
    stage.pubsub = Some(pubsub);
    let observed = report::Observed {
        before,
        after: read_partners(&cap, &keys).await?,
        server_stats: cap.stats().await?,
        run,
    };
    Ok(report::print(&samples, &observed))
}

/// The partners by key, as the SAP CAP server's V4 service returns them
/// (`None`: there is none). These reads are not counted in its stats.
async fn read_partners(
    cap: &SapCap,
    keys: &BTreeSet<&str>,
) -> Result<BTreeMap<String, Option<Value>>> {
    let mut out = BTreeMap::new();
    for key in keys {
        out.insert((*key).to_owned(), cap.get_entity(ENTITY_SET, key).await?);
    }
    Ok(out)
}

/// The connector's config. Pub/Sub settings come from the environment, as
/// on Cloud Run.
fn config_toml(service_url: &str) -> String {
    format!(
        r#"# [pubsub] project, subscription and dead_letter_topic come from the
# environment here: GOOGLE_CLOUD_PROJECT, GLUEFLEET_SUBSCRIPTION,
# GLUEFLEET_DEAD_LETTER_TOPIC (and PUBSUB_EMULATOR_HOST).
# A real SAP system also needs [auth]: kind = "basic" (a communication
# user) or "oauth2_client_credentials"; the sandbox has no login.

[target]
service_url = "{service_url}"
version = "v4"                # V2 (SAP Gateway) works the same: the .../odata/v2/sales
                              # service, MERGE instead of PATCH, multipart $batch
allow_insecure_http = true    # a local stand-in; real SAP systems use https
linger = "100ms"              # creates waiting at the same moment share one $batch (default 20ms)

[[routes]]
type = "partner.created"
[routes.action]
operation = "create"          # SAP has it already (409): done, left as is
entity_set = "{ENTITY_SET}"
key = {{ ID = "{{data.id}}" }}
fields = "{{name: .data.name, city: .data.city}}"

[[routes]]
type = "partner.renamed"
[routes.action]
operation = "update"          # reads the ETag, then PATCH with If-Match
entity_set = "{ENTITY_SET}"
key = {{ ID = "{{data.id}}" }}
fields = "{{name: .data.name}}"

[[routes]]
type = "partner.renamed.from"
[routes.action]
operation = "update"
entity_set = "{ENTITY_SET}"
key = {{ ID = "{{data.id}}" }}
fields = "{{name: .data.name}}"
etag = "{{data.etag}}"          # the version the event was based on: changed since → 412,
                              # dead letter (last_writer_wins = true would re-read and apply)

[[routes]]
type = "partner.upserted"
[routes.action]
operation = "upsert"          # read; missing → create, else update
entity_set = "{ENTITY_SET}"
key = {{ ID = "{{data.id}}" }}
fields = "{{name: .data.name, city: .data.city}}"

[[routes]]
type = "partner.deleted"
[routes.action]
operation = "delete"          # read the ETag, DELETE with If-Match; missing: done
entity_set = "{ENTITY_SET}"
key = {{ ID = "{{data.id}}" }}
"#
    )
}
