//! The plan: the input listed once, cut into micro-batches, and written under the output prefix
//! before any work starts, so every process (and every restart) works on the same batches.
//!
//! ```text
//! <output>/.oxserve-job/manifest.json           what the job is, and which plan it runs
//! <output>/.oxserve-job/<plan>/batches/000042   the input names of batch 42
//! <output>/.oxserve-job/<plan>/done/000042      batch 42's report: written last, so present = done
//! <output>/.oxserve-job/<plan>/leases/000042    who works on batch 42, until when
//! <output>/.oxserve-job/report.json             the whole job's report, once every batch is done
//! ```
//!
//! The plan's name is a digest of the names it holds: two processes that plan at once over
//! different listings write to different folders, and the manifest (created only if absent)
//! settles which plan is the job's.

use object_store::PutMode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::location::Location;
use crate::{JobError, META};

/// What a job is: the same arguments find the same job again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub input: String,
    /// The transform's settings ([`crate::Transform::settings`]).
    pub transform: Value,
    pub batch_size: usize,
    /// The digest naming the plan's folder.
    pub plan: String,
    pub documents: usize,
    pub batches: usize,
}

impl Manifest {
    /// Documents in batch `batch`: all but the last hold `batch_size`.
    pub fn batch_len(&self, batch: usize) -> usize {
        self.documents.saturating_sub(batch * self.batch_size).min(self.batch_size)
    }

    pub(crate) fn batch_key(&self, batch: usize) -> String {
        format!("{META}/{}/batches/{batch:06}", self.plan)
    }

    pub(crate) fn done_folder(&self) -> String {
        format!("{META}/{}/done", self.plan)
    }

    pub(crate) fn done_key(&self, batch: usize) -> String {
        format!("{}/{batch:06}", self.done_folder())
    }

    pub(crate) fn lease_key(&self, batch: usize) -> String {
        format!("{META}/{}/leases/{batch:06}", self.plan)
    }
}

/// One batch's input names.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub names: Vec<String>,
}

pub(crate) fn manifest_key() -> String {
    format!("{META}/manifest.json")
}

/// Finds the job's manifest under `output`, or plans the job and writes one. An existing manifest
/// for other arguments is refused: one output prefix holds one job.
pub(crate) async fn open(
    input: &Location,
    output: &Location,
    transform: Value,
    batch_size: usize,
) -> Result<Manifest, JobError> {
    if let Some(found) = read_manifest(output).await? {
        return check(found, input, &transform, batch_size);
    }
    let listed = input.list().await?;
    let names: Vec<String> = listed.into_iter().map(|l| l.relative).collect();
    let mut digest = Sha256::new();
    for name in &names {
        digest.update(name.as_bytes());
        digest.update([0]);
    }
    digest.update(batch_size.to_le_bytes());
    let plan: String = digest.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    let manifest = Manifest {
        input: input.uri().to_owned(),
        transform,
        batch_size,
        plan,
        documents: names.len(),
        batches: names.len().div_ceil(batch_size),
    };
    for (index, chunk) in names.chunks(batch_size).enumerate() {
        let batch = Batch { names: chunk.to_vec() };
        let bytes = serde_json::to_vec(&batch)?;
        output
            .put(&manifest.batch_key(index), bytes, PutMode::Overwrite)
            .await
            .map_err(|e| output.missing(e))?;
    }
    let bytes = serde_json::to_vec_pretty(&manifest)?;
    match output.put(&manifest_key(), bytes, PutMode::Create).await {
        Ok(_) => Ok(manifest),
        // Another process planned at the same moment and won: its plan is the job's.
        Err(object_store::Error::AlreadyExists { .. }) => {
            let found = read_manifest(output)
                .await?
                .ok_or(JobError::Corrupt("the manifest vanished".into()))?;
            check(found, input, &manifest.transform, batch_size)
        }
        Err(e) => Err(output.missing(e)),
    }
}

pub(crate) async fn read_manifest(output: &Location) -> Result<Option<Manifest>, JobError> {
    let Some(bytes) = output.read(&manifest_key()).await? else { return Ok(None) };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| JobError::Corrupt(format!("{}: {e}", manifest_key())))
}

fn check(
    found: Manifest,
    input: &Location,
    transform: &Value,
    batch_size: usize,
) -> Result<Manifest, JobError> {
    if found.input != input.uri() || &found.transform != transform || found.batch_size != batch_size
    {
        return Err(JobError::OtherJob {
            input: found.input,
            transform: found.transform.to_string(),
            batch_size: found.batch_size,
        });
    }
    Ok(found)
}

pub(crate) async fn read_batch(
    output: &Location,
    manifest: &Manifest,
    batch: usize,
) -> Result<Batch, JobError> {
    let key = manifest.batch_key(batch);
    let bytes =
        output.read(&key).await?.ok_or_else(|| JobError::Corrupt(format!("{key} is missing")))?;
    serde_json::from_slice(&bytes).map_err(|e| JobError::Corrupt(format!("{key}: {e}")))
}
