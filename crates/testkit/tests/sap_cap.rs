//! The SAP CAP sandbox serves OData V4 and V2 with Gateway's CSRF
//! handshake, 409 on a duplicate key, ETag preconditions (428/412), V2
//! MERGE and `$batch`, token invalidation, request counts and reset.
//!
//! Needs Node 20 and npm (the first run installs the sandbox's modules);
//! without them this test fails with a message saying so, on purpose: a
//! skipped sandbox test hides breakage.

use gluefleet_testkit::sap::SapCap;
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

/// The CSRF token and session cookie from a `X-CSRF-Token: Fetch`.
struct Csrf {
    token: String,
    cookie: String,
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn fetch_csrf(http: &Client, service: &str) -> Csrf {
    let response = http
        .get(format!("{service}/"))
        .header("X-CSRF-Token", "Fetch")
        .send()
        .await
        .expect("CSRF fetch");
    assert_eq!(response.status(), StatusCode::OK);
    let token = header(response.headers(), "x-csrf-token").expect("X-CSRF-Token on fetch");
    assert!(!token.eq_ignore_ascii_case("required"), "{token}");
    let set_cookie = header(response.headers(), SET_COOKIE.as_str()).expect("Set-Cookie on fetch");
    assert!(
        set_cookie.starts_with("SAP_SESSIONID_GLF=") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("cookie pair")
        .to_owned();
    Csrf { token, cookie }
}

/// A JSON write with the CSRF token and cookie (when given) and `If-Match`
/// (when given).
async fn write(
    http: &Client,
    method: Method,
    url: &str,
    csrf: Option<&Csrf>,
    if_match: Option<&str>,
    body: &Value,
) -> Response {
    let mut request = http
        .request(method, url)
        .header("Accept", "application/json")
        .json(body);
    if let Some(csrf) = csrf {
        request = request
            .header("X-CSRF-Token", &csrf.token)
            .header("Cookie", &csrf.cookie);
    }
    if let Some(etag) = if_match {
        request = request.header("If-Match", etag);
    }
    request.send().await.expect("write request")
}

async fn assert_csrf_refused(response: Response) {
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        header(response.headers(), "x-csrf-token").as_deref(),
        Some("Required")
    );
    let body = response.text().await.expect("403 body");
    assert_eq!(body, "CSRF token validation failed");
}

async fn json_body(response: Response) -> Value {
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn sap_cap_speaks_odata_with_gateway_csrf_etags_and_counts() {
    let mut sap = match SapCap::start().await {
        Ok(sap) => sap,
        Err(e) => panic!("SAP CAP sandbox did not start: {e}"),
    };
    let v4 = sap.v4_service();
    let v2 = sap.v2_service();
    assert_eq!(v4, format!("{}/odata/v4/sales", sap.url()));
    assert_eq!(v2, format!("{}/odata/v2/sales", sap.url()));
    let http = Client::builder().no_proxy().build().expect("client");

    // Both protocols serve the model. (2 counted GETs)
    for (service, marker) in [
        (&v4, r#"Version="4.0""#),
        (&v2, r#"DataServiceVersion="2.0""#),
    ] {
        let response = http
            .get(format!("{service}/$metadata"))
            .send()
            .await
            .expect("metadata");
        assert_eq!(response.status(), StatusCode::OK, "{service}");
        let body = response.text().await.expect("metadata body");
        assert!(body.contains("BusinessPartners"), "{body}");
        assert!(body.contains("SalesOrders"), "{body}");
        assert!(body.contains(marker), "{marker} in {body}");
    }
    let seeded = sap
        .get_entity("BusinessPartners", "BP0001")
        .await
        .expect("get seeded")
        .expect("seed row BP0001");
    assert_eq!(seeded["city"], "Walldorf");
    assert!(
        sap.get_entity("BusinessPartners", "NOPE")
            .await
            .expect("get missing")
            .is_none()
    );

    let partners = format!("{v4}/BusinessPartners");
    let partner = json!({"ID": "BP1", "name": "Acme", "city": "Turin"});

    // A write without the handshake is refused like Gateway does. (1 write, refused)
    assert_csrf_refused(write(&http, Method::POST, &partners, None, None, &partner).await).await;

    // Fetch, then create. (1 fetch, 1 write)
    let csrf = fetch_csrf(&http, &v4).await;
    let created = write(&http, Method::POST, &partners, Some(&csrf), None, &partner).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let etag = header(created.headers(), "etag").expect("ETag on create");
    assert!(
        etag.starts_with("W/\"") && etag.ends_with('"'),
        "weak ETag: {etag}"
    );
    let body = json_body(created).await;
    assert_eq!(body["@odata.etag"], json!(etag));
    assert_eq!(body["name"], "Acme");

    // The same key again: 409 with an OData error. (1 write)
    let duplicate = write(&http, Method::POST, &partners, Some(&csrf), None, &partner).await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    let error = json_body(duplicate).await;
    assert_eq!(error["error"]["code"], "ENTITY_ALREADY_EXISTS", "{error}");
    assert!(error["error"]["message"].is_string(), "{error}");

    // ETag preconditions on PATCH. (3 writes)
    let bp1 = format!("{partners}('BP1')");
    let patch = json!({"city": "Milan"});
    let missing = write(&http, Method::PATCH, &bp1, Some(&csrf), None, &patch).await;
    assert_eq!(missing.status(), StatusCode::PRECONDITION_REQUIRED);
    assert_eq!(json_body(missing).await["error"]["code"], "428");
    let patched = write(&http, Method::PATCH, &bp1, Some(&csrf), Some(&etag), &patch).await;
    assert!(
        matches!(patched.status(), StatusCode::OK | StatusCode::NO_CONTENT),
        "{}",
        patched.status()
    );
    let new_etag = header(patched.headers(), "etag").expect("ETag on PATCH");
    assert_ne!(new_etag, etag);
    let stale = write(&http, Method::PATCH, &bp1, Some(&csrf), Some(&etag), &patch).await;
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(json_body(stale).await["error"]["code"], "412");
    let stored = sap
        .get_entity("BusinessPartners", "BP1")
        .await
        .expect("get BP1")
        .expect("BP1 exists");
    assert_eq!(stored["city"], "Milan");
    assert_eq!(stored["@odata.etag"], json!(new_etag));

    // V2: MERGE through X-HTTP-Method with the same token, 200 with a body
    // (Gateway answers 204). (1 write)
    let merged = http
        .post(format!("{v2}/BusinessPartners('BP1')"))
        .header("X-HTTP-Method", "MERGE")
        .header("X-CSRF-Token", &csrf.token)
        .header("Cookie", &csrf.cookie)
        .header("If-Match", &new_etag)
        .header("Accept", "application/json")
        .json(&json!({"city": "Rome"}))
        .send()
        .await
        .expect("V2 MERGE");
    assert_eq!(merged.status(), StatusCode::OK);
    let body = json_body(merged).await;
    assert_eq!(body["d"]["city"], "Rome", "{body}");
    assert!(
        body["d"]["__metadata"]["etag"]
            .as_str()
            .is_some_and(|e| e.starts_with("W/\"")),
        "{body}"
    );

    // V2 multipart $batch with one changeset: 202, inner 201s. (1 batch write)
    let batch = [
        "--batch_1",
        "Content-Type: multipart/mixed; boundary=changeset_1",
        "",
        "--changeset_1",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "Content-ID: 1",
        "",
        "POST BusinessPartners HTTP/1.1",
        "Content-Type: application/json",
        "Accept: application/json",
        "",
        r#"{"ID":"BP2","name":"Batch","city":"Bari"}"#,
        "--changeset_1",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "Content-ID: 2",
        "",
        "POST SalesOrders HTTP/1.1",
        "Content-Type: application/json",
        "Accept: application/json",
        "",
        r#"{"ID":"SO2","partner_ID":"BP2","amount":"9.90","currency":"EUR"}"#,
        "--changeset_1--",
        "--batch_1--",
        "",
    ]
    .join("\r\n");
    let answered = http
        .post(format!("{v2}/$batch"))
        .header("Content-Type", "multipart/mixed; boundary=batch_1")
        .header("X-CSRF-Token", &csrf.token)
        .header("Cookie", &csrf.cookie)
        .body(batch)
        .send()
        .await
        .expect("V2 $batch");
    assert_eq!(answered.status(), StatusCode::ACCEPTED);
    let content_type = header(answered.headers(), "content-type").expect("batch content type");
    assert!(
        content_type.starts_with("multipart/mixed"),
        "{content_type}"
    );
    let body = answered.text().await.expect("batch body");
    assert_eq!(body.matches("HTTP/1.1 201 Created").count(), 2, "{body}");
    assert!(
        sap.get_entity("SalesOrders", "SO2")
            .await
            .expect("get SO2")
            .is_some()
    );

    // An expired session: the old token is refused, a new fetch works.
    // (1 refused write, 1 fetch, 1 write)
    sap.invalidate_csrf().await.expect("invalidate");
    let next = json!({"ID": "BP3", "name": "After expiry"});
    assert_csrf_refused(write(&http, Method::POST, &partners, Some(&csrf), None, &next).await)
        .await;
    let renewed = fetch_csrf(&http, &v4).await;
    assert_ne!(renewed.token, csrf.token);
    let created = write(&http, Method::POST, &partners, Some(&renewed), None, &next).await;
    assert_eq!(created.status(), StatusCode::CREATED);

    // The counts: the testkit's own reads are not in them.
    let stats = sap.stats().await.expect("stats");
    assert_eq!(stats["requests"], 14, "{stats}");
    assert_eq!(stats["csrf_fetch"], 2, "{stats}");
    assert_eq!(stats["writes"], 10, "{stats}");
    assert_eq!(stats["batch"], 1, "{stats}");
    assert_eq!(stats["csrf_rejected"], 2, "{stats}");
    assert_eq!(stats["v2"], 3, "{stats}");
    assert_eq!(stats["v4"], 11, "{stats}");
    assert_eq!(stats["by_method"]["MERGE"], 1, "{stats}");
    assert_eq!(stats["by_method"]["PATCH"], 3, "{stats}");

    // Reset empties the tables (the seed rows too) and the counts; the
    // session survives.
    sap.reset().await.expect("reset");
    assert!(
        sap.get_entity("BusinessPartners", "BP0001")
            .await
            .expect("get after reset")
            .is_none()
    );
    assert_eq!(sap.stats().await.expect("stats")["requests"], 0);
    let again = write(
        &http,
        Method::POST,
        &partners,
        Some(&renewed),
        None,
        &partner,
    )
    .await;
    assert_eq!(again.status(), StatusCode::CREATED);

    let port = sap.port();
    sap.stop();
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port {port} still taken after stop; log:\n{}",
        sap.logs().join("\n")
    );
}
