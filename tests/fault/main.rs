//! The fault-injection suite (issue 6): the real `gluefleet-legacy-rest`
//! binary between the real Pub/Sub emulator and a local target that, like a
//! real vendor API, honours the `Idempotency-Key` header. Each scenario
//! publishes events with unique ids, injects one kind of fault, and ends by
//! reading the target's log: every event applied exactly once, none missing,
//! nothing else applied. Each prints one `[fault] …` summary line (run with
//! `--nocapture` to see them).
//!
//! Scenarios take turns (see [`harness::one_at_a_time`]): each runs its own
//! emulator, a JVM, and several measure time on a 2-core machine.

mod harness;

mod credentials;
mod emulator_restart;
mod kill9;
mod outage;
mod poison;
mod sigterm;
mod throttling;
