//! Fleet-wide tests live in `fleet/`; this crate has no code of its own.
//! Connector end-to-end tests live with each connector (they run its binary).
