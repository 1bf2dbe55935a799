//! One error type for every connector call, classified once.
//!
//! A connector turns whatever its vendor said into a [`ConnectorError`] with an
//! [`ErrorClass`]. From then on nobody looks at message text again: the retry
//! policy, the outcome and the dead-letter attributes all read the class.

use std::fmt;
use std::time::Duration;

/// What kind of failure a call ended in, and so what happens to the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// May succeed if tried again (5xx except 501, 408, timeouts, connection
    /// errors). Retried in process; when the budget runs out the message is
    /// nacked with a delay and Pub/Sub redelivers it.
    Transient,
    /// The target asked us to slow down (429 or a vendor quota error). Waits
    /// `Retry-After` (capped) in process, or nacks with that delay.
    RateLimited,
    /// The credential was refused (401 or a vendor's expired session). The
    /// credential is refreshed once and the call retried once; a second refusal
    /// is permanent.
    Unauthorized,
    /// Will never succeed as sent (other 4xx, validation, poison, unroutable).
    /// The message goes to the dead-letter topic and is acked.
    Permanent,
}

impl ErrorClass {
    /// The stable name used in logs and the `gluefleet-error-class` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited => "rate-limited",
            ErrorClass::Unauthorized => "unauthorized",
            ErrorClass::Permanent => "permanent",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A failed call to an external system, with its class.
///
/// Build one with the named constructors; ask it with the predicates. The
/// message must say what is wrong in the vendor's own words (its error code,
/// the field), because it ends up on the dead-letter message.
#[derive(Debug)]
pub struct ConnectorError {
    class: ErrorClass,
    message: String,
    http_status: Option<u16>,
    retry_after: Option<Duration>,
    outcome_unknown: bool,
    source: Option<BoxError>,
}

impl ConnectorError {
    fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            http_status: None,
            retry_after: None,
            outcome_unknown: false,
            source: None,
        }
    }

    /// A failure that may go away by itself.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, message)
    }

    /// The target throttled us; `retry_after` is what it asked for, if anything.
    pub fn rate_limited(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self {
            retry_after,
            ..Self::new(ErrorClass::RateLimited, message)
        }
    }

    /// The target refused the credential.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Unauthorized, message)
    }

    /// The request can never succeed as it is.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, message)
    }

    /// Classifies an HTTP response status with the shared table
    /// ([`crate::classify::class_of_status`]).
    pub fn from_status(
        status: u16,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        Self {
            http_status: Some(status),
            retry_after,
            ..Self::new(crate::classify::class_of_status(status), message)
        }
    }

    /// Attaches the HTTP status the target answered with.
    pub fn with_http_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    /// Marks that the request may have reached the target before it failed
    /// (cut off at its deadline, or the connection dropped after sending), so
    /// nobody knows whether its effect happened. Harmless for an idempotent
    /// operation; for one that is not (an increment), the pipeline does not
    /// send it again in the same delivery.
    pub fn with_outcome_unknown(mut self) -> Self {
        self.outcome_unknown = true;
        self
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The class decided when the error was made.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// True when trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }

    /// True when the target throttled the call.
    pub fn is_rate_limited(&self) -> bool {
        self.class == ErrorClass::RateLimited
    }

    /// True when the target refused the credential.
    pub fn is_unauthorized(&self) -> bool {
        self.class == ErrorClass::Unauthorized
    }

    /// True when the message can never be delivered as it is.
    ///
    /// # Troubleshooting
    /// The message is on the dead-letter topic with this error's text in the
    /// `gluefleet-error` attribute; fix the data or the route, then replay it.
    pub fn is_permanent(&self) -> bool {
        self.class == ErrorClass::Permanent
    }

    /// True when the request may have taken effect although it failed
    /// ([`with_outcome_unknown`](Self::with_outcome_unknown)).
    pub fn is_outcome_unknown(&self) -> bool {
        self.outcome_unknown
    }

    /// The HTTP status, when the target answered over HTTP.
    pub fn http_status(&self) -> Option<u16> {
        self.http_status
    }

    /// How long the target asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The error text, without the class.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A copy for each of several callers hit by one failure (a batch that
    /// failed as a whole). The source, if any, is folded into the message.
    pub fn replicate(&self) -> Self {
        let message = match &self.source {
            Some(src) => format!("{}: {src}", self.message),
            None => self.message.clone(),
        };
        Self {
            class: self.class,
            message,
            http_status: self.http_status,
            retry_after: self.retry_after,
            outcome_unknown: self.outcome_unknown,
            source: None,
        }
    }

    /// Turns this error into a permanent one, keeping its text and status:
    /// used when a retryable failure may not be retried (a second 401).
    pub fn into_permanent(mut self) -> Self {
        self.class = ErrorClass::Permanent;
        self
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(status) = self.http_status {
            write!(f, " (HTTP {status})")?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_follow_the_class() {
        assert!(ConnectorError::transient("x").is_transient());
        assert!(ConnectorError::permanent("x").is_permanent());
        assert!(ConnectorError::unauthorized("x").is_unauthorized());
        let e = ConnectorError::rate_limited("x", Some(Duration::from_secs(2)));
        assert!(e.is_rate_limited());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(
            ConnectorError::unauthorized("x")
                .into_permanent()
                .is_permanent()
        );
        let unknown = ConnectorError::transient("cut off").with_outcome_unknown();
        assert!(unknown.is_transient() && unknown.is_outcome_unknown());
        assert!(
            unknown.replicate().is_outcome_unknown(),
            "copies keep the flag"
        );
        assert!(!ConnectorError::transient("x").is_outcome_unknown());
    }

    #[test]
    fn display_names_status_and_source() {
        let e = ConnectorError::from_status(400, "field total is required", None)
            .with_source(std::io::Error::other("inner"));
        assert_eq!(e.to_string(), "field total is required (HTTP 400): inner");
        assert!(e.is_permanent());
    }
}
