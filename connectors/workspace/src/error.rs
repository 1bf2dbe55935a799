//! What the Workspace APIs' answers mean beyond Google's shared error model
//! ([`gluefleet_google::error`], which reads both body shapes and classifies
//! quota, auth and server errors once for every Google caller).
//!
//! Only the answers whose meaning depends on the call are decided here:
//!
//! | call | answer | meaning |
//! |---|---|---|
//! | `events.insert` with our id | 409 | the event exists: already done |
//! | `events.delete` | 404, 410 | the event is gone: already done |
//! | `users.insert` | 409 | the user exists: done, or update (per route) |
//! | `users.delete` | 404 | the user is gone: already done |
//! | `users.update` / `delete` right after an insert | 412 `conditionNotMet` | "User creation is not complete": transient |
//!
//! A 412 from Directory can mean nothing else here: the connector sends no
//! ETag preconditions, so the status and reason decide it, not the text.

use gluefleet_core::ConnectorError;
use gluefleet_core::http::Answer;
use gluefleet_google::GoogleError;

/// What a call's answer said, once read.
#[derive(Debug)]
pub enum Said {
    /// 2xx.
    Done,
    /// The effect was there already (a 409 on our id, a 404 on a delete).
    AlreadyDone,
    /// The user exists (`users.insert`'s 409).
    Exists,
    /// Failed, classified.
    Failed(ConnectorError),
}

/// Which call an answer belongs to, for the table above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Any call with no special answers.
    Plain,
    /// `events.insert` with a client-chosen id.
    CalendarInsert,
    /// `events.delete`.
    CalendarDelete,
    /// `users.insert`.
    DirectoryInsert,
    /// `users.update`.
    DirectoryUpdate,
    /// `users.delete`.
    DirectoryDelete,
}

/// Reads `answer` for a call of `kind`.
pub fn read(kind: Kind, answer: &Answer) -> Said {
    if answer.is_success() {
        return Said::Done;
    }
    let error = GoogleError::of(answer);
    match (kind, error.status()) {
        (Kind::CalendarInsert, 409) => Said::AlreadyDone,
        (Kind::CalendarDelete, 404 | 410) | (Kind::DirectoryDelete, 404) => Said::AlreadyDone,
        (Kind::DirectoryInsert, 409) => Said::Exists,
        (Kind::DirectoryUpdate | Kind::DirectoryDelete, 412)
            if error.has_reason("conditionNotMet") =>
        {
            Said::Failed(
                ConnectorError::transient(format!(
                    "{} answered 412: {} (the new user is still being created; tried again later)",
                    answer.what,
                    error.message()
                ))
                .with_http_status(412),
            )
        }
        _ => Said::Failed(error.classify(answer)),
    }
}

/// A failed answer as a classified error (any call).
pub fn from_answer(answer: &Answer) -> ConnectorError {
    gluefleet_google::classify(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            what: "POST /calendar/v3/calendars/primary/events".into(),
            status,
            headers: http::HeaderMap::new(),
            body: body.into(),
        }
    }

    fn legacy(code: u16, reason: &str, message: &str) -> String {
        serde_json::json!({"error": {"code": code, "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}]}})
        .to_string()
    }

    #[test]
    fn answers_mean_what_the_call_makes_of_them() {
        let dup = answer(
            409,
            &legacy(409, "duplicate", "The requested identifier already exists."),
        );
        assert!(matches!(
            read(Kind::CalendarInsert, &dup),
            Said::AlreadyDone
        ));
        assert!(matches!(read(Kind::DirectoryInsert, &dup), Said::Exists));
        let Said::Failed(e) = read(Kind::Plain, &dup) else {
            panic!("a 409 elsewhere is a failure")
        };
        assert!(e.is_permanent(), "{e}");
        let gone = answer(410, &legacy(410, "deleted", "Resource has been deleted"));
        assert!(matches!(
            read(Kind::CalendarDelete, &gone),
            Said::AlreadyDone
        ));
        let missing = answer(404, &legacy(404, "notFound", "Resource Not Found: userKey"));
        assert!(matches!(
            read(Kind::DirectoryDelete, &missing),
            Said::AlreadyDone
        ));
        let Said::Failed(e) = read(Kind::DirectoryUpdate, &missing) else {
            panic!("an update of a missing user fails")
        };
        assert!(e.is_permanent(), "{e}");
    }

    #[test]
    fn a_user_still_being_created_is_transient_and_quota_is_google_s_rule() {
        let busy = answer(
            412,
            &legacy(412, "conditionNotMet", "User creation is not complete."),
        );
        let Said::Failed(e) = read(Kind::DirectoryUpdate, &busy) else {
            panic!("a failure")
        };
        assert!(e.is_transient(), "{e}");
        assert!(e.message().contains("still being created"), "{e}");
        let quota = answer(
            403,
            &legacy(403, "userRateLimitExceeded", "User Rate Limit Exceeded"),
        );
        let Said::Failed(e) = read(Kind::CalendarInsert, &quota) else {
            panic!("a failure")
        };
        assert!(e.is_rate_limited(), "{e}");
        assert!(matches!(read(Kind::Plain, &answer(200, "{}")), Said::Done));
    }
}
