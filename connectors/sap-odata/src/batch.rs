//! `$batch` in both versions: one change set (V2) or atomicity group (V4)
//! per event, so one event's failure never rolls back another's, and each
//! part's answer maps back to its own event.
//!
//! - V4: a JSON batch; answers are matched by `id`.
//! - V2: `multipart/mixed`, CRLF line endings, a closing CRLF; answers are
//!   matched by `Content-ID`. `Prefer: odata.continue-on-error` asks the
//!   service to answer every change set even after one failed; a part that
//!   still comes back unanswered is retried.

use serde_json::{Value, json};

/// One request inside a batch.
#[derive(Clone, Debug)]
pub struct Part {
    /// `POST`, `PATCH`, `MERGE`, `DELETE`.
    pub method: String,
    /// Path relative to the service root: `BusinessPartners`, `BusinessPartners('X')`.
    pub url: String,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// `If-Match`, if any.
    pub if_match: Option<String>,
}

/// One part's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct PartAnswer {
    /// Status of the part.
    pub status: u16,
    /// Its body (JSON, or `null`).
    pub body: Value,
}

/// The V4 JSON batch body.
pub fn v4_body(parts: &[Part]) -> Value {
    let requests: Vec<Value> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut headers = json!({ "content-type": "application/json" });
            if let Some(m) = &p.if_match {
                headers["if-match"] = Value::String(m.clone());
            }
            let mut r = json!({ "id": (i + 1).to_string(), "atomicityGroup": format!("g{}", i + 1), "method": p.method, "url": p.url, "headers": headers });
            if let Some(b) = &p.body {
                r["body"] = b.clone();
            }
            r
        })
        .collect();
    json!({ "requests": requests })
}

/// Reads a V4 JSON batch answer: one entry per part, `None` when unanswered.
pub fn v4_answers(body: &Value, n: usize) -> Vec<Option<PartAnswer>> {
    let mut out = vec![None; n];
    for r in body["responses"].as_array().into_iter().flatten() {
        let idx = r["id"]
            .as_str()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|i| (1..=n).contains(i));
        let status = r["status"].as_u64().and_then(|s| u16::try_from(s).ok());
        if let (Some(i), Some(status)) = (idx, status) {
            // In a group that failed, any member's failure is the group's
            // truth; with one request per group there is nothing to merge.
            out[i - 1] = Some(PartAnswer {
                status,
                body: r["body"].clone(),
            });
        }
    }
    out
}

/// The V2 multipart body and its boundary.
pub fn v2_body(parts: &[Part], boundary: &str) -> String {
    let mut s = String::new();
    for (i, p) in parts.iter().enumerate() {
        let cs = format!("changeset_{}", i + 1);
        s.push_str(&format!(
            "--{boundary}\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n"
        ));
        s.push_str(&format!(
            "--{cs}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {}\r\n\r\n",
            i + 1
        ));
        s.push_str(&format!(
            "{} {} HTTP/1.1\r\nAccept: application/json\r\n",
            p.method, p.url
        ));
        if let Some(m) = &p.if_match {
            s.push_str(&format!("If-Match: {m}\r\n"));
        }
        match &p.body {
            Some(b) => {
                let text = b.to_string();
                s.push_str(&format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}\r\n",
                    text.len()
                ));
            }
            None => s.push_str("\r\n"),
        }
        s.push_str(&format!("--{cs}--\r\n"));
    }
    s.push_str(&format!("--{boundary}--\r\n"));
    s
}

/// Reads a multipart answer (V2, or V4 multipart): every embedded HTTP
/// response, keyed by the `Content-ID` seen before it.
pub fn multipart_answers(text: &str, n: usize) -> Vec<Option<PartAnswer>> {
    let mut out = vec![None; n];
    let lines: Vec<&str> = text.split("\r\n").flat_map(|l| l.split('\n')).collect();
    let mut content_id: Option<usize> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("--") {
            content_id = None;
        } else if let Some(v) = lower.strip_prefix("content-id:") {
            if content_id.is_none() {
                content_id = v.trim().parse().ok();
            }
        } else if let Some(rest) = line.strip_prefix("HTTP/1.1 ") {
            let status = rest
                .split_whitespace()
                .next()
                .and_then(|s| s.parse::<u16>().ok());
            // Inner headers up to the blank line, then the body up to the next boundary.
            let mut j = i + 1;
            while j < lines.len() && !lines[j].is_empty() {
                if content_id.is_none()
                    && let Some(v) = lines[j].to_ascii_lowercase().strip_prefix("content-id:")
                {
                    content_id = v.trim().parse().ok();
                }
                j += 1;
            }
            let mut body = String::new();
            j += 1;
            while j < lines.len() && !lines[j].starts_with("--") {
                body.push_str(lines[j]);
                j += 1;
            }
            if let (Some(status), Some(id)) = (status, content_id)
                && (1..=n).contains(&id)
            {
                let json = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
                // An error part may carry the id of the change set it replaced;
                // keep the first answer for each id.
                if out[id - 1].is_none() {
                    out[id - 1] = Some(PartAnswer { status, body: json });
                }
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(url: &str) -> Part {
        Part {
            method: "POST".into(),
            url: url.into(),
            body: Some(json!({"ID": "X"})),
            if_match: None,
        }
    }

    #[test]
    fn v2_body_has_one_changeset_per_part_and_ends_in_crlf() {
        let b = v2_body(&[part("A"), part("B")], "batch_7");
        assert_eq!(b.matches("boundary=changeset_").count(), 2);
        assert!(b.contains("Content-ID: 2\r\n\r\nPOST B HTTP/1.1\r\n"));
        assert!(b.ends_with("--batch_7--\r\n"));
        assert!(!b.replace("\r\n", "").contains('\n'), "CRLF only");
    }

    #[test]
    fn multipart_answers_map_by_content_id() {
        let answer = "--batch_1\r\ncontent-type: multipart/mixed;boundary=changeset_1\r\n\r\n--changeset_1\r\ncontent-type: application/http\r\ncontent-transfer-encoding: binary\r\ncontent-id: 1\r\n\r\nHTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-id: 1\r\n\r\n{\"d\":{\"ID\":\"A\"}}\r\n--changeset_1--\r\n--batch_1\r\ncontent-type: application/http\r\ncontent-transfer-encoding: binary\r\ncontent-id: 2\r\n\r\nHTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\n\r\n{\"error\":{\"code\":\"ENTITY_ALREADY_EXISTS\",\"message\":{\"value\":\"Entity already exists\"}}}\r\n--batch_1--\r\n";
        let a = multipart_answers(answer, 3);
        assert_eq!(a[0].as_ref().map(|p| p.status), Some(201));
        assert_eq!(
            a[0].as_ref().map(|p| p.body["d"]["ID"].clone()),
            Some(json!("A"))
        );
        assert_eq!(a[1].as_ref().map(|p| p.status), Some(409));
        assert!(a[2].is_none(), "unanswered");
    }

    #[test]
    fn v4_answers_match_by_id() {
        let body = json!({"responses": [{"id": "2", "status": 400, "body": {"error": {"code": "X", "message": "bad"}}}, {"id": "1", "status": 201, "body": {}}]});
        let a = v4_answers(&body, 2);
        assert_eq!(a[0].as_ref().map(|p| p.status), Some(201));
        assert_eq!(a[1].as_ref().map(|p| p.status), Some(400));
        assert_eq!(v4_body(&[part("A")])["requests"][0]["atomicityGroup"], "g1");
    }
}
