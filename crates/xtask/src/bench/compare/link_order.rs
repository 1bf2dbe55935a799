//! `cargo xtask link-order`: writes each connector's `link-order.txt`, the
//! functions its release binary runs, for the linker to lay out together
//! (why: the `gluefleet-build` crate's docs).
//!
//! The workload is the comparison's (the same configs, targets and 1 KiB
//! events, one stream), so the list covers start-up and the per-message
//! path the benchmark measures. Each worker drains a short backlog under
//! `valgrind --tool=callgrind`, which records every function that ran, not
//! a sample of them: a function left out of the list costs a whole folio of
//! resident code when it runs. Names are kept exactly as the symbol table
//! has them and only if the binary has them, in the order they first ran.

use super::{Subject, Targets, backlog, base_env, config, salesforce_for, sub_id};
use crate::bench::{Result, block_on, build_release, summary_at_exit};
use gluefleet_testkit::TempDir;
use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::pubsub::SubscriptionOptions;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The connectors with a workload here.
const SUBJECTS: [Subject; 3] = [Subject::LegacyRest, Subject::Firestore, Subject::Salesforce];

/// Regenerates the lists of `only` (all three when empty) from `events`
/// messages each.
pub(crate) fn run(events: usize, only: &[String]) -> ExitCode {
    let mut subjects = Vec::new();
    for s in SUBJECTS {
        if only.is_empty() || only.iter().any(|w| w == s.name()) {
            subjects.push(s);
        }
    }
    if subjects.is_empty() {
        eprintln!(
            "link-order: no connector named {}; there are: legacy-rest, firestore, salesforce",
            only.join(", ")
        );
        return ExitCode::FAILURE;
    }
    block_on(generate(subjects, events))
}

async fn generate(subjects: Vec<Subject>, events: usize) -> Result<()> {
    for tool in ["valgrind", "nm"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Err(format!(
                "`{tool}` is not installed; this needs valgrind (callgrind) and binutils' nm"
            )
            .into());
        }
    }
    let mut binaries = Vec::new();
    for &s in &subjects {
        let (package, bin) = s.binary();
        binaries.push((s, build_release(package, bin)?));
    }
    let (pubsub, targets) = Targets::start().await?;
    let topic = "link-order";
    pubsub.create_topic(topic).await?;
    for &s in &subjects {
        pubsub
            .create_subscription(
                &sub_id(0, s, 1),
                topic,
                SubscriptionOptions {
                    ack_deadline_secs: 600,
                    dead_letter: None,
                    push_endpoint: None,
                },
            )
            .await?;
    }
    pubsub.publish(topic, &backlog(0, events)).await?;
    let dir = TempDir::new("link-order")?;
    for (subject, binary) in binaries {
        let sub = sub_id(0, subject, 1);
        let salesforce = salesforce_for(subject).await?;
        let (text, mut env) = config(subject, &targets, salesforce.as_ref(), 1, "link-order")?;
        let path = dir.write(&format!("{sub}.toml"), text)?;
        env.extend(base_env(&pubsub, &sub));
        let out = dir.path().join(format!("{sub}.callgrind"));
        eprintln!("• {} under callgrind…", subject.label());
        let worker = Worker::spawn(
            Path::new("valgrind"),
            &[
                "--tool=callgrind",
                "--demangle=no",
                &format!("--callgrind-out-file={}", out.display()),
                &binary.display().to_string(),
                "job",
                "--config",
                &path.display().to_string(),
                "--idle-exit",
                "3s",
            ],
            &env,
        )
        .await?;
        let summary = summary_at_exit(worker, subject.label()).await?;
        let acked = summary["acked"].as_u64().unwrap_or(0);
        if acked < events as u64 {
            return Err(format!("{} acked {acked} of {events}", subject.label()).into());
        }
        let profile = std::fs::read_to_string(&out)?;
        let ran = executed(&profile);
        let symbols = text_symbols(&binary)?;
        let order: Vec<&str> = ran.into_iter().filter(|n| symbols.contains(*n)).collect();
        let file = list_path(subject);
        std::fs::write(&file, order.join("\n") + "\n")?;
        eprintln!(
            "  {} functions → {} (rebuild in release to use it)",
            order.len(),
            file.display()
        );
    }
    Ok(())
}

/// The connector's list.
pub(super) fn list_path(subject: Subject) -> PathBuf {
    let (package, _) = subject.binary();
    let dir = package.trim_start_matches("gluefleet-");
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../connectors")
        .join(dir)
        .join(gluefleet_build::FILE)
}

/// The function names a callgrind profile names, in the order they first
/// appear. Callgrind writes a name once, as `fn=(id) name` or
/// `cfn=(id) name` (later lines carry only the id).
fn executed(profile: &str) -> Vec<&str> {
    let mut seen = HashSet::new();
    profile
        .lines()
        .filter_map(|l| l.strip_prefix("fn=(").or_else(|| l.strip_prefix("cfn=(")))
        .filter_map(|rest| rest.split_once(") ").map(|(_, name)| name))
        .filter(|name| seen.insert(*name))
        .collect()
}

/// The names of the code symbols in `binary`'s symbol table (`nm`).
fn text_symbols(binary: &Path) -> Result<HashSet<String>> {
    let out = Command::new("nm").arg(binary).output()?;
    if !out.status.success() {
        return Err(format!("nm {} failed: {}", binary.display(), out.status).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (_addr, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
            matches!(kind, "t" | "T" | "w" | "W").then(|| name.to_owned())
        })
        .collect())
}

/// How many names of `subject`'s list `binary` still has, of how many;
/// None without a list.
pub(super) fn coverage(subject: Subject, binary: &Path) -> Result<Option<(usize, usize)>> {
    let Ok(list) = std::fs::read_to_string(list_path(subject)) else {
        return Ok(None);
    };
    let symbols = text_symbols(binary)?;
    let names: Vec<&str> = list.lines().filter(|l| !l.is_empty()).collect();
    let found = names.iter().filter(|n| symbols.contains(**n)).count();
    Ok(Some((found, names.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callgrind_names_once_each_in_first_seen_order() {
        let profile = "events: Ir\nfn=(1) _ZN4main17h0E\n1 2\ncfn=(2) _ZN3foo17h1E\ncalls=1 0\n\
                       fn=(2)\n3 4\ncfn=(1)\nfn=(3) memcpy\ncfn=(2) _ZN3foo17h1E\n";
        assert_eq!(
            executed(profile),
            vec!["_ZN4main17h0E", "_ZN3foo17h1E", "memcpy"]
        );
    }

    #[test]
    fn each_connector_list_is_where_its_build_script_reads_it() {
        for s in SUBJECTS {
            let p = list_path(s);
            let (package, _) = s.binary();
            let manifest = p.with_file_name("Cargo.toml");
            let text = std::fs::read_to_string(&manifest).unwrap_or_default();
            assert!(
                text.contains(&format!("name = \"{package}\"")),
                "{} is not {package}'s directory",
                manifest.display()
            );
        }
    }
}
