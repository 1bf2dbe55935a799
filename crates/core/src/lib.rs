//! The core every gluefleet connector stands on.
//!
//! A connector implements [`Connector`]: one call for one event, with every
//! failure classified once ([`ConnectorError`], [`ErrorClass`]). The core does
//! the rest, in a fixed order ([`pipeline`]):
//!
//! ```text
//! decode → route → idempotency → deadline → retry → rate limit → auth → connector.call
//! ```
//!
//! and turns each message into exactly one [`Outcome`]: ack, nack with a
//! delay, or dead-letter. The runtime crate carries outcomes out on Pub/Sub.

pub mod answer;
pub mod auth;
pub mod batch;
pub mod bounds;
pub mod classify;
pub mod config;
pub mod connector;
pub mod error;
pub mod event;
pub mod http;
pub mod idempotency;
pub mod mapping;
pub mod observe;
pub mod outcome;
pub mod pipeline;
pub mod rate_limit;
pub mod results;
pub mod retry;
pub mod route;
pub mod template;
pub mod trace;

pub use answer::Answer;
pub use config::ConfigError;
pub use connector::{Connector, Delivered, Request};
pub use error::{ConnectorError, ErrorClass};
pub use event::{Event, RawMessage};
pub use outcome::Outcome;
pub use pipeline::{DeliverySettings, Pipeline};
