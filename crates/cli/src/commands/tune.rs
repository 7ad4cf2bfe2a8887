//! `oxserve tune`: sweep workers × batch size × delay (× concurrency, rate, engine) against an
//! oxserve it starts, or any running TorchServe-compatible server, and recommend the highest
//! throughput whose P99 meets the SLA. `--merge` joins earlier runs (say, TorchServe's and
//! oxserve's) into one report.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use oxserve_bench::sweep;
use oxserve_bench::target::{Endpoints, Target};
use oxserve_bench::tune::{self, TuneOptions, TuneRun};

/// Flags of `oxserve tune`.
#[derive(Debug, Args)]
pub(crate) struct TuneArgs {
    /// Sweep file: TorchServe's auto_benchmark model YAML, with optional sla_p99_ms, engines,
    /// rates, duration, warmup, protocol and model_name keys.
    #[arg(long, required_unless_present = "merge")]
    config: Option<PathBuf>,
    /// P99 limit in ms for the recommendation (overrides sla_p99_ms in the file; default 100).
    #[arg(long)]
    sla_p99_ms: Option<f64>,
    /// Output folder: one folder per case, results.json, ab_report.csv, report.md and charts.
    #[arg(long, default_value = "tune-report")]
    out: PathBuf,
    /// Model store of the oxserve that tune starts (one per engine) when no --url is given.
    #[arg(long, default_value = "model_store")]
    model_store: PathBuf,
    /// Inference API of a running server (oxserve or TorchServe) to tune instead of starting one.
    #[arg(long, requires = "management_url")]
    url: Option<String>,
    /// Its management API (the model is registered and unregistered there for each case).
    #[arg(long, requires = "url")]
    management_url: Option<String>,
    /// Its Prometheus endpoint, e.g. http://127.0.0.1:8082/metrics.
    #[arg(long)]
    metrics_url: Option<String>,
    /// Bearer token for its inference API.
    #[arg(long, env = "OXSERVE_INFERENCE_TOKEN", hide_env_values = true)]
    inference_token: Option<String>,
    /// Bearer token for its management API.
    #[arg(long, env = "OXSERVE_MANAGEMENT_TOKEN", hide_env_values = true)]
    management_token: Option<String>,
    /// Name of the target in the report (default: oxserve when tune starts it, else server).
    #[arg(long)]
    label: Option<String>,
    /// Instead of measuring, join the results.json of these earlier runs into one report.
    #[arg(long, conflicts_with_all = ["config", "url"])]
    merge: Vec<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

/// Runs the sweep (or the merge) and prints where the report is and what it recommends.
pub(crate) fn run(args: TuneArgs) -> anyhow::Result<()> {
    if let Some(sla) = args.sla_p99_ms
        && !(sla > 0.0 && sla.is_finite())
    {
        bail!("--sla-p99-ms must be positive");
    }
    let run = if args.merge.is_empty() {
        measure(&args)?
    } else {
        let run = tune::merge(&args.merge, args.sla_p99_ms)?;
        oxserve_bench::report::write_all(&args.out, &run)?;
        run
    };
    print_choice(&run);
    println!("report: {}", args.out.join("report.md").display());
    Ok(())
}

fn measure(args: &TuneArgs) -> anyhow::Result<TuneRun> {
    let config = args.config.as_ref().context("--config is required")?;
    let sweep = sweep::load(config)?;
    for key in &sweep.ignored_keys {
        eprintln!("oxserve tune: ignoring {key} (no meaning for this tool)");
    }
    let (target, label) = match (&args.url, &args.management_url) {
        (Some(url), Some(management)) => (
            Target::Running(Endpoints {
                inference: url.clone(),
                management: management.clone(),
                metrics: args.metrics_url.clone(),
                inference_token: args.inference_token.clone(),
                management_token: args.management_token.clone(),
            }),
            "server",
        ),
        _ => {
            anyhow::ensure!(
                args.model_store.is_dir(),
                "model store {} is not a folder (give --model-store, or --url and --management-url of a running server)",
                args.model_store.display()
            );
            let exe = std::env::current_exe().context("locating the oxserve executable")?;
            (Target::Spawn { exe, model_store: args.model_store.clone() }, "oxserve")
        }
    };
    let options = TuneOptions {
        target,
        label: args.label.clone().unwrap_or_else(|| label.into()),
        out_dir: args.out.clone(),
        sla_p99_ms: args.sla_p99_ms,
        progress: !args.no_progress,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(tune::run(&sweep, &options))
}

fn print_choice(run: &TuneRun) {
    match (&run.choice.best, &run.choice.closest) {
        (Some(best), _) => {
            println!("recommended: {} ({})", best.name, best.why);
            if let Some(r) = &run.choice.runner_up {
                println!("runner-up: {} ({})", r.name, r.why);
            }
        }
        (None, Some(closest)) => {
            println!("no configuration meets the SLA; closest: {} ({})", closest.name, closest.why)
        }
        (None, None) => println!("no configuration was measured"),
    }
}
