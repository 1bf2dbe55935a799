//! YAML files as JSON, for the schema walks of the fleet tests
//! (`deploy.rs`, `workflows.rs`).

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

/// YAML as JSON, for the schema walk: keys must be strings, and anchors
/// and aliases are refused (`gcloud` would expand them; this checker
/// would not see what it expands to).
pub(crate) fn to_json(y: &Yaml, path: &str) -> Result<Value, String> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("{path}: {text} is not a number"))?,
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Hash(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let Yaml::String(key) = k else {
                    return Err(format!("{path}: the key {k:?} is not a string"));
                };
                let child = gluefleet_testkit::discovery::join(path, key);
                out.insert(key.clone(), to_json(v, &child)?);
            }
            Value::Object(out)
        }
        Yaml::Alias(_) => return Err(format!("{path}: YAML aliases are not supported here")),
        Yaml::BadValue => return Err(format!("{path}: not a YAML value")),
    })
}

/// The one YAML document of `text` as JSON; the problem names `file`.
pub(crate) fn load_one(file: &str, text: &str) -> Result<Value, Vec<String>> {
    let docs =
        YamlLoader::load_from_str(text).map_err(|e| vec![format!("{file}: not YAML: {e}")])?;
    let [doc] = docs.as_slice() else {
        return Err(vec![format!(
            "{file}: holds {} YAML documents, expected one",
            docs.len()
        )]);
    };
    to_json(doc, "").map_err(|e| vec![format!("{file}: {e}")])
}
