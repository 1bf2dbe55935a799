//! The connector: one event and one route's action → one REST request.

use crate::client::{Call, Client};
use crate::config::{Action, Target};
use crate::error::{Verdict, verdict};
use gluefleet_core::auth::Credential;
use gluefleet_core::{ConfigError, Connector, ConnectorError, Delivered, Request};

/// The legacy REST connector.
#[derive(Debug)]
pub struct RestConnector {
    client: Client,
    check_path: String,
}

impl RestConnector {
    /// Builds the connector from `[target]`.
    pub fn new(target: Target, http: reqwest::Client) -> Result<Self, ConfigError> {
        let client = Client::new(&target, http)?;
        let check_path = target.check_path.clone().unwrap_or_else(|| "/".into());
        Ok(Self { client, check_path })
    }

    /// Requests sent to the target so far.
    pub fn requests(&self) -> u64 {
        self.client.requests()
    }
}

impl Connector for RestConnector {
    type Action = Action;

    const NAME: &'static str = "legacy-rest";

    async fn call(&self, r: Request<'_, Action>) -> Result<Delivered, ConnectorError> {
        let a = &r.route.action;
        let path = a.path.render(r.event)?;
        let body = if a.no_body {
            None
        } else {
            // Written straight to JSON text: no copy of the event's data.
            Some(match &a.body {
                Some(m) => m.apply_event_to_vec(r.event)?,
                None => gluefleet_core::mapping::to_vec(&r.event.data)?,
            })
        };
        let answer = self
            .client
            .send(Call {
                method: a.method.clone(),
                path: &path,
                headers: &a.headers,
                idempotency: a
                    .idempotency_header
                    .as_ref()
                    .map(|h| (h, r.idempotency_key)),
                key_source: r
                    .route
                    .idempotency_key
                    .as_deref()
                    .unwrap_or("the event's source and id"),
                credential: r.credential,
                body,
                timeout: r.timeout,
                trace: r.trace,
            })
            .await?;
        match verdict(answer.status, &a.success, &a.already_done) {
            Verdict::Success => {
                answer.record_into(r.answer);
                Ok(Delivered::Applied)
            }
            Verdict::AlreadyDone => {
                answer.record_into(r.answer);
                Ok(Delivered::AlreadyDone)
            }
            Verdict::Failure => Err(answer.error()),
        }
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        vec![("target_requests", self.client.requests())]
    }

    async fn check(&self, credential: Option<&Credential>) -> Result<String, ConnectorError> {
        self.client.probe(&self.check_path, credential).await
    }
}
