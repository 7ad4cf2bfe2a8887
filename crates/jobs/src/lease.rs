//! Batch leases: which process works on a batch, until when. A lease is taken with a conditional
//! put (created only if absent; an expired one replaced only if unchanged since read), renewed
//! while the batch runs, and dropped when its done marker is written. A process that dies leaves
//! its lease to expire, and another takes the batch over.
//!
//! Leases save work; they do not guard correctness. Outputs are a pure function of the inputs, so
//! a batch run twice (a store without conditional updates, a renewal that came too late) writes
//! the same bytes twice.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use object_store::{PutMode, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::JobError;
use crate::location::Location;

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    owner: String,
    /// Milliseconds since the Unix epoch.
    expires: u64,
}

/// A lease this process holds.
#[derive(Debug)]
pub(crate) struct Lease {
    key: String,
    version: UpdateVersion,
}

/// Takes and renews leases for one process.
#[derive(Debug, Clone)]
pub(crate) struct Leases {
    pub owner: String,
    pub duration: Duration,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Leases {
    fn record(&self) -> Result<Vec<u8>, JobError> {
        let expires = now_ms() + self.duration.as_millis() as u64;
        Ok(serde_json::to_vec(&Record { owner: self.owner.clone(), expires })?)
    }

    /// Takes the lease at `key`, unless another owner holds it and it has not expired.
    pub async fn claim(&self, output: &Location, key: &str) -> Result<Option<Lease>, JobError> {
        let version =
            |r: object_store::PutResult| UpdateVersion { e_tag: r.e_tag, version: r.version };
        match output.put(key, self.record()?, PutMode::Create).await {
            Ok(put) => return Ok(Some(Lease { key: key.to_owned(), version: version(put) })),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let held = match output.get(key).await {
            Ok(held) => held,
            // Released between our put and our read: try again next pass.
            Err(JobError::Store(object_store::Error::NotFound { .. })) => return Ok(None),
            Err(e) => return Err(e),
        };
        let seen =
            UpdateVersion { e_tag: held.meta.e_tag.clone(), version: held.meta.version.clone() };
        let record: Option<Record> = serde_json::from_slice(&held.bytes().await?).ok();
        // A lease of our own (a restart with the same identity) or past its time is taken over;
        // an unreadable one (a torn write on a store without atomic puts) counts as expired.
        let free = record.is_none_or(|r| r.owner == self.owner || r.expires <= now_ms());
        if !free {
            return Ok(None);
        }
        match output.put(key, self.record()?, PutMode::Update(seen)).await {
            Ok(put) => Ok(Some(Lease { key: key.to_owned(), version: version(put) })),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => Ok(None),
            // The local store has no conditional update: overwrite (at worst two processes run
            // the batch, writing the same bytes).
            Err(object_store::Error::NotImplemented) => {
                let put = output.put(key, self.record()?, PutMode::Overwrite).await?;
                Ok(Some(Lease { key: key.to_owned(), version: version(put) }))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Extends a held lease; false when another process has taken it over meanwhile.
    pub async fn renew(&self, output: &Location, lease: &mut Lease) -> Result<bool, JobError> {
        let mode = PutMode::Update(lease.version.clone());
        let put = match output.put(&lease.key, self.record()?, mode).await {
            Ok(put) => put,
            Err(object_store::Error::Precondition { .. }) => return Ok(false),
            Err(object_store::Error::NotImplemented) => {
                output.put(&lease.key, self.record()?, PutMode::Overwrite).await?
            }
            Err(e) => return Err(e.into()),
        };
        lease.version = UpdateVersion { e_tag: put.e_tag, version: put.version };
        Ok(true)
    }

    pub async fn release(&self, output: &Location, lease: Lease) -> Result<(), JobError> {
        output.delete(&lease.key).await
    }
}
