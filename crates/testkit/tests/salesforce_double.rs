//! The Salesforce double keeps the documented contract connectors rely on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gluefleet_testkit::net;
use gluefleet_testkit::salesforce::{
    AppAllocation, JWT_BEARER_GRANT, LOGIN_AUDIENCE, LimitInfoForm, SalesforceConfig,
    SalesforceDouble, TEST_PRIVATE_KEY_PEM,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const V: &str = "v62.0";

fn client() -> reqwest::Client {
    net::fresh_client().expect("building a reqwest client")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An RS256 assertion over `claims`, signed with the fixture key.
fn sign(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(TEST_PRIVATE_KEY_PEM.as_bytes()).expect("fixture key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).expect("signing")
}

/// Claims the default config accepts, with `aud` = the double's url.
fn good_claims(double: &SalesforceDouble) -> Value {
    json!({
        "iss": "gluefleet-test-consumer",
        "sub": "integration@gluefleet.test",
        "aud": double.url(),
        "exp": now() + 120,
    })
}

struct Answer {
    status: u16,
    limit: Option<String>,
    body: Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let limit = response
        .headers()
        .get("sforce-limit-info")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.expect("reading body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("body is not JSON: {text}"))
    };
    Answer {
        status,
        limit,
        body,
    }
}

async fn token_request(double: &SalesforceDouble, form: &[(&str, &str)]) -> Answer {
    let response = client()
        .post(format!("{}/services/oauth2/token", double.url()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        )
        .send()
        .await
        .expect("token endpoint answers");
    answer(response).await
}

async fn jwt_grant(double: &SalesforceDouble, claims: &Value) -> Answer {
    let assertion = sign(claims);
    token_request(
        double,
        &[("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)],
    )
    .await
}

async fn access_token(double: &SalesforceDouble) -> String {
    let a = jwt_grant(double, &good_claims(double)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

async fn call(
    double: &SalesforceDouble,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client()
        .request(method, format!("{}/services/data/{V}/{path}", double.url()))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    answer(request.send().await.expect("double answers")).await
}

async fn upsert(double: &SalesforceDouble, token: &str, ext: &str, body: &Value) -> Answer {
    let path = format!("sobjects/Account/External_Id__c/{ext}");
    call(double, token, "PATCH", &path, Some(body)).await
}

async fn collection(double: &SalesforceDouble, token: &str, body: &Value) -> Answer {
    call(
        double,
        token,
        "PATCH",
        "composite/sobjects/Account/External_Id__c",
        Some(body),
    )
    .await
}

fn account(ext: &str, name: Option<&str>) -> Value {
    let mut record = json!({"attributes": {"type": "Account"}, "External_Id__c": ext});
    if let Some(name) = name {
        record["Name"] = json!(name);
    }
    record
}

async fn start() -> SalesforceDouble {
    SalesforceDouble::start(SalesforceConfig::default())
        .await
        .expect("start double")
}

fn assert_invalid_grant(a: &Answer, description: &str) {
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        a.body,
        json!({"error": "invalid_grant", "error_description": description})
    );
}

#[tokio::test]
async fn jwt_grant_issues_a_salesforce_shaped_token() {
    let double = start().await;
    let a = jwt_grant(&double, &good_claims(&double)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let body = a.body.as_object().expect("object");
    assert_eq!(body["instance_url"], json!(double.url()));
    assert_eq!(body["token_type"], json!("Bearer"));
    assert_eq!(body["scope"], json!("api"));
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.contains("/id/00D") && id.contains("/005"))
    );
    assert!(body["signature"].as_str().is_some_and(|s| !s.is_empty()));
    let issued_at = body["issued_at"].as_str().expect("issued_at is a string");
    let issued_ms: u128 = issued_at.parse().expect("epoch milliseconds");
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    assert!(now_ms.abs_diff(issued_ms) < 60_000, "{issued_at}");
    assert!(!body.contains_key("refresh_token"));
    assert!(!body.contains_key("expires_in"));
    assert!(a.limit.is_none(), "the token endpoint is not metered");

    // The token opens the API; the production login host is a valid aud too.
    let token = body["access_token"].as_str().expect("access_token");
    let a = call(
        &double,
        token,
        "GET",
        "sobjects/Account/External_Id__c/x",
        None,
    )
    .await;
    assert_eq!(a.status, 404, "{}", a.body);
    let mut claims = good_claims(&double);
    claims["aud"] = json!(LOGIN_AUDIENCE);
    assert_eq!(jwt_grant(&double, &claims).await.status, 200);
    assert_eq!(double.token_calls(), 2);
    assert_eq!(double.api_calls(), 1);
}

#[tokio::test]
async fn jwt_grant_refuses_bad_assertions_as_documented() {
    let double = start().await;

    let mut claims = good_claims(&double);
    claims["aud"] = json!("https://example.my.site.com");
    assert_invalid_grant(&jwt_grant(&double, &claims).await, "audience is invalid");

    let mut claims = good_claims(&double);
    claims["exp"] = json!(now() - 10);
    assert_invalid_grant(
        &jwt_grant(&double, &claims).await,
        "expired authorization code",
    );

    // Milliseconds instead of seconds: far outside "within 3 minutes".
    let mut claims = good_claims(&double);
    claims["exp"] = json!(now() * 1000);
    assert_invalid_grant(
        &jwt_grant(&double, &claims).await,
        "expired authorization code",
    );

    let mut claims = good_claims(&double);
    claims["sub"] = json!("someone-else@gluefleet.test");
    assert_invalid_grant(
        &jwt_grant(&double, &claims).await,
        "user hasn't approved this consumer",
    );

    let mut claims = good_claims(&double);
    claims["iss"] = json!("another-consumer");
    assert_invalid_grant(&jwt_grant(&double, &claims).await, "invalid assertion");

    // A valid signature over other claims: swap in a forged payload.
    let signed = sign(&good_claims(&double));
    let parts: Vec<&str> = signed.split('.').collect();
    let mut forged_claims = good_claims(&double);
    forged_claims["exp"] = json!(now() + 170);
    let forged_payload = sign(&forged_claims)
        .split('.')
        .nth(1)
        .expect("payload")
        .to_owned();
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    let a = token_request(
        &double,
        &[("grant_type", JWT_BEARER_GRANT), ("assertion", &forged)],
    )
    .await;
    assert_invalid_grant(&a, "invalid assertion");

    // Only RS256 is supported.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good_claims(&double),
        &EncodingKey::from_secret(b"shared"),
    )
    .expect("signing");
    let a = token_request(
        &double,
        &[("grant_type", JWT_BEARER_GRANT), ("assertion", &hs)],
    )
    .await;
    assert_invalid_grant(&a, "invalid assertion");

    assert_eq!(double.token_calls(), 7);
}

#[tokio::test]
async fn client_credentials_grant() {
    let double = start().await;
    let a = token_request(
        &double,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "gluefleet-test-consumer"),
            ("client_secret", "test-secret"),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["instance_url"], json!(double.url()));
    assert_eq!(a.body["token_type"], json!("Bearer"));

    // HTTP Basic, as oauth2 clients send by default.
    let response = client()
        .post(format!("{}/services/oauth2/token", double.url()))
        .basic_auth("gluefleet-test-consumer", Some("test-secret"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("answers");
    assert_eq!(answer(response).await.status, 200);

    let a = token_request(
        &double,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "gluefleet-test-consumer"),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body,
        json!({"error": "invalid_client", "error_description": "invalid client credentials"})
    );

    // The endpoint reads forms only: a JSON body carries no grant_type.
    let response = client()
        .post(format!("{}/services/oauth2/token", double.url()))
        .header("Content-Type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .expect("answers");
    let a = answer(response).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["error"], json!("unsupported_grant_type"));
}

#[tokio::test]
async fn single_upsert_creates_then_updates() {
    let double = start().await;
    let token = access_token(&double).await;

    let a = upsert(
        &double,
        &token,
        "ACME-1",
        &json!({"Name": "Acme", "Phone": "1"}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.body["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("001") && id.len() == 18, "{id}");
    assert_eq!(
        a.body,
        json!({"id": id, "success": true, "errors": [], "created": true})
    );
    assert_eq!(
        a.limit.as_deref(),
        Some("api-usage=1/15000; api-bursts=1/750")
    );

    let a = upsert(&double, &token, "ACME-1", &json!({"Phone": "2"})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body,
        json!({"id": id, "success": true, "errors": [], "created": false})
    );
    assert_eq!(
        a.limit.as_deref(),
        Some("api-usage=2/15000; api-bursts=1/750")
    );

    assert_eq!(double.record_count("Account"), 1);
    assert_eq!(
        double.record("Account", "ACME-1"),
        Some(json!({"Id": id, "Name": "Acme", "Phone": "2", "External_Id__c": "ACME-1"}))
    );

    let a = call(
        &double,
        &token,
        "GET",
        "sobjects/Account/External_Id__c/ACME-1",
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["Phone"], json!("2"));
    assert_eq!(a.body["attributes"]["type"], json!("Account"));
}

#[tokio::test]
async fn single_upsert_errors_are_error_arrays() {
    let double = start().await;
    let token = access_token(&double).await;

    let a = upsert(&double, &token, "NEW-1", &json!({"Phone": "1"})).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body,
        json!([{"message": "Required fields are missing: [Name]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Name"]}])
    );

    let a = call(
        &double,
        &token,
        "PATCH",
        "sobjects/Account/Nope__c/1",
        Some(&json!({"Name": "x"})),
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.body,
        json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
    );

    let a = upsert(&double, &token, "NEW-1", &json!([1, 2])).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body[0]["errorCode"], json!("JSON_PARSER_ERROR"));

    let a = upsert(
        &double,
        &token,
        "NEW-1",
        &json!({"Name": "x", "BadField": 1}),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body[0]["errorCode"], json!("INVALID_FIELD"));

    double.fail_record_when(|r| {
        (r["Name"] == "Forbidden").then(|| {
            (
                "FIELD_CUSTOM_VALIDATION_EXCEPTION".to_owned(),
                "Name not allowed".to_owned(),
                vec!["Name".to_owned()],
            )
        })
    });
    let a = upsert(&double, &token, "NEW-1", &json!({"Name": "Forbidden"})).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body,
        json!([{"message": "Name not allowed", "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": ["Name"]}])
    );

    assert_eq!(double.record_count("Account"), 0);
    // Refused calls are still API calls.
    assert_eq!(double.api_calls(), 5);
}

#[tokio::test]
async fn collection_upsert_reports_per_record_results_in_order() {
    let double = start().await;
    let token = access_token(&double).await;
    upsert(&double, &token, "C-2", &json!({"Name": "Before"})).await;
    double.fail_record_when(|r| {
        (r["Name"] == "Invalid").then(|| {
            (
                "FIELD_CUSTOM_VALIDATION_EXCEPTION".to_owned(),
                "Name is invalid".to_owned(),
                vec!["Name".to_owned()],
            )
        })
    });
    let calls_before = double.api_calls();

    let a = collection(
        &double,
        &token,
        &json!({"allOrNone": false, "records": [
            account("C-1", Some("One")),
            account("C-3", Some("Invalid")),
            account("C-2", Some("Two")),
        ]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        double.api_calls(),
        calls_before + 1,
        "one call for the batch"
    );
    let results = a.body.as_array().expect("array");
    assert_eq!(results.len(), 3);

    assert_eq!(results[0]["success"], json!(true));
    assert_eq!(results[0]["created"], json!(true));
    assert_eq!(results[0]["errors"], json!([]));
    assert_eq!(
        results[1],
        json!({"id": null, "success": false, "created": false, "errors": [
            {"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "Name is invalid", "fields": ["Name"]}
        ]})
    );
    assert_eq!(results[2]["success"], json!(true));
    assert_eq!(results[2]["created"], json!(false));
    assert_eq!(
        results[2]["id"],
        double.record("Account", "C-2").expect("C-2")["Id"]
    );

    assert_eq!(double.record_count("Account"), 2);
    assert_eq!(
        double.record("Account", "C-2").expect("C-2")["Name"],
        json!("Two")
    );
    assert!(double.record("Account", "C-3").is_none());
}

#[tokio::test]
async fn collection_upsert_all_or_none_rolls_back() {
    let double = start().await;
    let token = access_token(&double).await;
    upsert(&double, &token, "A-1", &json!({"Name": "Kept"})).await;

    let a = collection(
        &double,
        &token,
        &json!({"allOrNone": true, "records": [
            account("A-1", Some("Changed")),
            account("A-2", None),
            account("A-3", Some("New")),
        ]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let results = a.body.as_array().expect("array");
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[1]["errors"][0]["statusCode"],
        json!("REQUIRED_FIELD_MISSING")
    );
    for i in [0, 2] {
        assert_eq!(results[i]["success"], json!(false));
        assert_eq!(results[i]["id"], Value::Null);
        assert_eq!(
            results[i]["errors"],
            json!([{
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
                "fields": [],
            }])
        );
    }
    assert_eq!(double.record_count("Account"), 1);
    assert_eq!(
        double.record("Account", "A-1").expect("A-1")["Name"],
        json!("Kept")
    );

    // The same batch, valid, is stored whole.
    let a = collection(
        &double,
        &token,
        &json!({"allOrNone": true, "records": [
            account("A-1", Some("Changed")),
            account("A-3", Some("New")),
        ]}),
    )
    .await;
    assert!(
        a.body
            .as_array()
            .expect("array")
            .iter()
            .all(|r| r["success"] == json!(true))
    );
    assert_eq!(double.record_count("Account"), 2);
}

#[tokio::test]
async fn collection_upsert_takes_at_most_200_records() {
    let double = start().await;
    let token = access_token(&double).await;
    let batch = |n: usize| {
        let records: Vec<Value> = (0..n)
            .map(|i| account(&format!("B-{i}"), Some("Bulk")))
            .collect();
        json!({"records": records})
    };

    let a = collection(&double, &token, &batch(201)).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body[0]["errorCode"], json!("EXCEEDED_ID_LIMIT"));
    assert!(a.body[0]["message"].is_string());
    assert_eq!(double.record_count("Account"), 0);

    let a = collection(&double, &token, &batch(200)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body.as_array().map(Vec::len), Some(200));
    assert_eq!(double.record_count("Account"), 200);
}

#[tokio::test]
async fn collection_upsert_checks_each_record() {
    let double = start().await;
    let token = access_token(&double).await;
    let a = collection(
        &double,
        &token,
        &json!({"records": [
            {"attributes": {"type": "Contact"}, "External_Id__c": "X-1", "Name": "n"},
            {"attributes": {"type": "Account"}, "Name": "no ext id"},
            account("X-3", Some("dup")),
            account("X-3", Some("dup")),
        ]}),
    )
    .await;
    assert_eq!(a.status, 200);
    let codes: Vec<&Value> = a
        .body
        .as_array()
        .expect("array")
        .iter()
        .map(|r| &r["errors"][0]["statusCode"])
        .collect();
    assert_eq!(
        codes,
        [
            &json!("INVALID_TYPE"),
            &json!("MISSING_ARGUMENT"),
            &json!("DUPLICATE_EXTERNAL_ID"),
            &json!("DUPLICATE_EXTERNAL_ID"),
        ]
    );
    assert_eq!(double.record_count("Account"), 0);
}

#[tokio::test]
async fn limit_header_counts_and_limit_refuses() {
    let double = SalesforceDouble::start(SalesforceConfig {
        daily_limit: 3,
        initial_usage: 1,
        ..SalesforceConfig::default()
    })
    .await
    .expect("start double");
    let token = access_token(&double).await;

    // The versions list is neither metered nor labelled.
    let response = client()
        .get(format!("{}/services/data", double.url()))
        .send()
        .await
        .expect("answers");
    let versions = answer(response).await;
    assert_eq!(versions.status, 200);
    assert!(versions.limit.is_none());
    assert_eq!(
        versions.body.as_array().and_then(|v| v.last()).cloned(),
        Some(json!({"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}))
    );

    let a = upsert(&double, &token, "L-1", &json!({"Name": "One"})).await;
    assert_eq!(a.limit.as_deref(), Some("api-usage=2/3; api-bursts=1/750"));
    let a = upsert(&double, &token, "L-2", &json!({"Name": "Two"})).await;
    assert_eq!(a.status, 201);
    assert_eq!(a.limit.as_deref(), Some("api-usage=3/3; api-bursts=1/750"));

    let a = upsert(&double, &token, "L-3", &json!({"Name": "Three"})).await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.body,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(a.limit.as_deref(), Some("api-usage=3/3; api-bursts=1/750"));
    assert!(double.record("Account", "L-3").is_none());
    assert_eq!(double.api_calls(), 2);

    double.set_usage(0);
    let a = upsert(&double, &token, "L-3", &json!({"Name": "Three"})).await;
    assert_eq!(a.status, 201);
    assert_eq!(a.limit.as_deref(), Some("api-usage=1/3; api-bursts=1/750"));
}

#[tokio::test]
async fn limit_header_forms_and_the_app_allocation() {
    for (form, first, second) in [
        (
            LimitInfoForm::Current,
            "api-usage=6/100; api-bursts=1/750; per-app-api-usage=9/10(appName=gluefleet sync)",
            "api-usage=7/100; api-bursts=1/750; per-app-api-usage=10/10(appName=gluefleet sync)",
        ),
        (
            LimitInfoForm::UsageOnly,
            "api-usage=6/100; per-app-api-usage=9/10(appName=gluefleet sync)",
            "api-usage=7/100; per-app-api-usage=10/10(appName=gluefleet sync)",
        ),
        (
            LimitInfoForm::Commas,
            "api-usage=6/100, api-bursts=1/750, per-app-api-usage=9/10(appName=gluefleet sync)",
            "api-usage=7/100, api-bursts=1/750, per-app-api-usage=10/10(appName=gluefleet sync)",
        ),
    ] {
        let double = SalesforceDouble::start(SalesforceConfig {
            daily_limit: 100,
            initial_usage: 5,
            limit_info: form,
            app_allocation: Some(AppAllocation {
                name: "gluefleet sync".to_owned(),
                limit: 10,
                initial_usage: 8,
            }),
            ..SalesforceConfig::default()
        })
        .await
        .expect("start double");
        let token = access_token(&double).await;
        let a = upsert(&double, &token, "P-1", &json!({"Name": "One"})).await;
        assert_eq!(
            (a.status, a.limit.as_deref()),
            (201, Some(first)),
            "{form:?}"
        );
        let a = upsert(&double, &token, "P-2", &json!({"Name": "Two"})).await;
        assert_eq!(
            (a.status, a.limit.as_deref()),
            (201, Some(second)),
            "{form:?}"
        );
        // The app's allocation is spent while the org has calls left.
        let a = upsert(&double, &token, "P-3", &json!({"Name": "Three"})).await;
        assert_eq!(a.status, 403, "{form:?}");
        assert_eq!(a.body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
        assert_eq!(a.limit.as_deref(), Some(second), "not counted");
        assert_eq!(double.api_calls(), 2);
        double.set_app_usage(0);
        let a = upsert(&double, &token, "P-3", &json!({"Name": "Three"})).await;
        assert_eq!(a.status, 201, "{form:?}");
    }
}

#[tokio::test]
async fn expired_sessions_get_invalid_session_id() {
    let double = start().await;
    let token = access_token(&double).await;
    assert_eq!(
        upsert(&double, &token, "S-1", &json!({"Name": "x"}))
            .await
            .status,
        201
    );

    double.expire_sessions();
    let a = upsert(&double, &token, "S-1", &json!({"Name": "y"})).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.body,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    assert!(a.limit.is_none());
    assert_eq!(double.api_calls(), 1, "refused sessions are not metered");

    let a = upsert(&double, "not-a-token", "S-1", &json!({"Name": "y"})).await;
    assert_eq!(a.status, 401);

    // A new token works; the old one stays dead.
    let fresh = access_token(&double).await;
    let a = upsert(&double, &fresh, "S-1", &json!({"Name": "y"})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        upsert(&double, &token, "S-1", &json!({"Name": "z"}))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn sessions_expire_after_their_ttl() {
    let double = SalesforceDouble::start(SalesforceConfig {
        session_ttl: Duration::from_millis(300),
        ..SalesforceConfig::default()
    })
    .await
    .expect("start double");
    let token = access_token(&double).await;
    assert_eq!(
        upsert(&double, &token, "T-1", &json!({"Name": "x"}))
            .await
            .status,
        201
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let a = upsert(&double, &token, "T-1", &json!({"Name": "y"})).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body[0]["errorCode"], json!("INVALID_SESSION_ID"));
}

#[tokio::test]
async fn locked_rows_fail_once() {
    let double = start().await;
    let token = access_token(&double).await;

    double.lock_rows_once("R-1");
    let a = upsert(&double, &token, "R-1", &json!({"Name": "x"})).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body[0]["errorCode"], json!("UNABLE_TO_LOCK_ROW"));
    assert!(a.body[0].get("statusCode").is_none());
    assert!(double.record("Account", "R-1").is_none());
    let a = upsert(&double, &token, "R-1", &json!({"Name": "x"})).await;
    assert_eq!(a.status, 201, "{}", a.body);

    double.lock_rows_once("R-1");
    let body = json!({"records": [account("R-1", Some("y")), account("R-2", Some("z"))]});
    let a = collection(&double, &token, &body).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body[0]["success"], json!(false));
    assert_eq!(
        a.body[0]["errors"][0]["statusCode"],
        json!("UNABLE_TO_LOCK_ROW")
    );
    assert_eq!(a.body[1]["success"], json!(true));
    assert_eq!(
        double.record("Account", "R-1").expect("R-1")["Name"],
        json!("x")
    );

    let a = collection(&double, &token, &body).await;
    assert_eq!(a.body[0]["success"], json!(true), "{}", a.body);
    assert_eq!(
        double.record("Account", "R-1").expect("R-1")["Name"],
        json!("y")
    );
}

#[tokio::test]
async fn create_update_delete_by_id() {
    let double = start().await;
    let token = access_token(&double).await;

    let a = call(
        &double,
        &token,
        "POST",
        "sobjects/Contact",
        Some(&json!({"LastName": "Doe", "External_Id__c": "P-1"})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.body["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("003"));
    assert_eq!(a.body, json!({"id": id, "success": true, "errors": []}));

    let path = format!("sobjects/Contact/{id}");
    let a = call(
        &double,
        &token,
        "PATCH",
        &path,
        Some(&json!({"LastName": "Roe"})),
    )
    .await;
    assert_eq!(a.status, 204);
    assert_eq!(a.body, Value::Null);
    assert!(a.limit.is_some());
    assert_eq!(
        double.record("Contact", "P-1").expect("P-1")["LastName"],
        json!("Roe")
    );

    assert_eq!(
        call(&double, &token, "DELETE", &path, None).await.status,
        204
    );
    assert_eq!(double.record_count("Contact"), 0);
    let a = call(&double, &token, "DELETE", &path, None).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body[0]["errorCode"], json!("NOT_FOUND"));
}

#[tokio::test]
async fn stop_and_restart_keep_the_org() {
    let double = start().await;
    let token = access_token(&double).await;
    upsert(&double, &token, "D-1", &json!({"Name": "x"})).await;

    double.stop();
    let refused = client()
        .get(format!("{}/services/data", double.url()))
        .send()
        .await;
    assert!(refused.is_err(), "nothing listens after stop");

    double.restart().await.expect("restart");
    let a = upsert(&double, &token, "D-1", &json!({"Name": "y"})).await;
    assert_eq!(a.status, 200, "{}", a.body);

    let log = double.requests();
    let last = log.last().expect("logged");
    assert_eq!(last.method, "PATCH");
    assert_eq!(
        last.path,
        format!("/services/data/{V}/sobjects/Account/External_Id__c/D-1")
    );
    assert_eq!(last.status, 200);
    assert!(
        last.headers
            .get("authorization")
            .is_some_and(|h| h.starts_with("Bearer "))
    );
    assert!(log.iter().any(|r| r.path == "/services/oauth2/token"));
}
