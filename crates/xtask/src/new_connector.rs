//! `cargo xtask new-connector <name>`: a new connector crate from
//! connectors/template, wired into the workspace and the deploy files.
//!
//! The generated crate builds, lints and passes its own tests untouched
//! (crates/xtask/tests/new_connector.rs proves it on every CI run), so a
//! connector author starts from green and changes one vendor detail at a
//! time.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Why a connector cannot be generated.
#[derive(Debug)]
pub(crate) enum NewConnectorError {
    /// The name breaks the naming rule.
    Name(String),
    /// `connectors/<name>` is there already.
    Exists(PathBuf),
    /// A file to read or write.
    Io(PathBuf, std::io::Error),
    /// A deploy file lacks the marker line the generator edits.
    Marker(PathBuf, &'static str),
}

impl fmt::Display for NewConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(why) => write!(f, "{why}"),
            Self::Exists(p) => write!(f, "{} exists already", p.display()),
            Self::Io(p, e) => write!(f, "{}: {e}", p.display()),
            Self::Marker(p, m) => write!(
                f,
                "{}: no line containing {m:?} to add the connector to",
                p.display()
            ),
        }
    }
}

impl std::error::Error for NewConnectorError {}

/// The names the template's placeholders take for one connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    /// `acme-crm`: the directory, `gluefleet-acme-crm` the crate and binary.
    pub(crate) name: String,
    /// `gluefleet_acme_crm`: the crate as Rust names it.
    pub(crate) krate: String,
    /// `AcmeCrm`: the type names.
    pub(crate) type_name: String,
    /// `Acme Crm`: prose.
    pub(crate) title: String,
    /// `ACME_CRM_`: the prefix of its environment variables.
    pub(crate) env_prefix: String,
}

/// Marks the list of connectors in deploy/terraform/variables.tf.
const TERRAFORM_MARKER: &str = "gluefleet:connectors";
/// Marks the list of connectors in deploy/Dockerfile.
const DOCKERFILE_MARKER: &str = "ARG CONNECTORS=";

impl Names {
    /// Checks `name`: 1 to 20 characters of `a-z`, `0-9` and `-`, starting
    /// with a letter, not ending with `-`, no `--` (the Cloud Run service
    /// account `gluefleet-<name>` may have 30 characters, and every name
    /// derived from it must stay valid).
    pub(crate) fn new(name: &str) -> Result<Self, NewConnectorError> {
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let starts = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        if !(ok_chars && starts) || name.len() > 20 || name.ends_with('-') || name.contains("--") {
            return Err(NewConnectorError::Name(format!(
                "connector name {name:?}: use 1 to 20 characters of a-z, 0-9 and '-', starting with a letter, not ending with '-', no '--' (e.g. acme-crm)"
            )));
        }
        if name == "template" {
            return Err(NewConnectorError::Name(
                "\"template\" is the template's own directory; pick the vendor's name".into(),
            ));
        }
        let words: Vec<&str> = name.split('-').collect();
        let cap = |w: &str| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        };
        Ok(Self {
            name: name.to_owned(),
            krate: format!("gluefleet_{}", name.replace('-', "_")),
            type_name: words.iter().map(|w| cap(w)).collect(),
            title: words.iter().map(|w| cap(w)).collect::<Vec<_>>().join(" "),
            env_prefix: format!("{}_", name.replace('-', "_").to_ascii_uppercase()),
        })
    }

    /// A template's text with the placeholders filled in.
    pub(crate) fn fill(&self, text: &str) -> String {
        text.replace("__name__", &self.name)
            .replace("__crate__", &self.krate)
            .replace("__Type__", &self.type_name)
            .replace("__Title__", &self.title)
            .replace("__NAME__", &self.env_prefix)
    }
}

/// What a generation wrote, for the closing message.
#[derive(Debug, Default)]
pub(crate) struct Generated {
    /// Files created.
    pub(crate) created: Vec<PathBuf>,
    /// Files changed.
    pub(crate) changed: Vec<PathBuf>,
}

fn read(p: &Path) -> Result<String, NewConnectorError> {
    std::fs::read_to_string(p).map_err(|e| NewConnectorError::Io(p.to_owned(), e))
}

fn write(p: &Path, text: &str) -> Result<(), NewConnectorError> {
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(|e| NewConnectorError::Io(dir.to_owned(), e))?;
    }
    std::fs::write(p, text).map_err(|e| NewConnectorError::Io(p.to_owned(), e))
}

/// The template's `.tmpl` files below `dir`, as paths relative to `root`.
fn templates(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), NewConnectorError> {
    let entries = std::fs::read_dir(dir).map_err(|e| NewConnectorError::Io(dir.to_owned(), e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| NewConnectorError::Io(dir.to_owned(), e))?
            .path();
        if path.is_dir() {
            templates(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "tmpl") {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_owned());
        }
    }
    Ok(())
}

/// Adds `name` to the space-separated list that follows `marker` on its
/// line (inside the line's first pair of quotes, or after the marker when
/// there are none), keeping it sorted. Idempotent.
fn add_to_list(text: &str, marker: &str, name: &str) -> Option<String> {
    let mut done = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if done || !line.contains(marker) {
                return line.to_owned();
            }
            let (Some(open), Some(close)) = (line.find('"'), line.rfind('"')) else {
                return line.to_owned();
            };
            if open >= close {
                return line.to_owned();
            }
            done = true;
            let inner = &line[open + 1..close];
            // Terraform's list is `"a", "b"`; the Dockerfile's `a b`.
            let quoted = inner.contains("\", \"") || line[..open].trim_end().ends_with('[');
            let mut names: Vec<String> = if quoted {
                inner.split("\", \"").map(str::to_owned).collect()
            } else {
                inner.split_whitespace().map(str::to_owned).collect()
            };
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
            names.sort();
            let joined = if quoted {
                names.join("\", \"")
            } else {
                names.join(" ")
            };
            format!("{}{joined}{}", &line[..=open], &line[close..])
        })
        .collect();
    done.then(|| lines.join("\n") + if text.ends_with('\n') { "\n" } else { "" })
}

/// Generates connector `names` into the workspace at `root`.
pub(crate) fn generate(root: &Path, names: &Names) -> Result<Generated, NewConnectorError> {
    let template = root.join("connectors/template");
    let dest = root.join("connectors").join(&names.name);
    if dest.exists() {
        return Err(NewConnectorError::Exists(dest));
    }
    let mut out = Generated::default();
    let mut files = Vec::new();
    templates(&template, &template, &mut files)?;
    files.sort();
    for rel in files {
        let text = names.fill(&read(&template.join(&rel))?);
        // A path may name the connector too (examples/__name__.toml).
        let rel_text = names.fill(rel.to_string_lossy().trim_end_matches(".tmpl"));
        let target = match rel_text.strip_prefix("deploy/") {
            // deploy/service.yaml → deploy/cloudrun/<name>.service.yaml
            Some(kind) => root
                .join("deploy/cloudrun")
                .join(format!("{}.{kind}", names.name)),
            None => dest.join(&rel_text),
        };
        if target.exists() {
            return Err(NewConnectorError::Exists(target));
        }
        write(&target, &text)?;
        out.created.push(target);
    }
    for (file, marker) in [
        ("deploy/terraform/variables.tf", TERRAFORM_MARKER),
        ("deploy/Dockerfile", DOCKERFILE_MARKER),
    ] {
        let path = root.join(file);
        let text = read(&path)?;
        let new = add_to_list(&text, marker, &names.name)
            .ok_or_else(|| NewConnectorError::Marker(path.clone(), marker))?;
        if new != text {
            write(&path, &new)?;
            out.changed.push(path);
        }
    }
    Ok(out)
}

/// The workspace root: two levels above this crate.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The command.
pub(crate) fn main(name: &str, root: Option<&Path>) -> ExitCode {
    let root = root.map_or_else(workspace_root, Path::to_owned);
    let names = match Names::new(name) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("new-connector: {e}");
            return ExitCode::from(2);
        }
    };
    match generate(&root, &names) {
        Ok(done) => {
            let show = |p: &PathBuf| p.strip_prefix(&root).unwrap_or(p).display().to_string();
            println!(
                "Created gluefleet-{} in connectors/{}:",
                names.name, names.name
            );
            for p in &done.created {
                println!("  + {}", show(p));
            }
            for p in &done.changed {
                println!("  ~ {}", show(p));
            }
            println!(
                "\nIt builds and its tests pass as it is:\n\n  cargo test -p gluefleet-{}\n",
                names.name
            );
            println!("Next, in this order (docs/NEW-CONNECTOR.md has the details):");
            for step in [
                "1. src/config.rs: the vendor's [target] settings and route actions.",
                "2. src/client.rs: the vendor's requests, sent through the core's Edge.",
                "3. src/error.rs: what the vendor's error bodies say, and what the shared",
                "   status table gets wrong for this vendor (a quota error inside a 200).",
                "4. src/service.rs: one event to one call, and what each answer means.",
                "5. tests/: point e2e.rs at the vendor's local server or a sandbox double",
                "   in crates/testkit; keep tests/conformance.rs passing.",
                "6. README.md, and the Cloud Run manifests (memory, secrets).",
            ] {
                println!("{step}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("new-connector: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule_and_derive_every_form() {
        let n = Names::new("acme-crm").expect("valid");
        assert_eq!(
            (
                n.krate.as_str(),
                n.type_name.as_str(),
                n.title.as_str(),
                n.env_prefix.as_str()
            ),
            ("gluefleet_acme_crm", "AcmeCrm", "Acme Crm", "ACME_CRM_")
        );
        for bad in [
            "",
            "Acme",
            "1crm",
            "crm-",
            "a--b",
            "a_b",
            "template",
            "a-very-long-connector-name",
        ] {
            assert!(Names::new(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn lists_gain_the_name_once_and_stay_sorted() {
        let tf = "  # the list: gluefleet:connectors\n  condition = contains([\"firestore\", \"salesforce\"], var.connector) # gluefleet:connectors\n";
        let once = add_to_list(tf, TERRAFORM_MARKER, "hubspot").expect("marker");
        assert!(
            once.contains("[\"firestore\", \"hubspot\", \"salesforce\"]"),
            "{once}"
        );
        let docker = "ARG CONNECTORS=\"firestore salesforce\"\n";
        let d = add_to_list(docker, DOCKERFILE_MARKER, "acme").expect("marker");
        assert_eq!(d, "ARG CONNECTORS=\"acme firestore salesforce\"\n");
        assert_eq!(
            add_to_list(&d, DOCKERFILE_MARKER, "acme").as_deref(),
            Some(d.as_str())
        );
        assert!(add_to_list("nothing here\n", DOCKERFILE_MARKER, "acme").is_none());
    }
}
