//! Optional JSON Schemas for what ingest publishes: per topic, and per
//! event type on a topic. An event whose data does not match is answered
//! 400 naming each violation (its JSON Pointer and what is wrong) and is
//! not published, so a producer's mistake stops at the front door instead
//! of becoming a dead letter downstream.
//!
//! Schemas are read and compiled once at startup; a file that is missing,
//! not JSON, or not a valid schema stops the service with exit 64, naming
//! it. `$ref`s resolve within the schema file only (no network, no other
//! files), so what is checked is exactly what the config names.

use super::config::IngestConfig;
use jsonschema::Validator;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// At most this many violations are named in one answer: enough to fix a
/// payload, without echoing a huge document back.
const NAMED: usize = 10;

/// One compiled schema and the file it came from.
struct Compiled {
    file: String,
    validator: Validator,
}

/// A route's schemas: for every event type, or per type.
#[derive(Default)]
struct RouteSchemas {
    all: Option<Compiled>,
    by_type: HashMap<String, Compiled>,
}

/// Every configured schema, compiled.
#[derive(Default)]
pub struct Schemas {
    routes: HashMap<String, RouteSchemas>,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schemas")
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One place the data breaks the schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON Pointer into the event's data (`""` for the data itself).
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// Why an event was refused: the schema file and its violations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The schema file, as the config names it.
    pub file: String,
    /// The first [`NAMED`] violations.
    pub violations: Vec<Violation>,
    /// How many there were in all.
    pub total: usize,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the event's data does not match the schema {}: ",
            self.file
        )?;
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let at = if v.path.is_empty() { "/" } else { &v.path };
            write!(f, "{at}: {}", v.message)?;
        }
        if self.total > self.violations.len() {
            write!(f, "; and {} more", self.total - self.violations.len())?;
        }
        Ok(())
    }
}

fn compile(route: &str, file: &Path) -> Result<Compiled, String> {
    let name = file.display().to_string();
    let what = format!("ingest config: topics.{route}: schema {name}");
    let text = std::fs::read_to_string(file).map_err(|e| format!("{what}: cannot read it: {e}"))?;
    let schema: Value =
        serde_json::from_str(&text).map_err(|e| format!("{what} is not JSON: {e}"))?;
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| format!("{what} is not a valid JSON Schema: {e}"))?;
    Ok(Compiled {
        file: name,
        validator,
    })
}

impl Schemas {
    /// Reads and compiles every schema `config` names; the error names the
    /// route and the file.
    pub fn load(config: &IngestConfig) -> Result<Self, String> {
        let mut routes = HashMap::new();
        for (route, t) in &config.topics {
            let mut r = RouteSchemas::default();
            if let Some(file) = &t.schema {
                r.all = Some(compile(route, file)?);
            }
            for (event_type, file) in &t.schemas {
                r.by_type.insert(event_type.clone(), compile(route, file)?);
            }
            if r.all.is_some() || !r.by_type.is_empty() {
                routes.insert(route.clone(), r);
            }
        }
        Ok(Self { routes })
    }

    /// Checks `data` of an event of `event_type` posted to `route` against
    /// the type's schema, else the route's, else lets it through.
    pub fn check(&self, route: &str, event_type: &str, data: &Value) -> Result<(), Refusal> {
        let Some(r) = self.routes.get(route) else {
            return Ok(());
        };
        let Some(schema) = r.by_type.get(event_type).or(r.all.as_ref()) else {
            return Ok(());
        };
        let mut total = 0;
        let mut violations = Vec::new();
        for e in schema.validator.iter_errors(data) {
            total += 1;
            if violations.len() < NAMED {
                violations.push(Violation {
                    path: e.instance_path().to_string(),
                    message: e.to_string(),
                });
            }
        }
        if total == 0 {
            Ok(())
        } else {
            Err(Refusal {
                file: schema.file.clone(),
                violations,
                total,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh directory for one test's schema files.
    fn scratch(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gluefleet-schema-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch dir");
        dir
    }

    fn config(dir: &Path) -> IngestConfig {
        let order = dir.join("order.json");
        let any = dir.join("any.json");
        std::fs::write(
            &order,
            r##"{"type": "object", "required": ["order", "amount"],
                "properties": {"amount": {"type": "number", "minimum": 0},
                               "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}}},
                "$defs": {"line": {"type": "object", "required": ["sku"]}}}"##,
        )
        .expect("written");
        std::fs::write(&any, r#"{"type": "object"}"#).expect("written");
        IngestConfig::parse(&format!(
            "[topics.orders]\ntopic = \"projects/p/topics/orders\"\nschema = \"{}\"\n\n\
             [topics.orders.schemas]\n\"order.created\" = \"{}\"\n\n\
             [topics.free]\ntopic = \"projects/p/topics/free\"\n\n\
             [[credentials]]\nname = \"sap\"\ntopics = [\"orders\"]\nkind = \"api_key\"\n\
             key_sha256 = \"{}\"\n",
            any.display(),
            order.display(),
            "0".repeat(64)
        ))
        .expect("valid")
    }

    #[test]
    fn data_is_checked_by_the_types_schema_else_the_routes() {
        let dir = scratch("check");
        let schemas = Schemas::load(&config(&dir)).expect("compiled");
        let good = serde_json::json!({"order": "o-1", "amount": 3, "lines": [{"sku": "a"}]});
        assert_eq!(schemas.check("orders", "order.created", &good), Ok(()));

        let bad = serde_json::json!({"amount": -3, "lines": [{"qty": 1}]});
        let refusal = schemas
            .check("orders", "order.created", &bad)
            .expect_err("refused");
        assert_eq!(refusal.total, 3);
        let paths: Vec<&str> = refusal.violations.iter().map(|v| v.path.as_str()).collect();
        assert!(
            paths.contains(&"") && paths.contains(&"/amount") && paths.contains(&"/lines/0"),
            "{paths:?}"
        );
        let text = refusal.to_string();
        assert!(
            text.contains("order.json")
                && text.contains("/amount: -3 is less than the minimum of 0"),
            "{text}"
        );

        // Another type on the route: the route's schema (an object) applies.
        assert_eq!(schemas.check("orders", "order.cancelled", &bad), Ok(()));
        assert!(
            schemas
                .check("orders", "order.cancelled", &serde_json::json!([1]))
                .is_err()
        );
        // A route without schemas takes anything.
        assert_eq!(schemas.check("free", "x", &serde_json::json!(7)), Ok(()));
    }

    #[test]
    fn a_broken_schema_is_named_at_startup() {
        let dir = scratch("broken");
        let c = config(&dir);
        std::fs::write(dir.join("order.json"), r#"{"type": 12}"#).expect("written");
        let err = Schemas::load(&c).expect_err("refused");
        assert!(
            err.contains("topics.orders: schema") && err.contains("is not a valid JSON Schema"),
            "{err}"
        );
        std::fs::write(dir.join("order.json"), "{").expect("written");
        assert!(
            Schemas::load(&c)
                .expect_err("refused")
                .contains("order.json is not JSON")
        );
        std::fs::remove_file(dir.join("order.json")).expect("removed");
        assert!(
            Schemas::load(&c)
                .expect_err("refused")
                .contains("cannot read it")
        );
    }
}
