//! Part 7: a CRM's customer events upserted as Salesforce Accounts, through
//! gluefleet-salesforce, against the testkit's Salesforce double (no local
//! Salesforce exists; the double keeps the documented OAuth and REST
//! contract: the JWT bearer sign-in, sObject Collections upserts by
//! external id, per-record errors, `Sforce-Limit-Info`). It runs the
//! connector's shipped example (connectors/salesforce/examples), the one
//! `cargo xtask run salesforce` runs and the README's real-org steps end
//! with.

use super::part::{Part, Topics};
use super::{Result, Stage, WORKER_LOG_FILTER};
use gluefleet_testkit::pubsub::OutgoingMessage;
use gluefleet_testkit::salesforce::{SalesforceConfig, SalesforceDouble, TEST_PRIVATE_KEY_PEM};
use std::path::Path;

const PART: Part = Part {
    number: 7,
    connector: "salesforce",
    topics: Topics {
        topic: "accounts-crm",
        subscription: "accounts-crm-salesforce",
        dead_letter_topic: "accounts-crm-dead-letter",
        inspect: "accounts-crm-dead-letter-inspect",
    },
};

/// The double, and the variables the example config reads to sign in to it.
pub(crate) async fn double() -> Result<(SalesforceDouble, Vec<(String, String)>)> {
    let config = SalesforceConfig::default();
    let vars = vec![
        (
            "SALESFORCE_CONSUMER_KEY".to_owned(),
            config.consumer_key.clone(),
        ),
        ("SALESFORCE_USERNAME".to_owned(), config.username.clone()),
        (
            "SALESFORCE_PRIVATE_KEY".to_owned(),
            TEST_PRIVATE_KEY_PEM.to_owned(),
        ),
    ];
    let double = SalesforceDouble::start(config).await?;
    let mut vars = vars;
    vars.push(("SALESFORCE_LOGIN_URL".to_owned(), double.url()));
    Ok((double, vars))
}

/// Runs part 7; Ok(true) when everything happened as expected.
pub(crate) async fn run(stage: &mut Stage) -> Result<bool> {
    PART.heading("a CRM's customers upserted as Salesforce Accounts");
    let examples =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../connectors/salesforce/examples");
    println!("• building gluefleet-salesforce while the Salesforce double starts…");
    let (binary, started) = tokio::join!(PART.build(), double());
    let (binary, (sf, vars)) = (binary?, started?);
    println!(
        "• the Salesforce double listens on {} (sign-in: JWT bearer, as a connected app)",
        sf.url()
    );
    let config = examples.join("salesforce.toml");
    println!(
        "• the worker's config: {} (the shipped example)",
        config.display()
    );
    let text = std::fs::read_to_string(examples.join("events.jsonl"))?;
    let mut labels = Vec::new();
    let mut messages = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        labels.push(format!(
            "{} {}",
            v["type"].as_str().unwrap_or("?"),
            v["id"].as_str().unwrap_or("?")
        ));
        messages.push(OutgoingMessage::json(&v));
    }
    let pubsub = PART.pubsub(stage).await?;
    println!(
        "  emulator on {} (project {}): {}",
        pubsub.host(),
        pubsub.project(),
        PART.topics.describe()
    );
    let mut env: Vec<(&str, String)> = vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    env.push(("RUST_LOG", WORKER_LOG_FILTER.to_owned()));
    let run = PART
        .run_job(stage, &pubsub, &binary, &config, &messages, &env)
        .await?;
    stage.pubsub = Some(pubsub);
    let settled = super::sandbox::print(&labels, &run);

    println!("\n  Accounts in the org (by External_Id__c):");
    let mut ok = settled;
    for (id, name) in [
        ("C-1", "Ada Lovelace"),
        ("C-2", "Grace Hopper"),
        ("C-4", "Katherine Johnson"),
    ] {
        let got = sf
            .record("Account", id)
            .and_then(|r| r["Name"].as_str().map(str::to_owned));
        let mark = if got.as_deref() == Some(name) {
            "✔"
        } else {
            "✗"
        };
        ok &= got.as_deref() == Some(name);
        println!(
            "    {mark} {id}: {}",
            got.unwrap_or_else(|| "(missing)".into())
        );
    }
    let accounts = sf.record_count("Account");
    let dead = run.dead_letters.len();
    println!(
        "    {accounts} accounts; {} API calls and {} sign-in for {} events; {dead} dead letter (C-3 has no Name, which Salesforce requires)",
        sf.api_calls(),
        sf.token_calls(),
        labels.len()
    );
    ok &= accounts == 3 && dead == 1 && sf.token_calls() == 1;
    if ok {
        println!(
            "\n✔ part 7: every customer is one Account, the one Salesforce refused is a dead letter naming why"
        );
    } else {
        println!("\n✗ part 7: the org does not hold what the events say (see above)");
    }
    Ok(ok)
}
