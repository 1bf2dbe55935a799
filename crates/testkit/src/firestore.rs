//! A real Firestore emulator per test, and a small REST client for it.
//!
//! Connectors that keep state in Firestore (cursors, idempotency records)
//! depend on its write semantics: preconditions, `ALREADY_EXISTS` on a
//! second create, per-write statuses in `batchWrite`. A fake would encode our
//! own guess at those, so tests run the official emulator. Each
//! [`FirestoreEmulator`] is its own Java process on a free port with its own
//! project id, so tests run in parallel without seeing each other's
//! documents. The test-side calls use the emulator's REST surface on the same
//! port, which needs nothing beyond `reqwest`.
//!
//! Emulator behaviour worth knowing (gcloud 528):
//! - `batchWrite` and listing answer 403 without `Authorization: Bearer
//!   owner` (the emulator's admin token), so every request here sends it.
//! - Creating an existing document answers 409 `ALREADY_EXISTS`; a write
//!   with `exists: true` on a missing document 404 `NOT_FOUND`; an
//!   `updateTime` precondition mismatch 400 `FAILED_PRECONDITION`.
//! - In a `batchWrite` answer, a successful write's status is `{}` (code 0
//!   is omitted), a failed create's is `{"code": 6, "message": ...}`.
//! - Projects are isolated from each other, and `reset` clears one project.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::process::{self, ChildServer};
use crate::{TestkitError, admin, decode};

/// How long a cold emulator may take to say it listens (2-6 s on an idle
/// machine; much more while other crates compile on a 2-core CI box).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `restart` waits for the old process to let go of the port.
const PORT_RELEASE_TIMEOUT: Duration = Duration::from_secs(15);
/// Documents per list page; the emulator's maximum is higher, this keeps
/// answers small while still needing few round trips in tests.
const PAGE_SIZE: usize = 300;
/// The emulator prints this once its port serves requests.
const READY_LINE: &str = "Dev App Server is now running";
/// The token the emulator treats as an admin: it bypasses security rules and
/// is required for `batchWrite` and listing.
const OWNER_AUTH: &str = "Bearer owner";

/// A running Firestore emulator, stopped (whole process group) on drop.
#[derive(Debug)]
pub struct FirestoreEmulator {
    /// The gcloud process group, on the port fixed at the first start.
    server: ChildServer,
    project: String,
    http: reqwest::Client,
}

impl FirestoreEmulator {
    /// Whether `gcloud` is on `PATH`. Tests must not use this to skip: a
    /// missing emulator should fail loudly ([`TestkitError::GcloudMissing`]).
    pub fn available() -> bool {
        process::gcloud_available()
    }

    /// Starts an emulator on a free port with a fresh project id and waits
    /// until it serves requests.
    pub async fn start() -> Result<Self, TestkitError> {
        if !Self::available() {
            return Err(TestkitError::GcloudMissing);
        }
        let project = process::fresh_project("gluefleet-fs");
        let http = admin::client("Firestore emulator")?;
        let mut emulator = Self {
            server: ChildServer::on_free_port(),
            project,
            http,
        };
        // On error `emulator` drops here, which kills whatever did start.
        emulator.launch().await?;
        Ok(emulator)
    }

    /// `127.0.0.1:PORT`, the value `FIRESTORE_EMULATOR_HOST` takes.
    pub fn host(&self) -> String {
        self.server.host()
    }

    /// The project id of this instance; give it to the code under test so it
    /// writes where [`get`](Self::get) and [`list`](Self::list) look.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The emulator's output so far (since the last start), for debugging.
    pub fn logs(&self) -> Vec<String> {
        self.server.logs()
    }

    /// The REST base of this project's default database, without a trailing
    /// slash: append `/coll/id` for a document or `:batchWrite`,
    /// `:commit`, ... for the database-wide methods.
    pub fn documents_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/v1/{}",
            self.server.port(),
            self.documents_resource()
        )
    }

    /// The full resource name of document `path` (like `accounts/A1`), as
    /// write requests (`update.name`, `delete`) spell it.
    pub fn document_name(&self, path: &str) -> String {
        format!("{}/{path}", self.documents_resource())
    }

    /// Document `path` (like `accounts/A1`) as the REST API returns it
    /// (`name`, `fields`, `createTime`, `updateTime`), `None` if it does not
    /// exist. A document without fields has no `fields` key.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, TestkitError> {
        let what = format!("getting document {path}");
        let url = format!("{}/{}", self.documents_url(), encode_path(path));
        let (status, text) = self.send(reqwest::Method::GET, url, None, &what).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        admin::parse(&what, status, &text).map(Some)
    }

    /// All documents directly in top-level collection `collection`, in the
    /// emulator's order (by id), following page tokens. Documents of
    /// subcollections are not included.
    pub async fn list(&self, collection: &str) -> Result<Vec<Value>, TestkitError> {
        let mut documents = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let what = format!("listing collection {collection}");
            let mut url = format!(
                "{}/{}?pageSize={PAGE_SIZE}",
                self.documents_url(),
                encode_path(collection)
            );
            if let Some(token) = &page_token {
                url.push_str("&pageToken=");
                url.push_str(&encode_component(token));
            }
            let (status, text) = self.send(reqwest::Method::GET, url, None, &what).await?;
            let mut answer = admin::parse(&what, status, &text)?;
            match answer.get_mut("documents").map(Value::take) {
                None | Some(Value::Null) => {}
                Some(Value::Array(page)) => documents.extend(page),
                Some(other) => {
                    return Err(decode(&what, format!("`documents` is not a list: {other}")));
                }
            }
            // An empty token is how some servers say "last page", too.
            match answer.get("nextPageToken").and_then(Value::as_str) {
                Some(token) if !token.is_empty() => page_token = Some(token.to_owned()),
                _ => return Ok(documents),
            }
        }
    }

    /// How many documents [`list`](Self::list) finds in `collection`.
    pub async fn count(&self, collection: &str) -> Result<usize, TestkitError> {
        Ok(self.list(collection).await?.len())
    }

    /// Writes document `path` with exactly `fields` (REST-encoded, like
    /// `{"a": {"stringValue": "x"}}`), creating it or replacing all its
    /// fields: for seeding state before the code under test runs.
    pub async fn put(&self, path: &str, fields: Value) -> Result<(), TestkitError> {
        let what = format!("writing document {path}");
        let url = format!("{}/{}", self.documents_url(), encode_path(path));
        let body = json!({ "fields": fields });
        let (status, text) = self
            .send(reqwest::Method::PATCH, url, Some(&body), &what)
            .await?;
        admin::parse(&what, status, &text)?;
        Ok(())
    }

    /// Deletes every document of this instance's project, so one emulator
    /// can serve several test cases in sequence.
    pub async fn reset(&self) -> Result<(), TestkitError> {
        let what = "resetting the Firestore emulator";
        let url = format!(
            "http://127.0.0.1:{}/emulator/v1/{}",
            self.server.port(),
            self.documents_resource()
        );
        let (status, text) = self.send(reqwest::Method::DELETE, url, None, what).await?;
        admin::parse(what, status, &text)?;
        Ok(())
    }

    /// Stops the emulator and starts it again on the same port and project,
    /// as a Firestore outage would look to a worker. All documents are gone
    /// afterwards: the emulator keeps them in memory only.
    pub async fn restart(&mut self) -> Result<(), TestkitError> {
        self.server
            .stop_and_release(PORT_RELEASE_TIMEOUT, "the Firestore emulator")
            .await?;
        self.launch().await
    }

    /// Kills the emulator's process group (the gcloud wrapper and the Java
    /// server). Idempotent; also runs on drop.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Spawns gcloud on `self.server.port()` and waits for the readiness line.
    async fn launch(&mut self) -> Result<(), TestkitError> {
        let args = [
            "emulators".to_owned(),
            "firestore".to_owned(),
            "start".to_owned(),
            format!("--host-port=127.0.0.1:{}", self.server.port()),
            "--quiet".to_owned(),
        ];
        let (command, what) = process::gcloud(&args);
        self.server
            .launch(command, what, READY_LINE, READY_TIMEOUT)
            .await
    }

    fn documents_resource(&self) -> String {
        format!("projects/{}/databases/(default)/documents", self.project)
    }

    /// One request with the owner token; returns the status and body so
    /// callers decide what a 404 means.
    async fn send(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<&Value>,
        what: &str,
    ) -> Result<(reqwest::StatusCode, String), TestkitError> {
        let mut request = self
            .http
            .request(method, url)
            .header(reqwest::header::AUTHORIZATION, OWNER_AUTH);
        if let Some(body) = body {
            request = request.json(body);
        }
        admin::send(request, what).await
    }
}

impl Drop for FirestoreEmulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `coll/id` with each segment percent-encoded, since document ids may hold
/// any character, including `?`, `#` and spaces.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_component)
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a REST `fields` map into plain JSON so tests can compare whole
/// documents with `json!` literals instead of the typed wire form.
///
/// `stringValue`, `timestampValue`, `referenceValue` and `bytesValue` become
/// strings; `integerValue` (a string on the wire, to keep 64 bits) becomes a
/// number; `doubleValue` stays what it is (a number, or a string such as
/// `"NaN"`); `booleanValue` a bool; `nullValue` null; `mapValue` an object;
/// `arrayValue` an array; `geoPointValue` its `{latitude, longitude}` object.
/// Anything unrecognised is kept as is, so a surprise shows up in the test's
/// diff rather than being dropped. The API omits `fields` for a document
/// without fields, so a non-object (like the `null` of a missing key) gives
/// `{}`.
pub fn plain(fields: &Value) -> Value {
    let Some(fields) = fields.as_object() else {
        return Value::Object(Map::new());
    };
    Value::Object(
        fields
            .iter()
            .map(|(name, value)| (name.clone(), plain_value(value)))
            .collect(),
    )
}

/// One REST `Value` (an object with a single `...Value` key) as plain JSON.
fn plain_value(value: &Value) -> Value {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return value.clone();
    };
    match kind.as_str() {
        "nullValue" => Value::Null,
        "integerValue" => match inner {
            Value::String(s) => s.parse::<i64>().map_or_else(|_| inner.clone(), Value::from),
            _ => inner.clone(),
        },
        "mapValue" => plain(&inner["fields"]),
        "arrayValue" => Value::Array(
            inner["values"]
                .as_array()
                .map(|values| values.iter().map(plain_value).collect())
                .unwrap_or_default(),
        ),
        "stringValue" | "doubleValue" | "booleanValue" | "timestampValue" | "referenceValue"
        | "bytesValue" | "geoPointValue" => inner.clone(),
        _ => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decodes_every_kind() {
        let fields = json!({
            "s": {"stringValue": "x"},
            "i": {"integerValue": "-9007199254740993"},
            "d": {"doubleValue": 1.5},
            "nan": {"doubleValue": "NaN"},
            "b": {"booleanValue": false},
            "n": {"nullValue": null},
            "t": {"timestampValue": "2024-01-02T03:04:05Z"},
            "r": {"referenceValue": "projects/p/databases/(default)/documents/a/b"},
            "y": {"bytesValue": "AQI="},
            "g": {"geoPointValue": {"latitude": 1.0, "longitude": 2.0}},
            "m": {"mapValue": {"fields": {"k": {"integerValue": "1"}}}},
            "em": {"mapValue": {}},
            "a": {"arrayValue": {"values": [{"stringValue": "v"}, {"nullValue": null}]}},
            "ea": {"arrayValue": {}},
            "odd": {"futureValue": 1},
        });
        assert_eq!(
            plain(&fields),
            json!({
                "s": "x",
                "i": -9_007_199_254_740_993_i64,
                "d": 1.5,
                "nan": "NaN",
                "b": false,
                "n": null,
                "t": "2024-01-02T03:04:05Z",
                "r": "projects/p/databases/(default)/documents/a/b",
                "y": "AQI=",
                "g": {"latitude": 1.0, "longitude": 2.0},
                "m": {"k": 1},
                "em": {},
                "a": ["v", null],
                "ea": [],
                "odd": {"futureValue": 1},
            })
        );
        assert_eq!(plain(&Value::Null), json!({}));
    }

    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(encode_path("accounts/A1"), "accounts/A1");
        assert_eq!(encode_path("a b/x?y#z"), "a%20b/x%3Fy%23z");
        assert_eq!(encode_component("ab=="), "ab%3D%3D");
    }
}
