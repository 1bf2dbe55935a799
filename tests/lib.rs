//! Fleet-wide tests; this crate has no code of its own.
//!
//! - `fleet/`: every connector has the same shape and leaves delivery to the
//!   core; its deploy files (`deploy.rs`) fit Cloud Run's resource shape and
//!   the worker's command line, and the Dockerfile's base images are pinned.
//! - `fault/`: the fault-injection suite. The real `gluefleet-legacy-rest`
//!   binary between the real Pub/Sub emulator and a target that honours
//!   idempotency keys, while workers are killed, the target goes down,
//!   throttles or refuses expired tokens, the emulator restarts, poison
//!   arrives and SIGTERM comes under load; each scenario ends by checking
//!   that every event had exactly one effect.
//!
//! Connector end-to-end tests live with each connector (they run its binary).
