//! The connector: one event and one route's action → one record operation.
//! Upserts share sObject Collections calls through a batcher per object and
//! external id field; each record's result is its own event's outcome.

use crate::client::Client;
use crate::config::{Action, LIMITS, Operation, Target};
use crate::error::from_record;
use crate::limits::Limits;
use gluefleet_core::auth::Credential;
use gluefleet_core::batch::{BatchSettings, Batcher, Fault, FlushResult};
use gluefleet_core::mapping::fields_of;
use gluefleet_core::template::segment;
use gluefleet_core::{ConfigError, Connector, ConnectorError, Delivered, Request};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The HTTP timeout of one Collections call: only a backstop, since the
/// batcher cuts every call off at the earliest deadline of its records.
const BATCH_TIMEOUT: Duration = Duration::from_secs(60);

type RecordBatcher = Batcher<(Value, Credential), Value>;

/// The Salesforce connector.
#[derive(Debug)]
pub struct SalesforceConnector {
    client: Arc<Client>,
    batch: BatchSettings,
    batchers: Mutex<HashMap<(String, String), RecordBatcher>>,
    /// Shared by every batcher: set once one of them died.
    fault: Fault,
    used: Mutex<std::collections::BTreeSet<(String, Option<String>)>>,
}

impl SalesforceConnector {
    /// Builds the connector from `[target]`.
    pub fn new(target: Target, http: reqwest::Client) -> Result<Self, ConfigError> {
        target.validate()?;
        let batch = target.batch.settings(&LIMITS)?;
        let limits = Limits::new(
            target.soft_limit,
            target.hard_limit,
            target.soft_delay,
            target.limit_backoff,
        );
        let client = Arc::new(
            Client::new(
                http,
                target.api_version.clone(),
                target.instance_url.clone(),
                limits,
            )
            .trusting(target.instance_domains.clone()),
        );
        Ok(Self {
            client,
            batch,
            batchers: Mutex::new(HashMap::new()),
            fault: Fault::new(),
            used: Mutex::default(),
        })
    }

    /// Notes an object (and external id field) a route uses, for `check`.
    pub fn uses(&self, sobject: &str, external_id_field: Option<&str>) {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((sobject.to_owned(), external_id_field.map(str::to_owned)));
    }

    /// The org's API usage as last reported: (used, daily limit).
    pub fn api_usage(&self) -> (u64, u64) {
        self.client.limits.usage()
    }

    /// Requests sent to the org.
    pub fn requests(&self) -> u64 {
        self.client.requests()
    }

    fn batcher(&self, sobject: &str, field: &str) -> RecordBatcher {
        let mut map = self.batchers.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((sobject.to_owned(), field.to_owned()))
            .or_insert_with(|| {
                let client = self.client.clone();
                let path = format!("/composite/sobjects/{sobject}/{field}");
                Batcher::spawn_with_fault(
                    self.batch.clone(),
                    self.fault.clone(),
                    move |items: Vec<(Value, Credential)>| {
                        let client = client.clone();
                        let path = path.clone();
                        async move { upsert_collection(&client, &path, items).await }
                    },
                )
            })
            .clone()
    }
}

/// One Collections upsert: `allOrNone = false`, so each record stands alone.
async fn upsert_collection(
    client: &Client,
    path: &str,
    items: Vec<(Value, Credential)>,
) -> FlushResult<Value> {
    let n = items.len();
    // Every item carries the credential its attempt got: send the newest.
    let credential = Credential::newest(items.iter().map(|(_, c)| c)).cloned();
    let records: Vec<Value> = items.into_iter().map(|(r, _)| r).collect();
    let body = json!({ "allOrNone": false, "records": records });
    let answer = client
        .send(
            credential.as_ref(),
            reqwest::Method::PATCH,
            path,
            Some(&body),
            BATCH_TIMEOUT,
        )
        .await?;
    let results = match answer.json() {
        Value::Array(results) => results,
        _ => Vec::new(),
    };
    if results.len() != n {
        return Err(ConnectorError::transient(format!(
            "PATCH {path} answered {} results for {n} records",
            results.len()
        )));
    }
    Ok(results.into_iter().map(Ok).collect())
}

/// Records the record's id (and `created`, when Salesforce says) for the
/// route's result event: from the answer's body, else the id the route named.
fn record_id(answer: &gluefleet_core::Answer, body: &Value, named: Option<&str>) {
    match body["id"].as_str().or(named) {
        Some(id) => answer.record("id", id),
        None => return,
    }
    if let Some(created) = body["created"].as_bool() {
        answer.record("created", created);
    }
}

impl Connector for SalesforceConnector {
    type Action = Action;

    const NAME: &'static str = "salesforce";

    async fn call(&self, r: Request<'_, Action>) -> Result<Delivered, ConnectorError> {
        let a = &r.route.action;
        let obj = &a.sobject;
        match a.operation {
            Operation::Upsert => {
                let Some((field, template)) = &a.external_id else {
                    return Err(ConnectorError::permanent("upsert without an external id"));
                };
                let value = template.render_with(r.event, |v, _| Ok(v.to_owned()))?;
                let mut fields = fields_of(a.fields.as_ref(), r.event, "record")?;
                // The external id travels in the URL (single) or as a field (Collections).
                fields.remove(field);
                let what = format!("{obj} {field}={value}");
                if a.batch {
                    let mut record = fields;
                    record.insert("attributes".into(), json!({ "type": obj }));
                    record.insert(field.clone(), Value::String(value.clone()));
                    let credential = r.credential.cloned().ok_or_else(|| {
                        ConnectorError::permanent("no credential: configure [auth]")
                    })?;
                    let record = Value::Object(record);
                    let size = record.to_string().len();
                    let result = self
                        .batcher(obj, field)
                        .submit((record, credential), Some(value), size, r.deadline)
                        .await?;
                    return if result["success"].as_bool() == Some(true) {
                        record_id(r.answer, &result, None);
                        Ok(Delivered::Applied)
                    } else {
                        let err = from_record(&result, &what);
                        if err.is_rate_limited() {
                            self.client.limits.exceeded();
                        }
                        Err(err)
                    };
                }
                let path = format!("/sobjects/{obj}/{field}/{}", segment(&value));
                let answer = self
                    .client
                    .send(
                        r.credential,
                        reqwest::Method::PATCH,
                        &path,
                        Some(&Value::Object(fields)),
                        r.timeout,
                    )
                    .await?;
                // 201 with the id when it created the record; an update
                // answers 204 (or 200) and the id may be absent.
                record_id(r.answer, &answer.json(), None);
                Ok(Delivered::Applied)
            }
            Operation::Create => {
                let fields = fields_of(a.fields.as_ref(), r.event, "record")?;
                let answer = self
                    .client
                    .send(
                        r.credential,
                        reqwest::Method::POST,
                        &format!("/sobjects/{obj}"),
                        Some(&Value::Object(fields)),
                        r.timeout,
                    )
                    .await?;
                record_id(r.answer, &answer.json(), None);
                Ok(Delivered::Applied)
            }
            Operation::Update | Operation::Delete => {
                let Some(id) = &a.id else {
                    return Err(ConnectorError::permanent("update/delete without an id"));
                };
                let id = id.render(r.event)?;
                let path = format!("/sobjects/{obj}/{id}");
                if a.operation == Operation::Update {
                    let fields = fields_of(a.fields.as_ref(), r.event, "record")?;
                    self.client
                        .send(
                            r.credential,
                            reqwest::Method::PATCH,
                            &path,
                            Some(&Value::Object(fields)),
                            r.timeout,
                        )
                        .await?;
                    record_id(r.answer, &Value::Null, Some(&id));
                    return Ok(Delivered::Applied);
                }
                match self
                    .client
                    .send(
                        r.credential,
                        reqwest::Method::DELETE,
                        &path,
                        None,
                        r.timeout,
                    )
                    .await
                {
                    Ok(_) => Ok(Delivered::Applied),
                    Err(e) if e.http_status() == Some(404) => Ok(Delivered::AlreadyDone),
                    Err(e) => Err(e),
                }
            }
        }
    }

    fn broken(&self) -> impl std::future::Future<Output = String> + Send {
        self.fault.wait()
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        let (used, max) = self.api_usage();
        let app = self.client.limits.app_usage().unwrap_or_default().usage;
        vec![
            ("target_requests", self.requests()),
            ("api_usage", used),
            ("api_limit", max),
            ("api_app_usage", app.used),
            ("api_app_limit", app.max),
        ]
    }

    /// The instance offers the API version, and every object the routes use
    /// exists, with its external id field marked as one.
    async fn check(&self, credential: Option<&Credential>) -> Result<String, ConnectorError> {
        let mut report = vec![self.client.probe(credential).await?];
        let mut by_object: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (sobject, field) in self.used.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            by_object
                .entry(sobject.clone())
                .or_default()
                .extend(field.clone());
        }
        // One describe per object (each costs an API call), whatever the
        // routes use it for.
        for (sobject, wanted) in by_object {
            let path = format!("/sobjects/{sobject}/describe");
            let d = self
                .client
                .send(
                    credential,
                    reqwest::Method::GET,
                    &path,
                    None,
                    Duration::from_secs(30),
                )
                .await?;
            let described = d.json();
            let fields = described["fields"].as_array().cloned().unwrap_or_default();
            for f in &wanted {
                match fields
                    .iter()
                    .find(|x| x["name"].as_str() == Some(f.as_str()))
                {
                    Some(x) if x["externalId"].as_bool() == Some(true) => {}
                    Some(_) => {
                        return Err(ConnectorError::permanent(format!(
                            "{sobject}.{f} exists but is not an external id field"
                        )));
                    }
                    None => {
                        return Err(ConnectorError::permanent(format!(
                            "{sobject} has no field {f}"
                        )));
                    }
                }
            }
            report.push(if wanted.is_empty() {
                format!("{sobject} has {} fields", fields.len())
            } else {
                format!("{sobject}.{} is an external id", wanted.join(", "))
            });
        }
        Ok(report.join("; "))
    }
}
