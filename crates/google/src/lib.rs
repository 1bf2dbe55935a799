//! What gluefleet knows of Google, kept out of the core so that the core
//! holds no vendor code:
//!
//! - [`error`]: Google's error model (both body shapes) and its one
//!   classification, quota reasons included;
//! - [`grpc`]: gRPC status codes as Google APIs name them;
//! - [`firestore`]: the Firestore REST client and value rules, shared by the
//!   Firestore connector and the ledger;
//! - [`ledger`]: the fleet's idempotency ledger on Firestore, an
//!   implementation of the core's `IdempotencyStore`;
//! - [`adc`]: Application Default Credentials as a `TokenProvider`;
//! - [`delegation`]: domain-wide delegation, a `TokenProvider` acting as
//!   each event's user, with a key file or keyless (IAM `signJwt`).

pub mod adc;
pub mod delegation;
pub mod error;
pub mod firestore;
pub mod grpc;
pub mod ledger;

pub use adc::Google;
pub use delegation::{Delegated, DelegationConfig};
pub use error::{GoogleError, classify};
pub use ledger::FirestoreStore;
