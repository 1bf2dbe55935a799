//! A stand-in for Google's OIDC signing keys, for push-mode tests: a JWKS
//! endpoint on 127.0.0.1 serving the test key's public half, and ID tokens
//! signed with its private half, shaped like the ones Pub/Sub push sends
//! (`iss`, `aud`, `email`, `email_verified`, `iat`, `exp`).
//!
//! The key is the testkit's fixture pair (`fixtures/test-jwks.json` holds
//! its modulus and exponent); no real system trusts it.

use crate::TestkitError;
use crate::salesforce::TEST_PRIVATE_KEY_PEM;
use crate::server::LocalServer;
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// The JWKS of the test key.
pub const TEST_JWKS: &str = include_str!("../fixtures/test-jwks.json");
/// The key id the JWKS names.
pub const KEY_ID: &str = "gluefleet-test-oidc";
/// Google's issuer, as push tokens carry it.
pub const ISSUER: &str = "https://accounts.google.com";

/// The JWKS server.
#[derive(Debug)]
pub struct OidcKeys {
    server: LocalServer,
}

impl OidcKeys {
    /// Serves `GET /certs` on a free port.
    pub async fn start() -> Result<Self, TestkitError> {
        let server = LocalServer::start("the OIDC key server", |_| {
            Router::new().route(
                "/certs",
                get(|| async {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        TEST_JWKS,
                    )
                }),
            )
        })
        .await?;
        Ok(Self { server })
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("http://{}/certs", self.server.addr())
    }
}

/// The claims of a good push token for `audience` from `email`, valid for
/// an hour from now; change any of them to make a bad one.
pub fn push_claims(audience: &str, email: &str) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "iss": ISSUER, "aud": audience, "email": email, "email_verified": true,
        "sub": "1137", "azp": "1137", "iat": now, "exp": now + 3600,
    })
}

/// `claims` signed RS256 with the test key, `kid` set.
///
/// # Panics
/// If the fixture key does not parse: a broken testkit.
pub fn sign(claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(KEY_ID.to_owned());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(TEST_PRIVATE_KEY_PEM.as_bytes())
        .expect("the fixture key parses");
    jsonwebtoken::encode(&header, claims, &key).expect("the claims sign")
}

/// `claims` as an unsigned token (`alg: none`), which must never pass.
pub fn unsigned(claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"alg": "none", "typ": "JWT", "kid": KEY_ID});
    format!(
        "{}.{}.",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    )
}
