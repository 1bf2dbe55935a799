//! The contract between the core and a connector.
//!
//! A connector knows its vendor: how to turn one event and one route's action
//! into one call, and how to classify the answer. It knows nothing of Pub/Sub,
//! retries, rate limits, idempotency or credentials caching: the
//! [`Pipeline`](crate::pipeline::Pipeline) does those around [`Connector::call`].

use crate::auth::Credential;
use crate::error::ConnectorError;
use crate::event::Event;
use crate::route::Route;
use std::future::Future;
use std::time::Duration;

/// One call the pipeline asks a connector to make.
#[derive(Debug)]
pub struct Request<'a, A> {
    /// The event.
    pub event: &'a Event,
    /// The route it matched, with the connector's action.
    pub route: &'a Route<A>,
    /// The idempotency key; pass it to the target where it takes one.
    pub idempotency_key: &'a str,
    /// The credential to send, when the connector has auth configured.
    pub credential: Option<&'a Credential>,
    /// The user this call acts as: the route's rendered `subject`, when it
    /// has one (the credential was obtained for that user).
    pub subject: Option<&'a str>,
    /// How long this attempt may take.
    pub timeout: Duration,
    /// When this attempt ends (`timeout` from when it started, the
    /// credential fetch included). A connector that queues the call (a
    /// batcher) hands this on, so the request is never sent, or is cut off,
    /// once the attempt is over, before the pipeline retries.
    pub deadline: tokio::time::Instant,
    /// 1 for the first attempt of this delivery.
    pub attempt: u32,
    /// The message's trace, when its publisher sent one: a connector calling
    /// over HTTP sends [`TraceContext::traceparent`](crate::trace::TraceContext::traceparent)
    /// so the target's spans join it.
    pub trace: Option<&'a crate::trace::TraceContext>,
    /// Where the connector records what the target answered that others
    /// need (the record id, the key, the `Location`): a route with
    /// `results` publishes it in its `gluefleet.delivered` event, and the
    /// idempotency store keeps it so a redelivery republishes it without a
    /// second call. Recording costs little; a connector records on every
    /// success, whether or not the route publishes results.
    pub answer: &'a crate::answer::Answer,
}

/// A successful call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivered {
    /// The target applied the event now.
    Applied,
    /// The target already had it (a 409 on an idempotent create, say).
    AlreadyDone,
}

/// A vendor connector.
pub trait Connector: Send + Sync + 'static {
    /// A route's action, checked when the config loads.
    type Action: Send + Sync + std::fmt::Debug + 'static;

    /// The connector's name, as in `gluefleet-<name>`: its binary, its
    /// logs, its idempotency keys and its dead letters all carry it.
    const NAME: &'static str;

    /// Makes one call for one event. Classify every failure once, here.
    fn call(
        &self,
        request: Request<'_, Self::Action>,
    ) -> impl Future<Output = Result<Delivered, ConnectorError>> + Send;

    /// False when repeating `action` can repeat its effect (a Firestore
    /// increment, an email sent, a row appended). When such a call fails with
    /// an [outcome unknown](ConnectorError::is_outcome_unknown) (cut off after
    /// it was sent), the pipeline does not send it again: the message is
    /// dead-lettered as `outcome-unknown` for someone to check. Default: true.
    fn is_idempotent(&self, action: &Self::Action) -> bool {
        let _ = action;
        true
    }

    /// True when `action` must not run without the idempotency store (an
    /// email: nothing at the vendor tells a second send from the first, so
    /// only the store's record of done keys stops a redelivered event from
    /// sending again). A route with such an action is refused at load when
    /// `delivery.idempotency.enabled = false`. Default: false.
    fn requires_idempotency(&self, action: &Self::Action) -> bool {
        let _ = action;
        false
    }

    /// Resolves, with the reason, once the connector can no longer deliver
    /// anything (a task it depends on, such as its batcher, has died). The
    /// worker then stops with a non-zero exit instead of nacking every
    /// message forever. Default: never.
    fn broken(&self) -> impl Future<Output = String> + Send {
        std::future::pending()
    }

    /// Counters worth reporting (requests sent to the target, say), for the
    /// job summary and benchmarks.
    fn stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// The users `check` signs in as, one [`check`](Self::check) each (a
    /// connector acting per subject names them in its config). Default:
    /// none, and `check` runs once with the provider's own credential.
    fn check_subjects(&self) -> Vec<String> {
        Vec::new()
    }

    /// Reaches the target without changing anything (for `check` and
    /// readiness); returns a line describing what answered.
    fn check(
        &self,
        credential: Option<&Credential>,
    ) -> impl Future<Output = Result<String, ConnectorError>> + Send;
}
