//! Runs a sweep: for each case, configure the server, warm up, measure, restore; then write one
//! folder per case (`result.json`, `ab_report.csv`), `results.json` for the whole run, and the
//! report with its charts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::ab_report::{self, RunSettings};
use crate::choose::{self, Candidate, Choice};
use crate::load::{self, Input, LoadConfig, Stop};
use crate::machine::Machine;
use crate::result::BenchResult;
use crate::sweep::{Case, Sweep};
use crate::target::{Endpoints, Management, Registration, SpawnedServer, Target};

/// SLA used when neither the sweep nor the command line sets one: the seed's 100 ms.
pub const DEFAULT_SLA_P99_MS: f64 = 100.0;

/// One measured case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// The server it ran against (`oxserve`, `torchserve`, or a given label).
    pub target: String,
    /// The configuration.
    pub case: Case,
    /// The measurement.
    pub result: BenchResult,
    /// The engine the server reported for the model while it was measured (see
    /// [`Management::engine`]); absent in results of servers that do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

impl CaseResult {
    /// The engine to show: the one the server reported, else the one the sweep asked for.
    pub fn engine_name(&self) -> Option<&str> {
        self.engine.as_deref().or(self.case.engine.as_deref())
    }

    /// Name unique across targets: `<target>/<case>`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.target, self.case.name)
    }
}

/// A whole tuning run, as saved in `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneRun {
    /// When it ran (RFC 3339).
    pub date: String,
    /// The SLA the choice applied.
    pub sla_p99_ms: f64,
    /// Relative throughput difference counted as a tie.
    pub tie_tolerance: f64,
    /// Where the load generator ran.
    pub machine: Machine,
    /// Every case, in sweep order (then target order, for merged runs).
    pub cases: Vec<CaseResult>,
    /// The recommendation; indices point into `cases`.
    pub choice: Choice,
    /// Commands or notes worth keeping with the report.
    pub notes: Vec<String>,
}

impl TuneRun {
    /// Builds a run from measured cases and applies the SLA choice.
    pub fn new(
        cases: Vec<CaseResult>,
        sla_p99_ms: f64,
        tie_tolerance: f64,
        notes: Vec<String>,
    ) -> Self {
        let choice = choose::choose(&candidates(&cases), sla_p99_ms, tie_tolerance);
        Self {
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            sla_p99_ms,
            tie_tolerance,
            machine: Machine::current(),
            cases,
            choice,
            notes,
        }
    }
}

/// The choice's view of each case.
pub fn candidates(cases: &[CaseResult]) -> Vec<Candidate> {
    cases
        .iter()
        .map(|c| Candidate {
            name: c.label(),
            throughput_rps: c.result.throughput_rps,
            p99_ms: c.result.latency_ms.p99,
            failed: c.result.failed,
            workers: c.case.workers,
            batch_size: c.case.batch_size,
            batch_delay: c.case.batch_delay,
        })
        .collect()
}

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct TuneOptions {
    /// The server.
    pub target: Target,
    /// Name of the target in reports.
    pub label: String,
    /// Output folder (created).
    pub out_dir: PathBuf,
    /// Overrides the sweep's SLA.
    pub sla_p99_ms: Option<f64>,
    /// Draw progress bars (they hide themselves when stderr is not a terminal).
    pub progress: bool,
}

/// Runs every case of `sweep` and writes the report.
///
/// # Errors
/// The server cannot be started or configured, an input cannot be read, or a file cannot be
/// written. A case whose requests fail is measured and reported, not an error.
pub async fn run(sweep: &Sweep, options: &TuneOptions) -> anyhow::Result<TuneRun> {
    std::fs::create_dir_all(&options.out_dir)
        .with_context(|| format!("creating {}", options.out_dir.display()))?;
    if matches!(options.target, Target::Running(_))
        && sweep.cases.iter().any(|c| c.engine.is_some())
    {
        bail!("engines can only be swept when tune starts oxserve itself (no --url)");
    }
    let bars = if options.progress {
        MultiProgress::new()
    } else {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    };
    let overall = bars.add(ProgressBar::new(sweep.cases.len() as u64));
    overall.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} cases, elapsed {elapsed}, ETA {eta}  {msg}",
        )
        .context("progress template")?
        .progress_chars("=> "),
    );
    overall.set_prefix("tune");
    let mut results = Vec::new();
    let mut server: Option<(Option<String>, SpawnedServer)> = None;
    for case in &sweep.cases {
        overall.set_message(case.name.clone());
        let endpoints = match &options.target {
            Target::Running(e) => e.clone(),
            Target::Spawn { exe, model_store } => {
                // One server per engine; cases of the same engine share it.
                if server.as_ref().is_none_or(|(engine, _)| *engine != case.engine) {
                    // The previous engine's server stops before the next one starts.
                    drop(server.take());
                    let args: Vec<String> = case
                        .engine
                        .iter()
                        .flat_map(|e| ["--engine".to_owned(), e.clone()])
                        .collect();
                    let (exe, store) = (exe.clone(), model_store.clone());
                    let started = tokio::task::spawn_blocking(move || {
                        SpawnedServer::start(&exe, &store, &args)
                    })
                    .await
                    .context("the server start was cancelled")??;
                    server = Some((case.engine.clone(), started));
                }
                server.as_ref().map(|(_, s)| s.endpoints.clone()).context("no server")?
            }
        };
        let bar = bars.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("  {prefix} [{bar:30}] {pos}/{len} {msg}")
                .context("progress template")?
                .progress_chars("=> "),
        );
        bar.set_prefix(case.name.clone());
        let (result, engine) = run_case(case, &endpoints, &bar)
            .await
            .with_context(|| format!("case {}", case.name))?;
        bars.remove(&bar);
        let line = format!(
            "{}: {:.1} req/s, p99 {:.2} ms, {} failed",
            case.name, result.throughput_rps, result.latency_ms.p99, result.failed
        );
        // Without drawn bars (not a terminal, or --no-progress) each case still leaves a line.
        if bars.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = bars.println(line);
        }
        let measured =
            CaseResult { target: options.label.clone(), case: case.clone(), result, engine };
        write_case(&options.out_dir, &measured)?;
        results.push(measured);
        overall.inc(1);
    }
    overall.finish_and_clear();
    drop(server);
    let sla = options.sla_p99_ms.or(sweep.sla_p99_ms).unwrap_or(DEFAULT_SLA_P99_MS);
    let run = TuneRun::new(results, sla, sweep.tie_tolerance, Vec::new());
    crate::report::write_all(&options.out_dir, &run)?;
    Ok(run)
}

/// Register, measure, unregister. The model is unregistered even when the measurement fails.
/// Returns the measurement and the engine the server reported for the model.
async fn run_case(
    case: &Case,
    endpoints: &Endpoints,
    bar: &ProgressBar,
) -> anyhow::Result<(BenchResult, Option<String>)> {
    let management = Management::new(endpoints.clone())?;
    management
        .register(&Registration {
            url: case.url.clone(),
            model_name: case.model_name.clone(),
            batch_size: case.batch_size,
            batch_delay: case.batch_delay,
            workers: case.workers,
        })
        .await?;
    let engine = management.engine(&case.model_name).await;
    let measured = measure(case, endpoints, bar).await;
    let restored = management.unregister(&case.model_name).await;
    let result = measured?;
    restored?;
    Ok((result, engine))
}

async fn measure(
    case: &Case,
    endpoints: &Endpoints,
    bar: &ProgressBar,
) -> anyhow::Result<BenchResult> {
    let body =
        std::fs::read(&case.input).with_context(|| format!("reading {}", case.input.display()))?;
    let config = LoadConfig {
        url: endpoints.inference.clone(),
        model: case.model_name.clone(),
        version: None,
        protocol: case.protocol.parse()?,
        inputs: vec![Input { name: case.input.display().to_string(), body: body.into() }],
        content_type: case.content_type.clone(),
        concurrency: case.concurrency,
        rate: case.rate,
        max_in_flight: case.concurrency,
        stop: match case.duration {
            Some(d) => Stop::Duration(Duration::from_secs_f64(d)),
            None => Stop::Requests(case.requests),
        },
        warmup: case.warmup,
        http2: false,
        token: endpoints.inference_token.clone(),
        timeout: Duration::from_secs(120),
        metrics_url: endpoints.metrics.clone(),
        window: None,
    };
    load::run(&config, bar).await
}

/// The ab_report settings echo for a case.
pub fn run_settings(case: &Case) -> RunSettings {
    RunSettings {
        batch_size: Some(case.batch_size),
        batch_delay: Some(case.batch_delay),
        workers: Some(case.workers),
        model: case.url.clone(),
        input: case.input.display().to_string(),
    }
}

/// `<out>/<target>_<case>/result.json` and `ab_report.csv`.
fn write_case(out: &Path, measured: &CaseResult) -> anyhow::Result<()> {
    let dir = out.join(format!("{}_{}", measured.target, measured.case.name));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(measured)?;
    std::fs::write(dir.join("result.json"), json)
        .with_context(|| format!("writing {}", dir.display()))?;
    ab_report::write(
        &dir.join("ab_report.csv"),
        &[ab_report::row(&measured.result, &run_settings(&measured.case))],
    )
}

/// Reads the `results.json` of earlier runs (for instance one against TorchServe and one against
/// oxserve) into one run, re-applying the SLA choice over all their cases.
///
/// # Errors
/// A folder has no readable `results.json`.
pub fn merge(dirs: &[PathBuf], sla_p99_ms: Option<f64>) -> anyhow::Result<TuneRun> {
    let mut cases = Vec::new();
    let mut sla = None;
    let mut tolerance = 0.02;
    let mut notes = Vec::new();
    for dir in dirs {
        let path = dir.join("results.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let run: TuneRun =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        sla = sla.or(Some(run.sla_p99_ms));
        tolerance = run.tie_tolerance;
        notes.push(format!(
            "merged from {} (run of {}, {})",
            dir.display(),
            run.date,
            run.machine.summary()
        ));
        cases.extend(run.cases);
    }
    let sla = sla_p99_ms.or(sla).unwrap_or(DEFAULT_SLA_P99_MS);
    Ok(TuneRun::new(cases, sla, tolerance, notes))
}
