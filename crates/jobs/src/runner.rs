//! Running a planned job: claim a batch, transform its documents in parallel, publish each output,
//! write the batch's done marker, release the lease; again until every batch is done, by this
//! process or another.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use object_store::PutMode;
use tokio_util::sync::CancellationToken;

use crate::lease::{Lease, Leases};
use crate::location::Location;
use crate::plan::{self, Manifest};
use crate::report::{Counters, Failure, Report};
use crate::{JobError, META, Transform};

/// This process's share when several run one job: `index` of `count` (a Kubernetes Indexed Job's
/// `JOB_COMPLETION_INDEX` of `JOB_COMPLETIONS`). A process starts with its own batches, then takes
/// any others nobody holds, so a slow or dead process's batches are taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

/// How one process runs a job.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Documents in flight at once (reads, transforms and writes overlap).
    pub concurrency: usize,
    pub shard: Shard,
    /// Names this process in leases; a restart with the same name takes its own leases back at
    /// once instead of waiting for them to expire.
    pub owner: String,
    /// How long a lease lasts unless renewed (it is renewed every third of this).
    pub lease: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Every batch is done; the job's report.
    Completed(Report),
    /// Stopped on request: finished batches stay done, the rest run when the job runs again.
    Stopped,
}

/// A job over `input` into `output`, planned (or found planned) under `output`.
pub struct Job {
    input: Location,
    output: Location,
    manifest: Manifest,
    transform: Arc<dyn Transform>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("input", &self.input)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

pub(crate) fn report_key() -> String {
    format!("{META}/report.json")
}

impl Job {
    /// Finds the job planned under `output` or plans it (listing `input`, cutting batches of
    /// `batch_size`). The same arguments find the same job; other ones are refused.
    pub async fn open(
        input: Location,
        output: Location,
        transform: Arc<dyn Transform>,
        batch_size: usize,
    ) -> Result<Self, JobError> {
        if batch_size == 0 {
            return Err(JobError::Invalid("the batch size must be at least 1".into()));
        }
        if input.overlaps(&output) {
            return Err(JobError::Invalid(format!(
                "the input ({}) and the output ({}) overlap: a job must not read its own outputs",
                input.uri(),
                output.uri()
            )));
        }
        let manifest = plan::open(&input, &output, transform.settings(), batch_size).await?;
        Ok(Self { input, output, manifest, transform })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The batches whose done markers exist.
    pub async fn done(&self) -> Result<BTreeSet<usize>, JobError> {
        let names = self.output.names_under(&self.manifest.done_folder()).await?;
        Ok(names
            .iter()
            .filter_map(|n| n.parse().ok())
            .filter(|&b| b < self.manifest.batches)
            .collect())
    }

    /// Runs until every batch is done or `stop` is cancelled.
    pub async fn run(
        &self,
        options: &RunOptions,
        counters: &Counters,
        stop: &CancellationToken,
    ) -> Result<Finish, JobError> {
        let leases = Leases { owner: options.owner.clone(), duration: options.lease };
        let mut done = self.done().await?;
        let m = &self.manifest;
        counters.planned.store(m.documents as u64, Ordering::Relaxed);
        counters
            .skipped
            .store(done.iter().map(|&b| m.batch_len(b) as u64).sum(), Ordering::Relaxed);
        let shard = options.shard;
        let (own, others): (Vec<usize>, Vec<usize>) =
            (0..m.batches).partition(|b| b % shard.count.max(1) == shard.index);
        let order: Vec<usize> = own.into_iter().chain(others).collect();
        loop {
            for &batch in &order {
                if done.contains(&batch) {
                    continue;
                }
                if stop.is_cancelled() {
                    return Ok(Finish::Stopped);
                }
                let Some(lease) = leases.claim(&self.output, &m.lease_key(batch)).await? else {
                    continue;
                };
                // Finished by another process since we last looked.
                if self.output.exists(&m.done_key(batch)).await? {
                    leases.release(&self.output, lease).await?;
                    done.insert(batch);
                    continue;
                }
                if self.run_batch(batch, lease, &leases, options, counters, stop).await? {
                    done.insert(batch);
                }
            }
            done = self.done().await?;
            if done.len() == m.batches {
                return self.finish().await.map(Finish::Completed);
            }
            // The rest are leased to other processes: wait for them to finish or expire. A look
            // is one listing of the done markers, so look often: the job ends when the last is in.
            let poll =
                (options.lease / 20).clamp(Duration::from_millis(50), Duration::from_secs(1));
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = stop.cancelled() => return Ok(Finish::Stopped),
            }
        }
    }

    /// Runs one batch under `lease`; false when stopped before its end.
    async fn run_batch(
        &self,
        batch: usize,
        lease: Lease,
        leases: &Leases,
        options: &RunOptions,
        counters: &Counters,
        stop: &CancellationToken,
    ) -> Result<bool, JobError> {
        let renewing = CancellationToken::new();
        let renewer =
            tokio::spawn(renew(self.output.clone(), leases.clone(), lease, renewing.clone()));
        let result = self.batch_report(batch, options, counters, stop).await;
        renewing.cancel();
        let lease = renewer.await.map_err(|e| JobError::Task(e.to_string()))?;
        let report = match result {
            Ok(Some(report)) => report,
            Ok(None) => {
                // Stopped: let the next run (of any process) take the batch at once.
                leases.release(&self.output, lease).await?;
                return Ok(false);
            }
            Err(e) => {
                if let Err(release) = leases.release(&self.output, lease).await {
                    tracing::warn!(%release, "could not release the lease of batch {batch}");
                }
                return Err(e);
            }
        };
        let marker = serde_json::to_vec_pretty(&report)?;
        self.output.put(&self.manifest.done_key(batch), marker, PutMode::Overwrite).await?;
        leases.release(&self.output, lease).await?;
        Ok(true)
    }

    /// Transforms a batch's documents; `None` when stopped part-way.
    async fn batch_report(
        &self,
        batch: usize,
        options: &RunOptions,
        counters: &Counters,
        stop: &CancellationToken,
    ) -> Result<Option<Report>, JobError> {
        let names = plan::read_batch(&self.output, &self.manifest, batch).await?.names;
        let expected = names.len();
        let outcomes: Vec<Report> = stream::iter(names)
            .take_while(|_| std::future::ready(!stop.is_cancelled()))
            .map(|name| self.document(name, counters))
            .buffer_unordered(options.concurrency.max(1))
            .try_collect()
            .await?;
        if outcomes.len() < expected {
            return Ok(None);
        }
        let mut report = Report::default();
        for one in outcomes {
            report.add(one);
        }
        report.failed.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(Some(report))
    }

    /// Reads, transforms and publishes one document. Store failures end the batch (it runs again);
    /// a bad document is a failure in the report and the batch goes on.
    async fn document(&self, name: String, counters: &Counters) -> Result<Report, JobError> {
        let mut report = Report { documents: 1, ..Report::default() };
        let outcome = match self.input.get(&name).await {
            Ok(got) if got.meta.size > self.transform.max_bytes() => Err(format!(
                "the document is {} bytes; the most one may hold is {}",
                got.meta.size,
                self.transform.max_bytes()
            )),
            Ok(got) => {
                let bytes = got.bytes().await?;
                report.bytes_in = bytes.len() as u64;
                self.transform.apply(&name, bytes).await
            }
            Err(JobError::Store(object_store::Error::NotFound { .. })) => {
                Err("the document was deleted after the job was planned".to_owned())
            }
            Err(e) => return Err(e),
        };
        counters.bytes_in.fetch_add(report.bytes_in, Ordering::Relaxed);
        match outcome {
            Ok(bytes) => {
                report.bytes_out = bytes.len() as u64;
                self.output
                    .put(&self.transform.output_name(&name), bytes, PutMode::Overwrite)
                    .await?;
                report.succeeded = 1;
                counters.bytes_out.fetch_add(report.bytes_out, Ordering::Relaxed);
                counters.succeeded.fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => {
                report.failed.push(Failure { file: name, reason });
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(report)
    }

    /// The job's report from every done marker, written beside the manifest.
    async fn finish(&self) -> Result<Report, JobError> {
        let m = &self.manifest;
        let markers: Vec<Report> = stream::iter(0..m.batches)
            .map(|batch| async move {
                let key = m.done_key(batch);
                let bytes = self
                    .output
                    .read(&key)
                    .await?
                    .ok_or_else(|| JobError::Corrupt(format!("{key} vanished")))?;
                serde_json::from_slice(&bytes).map_err(|e| JobError::Corrupt(format!("{key}: {e}")))
            })
            .buffered(16)
            .try_collect()
            .await?;
        let mut report = Report::default();
        for marker in markers {
            report.add(marker);
        }
        let bytes = serde_json::to_vec_pretty(&report)?;
        self.output.put(&report_key(), bytes, PutMode::Overwrite).await?;
        match self.output.sweep_staging() {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!("removed {n} half-written files left by a process that was killed")
            }
            Err(e) => {
                tracing::warn!(%e, "could not remove the half-written files of a killed process")
            }
        }
        Ok(report)
    }
}

/// Keeps a lease alive until `until` is cancelled; hands it back for release.
async fn renew(
    output: Location,
    leases: Leases,
    mut lease: Lease,
    until: CancellationToken,
) -> Lease {
    let every = leases.duration / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = until.cancelled() => return lease,
        }
        match leases.renew(&output, &mut lease).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "a batch lease was taken over while this process held it; both write the same outputs"
            ),
            Err(e) => tracing::warn!(%e, "could not renew a batch lease"),
        }
    }
}
