//! How the demo puts its samples on a topic: through `gluefleet-publish`,
//! as a producer would, not through a client of its own.
//!
//! Each part's samples are CloudEvents in the three shapes workers decode,
//! so they are written as CloudEvents JSON Lines (`--records cloudevents`)
//! and published once per envelope, each run's summary giving the message
//! ids. A sample that is not an event at all (a producer's bug the demo
//! shows being dead-lettered) is refused by `gluefleet-publish`, which the
//! demo shows, and is then put on the topic with the emulator's client.

use super::{Result, Stage};
use gluefleet_testkit::bin::{Profile, cargo_build};
use gluefleet_testkit::pubsub::{OutgoingMessage, PubsubEmulator};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// How a sample is published.
#[derive(Clone, Debug, PartialEq)]
enum Plan {
    /// As a CloudEvent record, in this `--envelope`.
    Event(&'static str, Value),
    /// Not an event: the bytes as they are.
    Raw,
}

/// A binary-mode message (`ce-*` attributes, JSON body) as the CloudEvent
/// it carries; `None` when it is not one `gluefleet-publish` can rebuild.
fn binary_record(m: &OutgoingMessage) -> Option<Value> {
    let mut event = Map::new();
    for (k, v) in &m.attributes {
        if let Some(name) = k.strip_prefix("ce-") {
            event.insert(name.to_owned(), json!(v));
        } else if k == "content-type" {
            event.insert("datacontenttype".to_owned(), json!(v));
        } else {
            return None;
        }
    }
    let data: Value = serde_json::from_slice(&m.data).ok()?;
    event.insert("data".to_owned(), data);
    Some(Value::Object(event))
}

fn plan(m: &OutgoingMessage) -> Plan {
    if m.attributes.contains_key("ce-id") {
        return binary_record(m).map_or(Plan::Raw, |r| Plan::Event("binary", r));
    }
    if !m.attributes.is_empty() {
        return Plan::Raw;
    }
    match serde_json::from_slice::<Value>(&m.data) {
        Ok(v) if v.get("specversion").is_some() => Plan::Event("structured", v),
        Ok(v)
            if v.get("type").is_some()
                && v.as_object()
                    .is_some_and(|o| o.keys().all(|k| k == "type" || k == "data")) =>
        {
            Plan::Event("plain", v)
        }
        _ => Plan::Raw,
    }
}

/// `gluefleet-publish`, built once per demo.
pub(crate) async fn binary(stage: &mut Stage) -> Result<PathBuf> {
    if let Some(p) = &stage.publisher {
        return Ok(p.clone());
    }
    let path = tokio::task::spawn_blocking(|| {
        cargo_build("gluefleet-runtime", "gluefleet-publish", Profile::Current)
    })
    .await??;
    stage.publisher = Some(path.clone());
    Ok(path)
}

/// One `gluefleet-publish` run: its exit code, its summary (stdout) and
/// its last stderr line.
struct RunOutput {
    code: Option<i32>,
    summary: Option<Value>,
    message: String,
}

async fn run(publisher: &Path, pubsub: &PubsubEmulator, args: &[&str]) -> Result<RunOutput> {
    let out = tokio::process::Command::new(publisher)
        .args(args)
        .env("PUBSUB_EMULATOR_HOST", pubsub.host())
        .env("GOOGLE_CLOUD_PROJECT", pubsub.project())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", publisher.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    Ok(RunOutput {
        code: out.status.code(),
        summary: stdout
            .lines()
            .find_map(|l| serde_json::from_str::<Value>(l).ok()),
        message: stderr.trim().to_owned(),
    })
}

/// Runs `gluefleet-publish args` as a user would, showing the command;
/// its summary line, or an error quoting what it printed unless it exited 0.
pub(crate) async fn cli(
    stage: &mut Stage,
    pubsub: &PubsubEmulator,
    args: &[&str],
) -> Result<Value> {
    let publisher = binary(stage).await?;
    println!("• running: gluefleet-publish {}", args.join(" "));
    let out = run(&publisher, pubsub, args).await?;
    match out.summary {
        Some(s) if out.code == Some(0) => {
            println!("  {}", out.message);
            Ok(s)
        }
        _ => Err(format!("gluefleet-publish exited {:?}: {}", out.code, out.message).into()),
    }
}

/// Publishes `messages` to `topic`; their message ids in the same order.
pub(crate) async fn publish(
    stage: &mut Stage,
    pubsub: &PubsubEmulator,
    topic: &str,
    messages: &[OutgoingMessage],
) -> Result<Vec<String>> {
    let publisher = binary(stage).await?;
    let plans: Vec<Plan> = messages.iter().map(plan).collect();
    let mut ids: Vec<Option<String>> = vec![None; messages.len()];
    println!("• publishing {} events to topic {topic}:", messages.len());
    for envelope in ["binary", "structured", "plain"] {
        let group: Vec<(usize, &Value)> = plans
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Plan::Event(e, v) if *e == envelope => Some((i, v)),
                _ => None,
            })
            .collect();
        if group.is_empty() {
            continue;
        }
        let jsonl: String = group.iter().map(|(_, v)| format!("{v}\n")).collect();
        let file = stage
            .tmp
            .write(&format!("{topic}-{envelope}.jsonl"), jsonl)?;
        let file_arg = file.display().to_string();
        let args = [
            "--topic",
            topic,
            "--records",
            "cloudevents",
            "--envelope",
            envelope,
            &file_arg,
        ];
        let out = run(&publisher, pubsub, &args).await?;
        let published = out
            .summary
            .as_ref()
            .and_then(|s| s["message_ids"].as_array())
            .filter(|m| out.code == Some(0) && m.len() == group.len())
            .ok_or_else(|| {
                format!(
                    "gluefleet-publish {} exited {:?}: {}",
                    args.join(" "),
                    out.code,
                    out.message
                )
            })?;
        for ((i, _), id) in group.iter().zip(published) {
            ids[*i] = id.as_str().map(str::to_owned);
        }
        println!(
            "    gluefleet-publish --topic {topic} --records cloudevents --envelope {envelope} \
             {topic}-{envelope}.jsonl  → {} published",
            group.len()
        );
    }
    let raw: Vec<usize> = (0..messages.len())
        .filter(|i| plans[*i] == Plan::Raw)
        .collect();
    if !raw.is_empty() {
        // Shown refused first: what a producer using the CLI would see.
        let body: String = raw
            .iter()
            .map(|i| format!("{}\n", String::from_utf8_lossy(&messages[*i].data)))
            .collect();
        let file = stage.tmp.write(&format!("{topic}-broken.jsonl"), body)?;
        let file_arg = file.display().to_string();
        let args = ["--topic", topic, "--records", "cloudevents", &file_arg];
        let out = run(&publisher, pubsub, &args).await?;
        if out.code != Some(64) {
            return Err(format!(
                "gluefleet-publish took {} broken event(s) (exit {:?}); it should refuse them",
                raw.len(),
                out.code
            )
            .into());
        }
        println!(
            "    {} not an event at all: gluefleet-publish refuses it (exit 64, nothing published):",
            if raw.len() == 1 {
                "1 sample is".to_owned()
            } else {
                format!("{} samples are", raw.len())
            }
        );
        for line in out.message.lines() {
            println!("      {line}");
        }
        println!("    so it goes on the topic as raw bytes, as a broken producer would send it");
        let broken: Vec<OutgoingMessage> = raw.iter().map(|i| messages[*i].clone()).collect();
        for (i, id) in raw.iter().zip(pubsub.publish(topic, &broken).await?) {
            ids[*i] = Some(id);
        }
    }
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| id.ok_or_else(|| format!("sample {} was not published", i + 1).into()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn each_shape_is_planned_as_the_envelope_it_came_in() {
        let b = OutgoingMessage::binary_cloudevent("e-1", "//s", "t", &json!({"a": 1}));
        let Plan::Event("binary", record) = plan(&b) else {
            panic!("binary: {:?}", plan(&b));
        };
        assert_eq!(record["id"], "e-1");
        assert_eq!(record["type"], "t");
        assert_eq!(record["data"], json!({"a": 1}));
        let s = OutgoingMessage::json(&json!({"specversion": "1.0", "id": "e", "type": "t"}));
        assert!(matches!(plan(&s), Plan::Event("structured", _)));
        let p = OutgoingMessage::json(&json!({"type": "t", "data": {}}));
        assert!(matches!(plan(&p), Plan::Event("plain", _)));
        let broken = OutgoingMessage {
            data: b"not json".to_vec(),
            attributes: BTreeMap::new(),
        };
        assert_eq!(plan(&broken), Plan::Raw);
        let mut odd = b.clone();
        odd.attributes.insert("tenant".into(), "eu".into());
        assert_eq!(plan(&odd), Plan::Raw, "a non-CloudEvents attribute");
    }
}
