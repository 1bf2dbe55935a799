//! The one rule for where a configured URL may point.
//!
//! Every request carries a credential or event data, so it goes over TLS:
//! `https://`, or plain `http://` to this machine (a sidecar, a test server),
//! or plain `http://` anywhere only when the operator says the network is
//! trusted (`allow_insecure_http = true`). Token URLs, target URLs and a
//! token's `instance_url` are all held to it.

use crate::config::ConfigError;
use url::{Host, Url};

/// Whether plain http may go to another machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Insecure {
    /// Only https, or http to this machine, and no setting could change it
    /// (token URLs, a token's `instance_url`).
    #[default]
    LoopbackOnly,
    /// Only https, or http to this machine, unless the operator sets
    /// `allow_insecure_http = true` (the error says so).
    NotAllowed,
    /// http to any host too (`allow_insecure_http = true`).
    Allowed,
}

impl From<bool> for Insecure {
    /// The connector's `allow_insecure_http` setting.
    fn from(allow_insecure_http: bool) -> Self {
        if allow_insecure_http {
            Self::Allowed
        } else {
            Self::NotAllowed
        }
    }
}

/// True when `url` names this machine.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses the URL of `setting` and holds it to the rule above. It must also
/// have a host and no user or password (credentials belong in `[auth]`,
/// where they are secrets, not in a URL that is logged).
///
/// ```
/// use gluefleet_core::http::{checked_url, Insecure};
/// assert!(checked_url("target.base_url", "https://erp.example/api", Insecure::NotAllowed).is_ok());
/// assert!(checked_url("target.base_url", "http://127.0.0.1:8080", Insecure::NotAllowed).is_ok());
/// let e = checked_url("target.base_url", "http://erp.example", Insecure::NotAllowed).unwrap_err();
/// assert!(e.message().contains("allow_insecure_http"));
/// let e = checked_url("auth.token_url", "http://erp.example", Insecure::LoopbackOnly).unwrap_err();
/// assert!(!e.message().contains("allow_insecure_http"), "no setting to offer");
/// assert!(checked_url("target.base_url", "http://erp.example", Insecure::Allowed).is_ok());
/// ```
pub fn checked_url(setting: &str, url: &str, insecure: Insecure) -> Result<Url, ConfigError> {
    let parsed = Url::parse(url)
        .map_err(|e| ConfigError::setting(setting, format!("{setting} {url:?}: {e}")))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::setting(
            setting,
            format!("{setting} {url:?} has no host"),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ConfigError::setting(
            setting,
            format!(
                "{setting} carries a user or password in the URL; put credentials in [auth] instead"
            ),
        ));
    }
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if insecure == Insecure::Allowed || is_loopback(&parsed) => Ok(parsed),
        "http" => {
            let fix = if insecure == Insecure::NotAllowed {
                "use https, or set allow_insecure_http = true for a trusted network"
            } else {
                "use https (plain http only to this machine)"
            };
            Err(ConfigError::setting(
                setting,
                format!("{setting} {url:?} is plain http to another machine; {fix}"),
            ))
        }
        other => Err(ConfigError::setting(
            setting,
            format!("{setting} {url:?}: scheme {other} is not http(s)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("https://x.example", Insecure::LoopbackOnly, true)]
    #[test_case("http://localhost:9", Insecure::LoopbackOnly, true)]
    #[test_case("http://127.0.0.1:9", Insecure::LoopbackOnly, true)]
    #[test_case("http://[::1]:9", Insecure::LoopbackOnly, true)]
    #[test_case("http://10.0.0.1", Insecure::LoopbackOnly, false)]
    #[test_case("http://10.0.0.1", Insecure::NotAllowed, false)]
    #[test_case("http://[::1]:9", Insecure::NotAllowed, true)]
    #[test_case("http://10.0.0.1", Insecure::Allowed, true)]
    #[test_case("http://localhost.evil.example", Insecure::LoopbackOnly, false)]
    #[test_case("ftp://x.example", Insecure::Allowed, false)]
    #[test_case("https://user:pw@x.example", Insecure::LoopbackOnly, false)]
    #[test_case("file:///etc/passwd", Insecure::Allowed, false)]
    #[test_case("not a url", Insecure::Allowed, false)]
    fn the_rule(url: &str, insecure: Insecure, ok: bool) {
        let got = checked_url("target.base_url", url, insecure);
        assert_eq!(got.is_ok(), ok, "{url}: {got:?}");
        if let Err(e) = got {
            assert_eq!(e.setting_name(), Some("target.base_url"));
            assert!(!e.message().contains("pw"), "no password in errors: {e}");
        }
    }
}
