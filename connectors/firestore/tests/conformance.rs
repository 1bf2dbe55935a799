//! The conformance suite (crates/testkit/src/conformance) against
//! `gluefleet-firestore`: the real Firestore emulator, one per test binary,
//! behind each case's fault proxy (`FIRESTORE_EMULATOR_HOST` names the
//! proxy). Each event adds 1 to a `visits` counter, so the document itself
//! counts the effects.

use std::time::Duration;

use gluefleet_testkit::TestkitError;
use gluefleet_testkit::conformance::{Batch, FaultProxy, Shared, SharedLease, Subject, json};
use gluefleet_testkit::firestore::FirestoreEmulator;

/// One Firestore emulator for the cases of this binary; each case writes
/// its own documents.
static FIRESTORE: Shared<FirestoreEmulator> = Shared::new();

/// Sets the name and adds 1 to `visits`.
const ACTION: &str = r#"{ operation = "set", document = "conformance/{data.id}", fields = "{name: .data.name}", merge = true, transforms = { visits = { increment = 1 } } }"#;

struct Firestore {
    emulator: SharedLease<FirestoreEmulator>,
}

impl Subject for Firestore {
    const CONNECTOR: &'static str = "firestore";
    /// The emulator, a JVM, can take seconds over a write while the other
    /// cases' workers share the two cores.
    const ROUTE_TIMEOUT: Duration = Duration::from_secs(5);

    async fn start(_front: String) -> Result<(Self, String), TestkitError> {
        let emulator = FIRESTORE
            .acquire(|| async {
                let emulator = FirestoreEmulator::start().await?;
                // The first write of a fresh emulator is its slowest.
                emulator.put("warm-up/first", json!({})).await?;
                Ok(emulator)
            })
            .await?;
        let upstream = format!("http://{}", emulator.host());
        Ok((Self { emulator }, upstream))
    }

    fn target(&self, _front: &FaultProxy) -> String {
        format!(
            "[target]\nproject = \"{}\"\nlinger = \"300ms\"\n",
            self.emulator.project()
        )
    }

    fn action(&self) -> String {
        ACTION.to_owned()
    }

    fn env(&self, front: &FaultProxy) -> Vec<(String, String)> {
        vec![("FIRESTORE_EMULATOR_HOST".to_owned(), front.host())]
    }

    /// The document's `visits`: one per applied write.
    async fn effects(&self, tag: &str, _front: &FaultProxy) -> usize {
        let path = format!("conformance/{tag}");
        let document = self
            .emulator
            .run(move |emulator| async move { emulator.get(&path).await })
            .await
            .expect("reading the Firestore emulator");
        document
            .and_then(|d| {
                d["fields"]["visits"]["integerValue"]
                    .as_str()
                    .map(str::to_owned)
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Writes share a `batchWrite`; an `update` of a document that does not
    /// exist fails on its own (`NOT_FOUND`).
    fn batch(&self) -> Option<Batch> {
        Some(Batch {
            action: ACTION.to_owned(),
            refused_action: Some(
                r#"{ operation = "update", document = "conformance-missing/{data.id}", fields = "{name: .data.name}" }"#.to_owned(),
            ),
            refused: |tag| json!({"id": tag, "name": "nowhere"}),
        })
    }
}

gluefleet_testkit::conformance_suite!(Firestore);
