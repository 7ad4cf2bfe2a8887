//! `oxserve bench`: load a running server (oxserve or TorchServe) and report throughput, latency
//! percentiles, errors by status and the server's own stage timings; writes `ab_report.csv` (with
//! TorchServe's columns) and `result.json`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use oxserve_bench::ab_report::{self, RunSettings};
use oxserve_bench::indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oxserve_bench::load::{self, Input, LoadConfig, Stop};

/// Flags of `oxserve bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Base URL of the inference API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Model name.
    #[arg(long)]
    model: String,
    /// Model version (the default version when omitted).
    #[arg(long)]
    version: Option<String>,
    /// Request body file; give several to send them in turn.
    #[arg(long = "input", required = true)]
    inputs: Vec<PathBuf>,
    /// Content-Type of the bodies.
    #[arg(long, default_value = "application/json")]
    content_type: String,
    /// `torchserve` (POST /predictions/{model}) or `v2` (POST /v2/models/{model}/infer; a plain
    /// JSON list is wrapped into an OIP request using the model's metadata).
    #[arg(long, default_value = "torchserve", value_parser = ["torchserve", "v2"])]
    protocol: String,
    /// Closed loop: virtual users, each on its own keep-alive connection.
    #[arg(long, short = 'c', default_value_t = 10)]
    concurrency: usize,
    /// Measured requests (default 100 unless --duration is given).
    #[arg(long, short = 'n', conflicts_with = "duration")]
    requests: Option<u64>,
    /// Measure for this many seconds instead of a request count.
    #[arg(long)]
    duration: Option<f64>,
    /// Unmeasured requests first (closed loop, same concurrency).
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Open loop: send this many requests per second on a fixed schedule, answered or not, and
    /// measure latency from each scheduled send time (a closed loop hides queueing delay).
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: at most this many requests in flight; a send waiting for room leaves late.
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// HTTP/2 with prior knowledge (h2c) instead of keep-alive HTTP/1.1.
    #[arg(long)]
    http2: bool,
    /// Bearer token for the inference API (the `inference` key of key_file.json).
    #[arg(long, env = "OXSERVE_INFERENCE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The server's Prometheus endpoint (e.g. http://127.0.0.1:8082/metrics), read before and
    /// after to report what the server counted.
    #[arg(long)]
    metrics_url: Option<String>,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// Length in seconds of the timeline's windows in result.json (throughput and p50/p99 window
    /// by window); by default a sixtieth of a `--duration` run, at least 1.
    #[arg(long)]
    window: Option<f64>,
    /// Folder for ab_report.csv and result.json.
    #[arg(long, default_value = "bench-report")]
    out: PathBuf,
    /// Batch size the model was registered with, echoed in ab_report.csv.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Batch delay (ms) the model was registered with, echoed in ab_report.csv.
    #[arg(long)]
    batch_delay: Option<u64>,
    /// Workers the model runs with, echoed in ab_report.csv.
    #[arg(long)]
    workers: Option<usize>,
    /// Threads of the load generator's runtime (default: one per core; nothing is pinned).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// Reads the inputs, runs the load and writes the reports.
/// A positive number of seconds given for `flag`, as a duration (no panic on huge values).
fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} must be a positive number of seconds, got {value}"))
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut inputs = Vec::new();
    for path in &args.inputs {
        let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        inputs.push(Input { name: path.display().to_string(), body: body.into() });
    }
    let timeout = seconds("--timeout", args.timeout)?;
    let window = args.window.map(|w| seconds("--window", w)).transpose()?;
    let stop = match (args.requests, args.duration) {
        (_, Some(d)) => Stop::Duration(seconds("--duration", d)?),
        (n, None) => Stop::Requests(n.unwrap_or(100)),
    };
    let config = LoadConfig {
        url: args.url.clone(),
        model: args.model.clone(),
        version: args.version.clone(),
        protocol: args.protocol.parse()?,
        inputs,
        content_type: args.content_type.clone(),
        concurrency: args.concurrency,
        rate: args.rate,
        max_in_flight: args.max_in_flight,
        stop,
        warmup: args.warmup,
        http2: args.http2,
        token: args.token.clone(),
        timeout,
        metrics_url: args.metrics_url.clone(),
        window,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        anyhow::ensure!(threads >= 1, "--threads must be at least 1");
        runtime.worker_threads(threads);
    }
    let runtime = runtime.build().context("starting the load generator's runtime")?;
    let bar = if args.no_progress {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "[{bar:40}] {pos}/{len} {msg} (elapsed {elapsed}, ETA {eta})",
            )
            .context("progress template")?
            .progress_chars("=> "),
        );
        bar
    };
    let result = runtime.block_on(load::run(&config, &bar))?;
    print!("{}", result.summary());
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let settings = RunSettings {
        batch_size: args.batch_size,
        batch_delay: args.batch_delay,
        workers: args.workers,
        model: args.model.clone(),
        input: args.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" "),
    };
    let csv = args.out.join("ab_report.csv");
    ab_report::write(&csv, &[ab_report::row(&result, &settings)])?;
    let json = args.out.join("result.json");
    std::fs::write(&json, serde_json::to_string_pretty(&result)?)
        .with_context(|| format!("writing {}", json.display()))?;
    println!("wrote {} and {}", csv.display(), json.display());
    Ok(())
}
