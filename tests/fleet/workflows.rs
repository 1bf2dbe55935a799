//! The Cloud Workflows definitions under `deploy/workflows/`, checked
//! without a Google project.
//!
//! Workflows validates a definition only when it is deployed, and an
//! expression only when a step runs: a misspelt Pub/Sub field or a topic
//! Terraform never created shows up as a failed execution in production.
//! What can be known from the files is checked here:
//!
//! - the file is one YAML document of subworkflows, `main` among them, each
//!   with steps whose names are unique and whose every `next` names one of
//!   them (or `end`, `break`, `continue`);
//! - every `googleapis.pubsub.v1.*` call is a method of the published
//!   Pub/Sub Discovery document, with only its parameters (plus `body` and
//!   `connector_params`), every required one, and a body that walks that
//!   method's request schema (expressions stand in for any value);
//! - every subworkflow call names a defined subworkflow, passes only its
//!   parameters and every one without a default;
//! - no other call but the standard library functions listed here, and
//!   `sys.get_env` only of built-in variables (user-defined ones are not
//!   set by the Terraform);
//! - every topic the definition names, as a literal `topic`/`results_topic`
//!   argument or as `/topics/NAME` in text, is a `google_pubsub_topic` of
//!   `deploy/terraform/onboarding/`, and that module deploys this file.

use gluefleet_testkit::discovery::Walk;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

mod yaml;

/// Cloud Pub/Sub, as published (crates/testkit/data/google-discovery/).
const PUBSUB_V1: &str = include_str!("../../crates/testkit/data/google-discovery/pubsub.v1.json");

/// The standard library calls the definitions may make.
const STDLIB_CALLS: &[&str] = &["sys.sleep", "sys.log"];

/// The built-in environment variables of an execution (Workflows reference,
/// "Built-in environment variables").
const BUILT_IN_ENV: &[&str] = &[
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_CLOUD_PROJECT_ID",
    "GOOGLE_CLOUD_PROJECT_NUMBER",
    "GOOGLE_CLOUD_SERVICE_ACCOUNT_NAME",
    "GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID",
    "GOOGLE_CLOUD_WORKFLOW_ID",
    "GOOGLE_CLOUD_WORKFLOW_REVISION_ID",
];

/// The step names that `next` may give besides a step's.
const JUMPS: &[&str] = &["end", "break", "continue"];

/// What each definition must agree with.
struct Facts<'a> {
    pubsub: &'a Value,
    /// The `name` of every `google_pubsub_topic` in the Terraform.
    topics: BTreeSet<String>,
}

/// One subworkflow's parameters: name → has a default.
type Params = BTreeMap<String, bool>;

fn root() -> PathBuf {
    match std::env::var_os("GLUEFLEET_CHECK_ROOT") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    }
}

/// Every problem of one definition, each starting with `file`.
fn check(file: &str, text: &str, facts: &Facts) -> Vec<String> {
    let doc = match yaml::load_one(file, text) {
        Ok(doc) => doc,
        Err(problems) => return problems,
    };
    let Some(subworkflows) = doc.as_object() else {
        return vec![format!(
            "{file}: expected a map of subworkflows (`main:` and others), got {}",
            gluefleet_testkit::discovery::json_type(&doc)
        )];
    };
    let mut problems = Vec::new();
    if !subworkflows.contains_key("main") {
        problems.push(format!("{file}: no `main` subworkflow"));
    }
    let mut params: BTreeMap<&str, Params> = BTreeMap::new();
    for (name, body) in subworkflows {
        match parse_params(body.get("params")) {
            Ok(p) => {
                params.insert(name, p);
            }
            Err(e) => problems.push(format!("{file}: {name}.params: {e}")),
        }
    }
    let mut topics = BTreeSet::new();
    for (name, body) in subworkflows {
        let Some(steps) = body.get("steps") else {
            problems.push(format!("{file}: {name} has no steps"));
            continue;
        };
        let mut walk = StepWalk {
            file,
            subworkflow: name,
            facts,
            params: &params,
            names: BTreeMap::new(),
            nexts: Vec::new(),
            topics: &mut topics,
            problems: &mut problems,
        };
        walk.steps(steps, name);
        let StepWalk { names, nexts, .. } = walk;
        for (at, target) in nexts {
            if !names.contains_key(target.as_str()) && !JUMPS.contains(&target.as_str()) {
                problems.push(format!(
                    "{file}: {at}: next: {target} is not a step of {name}"
                ));
            }
        }
    }
    for text in strings(&doc) {
        topics.extend(topics_in(text));
        for var in env_vars_in(text) {
            if !BUILT_IN_ENV.contains(&var.as_str()) {
                problems.push(format!(
                    "{file}: sys.get_env(\"{var}\") is not a built-in variable of an execution"
                ));
            }
        }
    }
    if topics.is_empty() {
        problems.push(format!(
            "{file}: names no topic (nothing to check against Terraform)"
        ));
    }
    for topic in &topics {
        if !facts.topics.contains(topic) {
            problems.push(format!(
                "{file}: topic {topic} is not a google_pubsub_topic of deploy/terraform/onboarding (it has: {})",
                facts.topics.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    problems
}

/// `params: [a, b: default]` → {a: false, b: true}.
fn parse_params(params: Option<&Value>) -> Result<Params, String> {
    let mut out = Params::new();
    let Some(params) = params else {
        return Ok(out);
    };
    let Some(items) = params.as_array() else {
        return Err("expected a list".into());
    };
    for item in items {
        match item {
            Value::String(name) => {
                out.insert(name.clone(), false);
            }
            Value::Object(map) if map.len() == 1 => {
                out.extend(map.keys().map(|k| (k.clone(), true)));
            }
            other => return Err(format!("{other} is neither a name nor `name: default`")),
        }
    }
    Ok(out)
}

/// The walk over one subworkflow's steps.
struct StepWalk<'a, 'p> {
    file: &'a str,
    subworkflow: &'a str,
    facts: &'a Facts<'a>,
    params: &'a BTreeMap<&'a str, Params>,
    /// Step name → where it was first defined.
    names: BTreeMap<String, String>,
    /// (where, target) of every `next`.
    nexts: Vec<(String, String)>,
    topics: &'p mut BTreeSet<String>,
    problems: &'p mut Vec<String>,
}

impl StepWalk<'_, '_> {
    fn problem(&mut self, at: &str, what: impl std::fmt::Display) {
        self.problems.push(format!("{}: {at}: {what}", self.file));
    }

    /// A `steps:` list: each item one `{name: body}`.
    fn steps(&mut self, steps: &Value, at: &str) {
        let Some(items) = steps.as_array() else {
            self.problem(at, "steps is not a list");
            return;
        };
        for item in items {
            let step = item.as_object().filter(|m| m.len() == 1);
            let Some((name, body)) = step.and_then(|m| m.iter().next()) else {
                self.problem(at, format!("a step must be one `name: body`, got {item}"));
                continue;
            };
            let here = format!("{}.{name}", self.subworkflow);
            if let Some(first) = self.names.get(name) {
                let first = first.clone();
                self.problem(
                    &here,
                    format!("a second step named {name} (first at {first})"),
                );
            } else {
                self.names.insert(name.clone(), here.clone());
            }
            self.body(body, &here);
        }
    }

    /// One step's body, or a switch condition's, which may hold the same
    /// keys.
    fn body(&mut self, body: &Value, at: &str) {
        let Some(map) = body.as_object() else {
            self.problem(at, "a step body must be a map");
            return;
        };
        if let Some(Value::String(target)) = map.get("next") {
            self.nexts.push((at.to_owned(), target.clone()));
        }
        if let Some(Value::String(call)) = map.get("call") {
            let args = map.get("args").cloned().unwrap_or(Value::Null);
            self.call(call, &args, at);
        }
        if let Some(steps) = map.get("steps") {
            self.steps(steps, at);
        }
        if let Some(try_) = map.get("try") {
            self.body(try_, &format!("{at}.try"));
        }
        if let Some(except) = map.get("except") {
            self.body(except, &format!("{at}.except"));
        }
        if let Some(switch) = map.get("switch") {
            let Some(conditions) = switch.as_array() else {
                self.problem(at, "switch is not a list");
                return;
            };
            for (i, condition) in conditions.iter().enumerate() {
                let here = format!("{at}.switch[{i}]");
                if condition.get("condition").is_none() {
                    self.problem(&here, "no condition");
                }
                self.body(condition, &here);
            }
        }
    }

    fn call(&mut self, call: &str, args: &Value, at: &str) {
        if let Some(method) = call.strip_prefix("googleapis.pubsub.v1.") {
            self.pubsub_call(&format!("pubsub.{method}"), args, at);
        } else if let Some(params) = self.params.get(call) {
            self.subworkflow_call(call, params, args, at);
        } else if !STDLIB_CALLS.contains(&call) {
            self.problem(
                at,
                format!(
                    "call: {call} is neither a subworkflow of this file, a googleapis.pubsub.v1 method, nor one of {}",
                    STDLIB_CALLS.join(", ")
                ),
            );
        }
    }

    fn pubsub_call(&mut self, id: &str, args: &Value, at: &str) {
        let facts = self.facts;
        let Some(method) = find_method(facts.pubsub, id) else {
            self.problem(
                at,
                format!("{id} is not a method of the Pub/Sub API (pubsub.v1.json)"),
            );
            return;
        };
        let empty = serde_json::Map::new();
        let Some(args) = args.as_object().or(args.is_null().then_some(&empty)) else {
            self.problem(at, "args is not a map");
            return;
        };
        let parameters = method.get("parameters").and_then(Value::as_object);
        for key in args.keys() {
            let known = parameters.is_some_and(|p| p.contains_key(key));
            if !known && key != "body" && key != "connector_params" {
                let allowed: Vec<&str> = parameters
                    .into_iter()
                    .flat_map(|p| p.keys().map(String::as_str))
                    .chain(["body", "connector_params"])
                    .collect();
                self.problem(
                    at,
                    format!(
                        "{key} is not an argument of {id} (it takes {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
        for (name, p) in parameters.into_iter().flatten() {
            let required = p.get("required").and_then(Value::as_bool) == Some(true);
            if required && !args.contains_key(name) {
                self.problem(at, format!("{id} needs the argument {name}"));
            }
        }
        match (method.get("request"), args.get("body")) {
            (Some(request), Some(body)) => {
                let walk = Walk::new([facts.pubsub]).required_for(id);
                if let Err(m) = walk.check(request, &without_expressions(body), "body") {
                    self.problem(at, m);
                }
            }
            (Some(_), None) => self.problem(at, format!("{id} needs a body")),
            (None, Some(_)) => self.problem(at, format!("{id} takes no body")),
            (None, None) => {}
        }
    }

    fn subworkflow_call(&mut self, call: &str, params: &Params, args: &Value, at: &str) {
        let empty = serde_json::Map::new();
        let Some(args) = args.as_object().or(args.is_null().then_some(&empty)) else {
            self.problem(at, "args is not a map");
            return;
        };
        for key in args.keys() {
            if !params.contains_key(key) {
                let known: Vec<&str> = params.keys().map(String::as_str).collect();
                self.problem(
                    at,
                    format!(
                        "{key} is not a parameter of {call} (it has {})",
                        known.join(", ")
                    ),
                );
            }
        }
        for (name, has_default) in params {
            if !has_default && !args.contains_key(name) {
                self.problem(at, format!("{call} needs the argument {name}"));
            }
        }
        // The topic a step publishes to or waits on, when written out.
        for key in ["topic", "results_topic"] {
            if let Some(Value::String(topic)) = args.get(key)
                && !topic.starts_with("${")
            {
                self.topics.insert(topic.clone());
            }
        }
    }
}

/// The method whose `id` is `id`, anywhere under `resources`.
fn find_method<'a>(doc: &'a Value, id: &str) -> Option<&'a Value> {
    let methods = doc.get("methods").and_then(Value::as_object);
    if let Some(m) = methods
        .into_iter()
        .flatten()
        .map(|(_, m)| m)
        .find(|m| m.get("id").and_then(Value::as_str) == Some(id))
    {
        return Some(m);
    }
    let resources = doc.get("resources").and_then(Value::as_object)?;
    resources.values().find_map(|r| find_method(r, id))
}

/// `v` with every `${...}` string replaced by null, which the walk accepts
/// anywhere: an expression's value is only known when the step runs.
fn without_expressions(v: &Value) -> Value {
    match v {
        Value::String(s) if is_expression(s) => Value::Null,
        Value::Array(items) => Value::Array(items.iter().map(without_expressions).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), without_expressions(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn is_expression(s: &str) -> bool {
    s.starts_with("${") && s.ends_with('}')
}

/// Every string in `v`, keys included.
fn strings(v: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => out.push(s.as_str()),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                out.extend(map.keys().map(String::as_str));
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    out
}

/// Pub/Sub topic ids written out after `/topics/` (in a resource name or
/// an expression's string literal); `"/topics/" + topic` names none.
fn topics_in(text: &str) -> Vec<String> {
    text.match_indices("/topics/")
        .filter_map(|(i, m)| {
            let rest = &text[i + m.len()..];
            let id: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(*c))
                .collect();
            (!id.is_empty()).then_some(id)
        })
        .collect()
}

/// The names passed to `sys.get_env("...")`.
fn env_vars_in(text: &str) -> Vec<String> {
    text.match_indices("sys.get_env(\"")
        .filter_map(|(i, m)| {
            let rest = &text[i + m.len()..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .collect()
}

/// The `name` of every `resource "google_pubsub_topic"` block.
fn terraform_topics(files: &[(String, String)]) -> BTreeSet<String> {
    let mut topics = BTreeSet::new();
    for (_, text) in files {
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with("resource \"google_pubsub_topic\"") {
                inside = true;
            } else if inside && line.starts_with('}') {
                inside = false;
            } else if inside && let Some(value) = line.trim().strip_prefix("name") {
                let value = value.trim_start().trim_start_matches('=').trim();
                if let Some(name) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    topics.insert(name.to_owned());
                }
            }
        }
    }
    topics
}

/// The `.tf` files of one module, by name.
fn module_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, text)
        })
        .collect();
    files.sort();
    files
}

fn pubsub() -> Value {
    serde_json::from_str(PUBSUB_V1).expect("pubsub.v1.json is JSON")
}

const ONBOARDING: &str = "deploy/workflows/onboarding.yaml";

fn onboarding() -> (String, Vec<(String, String)>) {
    let root = root();
    let text =
        std::fs::read_to_string(root.join(ONBOARDING)).expect("the onboarding workflow exists");
    (
        text,
        module_files(&root.join("deploy/terraform/onboarding")),
    )
}

#[test]
fn every_definition_checks_against_pubsub_and_terraform() {
    let root = root();
    let pubsub = pubsub();
    let (_, tf) = onboarding();
    let facts = Facts {
        pubsub: &pubsub,
        topics: terraform_topics(&tf),
    };
    assert_eq!(
        facts.topics.iter().map(String::as_str).collect::<Vec<_>>(),
        [
            "customer-results",
            "customers",
            "partner-results",
            "partners"
        ],
        "the onboarding module's topics"
    );
    let mut checked = 0;
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(root.join("deploy/workflows")).expect("deploy/workflows/ exists")
    {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let file = format!(
            "deploy/workflows/{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let text = std::fs::read_to_string(&path).expect("readable");
        problems.extend(check(&file, &text, &facts));
        checked += 1;
    }
    assert_eq!(
        checked, 1,
        "deploy/workflows/ holds the onboarding definition"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_onboarding_module_deploys_this_definition() {
    let (_, tf) = onboarding();
    let sources: Vec<String> = tf
        .iter()
        .flat_map(|(_, text)| text.lines())
        .filter(|l| l.trim_start().starts_with("source_contents"))
        // `terraform fmt` aligns the `=`; compare the words.
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        sources,
        ["source_contents = file(\"${path.module}/../../workflows/onboarding.yaml\")"],
        "deploy/terraform/onboarding deploys {ONBOARDING}"
    );
}

/// The onboarding definition with one edit, checked.
fn check_edited(from: &str, to: &str) -> Vec<String> {
    let (text, tf) = onboarding();
    assert!(text.contains(from), "the definition holds {from:?}");
    let pubsub = pubsub();
    let facts = Facts {
        pubsub: &pubsub,
        topics: terraform_topics(&tf),
    };
    check("w.yaml", &text.replacen(from, to, 1), &facts)
}

#[test]
fn a_misspelt_body_field_names_the_schema() {
    assert_eq!(
        check_edited("ackDeadlineSeconds: 60", "ackDeadline: 60"),
        ["w.yaml: run_step.subscribe: body.ackDeadline is not a field of Subscription"]
    );
    assert_eq!(
        check_edited("maxMessages: 1", "maxMessages: one"),
        ["w.yaml: await_result.pull: body.maxMessages: expected integer, got string \"one\""]
    );
}

#[test]
fn a_topic_terraform_does_not_create_is_named() {
    let problems = check_edited(
        "results_topic: partner-results",
        "results_topic: partner-result",
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("w.yaml: topic partner-result is not a google_pubsub_topic"),
        "{problems:?}"
    );
    let problems = check_edited("/topics/customers\"", "/topics/customer\"");
    assert!(
        problems.iter().any(|p| p.contains("topic customer is not")),
        "{problems:?}"
    );
}

#[test]
fn calls_must_name_a_method_a_subworkflow_or_the_stdlib() {
    assert_eq!(
        check_edited("call: await_result", "call: await_results"),
        [
            "w.yaml: run_step.wait: call: await_results is neither a subworkflow of this file, a googleapis.pubsub.v1 method, nor one of sys.sleep, sys.log"
        ]
    );
    assert_eq!(
        check_edited(
            "googleapis.pubsub.v1.projects.subscriptions.pull",
            "googleapis.pubsub.v1.projects.subscriptions.poll"
        ),
        [
            "w.yaml: await_result.pull: pubsub.projects.subscriptions.poll is not a method of the Pub/Sub API (pubsub.v1.json)"
        ]
    );
}

#[test]
fn arguments_must_be_parameters_and_required_ones_present() {
    assert_eq!(
        check_edited(
            "          event_type: partner.requested\n",
            "          event_kind: partner.requested\n"
        ),
        [
            "w.yaml: main.create_partner: event_kind is not a parameter of run_step (it has data, event_id, event_type, project, results_topic, timeout_seconds, topic)",
            "w.yaml: main.create_partner: run_step needs the argument event_type",
        ]
    );
    assert_eq!(
        check_edited(
            "- unsubscribe:\n        call: googleapis.pubsub.v1.projects.subscriptions.delete\n        args:\n          subscription:",
            "- unsubscribe:\n        call: googleapis.pubsub.v1.projects.subscriptions.delete\n        args:\n          sub:"
        ),
        [
            "w.yaml: run_step.unsubscribe: sub is not an argument of pubsub.projects.subscriptions.delete (it takes subscription, body, connector_params)",
            "w.yaml: run_step.unsubscribe: pubsub.projects.subscriptions.delete needs the argument subscription",
        ]
    );
}

#[test]
fn next_must_name_a_step_and_env_a_built_in() {
    assert_eq!(
        check_edited("next: undo_customer", "next: undo"),
        ["w.yaml: main.sap_outcome.switch[0]: next: undo is not a step of main"]
    );
    assert_eq!(
        check_edited("GOOGLE_CLOUD_PROJECT_ID", "PROJECT_ID"),
        ["w.yaml: sys.get_env(\"PROJECT_ID\") is not a built-in variable of an execution"]
    );
}

#[test]
fn not_a_map_of_subworkflows_is_refused() {
    let pubsub = pubsub();
    let facts = Facts {
        pubsub: &pubsub,
        topics: BTreeSet::new(),
    };
    assert_eq!(
        check("w.yaml", "- step: {return: 1}\n", &facts),
        ["w.yaml: expected a map of subworkflows (`main:` and others), got array"]
    );
    assert_eq!(
        check("w.yaml", "main: [\n", &facts).len(),
        1,
        "bad YAML is one problem"
    );
}
