//! Admin SDK Directory `users.insert`, `get`, `update`, `delete` and
//! `list`, for an administrator subject only (else `403 forbidden` "Not
//! Authorized to access this resource/api").
//!
//! The domain's configured users are in the Directory from the start.
//! `insert` needs `primaryEmail`, `name.givenName`, `name.familyName` and
//! `password` (the Discovery document's required fields), each missing one
//! answered with Google's message ("Invalid Given/Family Name: GivenName",
//! "Invalid Given/Family Name: FamilyName", "Invalid Password", "Invalid
//! Input: primary_user_email"); an existing `primaryEmail` answers `409
//! duplicate` "Entity already exists.". The new user joins the domain (a
//! possible `sub`, not an administrator). `update` is a `PUT` with patch
//! semantics: omitted fields are kept, `null` clears, arrays are replaced
//! whole. `delete` answers `204`; an unknown `userKey` (primary email, alias
//! or id) answers `404 notFound` "Resource Not Found: userKey". `list`
//! needs `customer` or `domain`.
//!
//! Where Google's contract is silent the double decides: with
//! [`creation_delay_calls(n)`](super::WorkspaceDouble::creation_delay_calls)
//! the next `n` `update`s or `delete`s of a just-inserted user answer
//! "User creation is not complete." The contract documents that message but
//! no status or reason; the double sends `412` with reason `conditionNotMet`
//! (status `FAILED_PRECONDITION`), so a client must treat that answer as
//! transient by its reason and status, not as a permanent `4xx`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::calendar::merge;
use super::discovery::Violation;
use super::errors::{both, json_reply};
use super::{Call, State, rfc3339_now};
use crate::http_target::Reply;

/// The Directory's users.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    /// Lowercase primary email → user.
    users: BTreeMap<String, Value>,
    /// Lowercase primary email → mutations left that answer "not complete".
    pending: HashMap<String, u32>,
    pub(crate) creation_delay: u32,
}

impl Directory {
    pub(crate) fn get(&self, email: &str) -> Option<Value> {
        self.users.get(&email.to_ascii_lowercase()).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Value> {
        self.users.values().cloned().collect()
    }

    /// The lowercase primary email a `userKey` names.
    fn resolve(&self, key: &str) -> Option<String> {
        let key = key.to_ascii_lowercase();
        if self.users.contains_key(&key) {
            return Some(key);
        }
        self.users
            .iter()
            .find(|(_, u)| {
                u.get("id").and_then(Value::as_str) == Some(key.as_str())
                    || u.get("aliases").and_then(Value::as_array).is_some_and(|a| {
                        a.iter()
                            .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(&key)))
                    })
            })
            .map(|(k, _)| k.clone())
    }
}

/// Adds `email` to the domain and, if new there, to the Directory.
pub(crate) fn add_member(state: &mut State, email: &str, admin: bool) {
    let key = email.to_ascii_lowercase();
    state.users.insert(key.clone(), admin);
    let n = state.next();
    let entry = state.directory.users.entry(key.clone()).or_insert_with(|| {
        let local = key.split('@').next().unwrap_or("user");
        json!({
            "kind": "admin#directory#user",
            "id": format!("1{n:020}"),
            "primaryEmail": key,
            "name": {"givenName": local, "familyName": "Example", "fullName": format!("{local} Example")},
            "isAdmin": admin,
            "suspended": false,
            "creationTime": rfc3339_now(),
        })
    });
    entry["isAdmin"] = json!(admin);
}

/// Google's own words for a missing required field of `users.insert`.
pub(crate) fn reword(method_id: &str, mut violation: Violation) -> Violation {
    if method_id != "directory.users.insert" {
        return violation;
    }
    let message = match violation.missing.as_deref() {
        Some("name.givenName") => "Invalid Given/Family Name: GivenName",
        Some("name.familyName") => "Invalid Given/Family Name: FamilyName",
        Some("name") => "Invalid Given/Family Name: GivenName",
        Some("password") => "Invalid Password",
        Some("primaryEmail") => "Invalid Input: primary_user_email",
        _ => return violation,
    };
    violation.message = message.to_owned();
    violation.reason = "invalid";
    violation
}

fn not_found() -> Reply {
    both(404, "notFound", "Resource Not Found: userKey")
}

/// The user as answers show it: no password.
fn shown(user: &Value) -> Value {
    let mut user = user.clone();
    if let Some(object) = user.as_object_mut() {
        object.remove("password");
        object.remove("hashFunction");
    }
    user
}

fn full_name(user: &mut Value) {
    let given = user["name"]["givenName"].as_str().unwrap_or("").to_owned();
    let family = user["name"]["familyName"].as_str().unwrap_or("").to_owned();
    if user["name"].is_object() {
        user["name"]["fullName"] = json!(format!("{given} {family}").trim().to_owned());
    }
}

pub(crate) fn handle(state: &mut State, call: &Call<'_>) -> Reply {
    match call.method_id {
        "directory.users.insert" => insert(state, call),
        "directory.users.get" => match state.directory.resolve(call.param("userKey")) {
            Some(key) => json_reply(200, &shown(&state.directory.users[&key])),
            None => not_found(),
        },
        "directory.users.update" | "directory.users.delete" => {
            let Some(key) = state.directory.resolve(call.param("userKey")) else {
                return not_found();
            };
            if let Some(left) = state.directory.pending.get_mut(&key)
                && *left > 0
            {
                *left -= 1;
                return both(412, "conditionNotMet", "User creation is not complete.");
            }
            if call.method_id == "directory.users.delete" {
                state.directory.users.remove(&key);
                state.directory.pending.remove(&key);
                state.users.remove(&key);
                return Reply::status(204);
            }
            update(state, call, &key)
        }
        "directory.users.list" => list(state, call),
        other => both(
            501,
            "notImplemented",
            &format!("{other} is not served by the Workspace double."),
        ),
    }
}

fn insert(state: &mut State, call: &Call<'_>) -> Reply {
    let body = call.body();
    let email = body
        .get("primaryEmail")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    if state.directory.users.contains_key(&email) {
        return both(409, "duplicate", "Entity already exists.");
    }
    let n = state.next();
    let mut user = Map::new();
    user.insert("kind".into(), json!("admin#directory#user"));
    user.insert("id".into(), json!(format!("1{n:020}")));
    user.insert("isAdmin".into(), json!(false));
    user.insert("suspended".into(), json!(false));
    user.insert("creationTime".into(), json!(rfc3339_now()));
    merge(&mut user, body);
    user.insert("primaryEmail".into(), json!(email));
    let mut user = Value::Object(user);
    full_name(&mut user);
    state.directory.users.insert(email.clone(), user.clone());
    state.users.insert(email.clone(), false);
    if state.directory.creation_delay > 0 {
        state
            .directory
            .pending
            .insert(email, state.directory.creation_delay);
    }
    json_reply(200, &shown(&user))
}

fn update(state: &mut State, call: &Call<'_>, key: &str) -> Reply {
    let mut patch = call.body();
    patch.remove("id");
    let renamed = patch
        .get("primaryEmail")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .filter(|new| new != key);
    if let Some(new) = &renamed
        && state.directory.users.contains_key(new)
    {
        return both(409, "duplicate", "Entity already exists.");
    }
    let Some(mut user) = state.directory.users.remove(key) else {
        return not_found();
    };
    if let Some(object) = user.as_object_mut() {
        merge(object, patch);
    }
    full_name(&mut user);
    let new_key = renamed.unwrap_or_else(|| key.to_owned());
    user["primaryEmail"] = json!(new_key);
    if new_key != key
        && let Some(admin) = state.users.remove(key)
    {
        state.users.insert(new_key.clone(), admin);
    }
    state.directory.users.insert(new_key, user.clone());
    json_reply(200, &shown(&user))
}

fn list(state: &State, call: &Call<'_>) -> Reply {
    let domain = call.query("domain");
    if call.query("customer").is_none() && domain.is_none() {
        return both(400, "badRequest", "Bad Request");
    }
    let max = call
        .query("maxResults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(100);
    if !(1..=500).contains(&max) {
        return both(400, "invalid", "Invalid Input: maxResults");
    }
    let matching: Vec<Value> = state
        .directory
        .users
        .iter()
        .filter(|(k, _)| {
            domain.is_none_or(|d| k.ends_with(&format!("@{}", d.to_ascii_lowercase())))
        })
        .map(|(_, u)| shown(u))
        .collect();
    let more = matching.len() > max;
    let mut answer = json!({
        "kind": "admin#directory#users",
        "users": matching.into_iter().take(max).collect::<Vec<_>>(),
    });
    if more {
        answer["nextPageToken"] = json!("more");
    }
    json_reply(200, &answer)
}
