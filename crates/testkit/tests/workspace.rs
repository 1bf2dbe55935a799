//! The Google Workspace double keeps Google's contract: requests checked
//! against the Discovery documents, domain-wide delegation verified,
//! keyless signing, each API's idempotency answers, and every fault with
//! its documented status and body.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use gluefleet_testkit::net;
use gluefleet_testkit::salesforce::TEST_PRIVATE_KEY_PEM;
use gluefleet_testkit::workspace::auth::JWT_BEARER_GRANT;
use gluefleet_testkit::workspace::{
    CALENDAR_EVENTS_SCOPE, DIRECTORY_USER_SCOPE, Fault, GMAIL_READONLY_SCOPE, GMAIL_SEND_SCOPE,
    KEY_ID, SHEETS_SCOPE, WorkspaceConfig, WorkspaceDouble,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ALICE: &str = "alice@example.com";
const ADMIN: &str = "admin@example.com";
const ALL: [&str; 5] = [
    SHEETS_SCOPE,
    GMAIL_SEND_SCOPE,
    GMAIL_READONLY_SCOPE,
    CALENDAR_EVENTS_SCOPE,
    DIRECTORY_USER_SCOPE,
];

fn client() -> reqwest::Client {
    net::fresh_client().expect("building a reqwest client")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

async fn double() -> WorkspaceDouble {
    WorkspaceDouble::start(WorkspaceConfig::default())
        .await
        .expect("starting the Workspace double")
}

fn sign(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(TEST_PRIVATE_KEY_PEM.as_bytes()).expect("fixture key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KEY_ID.to_owned());
    jsonwebtoken::encode(&header, claims, &key).expect("signing")
}

fn claims(double: &WorkspaceDouble, sub: &str, scopes: &[&str]) -> Value {
    let iat = now();
    json!({
        "iss": double.service_account(),
        "sub": sub,
        "scope": scopes.join(" "),
        "aud": double.token_url(),
        "iat": iat,
        "exp": iat + 3600,
    })
}

/// `(status, body)` of a token request with this assertion.
async fn exchange(double: &WorkspaceDouble, assertion: &str) -> (u16, Value) {
    let response = client()
        .post(double.token_url())
        .form(&[("grant_type", JWT_BEARER_GRANT), ("assertion", assertion)])
        .send()
        .await
        .expect("token request");
    answer(response).await
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("reading body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("body is not JSON: {text}"))
    };
    (status, body)
}

async fn token_for(double: &WorkspaceDouble, sub: &str, scopes: &[&str]) -> String {
    let (status, body) = exchange(double, &sign(&claims(double, sub, scopes))).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// `(status, body)` of an API call.
async fn call(
    double: &WorkspaceDouble,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client()
        .request(method, format!("{}{path}", double.url()))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request.send().await.expect("API request")).await
}

fn reason(body: &Value) -> &str {
    body["error"]["errors"][0]["reason"].as_str().unwrap_or("")
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

const APPEND: &str = "/v4/spreadsheets/book/values/Sheet1%21A1:append";

#[tokio::test]
async fn requests_that_do_not_fit_the_discovery_documents_are_refused_and_recorded() {
    let double = double().await;
    double.create_spreadsheet("book", &["Sheet1"]);
    let token = token_for(&double, ALICE, &[SHEETS_SCOPE]).await;
    let good = json!({"values": [["k1", "a"]]});

    let (status, body) = call(
        &double,
        &token,
        "POST",
        &format!("{APPEND}?valueInputOption=RAW&insertDataOption=INSERT_ROWS"),
        Some(good.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(double.violations().is_empty(), "{:?}", double.violations());

    let cases = [
        (
            format!("{APPEND}?valueInputOption=RAW"),
            json!({"valuess": [["k"]]}),
            "valuess",
        ),
        (APPEND.to_owned(), good.clone(), "valueInputOption"),
        (
            format!("{APPEND}?valueInputOption=RAW&insertDataOption=APPEND"),
            good.clone(),
            "insertDataOption",
        ),
        (
            format!("{APPEND}?valueInputOption=RAW&dryRun=true"),
            good.clone(),
            "dryRun",
        ),
        (
            format!("{APPEND}?valueInputOption=RAW"),
            json!({"values": "k1"}),
            "values",
        ),
    ];
    for (i, (path, body, named)) in cases.into_iter().enumerate() {
        let (status, answer) = call(&double, &token, "POST", &path, Some(body)).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT", "{answer}");
        assert!(message(&answer).contains(named), "{path}: {answer}");
        assert_eq!(double.violations().len(), i + 1);
        assert!(double.violations()[i].starts_with("sheets.spreadsheets.values.append: "));
    }
    assert_eq!(
        double.rows("book", "Sheet1"),
        vec![vec![json!("k1"), json!("a")]]
    );

    let (status, body) = call(&double, &token, "GET", "/v4/nothing", None).await;
    assert_eq!((status, body["error"]["code"].as_u64()), (404, Some(404)));
}

#[tokio::test]
async fn a_delegated_token_acts_as_its_subject() {
    let double = double().await;
    let token = token_for(&double, ALICE, &ALL).await;
    assert_eq!(
        (double.token_calls(), double.token_calls_for(ALICE)),
        (1, 1)
    );
    assert_eq!(double.token_calls_for("bob@example.com"), 0);
    let (status, body) = call(&double, &token, "GET", "/gmail/v1/users/me/profile", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["emailAddress"], ALICE);

    // The key file a connector reads names the same account, key and URL.
    let key: Value = serde_json::from_str(&double.service_account_key_json()).expect("JSON");
    assert_eq!(key["type"], "service_account");
    assert_eq!(key["client_email"], double.service_account());
    assert_eq!(key["private_key_id"], KEY_ID);
    assert_eq!(key["token_uri"], double.token_url());
    assert!(
        key["private_key"]
            .as_str()
            .is_some_and(|k| k.contains("BEGIN PRIVATE KEY"))
    );

    double.expire_tokens();
    let (status, body) = call(&double, &token, "GET", "/gmail/v1/users/me/profile", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(reason(&body), "authError");
    assert_eq!(body["error"]["errors"][0]["location"], "Authorization");
    assert_eq!(body["error"]["errors"][0]["locationType"], "header");
    let (status, _) = call(
        &double,
        "ya29.never-issued",
        "GET",
        "/gmail/v1/users/me/profile",
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn bad_assertions_get_googles_errors() {
    let double = double().await;
    let good = claims(&double, ALICE, &[SHEETS_SCOPE]);
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let invalid_grant = [
        (
            with("exp", json!(now() - 120)).tap_iat(now() - 600),
            "iat and exp",
        ),
        (with("exp", json!(now() + 3700)), "iat and exp"),
        (
            with("aud", json!("https://oauth2.googleapis.com/token")),
            "audience",
        ),
        (
            with("sub", json!("mallory@example.com")),
            "Invalid email or User ID",
        ),
        (
            with("iss", json!("other@p.iam.gserviceaccount.com")),
            "account not found",
        ),
    ];
    for (claims, description) in invalid_grant {
        let (status, body) = exchange(&double, &sign(&claims)).await;
        assert_eq!(status, 400, "{claims}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains(description)),
            "{body}"
        );
    }

    // A signature over other claims.
    let a = sign(&good);
    let b = sign(&with("sub", json!("bob@example.com")));
    let forged = format!(
        "{}.{}",
        b.rsplit_once('.').expect("a JWT").0,
        a.rsplit_once('.').expect("a JWT").1
    );
    let (status, body) = exchange(&double, &forged).await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (400, Some("Invalid JWT Signature."))
    );

    let (status, body) = exchange(
        &double,
        &sign(&with(
            "scope",
            json!("https://www.googleapis.com/auth/drive"),
        )),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(
        body["error_description"],
        "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."
    );
    assert_eq!(double.token_calls(), 7);
    assert_eq!(
        double.token_calls_for(ALICE),
        5,
        "verified assertions with sub alice"
    );
}

trait TapIat {
    fn tap_iat(self, iat: u64) -> Self;
}

impl TapIat for Value {
    fn tap_iat(mut self, iat: u64) -> Self {
        self["iat"] = json!(iat);
        self
    }
}

#[tokio::test]
async fn sign_jwt_signs_keylessly_for_the_service_account_only() {
    let double = double().await;
    let payload = claims(&double, ADMIN, &[DIRECTORY_USER_SCOPE]).to_string();
    let account = double.service_account().to_owned();
    let path = format!("/v1/projects/-/serviceAccounts/{account}:signJwt");
    let (status, body) = call(
        &double,
        double.runtime_token(),
        "POST",
        &path,
        Some(json!({"payload": payload, "delegates": []})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keyId"], KEY_ID);
    let jwt = body["signedJwt"].as_str().expect("signedJwt");
    let (status, body) = exchange(&double, jwt).await;
    assert_eq!(
        status, 200,
        "the token endpoint accepts what signJwt signed: {body}"
    );
    let token = body["access_token"].as_str().expect("token").to_owned();
    let (status, _) = call(
        &double,
        &token,
        "GET",
        "/admin/directory/v1/users?customer=my_customer&maxResults=1",
        None,
    )
    .await;
    assert_eq!(status, 200);

    let (status, body) = call(
        &double,
        "ya29.wrong",
        "POST",
        &path,
        Some(json!({"payload": payload})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let other = "/v1/projects/-/serviceAccounts/other@p.iam.gserviceaccount.com:signJwt";
    let (status, body) = call(
        &double,
        double.runtime_token(),
        "POST",
        other,
        Some(json!({"payload": payload})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    assert!(
        message(&body).contains("iam.serviceAccounts.signJwt"),
        "{body}"
    );
    let (status, _) = call(
        &double,
        double.runtime_token(),
        "POST",
        &path,
        Some(json!({"payload": payload, "lifetime": "60s"})),
    )
    .await;
    assert_eq!(status, 400, "signJwt's body is checked too");
    assert_eq!(double.sign_jwt_calls(), 4);
    // The runtime token is no Workspace credential.
    let (status, _) = call(
        &double,
        double.runtime_token(),
        "GET",
        "/gmail/v1/users/me/profile",
        None,
    )
    .await;
    assert_eq!(status, 401);
}

fn event(id: &str) -> Value {
    json!({
        "id": id,
        "summary": "Standup",
        "start": {"dateTime": "2026-12-01T10:00:00Z"},
        "end": {"dateTime": "2026-12-01T10:15:00Z"},
    })
}

#[tokio::test]
async fn calendar_ids_are_unique_per_calendar_even_after_delete() {
    let double = double().await;
    let token = token_for(&double, ALICE, &ALL).await;
    let events = "/calendar/v3/calendars/primary/events";
    let (status, body) = call(&double, &token, "POST", events, Some(event("evt0001abc"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "confirmed");
    let (status, body) = call(&double, &token, "POST", events, Some(event("evt0001abc"))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        (reason(&body), message(&body)),
        ("duplicate", "The requested identifier already exists.")
    );
    assert_eq!(double.events(ALICE).len(), 1);

    let (status, body) = call(
        &double,
        &token,
        "PATCH",
        &format!("{events}/evt0001abc"),
        Some(json!({"summary": "Retro"})),
    )
    .await;
    assert_eq!(
        (
            status,
            body["summary"].as_str(),
            body["start"]["dateTime"].as_str()
        ),
        (200, Some("Retro"), Some("2026-12-01T10:00:00Z"))
    );

    let (status, _) = call(
        &double,
        &token,
        "DELETE",
        &format!("{events}/evt0001abc"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = call(
        &double,
        &token,
        "DELETE",
        &format!("{events}/evt0001abc"),
        None,
    )
    .await;
    assert_eq!((status, reason(&body)), (410, "deleted"));
    let (status, body) = call(&double, &token, "POST", events, Some(event("evt0001abc"))).await;
    assert_eq!(
        (status, reason(&body)),
        (409, "duplicate"),
        "a cancelled event keeps its id"
    );
    assert!(double.events(ALICE).is_empty());
    assert_eq!(
        double.event(ALICE, "evt0001abc").expect("kept")["status"],
        "cancelled"
    );

    let (status, body) = call(
        &double,
        &token,
        "DELETE",
        &format!("{events}/unknown1"),
        None,
    )
    .await;
    assert_eq!((status, reason(&body)), (404, "notFound"));
    for bad in ["EVT0001", "abc", "evt-0001", "wxyz12345"] {
        let (status, body) = call(&double, &token, "POST", events, Some(event(bad))).await;
        assert_eq!(
            (status, message(&body)),
            (400, "Invalid resource id value."),
            "{bad}"
        );
    }
    let (status, body) = call(
        &double,
        &token,
        "POST",
        events,
        Some(json!({"id": "evt0002abc", "start": {"date": "2026-12-01"}})),
    )
    .await;
    assert_eq!(
        (status, reason(&body)),
        (400, "required"),
        "end is required: {body}"
    );
    assert_eq!(double.applied("calendar.events.insert"), 1);
}

#[tokio::test]
async fn sheets_append_then_read_the_key_column() {
    let double = double().await;
    double.create_spreadsheet("book", &["Sheet1", "Other"]);
    let token = token_for(&double, ALICE, &[SHEETS_SCOPE]).await;
    let (status, body) = call(&double, &token, "POST", "/v4/spreadsheets/book/values/Sheet1%21A:C:append?valueInputOption=USER_ENTERED&insertDataOption=INSERT_ROWS", Some(json!({"values": [["k1", "a", "1"], ["k2", "b", "2"]]}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["updates"]["updatedRange"], "Sheet1!A1:C2");
    assert_eq!(
        (
            body["updates"]["updatedRows"].as_u64(),
            body["updates"]["updatedCells"].as_u64()
        ),
        (Some(2), Some(6))
    );
    assert!(body.get("tableRange").is_none(), "no table yet: {body}");
    let (status, body) = call(
        &double,
        &token,
        "POST",
        "/v4/spreadsheets/book/values/Sheet1!A1:append?valueInputOption=RAW",
        Some(json!({"values": [["k3", "c", "3"]]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tableRange"], "Sheet1!A1:C2");
    assert_eq!(body["updates"]["updatedRange"], "Sheet1!A3:C3");

    let (status, body) = call(
        &double,
        &token,
        "GET",
        "/v4/spreadsheets/book/values/Sheet1%21A%3AA",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["values"], json!([["k1"], ["k2"], ["k3"]]));
    assert_eq!(body["majorDimension"], "ROWS");
    let (_, body) = call(
        &double,
        &token,
        "GET",
        "/v4/spreadsheets/book/values/Sheet1!C1:C3?valueRenderOption=UNFORMATTED_VALUE",
        None,
    )
    .await;
    assert_eq!(
        body["values"],
        json!([[1], [2], ["3"]]),
        "USER_ENTERED parsed numbers, RAW kept text"
    );

    let (status, body) = call(
        &double,
        &token,
        "PUT",
        "/v4/spreadsheets/book/values/Sheet1!A5?valueInputOption=RAW",
        Some(json!({"values": [["k5", "e"]]})),
    )
    .await;
    assert_eq!(
        (status, body["updatedRange"].as_str()),
        (200, Some("Sheet1!A5:B5")),
        "{body}"
    );
    assert_eq!(double.rows("book", "Sheet1").len(), 5);
    let (_, body) = call(
        &double,
        &token,
        "GET",
        "/v4/spreadsheets/book/values/Sheet1!A:A",
        None,
    )
    .await;
    assert_eq!(body["values"], json!([["k1"], ["k2"], ["k3"], [], ["k5"]]));

    let (status, body) = call(
        &double,
        &token,
        "GET",
        "/v4/spreadsheets/nope/values/Sheet1!A:A",
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let (status, body) = call(
        &double,
        &token,
        "GET",
        "/v4/spreadsheets/book/values/Missing!A:A",
        None,
    )
    .await;
    assert_eq!(
        (status, message(&body)),
        (400, "Unable to parse range: Missing!A:A")
    );
}

fn raw_message(message_id: &str) -> String {
    let mime = format!(
        "To: bob@example.com\r\nSubject: Hi\r\nMessage-ID: <{message_id}>\r\n\r\nHello\r\n"
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mime)
}

#[tokio::test]
async fn gmail_send_then_find_it_by_message_id() {
    let double = double().await;
    let token = token_for(&double, ALICE, &[GMAIL_SEND_SCOPE, GMAIL_READONLY_SCOPE]).await;
    let search = "/gmail/v1/users/me/messages?q=rfc822msgid:evt-1%40gluefleet";
    let (status, body) = call(&double, &token, "GET", search, None).await;
    assert_eq!(
        (status, body.clone()),
        (200, json!({"resultSizeEstimate": 0}))
    );

    let (status, body) = call(
        &double,
        &token,
        "POST",
        "/gmail/v1/users/me/messages/send",
        Some(json!({"raw": raw_message("evt-1@gluefleet")})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["labelIds"], json!(["SENT"]));
    let id = body["id"].as_str().expect("id").to_owned();
    let (status, body) = call(&double, &token, "GET", search, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            body["messages"][0]["id"].as_str(),
            body["resultSizeEstimate"].as_u64()
        ),
        (Some(id.as_str()), Some(1))
    );
    let (_, body) = call(
        &double,
        &token,
        "GET",
        "/gmail/v1/users/me/messages?q=rfc822msgid:%3Cevt-1%40gluefleet%3E",
        None,
    )
    .await;
    assert_eq!(body["resultSizeEstimate"], 1, "angle brackets are optional");
    let sent = double.sent(ALICE);
    assert_eq!((sent.len(), double.sent_count()), (1, 1));
    assert_eq!(sent[0].headers["subject"], "Hi");
    assert_eq!(sent[0].message_id(), Some("evt-1@gluefleet"));

    let (status, body) = call(
        &double,
        &token,
        "POST",
        "/gmail/v1/users/bob@example.com/messages/send",
        Some(json!({"raw": raw_message("x@y")})),
    )
    .await;
    assert_eq!(
        (status, message(&body)),
        (403, "Delegation denied for alice@example.com")
    );
    let (status, body) = call(
        &double,
        &token,
        "POST",
        "/gmail/v1/users/me/messages/send",
        Some(json!({"raw": "%%%"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        message(&body).contains("Invalid value for ByteString"),
        "{body}"
    );

    let send_only = token_for(&double, ALICE, &[GMAIL_SEND_SCOPE]).await;
    let (status, body) = call(&double, &send_only, "GET", search, None).await;
    assert_eq!(
        (status, reason(&body)),
        (403, "insufficientPermissions"),
        "gmail.send cannot search"
    );
    assert_eq!(
        message(&body),
        "Request had insufficient authentication scopes."
    );
    assert_eq!(double.sent_count(), 1);
}

#[tokio::test]
async fn directory_needs_an_admin_and_refuses_duplicates() {
    let double = double().await;
    double.creation_delay_calls(1);
    let admin = token_for(&double, ADMIN, &[DIRECTORY_USER_SCOPE]).await;
    let users = "/admin/directory/v1/users";
    let new = json!({"primaryEmail": "carol@example.com", "name": {"givenName": "Carol", "familyName": "Jones"}, "password": "correct horse"});
    let (status, body) = call(&double, &admin, "POST", users, Some(new.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("password").is_none());
    let (status, body) = call(&double, &admin, "POST", users, Some(new.clone())).await;
    assert_eq!(
        (status, reason(&body), message(&body)),
        (409, "duplicate", "Entity already exists.")
    );

    let carol = format!("{users}/carol@example.com");
    let (status, body) = call(
        &double,
        &admin,
        "PUT",
        &carol,
        Some(json!({"name": {"familyName": "Smith"}})),
    )
    .await;
    assert_eq!(
        (status, message(&body)),
        (412, "User creation is not complete.")
    );
    let (status, body) = call(
        &double,
        &admin,
        "PUT",
        &carol,
        Some(json!({"name": {"familyName": "Smith"}, "orgUnitPath": null})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["name"]["givenName"].as_str(),
            body["name"]["familyName"].as_str()
        ),
        (Some("Carol"), Some("Smith")),
        "patch semantics"
    );
    assert_eq!(
        double.user("carol@example.com").expect("stored")["name"]["fullName"],
        "Carol Smith"
    );

    let mut missing = new.clone();
    missing["primaryEmail"] = json!("dave@example.com");
    missing["name"]
        .as_object_mut()
        .expect("name")
        .remove("givenName");
    let (status, body) = call(&double, &admin, "POST", users, Some(missing)).await;
    assert_eq!(
        (status, message(&body)),
        (400, "Invalid Given/Family Name: GivenName")
    );

    let (status, _) = call(&double, &admin, "DELETE", &carol, None).await;
    assert_eq!(status, 204);
    let (status, body) = call(&double, &admin, "DELETE", &carol, None).await;
    assert_eq!(
        (status, message(&body)),
        (404, "Resource Not Found: userKey")
    );
    let (status, body) = call(
        &double,
        &admin,
        "GET",
        &format!("{users}?customer=my_customer&maxResults=1"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["users"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    assert_eq!(double.users().len(), 3);

    let alice = token_for(&double, ALICE, &[DIRECTORY_USER_SCOPE]).await;
    let (status, body) = call(&double, &alice, "POST", users, Some(new)).await;
    assert_eq!(
        (status, reason(&body), message(&body)),
        (
            403,
            "forbidden",
            "Not Authorized to access this resource/api"
        )
    );
}

#[tokio::test]
async fn every_fault_answers_its_documented_status_and_body() {
    let double = double().await;
    let token = token_for(&double, ALICE, &ALL).await;
    let send = "/gmail/v1/users/me/messages/send";
    let body = json!({"raw": raw_message("f@gluefleet")});
    let legacy = [
        (
            Fault::UserRateLimit,
            403,
            "usageLimits",
            "userRateLimitExceeded",
        ),
        (Fault::RateLimit, 403, "usageLimits", "rateLimitExceeded"),
        (Fault::DailyLimit, 403, "usageLimits", "dailyLimitExceeded"),
        (Fault::Backend, 500, "global", "backendError"),
        (Fault::DomainPolicy, 403, "global", "domainPolicy"),
        (Fault::Forbidden, 403, "global", "forbidden"),
    ];
    for (fault, status, domain, why) in legacy {
        double.fail_next("gmail.users.messages.send", 1, fault);
        let (got, answer) = call(&double, &token, "POST", send, Some(body.clone())).await;
        assert_eq!((got, reason(&answer)), (status, why), "{fault:?}: {answer}");
        assert_eq!(answer["error"]["errors"][0]["domain"], domain, "{answer}");
        assert_eq!(answer["error"]["code"], status);
    }
    assert_eq!(double.sent_count(), 0, "no fault applied anything");

    double.fail_next("gmail.users.messages.send", 1, Fault::Unavailable);
    let (status, answer) = call(&double, &token, "POST", send, Some(body.clone())).await;
    assert_eq!(
        (status, answer["error"]["status"].as_str()),
        (503, Some("UNAVAILABLE"))
    );

    double.create_spreadsheet("book", &["Sheet1"]);
    double.fail_next(
        "sheets.spreadsheets.values.append",
        1,
        Fault::QuotaExhausted,
    );
    let (status, answer) = call(
        &double,
        &token,
        "POST",
        &format!("{APPEND}?valueInputOption=RAW"),
        Some(json!({"values": [["k"]]})),
    )
    .await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(
        answer["error"]["details"][0]["reason"],
        "RATE_LIMIT_EXCEEDED"
    );
    assert_eq!(
        answer["error"]["details"][0]["metadata"]["quota_limit"],
        "WriteRequestsPerMinutePerUser"
    );
    assert_eq!(
        reason(&answer),
        "rateLimitExceeded",
        "errors[] too: {answer}"
    );
    assert!(double.rows("book", "Sheet1").is_empty());

    // Applied, then answered too late for the client.
    double.fail_next(
        "gmail.users.messages.send",
        1,
        Fault::ApplyThenHold(Duration::from_secs(3)),
    );
    let late = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let outcome = late
        .post(format!("{}{send}", double.url()))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await;
    assert!(outcome.is_err_and(|e| e.is_timeout()));
    assert_eq!(double.sent_count(), 1, "the held send was applied");
    assert_eq!(double.calls("gmail.users.messages.send"), 8);
    assert_eq!(double.applied("gmail.users.messages.send"), 1);

    double.fail_next("gmail.users.messages.send", 2, Fault::Backend);
    double.clear_faults();
    let (status, _) = call(&double, &token, "POST", send, Some(body)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn restart_keeps_state_on_the_same_port() {
    let double = double().await;
    double.create_spreadsheet("book", &["Sheet1"]);
    let token = token_for(&double, ALICE, &[SHEETS_SCOPE]).await;
    let url = double.url();
    double.stop();
    assert!(net::refused(&format!("{url}/v4/spreadsheets/book/values/Sheet1!A1")).await);
    double.restart().await.expect("restart");
    assert_eq!(double.url(), url);
    let (status, body) = call(
        &double,
        &token,
        "POST",
        &format!("{APPEND}?valueInputOption=RAW"),
        Some(json!({"values": [["k"]]})),
    )
    .await;
    assert_eq!(status, 200, "the token survived the restart: {body}");
    assert_eq!(double.rows("book", "Sheet1").len(), 1);
}

#[tokio::test]
async fn a_thousand_appends_land_in_order_without_violations() {
    let double = double().await;
    double.create_spreadsheet("book", &["Sheet1"]);
    let token = token_for(&double, ALICE, &[SHEETS_SCOPE]).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let started = std::time::Instant::now();
    for i in 0..1000 {
        let status = client
            .post(format!(
                "{}{APPEND}?valueInputOption=RAW&insertDataOption=INSERT_ROWS",
                double.url()
            ))
            .bearer_auth(&token)
            .json(&json!({"values": [[format!("k{i}"), i]]}))
            .send()
            .await
            .expect("append")
            .status();
        assert_eq!(status, 200);
    }
    eprintln!("1000 appends took {:?}", started.elapsed());
    let rows = double.rows("book", "Sheet1");
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows[999], vec![json!("k999"), json!(999)]);
    assert_eq!(double.applied("sheets.spreadsheets.values.append"), 1000);
    assert!(double.violations().is_empty());
}
