//! The connector: one event and one route's action → the Workspace call,
//! acting as the route's subject (domain-wide delegation: the credential
//! the pipeline hands over was obtained for that user).

use crate::client::{Call, Client, segment};
use crate::config::{Action, Api, Mail, OnConflict, Target};
use crate::error::{Kind, Said, from_answer, read};
use crate::sheets::{self, Row};
use crate::{ids, message};
use gluefleet_core::auth::Credential;
use gluefleet_core::batch::{Batcher, VendorLimits};
use gluefleet_core::event::Event;
use gluefleet_core::mapping::{Mapping, fields_of};
use gluefleet_core::template::Template;
use gluefleet_core::{ConfigError, Connector, ConnectorError, Delivered, Request};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Sheets' batching limits: `values.append` takes any number of rows, but
/// a request body is best kept well under Sheets' 2 MB recommendation, and
/// 200 rows per flush keeps 1,000 events to a handful of calls.
pub const LIMITS: VendorLimits = VendorLimits {
    max_items: 1000,
    max_bytes: 2 * 1024 * 1024,
    default_items: 200,
    default_linger: Duration::from_millis(50),
    default_in_flight: 2,
};

/// The Workspace connector.
#[derive(Debug)]
pub struct WorkspaceConnector {
    client: Arc<Client>,
    batcher: Batcher<Row, Delivered>,
    check_as: Vec<String>,
    check_spreadsheet: Mutex<Option<String>>,
    apis: Mutex<BTreeSet<Api>>,
}

/// A template rendered as plain text: header values, ids, ranges. Each goes
/// where its own encoding applies (a path segment, a header, a JSON string).
fn text(t: &Template, event: &Event) -> Result<String, ConnectorError> {
    t.render_with(event, |value, _| Ok(value.to_owned()))
}

/// A jq mapping that must give a string (a mail body).
fn string_of(m: &Mapping, event: &Event, what: &str) -> Result<String, ConnectorError> {
    match m.apply_event(event)? {
        Value::String(s) => Ok(s),
        other => Err(ConnectorError::permanent(format!(
            "{what}: the mapping gave {}, expected a string",
            kind(&other)
        ))),
    }
}

/// A jq mapping that must give an array (a row of cells).
fn row_of(m: &Mapping, event: &Event) -> Result<Vec<Value>, ConnectorError> {
    match m.apply_event(event)? {
        Value::Array(cells) if !cells.is_empty() => Ok(cells),
        other => Err(ConnectorError::permanent(format!(
            "row: the mapping gave {}, expected a non-empty array of cells",
            kind(&other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(a) if a.is_empty() => "an empty array",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// True when this may not be the first time this event is delivered: a
/// retry within the delivery, or a redelivery (Pub/Sub counts attempts
/// only with a dead-letter policy; without the count, assume the worst).
fn maybe_repeated<A>(r: &Request<'_, A>) -> bool {
    r.attempt > 1 || r.event.delivery_attempt != Some(1)
}

impl WorkspaceConnector {
    /// Builds the connector from `[target]`.
    pub fn new(target: Target, http: reqwest::Client) -> Result<Self, ConfigError> {
        target.unknown.check("target")?;
        let settings = target.batch.settings(&LIMITS)?;
        let client = Arc::new(Client::new(
            target.api_root.as_deref(),
            target.allow_insecure_http,
            http,
        )?);
        for s in &target.check_as {
            if s.trim().is_empty() || s.chars().any(char::is_whitespace) {
                return Err(ConfigError::setting(
                    "target.check_as",
                    format!("target.check_as: {s:?} is not a user's email"),
                ));
            }
        }
        let flush_client = client.clone();
        let batcher = Batcher::spawn(settings, move |rows: Vec<Row>| {
            sheets::flush(flush_client.clone(), rows)
        });
        Ok(Self {
            client,
            batcher,
            check_as: target.check_as,
            check_spreadsheet: Mutex::new(target.check_spreadsheet),
            apis: Mutex::new(BTreeSet::new()),
        })
    }

    /// Notes what a route calls, for `check`.
    pub fn note(&self, action: &Action) {
        let mut apis = self.apis.lock().unwrap_or_else(|p| p.into_inner());
        apis.insert(action.api());
        if let Action::SheetsAppend { spreadsheet, .. } | Action::SheetsUpdate { spreadsheet, .. } =
            action
            && !spreadsheet.as_str().contains('{')
        {
            let mut check = self
                .check_spreadsheet
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            check.get_or_insert_with(|| spreadsheet.as_str().to_owned());
        }
    }

    async fn send(&self, call: Call<'_>, kind: Kind) -> Result<Said, ConnectorError> {
        let answer = self.client.send(call).await?;
        Ok(read(kind, &answer))
    }

    async fn sheets_append(&self, r: &Request<'_, Action>) -> Result<Delivered, ConnectorError> {
        let Action::SheetsAppend {
            spreadsheet,
            range,
            row,
            value_input,
            key_column,
        } = &r.route.action
        else {
            return Err(ConnectorError::permanent("not a sheets_append route"));
        };
        let cells = row_of(row, r.event)?;
        let key = match key_column {
            None => None,
            Some(k) => Some(cells.get(k.index).and_then(sheets::key_text).ok_or_else(|| {
                ConnectorError::permanent(format!(
                    "row: the key column {} (cell {} of the row) is empty; a row needs its key there",
                    k.letters,
                    k.index + 1
                ))
            })?),
        };
        let table = sheets::table(
            text(spreadsheet, r.event)?,
            text(range, r.event)?,
            *value_input,
            key_column.as_ref(),
            r.subject,
        );
        let size = serde_json::to_vec(&cells).map_or(0, |b| b.len());
        let batch_key = key.as_ref().map(|k| {
            format!(
                "{}\u{0}{}\u{0}{k}",
                table.spreadsheet,
                table.key_column.as_deref().unwrap_or_default()
            )
        });
        self.batcher
            .submit(
                Row {
                    table,
                    cells,
                    key,
                    credential: r.credential.cloned(),
                    deadline: r.deadline,
                },
                batch_key,
                size,
                r.deadline,
            )
            .await
    }

    async fn sheets_update(&self, r: &Request<'_, Action>) -> Result<Delivered, ConnectorError> {
        let Action::SheetsUpdate {
            spreadsheet,
            range,
            row,
            value_input,
        } = &r.route.action
        else {
            return Err(ConnectorError::permanent("not a sheets_update route"));
        };
        let range = text(range, r.event)?;
        let body =
            json!({ "range": range, "majorDimension": "ROWS", "values": [row_of(row, r.event)?] });
        let call = Call {
            method: http::Method::PUT,
            api: Api::Sheets,
            path: format!(
                "/v4/spreadsheets/{}/values/{}",
                segment(&text(spreadsheet, r.event)?),
                segment(&range)
            ),
            query: vec![("valueInputOption", value_input.as_str().into())],
            body: Some(&body),
            credential: r.credential,
            timeout: r.timeout,
        };
        done(self.send(call, Kind::Plain).await?)
    }

    async fn gmail_send(
        &self,
        r: &Request<'_, Action>,
        mail: &Mail,
    ) -> Result<Delivered, ConnectorError> {
        let message_id = ids::message_id(r.idempotency_key);
        if maybe_repeated(r) && self.already_sent(r, &message_id).await? {
            return Ok(Delivered::AlreadyDone);
        }
        let to = text(&mail.to, r.event)?;
        let cc = mail.cc.as_ref().map(|c| text(c, r.event)).transpose()?;
        let subject = text(&mail.subject, r.event)?;
        let body_text = mail
            .text
            .as_ref()
            .map(|m| string_of(m, r.event, "text"))
            .transpose()?;
        let body_html = mail
            .html
            .as_ref()
            .map(|m| string_of(m, r.event, "html"))
            .transpose()?;
        let headers = mail
            .headers
            .iter()
            .map(|(name, t)| Ok((name.clone(), text(t, r.event)?)))
            .collect::<Result<Vec<_>, ConnectorError>>()?;
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let built = message::build(&message::Parts {
            from: r.subject,
            to: &to,
            cc: cc.as_deref(),
            subject: &subject,
            message_id: &message_id,
            date: &date,
            text: body_text.as_deref(),
            html: body_html.as_deref(),
            headers: &headers,
        })
        .map_err(|e| ConnectorError::permanent(format!("gmail_send: {e}")))?;
        let body = json!({ "raw": message::raw(&built) });
        let call = Call {
            method: http::Method::POST,
            api: Api::Gmail,
            path: "/gmail/v1/users/me/messages/send".into(),
            query: Vec::new(),
            body: Some(&body),
            credential: r.credential,
            timeout: r.timeout,
        };
        done(self.send(call, Kind::Plain).await?)
    }

    /// Looks for the mail this event would send, by its Message-ID, among
    /// the acting user's messages.
    async fn already_sent(
        &self,
        r: &Request<'_, Action>,
        message_id: &str,
    ) -> Result<bool, ConnectorError> {
        self.client.count_gmail_search();
        let answer = self
            .client
            .send(Call {
                method: http::Method::GET,
                api: Api::Gmail,
                path: "/gmail/v1/users/me/messages".into(),
                query: vec![
                    ("q", format!("rfc822msgid:{message_id}")),
                    ("maxResults", "1".into()),
                    ("includeSpamTrash", "true".into()),
                ],
                body: None,
                credential: r.credential,
                timeout: r.timeout,
            })
            .await?;
        if !answer.is_success() {
            return Err(from_answer(&answer));
        }
        Ok(answer.json()["messages"]
            .as_array()
            .is_some_and(|m| !m.is_empty()))
    }

    fn event_id(r: &Request<'_, Action>, key: Option<&Template>) -> Result<String, ConnectorError> {
        let key = match key {
            Some(t) => text(t, r.event)?,
            None => r.idempotency_key.to_owned(),
        };
        Ok(ids::calendar_event_id(&key))
    }

    async fn calendar(&self, r: &Request<'_, Action>) -> Result<Delivered, ConnectorError> {
        let (method, calendar, id, body, updates, kind) = match &r.route.action {
            Action::CalendarInsert {
                calendar,
                event,
                event_key,
                send_updates,
            } => {
                let id = Self::event_id(r, event_key.as_ref())?;
                let mut fields = fields_of(Some(event), r.event, "event")?;
                fields.insert("id".into(), Value::String(id));
                (
                    http::Method::POST,
                    calendar,
                    None,
                    Some(Value::Object(fields)),
                    send_updates,
                    Kind::CalendarInsert,
                )
            }
            Action::CalendarPatch {
                calendar,
                event,
                event_key,
                send_updates,
            } => (
                http::Method::PATCH,
                calendar,
                Some(Self::event_id(r, Some(event_key))?),
                Some(Value::Object(fields_of(Some(event), r.event, "event")?)),
                send_updates,
                Kind::Plain,
            ),
            Action::CalendarDelete {
                calendar,
                event_key,
                send_updates,
            } => (
                http::Method::DELETE,
                calendar,
                Some(Self::event_id(r, Some(event_key))?),
                None,
                send_updates,
                Kind::CalendarDelete,
            ),
            _ => return Err(ConnectorError::permanent("not a calendar route")),
        };
        let mut path = format!(
            "/calendar/v3/calendars/{}/events",
            segment(&text(calendar, r.event)?)
        );
        if let Some(id) = &id {
            path.push('/');
            path.push_str(id);
        }
        let call = Call {
            method,
            api: Api::Calendar,
            path,
            query: updates
                .iter()
                .map(|u| ("sendUpdates", u.as_str().to_owned()))
                .collect(),
            body: body.as_ref(),
            credential: r.credential,
            timeout: r.timeout,
        };
        done(self.send(call, kind).await?)
    }

    async fn directory(&self, r: &Request<'_, Action>) -> Result<Delivered, ConnectorError> {
        match &r.route.action {
            Action::DirectoryInsert { user, on_conflict } => {
                let fields = fields_of(Some(user), r.event, "user")?;
                let body = Value::Object(fields);
                let call = Call {
                    method: http::Method::POST,
                    api: Api::Directory,
                    path: "/admin/directory/v1/users".into(),
                    query: Vec::new(),
                    body: Some(&body),
                    credential: r.credential,
                    timeout: r.timeout,
                };
                match self.send(call, Kind::DirectoryInsert).await? {
                    Said::Exists if *on_conflict == OnConflict::Update => {
                        let email = body["primaryEmail"].as_str().ok_or_else(|| {
                            ConnectorError::permanent("user: the mapping gave no primaryEmail")
                        })?;
                        let mut update = body.clone();
                        if let Some(o) = update.as_object_mut() {
                            // The password is the new user's; an existing
                            // one keeps theirs.
                            o.remove("password");
                            o.remove("hashFunction");
                        }
                        let call = Call {
                            method: http::Method::PUT,
                            api: Api::Directory,
                            path: format!("/admin/directory/v1/users/{}", segment(email)),
                            query: Vec::new(),
                            body: Some(&update),
                            credential: r.credential,
                            timeout: r.timeout,
                        };
                        done(self.send(call, Kind::DirectoryUpdate).await?)
                    }
                    Said::Exists => Ok(Delivered::AlreadyDone),
                    said => done(said),
                }
            }
            Action::DirectoryUpdate { user_key, user } => {
                let body = Value::Object(fields_of(Some(user), r.event, "user")?);
                let call = Call {
                    method: http::Method::PUT,
                    api: Api::Directory,
                    path: format!(
                        "/admin/directory/v1/users/{}",
                        segment(&text(user_key, r.event)?)
                    ),
                    query: Vec::new(),
                    body: Some(&body),
                    credential: r.credential,
                    timeout: r.timeout,
                };
                done(self.send(call, Kind::DirectoryUpdate).await?)
            }
            Action::DirectoryDelete { user_key } => {
                let call = Call {
                    method: http::Method::DELETE,
                    api: Api::Directory,
                    path: format!(
                        "/admin/directory/v1/users/{}",
                        segment(&text(user_key, r.event)?)
                    ),
                    query: Vec::new(),
                    body: None,
                    credential: r.credential,
                    timeout: r.timeout,
                };
                done(self.send(call, Kind::DirectoryDelete).await?)
            }
            _ => Err(ConnectorError::permanent("not a directory route")),
        }
    }

    /// One read-only call of `api`, as the credential's user.
    async fn probe(
        &self,
        api: Api,
        credential: Option<&Credential>,
    ) -> Result<String, ConnectorError> {
        let (path, query): (String, Vec<(&'static str, String)>) = match api {
            Api::Sheets => {
                let Some(sheet) = self
                    .check_spreadsheet
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                else {
                    return Ok("sheets: not read (the spreadsheet comes from each event; set target.check_spreadsheet)".into());
                };
                (
                    format!(
                        "/v4/spreadsheets/{}/values/{}",
                        segment(&sheet),
                        segment("A1")
                    ),
                    Vec::new(),
                )
            }
            Api::Gmail => ("/gmail/v1/users/me/profile".into(), Vec::new()),
            // `events.list` of the user's own calendar: the `calendar.events`
            // scope allows it, where `calendarList.list` needs `calendar`.
            Api::Calendar => (
                "/calendar/v3/calendars/primary/events".into(),
                vec![("maxResults", "1".into())],
            ),
            Api::Directory => (
                "/admin/directory/v1/users".into(),
                vec![
                    ("customer", "my_customer".into()),
                    ("maxResults", "1".into()),
                ],
            ),
        };
        let answer = self
            .client
            .send(Call {
                method: http::Method::GET,
                api,
                path: path.clone(),
                query,
                body: None,
                credential,
                timeout: Duration::from_secs(10),
            })
            .await?;
        if answer.is_success() {
            Ok(format!("{api:?} GET {path} answered {}", answer.status))
        } else {
            Err(from_answer(&answer))
        }
    }
}

/// A call's reading as the connector's result.
fn done(said: Said) -> Result<Delivered, ConnectorError> {
    match said {
        Said::Done => Ok(Delivered::Applied),
        Said::AlreadyDone | Said::Exists => Ok(Delivered::AlreadyDone),
        Said::Failed(e) => Err(e),
    }
}

impl Connector for WorkspaceConnector {
    type Action = Action;

    const NAME: &'static str = "workspace";

    async fn call(&self, r: Request<'_, Action>) -> Result<Delivered, ConnectorError> {
        match &r.route.action {
            Action::SheetsAppend { .. } => self.sheets_append(&r).await,
            Action::SheetsUpdate { .. } => self.sheets_update(&r).await,
            Action::GmailSend(mail) => self.gmail_send(&r, mail).await,
            Action::CalendarInsert { .. }
            | Action::CalendarPatch { .. }
            | Action::CalendarDelete { .. } => self.calendar(&r).await,
            Action::DirectoryInsert { .. }
            | Action::DirectoryUpdate { .. }
            | Action::DirectoryDelete { .. } => self.directory(&r).await,
        }
    }

    /// Every call but an append without a key column can be repeated
    /// safely: updates and deletes by nature, Calendar inserts by their
    /// derived id (a repeat answers 409), Directory inserts by the primary
    /// email (409), Sheets appends with a key column and Gmail sends by
    /// looking first (the key column; `rfc822msgid:`).
    fn is_idempotent(&self, action: &Action) -> bool {
        !matches!(
            action,
            Action::SheetsAppend {
                key_column: None,
                ..
            }
        )
    }

    /// A mail cannot be recalled and Gmail takes no id to refuse a second
    /// one: the store's record of sent keys is the first line of defence
    /// (the `rfc822msgid:` search only covers a cut-off send's retry).
    fn requires_idempotency(&self, action: &Action) -> bool {
        matches!(action, Action::GmailSend(_))
    }

    fn broken(&self) -> impl std::future::Future<Output = String> + Send {
        self.batcher.fault().wait()
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        self.client.stats().to_vec()
    }

    fn check_subjects(&self) -> Vec<String> {
        self.check_as.clone()
    }

    async fn check(&self, credential: Option<&Credential>) -> Result<String, ConnectorError> {
        let apis: Vec<Api> = self
            .apis
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        let mut lines = Vec::with_capacity(apis.len());
        for api in apis {
            lines.push(self.probe(api, credential).await?);
        }
        if lines.is_empty() {
            return Ok("no route calls a Workspace API".into());
        }
        Ok(lines.join("; "))
    }
}
