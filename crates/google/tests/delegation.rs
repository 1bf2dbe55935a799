//! Domain-wide delegation against a small local token endpoint and IAM
//! `signJwt`: what is sent (form body, claims, signature, the keyless
//! request and its Authorization), how refusals and outages are classified,
//! and that tokens are fetched once per subject.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use gluefleet_core::auth::TokenProvider;
use gluefleet_google::delegation::signer::Claims;
use gluefleet_google::{Delegated, DelegationConfig};
use gluefleet_testkit::salesforce::{TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const ACCOUNT: &str = "svc@proj.iam.gserviceaccount.com";
const SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/spreadsheets",
    "https://www.googleapis.com/auth/gmail.send",
];

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    authorization: Option<String>,
    body: String,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    issued: Mutex<HashMap<String, u32>>,
}

fn public_key() -> DecodingKey {
    DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY_PEM.as_bytes()).expect("public key")
}

/// Verifies an assertion as Google's token endpoint would.
fn verify(assertion: &str, aud: &str) -> Result<(Header, Claims), String> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[aud]);
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| e.to_string())?;
    let claims = jsonwebtoken::decode::<Claims>(assertion, &public_key(), &validation)
        .map_err(|e| e.to_string())?
        .claims;
    Ok((header, claims))
}

fn form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    let path = uri.path().to_owned();
    shared.seen.lock().expect("lock").push(Seen {
        path: path.clone(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.clone(),
    });
    if path.ends_with(":signJwt") {
        // Sign the payload as IAM would, with the account's key.
        let Ok(payload) = serde_json::from_str::<Value>(&body) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let Some(Ok(claims)) = payload["payload"]
            .as_str()
            .map(serde_json::from_str::<Value>)
        else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("iam-key-1".into());
        let key = EncodingKey::from_rsa_pem(TEST_PRIVATE_KEY_PEM.as_bytes()).expect("key");
        let jwt = jsonwebtoken::encode(&header, &claims, &key).expect("sign");
        return axum::Json(json!({ "keyId": "iam-key-1", "signedJwt": jwt })).into_response();
    }
    let fields = form(&body);
    let Some(assertion) = fields.get("assertion") else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let sub = jsonwebtoken::dangerous::insecure_decode::<Value>(assertion)
        .ok()
        .and_then(|d| d.claims["sub"].as_str().map(str::to_owned))
        .unwrap_or_default();
    match sub.as_str() {
        "down@example.com" => (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response(),
        "denied@example.com" => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."
            })),
        )
            .into_response(),
        "ghost@example.com" => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_grant", "error_description": "Invalid email or User ID" })),
        )
            .into_response(),
        _ => {
            let mut issued = shared.issued.lock().expect("lock");
            let n = issued.entry(sub.clone()).or_default();
            *n += 1;
            axum::Json(json!({
                "access_token": format!("tok-{sub}-{n}"),
                "expires_in": 3599,
                "token_type": "Bearer"
            }))
            .into_response()
        }
    }
}

struct Endpoint {
    url: String,
    shared: Arc<Shared>,
}

impl Endpoint {
    async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, shared }
    }

    fn token_url(&self) -> String {
        format!("{}/token", self.url)
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("lock").clone()
    }

    fn token_calls(&self) -> usize {
        self.seen().iter().filter(|s| s.path == "/token").count()
    }
}

fn key_file_json() -> String {
    json!({
        "type": "service_account",
        "client_email": ACCOUNT,
        "private_key_id": "kid-42",
        "private_key": TEST_PRIVATE_KEY_PEM,
    })
    .to_string()
}

fn provider(config: Value) -> Delegated {
    let config: DelegationConfig = serde_json::from_value(config).expect("config");
    Delegated::new(
        &config,
        gluefleet_core::http::client().expect("client"),
        &|_| None,
    )
    .expect("provider")
}

fn with_key(endpoint: &Endpoint) -> Delegated {
    provider(json!({
        "key": key_file_json(),
        "scopes": SCOPES,
        "token_url": endpoint.token_url(),
    }))
}

#[tokio::test]
async fn a_key_file_assertion_carries_the_subject_and_is_traded_once() {
    let endpoint = Endpoint::start().await;
    let p = with_key(&endpoint);
    let c = p
        .credential_for("ann@example.com")
        .await
        .expect("credential");
    assert_eq!(c.subject(), Some("ann@example.com"));
    assert_eq!(
        c.header_value().expect("header").to_str().ok(),
        Some("Bearer tok-ann@example.com-1")
    );
    let seen = endpoint.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let fields = form(&seen[0].body);
    assert_eq!(
        fields.get("grant_type").map(String::as_str),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let (header, claims) = verify(&fields["assertion"], &endpoint.token_url()).expect("verified");
    assert_eq!(header.kid.as_deref(), Some("kid-42"));
    assert_eq!(claims.iss, ACCOUNT);
    assert_eq!(claims.sub, "ann@example.com");
    assert_eq!(claims.scope, SCOPES.join(" "));
    assert_eq!(claims.aud, endpoint.token_url());
    assert!(
        claims.exp > claims.iat && claims.exp - claims.iat <= 3600,
        "{claims:?}"
    );
    // Cached: the same token, no second call.
    let again = p
        .credential_for("ann@example.com")
        .await
        .expect("credential");
    assert_eq!(again.generation(), c.generation());
    assert_eq!(endpoint.token_calls(), 1);
    // A 401 on ann's token drops ann's only.
    let bob = p.credential_for("bob@example.com").await.expect("bob");
    p.invalidate(&c);
    let fresh = p
        .credential_for("ann@example.com")
        .await
        .expect("credential");
    assert_eq!(
        fresh.header_value().expect("header").to_str().ok(),
        Some("Bearer tok-ann@example.com-2")
    );
    let bob_again = p.credential_for("bob@example.com").await.expect("bob");
    assert_eq!(bob_again.generation(), bob.generation());
    assert_eq!(endpoint.token_calls(), 3);
}

#[tokio::test]
async fn a_hundred_subjects_cost_a_hundred_token_calls_not_one_per_event() {
    let endpoint = Endpoint::start().await;
    let p = with_key(&endpoint);
    for round in 0..3 {
        for i in 0..100 {
            let s = format!("user{i}@example.com");
            let c = p.credential_for(&s).await.expect("credential");
            assert_eq!(c.subject(), Some(s.as_str()), "round {round}");
        }
    }
    assert_eq!(endpoint.token_calls(), 100);
    assert_eq!(p.fetches(), 100);
    assert_eq!(p.subjects_held(), 100);
}

#[tokio::test]
async fn a_refused_delegation_is_permanent_and_says_what_to_fix() {
    let endpoint = Endpoint::start().await;
    let p = with_key(&endpoint);
    let e = p
        .credential_for("denied@example.com")
        .await
        .expect_err("refused");
    assert!(!e.is_transient(), "{e}");
    let text = e.to_string();
    assert!(text.contains("denied@example.com"), "{text}");
    assert!(text.contains("unauthorized_client"), "{text}");
    assert!(
        text.contains("Admin console") && text.contains(SCOPES[1]),
        "{text}"
    );
    let e = p
        .credential_for("ghost@example.com")
        .await
        .expect_err("refused");
    assert!(!e.is_transient(), "{e}");
    assert!(
        e.to_string().contains("invalid_grant") && e.to_string().contains("ghost@example.com"),
        "{e}"
    );
}

#[tokio::test]
async fn an_unavailable_endpoint_is_transient() {
    let endpoint = Endpoint::start().await;
    let p = with_key(&endpoint);
    let e = p.credential_for("down@example.com").await.expect_err("503");
    assert!(e.is_transient(), "{e}");
    assert!(e.to_string().contains("503"), "{e}");
    // Nothing listens there any more: transient too.
    let closed = provider(json!({
        "key": key_file_json(),
        "scopes": SCOPES,
        "token_url": "http://127.0.0.1:9/token",
    }));
    let e = closed
        .credential_for("ann@example.com")
        .await
        .expect_err("refused connection");
    assert!(e.is_transient(), "{e}");
}

#[tokio::test]
async fn keyless_signs_through_sign_jwt_with_the_runtimes_own_token() {
    let endpoint = Endpoint::start().await;
    let p = provider(json!({
        "service_account": ACCOUNT,
        "scopes": SCOPES,
        "subject": "admin@example.com",
        "token_url": endpoint.token_url(),
        "iam_url": endpoint.url,
        "own_token": "own-token-123",
    }));
    // No subject asked: the configured default.
    let c = p.credential().await.expect("credential");
    assert_eq!(c.subject(), Some("admin@example.com"));
    let seen = endpoint.seen();
    assert_eq!(seen.len(), 2, "signJwt then the token: {seen:?}");
    let sign = &seen[0];
    assert_eq!(
        sign.path,
        format!("/v1/projects/-/serviceAccounts/{ACCOUNT}:signJwt")
    );
    assert_eq!(sign.authorization.as_deref(), Some("Bearer own-token-123"));
    let body: Value = serde_json::from_str(&sign.body).expect("JSON body");
    let payload: Claims =
        serde_json::from_str(body["payload"].as_str().expect("payload is a string"))
            .expect("claims");
    assert_eq!(payload.iss, ACCOUNT);
    assert_eq!(payload.sub, "admin@example.com");
    assert_eq!(payload.scope, SCOPES.join(" "));
    assert_eq!(payload.aud, endpoint.token_url());
    assert!(payload.exp - payload.iat <= 3600, "{payload:?}");
    // The token endpoint got the JWT IAM signed, with no credential of ours.
    let token = &seen[1];
    assert_eq!(token.path, "/token");
    assert_eq!(token.authorization, None);
    let (header, claims) =
        verify(&form(&token.body)["assertion"], &endpoint.token_url()).expect("verified");
    assert_eq!(header.kid.as_deref(), Some("iam-key-1"));
    assert_eq!(claims, payload);
}

#[tokio::test]
async fn keyless_takes_its_own_token_from_the_environment() {
    let endpoint = Endpoint::start().await;
    let config: DelegationConfig = serde_json::from_value(json!({
        "service_account": ACCOUNT,
        "scopes": SCOPES,
        "token_url": endpoint.token_url(),
        "iam_url": endpoint.url,
    }))
    .expect("config");
    let env = |name: &str| (name == "GOOGLE_OAUTH_ACCESS_TOKEN").then(|| "env-token".to_owned());
    let p = Delegated::new(
        &config,
        gluefleet_core::http::client().expect("client"),
        &env,
    )
    .expect("provider");
    p.credential_for("ann@example.com")
        .await
        .expect("credential");
    assert_eq!(
        endpoint.seen()[0].authorization.as_deref(),
        Some("Bearer env-token")
    );
}
