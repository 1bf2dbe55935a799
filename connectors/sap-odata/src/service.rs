//! The connector: one event and one route's action → OData requests.
//!
//! | operation | requests                                              | outcome |
//! |-----------|-------------------------------------------------------|---------|
//! | create    | POST (batched in `$batch` when waiting together)      | 409 → already done |
//! | update    | GET for the ETag (unless the event carries one), then PATCH (V4) / MERGE (V2) with `If-Match` | 404 → dead letter; 412 → re-read and apply once if `last_writer_wins`, else dead letter; 428 → read the ETag, once |
//! | upsert    | GET; 404 → POST, else as update                       | |
//! | delete    | GET for the ETag, DELETE with `If-Match`              | 404 → already done |

use crate::batch::{Part, PartAnswer, multipart_answers, v2_body, v4_answers, v4_body};
use crate::client::{Body, Client};
use crate::config::{Action, LIMITS, Operation, Target, Version, string_literal};
use crate::error::{from_answer, from_part};
use gluefleet_core::auth::Credential;
use gluefleet_core::batch::{Batcher, FlushResult};
use gluefleet_core::event::Event;
use gluefleet_core::http::Answer;
use gluefleet_core::mapping::fields_of;
use gluefleet_core::{ConfigError, Connector, ConnectorError, Delivered, Request};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Everything but unreserved characters and `'` is encoded inside a key.
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'\'');

/// The HTTP timeout of one `$batch`: only a backstop, since the batcher cuts
/// every request off at the earliest deadline of its parts.
const BATCH_TIMEOUT: Duration = Duration::from_secs(60);

type CreateBatcher = Batcher<(Part, Option<Credential>), PartAnswer>;

/// The SAP OData connector.
#[derive(Debug)]
pub struct SapConnector {
    client: Arc<Client>,
    batcher: Option<CreateBatcher>,
}

impl SapConnector {
    /// Builds the connector from `[target]`.
    pub fn new(target: Target) -> Result<Self, ConfigError> {
        target.validate()?;
        let settings = target.batching.settings(&LIMITS)?;
        let client = Arc::new(Client::new(&target)?);
        let batcher = target.batch.then(|| {
            let s = client.clone();
            Batcher::spawn(settings, move |items: Vec<(Part, Option<Credential>)>| {
                let s = s.clone();
                async move { send_batch(&s, items).await }
            })
        });
        Ok(Self { client, batcher })
    }

    /// OData requests sent (CSRF token fetches included).
    pub fn requests(&self) -> u64 {
        self.client.requests()
    }

    /// CSRF token fetches.
    pub fn csrf_fetches(&self) -> u64 {
        self.client.csrf_fetches()
    }
}

async fn send_batch(
    client: &Client,
    items: Vec<(Part, Option<Credential>)>,
) -> FlushResult<PartAnswer> {
    let n = items.len();
    let credential = Credential::newest(items.iter().filter_map(|(_, c)| c.as_ref())).cloned();
    let parts: Vec<Part> = items.into_iter().map(|(p, _)| p).collect();
    let body = match client.version {
        Version::V4 => Body::Json(v4_body(&parts)),
        Version::V2 => {
            let boundary = format!("batch_{:016x}", fastrand::u64(..));
            let ct = format!("multipart/mixed; boundary={boundary}");
            Body::Raw(v2_body(&parts, &boundary), ct)
        }
    };
    let answer = client
        .write(
            credential.as_ref(),
            "POST",
            "$batch",
            Some(&body),
            None,
            BATCH_TIMEOUT,
        )
        .await?;
    if !answer.is_success() {
        return Err(from_answer(&answer));
    }
    let multipart = answer
        .header(http::header::CONTENT_TYPE)
        .is_some_and(|ct| ct.contains("multipart"));
    let answers = if multipart {
        multipart_answers(&answer.body, n)
    } else {
        v4_answers(&answer.json(), n)
    };
    Ok(answers
        .into_iter()
        .map(|a| {
            a.ok_or_else(|| {
                ConnectorError::transient("the $batch answer left this part unanswered")
            })
        })
        .collect())
}

/// `Set('a')` or `Set(K1='a',K2='b')`, values quoted and encoded.
fn entity_path(
    action: &Action,
    event: &Event,
) -> Result<(String, Vec<(String, String)>), ConnectorError> {
    let mut values = Vec::new();
    for (name, t) in &action.key {
        values.push((name.clone(), t.render_with(event, |v, _| Ok(v.to_owned()))?));
    }
    let lit = |v: &str| utf8_percent_encode(&string_literal(v), KEY).to_string();
    let predicate = match values.as_slice() {
        [(_, v)] => lit(v),
        many => many
            .iter()
            .map(|(k, v)| format!("{k}={}", lit(v)))
            .collect::<Vec<_>>()
            .join(","),
    };
    Ok((format!("{}({predicate})", action.entity_set), values))
}

/// The `ETag` header, else the one in the body (V4 `@odata.etag`, V2
/// `__metadata.etag`).
fn etag_of(answer: &Answer) -> Option<String> {
    if let Some(tag) = answer.header(http::header::ETAG) {
        return Some(tag.to_owned());
    }
    let body = answer.json();
    body["@odata.etag"]
        .as_str()
        .or_else(|| body["d"]["__metadata"]["etag"].as_str())
        .map(str::to_owned)
}

fn ok_status(s: u16) -> bool {
    (200..300).contains(&s)
}

impl SapConnector {
    async fn create(
        &self,
        r: &Request<'_, Action>,
        keys: &[(String, String)],
    ) -> Result<Delivered, ConnectorError> {
        let a = &r.route.action;
        let mut body = fields_of(a.fields.as_ref(), r.event, "entity")?;
        for (k, v) in keys {
            body.entry(k.clone())
                .or_insert_with(|| Value::String(v.clone()));
        }
        let what = format!("POST {}", a.entity_set);
        match &self.batcher {
            Some(b) => {
                let part = Part {
                    method: "POST".into(),
                    url: a.entity_set.clone(),
                    body: Some(Value::Object(body)),
                    if_match: None,
                };
                let key = format!("{}{:?}", a.entity_set, keys);
                let size = part.body.as_ref().map_or(0, |b| b.to_string().len());
                let ans = b
                    .submit((part, r.credential.cloned()), Some(key), size, r.deadline)
                    .await?;
                match ans.status {
                    s if ok_status(s) => Ok(Delivered::Applied),
                    409 => Ok(Delivered::AlreadyDone),
                    s => Err(from_part(s, &ans.body, &what)),
                }
            }
            None => {
                let ans = self
                    .client
                    .write(
                        r.credential,
                        "POST",
                        &a.entity_set,
                        Some(&Body::Json(Value::Object(body))),
                        None,
                        r.timeout,
                    )
                    .await?;
                match ans.status {
                    s if ok_status(s) => Ok(Delivered::Applied),
                    409 => Ok(Delivered::AlreadyDone),
                    _ => Err(from_answer(&ans)),
                }
            }
        }
    }

    async fn read(
        &self,
        r: &Request<'_, Action>,
        path: &str,
    ) -> Result<Option<Answer>, ConnectorError> {
        let ans = self.client.read(r.credential, path, r.timeout).await?;
        match ans.status {
            404 => Ok(None),
            s if ok_status(s) => Ok(Some(ans)),
            _ => Err(from_answer(&ans)),
        }
    }

    async fn update(
        &self,
        r: &Request<'_, Action>,
        path: &str,
        known: Option<String>,
    ) -> Result<Delivered, ConnectorError> {
        let a = &r.route.action;
        let body = Body::Json(Value::Object(fields_of(
            a.fields.as_ref(),
            r.event,
            "entity",
        )?));
        let method = match self.client.version {
            Version::V2 => "MERGE",
            Version::V4 => "PATCH",
        };
        let mut etag = known;
        let mut reread = false;
        for _ in 0..3 {
            let tag = match etag.take() {
                Some(t) => t,
                None => {
                    let current = self.read(r, path).await?.ok_or_else(|| {
                        ConnectorError::permanent(format!("{} does not exist", path))
                            .with_http_status(404)
                    })?;
                    etag_of(&current).unwrap_or_else(|| "*".into())
                }
            };
            let ans = self
                .client
                .write(
                    r.credential,
                    method,
                    path,
                    Some(&body),
                    Some(&tag),
                    r.timeout,
                )
                .await?;
            match ans.status {
                s if ok_status(s) => return Ok(Delivered::Applied),
                // "Needs If-Match", or the entity changed since: read again.
                428 => continue,
                // Someone wrote between our read and our write (no event ETag),
                // or the route says the last writer wins: read again, once.
                412 if (a.last_writer_wins || a.etag.is_none()) && !reread => {
                    reread = true;
                    continue;
                }
                412 => {
                    let e = from_answer(&ans);
                    return Err(ConnectorError::permanent(format!(
                        "conflict: the entity changed since the event's version ({})",
                        e.message()
                    ))
                    .with_http_status(412));
                }
                _ => return Err(from_answer(&ans)),
            }
        }
        Err(ConnectorError::transient(format!(
            "{method} {path}: the ETag kept changing"
        )))
    }
}

impl Connector for SapConnector {
    type Action = Action;

    const NAME: &'static str = "sap-odata";

    async fn call(&self, r: Request<'_, Action>) -> Result<Delivered, ConnectorError> {
        let a = &r.route.action;
        let (path, keys) = entity_path(a, r.event)?;
        let event_etag = a
            .etag
            .as_ref()
            .map(|t| t.render_with(r.event, |v, _| Ok(v.to_owned())))
            .transpose()?;
        let done = match a.operation {
            Operation::Create => self.create(&r, &keys).await,
            Operation::Update => self.update(&r, &path, event_etag).await,
            Operation::Upsert => match self.read(&r, &path).await? {
                // Created by someone else between our read and our POST: update it.
                None => match self.create(&r, &keys).await? {
                    Delivered::AlreadyDone => self.update(&r, &path, None).await,
                    done => Ok(done),
                },
                Some(current) => {
                    self.update(&r, &path, event_etag.or_else(|| etag_of(&current)))
                        .await
                }
            },
            Operation::Delete => {
                let Some(current) = self.read(&r, &path).await? else {
                    return Ok(Delivered::AlreadyDone);
                };
                let tag = etag_of(&current).unwrap_or_else(|| "*".into());
                let ans = self
                    .client
                    .write(r.credential, "DELETE", &path, None, Some(&tag), r.timeout)
                    .await?;
                match ans.status {
                    s if ok_status(s) => Ok(Delivered::Applied),
                    404 => Ok(Delivered::AlreadyDone),
                    _ => Err(from_answer(&ans)),
                }
            }
        }?;
        // The entity's path (`A_BusinessPartner('1000')`) carries its key
        // for whoever comes next.
        r.answer.record("entity", path.as_str());
        Ok(done)
    }

    fn broken(&self) -> impl std::future::Future<Output = String> + Send {
        let fault = self.batcher.as_ref().map(|b| b.fault().clone());
        async move {
            match fault {
                Some(f) => f.wait().await,
                None => std::future::pending().await,
            }
        }
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("target_requests", self.requests()),
            ("csrf_fetches", self.csrf_fetches()),
        ]
    }

    async fn check(&self, credential: Option<&Credential>) -> Result<String, ConnectorError> {
        let ans = self
            .client
            .read(credential, "$metadata", Duration::from_secs(30))
            .await?;
        if ans.is_success() {
            Ok(format!(
                "{} $metadata answered {}",
                self.client.url(""),
                ans.status
            ))
        } else {
            Err(from_answer(&ans))
        }
    }
}
