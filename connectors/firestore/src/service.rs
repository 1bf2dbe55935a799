//! The connector: one event and one route's action → one Firestore write.

use crate::client::Client;
use crate::config::{Action, Operation, Target, Transform, document_id};
use crate::error::outcome;
use gluefleet_core::auth::Credential;
use gluefleet_core::mapping::fields_of;
use gluefleet_core::{ConfigError, Connector, ConnectorError, Delivered, Request};
use gluefleet_google::firestore::value::{field_path, fields, leaf_paths};
use serde_json::{Value, json};

/// The Firestore connector.
#[derive(Debug)]
pub struct FirestoreConnector {
    client: Client,
}

impl FirestoreConnector {
    /// Builds the connector from `[target]`; `env` supplies
    /// `GOOGLE_CLOUD_PROJECT` and `FIRESTORE_EMULATOR_HOST`.
    pub fn new(
        target: Target,
        http: reqwest::Client,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            client: Client::new(&target, http, env)?,
        })
    }

    /// Requests sent to Firestore so far (`batchWrite`s, and `check`'s read).
    pub fn requests(&self) -> u64 {
        self.client.requests()
    }

    /// The REST write for an event.
    fn write(
        &self,
        action: &Action,
        path: &str,
        event: &gluefleet_core::event::Event,
    ) -> Result<Value, ConnectorError> {
        let name = self.client.document_name(path);
        if action.operation == Operation::Delete {
            return Ok(json!({ "delete": name }));
        }
        let object = fields_of(action.fields.as_ref(), event, "document")?;
        let encoded = fields(&object, &action.timestamps).map_err(ConnectorError::permanent)?;
        let mut write = json!({ "update": { "name": name, "fields": encoded } });
        match action.operation {
            Operation::Create => write["currentDocument"] = json!({ "exists": false }),
            Operation::Update => {
                write["currentDocument"] = json!({ "exists": true });
                write["updateMask"] = json!({ "fieldPaths": leaf_paths(&object) });
            }
            Operation::Set if action.merge => {
                write["updateMask"] = json!({ "fieldPaths": leaf_paths(&object) })
            }
            _ => {}
        }
        if !action.transforms.is_empty() {
            let transforms: Vec<Value> = action
                .transforms
                .iter()
                .map(|(field, t)| match t {
                    Transform::ServerTimestamp => json!({ "fieldPath": field_path(field), "setToServerValue": "REQUEST_TIME" }),
                    Transform::Increment(n) => {
                        let by = if let Some(i) = n.as_i64() {
                            json!({ "integerValue": i.to_string() })
                        } else {
                            json!({ "doubleValue": n.as_f64() })
                        };
                        json!({ "fieldPath": field_path(field), "increment": by })
                    }
                })
                .collect();
            write["updateTransforms"] = Value::Array(transforms);
        }
        Ok(write)
    }
}

impl Connector for FirestoreConnector {
    type Action = Action;

    const NAME: &'static str = "firestore";

    async fn call(&self, r: Request<'_, Action>) -> Result<Delivered, ConnectorError> {
        let action = &r.route.action;
        let path = action.document.render_with(r.event, document_id)?;
        let write = self.write(action, &path, r.event)?;
        let status = self.client.write(&path, write, r.deadline).await?;
        let done = outcome(action.operation, &status, &path)?;
        // The next step names the document by its path in the database.
        r.answer.record("document", path.as_str());
        if let Some(t) = &status.update_time {
            r.answer.record("update_time", t.as_str());
        }
        Ok(done)
    }

    fn is_idempotent(&self, action: &Action) -> bool {
        action.idempotent()
    }

    fn broken(&self) -> impl std::future::Future<Output = String> + Send {
        self.client.fault().wait()
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        vec![("target_requests", self.client.requests())]
    }

    async fn check(&self, _credential: Option<&Credential>) -> Result<String, ConnectorError> {
        self.client.probe().await
    }
}
