//! `oxserve job`: a resumable batch job over a folder or an S3 prefix: PII redaction (Comprehend's
//! PII jobs) or a model's predictions for every file. Killed and started again with the same
//! arguments, it goes on where it stopped; several processes (`--shard`, or a Kubernetes Indexed
//! Job's `JOB_COMPLETION_INDEX`) share one job.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use oxserve_bench::indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oxserve_jobs::{
    Counters, DocumentsPer, Finish, Job, Location, Redact, RunOptions, Shard, Transform,
};
use oxserve_pii::Detector;
use tokio_util::sync::CancellationToken;

use super::redact::RedactionFlags;

/// Flags of `oxserve job`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("transform").required(true).args(["redact", "model"])))]
pub(crate) struct JobArgs {
    /// The documents: a folder, or an S3 key prefix (`s3://bucket/calls/`).
    #[arg(long)]
    input: String,

    /// Where results go: a folder or an S3 prefix. The job's records live under it too, in
    /// `.oxserve-job/`: the same command run again resumes the job from there.
    #[arg(long)]
    output: String,

    /// Redact PII (Comprehend's PII job): `.json` files are Contact Lens transcripts, others text.
    #[arg(long)]
    redact: bool,

    /// Run every file through this model (a `.mar`, `.onnx` or model folder) as `/predictions`
    /// would; each answer is written as `<name>.out`.
    #[arg(long)]
    model: Option<std::path::PathBuf>,

    #[command(flatten)]
    redaction: RedactionFlags,

    /// `file`: each file is one document; `line`: each line of each file is one text document
    /// (Comprehend's ONE_DOC_PER_FILE and ONE_DOC_PER_LINE).
    #[arg(long, value_enum, default_value = "file")]
    documents_per: PerArg,

    /// Documents per micro-batch: the unit that is finished, resumed and shared.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,

    /// Documents in flight at once (default: two per core).
    #[arg(long)]
    concurrency: Option<usize>,

    /// This process's share, INDEX/COUNT (default: JOB_COMPLETION_INDEX of JOB_COMPLETIONS when
    /// set, as in a Kubernetes Indexed Job, else 0/1). Each process also takes over batches that
    /// nobody holds.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<Shard>,

    /// Names this process in batch leases (default: the host name and shard index; a restart with
    /// the same name takes its own batches back at once).
    #[arg(long)]
    worker_id: Option<String>,

    /// Seconds a batch lease lasts unless renewed: how soon a dead process's batch is taken over.
    #[arg(long, default_value_t = 60)]
    lease_seconds: u64,

    /// No progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PerArg {
    File,
    Line,
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    let (index, count) = text.split_once('/').ok_or("expected INDEX/COUNT, such as 0/3")?;
    let index: usize = index.trim().parse().map_err(|e| format!("shard index: {e}"))?;
    let count: usize = count.trim().parse().map_err(|e| format!("shard count: {e}"))?;
    if count == 0 || index >= count {
        return Err(format!("shard {index}/{count}: the index must be below the count"));
    }
    Ok(Shard { index, count })
}

/// The shard from the flag, else from a Kubernetes Indexed Job's environment.
fn shard(args: &JobArgs) -> anyhow::Result<Shard> {
    if let Some(shard) = args.shard {
        return Ok(shard);
    }
    match (std::env::var("JOB_COMPLETION_INDEX"), std::env::var("JOB_COMPLETIONS")) {
        (Ok(index), Ok(count)) => parse_shard(&format!("{index}/{count}"))
            .map_err(|e| anyhow::anyhow!("JOB_COMPLETION_INDEX / JOB_COMPLETIONS: {e}")),
        (Ok(index), Err(_)) => {
            bail!(
                "JOB_COMPLETION_INDEX is {index} but JOB_COMPLETIONS is not set: set it to the Job's completions"
            )
        }
        _ => Ok(Shard::default()),
    }
}

pub(crate) fn run(args: JobArgs) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(job(args, cores))
}

async fn job(args: JobArgs, cores: usize) -> anyhow::Result<()> {
    let shard = shard(&args)?;
    let model = match &args.model {
        Some(path) => Some(super::job_model::Predict::load(path).await?),
        None => None,
    };
    let transform: Arc<dyn Transform> = match &model {
        Some(model) => Arc::new(model.clone()),
        None => {
            let per = match args.documents_per {
                PerArg::File => DocumentsPer::File,
                PerArg::Line => DocumentsPer::Line,
            };
            let redaction = args.redaction.redaction()?;
            let detector = Arc::new(Detector::new());
            Arc::new(Redact { detector, redaction, output: args.redaction.output(), per })
        }
    };
    let result = run_job(&args, shard, cores, transform).await;
    if let Some(model) = model {
        model.shutdown().await;
    }
    result
}

async fn run_job(
    args: &JobArgs,
    shard: Shard,
    cores: usize,
    transform: Arc<dyn Transform>,
) -> anyhow::Result<()> {
    let input = Location::parse(&args.input, false)?;
    let output = Location::parse(&args.output, true)?;
    let job = Job::open(input, output, transform, args.batch_size).await?;
    let manifest = job.manifest().clone();
    let owner = args
        .worker_id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", oxserve_core::system::hostname(), shard.index));
    let options = RunOptions {
        concurrency: args.concurrency.unwrap_or(2 * cores).max(1),
        shard,
        owner,
        lease: Duration::from_secs(args.lease_seconds.max(1)),
    };
    eprintln!(
        "oxserve job: {} documents in {} batches of up to {} from {} to {} (shard {}/{})",
        manifest.documents,
        manifest.batches,
        manifest.batch_size,
        args.input,
        args.output,
        shard.index,
        shard.count
    );
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let bar = progress(&counters, manifest.documents as u64, args.quiet);
    let started = Instant::now();
    let finish = job.run(&options, &counters, &stop).await;
    bar.abort();
    let done_here =
        counters.succeeded.load(Ordering::Relaxed) + counters.failed.load(Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let rate = done_here as f64 / seconds.max(1e-9);
    match finish? {
        Finish::Stopped => {
            eprintln!(
                "oxserve job: stopped after {done_here} documents in {seconds:.1} s; {} of {} are done. Run the same command to resume.",
                counters.finished(),
                manifest.documents
            );
            bail!("the job was stopped before it finished")
        }
        Finish::Completed(report) => {
            for failure in report.failed.iter().take(20) {
                eprintln!("oxserve job: {}: {}", failure.file, failure.reason);
            }
            if report.failed.len() > 20 {
                eprintln!(
                    "oxserve job: … and {} more failures (all in the report)",
                    report.failed.len() - 20
                );
            }
            eprintln!(
                "oxserve job: done: {} of {} documents written, {} failed; {} bytes in, {} bytes out; this process: {done_here} documents in {seconds:.1} s ({rate:.0}/s); report: {}/{}/report.json",
                report.succeeded,
                report.documents,
                report.failed.len(),
                report.bytes_in,
                report.bytes_out,
                args.output.trim_end_matches('/'),
                oxserve_jobs::META
            );
            if !report.failed.is_empty() {
                bail!(
                    "{} of {} documents could not be transformed (reasons above and in the report)",
                    report.failed.len(),
                    report.documents
                );
            }
            Ok(())
        }
    }
}

/// A progress bar with rate and ETA, fed from the job's counters, drawn on a terminal only.
fn progress(counters: &Arc<Counters>, total: u64, quiet: bool) -> tokio::task::JoinHandle<()> {
    let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} documents, {per_sec}, ETA {eta}")
    {
        bar.set_style(style);
    }
    let counters = Arc::clone(counters);
    tokio::spawn(async move {
        loop {
            bar.set_position(counters.finished());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// SIGINT or SIGTERM (a pod being stopped) ends the job after the documents in flight: their
/// outputs are written, and the batch they belong to runs again next time.
async fn stop_on_signal(stop: CancellationToken) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("oxserve job: stopping after the documents in flight");
    stop.cancel();
}
