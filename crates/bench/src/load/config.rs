//! What a load run is asked to do: the endpoint and protocol, the inputs, when to stop, how many
//! clients or what rate, and the HTTP client that sends it all.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;

use crate::timeline::Timeline;

/// Which inference API the requests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// `POST /predictions/{model}[/{version}]` with the input file as the body.
    #[default]
    TorchServe,
    /// `POST /v2/models/{model}[/versions/{version}]/infer` (Open Inference Protocol REST).
    V2,
}

impl FromStr for Protocol {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "torchserve" | "ts" => Ok(Self::TorchServe),
            "v2" | "oip" | "kserve" => Ok(Self::V2),
            other => bail!("unknown protocol {other:?}: use torchserve or v2"),
        }
    }
}

impl Protocol {
    /// The name used in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TorchServe => "torchserve",
            Self::V2 => "v2",
        }
    }
}

/// One request body, sent as is.
#[derive(Debug, Clone)]
pub struct Input {
    /// Where it came from (a file name), for reports.
    pub name: String,
    /// The body.
    pub body: Bytes,
}

/// When the measured phase ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this many requests.
    Requests(u64),
    /// After this long (the open loop schedules `rate × duration` requests).
    Duration(Duration),
}

/// What to send, where, and how hard.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Base URL of the inference API, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Model name.
    pub model: String,
    /// Model version; the default version when `None`.
    pub version: Option<String>,
    /// Inference API.
    pub protocol: Protocol,
    /// Bodies, used in turn.
    pub inputs: Vec<Input>,
    /// `Content-Type` of the bodies.
    pub content_type: String,
    /// Closed loop: virtual users, each with its own keep-alive connection.
    pub concurrency: usize,
    /// Open loop when set: requests per second on a fixed schedule.
    pub rate: Option<f64>,
    /// Open loop: the most requests in flight at once; a send waiting for room leaves late.
    pub max_in_flight: usize,
    /// End of the measured phase.
    pub stop: Stop,
    /// Requests sent (closed loop, same concurrency) before measuring, to warm caches and
    /// connections.
    pub warmup: u64,
    /// HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    pub http2: bool,
    /// Bearer token for the inference API.
    pub token: Option<String>,
    /// Per-request timeout; a request past it counts as failed (`timeout`).
    pub timeout: Duration,
    /// Full URL of the server's Prometheus endpoint, to read what the server counted.
    pub metrics_url: Option<String>,
    /// Length of the timeline's windows; by default a sixtieth of a timed run, at least 1 s.
    pub window: Option<Duration>,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".into(),
            model: String::new(),
            version: None,
            protocol: Protocol::TorchServe,
            inputs: Vec::new(),
            content_type: "application/json".into(),
            concurrency: 10,
            rate: None,
            max_in_flight: 1024,
            stop: Stop::Requests(100),
            warmup: 0,
            http2: false,
            token: None,
            timeout: Duration::from_secs(120),
            metrics_url: None,
            window: None,
        }
    }
}

impl LoadConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        ensure!(!self.model.is_empty(), "a model name is required");
        ensure!(!self.inputs.is_empty(), "at least one input is required");
        ensure!(self.concurrency >= 1, "concurrency must be at least 1");
        ensure!(self.max_in_flight >= 1, "max in flight must be at least 1");
        if let Some(rate) = self.rate {
            ensure!(rate.is_finite() && rate > 0.0, "the request rate must be a positive number");
        }
        match self.stop {
            Stop::Requests(n) => ensure!(n >= 1, "requests must be at least 1"),
            Stop::Duration(d) => ensure!(!d.is_zero(), "the duration must be positive"),
        }
        url::Url::parse(&self.url).with_context(|| format!("invalid URL {:?}", self.url))?;
        Ok(())
    }

    pub(super) fn timeline(&self) -> Arc<Mutex<Timeline>> {
        let length = match self.stop {
            Stop::Duration(d) => Some(d),
            Stop::Requests(_) => None,
        };
        let window = self.window.unwrap_or_else(|| Timeline::window_for(length));
        Arc::new(Mutex::new(Timeline::new(window)))
    }

    /// The URL every request goes to.
    pub fn endpoint(&self) -> String {
        let base = self.url.trim_end_matches('/');
        match (self.protocol, &self.version) {
            (Protocol::TorchServe, None) => format!("{base}/predictions/{}", self.model),
            (Protocol::TorchServe, Some(v)) => format!("{base}/predictions/{}/{v}", self.model),
            (Protocol::V2, None) => format!("{base}/v2/models/{}/infer", self.model),
            (Protocol::V2, Some(v)) => {
                format!("{base}/v2/models/{}/versions/{v}/infer", self.model)
            }
        }
    }

    /// A client keeping up to `pool` idle connections with no expiry of its own: with reqwest's
    /// 90 s idle expiry a long open-loop run reconnects whenever its in-flight count dips and climbs
    /// again, which puts handshakes in the latencies. The server may still close a connection it
    /// finds idle (oxserve after `header_read_timeout`, 10 s); the pool then opens another.
    pub(super) fn client(&self, pool: usize) -> anyhow::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(None)
            .tcp_nodelay(true)
            .timeout(self.timeout);
        if self.http2 {
            builder = builder.http2_prior_knowledge();
        } else {
            builder = builder.http1_only();
        }
        builder.build().context("building the HTTP client")
    }
}
