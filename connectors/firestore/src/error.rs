//! What each write's status means for its event.
//!
//! | operation | status            | outcome                     |
//! |-----------|-------------------|-----------------------------|
//! | any       | OK (0)            | applied                     |
//! | create    | ALREADY_EXISTS (6)| already done (ack)          |
//! | update    | NOT_FOUND (5)     | permanent (dead letter)     |
//! | any       | other codes       | by the shared gRPC table (ABORTED, UNAVAILABLE → retry; RESOURCE_EXHAUSTED → rate limited; INVALID_ARGUMENT, FAILED_PRECONDITION → dead letter) |

use crate::config::Operation;
use gluefleet_core::{ConnectorError, Delivered};
use gluefleet_google::firestore::WriteStatus;

/// The outcome of one write.
pub fn outcome(
    op: Operation,
    status: &WriteStatus,
    document: &str,
) -> Result<Delivered, ConnectorError> {
    match (op, status.code) {
        (_, 0) => Ok(Delivered::Applied),
        (Operation::Create, 6) => Ok(Delivered::AlreadyDone),
        (Operation::Delete, 5) => Ok(Delivered::AlreadyDone),
        _ => Err(status.error(&format!("{} {document}", format!("{op:?}").to_lowercase()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(code: i32) -> WriteStatus {
        WriteStatus {
            code,
            message: "m".into(),
            update_time: None,
        }
    }

    #[test]
    fn statuses_map_per_operation() {
        assert_eq!(
            outcome(Operation::Set, &st(0), "a/1").ok(),
            Some(Delivered::Applied)
        );
        assert_eq!(
            outcome(Operation::Create, &st(6), "a/1").ok(),
            Some(Delivered::AlreadyDone)
        );
        let e = outcome(Operation::Update, &st(5), "a/1").expect_err("missing doc");
        assert!(
            e.is_permanent()
                && e.message().contains("update a/1")
                && e.message().contains("NOT_FOUND"),
            "{e}"
        );
        assert!(
            outcome(Operation::Set, &st(14), "a/1")
                .expect_err("unavailable")
                .is_transient()
        );
        assert!(
            outcome(Operation::Set, &st(10), "a/1")
                .expect_err("aborted")
                .is_transient()
        );
        assert!(
            outcome(Operation::Set, &st(8), "a/1")
                .expect_err("quota")
                .is_rate_limited()
        );
        assert!(
            outcome(Operation::Set, &st(3), "a/1")
                .expect_err("invalid")
                .is_permanent()
        );
    }
}
