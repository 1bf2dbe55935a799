//! What the Workspace tests share: the testkit's Workspace double (every
//! request checked against Google's Discovery documents, domain-wide
//! delegation tokens verified), the `[auth]` that signs in to it, and the
//! pipeline in process with the real delegation provider.

#![allow(dead_code, unreachable_pub)]

use gluefleet_core::Pipeline;
use gluefleet_core::auth::TokenProvider;
use gluefleet_google::{Delegated, DelegationConfig};
use gluefleet_testkit::workspace::{WorkspaceConfig, WorkspaceDouble};
use gluefleet_workspace::{Target, WorkspaceConnector};
use std::sync::Arc;

/// Every scope the connector's four APIs need.
pub const SCOPES: &str = r#"["https://www.googleapis.com/auth/spreadsheets", "https://www.googleapis.com/auth/gmail.send", "https://www.googleapis.com/auth/gmail.readonly", "https://www.googleapis.com/auth/calendar.events", "https://www.googleapis.com/auth/admin.directory.user"]"#;

/// A double with the default domain (alice@, bob@, admin@example.com).
pub async fn double() -> WorkspaceDouble {
    WorkspaceDouble::start(WorkspaceConfig::default())
        .await
        .expect("the Workspace double starts")
}

/// The `[auth]` table signing in to `double` with its service-account key
/// (a TOML literal string holds the key file's JSON as it is).
pub fn auth_toml(double: &WorkspaceDouble, subject: Option<&str>) -> String {
    let subject = subject.map_or(String::new(), |s| format!("subject = \"{s}\"\n"));
    format!(
        "[auth]\nkind = \"google_delegated\"\nkey = '''{key}'''\ntoken_url = \"{token}\"\nscopes = {SCOPES}\n{subject}",
        key = double.service_account_key_json(),
        token = double.token_url(),
    )
}

/// The delegation provider of [`auth_toml`], in process.
pub fn provider(double: &WorkspaceDouble, subject: Option<&str>) -> Arc<Delegated> {
    let text = auth_toml(double, subject);
    let table: toml::Table = toml::from_str(&text).expect("auth parses");
    let mut auth = table["auth"].clone();
    if let Some(t) = auth.as_table_mut() {
        t.remove("kind");
    }
    let config: DelegationConfig = auth.try_into().expect("a delegation config");
    Arc::new(
        Delegated::new(&config, reqwest::Client::new(), &|_| None).expect("the provider builds"),
    )
}

/// The connector against `double`, with `extra` `[target]` lines.
pub fn connector(double: &WorkspaceDouble, extra: &str) -> WorkspaceConnector {
    let target: Target =
        toml::from_str(&format!("api_root = \"{}\"\n{extra}", double.url())).expect("target");
    WorkspaceConnector::new(target, reqwest::Client::new()).expect("the connector builds")
}

/// The pipeline in process over `routes` (`[[routes]]` TOML).
pub fn pipeline(
    double: &WorkspaceDouble,
    extra: &str,
    routes: &str,
    auth: Arc<Delegated>,
) -> Arc<Pipeline<WorkspaceConnector>> {
    let auth: Arc<dyn TokenProvider> = auth;
    gluefleet_testkit::pipeline::build(
        connector(double, extra),
        routes,
        gluefleet_workspace::RawAction::compile,
        Some(auth),
    )
}
