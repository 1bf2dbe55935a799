//! Checks requests against Google's Discovery documents.
//!
//! A hand-written double accepts whatever its author expected; a connector
//! that misspells a field or invents a parameter then passes every test
//! and fails in production. So every request the Workspace double serves is
//! first matched to a method of the published documents (HTTP method and
//! path as served: `/` + `servicePath` + `flatPath` or `path`) and checked
//! against it: required path and query parameters, unknown query parameters
//! (the method's plus the document's standard ones such as `alt` or
//! `fields`), enum values, boolean and integer syntax, and the JSON body
//! against `request.$ref` (property names through `$ref`, `items` and
//! `additionalProperties`, JSON types, and the properties whose
//! `annotations.required` names the method), through the walk shared with
//! the deploy checks (`crate::discovery`).
//!
//! The documents are parsed and indexed once per process: the double serves
//! benchmarks and must not re-read 900 kB of JSON per request.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::discovery::{Mismatch, Walk, json_type};

/// The documents the double serves, as published (see
/// `crates/testkit/data/google-discovery/README.md`).
const DOCUMENTS: [&str; 5] = [
    include_str!("../../data/google-discovery/sheets.v4.json"),
    include_str!("../../data/google-discovery/gmail.v1.json"),
    include_str!("../../data/google-discovery/calendar.v3.json"),
    include_str!("../../data/google-discovery/admin.directory_v1.json"),
    include_str!("../../data/google-discovery/iamcredentials.v1.json"),
];

/// One segment of a served path template: `values`, `{range}:append`.
#[derive(Debug)]
enum Segment {
    Literal(String),
    Param {
        prefix: String,
        name: String,
        suffix: String,
    },
}

/// One method of a document, indexed.
#[derive(Debug)]
pub(crate) struct Method {
    /// The Discovery id, e.g. `sheets.spreadsheets.values.append`.
    pub(crate) id: String,
    http_method: String,
    segments: Vec<Segment>,
    /// Characters of literal text in the template: the more, the more
    /// specific a match.
    literal_len: usize,
    def: &'static Value,
    doc: &'static Value,
}

impl Method {
    /// The OAuth scopes any one of which authorizes the method.
    pub(crate) fn scopes(&self) -> impl Iterator<Item = &'static str> {
        self.def
            .get("scopes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }
}

/// A request matched to its method.
#[derive(Debug)]
pub(crate) struct Matched {
    pub(crate) method: &'static Method,
    /// Path parameters, percent-decoded.
    pub(crate) path: HashMap<String, String>,
}

/// Why a request does not fit its method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    /// Google's kind of message, naming the field or parameter.
    pub(crate) message: String,
    /// The `errors[].reason`: `invalid`, `required` or `badRequest`.
    pub(crate) reason: &'static str,
    /// For a missing required body property, its dotted path
    /// (`name.givenName`), so an API can word the message its own way.
    pub(crate) missing: Option<String>,
}

impl Violation {
    fn invalid(message: String) -> Self {
        Self {
            message,
            reason: "invalid",
            missing: None,
        }
    }

    fn bad_request(message: String) -> Self {
        Self {
            message,
            reason: "badRequest",
            missing: None,
        }
    }

    fn required(message: String, missing: Option<String>) -> Self {
        Self {
            message,
            reason: "required",
            missing,
        }
    }
}

#[derive(Debug)]
struct Catalog {
    methods: Vec<Method>,
    /// (HTTP method, segment count) → positions in `methods`.
    by_shape: HashMap<(String, usize), Vec<usize>>,
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut methods = Vec::new();
        for text in DOCUMENTS {
            // The documents are compiled in and tested: a parse failure is a
            // broken checkout, not outside input.
            let doc: &'static Value = Box::leak(Box::new(
                serde_json::from_str::<Value>(text).expect("a bundled Discovery document parses"),
            ));
            let service_path = doc.get("servicePath").and_then(Value::as_str).unwrap_or("");
            collect(doc, doc, service_path, &mut methods);
        }
        let mut by_shape: HashMap<(String, usize), Vec<usize>> = HashMap::new();
        for (i, m) in methods.iter().enumerate() {
            by_shape
                .entry((m.http_method.clone(), m.segments.len()))
                .or_default()
                .push(i);
        }
        Catalog { methods, by_shape }
    })
}

/// Walks `resources` recursively, indexing every method.
fn collect(doc: &'static Value, node: &'static Value, service_path: &str, out: &mut Vec<Method>) {
    if let Some(methods) = node.get("methods").and_then(Value::as_object) {
        for def in methods.values() {
            let (Some(id), Some(http_method)) = (
                def.get("id").and_then(Value::as_str),
                def.get("httpMethod").and_then(Value::as_str),
            ) else {
                continue;
            };
            let Some(path) = def
                .get("flatPath")
                .or_else(|| def.get("path"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let template = format!("{service_path}{path}");
            let segments: Vec<Segment> = template.split('/').map(parse_segment).collect();
            let literal_len = segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(l) => l.len(),
                    Segment::Param { prefix, suffix, .. } => prefix.len() + suffix.len(),
                })
                .sum();
            out.push(Method {
                id: id.to_owned(),
                http_method: http_method.to_owned(),
                segments,
                literal_len,
                def,
                doc,
            });
        }
    }
    if let Some(resources) = node.get("resources").and_then(Value::as_object) {
        for resource in resources.values() {
            collect(doc, resource, service_path, out);
        }
    }
}

fn parse_segment(s: &str) -> Segment {
    let (Some(open), Some(close)) = (s.find('{'), s.find('}')) else {
        return Segment::Literal(s.to_owned());
    };
    if close < open {
        return Segment::Literal(s.to_owned());
    }
    let name = s[open + 1..close].trim_start_matches('+').to_owned();
    Segment::Param {
        prefix: s[..open].to_owned(),
        name,
        suffix: s[close + 1..].to_owned(),
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The method `http_method` + `path` (as sent, percent-encoded, without the
/// query) calls, the most specific template winning.
pub(crate) fn find(http_method: &str, path: &str) -> Option<Matched> {
    let catalog = catalog();
    let raw: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let candidates = catalog.by_shape.get(&(http_method.to_owned(), raw.len()))?;
    let mut best: Option<Matched> = None;
    for &i in candidates {
        let method = &catalog.methods[i];
        let Some(params) = match_segments(&method.segments, &raw) else {
            continue;
        };
        if best
            .as_ref()
            .is_none_or(|b| method.literal_len > b.method.literal_len)
        {
            best = Some(Matched {
                method,
                path: params,
            });
        }
    }
    best
}

fn match_segments(template: &[Segment], raw: &[&str]) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    for (segment, raw) in template.iter().zip(raw) {
        match segment {
            Segment::Literal(l) => {
                if l != raw {
                    return None;
                }
            }
            Segment::Param {
                prefix,
                name,
                suffix,
            } => {
                if raw.len() < prefix.len() + suffix.len()
                    || !raw.starts_with(prefix.as_str())
                    || !raw.ends_with(suffix.as_str())
                {
                    return None;
                }
                let value = &raw[prefix.len()..raw.len() - suffix.len()];
                params.insert(name.clone(), decode(value));
            }
        }
    }
    Some(params)
}

/// Checks the path parameters, the query and the body of a matched
/// request; the body comes back parsed (`None` for a method without one).
pub(crate) fn check(
    matched: &Matched,
    query: &[(String, String)],
    body: &str,
) -> Result<Option<Value>, Violation> {
    let method = matched.method;
    for (name, value) in &matched.path {
        if value.is_empty() {
            return Err(Violation::required(
                format!("Required path parameter '{name}' is missing or empty."),
                None,
            ));
        }
    }
    check_query(method, query)?;
    check_body(method, body)
}

fn check_query(method: &Method, query: &[(String, String)]) -> Result<(), Violation> {
    let own = method.def.get("parameters").and_then(Value::as_object);
    let standard = method.doc.get("parameters").and_then(Value::as_object);
    let lookup = |name: &str| -> Option<&Value> {
        own.and_then(|p| p.get(name))
            .filter(|p| p.get("location").and_then(Value::as_str) == Some("query"))
            .or_else(|| standard.and_then(|p| p.get(name)))
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (name, value) in query {
        let Some(def) = lookup(name) else {
            return Err(Violation::invalid(format!(
                "Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query parameter. Field '{name}' could not be found in request message."
            )));
        };
        let count = seen.entry(name.as_str()).or_default();
        *count += 1;
        if *count > 1 && def.get("repeated").and_then(Value::as_bool) != Some(true) {
            return Err(Violation::invalid(format!(
                "Invalid value for parameter '{name}': it is not repeated but was given more than once."
            )));
        }
        check_scalar(def, value).map_err(|expected| {
            Violation::invalid(format!(
                "Invalid value for parameter '{name}': \"{value}\" ({expected})."
            ))
        })?;
    }
    if let Some(own) = own {
        for (name, def) in own {
            let required = def.get("required").and_then(Value::as_bool) == Some(true);
            let in_query = def.get("location").and_then(Value::as_str) == Some("query");
            if required && in_query && !seen.contains_key(name.as_str()) {
                return Err(Violation::required(
                    format!("Required parameter '{name}' is missing."),
                    None,
                ));
            }
        }
    }
    Ok(())
}

/// A query parameter's text against its `type` and `enum`; the `Err` says
/// what was expected.
fn check_scalar(def: &Value, value: &str) -> Result<(), String> {
    if let Some(allowed) = def.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| a.as_str() == Some(value))
    {
        let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        return Err(format!("expected one of {}", names.join(", ")));
    }
    match def.get("type").and_then(Value::as_str) {
        Some("boolean") if value != "true" && value != "false" => {
            Err("expected true or false".to_owned())
        }
        Some("integer") if value.parse::<i64>().is_err() => Err("expected an integer".to_owned()),
        Some("number") if value.parse::<f64>().is_err() => Err("expected a number".to_owned()),
        _ => Ok(()),
    }
}

fn check_body(method: &Method, body: &str) -> Result<Option<Value>, Violation> {
    let Some(reference) = method
        .def
        .get("request")
        .and_then(|r| r.get("$ref"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let value: Value = if body.trim().is_empty() {
        Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_str(body).map_err(|e| {
            Violation::bad_request(format!(
                "Invalid JSON payload received. Unexpected token: {e}."
            ))
        })?
    };
    if !value.is_object() {
        return Err(Violation::bad_request(format!(
            "Invalid JSON payload received. Expected an object for {reference}, got {}.",
            json_type(&value)
        )));
    }
    let schema = method
        .doc
        .get("schemas")
        .and_then(|s| s.get(reference))
        .unwrap_or(&Value::Null);
    check_value(method.doc, schema, &value, "", &method.id)?;
    Ok(Some(value))
}

/// The body against its schema, through the shared walk, each mismatch
/// worded as Google's APIs word it.
fn check_value(
    doc: &Value,
    schema: &Value,
    v: &Value,
    path: &str,
    method_id: &str,
) -> Result<(), Violation> {
    Walk::new([doc])
        .required_for(method_id)
        .check(schema, v, path)
        .map_err(violation)
}

fn violation(m: Mismatch) -> Violation {
    match m {
        Mismatch::UnknownField { parent, key, .. } => {
            let at = if parent.is_empty() {
                String::new()
            } else {
                format!(" at '{parent}'")
            };
            Violation::invalid(format!(
                "Invalid JSON payload received. Unknown name \"{key}\"{at}: Cannot find field."
            ))
        }
        Mismatch::WrongType {
            path,
            expected,
            got,
        } => {
            let shown: String = got.to_string().chars().take(80).collect();
            Violation::invalid(format!(
                "Invalid value at '{path}' (TYPE_{}), {shown}: expected {expected}, got {}.",
                expected.to_ascii_uppercase(),
                json_type(&got)
            ))
        }
        Mismatch::NotBase64 { path, text } => {
            let shown: String = text.chars().take(40).collect();
            Violation::invalid(format!(
                "Invalid value for ByteString: {shown} (at '{path}')"
            ))
        }
        Mismatch::NotInEnum { path, text } => {
            Violation::invalid(format!("Invalid value at '{path}' (TYPE_ENUM), \"{text}\""))
        }
        Mismatch::MissingRequired { path } => {
            Violation::required(format!("Required field '{path}' is missing."), Some(path))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn checked(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: &str,
    ) -> Result<String, Violation> {
        let matched = find(method, path).expect("the route exists");
        check(&matched, &q(query), body).map(|_| matched.method.id.clone())
    }

    const APPEND: &str = "/v4/spreadsheets/s1/values/Sheet1%21A%3AC:append";

    #[test]
    fn routes_match_the_served_paths() {
        let cases = [
            ("POST", APPEND, "sheets.spreadsheets.values.append"),
            (
                "POST",
                "/v4/spreadsheets/s1/values/Sheet1!A1:C9:append",
                "sheets.spreadsheets.values.append",
            ),
            (
                "PUT",
                "/v4/spreadsheets/s1/values/Sheet1!A5",
                "sheets.spreadsheets.values.update",
            ),
            (
                "GET",
                "/v4/spreadsheets/s1/values/Sheet1!A:A",
                "sheets.spreadsheets.values.get",
            ),
            (
                "POST",
                "/gmail/v1/users/me/messages/send",
                "gmail.users.messages.send",
            ),
            (
                "GET",
                "/gmail/v1/users/me/messages",
                "gmail.users.messages.list",
            ),
            (
                "POST",
                "/calendar/v3/calendars/primary/events",
                "calendar.events.insert",
            ),
            (
                "PATCH",
                "/calendar/v3/calendars/primary/events/abcde",
                "calendar.events.patch",
            ),
            (
                "POST",
                "/admin/directory/v1/users",
                "directory.users.insert",
            ),
            (
                "POST",
                "/v1/projects/-/serviceAccounts/sa%40p.iam.gserviceaccount.com:signJwt",
                "iamcredentials.projects.serviceAccounts.signJwt",
            ),
        ];
        for (method, path, id) in cases {
            let matched = find(method, path).unwrap_or_else(|| panic!("{method} {path} matches"));
            assert_eq!(matched.method.id, id, "{method} {path}");
        }
        let append = find("POST", APPEND).expect("append matches");
        assert_eq!(append.path["range"], "Sheet1!A:C");
        assert!(find("POST", "/v4/nothing/here").is_none());
        assert!(find("DELETE", "/v4/spreadsheets/s1/values/A1:append").is_none());
    }

    #[test]
    fn good_requests_pass() {
        let body = r#"{"values":[["a",1,true],["b","2",null]],"majorDimension":"ROWS"}"#;
        assert!(
            checked(
                "POST",
                APPEND,
                &[
                    ("valueInputOption", "RAW"),
                    ("insertDataOption", "INSERT_ROWS"),
                    ("alt", "json")
                ],
                body
            )
            .is_ok()
        );
        let event = r#"{"id":"abcde12345","start":{"dateTime":"2026-01-01T10:00:00Z"},"end":{"date":"2026-01-02"},"attendees":[{"email":"a@example.com"}],"extendedProperties":{"private":{"k":"v"}}}"#;
        assert!(
            checked(
                "POST",
                "/calendar/v3/calendars/primary/events",
                &[("sendUpdates", "none"), ("maxAttendees", "5")],
                event
            )
            .is_ok()
        );
        let user = r#"{"primaryEmail":"new@example.com","name":{"givenName":"N","familyName":"E"},"password":"secret123"}"#;
        assert!(checked("POST", "/admin/directory/v1/users", &[], user).is_ok());
        assert!(
            checked(
                "POST",
                "/gmail/v1/users/me/messages/send",
                &[],
                r#"{"raw":"SGVsbG8"}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn an_unknown_body_field_is_a_violation() {
        let v = checked(
            "POST",
            APPEND,
            &[("valueInputOption", "RAW")],
            r#"{"valuess":[["a"]]}"#,
        )
        .expect_err("a violation");
        assert!(v.message.contains("Unknown name \"valuess\""), "{v:?}");
        let nested = r#"{"start":{"dateTim":"x"},"end":{"date":"2026-01-02"}}"#;
        let v = checked("POST", "/calendar/v3/calendars/primary/events", &[], nested)
            .expect_err("a violation");
        assert!(v.message.contains("\"dateTim\" at 'start'"), "{v:?}");
    }

    #[test]
    fn a_wrong_type_is_a_violation() {
        let v = checked("POST", APPEND, &[], r#"{"values":["a"]}"#).expect_err("a violation");
        assert!(v.message.contains("'values[0]'"), "{v:?}");
        let v = checked(
            "POST",
            "/gmail/v1/users/me/messages/send",
            &[],
            r#"{"raw":42}"#,
        )
        .expect_err("a violation");
        assert!(v.message.contains("'raw'"), "{v:?}");
        let v = checked(
            "POST",
            "/gmail/v1/users/me/messages/send",
            &[],
            r#"{"raw":"not base64!"}"#,
        )
        .expect_err("a violation");
        assert!(v.message.contains("Invalid value for ByteString"), "{v:?}");
    }

    #[test]
    fn a_missing_required_field_or_parameter_is_a_violation() {
        let v = checked(
            "POST",
            "/calendar/v3/calendars/primary/events",
            &[],
            r#"{"start":{"date":"2026-01-01"}}"#,
        )
        .expect_err("a violation");
        assert_eq!((v.reason, v.missing.as_deref()), ("required", Some("end")));
        let user = r#"{"primaryEmail":"n@example.com","name":{"givenName":"N"},"password":"p"}"#;
        let v = checked("POST", "/admin/directory/v1/users", &[], user).expect_err("a violation");
        assert_eq!(v.missing.as_deref(), Some("name.familyName"));
        let v = checked("GET", "/admin/directory/v1/users/", &[], "").expect_err("a violation");
        assert_eq!(v.reason, "required");
    }

    #[test]
    fn a_bad_enum_or_scalar_is_a_violation() {
        let v = checked("POST", APPEND, &[("valueInputOption", "RAWW")], "{}")
            .expect_err("a violation");
        assert!(v.message.contains("'valueInputOption'"), "{v:?}");
        let v = checked("POST", APPEND, &[("includeValuesInResponse", "yes")], "{}")
            .expect_err("a violation");
        assert!(v.message.contains("true or false"), "{v:?}");
        let v = checked(
            "GET",
            "/gmail/v1/users/me/messages",
            &[("maxResults", "ten")],
            "",
        )
        .expect_err("a violation");
        assert!(v.message.contains("integer"), "{v:?}");
        let v = checked("POST", APPEND, &[], r#"{"majorDimension":"DIAGONAL"}"#)
            .expect_err("a violation");
        assert!(v.message.contains("TYPE_ENUM"), "{v:?}");
    }

    #[test]
    fn an_unknown_query_parameter_is_a_violation() {
        let v = checked("POST", APPEND, &[("valueInputOptions", "RAW")], "{}")
            .expect_err("a violation");
        assert!(
            v.message.contains("Unknown name \"valueInputOptions\""),
            "{v:?}"
        );
        // A path parameter is no query parameter.
        let v = checked("POST", APPEND, &[("range", "A1")], "{}").expect_err("a violation");
        assert!(v.message.contains("\"range\""), "{v:?}");
    }
}
