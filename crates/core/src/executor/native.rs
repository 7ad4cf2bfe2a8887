//! The in-process executor: a worker owns one engine session; a batch's tensors are stacked along
//! the batch axis, run once, and split back per request.
//!
//! A worker's session sits in a [`Slot`] that requests may also borrow while the worker waits for
//! work ([`NativeExecutor::run_inline`]): for a model that runs in microseconds, waking a worker
//! thread and then the request's task again costs more than the run itself.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use oxserve_backend::{BackendError, Device, LoadedModel, Session, Tensor};

use super::{Executor, Ran, StartError};
use crate::error::{EngineError, Result};
use crate::placement::Placement;

/// One request's model inputs, in signature order, each with this request's rows first.
#[derive(Debug)]
pub(crate) struct Rows {
    pub(crate) inputs: Vec<Tensor>,
    /// Rows this request contributes to a batch.
    pub(crate) rows: usize,
}

/// Runs a loaded engine model on worker threads, one session each.
#[derive(Debug)]
pub(crate) struct NativeExecutor {
    model: Arc<dyn LoadedModel>,
    /// Whether the model has a dynamic batch axis; without one each request runs alone.
    batchable: bool,
    /// The sessions of the workers that have one.
    slots: Arc<RwLock<Vec<Arc<Slot>>>>,
    /// What running one request alone costs, measured on every such run.
    single: Placement,
}

/// One worker's session, shared with requests that run inline.
struct Slot {
    session: Mutex<Box<dyn Session>>,
    device: Device,
    /// Set when a run panicked: the session may be broken and is made afresh before its next run.
    broken: AtomicBool,
    /// Set while the worker has a batch and waits for its session: requests then leave it to the
    /// worker, which would otherwise lose the lock to them again and again.
    wanted: AtomicBool,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("device", &self.device).finish_non_exhaustive()
    }
}

/// A worker's hold on its slot; the slot stops being lent when the worker lets go of it.
pub(crate) struct Held {
    slot: Arc<Slot>,
    slots: Arc<RwLock<Vec<Arc<Slot>>>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.slots
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|s| !Arc::ptr_eq(s, &self.slot));
    }
}

impl NativeExecutor {
    pub(crate) fn new(model: Arc<dyn LoadedModel>) -> Self {
        let batchable = model.signature().is_batchable();
        Self { model, batchable, slots: Arc::default(), single: Placement::default() }
    }

    /// Runs one request on the session of a worker that is not using it, from the calling
    /// thread, when running one request has been measured to take microseconds. Gives the request
    /// back when that is not so or every session is busy: it then goes through the queue.
    pub(crate) fn run_inline(
        &self,
        rows: Rows,
    ) -> std::result::Result<(Result<Vec<Tensor>>, Duration), Rows> {
        // At most 8 bytes an element: a large input may cost more than the runs measured so far.
        let bytes = rows.inputs.iter().map(|t| t.data().len() * 8).sum();
        if !self.single.cheap(bytes) {
            return Err(rows);
        }
        // Held for the run: a worker that stops meanwhile waits that long to take its slot out.
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        let free = |slot: &Slot| {
            !slot.wanted.load(Ordering::Acquire) && !slot.broken.load(Ordering::Acquire)
        };
        let idle = slots.iter().find_map(|slot| {
            let session = slot.session.try_lock().ok()?;
            free(slot).then_some((slot, session))
        });
        // Every session in use by another request's microseconds: waiting that long for one
        // costs less than the two wake-ups of the queue. A session its worker wants is left to it.
        let taken = idle.or_else(|| {
            let slot = slots.iter().find(|s| free(s))?;
            let session = slot.session.lock().ok()?;
            free(slot).then_some((slot, session))
        });
        let Some((slot, mut session)) = taken else { return Err(rows) };
        let started = Instant::now();
        let answer = catch_unwind(AssertUnwindSafe(|| run_group(session.as_mut(), vec![rows])))
            .map_or_else(
                |_| {
                    slot.broken.store(true, Ordering::Release);
                    Err(EngineError::Internal(
                        "the engine panicked while running this request".into(),
                    ))
                },
                |mut answers| {
                    answers
                        .pop()
                        .unwrap_or_else(|| Err(EngineError::Internal("request not run".into())))
                },
            );
        let took = started.elapsed();
        self.single.record(took);
        Ok((answer, took))
    }
}

impl Executor for NativeExecutor {
    type Input = Rows;
    type Output = Vec<Tensor>;
    type Worker = Held;

    fn start(&self, device: Device) -> std::result::Result<(Self::Worker, Device), StartError> {
        let session =
            self.model.new_session(device).map_err(|e| StartError::from(e.to_string()))?;
        let runs_on = session.device();
        let slot = Arc::new(Slot {
            session: Mutex::new(session),
            device: runs_on,
            broken: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
        });
        self.slots.write().unwrap_or_else(PoisonError::into_inner).push(Arc::clone(&slot));
        Ok((Held { slot, slots: Arc::clone(&self.slots) }, runs_on))
    }

    /// An engine session cannot be stopped half-way, so `until` is not used.
    fn run(&self, held: &mut Self::Worker, batch: Vec<Rows>, _until: Instant) -> Ran<Vec<Tensor>> {
        let started = Instant::now();
        let n = batch.len();
        held.slot.wanted.store(true, Ordering::Release);
        let mut session = held.slot.session.lock().unwrap_or_else(PoisonError::into_inner);
        held.slot.wanted.store(false, Ordering::Release);
        if held.slot.broken.load(Ordering::Acquire) {
            // A request that ran inline panicked in this session: make it afresh.
            match self.model.new_session(held.slot.device) {
                Ok(fresh) => {
                    *session = fresh;
                    held.slot.broken.store(false, Ordering::Release);
                }
                Err(e) => {
                    drop(session);
                    let message = format!("the engine's session could not be made afresh: {e}");
                    let error = || EngineError::Internal(message.clone());
                    return Ran::failed(n, &error, started.elapsed(), true);
                }
            }
        }
        let mut answers: Vec<Option<Result<Vec<Tensor>>>> = batch.iter().map(|_| None).collect();
        for group in groups(batch, self.batchable) {
            let (slots, rows): (Vec<usize>, Vec<Rows>) = group.into_iter().unzip();
            for (slot, answer) in slots.into_iter().zip(run_group(session.as_mut(), rows)) {
                answers[slot] = Some(answer);
            }
        }
        drop(session);
        let answers = answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(EngineError::Internal("request not run".into()))))
            .collect();
        let took = started.elapsed();
        if n == 1 {
            self.single.record(took);
        }
        Ran { answers, took, restart: false }
    }
}

/// Splits a batch into groups that can be stacked: requests whose inputs share trailing
/// dimensions, in the order each shape first appears, each kept with its place in the batch.
/// Requests padded to different widths (text buckets) that arrive interleaved still run as one group
/// per width, not one run per change of width. Models without a dynamic batch axis run one request
/// at a time.
fn groups(batch: Vec<Rows>, batchable: bool) -> Vec<Vec<(usize, Rows)>> {
    let mut groups: Vec<Vec<(usize, Rows)>> = Vec::new();
    for (slot, rows) in batch.into_iter().enumerate() {
        let same = batchable
            .then(|| {
                groups.iter_mut().find(|g| g.first().is_some_and(|(_, f)| same_row_shape(f, &rows)))
            })
            .flatten();
        match same {
            Some(group) => group.push((slot, rows)),
            None => groups.push(vec![(slot, rows)]),
        }
    }
    groups
}

fn same_row_shape(a: &Rows, b: &Rows) -> bool {
    a.inputs.len() == b.inputs.len()
        && a.inputs
            .iter()
            .zip(&b.inputs)
            .all(|(x, y)| x.dtype() == y.dtype() && x.shape().get(1..) == y.shape().get(1..))
}

/// Stacks, runs and splits one group; one answer per request. A failure fails every request of
/// the group with the same error, its sources kept.
fn run_group(session: &mut dyn Session, mut group: Vec<Rows>) -> Vec<Result<Vec<Tensor>>> {
    let n = group.len();
    let all = |e: EngineError| -> Vec<Result<Vec<Tensor>>> {
        let shared = match e {
            EngineError::Backend(b) => b,
            // A refusal of the input is the client's to fix (400), whoever noticed it.
            EngineError::InvalidInput(m) => {
                return (0..n).map(|_| Err(EngineError::InvalidInput(m.clone()))).collect();
            }
            other => Arc::new(BackendError::Output(other.to_string())),
        };
        (0..n).map(|_| Err(EngineError::Backend(Arc::clone(&shared)))).collect()
    };
    let counts: Vec<usize> = group.iter().map(|r| r.rows).collect();
    let inputs = if group.len() == 1 {
        std::mem::take(&mut group[0].inputs)
    } else {
        match stack(&group) {
            Ok(inputs) => inputs,
            Err(e) => return all(e),
        }
    };
    let outputs = match session.run(inputs) {
        Ok(outputs) => outputs,
        Err(e @ BackendError::InvalidInput { .. }) => {
            return all(EngineError::InvalidInput(e.to_string()));
        }
        Err(e) => return all(e.into()),
    };
    match split(outputs, &counts) {
        Ok(parts) => parts.into_iter().map(Ok).collect(),
        Err(e) => all(e),
    }
}

fn stack(group: &[Rows]) -> Result<Vec<Tensor>> {
    let n_inputs = group[0].inputs.len();
    (0..n_inputs)
        .map(|i| {
            let parts: Vec<&Tensor> = group.iter().map(|r| &r.inputs[i]).collect();
            Tensor::concat_rows(&parts).map_err(EngineError::from)
        })
        .collect()
}

/// Splits every output by rows into one output list per request. A single request takes its
/// outputs whole, which also serves models whose outputs have no batch axis.
fn split(outputs: Vec<Tensor>, counts: &[usize]) -> Result<Vec<Vec<Tensor>>> {
    if counts.len() == 1 {
        return Ok(vec![outputs]);
    }
    let mut per_request: Vec<Vec<Tensor>> =
        counts.iter().map(|_| Vec::with_capacity(outputs.len())).collect();
    for output in &outputs {
        for (slot, piece) in per_request.iter_mut().zip(output.split_rows(counts)?) {
            slot.push(piece);
        }
    }
    Ok(per_request)
}

#[cfg(test)]
mod tests {
    use oxserve_backend::{Tensor, TensorData};

    use super::*;

    /// A one-row request whose single input is `width` wide, tagged by its first value.
    fn request(width: usize, tag: f32) -> Rows {
        let mut data = vec![0.0; width];
        data[0] = tag;
        Rows {
            inputs: vec![Tensor::new(vec![1, width], TensorData::F32(data)).expect("valid")],
            rows: 1,
        }
    }

    fn tags(groups: &[Vec<(usize, Rows)>]) -> Vec<Vec<(usize, f32)>> {
        groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|(slot, r)| match r.inputs[0].data() {
                        TensorData::F32(v) => (*slot, v[0]),
                        _ => unreachable!("f32 test requests"),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn interleaved_widths_form_one_group_per_width_in_arrival_order() {
        let batch = vec![
            request(16, 1.0),
            request(32, 2.0),
            request(16, 3.0),
            request(32, 4.0),
            request(16, 5.0),
        ];
        let groups = groups(batch, true);
        assert_eq!(tags(&groups), [vec![(0, 1.0), (2, 3.0), (4, 5.0)], vec![(1, 2.0), (3, 4.0)]]);
    }

    #[test]
    fn a_model_without_a_batch_axis_runs_each_request_alone() {
        let groups = groups(vec![request(16, 1.0), request(16, 2.0)], false);
        assert_eq!(tags(&groups), [vec![(0, 1.0)], vec![(1, 2.0)]]);
    }
}
