//! The Firestore side: the shared REST client, authenticated for Firestore,
//! behind a batcher so that writes waiting at the same moment share one
//! `batchWrite`.

use crate::config::Target;
use gluefleet_core::ConnectorError;
use gluefleet_core::batch::{BatchSettings, Batcher, Fault, Instant};
use gluefleet_core::firestore::{Firestore, WriteStatus};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Firestore's own cap on one `batchWrite`.
const MAX_WRITES: usize = 500;
/// Firestore's request limit is 10 MiB; leave room for the envelope.
const MAX_BYTES: usize = 9 * 1024 * 1024;
/// The HTTP timeout of one `batchWrite`: only a backstop, since the batcher
/// cuts every request off at the earliest deadline of the writes in it.
const REQUEST_BACKSTOP: Duration = Duration::from_secs(300);

/// A batched Firestore writer.
#[derive(Debug, Clone)]
pub struct Writer {
    db: Arc<Firestore>,
    batcher: Batcher<Value, WriteStatus>,
}

impl Writer {
    /// Connects to the emulator when `FIRESTORE_EMULATOR_HOST` is set (with
    /// the emulator's `Bearer owner`), else to Firestore with Application
    /// Default Credentials.
    pub fn new(
        target: &Target,
        http: reqwest::Client,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let project = target
            .project
            .clone()
            .or_else(|| env("GOOGLE_CLOUD_PROJECT"))
            .ok_or("project is not set (set target.project or GOOGLE_CLOUD_PROJECT)")?;
        gluefleet_core::bounds::batch(
            target.max_batch,
            MAX_WRITES,
            target.linger,
            target.max_in_flight,
        )?;
        let db = Arc::new(
            Firestore::connect(http, &project, &target.database, env)?
                .with_timeout(REQUEST_BACKSTOP),
        );
        let settings = BatchSettings {
            max_items: target.max_batch,
            max_bytes: MAX_BYTES,
            linger: target.linger,
            max_in_flight: target.max_in_flight.max(1),
        };
        let flush_db = db.clone();
        let batcher = Batcher::spawn(settings, move |writes: Vec<Value>| {
            let db = flush_db.clone();
            async move {
                match db.batch_write(&writes).await {
                    // Firestore refuses a whole request for one malformed
                    // write; send each alone so only that one fails.
                    Err(e) if e.is_permanent() && writes.len() > 1 => {
                        let mut out = Vec::with_capacity(writes.len());
                        for w in writes {
                            out.push(db.write(w).await);
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
            .submit(write, Some(document.to_owned()), size, deadline)
            .await
    }

    /// Set once the batcher has died.
    pub fn fault(&self) -> &Fault {
        self.batcher.fault()
    }

    /// `batchWrite` requests sent so far.
    pub fn calls(&self) -> u64 {
        self.db.calls()
    }

    /// Reaches the database without writing.
    pub async fn probe(&self) -> Result<String, ConnectorError> {
        self.db.probe("gluefleet-check").await
    }
}
