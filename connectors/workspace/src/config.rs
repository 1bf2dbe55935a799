//! `[target]` and each route's `action` for the Workspace connector.
//!
//! Settings are checked here, when the config loads: a worker with a bad
//! setting stops at start (exit 64) with an error naming it.

use gluefleet_core::ConfigError;
use gluefleet_core::batch::BatchConfig;
use gluefleet_core::config::Unknown;
use gluefleet_core::mapping::Mapping;
use gluefleet_core::template::Template;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[target]`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Target {
    /// One root URL for every Workspace API (a sandbox double serves them
    /// all on one port). Default: each API's own Google host.
    #[serde(default)]
    pub api_root: Option<String>,
    /// Allow plain `http://` to another machine (default false). Plain http
    /// to this machine is always allowed.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// The users `check` signs in as, each calling a read-only method of
    /// every API the routes use (default: none, and `check` reads nothing).
    #[serde(default)]
    pub check_as: Vec<String>,
    /// A spreadsheet `check` reads (`values.get` of `A1`) to prove Sheets
    /// access (default: the first Sheets route's spreadsheet, when it is
    /// fixed rather than taken from the event).
    #[serde(default)]
    pub check_spreadsheet: Option<String>,
    /// Sheets appends: `max_batch` rows per `values.append` (default 200),
    /// `max_bytes`, `linger` (default 50 ms), `max_in_flight`.
    #[serde(flatten)]
    pub batch: BatchConfig,
    /// Settings no field took: refused when the connector is built.
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// How Sheets reads the values (`valueInputOption`).
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema, PartialEq, Eq, Default)]
pub enum ValueInput {
    /// As typed into the UI: `=SUM(A1:A3)` is a formula, `3/4` a date.
    #[default]
    #[serde(rename = "USER_ENTERED")]
    UserEntered,
    /// Stored as given.
    #[serde(rename = "RAW")]
    Raw,
}

impl ValueInput {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueInput::UserEntered => "USER_ENTERED",
            ValueInput::Raw => "RAW",
        }
    }
}

/// What a Directory insert does when the user exists (409).
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// The user is there: done (default).
    #[default]
    Done,
    /// Update the existing user with the mapped fields (password left out).
    Update,
}

/// A route's `action`, as written: `operation` picks the API method.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(tag = "operation", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawAction {
    /// Sheets `spreadsheets.values.append` (INSERT_ROWS): one row per event,
    /// batched into one append per flush.
    SheetsAppend {
        /// Spreadsheet id (template).
        spreadsheet: String,
        /// A1 range naming the table: `Sheet1!A:E` or `Orders` (template).
        range: String,
        /// jq filter over the event giving the row: an array of cells.
        row: Mapping,
        /// `USER_ENTERED` (default) or `RAW`.
        #[serde(default)]
        value_input: ValueInput,
        /// The column (a letter, `A`..`ZZZ`) holding each row's key: before
        /// appending, the connector reads that column and leaves out rows
        /// whose key is there, so a repeat (a redelivery after a crash, a
        /// retry after a cut-off answer) adds no second row. Without it an
        /// append is not idempotent, and a cut-off one is dead-lettered
        /// `outcome-unknown` rather than sent again.
        #[serde(default)]
        key_column: Option<String>,
    },
    /// Sheets `spreadsheets.values.update` of one computed row: idempotent.
    SheetsUpdate {
        /// Spreadsheet id (template).
        spreadsheet: String,
        /// A1 range of the row: `Sheet1!A{data.row}` (template).
        range: String,
        /// jq filter giving the row: an array of cells.
        row: Mapping,
        /// `USER_ENTERED` (default) or `RAW`.
        #[serde(default)]
        value_input: ValueInput,
    },
    /// Gmail `users.messages.send`, as the route's subject.
    GmailSend {
        /// Recipients (template; comma-separated addresses).
        to: String,
        /// Copy recipients (template).
        #[serde(default)]
        cc: Option<String>,
        /// The Subject line (template).
        subject: String,
        /// Plain-text body (jq filter giving a string).
        #[serde(default)]
        text: Option<Mapping>,
        /// HTML body (jq filter giving a string); with `text`, both go as
        /// `multipart/alternative`.
        #[serde(default)]
        html: Option<Mapping>,
        /// More headers (`Reply-To`, `X-...`): name → template.
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// Calendar `events.insert` with an id derived from `event_key`.
    CalendarInsert {
        /// Calendar id (template; `primary` is the subject's own).
        #[serde(default = "primary")]
        calendar: String,
        /// jq filter giving the Event resource (`summary`, `start`, `end`, ...).
        event: Mapping,
        /// Template of the event's own key (default: the idempotency key).
        /// The event id is derived from it, so patch and delete routes with
        /// the same key reach the same event.
        #[serde(default)]
        event_key: Option<String>,
        /// `sendUpdates`: `all`, `externalOnly` or `none` (default: Google's).
        #[serde(default)]
        send_updates: Option<SendUpdates>,
    },
    /// Calendar `events.patch` of the event with `event_key`.
    CalendarPatch {
        /// Calendar id (template).
        #[serde(default = "primary")]
        calendar: String,
        /// jq filter giving the fields to change.
        event: Mapping,
        /// Template of the event's key (as the insert route's).
        event_key: String,
        /// `sendUpdates`.
        #[serde(default)]
        send_updates: Option<SendUpdates>,
    },
    /// Calendar `events.delete`; an event already gone is done.
    CalendarDelete {
        /// Calendar id (template).
        #[serde(default = "primary")]
        calendar: String,
        /// Template of the event's key.
        event_key: String,
        /// `sendUpdates`.
        #[serde(default)]
        send_updates: Option<SendUpdates>,
    },
    /// Directory `users.insert`; the subject must be an admin.
    DirectoryInsert {
        /// jq filter giving the User (`primaryEmail`, `name`, `password`, ...).
        user: Mapping,
        /// When the user exists: `done` (default) or `update`.
        #[serde(default)]
        on_conflict: OnConflict,
    },
    /// Directory `users.update` (patch semantics: fields left out are kept,
    /// `null` clears one, arrays are replaced whole).
    DirectoryUpdate {
        /// The user's key: primary email, alias or id (template).
        user_key: String,
        /// jq filter giving the fields to change.
        user: Mapping,
    },
    /// Directory `users.delete`; a user already gone is done.
    DirectoryDelete {
        /// The user's key (template).
        user_key: String,
    },
}

fn primary() -> String {
    "primary".into()
}

/// Calendar's `sendUpdates`.
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
pub enum SendUpdates {
    /// Notify every guest.
    #[serde(rename = "all")]
    All,
    /// Notify guests outside the domain.
    #[serde(rename = "externalOnly")]
    ExternalOnly,
    /// Notify nobody.
    #[serde(rename = "none")]
    None,
}

impl SendUpdates {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SendUpdates::All => "all",
            SendUpdates::ExternalOnly => "externalOnly",
            SendUpdates::None => "none",
        }
    }
}

/// Which API an action calls (for `check` and the scopes it needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Api {
    /// Google Sheets.
    Sheets,
    /// Gmail.
    Gmail,
    /// Google Calendar.
    Calendar,
    /// Admin SDK Directory.
    Directory,
}

/// A checked action.
#[derive(Debug)]
pub enum Action {
    /// `values.append`.
    SheetsAppend {
        /// Spreadsheet id.
        spreadsheet: Template,
        /// The table's range.
        range: Template,
        /// The row mapping.
        row: Mapping,
        /// `valueInputOption`.
        value_input: ValueInput,
        /// The key column, as a 0-based index from the range's first column
        /// and its letters.
        key_column: Option<KeyColumn>,
    },
    /// `values.update`.
    SheetsUpdate {
        /// Spreadsheet id.
        spreadsheet: Template,
        /// The row's range.
        range: Template,
        /// The row mapping.
        row: Mapping,
        /// `valueInputOption`.
        value_input: ValueInput,
    },
    /// `messages.send`.
    GmailSend(Box<Mail>),
    /// `events.insert`.
    CalendarInsert {
        /// Calendar id.
        calendar: Template,
        /// The Event mapping.
        event: Mapping,
        /// The event's key, if not the idempotency key.
        event_key: Option<Template>,
        /// `sendUpdates`.
        send_updates: Option<SendUpdates>,
    },
    /// `events.patch`.
    CalendarPatch {
        /// Calendar id.
        calendar: Template,
        /// The fields mapping.
        event: Mapping,
        /// The event's key.
        event_key: Template,
        /// `sendUpdates`.
        send_updates: Option<SendUpdates>,
    },
    /// `events.delete`.
    CalendarDelete {
        /// Calendar id.
        calendar: Template,
        /// The event's key.
        event_key: Template,
        /// `sendUpdates`.
        send_updates: Option<SendUpdates>,
    },
    /// `users.insert`.
    DirectoryInsert {
        /// The User mapping.
        user: Mapping,
        /// On 409.
        on_conflict: OnConflict,
    },
    /// `users.update`.
    DirectoryUpdate {
        /// The user's key.
        user_key: Template,
        /// The fields mapping.
        user: Mapping,
    },
    /// `users.delete`.
    DirectoryDelete {
        /// The user's key.
        user_key: Template,
    },
}

/// A Gmail send, checked.
#[derive(Debug)]
pub struct Mail {
    /// Recipients.
    pub to: Template,
    /// Copy recipients.
    pub cc: Option<Template>,
    /// Subject line.
    pub subject: Template,
    /// Plain-text body.
    pub text: Option<Mapping>,
    /// HTML body.
    pub html: Option<Mapping>,
    /// Extra headers.
    pub headers: Vec<(String, Template)>,
}

/// A Sheets key column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyColumn {
    /// Its letters (`A`, `AB`).
    pub letters: String,
    /// 0-based index within the row (from the range's first column).
    pub index: usize,
}

impl Action {
    /// The API this action calls.
    pub fn api(&self) -> Api {
        match self {
            Action::SheetsAppend { .. } | Action::SheetsUpdate { .. } => Api::Sheets,
            Action::GmailSend(_) => Api::Gmail,
            Action::CalendarInsert { .. }
            | Action::CalendarPatch { .. }
            | Action::CalendarDelete { .. } => Api::Calendar,
            Action::DirectoryInsert { .. }
            | Action::DirectoryUpdate { .. }
            | Action::DirectoryDelete { .. } => Api::Directory,
        }
    }
}

/// Column letters to a 1-based number: `A` = 1, `Z` = 26, `AA` = 27.
pub fn column_number(letters: &str) -> Option<usize> {
    if letters.is_empty() || letters.len() > 3 {
        return None;
    }
    letters.chars().try_fold(0usize, |n, c| {
        c.is_ascii_alphabetic()
            .then(|| n * 26 + usize::from(c.to_ascii_uppercase() as u8 - b'A' + 1))
    })
}

/// The first column of an A1 range's cell part (`Sheet1!C2:E` → 3), or 1
/// when the range names only a sheet or starts with a placeholder.
fn first_column(range: &str) -> usize {
    let cells = range.rsplit_once('!').map_or("", |(_, c)| c);
    let letters: String = cells
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    column_number(&letters).unwrap_or(1)
}

fn template(setting: &str, text: &str) -> Result<Template, ConfigError> {
    Template::parse(text).map_err(|e| e.context(format!("action.{setting}")))
}

fn header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
        && ![
            "to",
            "cc",
            "bcc",
            "subject",
            "from",
            "message-id",
            "mime-version",
            "content-type",
            "content-transfer-encoding",
            "date",
        ]
        .contains(&name.to_ascii_lowercase().as_str())
}

impl RawAction {
    /// Checks the action; the error names the setting.
    pub fn compile(self) -> Result<Action, ConfigError> {
        Ok(match self {
            RawAction::SheetsAppend {
                spreadsheet,
                range,
                row,
                value_input,
                key_column,
            } => {
                let key_column = match key_column {
                    None => None,
                    Some(letters) => {
                        let n = column_number(&letters).ok_or_else(|| {
                            ConfigError::setting(
                                "action.key_column",
                                format!("action.key_column {letters:?} is not a column (A to ZZZ)"),
                            )
                        })?;
                        let first = first_column(&range);
                        if n < first {
                            return Err(ConfigError::setting(
                                "action.key_column",
                                format!(
                                    "action.key_column {letters:?} lies left of the range {range:?}: rows start at its first column"
                                ),
                            ));
                        }
                        Some(KeyColumn {
                            letters: letters.to_ascii_uppercase(),
                            index: n - first,
                        })
                    }
                };
                Action::SheetsAppend {
                    spreadsheet: template("spreadsheet", &spreadsheet)?,
                    range: template("range", &range)?,
                    row,
                    value_input,
                    key_column,
                }
            }
            RawAction::SheetsUpdate {
                spreadsheet,
                range,
                row,
                value_input,
            } => Action::SheetsUpdate {
                spreadsheet: template("spreadsheet", &spreadsheet)?,
                range: template("range", &range)?,
                row,
                value_input,
            },
            RawAction::GmailSend {
                to,
                cc,
                subject,
                text,
                html,
                headers,
            } => {
                if text.is_none() && html.is_none() {
                    return Err(ConfigError::setting(
                        "action.text",
                        "a gmail_send needs a body: set action.text, action.html or both",
                    ));
                }
                let headers = headers
                    .into_iter()
                    .map(|(name, value)| {
                        if !header_name_ok(&name) {
                            return Err(ConfigError::setting(
                                "action.headers",
                                format!(
                                    "action.headers: {name:?} is not a header the connector lets a route set (a valid name, not one the message itself writes)"
                                ),
                            ));
                        }
                        Ok((name.clone(), template(&format!("headers.{name}"), &value)?))
                    })
                    .collect::<Result<_, _>>()?;
                Action::GmailSend(Box::new(Mail {
                    to: template("to", &to)?,
                    cc: cc.map(|c| template("cc", &c)).transpose()?,
                    subject: template("subject", &subject)?,
                    text,
                    html,
                    headers,
                }))
            }
            RawAction::CalendarInsert {
                calendar,
                event,
                event_key,
                send_updates,
            } => Action::CalendarInsert {
                calendar: template("calendar", &calendar)?,
                event,
                event_key: event_key.map(|k| template("event_key", &k)).transpose()?,
                send_updates,
            },
            RawAction::CalendarPatch {
                calendar,
                event,
                event_key,
                send_updates,
            } => Action::CalendarPatch {
                calendar: template("calendar", &calendar)?,
                event,
                event_key: template("event_key", &event_key)?,
                send_updates,
            },
            RawAction::CalendarDelete {
                calendar,
                event_key,
                send_updates,
            } => Action::CalendarDelete {
                calendar: template("calendar", &calendar)?,
                event_key: template("event_key", &event_key)?,
                send_updates,
            },
            RawAction::DirectoryInsert { user, on_conflict } => {
                Action::DirectoryInsert { user, on_conflict }
            }
            RawAction::DirectoryUpdate { user_key, user } => Action::DirectoryUpdate {
                user_key: template("user_key", &user_key)?,
                user,
            },
            RawAction::DirectoryDelete { user_key } => Action::DirectoryDelete {
                user_key: template("user_key", &user_key)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawAction {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn actions_are_checked_when_the_config_loads() {
        let ok = raw(r#"
            operation = "sheets_append"
            spreadsheet = "sheet-1"
            range = "Orders!B:F"
            row = "[.data.id, .data.total]"
            key_column = "b"
        "#)
        .compile()
        .expect("valid");
        let Action::SheetsAppend { key_column, .. } = ok else {
            panic!("an append")
        };
        assert_eq!(
            key_column,
            Some(KeyColumn {
                letters: "B".into(),
                index: 0
            })
        );
        for (text, setting) in [
            (
                r#"operation = "sheets_append"
                   spreadsheet = "s"
                   range = "Orders!C:F"
                   row = "[]"
                   key_column = "A""#,
                "action.key_column",
            ),
            (
                r#"operation = "sheets_append"
                   spreadsheet = "s"
                   range = "Orders"
                   row = "[]"
                   key_column = "A1""#,
                "action.key_column",
            ),
            (
                r#"operation = "gmail_send"
                   to = "{data.email}"
                   subject = "Hi""#,
                "action.text",
            ),
            (
                r#"operation = "gmail_send"
                   to = "{data.email}"
                   subject = "Hi"
                   text = ".data.body"
                   headers = { Bcc = "x@example.com" }"#,
                "action.headers",
            ),
        ] {
            let e = raw(text).compile().expect_err(text);
            assert_eq!(e.setting_name(), Some(setting), "{text}: {e}");
        }
    }

    #[test]
    fn columns_count_like_a_spreadsheet() {
        assert_eq!(column_number("A"), Some(1));
        assert_eq!(column_number("z"), Some(26));
        assert_eq!(column_number("AA"), Some(27));
        assert_eq!(column_number("ZZZ"), Some(18278));
        assert_eq!(column_number("A1"), None);
        assert_eq!(column_number(""), None);
        assert_eq!(first_column("Sheet1!C2:E"), 3);
        assert_eq!(first_column("Orders"), 1);
    }

    #[test]
    fn an_unknown_operation_is_named() {
        let e = toml::from_str::<RawAction>(r#"operation = "sheets_delete""#).expect_err("unknown");
        assert!(e.to_string().contains("sheets_delete"), "{e}");
    }
}
