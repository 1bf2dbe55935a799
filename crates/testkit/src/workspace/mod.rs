//! A Google Workspace double: domain-wide delegation tokens, keyless
//! signing, and the Sheets, Gmail, Calendar and Directory calls a gluefleet
//! connector makes, on a real axum server of 127.0.0.1.
//!
//! No local Workspace exists, so the double is faithful by construction:
//! every API request is first matched to its method in Google's published
//! Discovery documents and checked against it ([`discovery`]): path,
//! required and unknown parameters, enum values, body field names, types and
//! required fields. A request that does not fit answers `400
//! INVALID_ARGUMENT` naming what is wrong and is recorded in
//! [`WorkspaceDouble::violations`], so a test can assert that a connector
//! made none. Unknown routes answer `404`.
//!
//! Served, all under [`WorkspaceDouble::url`]:
//!
//! * `POST /token`: the JWT bearer grant of a service account acting as a
//!   domain user (domain-wide delegation), see [`auth`];
//! * `POST /v1/projects/-/serviceAccounts/{email}:signJwt`: IAM Credentials'
//!   keyless signing, with [`WorkspaceDouble::runtime_token`];
//! * Sheets `values.append`, `values.update`, `values.get` ([`sheets`]);
//! * Gmail `messages.send`, `messages.list`, `getProfile` ([`gmail`]);
//! * Calendar `events.insert`, `get`, `patch`, `delete` and
//!   `calendarList.list` ([`calendar`]);
//! * Directory `users.insert`, `get`, `update`, `delete`, `list`
//!   ([`directory`]).
//!
//! Every API call needs a bearer token from `/token`, unexpired and not
//! revoked by [`WorkspaceDouble::expire_tokens`], whose scopes include one
//! of the method's scopes in the Discovery document; the token's `sub` is
//! the acting user. The order of checks is: route (`404`), token (`401`),
//! scopes (`403 insufficientPermissions`), admin for Directory (`403
//! forbidden`), the Discovery check (`400`), then a scripted [`Fault`], then
//! the method. [`WorkspaceDouble::calls`] counts the calls that got past the
//! Discovery check, faults included; [`WorkspaceDouble::applied`] those
//! whose effect was applied.
//!
//! Where Google's contract is silent the double decides, and says so in the
//! module of each API.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State as AxumState};
use axum::response::Response;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::Value;

use crate::TestkitError;
use crate::http_target::{LoggedRequest, Reply, lock, read_request};
use crate::salesforce::{TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM};
use crate::server::LocalServer;

pub mod auth;
pub mod calendar;
pub mod directory;
pub mod discovery;
mod errors;
mod faults;
pub mod gmail;
pub mod sheets;

pub use faults::Fault;
pub use gmail::SentMessage;

/// The service account's key id: the JWT header's `kid` and the key file's
/// `private_key_id`.
pub const KEY_ID: &str = "3f1c9a0b7d2e4f6a8b0c1d2e3f4a5b6c7d8e9f01";
/// The project of the default service account.
pub const PROJECT_ID: &str = "sandbox-project";

/// The scopes of the four APIs, in full.
pub const SHEETS_SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets";
/// Gmail's send-only scope.
pub const GMAIL_SEND_SCOPE: &str = "https://www.googleapis.com/auth/gmail.send";
/// Gmail's read scope: `messages.list` (the `rfc822msgid:` search) and
/// `getProfile` need it or a broader one; `gmail.send` does not cover them.
pub const GMAIL_READONLY_SCOPE: &str = "https://www.googleapis.com/auth/gmail.readonly";
/// Calendar's events scope (`calendar` also covers events).
pub const CALENDAR_EVENTS_SCOPE: &str = "https://www.googleapis.com/auth/calendar.events";
/// Calendar's full scope; `calendarList.list` needs it (or a calendar list
/// scope), `calendar.events` does not cover it.
pub const CALENDAR_SCOPE: &str = "https://www.googleapis.com/auth/calendar";
/// Directory's users scope.
pub const DIRECTORY_USER_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user";

const SIGN_JWT: &str = "iamcredentials.projects.serviceAccounts.signJwt";

/// The domain and its delegation grant. Start from [`Default`] and change
/// what a test needs.
#[derive(Clone, Debug)]
pub struct WorkspaceConfig {
    /// The service account's email: the JWT `iss`, `client_email`, and the
    /// only account `signJwt` signs for. Default
    /// `gluefleet-worker@sandbox-project.iam.gserviceaccount.com`.
    pub service_account: String,
    /// The domain's users, who may be a JWT `sub`. Default `alice@`, `bob@`
    /// and `admin@example.com`.
    pub users: Vec<String>,
    /// The users among them (or added to them) who are administrators,
    /// which Directory calls need. Default `admin@example.com`.
    pub admins: Vec<String>,
    /// The scopes the domain's administrator allowlisted for the service
    /// account's client id (Admin console, domain-wide delegation). Default
    /// Sheets, Gmail send and read-only, Calendar (full and events) and
    /// Directory user.
    pub granted_scopes: Vec<String>,
    /// How long an access token works, sent as `expires_in`. Default 3599 s.
    pub token_lifetime: Duration,
}

impl Default for WorkspaceConfig {
    fn default() -> Self {
        Self {
            service_account: format!("gluefleet-worker@{PROJECT_ID}.iam.gserviceaccount.com"),
            users: vec![
                "alice@example.com".to_owned(),
                "bob@example.com".to_owned(),
                "admin@example.com".to_owned(),
            ],
            admins: vec!["admin@example.com".to_owned()],
            granted_scopes: [
                SHEETS_SCOPE,
                GMAIL_SEND_SCOPE,
                GMAIL_READONLY_SCOPE,
                CALENDAR_SCOPE,
                CALENDAR_EVENTS_SCOPE,
                DIRECTORY_USER_SCOPE,
            ]
            .map(str::to_owned)
            .to_vec(),
            token_lifetime: Duration::from_secs(3599),
        }
    }
}

/// An access token `/token` issued.
#[derive(Clone, Debug)]
pub(crate) struct Issued {
    pub(crate) subject: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) until: Instant,
}

/// Everything the double knows, behind one lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Domain users by lowercase email → whether an administrator.
    pub(crate) users: BTreeMap<String, bool>,
    pub(crate) tokens: HashMap<String, Issued>,
    pub(crate) token_calls: u64,
    pub(crate) token_calls_by_subject: HashMap<String, u64>,
    pub(crate) sign_jwt_calls: u64,
    pub(crate) faults: HashMap<String, VecDeque<Fault>>,
    pub(crate) hold_all: Option<Duration>,
    pub(crate) calls: HashMap<String, u64>,
    pub(crate) applied: HashMap<String, u64>,
    pub(crate) next_id: u64,
    pub(crate) sheets: sheets::Books,
    pub(crate) gmail: gmail::Mailboxes,
    pub(crate) calendar: calendar::Calendars,
    pub(crate) directory: directory::Directory,
}

impl State {
    /// A number never handed out before, for ids and tokens.
    pub(crate) fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// What the handler and the test share.
pub(crate) struct Shared {
    pub(crate) config: WorkspaceConfig,
    pub(crate) url: String,
    pub(crate) runtime_token: String,
    pub(crate) encoding_key: EncodingKey,
    pub(crate) decoding_key: DecodingKey,
    pub(crate) log: Mutex<Vec<LoggedRequest>>,
    pub(crate) violations: Mutex<Vec<String>>,
    pub(crate) state: Mutex<State>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("url", &self.url)
            .field("requests", &lock(&self.log).len())
            .field("violations", &lock(&self.violations).len())
            .finish_non_exhaustive()
    }
}

/// One API call that passed the checks, as a method module sees it.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub(crate) method_id: &'a str,
    pub(crate) path: &'a HashMap<String, String>,
    pub(crate) query: &'a [(String, String)],
    pub(crate) body: Option<Value>,
    /// The acting user (the token's `sub`), lowercase.
    pub(crate) subject: &'a str,
}

impl Call<'_> {
    /// A path parameter (empty if absent; the checker refused that).
    pub(crate) fn param(&self, name: &str) -> &str {
        self.path.get(name).map_or("", String::as_str)
    }

    /// The last value of a query parameter.
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body, an object (the checker made sure), or an empty one.
    pub(crate) fn body(&self) -> serde_json::Map<String, Value> {
        self.body
            .as_ref()
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }
}

/// A Google Workspace domain on 127.0.0.1: token endpoint, IAM Credentials
/// and the four APIs in one server. Stops on drop.
#[derive(Debug)]
pub struct WorkspaceDouble {
    shared: Arc<Shared>,
    server: LocalServer,
}

impl WorkspaceDouble {
    /// Starts on a free port of 127.0.0.1 with the configured users, their
    /// Directory entries, no spreadsheets, mail or events.
    pub async fn start(config: WorkspaceConfig) -> Result<Self, TestkitError> {
        let key_error = |what: &str, e: jsonwebtoken::errors::Error| TestkitError::Decode {
            what: what.to_owned(),
            detail: e.to_string(),
        };
        let encoding_key = EncodingKey::from_rsa_pem(TEST_PRIVATE_KEY_PEM.as_bytes())
            .map_err(|e| key_error("the service account's private key", e))?;
        let decoding_key = DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY_PEM.as_bytes())
            .map_err(|e| key_error("the service account's public key", e))?;
        let mut state = State::default();
        for user in &config.users {
            let admin = config.admins.iter().any(|a| a.eq_ignore_ascii_case(user));
            directory::add_member(&mut state, user, admin);
        }
        for admin in &config.admins {
            directory::add_member(&mut state, admin, true);
        }
        let runtime_token = format!("ya29.runtime-{}", unique_suffix());
        let mut built = None;
        let server = LocalServer::start("the Workspace double", |addr| {
            let shared = Arc::new(Shared {
                config,
                url: format!("http://{addr}"),
                runtime_token,
                encoding_key,
                decoding_key,
                log: Mutex::default(),
                violations: Mutex::default(),
                state: Mutex::new(state),
            });
            built = Some(shared.clone());
            Router::new().fallback(handle).with_state(shared)
        })
        .await?;
        let shared = built.ok_or_else(|| TestkitError::Io {
            what: "starting the Workspace double".to_owned(),
            source: std::io::Error::other("the router was never built"),
        })?;
        Ok(Self { shared, server })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: the root URL of
    /// every API (paths as Google serves them, e.g.
    /// `/v4/spreadsheets/…`, `/gmail/v1/…`, `/calendar/v3/…`,
    /// `/admin/directory/v1/…`, `/v1/projects/…:signJwt`).
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// `{url}/token`: the token endpoint, and the only JWT `aud` accepted.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.shared.url)
    }

    /// The service account's email.
    pub fn service_account(&self) -> &str {
        &self.shared.config.service_account
    }

    /// A service account key file as Google issues it (`type`
    /// `service_account`, `project_id`, `private_key_id` = [`KEY_ID`],
    /// `private_key` PKCS#8 PEM, `client_email`, `client_id`, `token_uri` =
    /// [`Self::token_url`]): what a connector reads from its secret.
    pub fn service_account_key_json(&self) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": KEY_ID,
            "private_key": TEST_PRIVATE_KEY_PEM,
            "client_email": self.shared.config.service_account,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_url(),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        })
        .to_string()
    }

    /// The runtime's own access token (what Cloud Run's metadata server
    /// would give the worker): the only bearer `signJwt` accepts. It does
    /// not authorize Workspace API calls.
    pub fn runtime_token(&self) -> &str {
        &self.shared.runtime_token
    }

    /// Adds a user to the domain (and the Directory), or changes whether
    /// an existing one is an administrator.
    pub fn add_user(&self, email: &str, admin: bool) {
        directory::add_member(&mut lock(&self.shared.state), email, admin);
    }

    /// Every request so far, in arrival order, with the status it got.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Every request that did not fit the Discovery documents (or a rule
    /// the documents state in prose, such as `valueInputOption`), as
    /// `"<method id>: <message>"`. A connector test asserts it is empty.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.shared.violations).clone()
    }

    /// Requests to `/token`, granted or refused.
    pub fn token_calls(&self) -> u64 {
        lock(&self.shared.state).token_calls
    }

    /// Requests to `/token` whose verified assertion named `subject` as
    /// `sub` (case-insensitive), granted or refused.
    pub fn token_calls_for(&self, subject: &str) -> u64 {
        lock(&self.shared.state)
            .token_calls_by_subject
            .get(&subject.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Requests to `signJwt`, signed or refused.
    pub fn sign_jwt_calls(&self) -> u64 {
        lock(&self.shared.state).sign_jwt_calls
    }

    /// Every access token issued so far stops working: the next call with
    /// one gets `401 authError`. Tokens issued afterwards work.
    pub fn expire_tokens(&self) {
        lock(&self.shared.state).tokens.clear();
    }

    /// The next `n` calls of `method_id` (a Discovery id such as
    /// `sheets.spreadsheets.values.append`, `gmail.users.messages.send`,
    /// `calendar.events.insert`, `directory.users.insert`) that pass the
    /// token and Discovery checks answer `fault`; queued after any faults
    /// already scripted for it.
    pub fn fail_next(&self, method_id: &str, n: u32, fault: Fault) {
        let mut state = lock(&self.shared.state);
        let queue = state.faults.entry(method_id.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(fault, n as usize));
    }

    /// Every answer (token endpoint included) is held this long after its
    /// effect; `Duration::ZERO` ends that.
    pub fn hold_all(&self, hold: Duration) {
        lock(&self.shared.state).hold_all = (!hold.is_zero()).then_some(hold);
    }

    /// Forgets every scripted fault and [`Self::hold_all`].
    pub fn clear_faults(&self) {
        let mut state = lock(&self.shared.state);
        state.faults.clear();
        state.hold_all = None;
    }

    /// Calls of `method_id` that passed the token and Discovery checks,
    /// faults included.
    pub fn calls(&self, method_id: &str) -> u64 {
        lock(&self.shared.state)
            .calls
            .get(method_id)
            .copied()
            .unwrap_or(0)
    }

    /// Calls of `method_id` whose effect was applied (a `2xx` answer,
    /// including those then held by [`Fault::ApplyThenHold`]).
    pub fn applied(&self, method_id: &str) -> u64 {
        lock(&self.shared.state)
            .applied
            .get(method_id)
            .copied()
            .unwrap_or(0)
    }

    /// Creates an empty spreadsheet `id` with these sheets (tabs). Only
    /// spreadsheets created here exist.
    pub fn create_spreadsheet(&self, id: &str, sheets: &[&str]) {
        lock(&self.shared.state).sheets.create(id, sheets);
    }

    /// The cells of a sheet from `A1`, row by row, as stored (numbers that
    /// `USER_ENTERED` parsed are numbers); trailing empty rows left out.
    pub fn rows(&self, spreadsheet: &str, sheet: &str) -> Vec<Vec<Value>> {
        lock(&self.shared.state).sheets.rows(spreadsheet, sheet)
    }

    /// The messages `user` sent, in order.
    pub fn sent(&self, user: &str) -> Vec<SentMessage> {
        lock(&self.shared.state).gmail.sent(user)
    }

    /// Messages sent by all users.
    pub fn sent_count(&self) -> usize {
        lock(&self.shared.state).gmail.count()
    }

    /// The events of a calendar (a user's email for a primary calendar)
    /// that are not cancelled, in creation order.
    pub fn events(&self, calendar: &str) -> Vec<Value> {
        lock(&self.shared.state).calendar.events(calendar)
    }

    /// One event of a calendar, cancelled ones included.
    pub fn event(&self, calendar: &str, id: &str) -> Option<Value> {
        lock(&self.shared.state).calendar.event(calendar, id)
    }

    /// The Directory entry of a user (by primary email, case-insensitive).
    pub fn user(&self, email: &str) -> Option<Value> {
        lock(&self.shared.state).directory.get(email)
    }

    /// Every Directory entry, by primary email.
    pub fn users(&self) -> Vec<Value> {
        lock(&self.shared.state).directory.all()
    }

    /// After each later `users.insert`, the next `n` mutations (`update`,
    /// `delete`) of the new user answer `412 conditionNotMet` "User
    /// creation is not complete." (see [`directory`]).
    pub fn creation_delay_calls(&self, n: u32) {
        lock(&self.shared.state).directory.creation_delay = n;
    }

    /// Stops listening: from the moment this returns, new connections are
    /// refused; requests in flight still get their answer. Idempotent; also
    /// runs on drop. State and logs are kept for [`Self::restart`].
    pub fn stop(&self) {
        self.server.stop();
    }

    /// Listens again on the same port with the same state, tokens and log.
    pub async fn restart(&self) -> Result<(), TestkitError> {
        self.server.restart().await
    }
}

/// Something no other double of this process hands out, for tokens.
pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{nanos:x}{n:04x}")
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Now as RFC 3339 in UTC with milliseconds, as Google writes timestamps.
pub(crate) fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

async fn handle(AxumState(shared): AxumState<Arc<Shared>>, request: Request) -> Response {
    let mut logged = match read_request(request).await {
        Ok(logged) => logged,
        Err(response) => return response,
    };
    let (reply, hold) = route(&shared, &logged);
    logged.status = reply.status;
    lock(&shared.log).push(logged);
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    reply.into_response()
}

/// The answer, and how long to hold it.
fn route(shared: &Shared, request: &LoggedRequest) -> (Reply, Option<Duration>) {
    let hold_all = lock(&shared.state).hold_all;
    let (path, query) = request
        .path
        .split_once('?')
        .unwrap_or((request.path.as_str(), ""));
    if path == "/token" {
        return (auth::token(shared, request), hold_all);
    }
    let Some(matched) = discovery::find(&request.method, path) else {
        return (
            errors::both(
                404,
                "notFound",
                &format!(
                    "The requested URL {} {path} was not found on this server.",
                    request.method
                ),
            ),
            hold_all,
        );
    };
    let id = matched.method.id.as_str();
    if id == SIGN_JWT {
        lock(&shared.state).sign_jwt_calls += 1;
    }
    let subject = if id == SIGN_JWT {
        match auth::runtime_caller(shared, request) {
            Ok(()) => shared.config.service_account.to_ascii_lowercase(),
            Err(reply) => return (reply, hold_all),
        }
    } else {
        match auth::api_caller(shared, request, matched.method) {
            Ok(subject) => subject,
            Err(reply) => return (reply, hold_all),
        }
    };
    let query: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let body = match discovery::check(&matched, &query, &request.body) {
        Ok(body) => body,
        Err(violation) => {
            let violation = directory::reword(id, violation);
            lock(&shared.violations).push(format!("{id}: {}", violation.message));
            return (
                errors::both(400, violation.reason, &violation.message),
                hold_all,
            );
        }
    };
    let mut state = lock(&shared.state);
    *state.calls.entry(id.to_owned()).or_default() += 1;
    let fault = state.faults.get_mut(id).and_then(VecDeque::pop_front);
    let mut hold = hold_all;
    match fault {
        Some(Fault::ApplyThenHold(d)) => hold = Some(d),
        Some(fault) => {
            if let Some(reply) = fault.reply(id) {
                return (reply, hold_all);
            }
        }
        None => {}
    }
    let call = Call {
        method_id: id,
        path: &matched.path,
        query: &query,
        body,
        subject: &subject,
    };
    let mut violations = Vec::new();
    let reply = match id.split('.').next() {
        Some("sheets") => sheets::handle(&mut state, &call, &mut violations),
        Some("gmail") => gmail::handle(&mut state, &call),
        Some("calendar") => calendar::handle(&mut state, &call),
        Some("directory") => directory::handle(&mut state, &call),
        _ => auth::sign_jwt(shared, &mut state, &call),
    };
    if (200..300).contains(&reply.status) {
        *state.applied.entry(id.to_owned()).or_default() += 1;
    }
    drop(state);
    if !violations.is_empty() {
        lock(&shared.violations).extend(violations.into_iter().map(|v| format!("{id}: {v}")));
    }
    (reply, hold)
}
