//! A small Firestore REST client (v1), shared by the Firestore connector and
//! the fleet's idempotency ledger.
//!
//! REST over the shared reqwest client was chosen over a gRPC crate because
//! `batchWrite` answers one status per write (what per-event outcomes need),
//! the emulator speaks the same REST API, and it adds no second HTTP stack.

pub mod client;
pub mod value;

pub use client::{Document, Firestore, WriteStatus};
