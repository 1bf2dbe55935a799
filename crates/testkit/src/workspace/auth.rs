//! Domain-wide delegation: the token endpoint, keyless signing, and the
//! bearer check of every API call.
//!
//! `POST /token`, form-encoded `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
//! and `assertion=<JWT>`. The assertion must be RS256, header `kid` =
//! [`super::KEY_ID`], signed by the service account's key; `iss` =
//! the service account, `aud` = [`token_url`](super::WorkspaceDouble::token_url),
//! `iat` and `exp` integers with `exp - iat <= 3600`, `exp` not past and
//! `iat` not ahead (60 s of skew each way), `scope` space separated and all
//! of it granted to the client, `sub` a domain user. Success is `200
//! {"access_token":"ya29.…","expires_in":3599,"token_type":"Bearer"}`.
//!
//! Errors, as Google words them where it is known:
//!
//! * wrong signature, algorithm or `kid`, or a malformed JWT: `400
//!   invalid_grant` "Invalid JWT Signature.";
//! * an `iss` other than the service account: `400 invalid_grant` "Invalid
//!   grant: account not found";
//! * `iat`/`exp` missing, too far apart or out of time: `400 invalid_grant`
//!   "Invalid JWT: Token must be a short-lived token (60 minutes) and in a
//!   reasonable timeframe. Check your iat and exp values in the JWT claim.";
//! * `aud` other than the token URL: `400 invalid_grant` "Invalid JWT:
//!   Failed audience check." (the double's wording; Google's is not
//!   documented);
//! * an unknown `sub`: `400 invalid_grant` "Invalid email or User ID";
//! * no `scope`: `400 invalid_scope` "Empty or missing scope not allowed.";
//! * a scope not granted: `401 unauthorized_client` "Client is unauthorized
//!   to retrieve access tokens using this method, or client not authorized
//!   for any of the scopes requested.";
//! * another grant type: `400 unsupported_grant_type`.
//!
//! An assertion without `sub` gets a token for the service account itself
//! (no delegation, so no scope allowlist); Workspace calls with it answer
//! `403 PERMISSION_DENIED` "The caller does not have permission", as the
//! account is no user of the domain.
//!
//! `POST /v1/projects/-/serviceAccounts/{email}:signJwt` needs
//! `Authorization: Bearer` [`runtime_token`](super::WorkspaceDouble::runtime_token)
//! (else `401 UNAUTHENTICATED`), `email` = the service account (else `403
//! PERMISSION_DENIED`, `iam.serviceAccounts.signJwt` denied) and a project of
//! `-` (else `400`); `payload` must be a JSON object whose `exp`, if any, is
//! not past and at most 12 h ahead. It answers `{"keyId","signedJwt"}`,
//! signed with the service account's key, so `/token` accepts it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, Header, Validation};
use serde_json::{Value, json};

use super::discovery::Method;
use super::errors::{self, json_reply, oauth};
use super::{Call, Issued, KEY_ID, Shared, State, unique_suffix, unix_now};
use crate::http_target::{LoggedRequest, Reply, lock};

/// The JWT bearer grant type.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Longest `exp - iat` Google accepts.
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// Clock skew allowed on `iat` and `exp`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

const UNAUTHORIZED_CLIENT: &str = "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.";
const BAD_TIME: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";
const BAD_SIGNATURE: &str = "Invalid JWT Signature.";

fn bearer(request: &LoggedRequest) -> Option<&str> {
    let header = request.headers.get("authorization")?;
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `POST /token`.
pub(crate) fn token(shared: &Shared, request: &LoggedRequest) -> Reply {
    lock(&shared.state).token_calls += 1;
    if request.method != "POST" {
        return oauth(400, "invalid_request", "Use POST.");
    }
    let params: HashMap<String, String> = url::form_urlencoded::parse(request.body.as_bytes())
        .into_owned()
        .collect();
    match params.get("grant_type").map(String::as_str) {
        Some(JWT_BEARER_GRANT) => {}
        Some(other) => {
            return oauth(
                400,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            );
        }
        None => {
            return oauth(
                400,
                "invalid_request",
                "Missing required parameter: grant_type",
            );
        }
    }
    let Some(assertion) = params.get("assertion").filter(|a| !a.is_empty()) else {
        return oauth(
            400,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    match grant(shared, assertion) {
        Ok(reply) | Err(reply) => reply,
    }
}

fn grant(shared: &Shared, assertion: &str) -> Result<Reply, Reply> {
    let invalid_grant = |d: &str| oauth(400, "invalid_grant", d);
    let header =
        jsonwebtoken::decode_header(assertion).map_err(|_| invalid_grant(BAD_SIGNATURE))?;
    if header.alg != Algorithm::RS256 || header.kid.as_deref() != Some(KEY_ID) {
        return Err(invalid_grant(BAD_SIGNATURE));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.required_spec_claims = HashSet::new();
    let claims = jsonwebtoken::decode::<Value>(assertion, &shared.decoding_key, &validation)
        .map_err(|_| invalid_grant(BAD_SIGNATURE))?
        .claims;
    let config = &shared.config;
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    if let Some(subject) = &subject {
        *lock(&shared.state)
            .token_calls_by_subject
            .entry(subject.clone())
            .or_default() += 1;
    }
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if !iss.eq_ignore_ascii_case(&config.service_account) {
        return Err(invalid_grant("Invalid grant: account not found"));
    }
    let token_url = format!("{}/token", shared.url);
    if claims.get("aud").and_then(Value::as_str) != Some(token_url.as_str()) {
        return Err(invalid_grant("Invalid JWT: Failed audience check."));
    }
    let now = unix_now();
    let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_u64),
        claims.get("exp").and_then(Value::as_u64),
    ) else {
        return Err(invalid_grant(BAD_TIME));
    };
    let skew = CLOCK_SKEW.as_secs();
    if exp < iat
        || exp - iat > MAX_ASSERTION_LIFETIME.as_secs()
        || exp + skew <= now
        || iat > now + skew
    {
        return Err(invalid_grant(BAD_TIME));
    }
    let scopes: Vec<String> = claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return Err(oauth(
            400,
            "invalid_scope",
            "Empty or missing scope not allowed.",
        ));
    }
    let mut state = lock(&shared.state);
    let subject = match subject {
        Some(subject) => {
            if !state.users.contains_key(&subject) {
                return Err(invalid_grant("Invalid email or User ID"));
            }
            if !scopes.iter().all(|s| config.granted_scopes.contains(s)) {
                return Err(oauth(401, "unauthorized_client", UNAUTHORIZED_CLIENT));
            }
            subject
        }
        None => config.service_account.to_ascii_lowercase(),
    };
    let token = format!("ya29.a0{}{:06}", unique_suffix(), state.next());
    state.tokens.insert(
        token.clone(),
        Issued {
            subject,
            scopes,
            until: Instant::now() + config.token_lifetime,
        },
    );
    Ok(json_reply(
        200,
        &json!({
            "access_token": token,
            "expires_in": config.token_lifetime.as_secs(),
            "token_type": "Bearer",
        }),
    ))
}

/// The runtime's bearer, for `signJwt`.
pub(crate) fn runtime_caller(shared: &Shared, request: &LoggedRequest) -> Result<(), Reply> {
    if bearer(request) == Some(shared.runtime_token.as_str()) {
        Ok(())
    } else {
        Err(errors::invalid_credentials())
    }
}

/// The acting user of an API call, once token, scopes and role allow it.
pub(crate) fn api_caller(
    shared: &Shared,
    request: &LoggedRequest,
    method: &Method,
) -> Result<String, Reply> {
    let state = lock(&shared.state);
    let issued = bearer(request)
        .and_then(|t| state.tokens.get(t))
        .filter(|i| Instant::now() < i.until)
        .ok_or_else(errors::invalid_credentials)?;
    if !method
        .scopes()
        .any(|s| issued.scopes.iter().any(|t| t == s))
    {
        return Err(errors::insufficient_scopes(
            super::faults::service(&method.id),
            &method.id,
        ));
    }
    let Some(&admin) = state.users.get(&issued.subject) else {
        return Err(errors::both(
            403,
            "forbidden",
            "The caller does not have permission",
        ));
    };
    if method.id.starts_with("directory.") && !admin {
        return Err(errors::both(
            403,
            "forbidden",
            "Not Authorized to access this resource/api",
        ));
    }
    Ok(issued.subject.clone())
}

/// `signJwt`, after the runtime bearer and the Discovery check.
pub(crate) fn sign_jwt(shared: &Shared, state: &mut State, call: &Call<'_>) -> Reply {
    let _ = state;
    let project = call.param("projectsId");
    let account = call.param("serviceAccountsId");
    if project != "-" {
        return errors::both(
            400,
            "badRequest",
            "The `-` wildcard character is required for the project of the service account name; replacing it with a project ID is invalid.",
        );
    }
    if !account.eq_ignore_ascii_case(&shared.config.service_account) {
        return json_reply(
            403,
            &json!({"error": {
                "code": 403,
                "message": "Permission 'iam.serviceAccounts.signJwt' denied on resource (or it may not exist).",
                "status": "PERMISSION_DENIED",
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "IAM_PERMISSION_DENIED",
                    "domain": "iam.googleapis.com",
                    "metadata": {"permission": "iam.serviceAccounts.signJwt"},
                }],
            }}),
        );
    }
    let body = call.body();
    let payload = body.get("payload").and_then(Value::as_str).unwrap_or("");
    let Ok(claims @ Value::Object(_)) = serde_json::from_str::<Value>(payload) else {
        return errors::both(
            400,
            "badRequest",
            "Invalid JWT payload: the payload must be a serialized JSON object.",
        );
    };
    if let Some(exp) = claims.get("exp") {
        let now = unix_now();
        let ok = exp
            .as_u64()
            .is_some_and(|exp| exp >= now && exp <= now + 12 * 3600);
        if !ok {
            return errors::both(
                400,
                "badRequest",
                "Invalid JWT payload: exp must be an integer timestamp that is not in the past and no more than 12 hours in the future.",
            );
        }
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KEY_ID.to_owned());
    match jsonwebtoken::encode(&header, &claims, &shared.encoding_key) {
        Ok(jwt) => json_reply(200, &json!({"keyId": KEY_ID, "signedJwt": jwt})),
        Err(e) => errors::both(500, "backendError", &format!("signing failed: {e}")),
    }
}
