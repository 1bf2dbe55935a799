//! The conformance suite (crates/testkit/src/conformance) against
//! `gluefleet-sap-odata`: the real SAP CAP server (OData V4, with the
//! Gateway CSRF handshake), one per test binary, behind each case's fault
//! proxy, with an OAuth 2.0 token endpoint so the 401 case can count
//! refreshes.

use std::time::Duration;

use gluefleet_testkit::TestkitError;
use gluefleet_testkit::conformance::{Batch, FaultProxy, Shared, SharedLease, Subject, json};
use gluefleet_testkit::sap::SapCap;
use gluefleet_testkit::token::TokenServer;

/// One SAP CAP server for the cases of this binary; each case uses its own
/// keys.
static CAP: Shared<SapCap> = Shared::new();

struct SapOdata {
    cap: SharedLease<SapCap>,
    token: TokenServer,
}

impl Subject for SapOdata {
    const CONNECTOR: &'static str = "sap-odata";
    async fn start(_front: String) -> Result<(Self, String), TestkitError> {
        let cap = CAP.acquire(SapCap::start).await?;
        let token =
            TokenServer::start("gluefleet", "conformance", Duration::from_secs(3600)).await?;
        let upstream = cap.url();
        Ok((Self { cap, token }, upstream))
    }

    fn target(&self, front: &FaultProxy) -> String {
        let path = self.cap.v4_service().replacen(&self.cap.url(), "", 1);
        format!(
            r#"
[auth]
kind = "oauth2_client_credentials"
token_url = "{token}"
client_id = "gluefleet"
client_secret = "conformance"

[target]
service_url = "{front}{path}"
version = "v4"
allow_insecure_http = true
linger = "300ms"
"#,
            token = self.token.token_url(),
            front = front.url(),
        )
    }

    /// An upsert: one request per event (only creates share a `$batch`).
    fn action(&self) -> String {
        r#"{ operation = "upsert", entity_set = "BusinessPartners", key = { ID = "{data.id}" }, fields = "{name: .data.name}" }"#.to_owned()
    }

    /// Writes the server answered 2xx that name the key; a create sent in a
    /// `$batch` (answered 200 whatever its parts did) counts if the entity
    /// exists.
    async fn effects(&self, tag: &str, front: &FaultProxy) -> usize {
        let writes = front
            .calls()
            .iter()
            .filter(|p| p.applied() && p.mentions(tag) && !p.request.path.contains("$batch"))
            .count();
        if writes > 0 {
            return writes;
        }
        let key = tag.to_owned();
        let entity = self
            .cap
            .run(move |cap| async move { cap.get_entity("BusinessPartners", &key).await })
            .await
            .expect("reading SAP CAP");
        usize::from(entity.is_some())
    }

    fn refreshes(&self) -> Option<usize> {
        Some(self.token.issued().len())
    }

    /// Creates share a `$batch`; a key longer than `String(10)` is refused
    /// in its own changeset.
    fn batch(&self) -> Option<Batch> {
        Some(Batch {
            action: r#"{ operation = "create", entity_set = "BusinessPartners", key = { ID = "{data.id}" }, fields = "{name: .data.name}" }"#.to_owned(),
            refused_action: None,
            refused: |tag| json!({"id": format!("{tag}-far-too-long-for-the-key"), "name": "x"}),
        })
    }
}

gluefleet_testkit::conformance_suite!(SapOdata);
