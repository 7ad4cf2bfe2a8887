//! `oxserve tune`: sweep workers × batch size × delay (× concurrency, rate, engine) against an
//! oxserve it starts, or any running TorchServe-compatible server, and recommend the highest
//! throughput whose P99 meets the SLA. `--merge` joins earlier runs (say, TorchServe's and
//! oxserve's) into one report.

use std::path::{Path, PathBuf};

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
    let mut sweep = sweep::load(config)?;
    // Held until the run ends: the model store a spawned server reads, when it had to be made.
    let mut staged = None;
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
            let base = config.parent().unwrap_or(Path::new("."));
            let store = match stage_local_archives(&mut sweep, base, &args.model_store)? {
                Some(dir) => staged.insert(dir).path().to_path_buf(),
                None => {
                    anyhow::ensure!(
                        args.model_store.is_dir(),
                        "model store {} is not a folder (give --model-store, or --url and --management-url of a running server)",
                        args.model_store.display()
                    );
                    args.model_store.clone()
                }
            };
            let exe = std::env::current_exe().context("locating the oxserve executable")?;
            (Target::Spawn { exe, model_store: store }, "oxserve")
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

/// TorchServe's benchmark YAMLs name archives by path (`url: /models/resnet-18.mar`, or relative
/// to the YAML). When cases do, a model store is made for the spawned server: links to those
/// archives and to every entry of `store` when it is a folder, with each case's `url` then naming
/// its archive by file name. `None` when every case names a store entry or a remote URL.
fn stage_local_archives(
    sweep: &mut sweep::Sweep,
    base: &Path,
    store: &Path,
) -> anyhow::Result<Option<tempfile::TempDir>> {
    let local = |url: &str| -> Option<PathBuf> {
        if url.contains("://") || (store.is_dir() && store.join(url).exists()) {
            return None;
        }
        [base.join(url), PathBuf::from(url)].into_iter().find(|p| p.exists())
    };
    if !sweep.cases.iter().any(|c| local(&c.url).is_some()) {
        return Ok(None);
    }
    let dir = tempfile::Builder::new().prefix("oxserve-tune-store").tempdir()?;
    let link = |from: &Path, name: &std::ffi::OsStr| -> anyhow::Result<()> {
        let to = dir.path().join(name);
        if !to.exists() {
            let from = std::fs::canonicalize(from)
                .with_context(|| format!("cannot read {}", from.display()))?;
            #[cfg(unix)]
            let linked = std::os::unix::fs::symlink(&from, &to);
            #[cfg(not(unix))]
            let linked = std::fs::copy(&from, &to).map(|_| ());
            linked
                .with_context(|| format!("cannot link {} into the model store", from.display()))?;
        }
        Ok(())
    };
    if store.is_dir() {
        for entry in std::fs::read_dir(store)? {
            let entry = entry?;
            link(&entry.path(), &entry.file_name())?;
        }
    }
    for case in &mut sweep.cases {
        if let Some(path) = local(&case.url) {
            let name = path.file_name().context("an archive path names no file")?.to_owned();
            link(&path, &name)?;
            case.url = name.to_string_lossy().into_owned();
        }
    }
    Ok(Some(dir))
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
