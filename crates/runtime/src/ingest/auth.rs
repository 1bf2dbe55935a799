//! Who is calling: the credential an `Authorization` or `X-Api-Key` header
//! matches. The decision (which credential, may it publish here) is kept
//! apart from the answer the handler gives.

use super::config::{Check, Credential};
use axum::http::HeaderMap;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a request was not let in.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No credential given, or none matched: 401.
    Unknown(&'static str),
    /// A valid credential not allowed on this topic: 403.
    NotAllowed(String),
}

/// A bearer credential that is a JWT (three dot-separated parts): a Google
/// ID token for a `google_oidc` credential, never an API key.
pub fn bearer_jwt(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && token.split('.').count() == 3).then_some(token)
}

/// May `c` publish to `route`?
pub fn allowed<'c>(c: &'c Credential, route: &str) -> Result<&'c Credential, Denied> {
    if c.topics.iter().any(|t| t == route) {
        Ok(c)
    } else {
        Err(Denied::NotAllowed(format!(
            "credential {:?} may not publish to topic {route:?}",
            c.name
        )))
    }
}

/// The credential of `headers` that may publish to `route`, by key or
/// password (ID tokens are checked by the caller, asynchronously).
pub fn admit<'c>(
    credentials: &'c [Credential],
    headers: &HeaderMap,
    route: &str,
) -> Result<&'c Credential, Denied> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorization = header("authorization").unwrap_or_default();
    let (scheme, rest) = authorization.split_once(' ').unwrap_or(("", ""));
    let found = if let Some(key) = header("x-api-key") {
        let digest = sha256_hex(key.trim());
        credentials
            .iter()
            .find(|c| matches!(&c.check, Check::ApiKey { key_sha256 } if *key_sha256 == digest))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let digest = sha256_hex(rest.trim());
        credentials
            .iter()
            .find(|c| matches!(&c.check, Check::ApiKey { key_sha256 } if *key_sha256 == digest))
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(Denied::Unknown(
                "the Basic credentials are not base64 of user:password",
            ))?;
        let (user, password) = decoded.split_once(':').ok_or(Denied::Unknown(
            "the Basic credentials are not user:password",
        ))?;
        let digest = sha256_hex(password);
        credentials.iter().find(|c| {
            matches!(&c.check, Check::Basic { username, password_sha256 } if username == user && *password_sha256 == digest)
        })
    } else if authorization.is_empty() {
        return Err(Denied::Unknown(
            "no credential: send Authorization (Bearer or Basic) or X-Api-Key",
        ));
    } else {
        return Err(Denied::Unknown(
            "the Authorization scheme is neither Bearer nor Basic",
        ));
    };
    let c = found.ok_or(Denied::Unknown("the credential is not known"))?;
    allowed(c, route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Vec<Credential> {
        vec![
            Credential {
                name: "k".into(),
                topics: vec!["a".into()],
                check: Check::ApiKey {
                    key_sha256: sha256_hex("key"),
                },
            },
            Credential {
                name: "b".into(),
                topics: vec!["a".into(), "b".into()],
                check: Check::Basic {
                    username: "u".into(),
                    password_sha256: sha256_hex("pw"),
                },
            },
        ]
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn keys_and_passwords_are_matched_by_digest() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let c = credentials();
        assert_eq!(
            admit(&c, &headers(&[("x-api-key", "key")]), "a").map(|c| c.name.as_str()),
            Ok("k")
        );
        assert_eq!(
            admit(&c, &headers(&[("authorization", "bearer key")]), "a").map(|c| c.name.as_str()),
            Ok("k")
        );
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("u:pw")
        );
        assert_eq!(
            admit(&c, &headers(&[("authorization", &basic)]), "b").map(|c| c.name.as_str()),
            Ok("b")
        );
        // The key's digest is not the key.
        assert_eq!(
            admit(&c, &headers(&[("x-api-key", &sha256_hex("key"))]), "a").map(|c| c.name.as_str()),
            Err(Denied::Unknown("the credential is not known"))
        );
        assert!(matches!(
            admit(&c, &headers(&[("x-api-key", "key")]), "b"),
            Err(Denied::NotAllowed(_))
        ));
        assert!(
            matches!(admit(&c, &headers(&[("authorization", "Digest x")]), "a"), Err(Denied::Unknown(m)) if m.contains("neither Bearer nor Basic"))
        );
    }
}
