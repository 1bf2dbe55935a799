//! Part 6: two connectors chained by result events, with no code. A shop
//! publishes new customers with `gluefleet-publish`; gluefleet-legacy-rest
//! creates each in a CRM and reports the outcome to `customer-results`;
//! gluefleet-sap-odata subscribes to that topic and creates the SAP
//! business partner keyed by the id the CRM answered.
//!
//! ```text
//! customers.jsonl ─gluefleet-publish─▶ customers ─▶ gluefleet-legacy-rest ─▶ CRM (HTTP)
//!                                                          │ gluefleet.delivered {answer: {body: {id}}}
//!                                                          ▼
//!                 SAP CAP server ◀─ gluefleet-sap-odata ◀─ customer-results
//! ```

use super::part::{Part, Topics, run_worker};
use super::{Result, Stage, publish};
use gluefleet_testkit::http_target::{HttpTarget, Reply};
use gluefleet_testkit::pubsub::{PubsubEmulator, PulledMessage, SubscriptionOptions};
use gluefleet_testkit::sap::SapCap;
use serde_json::{Value, json};
use std::time::Duration;

const CRM: Part = Part {
    number: 6,
    connector: "legacy-rest",
    topics: Topics {
        topic: "customers",
        subscription: "customers-gluefleet",
        dead_letter_topic: "customers-dead-letter",
        inspect: "customers-dead-letter-inspect",
    },
};

const SAP: Part = Part {
    number: 6,
    connector: "sap-odata",
    topics: Topics {
        topic: "customer-results",
        subscription: "customer-results-sap",
        dead_letter_topic: "customer-results-dead-letter",
        inspect: "customer-results-dead-letter-inspect",
    },
};

/// A second subscription on the CRM's results, so the demo can show them.
const RESULTS_INSPECT: &str = "customer-results-inspect";
/// Where SAP's connector reports, and a subscription to read it.
const PARTNER_RESULTS: (&str, &str) = ("partner-results", "partner-results-inspect");

/// The shop's customers, one JSON record each, as `gluefleet-publish` reads
/// them: the record is the event's data, its `id` the event id.
const CUSTOMERS: [(&str, &str); 3] = [
    ("cust-1", "Ada Lovelace"),
    ("cust-2", "Grace Hopper"),
    ("cust-3", "Nobody"),
];

/// What the CRM answers: its own ids; the name "Nobody" is refused.
fn crm_answer(name: &str) -> Option<(&'static str, u16)> {
    match name {
        "Ada Lovelace" => Some(("CRM-41", 201)),
        "Grace Hopper" => Some(("CRM-42", 201)),
        _ => None,
    }
}

/// Runs part 6; Ok(true) when everything happened as expected.
pub(crate) async fn run(stage: &mut Stage) -> Result<bool> {
    CRM.heading("a customer created in a CRM, then in SAP carrying the CRM's id (chained)");
    println!(
        "• building gluefleet-legacy-rest and gluefleet-sap-odata, starting the SAP CAP server…"
    );
    let (crm_binary, cap) = CRM
        .build_while(
            SapCap::start(),
            "the SAP CAP server needs Node.js 20 and npm",
        )
        .await?;
    let sap_binary = SAP.build().await?;
    let crm = HttpTarget::start().await?;
    crm.rule(|r| {
        let body: Value = serde_json::from_str(&r.body).ok()?;
        let name = body["name"].as_str().unwrap_or_default();
        Some(match crm_answer(name) {
            Some((id, status)) => Reply::status(status)
                .header("location", format!("/crm/customers/{id}"))
                .body(json!({ "id": id }).to_string()),
            None => Reply::status(400).body(r#"{"error":"name is reserved"}"#),
        })
    });

    let pubsub = CRM.pubsub(stage).await?;
    let pubsub = {
        stage.pubsub = Some(pubsub);
        SAP.pubsub(stage).await?
    };
    pubsub
        .create_subscription(
            RESULTS_INSPECT,
            SAP.topics.topic,
            SubscriptionOptions::default(),
        )
        .await?;
    pubsub.create_topic(PARTNER_RESULTS.0).await?;
    pubsub
        .create_subscription(
            PARTNER_RESULTS.1,
            PARTNER_RESULTS.0,
            SubscriptionOptions::default(),
        )
        .await?;
    println!(
        "  the CRM listens on {}/crm; SAP CAP server at {}; topics customers → customer-results → \
         partner-results",
        crm.url(),
        cap.url()
    );

    let crm_config = CRM.write_config(stage, &crm_toml(&crm.url()))?;
    let sap_config = SAP.write_config(stage, &sap_toml(&cap.v4_service()))?;

    let records: String = CUSTOMERS
        .iter()
        .map(|(id, name)| format!("{}\n", json!({ "id": id, "name": name })))
        .collect();
    let file = stage.tmp.write("customers.jsonl", records)?;
    let file_arg = file.display().to_string();
    publish::cli(
        stage,
        &pubsub,
        &[
            "--topic",
            CRM.topics.topic,
            "--type",
            "customer.created",
            "--source",
            "//shop/customers",
            "--id-field",
            "id",
            &file_arg,
        ],
    )
    .await?;

    let job = |part: Part, config: &std::path::Path| {
        let args = vec![
            "job".to_owned(),
            "--config".to_owned(),
            config.display().to_string(),
            "--idle-exit".to_owned(),
            "3s".to_owned(),
        ];
        let env = pubsub.worker_env(part.topics.subscription, part.topics.dead_letter_topic);
        (args, env)
    };
    let (args, env) = job(CRM, &crm_config);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (crm_log, crm_summary) = run_worker(&crm_binary, &args, &env).await?;
    let (args, env) = job(SAP, &sap_config);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (sap_log, sap_summary) = run_worker(&sap_binary, &args, &env).await?;

    let results = drain(&pubsub, RESULTS_INSPECT, CUSTOMERS.len()).await?;
    let partner_results = drain(&pubsub, PARTNER_RESULTS.1, 2).await?;
    let ok = report(&crm, &cap, &results, &partner_results).await?;
    stage.pubsub = Some(pubsub);
    if !ok {
        for (name, log, summary) in [
            ("gluefleet-legacy-rest", &crm_log, &crm_summary),
            ("gluefleet-sap-odata", &sap_log, &sap_summary),
        ] {
            println!(
                "\n{name}'s summary: {}",
                summary.as_deref().unwrap_or("none")
            );
            for line in log.iter().rev().take(20).rev() {
                println!("    {line}");
            }
        }
    }
    Ok(ok)
}

/// Pulls until `want` messages arrived or a few empty pulls in a row.
async fn drain(pubsub: &PubsubEmulator, sub: &str, want: usize) -> Result<Vec<PulledMessage>> {
    let mut got = Vec::new();
    for _ in 0..10 {
        got.extend(pubsub.drain(sub, Duration::from_millis(300)).await?);
        if got.len() >= want {
            break;
        }
    }
    Ok(got)
}

/// Prints each customer's way through both systems; true when the two the
/// CRM took are SAP partners under the CRM's ids and the refused one
/// stopped at the CRM.
async fn report(
    crm: &HttpTarget,
    cap: &SapCap,
    results: &[PulledMessage],
    partner_results: &[PulledMessage],
) -> Result<bool> {
    println!(
        "\n  {:<26} {:<22} {:<24} SAP",
        "customer (event id)", "CRM answered", "result event"
    );
    let mut ok = crm.requests().len() == CUSTOMERS.len();
    for (id, name) in CUSTOMERS {
        let result = results.iter().find(|m| m.attr("ce-subject") == id);
        let result_type = result.map_or("none", |m| m.attr("ce-type"));
        let data = result.and_then(PulledMessage::json).unwrap_or(Value::Null);
        let answer = &data["answer"];
        let crm_said = match answer["status"].as_u64() {
            Some(status) => format!("{status} {}", answer["body"]["id"].as_str().unwrap_or("")),
            None => data["reason"].as_str().unwrap_or("no answer").to_owned(),
        };
        let sap = match crm_answer(name) {
            Some((key, _)) => {
                let entity = cap.get_entity("BusinessPartners", key).await?;
                let reported = partner_results.iter().any(|m| {
                    m.json().is_some_and(|d| {
                        d["answer"]["entity"] == format!("BusinessPartners('{key}')")
                    })
                });
                let created = entity.as_ref().is_some_and(|e| e["name"] == name);
                ok &= created && reported && result_type == "gluefleet.delivered";
                if created {
                    format!(
                        "partner {key} \"{name}\" created{}",
                        if reported { ", reported" } else { "" }
                    )
                } else {
                    format!("MISSING: no partner {key}")
                }
            }
            None => {
                ok &= result_type == "gluefleet.dead-lettered";
                "nothing to chain (the result is dropped)".to_owned()
            }
        };
        println!(
            "  {:<26} {:<22} {:<24} {sap}",
            format!("{name} ({id})"),
            crm_said,
            result_type
        );
    }
    println!(
        "\n  {} CRM calls for {} customers; each result event carries the original event's id \
         as its subject and the CRM's answer, and the SAP route reads `data.answer.body.id`.",
        crm.requests().len(),
        CUSTOMERS.len()
    );
    println!(
        "  {}",
        if ok {
            "✔ chained: every customer the CRM took is an SAP partner under the CRM's id"
        } else {
            "✘ the chain did not end as expected (the workers' logs follow)"
        }
    );
    Ok(ok)
}

fn crm_toml(url: &str) -> String {
    format!(
        r#"# [pubsub] comes from the environment, as in the parts before.

[target]
base_url = "{url}/crm"
allow_insecure_http = true        # a local stand-in; real targets use https

[[routes]]
name = "create-customer"
type = "customer.created"
results = "customer-results"      # report every outcome there, before the ack
action = {{ path = "/customers", body = "{{name: .data.name}}" }}
"#
    )
}

fn sap_toml(service: &str) -> String {
    format!(
        r#"# Reads the CRM connector's result events. A customer the CRM refused
# has nothing to chain: its gluefleet.dead-lettered result matches no
# route and is dropped (the original is on the CRM side's dead-letter topic).

[delivery]
unroutable = "drop"

[target]
service_url = "{service}"
version = "v4"
allow_insecure_http = true

[[routes]]
name = "partner-from-crm"
type = "gluefleet.delivered"
results = "partner-results"
[routes.action]
operation = "create"
entity_set = "BusinessPartners"
key = {{ ID = "{{data.answer.body.id}}" }}   # the id the CRM answered
fields = "{{name: .data.data.name}}"        # the original event, carried by the result
"#
    )
}
