//! A real Prometheus server (Debian's `prometheus` package) scraping the
//! workers a test names, and PromQL queries against it: the metrics tests
//! check what a real scraper makes of `/metrics`, not what a parser of
//! ours would.

use crate::error::TestkitError;
use crate::process::ChildServer;
use crate::temp::TempDir;
use std::time::Duration;
use tokio::process::Command;

/// How often the server scrapes its targets.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// A running Prometheus; stopped (its process group) on drop.
#[derive(Debug)]
pub struct Prometheus {
    server: ChildServer,
    http: reqwest::Client,
    _dir: TempDir,
}

impl Prometheus {
    /// True when the `prometheus` binary is on PATH.
    pub fn available() -> bool {
        std::process::Command::new("prometheus")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Starts a server scraping `targets` (`host:port`, path `/metrics`)
    /// every [`SCRAPE_INTERVAL`], with its data in a temporary directory.
    pub async fn start(targets: &[String]) -> Result<Self, TestkitError> {
        if !Self::available() {
            return Err(TestkitError::Spawn {
                what: "prometheus (install Debian's `prometheus` package: apt-get install prometheus; .ci/run does)".into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not on PATH"),
            });
        }
        let dir = TempDir::new("prometheus")?;
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let secs = SCRAPE_INTERVAL.as_secs();
        let config = dir.write(
            "prometheus.yml",
            format!(
                "global:\n  scrape_interval: {secs}s\n  scrape_timeout: {secs}s\n\
                 scrape_configs:\n  - job_name: gluefleet\n    static_configs:\n      - targets: [{list}]\n"
            ),
        )?;
        let mut server = ChildServer::on_free_port();
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={}", server.host()))
            .kill_on_drop(true);
        server
            .launch(
                command,
                "prometheus",
                "Server is ready to receive web requests",
                Duration::from_secs(60),
            )
            .await?;
        Ok(Self {
            server,
            http: crate::admin::client("Prometheus")?,
            _dir: dir,
        })
    }

    /// The server's output so far, for debugging.
    pub fn logs(&self) -> Vec<String> {
        self.server.logs()
    }

    /// The value of the instant query `promql`, summed over the series it
    /// returns; `None` when it returns none.
    pub async fn query(&self, promql: &str) -> Result<Option<f64>, TestkitError> {
        let what = format!("PromQL {promql}");
        let url = format!("http://{}/api/v1/query", self.server.host());
        let answer = self
            .http
            .get(url)
            .query(&[("query", promql)])
            .send()
            .await
            .map_err(|source| TestkitError::Http {
                what: what.clone(),
                source,
            })?;
        let status = answer.status().as_u16();
        let body = answer.text().await.map_err(|source| TestkitError::Http {
            what: what.clone(),
            source,
        })?;
        if status != 200 {
            return Err(TestkitError::Api { what, status, body });
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| TestkitError::Decode {
                what: what.clone(),
                detail: e.to_string(),
            })?;
        let decode = |detail: &str| TestkitError::Decode {
            what: what.clone(),
            detail: format!("{detail}: {body}"),
        };
        let result = v["data"]["result"]
            .as_array()
            .ok_or_else(|| decode("no data.result"))?;
        if result.is_empty() {
            return Ok(None);
        }
        let mut sum = 0.0;
        for series in result {
            let value = series["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or_else(|| decode("a series without a value"))?;
            sum += value;
        }
        Ok(Some(sum))
    }

    /// Polls `promql` until it returns `want` (true) or `timeout` passes
    /// (false): a scrape lands every [`SCRAPE_INTERVAL`].
    pub async fn wait_for(&self, promql: &str, want: f64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(v)) = self.query(promql).await
                && (v - want).abs() < 1e-9
            {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
