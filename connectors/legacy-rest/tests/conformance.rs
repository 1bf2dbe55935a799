//! The conformance suite (crates/testkit/src/conformance) against
//! `gluefleet-legacy-rest`: the testkit HTTP target as the legacy system,
//! behind the suite's fault proxy, with an OAuth 2.0 token endpoint so the
//! 401 case can count refreshes.

use std::time::Duration;

use gluefleet_testkit::TestkitError;
use gluefleet_testkit::conformance::{FaultProxy, Subject};
use gluefleet_testkit::http_target::HttpTarget;
use gluefleet_testkit::token::TokenServer;

struct LegacyRest {
    target: HttpTarget,
    token: TokenServer,
}

impl Subject for LegacyRest {
    const CONNECTOR: &'static str = "legacy-rest";

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
base_url = "{front}/erp"
allow_insecure_http = true
"#,
            token = self.token.token_url(),
            front = front.url(),
        )
    }

    fn action(&self) -> String {
        r#"{ path = "/orders/{data.id}", body = "{id: .data.id, name: .data.name}" }"#.to_owned()
    }

    /// 2xx answers the legacy system itself gave for the event.
    async fn effects(&self, tag: &str, _front: &FaultProxy) -> usize {
        let path = format!("/erp/orders/{tag}");
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

gluefleet_testkit::conformance_suite!(LegacyRest);
