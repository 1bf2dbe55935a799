//! A Salesforce org double: the OAuth token endpoint and the REST calls a
//! gluefleet connector makes, on a real axum server of 127.0.0.1.
//!
//! No local Salesforce exists, so this double follows the documented
//! contract (`docs/VENDOR-CONTRACTS.md` §1 of the shared research):
//!
//! * `POST /services/oauth2/token`, form-encoded: the JWT bearer grant (an
//!   RS256 assertion checked against [`SalesforceConfig::public_key_pem`])
//!   and the client credentials grant (form fields or HTTP Basic). Answers
//!   `{access_token, instance_url, id, token_type, issued_at, signature,
//!   scope}`; no refresh token and no `expires_in`, as Salesforce does.
//!   Errors are `400 {"error", "error_description"}`.
//! * `GET /services/data`: the versions list; no session needed, not metered.
//! * Under `/services/data/vNN.N/` (any well-formed version), with
//!   `Authorization: Bearer <token>`:
//!   * `PATCH sobjects/{SObject}/{ExtIdField}/{value}`: upsert by external id
//!     (`201 … "created":true` or `200 … "created":false`; `?updateOnly=true`
//!     answers 404 instead of creating);
//!   * `GET sobjects/{SObject}/{ExtIdField}/{value}`: read by external id;
//!   * `POST sobjects/{SObject}`: create (`201 {id, success, errors}`);
//!   * `GET`, `PATCH` (204) and `DELETE` (204) `sobjects/{SObject}/{Id}`;
//!   * `PATCH composite/sobjects/{SObject}/{ExtIdField}`: sObject Collections
//!     upsert of up to 200 records, one API call, always `200` with one
//!     UpsertResult per record in request order (errors carry
//!     `statusCode`), `allOrNone` rolling everything back.
//!
//! Top-level errors are Salesforce's JSON array
//! `[{"message", "errorCode", "fields"?}]`; per-record errors inside a
//! collection answer use `statusCode` instead of `errorCode`.
//!
//! Every call under `/services/data/vNN.N/` that passes the session check is
//! metered: it counts against [`SalesforceConfig::daily_limit`] (and the
//! connected app's [`SalesforceConfig::app_allocation`], when set) and its
//! answer carries `Sforce-Limit-Info` in the form of
//! [`SalesforceConfig::limit_info`], by default today's documented
//! `api-usage=N/M; api-bursts=1/750` (N including this call), with
//! `per-app-api-usage=A/L(appName=…)` after it when the app has an
//! allocation. Once the usage has reached the limit, calls are refused with
//! `403 REQUEST_LIMIT_EXCEEDED` (still with the header, not counted, nothing
//! stored). A missing, unknown or expired token gets
//! `401 INVALID_SESSION_ID`, without the header and without being counted.
//!
//! Where the contract is silent the double decides, and says so here:
//!
//! * any sObject name is accepted; a field whose name starts with `Bad` does
//!   not exist (`400 INVALID_FIELD`), so tests can provoke that error;
//! * only the `(sobject, field)` pairs of [`SalesforceConfig::external_ids`]
//!   are external id fields: a single upsert on another field is
//!   `404 NOT_FOUND` (documented), a collection upsert `400 INVALID_FIELD`;
//! * required fields ([`SalesforceConfig::required_fields`]) must be present,
//!   non-null and non-empty in the record as it would be stored, on create
//!   and on update;
//! * in a collection, a record whose `attributes.type` is missing or is not
//!   the sObject of the URL fails with `INVALID_TYPE`, one without a value for
//!   the external id field with `MISSING_ARGUMENT`, and records sharing an
//!   external id value with `DUPLICATE_EXTERNAL_ID`;
//! * a JWT assertion's `exp` must lie in the future and at most
//!   [`MAX_ASSERTION_AHEAD`] ahead ("within 3 minutes" plus skew); outside
//!   that window the answer is `invalid_grant` / `expired authorization
//!   code` (what Salesforce answers for a past `exp`, and reportedly for one
//!   far in the future). A wrong signature, algorithm or `iss` is
//!   `invalid_grant` / `invalid assertion`; a `sub` (or `prn`, which wins)
//!   other than the configured user is `invalid_grant` / `user hasn't
//!   approved this consumer`; an `aud` other than [`SalesforceDouble::url`],
//!   [`LOGIN_AUDIENCE`] or [`TEST_AUDIENCE`] is `invalid_grant` / `audience
//!   is invalid`;
//! * a session lasts [`SalesforceConfig::session_ttl`] from when it was
//!   issued (Salesforce's timeout is configurable and may slide);
//! * `api-bursts` always reads `1/750`: Salesforce documents its form but
//!   not what it counts;
//! * a spent app allocation is refused like a spent org limit (`403
//!   REQUEST_LIMIT_EXCEEDED`), since either stops the app's calls.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};

use crate::TestkitError;
use crate::http_target::{LoggedRequest, Reply, answer_logged, lock};
use crate::server::LocalServer;

/// The private half of the test key pair, PKCS#8 PEM. It exists only for
/// tests against this double and protects nothing.
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("../fixtures/salesforce-test-key.pem");
/// The public half of the test key pair (SubjectPublicKeyInfo PEM): what the
/// double verifies JWT assertions with by default.
pub const TEST_PUBLIC_KEY_PEM: &str = include_str!("../fixtures/salesforce-test-key.pub.pem");

/// The production login host, accepted as a JWT `aud`.
pub const LOGIN_AUDIENCE: &str = "https://login.salesforce.com";
/// The sandbox login host, accepted as a JWT `aud`.
pub const TEST_AUDIENCE: &str = "https://test.salesforce.com";
/// The JWT bearer grant type.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How far ahead a JWT assertion's `exp` may lie: "within 3 minutes", plus
/// 30 s of clock skew.
pub const MAX_ASSERTION_AHEAD: Duration = Duration::from_secs(3 * 60 + 30);
/// Most records one sObject Collections call takes.
pub const MAX_COLLECTION_RECORDS: usize = 200;

/// The org id (`00D…`) and user id (`005…`) the double reports.
const ORG_ID: &str = "00D000000000001AAA";
const USER_ID: &str = "005000000000001AAA";
const JSON: &str = "application/json;charset=UTF-8";

/// What the double's org looks like. Start from [`Default`] and change what
/// a test needs.
#[derive(Clone, Debug)]
pub struct SalesforceConfig {
    /// The connected app's consumer key: the expected JWT `iss` and the
    /// client credentials `client_id`. Default `gluefleet-test-consumer`.
    pub consumer_key: String,
    /// The integration user: the expected JWT `sub`. Default
    /// `integration@gluefleet.test`.
    pub username: String,
    /// The consumer secret for the client credentials grant. Default
    /// `test-secret`.
    pub client_secret: String,
    /// Verifies RS256 assertions (PEM, SPKI or PKCS#1). Default
    /// [`TEST_PUBLIC_KEY_PEM`].
    pub public_key_pem: String,
    /// Issued tokens stop working this long after they were issued. Default
    /// 2 h.
    pub session_ttl: Duration,
    /// The `M` of `api-usage=N/M`; at `N >= M` calls are refused. Default
    /// 15 000.
    pub daily_limit: u64,
    /// Where `N` starts. Default 0.
    pub initial_usage: u64,
    /// `(sObject, field)` pairs that are external id fields. Default
    /// `Account.External_Id__c` and `Contact.External_Id__c`.
    pub external_ids: Vec<(String, String)>,
    /// `(sObject, field)` pairs that a stored record must have. Default
    /// `Account.Name`.
    pub required_fields: Vec<(String, String)>,
    /// The newest version `GET /services/data` lists (default `v62.0`).
    /// Calls are accepted under any well-formed `vNN.N`.
    pub api_version: String,
    /// The `instance_url` tokens name. Default `None`: the double's own URL.
    /// Set it to see what a client does with a token endpoint that points
    /// it elsewhere.
    pub instance_url: Option<String>,
    /// How `Sforce-Limit-Info` is written. Default [`LimitInfoForm::Current`].
    pub limit_info: LimitInfoForm,
    /// The connected app's own allocation, reported as `per-app-api-usage`.
    /// Default `None`: the org gives the app none and the field is left out.
    pub app_allocation: Option<AppAllocation>,
}

/// The forms of `Sforce-Limit-Info` Salesforce documents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitInfoForm {
    /// `api-usage=N/M; api-bursts=1/750`: today's documentation.
    #[default]
    Current,
    /// `api-usage=N/M`: the short form, as older orgs send it.
    UsageOnly,
    /// The fields of [`Self::Current`] separated by `, ` instead of `; `.
    Commas,
}

/// A connected app's allocation of API requests:
/// `per-app-api-usage=used/limit(appName=name)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppAllocation {
    /// The `appName` of the suffix.
    pub name: String,
    /// The allocation; at `used >= limit` calls are refused.
    pub limit: u64,
    /// Where `used` starts.
    pub initial_usage: u64,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        let pair = |s: &str, f: &str| (s.to_owned(), f.to_owned());
        Self {
            consumer_key: "gluefleet-test-consumer".to_owned(),
            username: "integration@gluefleet.test".to_owned(),
            client_secret: "test-secret".to_owned(),
            public_key_pem: TEST_PUBLIC_KEY_PEM.to_owned(),
            session_ttl: Duration::from_secs(2 * 60 * 60),
            daily_limit: 15_000,
            initial_usage: 0,
            external_ids: vec![
                pair("Account", "External_Id__c"),
                pair("Contact", "External_Id__c"),
            ],
            required_fields: vec![pair("Account", "Name")],
            api_version: "v62.0".to_owned(),
            instance_url: None,
            limit_info: LimitInfoForm::default(),
            app_allocation: None,
        }
    }
}

impl SalesforceConfig {
    fn is_external_id(&self, sobject: &str, field: &str) -> bool {
        self.external_ids
            .iter()
            .any(|(s, f)| s == sobject && f == field)
    }

    fn external_id_fields<'a>(&'a self, sobject: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.external_ids
            .iter()
            .filter(move |(s, _)| s == sobject)
            .map(|(_, f)| f.as_str())
    }

    /// The `Sforce-Limit-Info` value for these counts.
    fn limit_info(&self, used: u64, app_used: u64) -> String {
        let mut fields = vec![format!("api-usage={used}/{}", self.daily_limit)];
        if self.limit_info != LimitInfoForm::UsageOnly {
            fields.push("api-bursts=1/750".to_owned());
        }
        if let Some(app) = &self.app_allocation {
            fields.push(format!(
                "per-app-api-usage={app_used}/{}(appName={})",
                app.limit, app.name
            ));
        }
        let separator = if self.limit_info == LimitInfoForm::Commas {
            ", "
        } else {
            "; "
        };
        fields.join(separator)
    }

    /// Whether the org's limit or the app's allocation is spent.
    fn spent(&self, used: u64, app_used: u64) -> bool {
        used >= self.daily_limit
            || self
                .app_allocation
                .as_ref()
                .is_some_and(|a| app_used >= a.limit)
    }
}

/// A record-level failure: `(statusCode, message, fields)`.
type RecordCheck = Arc<dyn Fn(&Value) -> Option<(String, String, Vec<String>)> + Send + Sync>;

/// A per-record error, rendered with `errorCode` (top level) or
/// `statusCode` (inside a collection answer).
#[derive(Clone, Debug)]
struct RecordError {
    code: String,
    message: String,
    fields: Vec<String>,
}

impl RecordError {
    fn new(code: &str, message: impl Into<String>, fields: Vec<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            fields,
        }
    }

    /// Inside a collection answer: `statusCode`, `fields` always present.
    fn per_record(&self) -> Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }

    /// A top-level `400` error array: `errorCode`, `fields` when any.
    fn reply(&self, status: u16) -> Reply {
        error_reply(status, &self.code, &self.message, &self.fields)
    }
}

#[derive(Debug)]
struct StoredRecord {
    id: String,
    fields: Map<String, Value>,
}

/// The org's data and counters.
#[derive(Debug, Default)]
struct Org {
    /// Issued access tokens and when each stops working.
    sessions: HashMap<String, Instant>,
    used: u64,
    /// The app's usage, counted only with an [`AppAllocation`].
    app_used: u64,
    api_calls: u64,
    token_calls: u64,
    next_id: u64,
    /// Records by sObject, in creation order.
    records: BTreeMap<String, Vec<StoredRecord>>,
    /// Lookup indexes, built on the first search of an (sObject, field) and
    /// kept up to date by `store`: field text → record positions. Without
    /// them every upsert scanned every record, and a benchmark of 20,000
    /// upserts measured the double instead of the connector.
    indexes: HashMap<(String, String), HashMap<String, Vec<usize>>>,
    /// External id values (or record ids) whose next write fails.
    locked: HashSet<String>,
}

/// What the handler and the test share.
struct Shared {
    config: SalesforceConfig,
    url: String,
    key: DecodingKey,
    log: Mutex<Vec<LoggedRequest>>,
    org: Mutex<Org>,
    checks: Mutex<Vec<RecordCheck>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("url", &self.url)
            .field("requests", &lock(&self.log).len())
            .field("org", &*lock(&self.org))
            .field("checks", &lock(&self.checks).len())
            .finish_non_exhaustive()
    }
}

/// A Salesforce org on 127.0.0.1: login host and instance in one. Stops on
/// drop.
#[derive(Debug)]
pub struct SalesforceDouble {
    shared: Arc<Shared>,
    server: LocalServer,
}

impl SalesforceDouble {
    /// Starts on a free port of 127.0.0.1 with an empty org.
    ///
    /// Fails if `config.public_key_pem` is not an RSA public key in PEM.
    pub async fn start(config: SalesforceConfig) -> Result<Self, TestkitError> {
        let key = DecodingKey::from_rsa_pem(config.public_key_pem.as_bytes()).map_err(|e| {
            TestkitError::Decode {
                what: "SalesforceConfig::public_key_pem".to_owned(),
                detail: e.to_string(),
            }
        })?;
        let org = Org {
            used: config.initial_usage,
            app_used: config
                .app_allocation
                .as_ref()
                .map_or(0, |a| a.initial_usage),
            ..Org::default()
        };
        let mut built = None;
        let server = LocalServer::start("the Salesforce double", |addr| {
            let shared = Arc::new(Shared {
                config,
                url: format!("http://{addr}"),
                key,
                log: Mutex::default(),
                org: Mutex::new(org),
                checks: Mutex::default(),
            });
            built = Some(shared.clone());
            Router::new().fallback(handle).with_state(shared)
        })
        .await?;
        let shared = built.ok_or_else(|| TestkitError::Io {
            what: "starting the Salesforce double".to_owned(),
            source: std::io::Error::other("the router was never built"),
        })?;
        Ok(Self { shared, server })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: the login host
    /// (token endpoint `/services/oauth2/token`, an accepted JWT `aud`) and
    /// the `instance_url` of every token.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// The `[auth]` section of a connector config that signs in to this
    /// double with the JWT bearer flow as its consumer key and user, the
    /// key read from `${SALESFORCE_PRIVATE_KEY}`: give the worker
    /// [`Self::private_key_env`] with it.
    pub fn jwt_auth_toml(&self) -> String {
        format!(
            r#"[auth]
kind = "jwt_bearer"
login_url = "{url}"
consumer_key = "{key}"
username = "{user}"
private_key = "${{SALESFORCE_PRIVATE_KEY}}"
"#,
            url = self.url(),
            key = self.shared.config.consumer_key,
            user = self.shared.config.username
        )
    }

    /// `SALESFORCE_PRIVATE_KEY` = [`TEST_PRIVATE_KEY_PEM`], the variable
    /// [`Self::jwt_auth_toml`] reads.
    pub fn private_key_env() -> (&'static str, String) {
        ("SALESFORCE_PRIVATE_KEY", TEST_PRIVATE_KEY_PEM.to_owned())
    }

    /// Every request so far, in arrival order, with the status it got.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Calls counted against the limit so far: those under
    /// `/services/data/vNN.N/` that had a valid session and were not refused
    /// by the limit. Not changed by [`Self::set_usage`].
    pub fn api_calls(&self) -> u64 {
        lock(&self.shared.org).api_calls
    }

    /// Requests to the token endpoint so far, granted or not.
    pub fn token_calls(&self) -> u64 {
        lock(&self.shared.org).token_calls
    }

    /// The stored fields of the `sobject` record whose external id field (any
    /// of those configured for it) has the value `ext_id`, plus its `Id`.
    /// The first such record if several match.
    pub fn record(&self, sobject: &str, ext_id: &str) -> Option<Value> {
        let org = lock(&self.shared.org);
        let records = org.records.get(sobject)?;
        let found = records.iter().find(|r| {
            self.shared
                .config
                .external_id_fields(sobject)
                .any(|f| value_text(r.fields.get(f)).as_deref() == Some(ext_id))
        })?;
        let mut fields = found.fields.clone();
        fields.insert("Id".to_owned(), Value::String(found.id.clone()));
        Some(Value::Object(fields))
    }

    /// How many `sobject` records are stored.
    pub fn record_count(&self, sobject: &str) -> usize {
        lock(&self.shared.org)
            .records
            .get(sobject)
            .map_or(0, Vec::len)
    }

    /// Every token issued so far stops working: the next API call with one
    /// gets `401 INVALID_SESSION_ID`. Tokens issued afterwards work.
    pub fn expire_sessions(&self) {
        lock(&self.shared.org).sessions.clear();
    }

    /// Sets the usage `N` of `api-usage=N/M`, e.g. to just below the limit,
    /// or back to a new day's after it was spent.
    pub fn set_usage(&self, used: u64) {
        lock(&self.shared.org).used = used;
    }

    /// Sets the app's usage `A` of `per-app-api-usage=A/L(appName=…)`; it
    /// only shows with a [`SalesforceConfig::app_allocation`].
    pub fn set_app_usage(&self, used: u64) {
        lock(&self.shared.org).app_used = used;
    }

    /// Adds a validation rule run on every record about to be stored (single
    /// and collection upserts, create, update by id): it sees the record as
    /// it would be stored (existing fields merged with the sent ones,
    /// without `attributes` and `Id`) and returns `Some((statusCode,
    /// message, fields))` to refuse it, e.g.
    /// `FIELD_CUSTOM_VALIDATION_EXCEPTION`. The first rule (in the order
    /// added) that refuses wins. Rules run while the org is locked: they must
    /// not call back into the double.
    pub fn fail_record_when(
        &self,
        f: impl Fn(&Value) -> Option<(String, String, Vec<String>)> + Send + Sync + 'static,
    ) {
        lock(&self.shared.checks).push(Arc::new(f));
    }

    /// The next write of the record with this external id value (or record
    /// id) fails once with `UNABLE_TO_LOCK_ROW`: a `400` error array with
    /// `errorCode` for single calls, a per-record error with `statusCode`
    /// in a collection. Later writes succeed.
    pub fn lock_rows_once(&self, ext_id: &str) {
        lock(&self.shared.org).locked.insert(ext_id.to_owned());
    }

    /// Stops listening: from the moment this returns, new connections are
    /// refused; requests in flight still get their answer. Idempotent; also
    /// runs on drop. The org and the logs are kept for [`Self::restart`].
    pub fn stop(&self) {
        self.server.stop();
    }

    /// Listens again on the same port with the same org, sessions and log.
    pub async fn restart(&self) -> Result<(), TestkitError> {
        self.server.restart().await
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    answer_logged(request, &shared.log, |logged| route(&shared, logged)).await
}

fn route(shared: &Shared, request: &LoggedRequest) -> Reply {
    let (path, query) = request
        .path
        .split_once('?')
        .unwrap_or((request.path.as_str(), ""));
    let path = path.trim_end_matches('/');
    if path == "/services/oauth2/token" {
        return token(shared, request, query);
    }
    if path == "/services/data" {
        return if request.method == "GET" {
            versions(&shared.config.api_version)
        } else {
            method_not_allowed(&request.method, "GET,HEAD")
        };
    }
    match path.strip_prefix("/services/data/") {
        Some(rest) => data(shared, request, rest, query),
        None => not_found(),
    }
}

// ---------------------------------------------------------------------------
// Token endpoint.

fn token(shared: &Shared, request: &LoggedRequest, query: &str) -> Reply {
    lock(&shared.org).token_calls += 1;
    if request.method != "POST" {
        return oauth_error("invalid_request", "must use HTTP POST");
    }
    // Parameters may come in the query; the body counts only when it is a form.
    let mut params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let is_form = request.headers.get("content-type").is_some_and(|ct| {
        ct.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if is_form {
        params.extend(url::form_urlencoded::parse(request.body.as_bytes()).into_owned());
    }
    let config = &shared.config;
    match params.get("grant_type").map(String::as_str) {
        Some(JWT_BEARER_GRANT) => {
            let assertion = params.get("assertion").map_or("", String::as_str);
            if let Err(description) = check_assertion(shared, assertion) {
                return oauth_error("invalid_grant", description);
            }
        }
        Some("client_credentials") => {
            let (id, secret) = match request.basic_credentials() {
                Some(pair) => pair,
                None => (
                    params.get("client_id").cloned().unwrap_or_default(),
                    params.get("client_secret").cloned().unwrap_or_default(),
                ),
            };
            if id != config.consumer_key || secret != config.client_secret {
                return oauth_error("invalid_client", "invalid client credentials");
            }
        }
        _ => return oauth_error("unsupported_grant_type", "grant type not supported"),
    }
    issue_token(shared)
}

/// Checks a JWT bearer assertion; the `Err` is the `error_description`.
fn check_assertion(shared: &Shared, assertion: &str) -> Result<(), &'static str> {
    let config = &shared.config;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.required_spec_claims = HashSet::new();
    let claims = jsonwebtoken::decode::<Value>(assertion, &shared.key, &validation)
        .map_err(|_| "invalid assertion")?
        .claims;
    if claims.get("iss").and_then(Value::as_str) != Some(config.consumer_key.as_str()) {
        return Err("invalid assertion");
    }
    let accepted = [shared.url.as_str(), LOGIN_AUDIENCE, TEST_AUDIENCE];
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => accepted.contains(&aud.as_str()),
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|a| a.as_str().is_some_and(|a| accepted.contains(&a))),
        _ => false,
    };
    if !aud_ok {
        return Err("audience is invalid");
    }
    let now = unix_now().as_secs();
    let exp = claims.get("exp").and_then(Value::as_u64);
    match exp {
        Some(exp) if exp > now && exp <= now + MAX_ASSERTION_AHEAD.as_secs() => {}
        _ => return Err("expired authorization code"),
    }
    let subject = claims
        .get("prn")
        .or_else(|| claims.get("sub"))
        .and_then(Value::as_str);
    if subject != Some(config.username.as_str()) {
        return Err("user hasn't approved this consumer");
    }
    Ok(())
}

fn issue_token(shared: &Shared) -> Reply {
    let mut org = lock(&shared.org);
    org.next_id += 1;
    let now = unix_now();
    let token = format!(
        "{ORG_ID}!AQ.gluefleet.{:06}.{:x}",
        org.next_id,
        now.as_nanos()
    );
    org.sessions
        .insert(token.clone(), Instant::now() + shared.config.session_ttl);
    drop(org);
    let id = format!("{}/id/{ORG_ID}/{USER_ID}", shared.url);
    let issued_at = now.as_millis().to_string();
    // Opaque here; Salesforce signs id + issued_at with the consumer secret.
    let signature =
        base64::engine::general_purpose::STANDARD.encode(format!("{id}{issued_at}").as_bytes());
    json_reply(
        200,
        &json!({
            "access_token": token,
            "instance_url": shared.config.instance_url.as_deref().unwrap_or(&shared.url),
            "id": id,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
            "scope": "api",
        }),
    )
}

fn oauth_error(error: &str, description: &str) -> Reply {
    json_reply(
        400,
        &json!({"error": error, "error_description": description}),
    )
}

// ---------------------------------------------------------------------------
// REST API.

fn versions(newest: &str) -> Reply {
    let newest = parse_version(newest).map_or(62, |(major, _)| major);
    let list: Vec<Value> = (20..=newest)
        .map(|major| {
            let offset = i64::from(major) - 62;
            let season =
                ["Winter", "Spring", "Summer"][usize::try_from(offset.rem_euclid(3)).unwrap_or(0)];
            let year = 25 + offset.div_euclid(3);
            json!({
                "label": format!("{season} '{year:02}"),
                "url": format!("/services/data/v{major}.0"),
                "version": format!("{major}.0"),
            })
        })
        .collect();
    json_reply(200, &Value::Array(list))
}

/// `vNN.N` → `(NN, N)`.
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.strip_prefix('v')?.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Everything under `/services/data/`: session, limit, then the call.
fn data(shared: &Shared, request: &LoggedRequest, rest: &str, query: &str) -> Reply {
    let checks: Vec<RecordCheck> = lock(&shared.checks).clone();
    let mut org = lock(&shared.org);

    let token = request.headers.get("authorization").and_then(|h| {
        let (scheme, token) = h.split_once(' ')?;
        (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
            .then(|| token.trim().to_owned())
    });
    let valid = token
        .as_ref()
        .and_then(|t| org.sessions.get(t))
        .is_some_and(|until| Instant::now() < *until);
    if !valid {
        if let Some(t) = &token {
            org.sessions.remove(t);
        }
        return error_reply(401, "INVALID_SESSION_ID", "Session expired or invalid", &[]);
    }

    let config = &shared.config;
    if config.spent(org.used, org.app_used) {
        return error_reply(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
            &[],
        )
        .header(
            "Sforce-Limit-Info",
            config.limit_info(org.used, org.app_used),
        );
    }
    org.used += 1;
    if config.app_allocation.is_some() {
        org.app_used += 1;
    }
    org.api_calls += 1;
    let usage = config.limit_info(org.used, org.app_used);

    let (version, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let reply = if parse_version(version).is_none() {
        not_found()
    } else {
        let segments: Vec<String> = rest
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let call = Call {
            config: &shared.config,
            checks: &checks,
            version,
            body: &request.body,
            update_only: url::form_urlencoded::parse(query.as_bytes())
                .any(|(k, v)| k == "updateOnly" && v.eq_ignore_ascii_case("true")),
        };
        call.dispatch(&mut org, &request.method, &segments)
    };
    reply.header("Sforce-Limit-Info", usage)
}

/// One metered REST call.
struct Call<'a> {
    config: &'a SalesforceConfig,
    checks: &'a [RecordCheck],
    version: &'a str,
    body: &'a str,
    update_only: bool,
}

impl Call<'_> {
    fn dispatch(&self, org: &mut Org, method: &str, segments: &[&str]) -> Reply {
        match (method, segments) {
            ("POST", ["sobjects", sobject]) => self.create(org, sobject),
            (_, ["sobjects", _]) => method_not_allowed(method, "GET,HEAD,POST"),
            ("GET", ["sobjects", sobject, "describe"]) => self.describe(sobject),
            ("GET", ["sobjects", sobject, id]) => self.get_by_id(org, sobject, id),
            ("PATCH", ["sobjects", sobject, id]) => self.update_by_id(org, sobject, id),
            ("DELETE", ["sobjects", sobject, id]) => self.delete_by_id(org, sobject, id),
            (_, ["sobjects", _, _]) => method_not_allowed(method, "GET,HEAD,PATCH,DELETE"),
            ("GET", ["sobjects", sobject, field, value]) => {
                self.get_by_external_id(org, sobject, field, value)
            }
            ("PATCH", ["sobjects", sobject, field, value]) => {
                self.upsert_one(org, sobject, field, value)
            }
            (_, ["sobjects", _, _, _]) => method_not_allowed(method, "GET,HEAD,PATCH"),
            ("PATCH", ["composite", "sobjects", sobject, field]) => {
                self.upsert_collection(org, sobject, field)
            }
            (_, ["composite", "sobjects", _, _]) => method_not_allowed(method, "PATCH"),
            _ => not_found(),
        }
    }

    /// `PATCH sobjects/{S}/{F}/{v}`.
    fn upsert_one(&self, org: &mut Org, sobject: &str, field: &str, value: &str) -> Reply {
        if !self.config.is_external_id(sobject, field) {
            return not_found();
        }
        let mut incoming = match parse_fields(self.body, sobject) {
            Ok(fields) => fields,
            Err(e) => return e.reply(400),
        };
        incoming.insert(field.to_owned(), Value::String(value.to_owned()));
        let matches = org.find(sobject, field, value);
        if matches.len() > 1 {
            return self.multiple_choices(org, sobject, &matches);
        }
        let existing = matches.first().copied();
        if existing.is_none() && self.update_only {
            return not_found();
        }
        match self.check_write(org, sobject, existing, &incoming) {
            Ok(fields) => {
                let (id, created) = org.store(sobject, existing, fields);
                json_reply(
                    if created { 201 } else { 200 },
                    &json!({"id": id, "success": true, "errors": [], "created": created}),
                )
            }
            Err(e) => e.reply(400),
        }
    }

    /// `PATCH composite/sobjects/{S}/{F}`.
    fn upsert_collection(&self, org: &mut Org, sobject: &str, field: &str) -> Reply {
        if !self.config.is_external_id(sobject, field) {
            return error_reply(
                400,
                "INVALID_FIELD",
                &format!(
                    "Field name provided, {field} is not an External ID or indexed field for {sobject}"
                ),
                &[],
            );
        }
        let body: Value = match serde_json::from_str(self.body) {
            Ok(v) => v,
            Err(e) => return json_parser_error(&e.to_string()),
        };
        let all_or_none = match body.get("allOrNone") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return json_parser_error("allOrNone must be a boolean"),
        };
        let Some(records) = body.get("records").and_then(Value::as_array) else {
            return json_parser_error("the body needs a \"records\" array");
        };
        if records.len() > MAX_COLLECTION_RECORDS {
            return error_reply(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
                &[],
            );
        }
        let Some(records) = records
            .iter()
            .map(Value::as_object)
            .collect::<Option<Vec<_>>>()
        else {
            return json_parser_error("every element of \"records\" must be an object");
        };

        let mut seen: HashMap<String, usize> = HashMap::new();
        for record in &records {
            if let Some(v) = value_text(record.get(field)) {
                *seen.entry(v).or_insert(0) += 1;
            }
        }

        // Each record: Ok((existing index, fields to store)) or its error.
        type Planned = Result<(Option<usize>, Map<String, Value>), RecordError>;
        let mut results: Vec<Value> = Vec::with_capacity(records.len());
        let mut planned: Vec<Planned> = Vec::with_capacity(records.len());
        for record in records {
            let outcome = self.plan_collection_record(org, sobject, field, record, &seen);
            if all_or_none {
                planned.push(outcome);
            } else {
                results.push(match outcome {
                    Ok((existing, fields)) => {
                        let (id, created) = org.store(sobject, existing, fields);
                        upsert_result(&id, created)
                    }
                    Err(e) => failed_result(&e),
                });
            }
        }
        if all_or_none {
            let failed = planned.iter().any(Result::is_err);
            let rolled_back = RecordError::new(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was using AllOrNone header",
                Vec::new(),
            );
            for outcome in planned {
                results.push(match outcome {
                    Err(e) => failed_result(&e),
                    Ok(_) if failed => failed_result(&rolled_back),
                    Ok((existing, fields)) => {
                        let (id, created) = org.store(sobject, existing, fields);
                        upsert_result(&id, created)
                    }
                });
            }
        }
        json_reply(200, &Value::Array(results))
    }

    fn plan_collection_record(
        &self,
        org: &mut Org,
        sobject: &str,
        field: &str,
        record: &Map<String, Value>,
        seen: &HashMap<String, usize>,
    ) -> Result<(Option<usize>, Map<String, Value>), RecordError> {
        match record
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str)
        {
            Some(t) if t == sobject => {}
            Some(t) => {
                return Err(RecordError::new(
                    "INVALID_TYPE",
                    format!(
                        "Record type {t} does not match the sObject type {sobject} of this request"
                    ),
                    Vec::new(),
                ));
            }
            None => {
                return Err(RecordError::new(
                    "INVALID_TYPE",
                    "attributes.type is required on every record",
                    Vec::new(),
                ));
            }
        }
        let Some(value) = value_text(record.get(field)) else {
            return Err(RecordError::new(
                "MISSING_ARGUMENT",
                format!("{field} not specified"),
                vec![field.to_owned()],
            ));
        };
        if seen.get(&value).copied().unwrap_or(0) > 1 {
            return Err(RecordError::new(
                "DUPLICATE_EXTERNAL_ID",
                format!("Duplicate external id specified: {value}"),
                vec![field.to_owned()],
            ));
        }
        let incoming = without_meta(record);
        let matches = org.find(sobject, field, &value);
        if matches.len() > 1 {
            let ids: Vec<&str> = matches.iter().map(|&i| org.id_at(sobject, i)).collect();
            return Err(RecordError::new(
                "DUPLICATE_EXTERNAL_ID",
                format!(
                    "{field}: more than one record found for external id field: [{}]",
                    ids.join(", ")
                ),
                vec![field.to_owned()],
            ));
        }
        let existing = matches.first().copied();
        let fields = self.check_write(org, sobject, existing, &incoming)?;
        Ok((existing, fields))
    }

    /// `POST sobjects/{S}`.
    fn create(&self, org: &mut Org, sobject: &str) -> Reply {
        let incoming = match parse_fields(self.body, sobject) {
            Ok(fields) => fields,
            Err(e) => return e.reply(400),
        };
        match self.check_write(org, sobject, None, &incoming) {
            Ok(fields) => {
                let (id, _) = org.store(sobject, None, fields);
                json_reply(201, &json!({"id": id, "success": true, "errors": []}))
            }
            Err(e) => e.reply(400),
        }
    }

    /// `PATCH sobjects/{S}/{Id}`.
    fn update_by_id(&self, org: &mut Org, sobject: &str, id: &str) -> Reply {
        let Some(index) = org.index_of(sobject, id) else {
            return not_found();
        };
        let incoming = match parse_fields(self.body, sobject) {
            Ok(fields) => fields,
            Err(e) => return e.reply(400),
        };
        match self.check_write(org, sobject, Some(index), &incoming) {
            Ok(fields) => {
                org.store(sobject, Some(index), fields);
                Reply::status(204)
            }
            Err(e) => e.reply(400),
        }
    }

    /// `DELETE sobjects/{S}/{Id}`.
    fn delete_by_id(&self, org: &mut Org, sobject: &str, id: &str) -> Reply {
        let Some(index) = org.index_of(sobject, id) else {
            return not_found();
        };
        if self.take_lock(org, sobject, Some(index), &Map::new()) {
            return unable_to_lock_row().reply(400);
        }
        org.remove(sobject, index);
        Reply::status(204)
    }

    /// `GET sobjects/{S}/describe`: the objects the config names, with `Id`,
    /// `Name`, their external id fields (`externalId: true`) and required
    /// fields (`nillable: false`); others are 404 `NOT_FOUND`.
    fn describe(&self, sobject: &str) -> Reply {
        let c = self.config;
        let known = c
            .external_ids
            .iter()
            .chain(&c.required_fields)
            .any(|(o, _)| o == sobject);
        if !known {
            return not_found();
        }
        let mut fields = vec![
            json!({"name": "Id", "type": "id", "externalId": false, "nillable": false, "createable": false, "updateable": false}),
        ];
        let mut names = vec!["Name".to_owned()];
        names.extend(
            c.external_ids
                .iter()
                .chain(&c.required_fields)
                .filter(|(o, _)| o == sobject)
                .map(|(_, f)| f.clone()),
        );
        names.sort();
        names.dedup();
        for name in names {
            let external = c.is_external_id(sobject, &name);
            let required = c
                .required_fields
                .iter()
                .any(|(o, f)| o == sobject && *f == name);
            fields.push(json!({"name": name, "type": "string", "externalId": external, "nillable": !required, "createable": true, "updateable": true}));
        }
        Reply::status(200).body(json!({"name": sobject, "fields": fields}).to_string())
    }

    fn get_by_id(&self, org: &Org, sobject: &str, id: &str) -> Reply {
        match org.index_of(sobject, id) {
            Some(index) => self.record_reply(org, sobject, index),
            None => not_found(),
        }
    }

    fn get_by_external_id(&self, org: &mut Org, sobject: &str, field: &str, value: &str) -> Reply {
        if !self.config.is_external_id(sobject, field) {
            return not_found();
        }
        match org.find(sobject, field, value).as_slice() {
            [] => not_found(),
            [index] => self.record_reply(org, sobject, *index),
            matches => self.multiple_choices(org, sobject, matches),
        }
    }

    fn record_reply(&self, org: &Org, sobject: &str, index: usize) -> Reply {
        let Some(record) = org.records.get(sobject).and_then(|r| r.get(index)) else {
            return not_found();
        };
        let mut body = Map::new();
        body.insert(
            "attributes".to_owned(),
            json!({"type": sobject, "url": self.record_url(sobject, &record.id)}),
        );
        body.insert("Id".to_owned(), Value::String(record.id.clone()));
        body.extend(record.fields.clone());
        json_reply(200, &Value::Object(body))
    }

    /// `300`: the external id matched more than one record.
    fn multiple_choices(&self, org: &Org, sobject: &str, matches: &[usize]) -> Reply {
        let urls: Vec<Value> = matches
            .iter()
            .map(|&i| Value::String(self.record_url(sobject, org.id_at(sobject, i))))
            .collect();
        json_reply(300, &Value::Array(urls))
    }

    fn record_url(&self, sobject: &str, id: &str) -> String {
        format!("/services/data/{}/sobjects/{sobject}/{id}", self.version)
    }

    /// Validates a write of `incoming` onto the record at `existing` (or a
    /// new one) and returns the fields to store. Consumes a row lock.
    fn check_write(
        &self,
        org: &mut Org,
        sobject: &str,
        existing: Option<usize>,
        incoming: &Map<String, Value>,
    ) -> Result<Map<String, Value>, RecordError> {
        if let Some(bad) = incoming.keys().find(|k| k.starts_with("Bad")) {
            return Err(RecordError::new(
                "INVALID_FIELD",
                format!("No such column '{bad}' on sobject of type {sobject}"),
                vec![bad.clone()],
            ));
        }
        if self.take_lock(org, sobject, existing, incoming) {
            return Err(unable_to_lock_row());
        }
        let mut fields = existing
            .and_then(|i| org.records.get(sobject)?.get(i))
            .map(|r| r.fields.clone())
            .unwrap_or_default();
        fields.extend(incoming.clone());
        let missing: Vec<String> = self
            .config
            .required_fields
            .iter()
            .filter(|(s, f)| {
                s == sobject
                    && match fields.get(f) {
                        None | Some(Value::Null) => true,
                        Some(Value::String(v)) => v.is_empty(),
                        Some(_) => false,
                    }
            })
            .map(|(_, f)| f.clone())
            .collect();
        if !missing.is_empty() {
            return Err(RecordError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                missing,
            ));
        }
        let candidate = Value::Object(fields);
        if let Some((code, message, failed)) =
            self.checks.iter().find_map(|check| check(&candidate))
        {
            return Err(RecordError {
                code,
                message,
                fields: failed,
            });
        }
        match candidate {
            Value::Object(fields) => Ok(fields),
            _ => Ok(Map::new()),
        }
    }

    /// Whether a lock set by `lock_rows_once` hits this write (and clears it):
    /// by the record id or any external id value, stored or sent.
    fn take_lock(
        &self,
        org: &mut Org,
        sobject: &str,
        existing: Option<usize>,
        incoming: &Map<String, Value>,
    ) -> bool {
        if org.locked.is_empty() {
            return false;
        }
        let stored = existing.and_then(|i| org.records.get(sobject)?.get(i));
        let mut keys: Vec<String> = stored.map(|r| r.id.clone()).into_iter().collect();
        for field in self.config.external_id_fields(sobject) {
            keys.extend(value_text(incoming.get(field)));
            keys.extend(stored.and_then(|r| value_text(r.fields.get(field))));
        }
        let mut hit = false;
        for key in keys {
            hit |= org.locked.remove(&key);
        }
        hit
    }
}

impl Org {
    /// Indices of the `sobject` records whose `field` has `value`, in
    /// creation order.
    fn find(&mut self, sobject: &str, field: &str, value: &str) -> Vec<usize> {
        let key = (sobject.to_owned(), field.to_owned());
        if !self.indexes.contains_key(&key) {
            let mut index: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, r) in self.records.get(sobject).into_iter().flatten().enumerate() {
                if let Some(text) = value_text(r.fields.get(field)) {
                    index.entry(text).or_default().push(i);
                }
            }
            self.indexes.insert(key.clone(), index);
        }
        self.indexes
            .get(&key)
            .and_then(|index| index.get(value))
            .cloned()
            .unwrap_or_default()
    }

    /// Keeps the indexes of `sobject` right when the record at `at` goes
    /// from `old` fields to `new` ones (`old` empty for a new record).
    fn reindex(
        &mut self,
        sobject: &str,
        at: usize,
        old: &Map<String, Value>,
        new: &Map<String, Value>,
    ) {
        for ((s, field), index) in &mut self.indexes {
            if s != sobject {
                continue;
            }
            if let Some(text) = value_text(old.get(field))
                && let Some(at_list) = index.get_mut(&text)
            {
                at_list.retain(|i| *i != at);
            }
            if let Some(text) = value_text(new.get(field)) {
                let list = index.entry(text).or_default();
                let pos = list.partition_point(|i| *i < at);
                list.insert(pos, at);
            }
        }
    }

    /// Removes the record at `index`; later records move up, so the
    /// sObject's indexes are dropped and rebuilt on the next search.
    fn remove(&mut self, sobject: &str, index: usize) {
        if let Some(records) = self.records.get_mut(sobject) {
            records.remove(index);
        }
        self.indexes.retain(|(s, _), _| s != sobject);
    }

    fn index_of(&self, sobject: &str, id: &str) -> Option<usize> {
        self.records.get(sobject)?.iter().position(|r| r.id == id)
    }

    fn id_at(&self, sobject: &str, index: usize) -> &str {
        self.records
            .get(sobject)
            .and_then(|r| r.get(index))
            .map_or("", |r| r.id.as_str())
    }

    /// Stores `fields` as the record at `existing` or as a new one; returns
    /// its id and whether it was created.
    fn store(
        &mut self,
        sobject: &str,
        existing: Option<usize>,
        fields: Map<String, Value>,
    ) -> (String, bool) {
        let records = self.records.entry(sobject.to_owned()).or_default();
        if let Some(i) = existing
            && let Some(record) = records.get_mut(i)
        {
            let old = std::mem::replace(&mut record.fields, fields.clone());
            let id = record.id.clone();
            self.reindex(sobject, i, &old, &fields);
            return (id, false);
        }
        self.next_id += 1;
        let id = format!("{}{:012}AAA", key_prefix(sobject), self.next_id);
        let at = records.len();
        records.push(StoredRecord {
            id: id.clone(),
            fields: fields.clone(),
        });
        self.reindex(sobject, at, &Map::new(), &fields);
        (id, true)
    }
}

// ---------------------------------------------------------------------------
// Helpers.

/// The three-character id prefix Salesforce uses for `sobject`.
fn key_prefix(sobject: &str) -> &'static str {
    match sobject {
        "Account" => "001",
        "Contact" => "003",
        "Opportunity" => "006",
        "Lead" => "00Q",
        "Case" => "500",
        _ => "a00",
    }
}

/// A field value as text, for comparing and indexing external ids: strings
/// (not empty) and numbers.
fn value_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A record's fields without `attributes` and `Id`.
fn without_meta(record: &Map<String, Value>) -> Map<String, Value> {
    record
        .iter()
        .filter(|(k, _)| k.as_str() != "attributes" && k.as_str() != "Id")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A single-record body: a JSON object of fields.
fn parse_fields(body: &str, sobject: &str) -> Result<Map<String, Value>, RecordError> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(without_meta(&fields)),
        Ok(_) => Err(RecordError::new(
            "JSON_PARSER_ERROR",
            format!("Cannot deserialize instance of {sobject}: the body must be a JSON object"),
            Vec::new(),
        )),
        Err(e) => Err(RecordError::new(
            "JSON_PARSER_ERROR",
            format!("Unexpected character in JSON: {e}"),
            Vec::new(),
        )),
    }
}

fn unable_to_lock_row() -> RecordError {
    RecordError::new(
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
        Vec::new(),
    )
}

fn upsert_result(id: &str, created: bool) -> Value {
    json!({"id": id, "success": true, "errors": [], "created": created})
}

fn failed_result(e: &RecordError) -> Value {
    json!({"id": null, "success": false, "errors": [e.per_record()], "created": false})
}

fn json_reply(status: u16, body: &Value) -> Reply {
    Reply::status(status)
        .header("Content-Type", JSON)
        .body(body.to_string())
}

/// Salesforce's error array: `[{"message", "errorCode", "fields"?}]`.
fn error_reply(status: u16, code: &str, message: &str, fields: &[String]) -> Reply {
    let mut error = json!({"message": message, "errorCode": code});
    if !fields.is_empty()
        && let Value::Object(map) = &mut error
    {
        map.insert("fields".to_owned(), json!(fields));
    }
    json_reply(status, &json!([error]))
}

fn not_found() -> Reply {
    error_reply(
        404,
        "NOT_FOUND",
        "The requested resource does not exist",
        &[],
    )
}

fn json_parser_error(detail: &str) -> Reply {
    error_reply(400, "JSON_PARSER_ERROR", detail, &[])
}

fn method_not_allowed(method: &str, allowed: &str) -> Reply {
    error_reply(
        405,
        "METHOD_NOT_ALLOWED",
        &format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
        &[],
    )
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
