//! The Firestore side: the core's Firestore REST client (sending through the
//! core's HTTP edge), authenticated for Firestore, behind a batcher so that
//! writes waiting at the same moment share one `batchWrite`.

use crate::config::Target;
use gluefleet_core::batch::{Batcher, Fault, Instant, VendorLimits};
use gluefleet_core::{ConfigError, ConnectorError};
use gluefleet_google::firestore::{Firestore, WriteStatus};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Firestore's caps on one `batchWrite` (500 writes; 10 MiB per request,
/// less room for the envelope) and the defaults that suit it.
pub const LIMITS: VendorLimits = VendorLimits {
    max_items: 500,
    max_bytes: 9 * 1024 * 1024,
    default_items: 500,
    default_linger: Duration::from_millis(5),
    default_in_flight: 2,
};

/// One write waiting for its batch, with its attempt's deadline: the
/// request that carries it is cut off at the earliest deadline in it.
#[derive(Debug)]
struct Pending {
    write: Value,
    deadline: Instant,
}

/// Firestore through `batchWrite`: one database, its writes batched.
#[derive(Debug, Clone)]
pub struct Client {
    db: Arc<Firestore>,
    batcher: Batcher<Pending, WriteStatus>,
}

impl Client {
    /// Connects to the emulator when `FIRESTORE_EMULATOR_HOST` is set (with
    /// the emulator's `Bearer owner`), else to Firestore with Application
    /// Default Credentials.
    pub fn new(
        target: &Target,
        http: reqwest::Client,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        target.unknown.check("target")?;
        let project = target
            .project
            .clone()
            .or_else(|| env("GOOGLE_CLOUD_PROJECT"))
            .ok_or_else(|| {
                ConfigError::setting(
                    "target.project",
                    "project is not set (set target.project or GOOGLE_CLOUD_PROJECT)",
                )
            })?;
        let settings = target.batch.settings(&LIMITS)?;
        let db = Arc::new(Firestore::connect(http, &project, &target.database, env)?);
        let flush_db = db.clone();
        let batcher = Batcher::spawn(settings, move |pending: Vec<Pending>| {
            let db = flush_db.clone();
            async move {
                // The batcher cuts the request off at this moment too; the
                // request's own timeout says the same to the HTTP edge.
                let until = pending
                    .iter()
                    .map(|p| p.deadline)
                    .min()
                    .unwrap_or_else(Instant::now);
                let writes: Vec<Value> = pending.iter().map(|p| p.write.clone()).collect();
                match db.batch_write_until(&writes, until).await {
                    // Firestore refuses a whole request for one malformed
                    // write; send each alone so only that one fails.
                    Err(e) if e.is_permanent() && pending.len() > 1 => {
                        let mut out = Vec::with_capacity(pending.len());
                        for p in pending {
                            out.push(db.write_until(p.write, p.deadline).await);
                        }
                        Ok(out)
                    }
                    other => other.map(|s| s.into_iter().map(Ok).collect()),
                }
            }
        });
        Ok(Self { db, batcher })
    }

    /// The full name of a document path.
    pub fn document_name(&self, path: &str) -> String {
        self.db.document_name(path)
    }

    /// Queues one write for the next batch and waits for its status, until
    /// `deadline`: a write still queued then is never sent; one whose
    /// `batchWrite` is still out then has it cancelled, and its outcome is
    /// unknown. Writes to one document never share a batch and keep their
    /// order.
    pub async fn write(
        &self,
        document: &str,
        write: Value,
        deadline: Instant,
    ) -> Result<WriteStatus, ConnectorError> {
        let size = write.to_string().len();
        self.batcher
            .submit(
                Pending { write, deadline },
                Some(document.to_owned()),
                size,
                deadline,
            )
            .await
    }

    /// Set once the batcher has died.
    pub fn fault(&self) -> &Fault {
        self.batcher.fault()
    }

    /// Requests sent to Firestore so far.
    pub fn requests(&self) -> u64 {
        self.db.requests()
    }

    /// Reaches the database without writing.
    pub async fn probe(&self) -> Result<String, ConnectorError> {
        self.db.probe("gluefleet-check").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> Target {
        toml::from_str(text).expect("a [target] table")
    }

    fn emulator(name: &str) -> Option<String> {
        (name == "FIRESTORE_EMULATOR_HOST").then(|| "127.0.0.1:1".to_owned())
    }

    #[test]
    fn a_misspelt_or_missing_setting_stops_the_build_naming_it() {
        let http = reqwest::Client::new();
        let e = Client::new(
            &target("project = \"p\"\nmax_bach = 5"),
            http.clone(),
            &emulator,
        )
        .expect_err("a typo");
        assert_eq!(e.setting_name(), Some("target.max_bach"), "{e}");
        let e =
            Client::new(&target("max_batch = 5"), http.clone(), &emulator).expect_err("no project");
        assert_eq!(e.setting_name(), Some("target.project"), "{e}");
        let e = Client::new(&target("project = \"p\"\nmax_batch = 501"), http, &emulator)
            .expect_err("over Firestore's cap");
        assert_eq!(e.setting_name(), Some("target.max_batch"), "{e}");
    }
}
