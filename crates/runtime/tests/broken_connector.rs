//! A connector whose batcher died stops the worker with a non-zero exit,
//! instead of nacking every message for ever.

use clap::Parser;
use gluefleet_core::auth::Credential;
use gluefleet_core::batch::{BatchSettings, Batcher};
use gluefleet_core::{Connector, ConnectorError, Delivered, Request};
use gluefleet_runtime::{Cli, EXIT_BROKEN, Spec, run_cli};
use std::process::ExitCode;
use std::time::Duration;

/// Sends every event through a batcher whose flush panics, as a connector
/// bug would on a vendor answer it did not expect.
#[derive(Debug)]
struct Faulty {
    batcher: Batcher<u32, ()>,
}

impl Connector for Faulty {
    type Action = serde_json::Value;
    const NAME: &'static str = "faulty";
    async fn call(&self, r: Request<'_, serde_json::Value>) -> Result<Delivered, ConnectorError> {
        self.batcher.submit(1, None, 1, r.deadline).await?;
        Ok(Delivered::Applied)
    }
    fn broken(&self) -> impl std::future::Future<Output = String> + Send {
        self.batcher.fault().wait()
    }
    async fn check(&self, _: Option<&Credential>) -> Result<String, ConnectorError> {
        Ok("ok".into())
    }
}

struct FaultySpec;

impl Spec for FaultySpec {
    type Target = serde_json::Value;
    type RawAction = serde_json::Value;
    type Connector = Faulty;

    fn build(
        _: serde_json::Value,
        _: reqwest::Client,
    ) -> Result<Faulty, gluefleet_core::ConfigError> {
        let batcher = Batcher::spawn(BatchSettings::default(), |items: Vec<u32>| async move {
            assert!(items.is_empty(), "the vendor answered something unexpected");
            Ok(Vec::new())
        });
        Ok(Faulty { batcher })
    }

    fn compile_action(
        _: &Faulty,
        raw: serde_json::Value,
    ) -> Result<serde_json::Value, gluefleet_core::ConfigError> {
        Ok(raw)
    }
}

// Paused time: the delayed nacks of the old behaviour would otherwise take
// real minutes before the bound below gives up.
#[tokio::test(start_paused = true)]
async fn a_dead_batcher_stops_the_worker_with_a_non_zero_exit() {
    let dir = std::env::temp_dir().join(format!("gluefleet-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        "[target]\n[[routes]]\ntype = \"order.created\"\naction = {}\n",
    )
    .expect("config");
    let events = dir.join("events.jsonl");
    std::fs::write(
        &events,
        "{\"type\":\"order.created\",\"id\":\"o1\",\"data\":{}}\n{\"type\":\"order.created\",\"id\":\"o2\",\"data\":{}}\n",
    )
    .expect("events");
    let cli = Cli::try_parse_from([
        "gluefleet-faulty",
        "job",
        "--config",
        &config.display().to_string(),
        "--source",
        &format!("file:{}", events.display()),
    ])
    .expect("arguments");
    let code = tokio::time::timeout(Duration::from_secs(24 * 3600), run_cli::<FaultySpec>(cli))
        .await
        .expect("the worker stops by itself instead of nacking for ever");
    assert_eq!(code, ExitCode::from(EXIT_BROKEN));
}
