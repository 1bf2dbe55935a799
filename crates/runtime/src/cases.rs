//! `test --cases`: a connector's config tested the way CI tests code. Each
//! case is an input event and what should come of it: the requests the
//! connector sends (method, URL, headers, body after mapping) and the
//! outcome (delivered, dead-lettered with its class, ...). The real
//! pipeline runs (routes, mappings, templates, the connector's own request
//! building and answer reading), with every request answered in the
//! process ([`gluefleet_core::http::capture`]), credentials stood in for
//! and the idempotency store in memory: nothing leaves the machine, no
//! secret is needed.
//!
//! ```toml
//! [[cases]]
//! name = "an order is posted with its id"
//! event = { id = "o-1", source = "//shop", type = "order.created", data = { order = "o-1" } }
//! answers = [{ status = 201, json = { id = "A-1" } }]   # default: 200 {}
//! requests = [{ method = "POST", path = "/api/orders", json = { order = "o-1" } }]
//! expect = { outcome = "delivered" }                      # the default
//! ```

use crate::{Reach, Spec, build_with};
use gluefleet_core::RawMessage;
use gluefleet_core::auth::{AuthError, Credential, TokenProvider};
use gluefleet_core::http::capture::{Capture, Captured, Reply, capture_all};
use gluefleet_core::outcome::Outcome;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

/// The command line of `test`.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct TestArgs {
    /// The cases file (TOML, `[[cases]]`).
    #[arg(long)]
    pub cases: PathBuf,
    /// Run only the cases whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
}

/// The stand-in credential of `lint` and `test` for every `[auth]` that
/// fetches its token (OAuth 2.0, Google): an `Authorization` header a case
/// can expect, fetched from nowhere. Fixed credentials (`bearer`, `basic`,
/// `api_key`) are sent as configured.
#[derive(Debug)]
pub struct OfflineAuth {
    /// The instance the credential names, for connectors that call where
    /// the token says (Salesforce's `instance_url`); a cases file's
    /// `credential_endpoint`.
    pub endpoint: Option<String>,
}

/// The value [`OfflineAuth`] sends.
pub const OFFLINE_TOKEN: &str = "Bearer gluefleet-test-token";

#[async_trait::async_trait]
impl TokenProvider for OfflineAuth {
    async fn credential(&self) -> Result<Credential, AuthError> {
        Ok(Credential::new(
            reqwest::header::AUTHORIZATION,
            SecretString::from(OFFLINE_TOKEN),
            0,
        )
        .with_endpoint(self.endpoint.clone()))
    }

    async fn credential_for(&self, subject: &str) -> Result<Credential, AuthError> {
        Ok(self.credential().await?.with_subject(subject))
    }

    fn acts_as_subjects(&self) -> bool {
        true
    }

    fn invalidate(&self, _stale: &Credential) {}
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    /// Values for the config's `${NAME}` references in this test, over the
    /// process's environment: the cases then expect these, not secrets.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// The instance a fetched token names in this test (Salesforce's
    /// `instance_url`, `https://acme.my.salesforce.com`).
    credential_endpoint: Option<String>,
    cases: Vec<Case>,
}

/// One case, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// A CloudEvent (or the plain `{type, data}` envelope) as the message
    /// body; `specversion` is added when it has an `id` and a `source`.
    event: Option<Value>,
    /// Or a message as it is, for what no event can be (bad input).
    message: Option<InputMessage>,
    /// Attributes added to the message.
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    /// The target's answers, one per request, in order; 200 `{}` after them.
    #[serde(default)]
    answers: Vec<AnswerSpec>,
    /// Every request expected, in order; none checked when absent,
    /// `requests = []` for "sends nothing".
    requests: Option<Vec<Expected>>,
    /// The outcome; `delivered` when absent.
    expect: Option<Expect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputMessage {
    #[serde(default)]
    data: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerSpec {
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    json: Option<Value>,
}

fn ok() -> u16 {
    200
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    method: Option<String>,
    /// The whole URL.
    url: Option<String>,
    /// The path, and the query when this has one.
    path: Option<String>,
    /// Each must be sent with this value (names any case).
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The body, compared as JSON.
    json: Option<Value>,
    /// The body, compared as text.
    body: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// `delivered`, `already-done`, `duplicate`, `dropped`, `nacked` or
    /// `dead-lettered`.
    outcome: String,
    /// With `dead-lettered`: the class; with `nacked`: the reason.
    class: Option<String>,
    /// The dead letter's error contains this.
    error_contains: Option<String>,
}

impl Case {
    fn raw(&self, index: usize) -> Result<RawMessage, String> {
        let (data, mut attributes) = match (&self.event, &self.message) {
            (Some(_), Some(_)) => return Err("give `event` or `message`, not both".into()),
            (None, None) => return Err("no input: give `event` or `message`".into()),
            (Some(event), None) => {
                let mut event = event.clone();
                if let Some(o) = event.as_object_mut()
                    && o.contains_key("id")
                    && o.contains_key("source")
                    && !o.contains_key("specversion")
                {
                    o.insert("specversion".into(), "1.0".into());
                }
                (event.to_string().into_bytes(), BTreeMap::new())
            }
            (None, Some(m)) => (m.data.clone().into_bytes(), m.attributes.clone()),
        };
        attributes.extend(self.attributes.clone());
        Ok(RawMessage {
            data,
            attributes,
            message_id: format!("case-{}", index + 1),
            publish_time: Some(std::time::SystemTime::now()),
            ordering_key: String::new(),
            delivery_attempt: Some(1),
        })
    }

    /// Everything wrong with what happened; empty when the case passed.
    fn judge(&self, outcome: &Outcome, sent: &[Captured]) -> Vec<String> {
        let mut wrong = Vec::new();
        let (name, class, error) = describe(outcome);
        let want = self.expect.as_ref();
        let want_outcome = want.map_or("delivered", |e| e.outcome.as_str());
        if name != want_outcome {
            wrong.push(format!(
                "outcome: expected {want_outcome}, got {name}{}",
                error.map(|e| format!(" ({e})")).unwrap_or_default()
            ));
        } else if let Some(w) = want {
            if let Some(c) = &w.class
                && class != Some(c.as_str())
            {
                wrong.push(format!(
                    "class: expected {c}, got {}",
                    class.unwrap_or("none")
                ));
            }
            if let Some(part) = &w.error_contains
                && !error.is_some_and(|e| e.contains(part.as_str()))
            {
                wrong.push(format!(
                    "error: expected it to contain {part:?}, got {:?}",
                    error.unwrap_or_default()
                ));
            }
        }
        if let Some(expected) = &self.requests {
            if expected.len() != sent.len() {
                wrong.push(format!(
                    "requests: expected {}, sent {}",
                    expected.len(),
                    sent.len()
                ));
            }
            for (i, (e, s)) in expected.iter().zip(sent).enumerate() {
                for w in e.mismatches(s) {
                    wrong.push(format!("request {}: {w}", i + 1));
                }
            }
        }
        wrong
    }
}

/// `(name, class or reason, error)` of an outcome, in the words of a case.
fn describe(outcome: &Outcome) -> (&'static str, Option<&str>, Option<&str>) {
    match outcome {
        Outcome::Ack(reason) => (reason.as_str(), None, None),
        Outcome::Nack { reason, .. } => ("nacked", Some(reason.as_str()), None),
        Outcome::DeadLetter(d) => (
            "dead-lettered",
            Some(d.class.as_str()),
            Some(d.error.as_str()),
        ),
        _ => ("unknown", None, None),
    }
}

impl Expected {
    fn mismatches(&self, sent: &Captured) -> Vec<String> {
        let mut wrong = Vec::new();
        if let Some(m) = &self.method
            && !m.eq_ignore_ascii_case(&sent.method)
        {
            wrong.push(format!("method: expected {m}, sent {}", sent.method));
        }
        if let Some(u) = &self.url
            && *u != sent.url
        {
            wrong.push(format!("url: expected {u}, sent {}", sent.url));
        }
        if let Some(p) = &self.path {
            let got = reqwest::Url::parse(&sent.url)
                .map(|u| match (p.contains('?'), u.query()) {
                    (true, Some(q)) => format!("{}?{q}", u.path()),
                    _ => u.path().to_owned(),
                })
                .unwrap_or_else(|_| sent.url.clone());
            if *p != got {
                wrong.push(format!("path: expected {p}, sent {got}"));
            }
        }
        for (name, value) in &self.headers {
            let got: Vec<&str> = sent
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect();
            if !got.contains(&value.as_str()) {
                wrong.push(match got.as_slice() {
                    [] => format!("header {name}: expected {value:?}, not sent"),
                    _ => format!("header {name}: expected {value:?}, sent {got:?}"),
                });
            }
        }
        if let Some(j) = &self.json {
            match serde_json::from_str::<Value>(&sent.body) {
                Ok(got) if got == *j => {}
                Ok(got) => wrong.push(format!("json: expected {j}, sent {got}")),
                Err(_) => wrong.push(format!(
                    "json: expected {j}, sent a body that is not JSON: {:?}",
                    sent.body
                )),
            }
        }
        if let Some(b) = &self.body
            && *b != sent.body
        {
            wrong.push(format!("body: expected {b:?}, sent {:?}", sent.body));
        }
        wrong
    }
}

impl AnswerSpec {
    fn reply(&self) -> Reply {
        let mut headers = reqwest::header::HeaderMap::new();
        let body = match (&self.json, &self.body) {
            (Some(j), _) => {
                headers.insert(
                    reqwest::header::CONTENT_TYPE,
                    reqwest::header::HeaderValue::from_static("application/json"),
                );
                j.to_string()
            }
            (None, Some(b)) => b.clone(),
            (None, None) => String::new(),
        };
        for (k, v) in &self.headers {
            // Checked when the file was read.
            if let (Ok(k), Ok(v)) = (
                reqwest::header::HeaderName::try_from(k.as_str()),
                reqwest::header::HeaderValue::try_from(v.as_str()),
            ) {
                headers.insert(k, v);
            }
        }
        Reply {
            status: self.status,
            headers,
            body,
        }
    }

    fn check(&self) -> Result<(), String> {
        if !(100..=599).contains(&self.status) {
            return Err(format!(
                "answer status {} is not an HTTP status",
                self.status
            ));
        }
        for (k, v) in &self.headers {
            reqwest::header::HeaderName::try_from(k.as_str())
                .map_err(|_| format!("answer header {k:?} is not a header name"))?;
            reqwest::header::HeaderValue::try_from(v.as_str())
                .map_err(|_| format!("answer header {k}: {v:?} is not a header value"))?;
        }
        Ok(())
    }
}

/// Answers every request with the case's answers in order, keeping what
/// was sent.
#[derive(Default)]
struct Recorder {
    state: Mutex<(VecDeque<AnswerSpec>, Vec<Captured>)>,
}

impl Recorder {
    fn start(&self, answers: &[AnswerSpec]) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *s = (answers.iter().cloned().collect(), Vec::new());
    }

    fn sent(&self) -> Vec<Captured> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut s.1)
    }
}

impl Capture for Recorder {
    fn answer(&self, request: Captured) -> Reply {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.1.push(request);
        match s.0.pop_front() {
            Some(a) => a.reply(),
            None => AnswerSpec {
                status: 200,
                headers: BTreeMap::new(),
                body: None,
                json: Some(Value::Object(serde_json::Map::new())),
            }
            .reply(),
        }
    }
}

fn show(sent: &[Captured]) -> String {
    let mut out = String::new();
    for (i, r) in sent.iter().enumerate() {
        out.push_str(&format!("     sent {}: {} {}\n", i + 1, r.method, r.url));
        for (k, v) in &r.headers {
            out.push_str(&format!("       {k}: {v}\n"));
        }
        if !r.body.is_empty() {
            out.push_str(&format!("       {}\n", r.body));
        }
    }
    out
}

/// Runs `test`: one line per case, the requests of each failed one, a
/// count; exit 0 when all passed, 1 when one failed, 64 when the config or
/// the cases file is wrong.
pub async fn run<S: Spec>(config: Option<&PathBuf>, args: &TestArgs) -> ExitCode {
    let bad = |what: String| {
        println!("FAIL {what}");
        ExitCode::from(crate::EXIT_CONFIG)
    };
    let text = match std::fs::read_to_string(&args.cases) {
        Ok(t) => t,
        Err(e) => return bad(format!("cases: reading {}: {e}", args.cases.display())),
    };
    let file: CasesFile = match toml::from_str(&text) {
        Ok(f) => f,
        Err(e) => return bad(format!("cases: {}: {e}", args.cases.display())),
    };
    for case in &file.cases {
        for a in &case.answers {
            if let Err(e) = a.check() {
                return bad(format!("cases: case {:?}: {e}", case.name));
            }
        }
    }
    let recorder = Arc::new(Recorder::default());
    if !capture_all(recorder.clone()) {
        return bad("cases: requests are already captured in this process".into());
    }
    let env = crate::LintEnv {
        given: file.env.clone(),
        ..crate::LintEnv::default()
    };
    let (mut passed, mut failed) = (0, 0);
    for (index, case) in file.cases.iter().enumerate() {
        if args
            .only
            .as_ref()
            .is_some_and(|o| !case.name.contains(o.as_str()))
        {
            continue;
        }
        // A pipeline per case: cases share no idempotency state or batch.
        let built = match build_with::<S>(
            config,
            &|n| env.get(n),
            Reach::Offline {
                endpoint: file.credential_endpoint.as_deref(),
            },
        ) {
            Ok(b) => b,
            Err(e) => return bad(format!("config: {}", crate::unprefixed(&e))),
        };
        let raw = match case.raw(index) {
            Ok(r) => r,
            Err(e) => return bad(format!("cases: case {:?}: {e}", case.name)),
        };
        recorder.start(&case.answers);
        let outcome = built.pipeline.process(&raw).await;
        drop(built);
        let sent = recorder.sent();
        let wrong = case.judge(&outcome, &sent);
        if wrong.is_empty() {
            passed += 1;
            println!("ok   {}", case.name);
        } else {
            failed += 1;
            println!("FAIL {}", case.name);
            for w in &wrong {
                println!("     {w}");
            }
            print!("{}", show(&sent));
        }
    }
    for name in env
        .missing
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        println!("warn ${{{name}}} is set neither in [env] nor here: tested with a stand-in value");
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
