//! The request path, once admitted: tensors into the queue and back ([`Ticket::infer`]), a
//! handler around that ([`Ticket::predict`]: preprocess, queue, postprocess), or, for a hosted
//! model, the raw request to its worker process and the handler's answer back
//! ([`Ticket::forward`]). Each protocol's codec ends where one of these begins.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oxserve_backend::Tensor;

use super::{ModelVersion, Runner, Ticket, lock};
use crate::error::{EngineError, Result};
use crate::executor::native::Rows;
use crate::executor::{Done, JobQueue, QueueView};
use crate::handler::{Payload, Prediction};
use crate::hosted::{HostedAnswer, HostedRequest};
use crate::metrics::{ModelMetrics, Outcome, RequestTimings};

/// Per-request options.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// A deadline shorter than the model's response timeout (a longer one is ignored).
    pub timeout: Option<Duration>,
    /// The request id, for metric log lines.
    pub request_id: Option<String>,
}

impl Ticket {
    /// Runs already-built input tensors through the queue, checking them against the signature.
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] for tensors that do not fit, [`EngineError::Overloaded`] when
    /// the queue is full, [`EngineError::Timeout`] when no answer came in time.
    pub async fn infer(self, inputs: Vec<Tensor>) -> Result<Done<Vec<Tensor>>> {
        let v = &self.version;
        let mut record = Recorder::new(&v.metrics, self.options.request_id.as_deref());
        // Triton counts a request's rows as its inferences where the model batches.
        let rows = match inputs.first() {
            Some(t) if v.signature().is_batchable() => t.rows(),
            _ => 1,
        };
        let result = v.submit(inputs, &self.options).await;
        match &result {
            Ok(done) => record.answered(
                RequestTimings {
                    queue: done.queue_time,
                    inference: done.inference_time,
                    total: record.started.elapsed(),
                    ..RequestTimings::default()
                },
                rows,
            ),
            Err(e) => record.failed(e),
        }
        result
    }

    /// Serves one TorchServe-style prediction: handler preprocess, queue, handler postprocess.
    /// Handler work runs on the blocking pool, off the async runtime.
    ///
    /// # Errors
    /// As [`Self::infer`], plus handler errors.
    pub async fn predict(self, payload: Payload) -> Result<(Prediction, RequestTimings)> {
        let v = &self.version;
        let mut record = Recorder::new(&v.metrics, self.options.request_id.as_deref());
        let result = v.run_handler(payload, &self.options).await;
        match &result {
            Ok((_, timings)) => record.answered(*timings, 1),
            Err(e) => record.failed(e),
        }
        result
    }
}

impl Ticket {
    /// Sends a raw request to a hosted model's handler, through the queue and a worker process.
    ///
    /// # Errors
    /// [`EngineError::InvalidArgument`] for a model that runs in the server,
    /// [`EngineError::Handler`] when the handler failed the request's batch, and as
    /// [`Self::infer`].
    pub async fn forward(self, request: HostedRequest) -> Result<(HostedAnswer, RequestTimings)> {
        let v = &self.version;
        let mut record = Recorder::new(&v.metrics, self.options.request_id.as_deref());
        let result = match &v.runner {
            Runner::Hosted { queue } => v.enqueue(queue, request, &self.options).await,
            Runner::Native { .. } => Err(EngineError::InvalidArgument(format!(
                "model {} runs in the server and takes tensors or predictions, not raw requests",
                v.name
            ))),
        };
        match result {
            Ok(done) => {
                let timings = RequestTimings {
                    queue: done.queue_time,
                    inference: done.inference_time,
                    total: record.started.elapsed(),
                    ..RequestTimings::default()
                };
                record.answered(timings, 1);
                Ok((done.output, timings))
            }
            Err(e) => {
                record.failed(&e);
                Err(e)
            }
        }
    }
}

impl ModelVersion {
    /// [`Self::admit`] then [`Ticket::infer`], for callers that hold the tensors already.
    ///
    /// # Errors
    /// As those two.
    pub async fn infer(
        self: &Arc<Self>,
        inputs: Vec<Tensor>,
        options: &RequestOptions,
    ) -> Result<Done<Vec<Tensor>>> {
        self.admit(options.clone())?.infer(inputs).await
    }

    /// [`Self::admit`] then [`Ticket::predict`], for callers that hold the payload already.
    ///
    /// # Errors
    /// As those two.
    pub async fn predict(
        self: &Arc<Self>,
        payload: Payload,
        options: &RequestOptions,
    ) -> Result<(Prediction, RequestTimings)> {
        self.admit(options.clone())?.predict(payload).await
    }

    async fn submit(
        &self,
        inputs: Vec<Tensor>,
        options: &RequestOptions,
    ) -> Result<Done<Vec<Tensor>>> {
        let Runner::Native { queue, executor, .. } = &self.runner else {
            return Err(self.hosted_only());
        };
        let rows = self.check_inputs(&inputs)?;
        let mut request = Rows { inputs, rows };
        // A request that would leave alone at once anyway may skip the queue (see
        // `NativeExecutor::run_inline`); one behind others waits its turn.
        if queue.policy().sends_lone_request_at_once() && queue.len() == 0 {
            match executor.run_inline(request) {
                Ok((answer, took)) => {
                    self.metrics.record_batch(1, took);
                    return answer.map(|output| Done {
                        output,
                        queue_time: Duration::ZERO,
                        inference_time: took,
                        batch_size: 1,
                    });
                }
                Err(back) => request = back,
            }
        }
        self.enqueue(queue, request, options).await
    }

    /// What a hosted model answers a request for tensors or an in-server handler.
    fn hosted_only(&self) -> EngineError {
        EngineError::InvalidArgument(format!(
            "model {} runs its {} handler in worker processes: send it predictions \
             (POST /predictions/{}), not tensors",
            self.name, self.engine, self.name
        ))
    }

    /// Queues one request and waits for its answer until the deadline.
    async fn enqueue<I, O>(
        &self,
        queue: &JobQueue<I, O>,
        input: I,
        options: &RequestOptions,
    ) -> Result<Done<O>> {
        {
            let pool = self.pool();
            if pool.active() == 0 {
                return Err(EngineError::Unavailable(format!(
                    "model {} has no workers; scale it up with PUT /models/{}?min_worker=1",
                    self.name, self.name
                )));
            }
            if let Some(error) = pool.failure() {
                return Err(EngineError::Unavailable(format!(
                    "model {} cannot run: {}",
                    self.name, error.message
                )));
            }
        }
        let arrived = Instant::now();
        let limit = {
            let settings = lock(&self.settings);
            options.timeout.map_or(settings.response_timeout, |t| t.min(settings.response_timeout))
        };
        let deadline = arrived + limit;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        queue.submit(crate::executor::Job { input, arrived, deadline, reply, span })?;
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(EngineError::Internal("the worker dropped the request".into())),
            Err(_) => Err(EngineError::Timeout(limit)),
        }
    }

    /// Handler work runs inline or on the blocking pool, as its measured cost says ([`Placement`](crate::placement::Placement)).
    async fn run_handler(
        &self,
        payload: Payload,
        options: &RequestOptions,
    ) -> Result<(Prediction, RequestTimings)> {
        let Runner::Native { handler, stages: [pre, post], .. } = &self.runner else {
            return Err(self.hosted_only());
        };
        let handler = Arc::clone(handler);
        let started = Instant::now();
        let prepare = Arc::clone(&handler);
        let bytes = payload.parts.iter().map(|p| p.body.len()).sum();
        let prepared = pre.run(bytes, move || prepare.preprocess(&payload)).await?;
        let preprocess = started.elapsed();
        let done = self.submit(prepared.inputs, options).await?;
        let context = prepared.context;
        let post_started = Instant::now();
        let outputs = done.output;
        // At most 8 bytes an element.
        let bytes = outputs.iter().map(|t| t.data().len() * 8).sum();
        let prediction = post.run(bytes, move || handler.postprocess(outputs, context)).await?;
        let timings = RequestTimings {
            queue: done.queue_time,
            preprocess,
            inference: done.inference_time,
            postprocess: post_started.elapsed(),
            total: started.elapsed(),
        };
        Ok((prediction, timings))
    }

    /// Checks inputs against the signature and returns the number of rows they carry. The one
    /// place a request's tensors are checked, whichever protocol brought them.
    fn check_inputs(&self, inputs: &[Tensor]) -> Result<usize> {
        let specs = &self.signature().inputs;
        if inputs.len() != specs.len() {
            return Err(EngineError::InvalidInput(format!(
                "the model takes {} inputs, got {}",
                specs.len(),
                inputs.len()
            )));
        }
        let mut rows = None;
        for (spec, t) in specs.iter().zip(inputs) {
            if t.dtype() != spec.dtype {
                return Err(EngineError::InvalidInput(format!(
                    "input `{}` must be {}, got {}",
                    spec.name,
                    spec.dtype,
                    t.dtype()
                )));
            }
            spec.check_shape(t.shape())
                .map_err(|e| EngineError::InvalidInput(format!("input `{}`: {e}", spec.name)))?;
            let r = t.rows();
            if *rows.get_or_insert(r) != r {
                return Err(EngineError::InvalidInput(
                    "inputs disagree on the batch dimension".into(),
                ));
            }
        }
        Ok(rows.unwrap_or(1))
    }
}

/// Records how a request ended; a request dropped before it ended (the client went away) counts as
/// cancelled.
pub(super) struct Recorder<'a> {
    metrics: &'a ModelMetrics,
    request_id: Option<&'a str>,
    started: Instant,
    done: bool,
}

impl<'a> Recorder<'a> {
    pub(super) fn new(metrics: &'a ModelMetrics, request_id: Option<&'a str>) -> Self {
        Self { metrics, request_id, started: Instant::now(), done: false }
    }

    fn answered(&mut self, timings: RequestTimings, rows: usize) {
        self.done = true;
        self.metrics.record(Outcome::Ok, Some(&timings), self.request_id);
        self.metrics.stats().answered(&timings, rows);
    }

    pub(super) fn failed(&mut self, err: &EngineError) {
        self.done = true;
        self.metrics.record(err.outcome(), None, self.request_id);
        self.metrics.stats().failed(self.started.elapsed());
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.metrics.record(Outcome::Cancelled, None, self.request_id);
            self.metrics.stats().failed(self.started.elapsed());
        }
    }
}
