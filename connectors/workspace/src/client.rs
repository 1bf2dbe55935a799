//! Requests to the Workspace APIs, through the core's HTTP edge: the edge
//! adds the credential and the attempt's timeout, classifies transport
//! errors and counts requests. No retries here: the core's pipeline owns
//! them.
//!
//! Where each API lives, as its Discovery document says (`rootUrl` +
//! `servicePath`), and the paths below it:
//!
//! | API | root | paths |
//! |---|---|---|
//! | Sheets | `https://sheets.googleapis.com` | `/v4/spreadsheets/{id}/values/{range}[:append]` |
//! | Gmail | `https://gmail.googleapis.com` | `/gmail/v1/users/me/messages[/send]`, `/gmail/v1/users/me/profile` |
//! | Calendar | `https://www.googleapis.com` | `/calendar/v3/calendars/{id}/events[/{eventId}]`, `/calendar/v3/users/me/calendarList` |
//! | Directory | `https://admin.googleapis.com` | `/admin/directory/v1/users[/{userKey}]` |

use crate::config::Api;
use gluefleet_core::auth::Credential;
use gluefleet_core::http::{Answer, Edge, Outgoing, checked_url};
use gluefleet_core::{ConfigError, ConnectorError};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One value as one path segment (a range's `!` and `:` and a calendar
/// id's `@` included): the core's rule.
pub use gluefleet_core::template::segment;

/// The Workspace APIs.
#[derive(Debug)]
pub struct Client {
    edge: Edge,
    sheets: String,
    gmail: String,
    calendar: String,
    directory: String,
    sheets_reads: AtomicU64,
    gmail_searches: AtomicU64,
}

/// One request.
#[derive(Debug)]
pub struct Call<'a> {
    /// Method.
    pub method: http::Method,
    /// Which API.
    pub api: Api,
    /// Encoded path below the API's root (starts with `/`).
    pub path: String,
    /// Query parameters.
    pub query: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: Option<&'a Value>,
    /// The attempt's credential.
    pub credential: Option<&'a Credential>,
    /// The attempt's time left.
    pub timeout: Duration,
}

impl Client {
    /// A client for the APIs' Google hosts, or for `api_root` (one host
    /// serving them all, a sandbox double), held to the core's URL rule.
    pub fn new(
        api_root: Option<&str>,
        allow_insecure_http: bool,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let root = |default: &str| -> Result<String, ConfigError> {
            let url = api_root.unwrap_or(default);
            let checked = checked_url("target.api_root", url, allow_insecure_http.into())?;
            if checked.query().is_some() || checked.fragment().is_some() {
                return Err(ConfigError::setting(
                    "target.api_root",
                    format!("target.api_root {url:?} must have no query or fragment"),
                ));
            }
            Ok(url.trim_end_matches('/').to_owned())
        };
        Ok(Self {
            edge: Edge::new(http),
            sheets: root("https://sheets.googleapis.com")?,
            gmail: root("https://gmail.googleapis.com")?,
            calendar: root("https://www.googleapis.com")?,
            directory: root("https://admin.googleapis.com")?,
            sheets_reads: AtomicU64::new(0),
            gmail_searches: AtomicU64::new(0),
        })
    }

    fn root(&self, api: Api) -> &str {
        match api {
            Api::Sheets => &self.sheets,
            Api::Gmail => &self.gmail,
            Api::Calendar => &self.calendar,
            Api::Directory => &self.directory,
        }
    }

    /// Sends one request; any answer comes back, only a missing one errs.
    pub async fn send(&self, call: Call<'_>) -> Result<Answer, ConnectorError> {
        let what = format!("{} {}", call.method, call.path);
        let mut request = self
            .edge
            .request(call.method, format!("{}{}", self.root(call.api), call.path))
            .header(http::header::ACCEPT, "application/json");
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = call.body {
            request = request.json(body);
        }
        self.edge
            .send(Outgoing {
                what,
                request,
                credential: call.credential,
                timeout: call.timeout,
            })
            .await
    }

    /// Counts a read of a Sheets key column (for the summary and benchmarks).
    pub fn count_sheets_read(&self) {
        self.sheets_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a Gmail search for a Message-ID before a resend.
    pub fn count_gmail_search(&self) {
        self.gmail_searches.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests sent so far, and of those the key-column reads and the
    /// Message-ID searches.
    pub fn stats(&self) -> [(&'static str, u64); 3] {
        [
            ("target_requests", self.edge.requests()),
            (
                "sheets_key_reads",
                self.sheets_reads.load(Ordering::Relaxed),
            ),
            (
                "gmail_searches",
                self.gmail_searches.load(Ordering::Relaxed),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_root_is_held_to_the_url_rule() {
        let http = reqwest::Client::new();
        let google = Client::new(None, false, http.clone()).expect("Google's hosts");
        assert_eq!(google.root(Api::Calendar), "https://www.googleapis.com");
        assert_eq!(google.root(Api::Sheets), "https://sheets.googleapis.com");
        let local =
            Client::new(Some("http://127.0.0.1:8080/"), false, http.clone()).expect("this machine");
        assert_eq!(local.root(Api::Directory), "http://127.0.0.1:8080");
        let e = Client::new(Some("http://workspace.example"), false, http.clone())
            .expect_err("plain http");
        assert_eq!(e.setting_name(), Some("target.api_root"));
        assert!(Client::new(Some("https://x.example/?a=1"), false, http).is_err());
    }

    #[test]
    fn a_range_is_one_segment() {
        assert_eq!(segment("Orders!A:C"), "Orders%21A%3AC");
        assert_eq!(segment("'My Sheet'!A1"), "%27My%20Sheet%27%21A1");
        assert_eq!(segment("team@example.com"), "team%40example.com");
    }
}
