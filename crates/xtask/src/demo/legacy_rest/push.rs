//! Part 5: part 1's order events again, through the same
//! gluefleet-legacy-rest binary in push mode (`serve`): Pub/Sub pushes each
//! event to the worker over HTTP, as it does to a Cloud Run service that
//! scales to zero, and the HTTP answer is the ack (2xx) or the nack (503).
//!
//! The emulator's push subscriptions send no token, so the config says
//! `push.auth = "none"`; on Cloud Run the worker checks every request's
//! Google-signed OIDC token instead.

use super::{config_toml, events, order_system, report};
use crate::demo::part::{Part, Run, Topics};
use crate::demo::report::DeadLetter;
use crate::demo::{Result, Stage};
use events::Expect;
use gluefleet_testkit::bin::Worker;
use gluefleet_testkit::free_port;
use gluefleet_testkit::pubsub::SubscriptionOptions;
use std::time::{Duration, Instant};

const PART: Part = Part {
    number: 5,
    connector: "legacy-rest",
    topics: Topics {
        topic: "orders-pushed",
        subscription: "orders-push-gluefleet",
        dead_letter_topic: "orders-pushed-dead-letter",
        inspect: "orders-pushed-dead-letter-inspect",
    },
};

/// The subscription's dead-letter policy, as in the other parts.
const MAX_DELIVERY_ATTEMPTS: u32 = 10;
/// Longest wait for every event to have its outcome.
const SETTLE_LIMIT: Duration = Duration::from_secs(90);
/// After the last expected outcome: long enough for a stray redelivery to
/// show up as a second effect.
const QUIET: Duration = Duration::from_secs(2);

/// Runs part 5; Ok(true) when everything happened as expected.
pub(crate) async fn run(stage: &mut Stage) -> Result<bool> {
    PART.heading(
        "the same worker in push mode: Pub/Sub pushes each event over HTTP (a Cloud Run \
         service that scales to zero)",
    );
    let binary = PART.build().await?;
    let target = order_system::start().await?;
    let base_url = format!("{}{}", target.url(), order_system::BASE_PATH);
    println!("• a fresh pretend order system listens on {base_url}");

    let mut toml = config_toml(&base_url, true);
    toml.push_str(
        "\n[push]\n\
         auth = \"none\"   # the emulator signs nothing; on Cloud Run: \"oidc\" (the default)\n",
    );
    let config = PART.write_config(stage, &toml)?;
    let pubsub = match stage.pubsub.take() {
        Some(p) => p,
        None => crate::demo::part::start_pubsub().await?,
    };
    let t = PART.topics;
    pubsub.create_topic(t.topic).await?;
    pubsub.create_topic(t.dead_letter_topic).await?;
    pubsub
        .create_subscription(
            t.inspect,
            t.dead_letter_topic,
            SubscriptionOptions::default(),
        )
        .await?;

    let port = free_port();
    let config_arg = config.display().to_string();
    let args = ["serve", "--config", &config_arg];
    let mut env = pubsub.worker_env(t.subscription, t.dead_letter_topic);
    env.push(("PORT", port.to_string()));
    env.push(("RUST_LOG", crate::demo::WORKER_LOG_FILTER.to_owned()));
    println!("• running: gluefleet-{} {}", PART.connector, args.join(" "));
    let mut worker = Worker::spawn(&binary, &args, &env).await?;
    if !worker
        .wait_for_log("Serving push deliveries.", Duration::from_secs(30))
        .await
    {
        return Err(format!(
            "the worker did not start serving:\n{}",
            worker.logs().join("\n")
        )
        .into());
    }
    let endpoint = format!("http://127.0.0.1:{port}/");
    pubsub
        .create_subscription(
            t.subscription,
            t.topic,
            SubscriptionOptions {
                dead_letter: Some((t.dead_letter_topic.to_owned(), MAX_DELIVERY_ATTEMPTS)),
                push_endpoint: Some(endpoint.clone()),
                ..SubscriptionOptions::default()
            },
        )
        .await?;
    println!(
        "  serving on {endpoint}; push subscription {} on topic {} pushes to it",
        t.subscription, t.topic
    );

    let samples = events::samples();
    let messages: Vec<_> = samples.iter().map(|s| s.message.clone()).collect();
    let message_ids = crate::demo::publish::publish(stage, &pubsub, t.topic, &messages).await?;

    // Every event settles as an effect or a dead letter; duplicates settle
    // as neither, so wait for the others, then a little longer.
    let want_effects = samples
        .iter()
        .filter(|s| matches!(s.expect, Expect::Delivered | Expect::RetriedThenDelivered))
        .count();
    let want_dead = samples
        .iter()
        .filter(|s| matches!(s.expect, Expect::DeadLettered(_)))
        .count();
    let started = Instant::now();
    let mut dead_letters: Vec<DeadLetter> = Vec::new();
    while (target.effects().len() < want_effects || dead_letters.len() < want_dead)
        && started.elapsed() < SETTLE_LIMIT
    {
        dead_letters.extend(
            pubsub
                .drain(t.inspect, Duration::from_millis(300))
                .await?
                .into_iter()
                .map(DeadLetter::from),
        );
    }
    let settled = started.elapsed();
    tokio::time::sleep(QUIET).await;
    dead_letters.extend(
        pubsub
            .drain(t.inspect, Duration::from_millis(300))
            .await?
            .into_iter()
            .map(DeadLetter::from),
    );
    println!(
        "  every event settled {:.1} s after publishing; stopping the worker (SIGTERM), as \
         Cloud Run does when it scales to zero",
        settled.as_secs_f64()
    );
    worker.signal_term();
    let status = worker.wait(Duration::from_secs(15)).await;
    if !status.is_some_and(|s| s.success()) {
        return Err(format!(
            "the worker did not stop cleanly ({status:?}):\n{}",
            worker.logs().join("\n")
        )
        .into());
    }
    let summary_line = worker.summary().map(|s| s.to_string());
    stage.pubsub = Some(pubsub);
    let observed = report::Observed {
        requests: target.requests(),
        effects: target.effects(),
        run: Run {
            message_ids,
            dead_letters,
            dead_letter_place: format!("read back from subscription {}", t.inspect),
            worker_log: worker.logs(),
            summary_line: summary_line.map(|s| format!("{{\"summary\":{s}}}")),
        },
    };
    Ok(report::print(&samples, &observed))
}
