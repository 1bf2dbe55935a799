//! What a REST answer means for a route: success, already done, or a
//! failure. Failures are classified by the core's shared status table
//! ([`Answer::error`](gluefleet_core::http::Answer::error)); a legacy API's
//! error bodies have no common shape, so the body's start is the detail.

/// What a status means for a route.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The effect is done.
    Success,
    /// The target already had it.
    AlreadyDone,
    /// A failure, to classify with the shared table.
    Failure,
}

/// Decides what `status` means given the route's lists.
pub fn verdict(status: u16, success: &[u16], already_done: &[u16]) -> Verdict {
    if already_done.contains(&status) {
        Verdict::AlreadyDone
    } else if (success.is_empty() && (200..300).contains(&status)) || success.contains(&status) {
        Verdict::Success
    } else {
        Verdict::Failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(verdict(201, &[], &[409]), Verdict::Success);
        assert_eq!(verdict(409, &[], &[409]), Verdict::AlreadyDone);
        assert_eq!(verdict(302, &[], &[409]), Verdict::Failure);
        assert_eq!(verdict(302, &[302], &[]), Verdict::Success);
        assert_eq!(verdict(200, &[201], &[]), Verdict::Failure);
    }
}
