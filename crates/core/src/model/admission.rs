//! Admission: a request takes its place among its model's requests in flight before its body is
//! read, and holds it, as a [`Ticket`], until it is answered or dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::request::{Recorder, RequestOptions};
use super::{ModelVersion, lock};
use crate::error::{EngineError, Result};

/// A request admitted to a model version. Its place is released when the ticket is used up
/// ([`Ticket::predict`], [`Ticket::infer`]) or dropped (the client went away).
#[derive(Debug)]
pub struct Ticket {
    pub(super) version: Arc<ModelVersion>,
    pub(super) options: RequestOptions,
    _permit: OwnedSemaphorePermit,
}

impl Ticket {
    /// The model version it was admitted to.
    pub fn version(&self) -> &Arc<ModelVersion> {
        &self.version
    }

    /// Shortens the request's deadline to `timeout` (a longer one than it has is ignored): a
    /// deadline the client only states in the body it sends after admission.
    pub fn shorten_timeout(&mut self, timeout: Duration) {
        self.options.timeout = Some(self.options.timeout.map_or(timeout, |t| t.min(timeout)));
    }
}

impl ModelVersion {
    /// Takes a place among the model's requests in flight, or refuses at once: with
    /// [`EngineError::TooManyRequests`] past `maxConcurrentRequests`, else with
    /// [`EngineError::Overloaded`] past what the queue and the workers' batches can hold. Servers
    /// call it before reading a request body, so a refused request costs no body read, and the
    /// bodies held at once stay within that bound whatever the number of clients.
    ///
    /// # Errors
    /// As above; the refusal is counted in the model's metrics.
    pub fn admit(self: &Arc<Self>, options: RequestOptions) -> Result<Ticket> {
        match self.admission.take() {
            Ok(permit) => Ok(Ticket { version: Arc::clone(self), options, _permit: permit }),
            Err(limit) => {
                let e = if self.admission.user_limit {
                    EngineError::TooManyRequests { model: self.name.clone(), limit }
                } else {
                    EngineError::Overloaded {
                        model: self.name.clone(),
                        capacity: lock(&self.settings).job_queue_size,
                    }
                };
                Recorder::new(&self.metrics, options.request_id.as_deref()).failed(&e);
                Err(e)
            }
        }
    }

    /// How many of its requests may be in flight at once now: `maxConcurrentRequests`, or what
    /// the queue and the workers' batches hold.
    pub fn concurrency_limit(&self) -> usize {
        self.admission.limit.load(Ordering::Acquire)
    }

    /// Requests holding a ticket now: admitted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.concurrency_limit().saturating_sub(self.admission.permits.available_permits())
    }
}

/// The permits behind [`ModelVersion::admit`].
#[derive(Debug)]
pub(super) struct Admissions {
    permits: Arc<Semaphore>,
    /// Permits issued in all; grows when the model is scaled up.
    limit: AtomicUsize,
    /// Whether the limit is the user's `maxConcurrentRequests` (fixed) rather than derived.
    user_limit: bool,
}

impl Admissions {
    pub(super) fn new(user: Option<usize>, derived: usize) -> Self {
        let limit = user.unwrap_or(derived).max(1);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit: limit.into(),
            user_limit: user.is_some(),
        }
    }

    /// Raises a derived limit to `derived` (scaling up adds room; scaling down keeps it, the queue
    /// still bounds what waits).
    pub(super) fn fit(&self, derived: usize) {
        if self.user_limit {
            return;
        }
        let before = self.limit.fetch_max(derived, Ordering::AcqRel);
        if derived > before {
            self.permits.add_permits(derived - before);
        }
    }

    fn take(&self) -> std::result::Result<OwnedSemaphorePermit, usize> {
        Arc::clone(&self.permits)
            .try_acquire_owned()
            .map_err(|_| self.limit.load(Ordering::Acquire))
    }
}
