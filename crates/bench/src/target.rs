//! The server under test, and how a sweep configures it between cases.
//!
//! Either `tune` starts an oxserve of its own (the current executable, `serve` on free loopback
//! ports, no token auth, the model API on), or it drives a server that is already running,
//! oxserve or TorchServe alike, through the management API they share: register the model with
//! the case's batch size, delay and workers (`synchronous=true`, so it returns once the workers
//! are up), measure, unregister.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// Where a server's APIs are.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    /// Inference API base URL.
    pub inference: String,
    /// Management API base URL.
    pub management: String,
    /// Full URL of the Prometheus endpoint (`…/metrics`), when known.
    pub metrics: Option<String>,
    /// Bearer token for the inference API.
    pub inference_token: Option<String>,
    /// Bearer token for the management API.
    pub management_token: Option<String>,
}

/// An oxserve started by this process; killed when dropped.
#[derive(Debug)]
pub struct SpawnedServer {
    child: Option<Child>,
    /// Its APIs.
    pub endpoints: Endpoints,
    /// Logs and key file live here for the server's lifetime.
    _dir: tempfile::TempDir,
}

/// How long a started server may take to print its "Model server started" line.
const START_TIMEOUT: Duration = Duration::from_secs(120);

impl SpawnedServer {
    /// Starts `exe serve` on free loopback ports, with `model_store`, no startup models, token
    /// auth off, the model API on and `extra_args` (such as `--engine tract`).
    ///
    /// # Errors
    /// The process cannot start, exits, or does not report its addresses within two minutes.
    pub fn start(exe: &Path, model_store: &Path, extra_args: &[String]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a folder for the server's logs")?;
        let mut command = Command::new(exe);
        command
            .arg("serve")
            .arg("--model-store")
            .arg(model_store)
            .args(["--inference-address", "http://127.0.0.1:0"])
            .args(["--management-address", "http://127.0.0.1:0"])
            .args(["--metrics-address", "http://127.0.0.1:0"])
            .args(["--grpc-inference-port", "0", "--grpc-management-port", "0"])
            .args(["--disable-token-auth", "--enable-model-api"])
            .arg("--log-dir")
            .arg(dir.path())
            .arg("--key-file")
            .arg(dir.path().join("key_file.json"))
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "warn");
        }
        let mut child = command.spawn().with_context(|| format!("starting {}", exe.display()))?;
        let stdout = child.stdout.take().context("the server's stdout is not piped")?;
        // The line is read on a thread so a server that hangs before printing it is noticed.
        let (line_tx, line_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("oxserve-stdout".into())
            .spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let first = lines.next();
                let _ = line_tx.send(first);
                // Keep draining so the server never blocks on a full pipe.
                for _ in lines {}
            })
            .context("starting the stdout reader")?;
        let mut server = Self { child: Some(child), endpoints: Endpoints::default(), _dir: dir };
        let line = match line_rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => bail!("the server exited before it started (see its log above)"),
            Err(_) => bail!("the server did not start within {} s", START_TIMEOUT.as_secs()),
        };
        let urls = parse_started_line(&line)
            .with_context(|| format!("unexpected first line from the server: {line:?}"))?;
        server.endpoints = Endpoints {
            inference: urls[0].clone(),
            management: urls[1].clone(),
            metrics: Some(format!("{}/metrics", urls[2])),
            inference_token: None,
            management_token: None,
        };
        Ok(server)
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The three URLs of `Model server started. Inference API: http://a, management API: http://b,
/// metrics API: http://c`.
fn parse_started_line(line: &str) -> Option<[String; 3]> {
    if !line.starts_with("Model server started") {
        return None;
    }
    let urls: Vec<String> = line
        .split("http://")
        .skip(1)
        .map(|s| format!("http://{}", s.split(',').next().unwrap_or("").trim()))
        .collect();
    // Later addresses (gRPC) may follow; the HTTP ones come first, in this order.
    match urls.as_slice() {
        [a, b, c, ..] => Some([a.clone(), b.clone(), c.clone()]),
        _ => None,
    }
}

/// The management calls a sweep makes.
#[derive(Debug, Clone)]
pub struct Management {
    client: reqwest::Client,
    endpoints: Endpoints,
}

/// How a case wants the model registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Archive, folder or file name in the server's model store.
    pub url: String,
    /// Name to register under.
    pub model_name: String,
    /// Batch size.
    pub batch_size: usize,
    /// Batch delay (ms).
    pub batch_delay: u64,
    /// Workers.
    pub workers: usize,
}

impl Management {
    /// A client for `endpoints`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(endpoints: Endpoints) -> anyhow::Result<Self> {
        // Registering loads the model and starts its workers: allow for a large model.
        let client = reqwest::Client::builder().timeout(Duration::from_secs(600)).build()?;
        Ok(Self { client, endpoints })
    }

    /// A management API request with the management key, when there is one.
    fn request(&self, method: reqwest::Method, path_and_query: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path_and_query}", self.endpoints.management.trim_end_matches('/'));
        let request = self.client.request(method, url);
        match &self.endpoints.management_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a management call; `Some((status, body))` when the server refused it.
    async fn call(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
    ) -> anyhow::Result<Option<(reqwest::StatusCode, String)>> {
        let response = self
            .request(method, path_and_query)
            .send()
            .await
            .context("cannot reach the management API")?;
        let status = response.status();
        if status.is_success() {
            return Ok(None);
        }
        Ok(Some((status, response.text().await.unwrap_or_default())))
    }

    /// Registers the model with the case's settings and waits for its workers.
    ///
    /// # Errors
    /// The server refuses (its message is included), or cannot be reached.
    pub async fn register(&self, r: &Registration) -> anyhow::Result<()> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("url", &r.url)
            .append_pair("model_name", &r.model_name)
            .append_pair("batch_size", &r.batch_size.to_string())
            .append_pair("max_batch_delay", &r.batch_delay.to_string())
            .append_pair("initial_workers", &r.workers.to_string())
            .append_pair("synchronous", "true")
            .finish();
        let refused = self.call(reqwest::Method::POST, &format!("/models?{query}")).await?;
        if let Some((status, body)) = refused {
            if status == reqwest::StatusCode::CONFLICT {
                bail!(
                    "a model named {:?} is already registered: set model_name in the sweep to a free name ({body})",
                    r.model_name
                );
            }
            bail!("registering {} answered {status}: {body}", r.url);
        }
        Ok(())
    }

    /// The engine the server says runs `model_name`: oxserve's `engine` in the describe answer,
    /// or TorchServe's `runtime` (`python`), which has no engine field. `None` when the server does
    /// not say; the report then shows the engine the sweep asked for.
    pub async fn engine(&self, model_name: &str) -> Option<String> {
        let request = self.request(reqwest::Method::GET, &format!("/models/{model_name}"));
        let described: serde_json::Value =
            request.send().await.ok()?.error_for_status().ok()?.json().await.ok()?;
        let model = described.get(0)?;
        ["engine", "runtime"]
            .iter()
            .find_map(|key| model.get(key).and_then(serde_json::Value::as_str))
            .map(str::to_owned)
    }

    /// Unregisters the model (every version), restoring the server's state.
    ///
    /// # Errors
    /// The server refuses, or cannot be reached.
    pub async fn unregister(&self, model_name: &str) -> anyhow::Result<()> {
        let refused = self.call(reqwest::Method::DELETE, &format!("/models/{model_name}")).await?;
        if let Some((status, body)) = refused {
            bail!("unregistering {model_name} answered {status}: {body}");
        }
        Ok(())
    }
}

/// What `tune` measures against.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start an oxserve (this executable) per engine, serving this model store.
    Spawn {
        /// The `oxserve` executable.
        exe: PathBuf,
        /// Model store.
        model_store: PathBuf,
    },
    /// A server that is already running.
    Running(Endpoints),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_line_gives_three_urls() {
        let line = "Model server started. Inference API: http://127.0.0.1:4000, management API: http://127.0.0.1:4001, metrics API: http://127.0.0.1:4002, gRPC inference API: http://127.0.0.1:4003";
        let urls = parse_started_line(line).unwrap();
        assert_eq!(
            urls,
            ["http://127.0.0.1:4000", "http://127.0.0.1:4001", "http://127.0.0.1:4002"]
        );
        assert!(parse_started_line("warming up").is_none());
    }
}
