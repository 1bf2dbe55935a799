//! Push mode's request check against a local JWKS and tokens this test
//! signs: a good token passes; expired, wrong audience, wrong issuer,
//! unsigned, signed by another key, no verified email, another account's
//! and a missing token are all refused, 401 or 403 as the case is.

use axum::http::HeaderMap;
use gluefleet_runtime::push::{PushAuth, PushAuthKind, PushSettings, Refusal};
use gluefleet_testkit::oidc::{OidcKeys, push_claims, sign, unsigned};
use serde_json::json;

const AUDIENCE: &str = "https://orders-worker.example.run.app/";
const ACCOUNT: &str = "push@project.iam.gserviceaccount.com";

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        axum::http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_push_accounts_valid_token_for_this_audience_passes() {
    let keys = OidcKeys::start().await.expect("JWKS server");
    let auth = PushAuth::new(&PushSettings {
        auth: PushAuthKind::Oidc,
        audience: Some(AUDIENCE.into()),
        service_account: Some(ACCOUNT.into()),
        jwks_url: Some(keys.jwks_url()),
        ..PushSettings::default()
    })
    .expect("auth");
    let good = push_claims(AUDIENCE, ACCOUNT);
    assert_eq!(auth.check(&bearer(&sign(&good))).await, Ok(()));

    let with = |k: &str, v: serde_json::Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let now = good["iat"].as_u64().unwrap_or_default();
    let unauthenticated = [
        ("expired", sign(&with("exp", json!(now - 3600)))),
        (
            "wrong audience",
            sign(&with("aud", json!("https://other.example/"))),
        ),
        (
            "wrong issuer",
            sign(&with("iss", json!("https://evil.example"))),
        ),
        ("unsigned", unsigned(&good)),
        ("tampered", {
            let t = sign(&good);
            let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
            parts[1] = sign(&with("email", json!("x@evil.example")))
                .split('.')
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            parts.join(".")
        }),
        ("not a JWT", "hello".to_owned()),
    ];
    for (why, token) in unauthenticated {
        let r = auth.check(&bearer(&token)).await;
        assert!(
            matches!(r, Err(Refusal::Unauthenticated(_))),
            "{why}: {r:?}"
        );
    }
    assert!(matches!(
        auth.check(&HeaderMap::new()).await,
        Err(Refusal::Unauthenticated(_))
    ));
    let forbidden = [
        (
            "another account",
            sign(&with(
                "email",
                json!("someone@project.iam.gserviceaccount.com"),
            )),
        ),
        (
            "email not verified",
            sign(&with("email_verified", json!(false))),
        ),
        ("no email", {
            let mut c = good.clone();
            if let Some(o) = c.as_object_mut() {
                o.remove("email");
            }
            sign(&c)
        }),
    ];
    for (why, token) in forbidden {
        let r = auth.check(&bearer(&token)).await;
        assert!(matches!(r, Err(Refusal::Forbidden(_))), "{why}: {r:?}");
    }
}
