//! The conformance suite (crates/testkit/src/conformance, docs/CONFORMANCE.md)
//! against `gluefleet-workspace`: the testkit HTTP target standing in for
//! Workspace, behind the suite's fault proxy, with an OAuth 2.0 token
//! endpoint so the 401 case can count refreshes. When the stand-in is
//! replaced by the vendor's local server or a sandbox double, start that in
//! `start` and count its effects in `effects`.

use std::time::Duration;

use gluefleet_testkit::TestkitError;
use gluefleet_testkit::conformance::{FaultProxy, Subject};
use gluefleet_testkit::http_target::HttpTarget;
use gluefleet_testkit::token::TokenServer;

struct Workspace {
    target: HttpTarget,
    token: TokenServer,
}

impl Subject for Workspace {
    const CONNECTOR: &'static str = "workspace";

    async fn start(_front: String) -> Result<(Self, String), TestkitError> {
        let target = HttpTarget::start().await?;
        let token =
            TokenServer::start("gluefleet", "conformance", Duration::from_secs(3600)).await?;
        let upstream = target.url();
        Ok((Self { target, token }, upstream))
    }

    fn target(&self, front: &FaultProxy) -> String {
        format!(
            r#"
[auth]
kind = "oauth2_client_credentials"
token_url = "{token}"
client_id = "gluefleet"
client_secret = "conformance"

[target]
base_url = "{front}/v1"
"#,
            token = self.token.token_url(),
            front = front.url(),
        )
    }

    fn action(&self) -> String {
        r#"{ operation = "upsert", path = "/records/{data.id}", fields = "{name: .data.name}" }"#
            .to_owned()
    }

    /// 2xx answers the API itself gave for the event's record.
    async fn effects(&self, tag: &str, _front: &FaultProxy) -> usize {
        let path = format!("/v1/records/{tag}");
        self.target
            .requests()
            .iter()
            .filter(|r| r.path == path && (200..300).contains(&r.status))
            .count()
    }

    fn refreshes(&self) -> Option<usize> {
        Some(self.token.issued().len())
    }
}

gluefleet_testkit::conformance_suite!(Workspace);
