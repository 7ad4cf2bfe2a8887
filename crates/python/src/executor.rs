//! The executor of a model version on Python workers: starts a worker process per pool worker,
//! loads the model into it, and runs each batch as one INFER message.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use oxserve_backend::Device;
use oxserve_core::EngineError;
use oxserve_core::executor::{Executor, Ran, StartError};
use oxserve_core::hosted::{HostedAnswer, HostedRequest, HostedWorker};

use crate::otf::{self, Load, ReadError, Reply, WireRequest};
use crate::process::{Launch, Process, was_killed};

/// Runs one model version's batches on Python workers.
#[derive(Debug)]
pub(crate) struct PythonExecutor {
    pub(crate) launch: Launch,
    /// The manifest's handler, as the worker's LOAD takes it.
    pub(crate) handler: String,
    pub(crate) envelope: String,
    pub(crate) batch_size: usize,
    /// How long one batch may take (`responseTimeout`); past it the worker is killed and restarted.
    pub(crate) response_timeout: Duration,
    pub(crate) max_response_size: usize,
}

impl PythonExecutor {
    fn load(&self, process: &mut Process, device: Device) -> Result<(), StartError> {
        let gpu = match device {
            Device::Cpu => None,
            Device::Gpu(id) => Some(id),
        };
        let message = otf::encode_load(&Load {
            model_name: &self.launch.model,
            model_path: &self.launch.model_dir.to_string_lossy(),
            batch_size: self.batch_size,
            handler: &self.handler,
            gpu,
            envelope: &self.envelope,
            limit_max_image_pixels: true,
        });
        process.send(&message).map_err(|e| format!("cannot send the model to the worker: {e}"))?;
        match process.read_reply(Instant::now() + self.launch.start_timeout, self.max_response_size)
        {
            Ok(Reply { code: 200, .. }) => Ok(()),
            // TorchServe's load codes: 507 out of memory, 500 any other failure.
            Ok(Reply { code, message, .. }) => Err(StartError {
                status: u16::try_from(code).unwrap_or(500),
                message: format!("the handler failed to load ({code}: {message})"),
            }),
            Err(ReadError::Io(e)) if is_timeout(&e) => Err(format!(
                "the handler did not load within {:?}{}",
                self.launch.start_timeout,
                process.last_words()
            )
            .into()),
            Err(e) => {
                let status = process.exit_status();
                let how = status.map_or_else(String::new, |s| format!(" ({s})"));
                Err(format!(
                    "the Python worker exited while loading the handler{how}: {e}{}",
                    process.last_words()
                )
                .into())
            }
        }
    }

    /// Fails every request still waiting: the worker broke, so it is killed and started afresh.
    fn broken(
        process: &mut Process,
        answers: &mut [Option<Result<HostedAnswer, EngineError>>],
        error: &dyn Fn() -> EngineError,
    ) {
        process.kill();
        for slot in answers.iter_mut().filter(|a| a.is_none()) {
            *slot = Some(Err(error()));
        }
    }
}

impl Executor for PythonExecutor {
    type Input = HostedRequest;
    type Output = HostedAnswer;
    type Worker = HostedWorker;

    fn start(&self, device: Device) -> Result<(HostedWorker, Device), StartError> {
        let mut process = Process::start(&self.launch)?;
        self.load(&mut process, device)?;
        tracing::info!(model = %self.launch.model, pid = process.pid(), "Python worker loaded the model");
        Ok((Box::new(process), device))
    }

    fn pid(&self, worker: &HostedWorker) -> Option<u32> {
        worker.downcast_ref::<Process>().map(Process::pid)
    }

    fn run(
        &self,
        worker: &mut HostedWorker,
        batch: Vec<HostedRequest>,
        until: Instant,
    ) -> Ran<HostedAnswer> {
        let started = Instant::now();
        let n = batch.len();
        let Some(process) = worker.downcast_mut::<Process>() else {
            let e = || EngineError::Internal("a Python model's worker is not a process".into());
            return Ran::failed(n, &e, started.elapsed(), true);
        };
        // Ids unique within the batch: the client's request id, made unique when two repeat it.
        let mut ids: Vec<String> = Vec::with_capacity(n);
        for (i, r) in batch.iter().enumerate() {
            let id = if ids.contains(&r.id) { format!("{}#{i}", r.id) } else { r.id.clone() };
            ids.push(id);
        }
        let slot: HashMap<&str, usize> =
            ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        let wire: Vec<WireRequest<'_>> = batch
            .iter()
            .zip(&ids)
            .map(|(r, id)| WireRequest { id, headers: &r.headers, params: &r.params })
            .collect();
        let mut answers: Vec<Option<Result<HostedAnswer, EngineError>>> =
            (0..n).map(|_| None).collect();
        if let Err(e) = process.send(&otf::encode_infer(&wire)) {
            let status = process.exit_status();
            let died = died(status, &e.to_string());
            Self::broken(process, &mut answers, &died);
            return finish(answers, started, true);
        }
        // Given up (worker killed) when nobody waits any more, or past responseTimeout.
        let deadline = until.min(started + self.response_timeout);
        // Requests whose last part the worker has not sent yet: its replies are read to the end
        // even for a request already answered with an error, so none is left for the next batch.
        let mut open = vec![true; n];
        // Requests whose intermediate parts are no longer passed on (the client left or stalled).
        let mut dropped = vec![false; n];
        while open.iter().any(|o| *o) {
            let reply = match process.read_reply(deadline, self.max_response_size) {
                Ok(reply) => reply,
                Err(ReadError::Io(e)) if is_timeout(&e) => {
                    tracing::warn!(model = %self.launch.model, pid = process.pid(), timeout = ?self.response_timeout, "the Python worker took too long; it is killed and restarted");
                    let timeout = self.response_timeout;
                    Self::broken(process, &mut answers, &|| EngineError::Timeout(timeout));
                    return finish(answers, started, true);
                }
                Err(e) => {
                    let status = process.exit_status();
                    let died = died(status, &e.to_string());
                    Self::broken(process, &mut answers, &died);
                    return finish(answers, started, true);
                }
            };
            if reply.code != 200 {
                // The whole batch failed in the handler (TorchServe's codes: 507 out of memory,
                // 503 prediction failed, or the handler's own PredictionException code).
                let status = u16::try_from(reply.code).unwrap_or(500);
                for a in answers.iter_mut().filter(|a| a.is_none()) {
                    *a = Some(Err(EngineError::Handler { status, message: reply.message.clone() }));
                }
                break;
            }

            for p in reply.predictions {
                let Some(&i) = slot.get(p.request_id.as_str()) else {
                    tracing::warn!(model = %self.launch.model, id = %p.request_id, "the Python worker answered a request it was not sent");
                    continue;
                };
                let more = p.streams_on();
                let answer = HostedAnswer {
                    status: u16::try_from(p.status).unwrap_or(500),
                    reason: p.reason,
                    content_type: p.content_type,
                    headers: p.headers.into_iter().filter(|(k, _)| k != "ts_stream_next").collect(),
                    body: Bytes::from(p.body),
                };
                if !more {
                    open[i] = false;
                    if answers[i].is_none() {
                        answers[i] = Some(Ok(answer));
                    }
                } else if let Some(stream) = batch[i].stream.as_ref().filter(|_| !dropped[i]) {
                    match pass_on(stream, answer, deadline) {
                        Passed::Yes => {}
                        Passed::ClientLeft => dropped[i] = true,
                        Passed::Stalled => {
                            // The client reads nothing: the worker does not wait on it past the
                            // request's deadline. Its stream ends with the error, not cut short
                            // as if complete; the worker's further parts are read and dropped.
                            tracing::warn!(model = %self.launch.model, id = %ids[i], "a streaming client stopped reading; its answer is abandoned");
                            dropped[i] = true;
                            answers[i] = Some(Err(EngineError::Timeout(self.response_timeout)));
                        }
                    }
                }
            }
        }
        finish(answers, started, false)
    }
}

/// How an intermediate answer fared.
enum Passed {
    Yes,
    /// Nobody reads the stream any more.
    ClientLeft,
    /// The client's buffer stayed full until the deadline.
    Stalled,
}

/// Passes an intermediate answer to the client's stream, waiting while its buffer is full (the
/// client reads slowly), but not past `deadline`.
fn pass_on(
    stream: &tokio::sync::mpsc::Sender<HostedAnswer>,
    mut answer: HostedAnswer,
    deadline: Instant,
) -> Passed {
    use tokio::sync::mpsc::error::TrySendError;
    let mut pause = Duration::from_micros(100);
    loop {
        match stream.try_send(answer) {
            Ok(()) => return Passed::Yes,
            Err(TrySendError::Closed(_)) => return Passed::ClientLeft,
            Err(TrySendError::Full(back)) => answer = back,
        }
        if Instant::now() >= deadline {
            return Passed::Stalled;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn finish(
    answers: Vec<Option<Result<HostedAnswer, EngineError>>>,
    started: Instant,
    restart: bool,
) -> Ran<HostedAnswer> {
    let answers = answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| Err(EngineError::Internal("the worker gave no answer".into())))
        })
        .collect();
    Ran { answers, took: started.elapsed(), restart }
}

/// The error of every request in flight when a worker died: 507 when it was killed (out of
/// memory, most often), else 500, as TorchServe answers.
fn died(
    status: Option<std::process::ExitStatus>,
    detail: &str,
) -> impl Fn() -> EngineError + use<> {
    let killed = was_killed(status);
    let how = status.map_or_else(|| detail.to_owned(), |s| s.to_string());
    move || EngineError::Handler {
        status: if killed { 507 } else { 500 },
        message: if killed {
            format!("Worker died ({how}; killed, perhaps out of memory).")
        } else {
            format!("Worker died ({how}).")
        },
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}
