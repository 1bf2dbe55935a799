//! The conformance suite (crates/testkit/src/conformance, docs/CONFORMANCE.md)
//! against `gluefleet-workspace`: the Workspace double behind the suite's
//! fault proxy, each event a Calendar insert keyed by its tag, signed in by
//! domain-wide delegation (tokens straight from the double, so the 401 case
//! counts real refreshes).

mod common;

use gluefleet_testkit::TestkitError;
use gluefleet_testkit::conformance::{FaultProxy, Subject};
use gluefleet_testkit::workspace::{WorkspaceConfig, WorkspaceDouble};

struct Workspace {
    double: WorkspaceDouble,
}

/// The user the suite's events act as (its routes name no subject).
const USER: &str = "alice@example.com";

impl Subject for Workspace {
    const CONNECTOR: &'static str = "workspace";

    async fn start(_front: String) -> Result<(Self, String), TestkitError> {
        let double = WorkspaceDouble::start(WorkspaceConfig::default()).await?;
        let upstream = double.url();
        Ok((Self { double }, upstream))
    }

    fn target(&self, front: &FaultProxy) -> String {
        format!(
            "{auth}\n[target]\napi_root = \"{front}\"\n",
            auth = common::auth_toml(&self.double, Some(USER)),
            front = front.url(),
        )
    }

    fn action(&self) -> String {
        r#"{ operation = "calendar_insert", event_key = "{data.id}", event = "{summary: .data.name, start: {dateTime: \"2026-12-10T10:00:00Z\"}, end: {dateTime: \"2026-12-10T11:00:00Z\"}}" }"#
            .to_owned()
    }

    /// Events of the user's calendar carrying the tag: the double's own
    /// account (a second insert of one id is refused with 409).
    async fn effects(&self, tag: &str, _front: &FaultProxy) -> usize {
        let summary = format!("conformance {tag}");
        self.double
            .events(USER)
            .iter()
            .filter(|e| e["summary"] == summary.as_str())
            .count()
    }

    fn refreshes(&self) -> Option<usize> {
        usize::try_from(self.double.token_calls()).ok()
    }
}

gluefleet_testkit::conformance_suite!(Workspace);
