//! The in-process executor: a worker owns one engine session; a batch's tensors are stacked along
//! the batch axis, run once, and split back per request.

use std::sync::Arc;
use std::time::Instant;

use oxserve_backend::{BackendError, Device, LoadedModel, Session, Tensor};

use super::{Executor, Ran};
use crate::error::{EngineError, Result};

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
}

impl NativeExecutor {
    pub(crate) fn new(model: Arc<dyn LoadedModel>) -> Self {
        let batchable = model.signature().is_batchable();
        Self { model, batchable }
    }
}

impl Executor for NativeExecutor {
    type Input = Rows;
    type Output = Vec<Tensor>;
    type Worker = Box<dyn Session>;

    fn start(&self, device: Device) -> std::result::Result<(Self::Worker, Device), String> {
        let session = self.model.new_session(device).map_err(|e| e.to_string())?;
        let runs_on = session.device();
        Ok((session, runs_on))
    }

    fn run(&self, session: &mut Self::Worker, batch: Vec<Rows>) -> Ran<Vec<Tensor>> {
        let started = Instant::now();
        let mut answers: Vec<Option<Result<Vec<Tensor>>>> = batch.iter().map(|_| None).collect();
        for group in groups(batch, self.batchable) {
            let (slots, rows): (Vec<usize>, Vec<Rows>) = group.into_iter().unzip();
            for (slot, answer) in slots.into_iter().zip(run_group(session.as_mut(), rows)) {
                answers[slot] = Some(answer);
            }
        }
        let answers = answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(EngineError::Internal("request not run".into()))))
            .collect();
        Ran { answers, took: started.elapsed(), restart: false }
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

/// Stacks, runs and splits one group; one answer per request.
fn run_group(session: &mut dyn Session, mut group: Vec<Rows>) -> Vec<Result<Vec<Tensor>>> {
    let n = group.len();
    let all = |e: EngineError| -> Vec<Result<Vec<Tensor>>> {
        let message = e.to_string();
        let invalid = matches!(e, EngineError::InvalidInput(_));
        (0..n)
            .map(|_| {
                Err(if invalid {
                    EngineError::InvalidInput(message.clone())
                } else {
                    EngineError::Internal(message.clone())
                })
            })
            .collect()
    };
    let counts: Vec<usize> = group.iter().map(|r| r.rows).collect();
    let inputs = if group.len() == 1 {
        std::mem::take(&mut group[0].inputs)
    } else {
        match stack(&group) {
            Ok(inputs) => inputs,
            Err(e) => return all(EngineError::Internal(e.to_string())),
        }
    };
    let outputs = match session.run(inputs) {
        Ok(outputs) => outputs,
        Err(e @ BackendError::InvalidInput { .. }) => {
            return all(EngineError::InvalidInput(e.to_string()));
        }
        Err(e) => return all(EngineError::Internal(e.to_string())),
    };
    match split(outputs, &counts) {
        Ok(parts) => parts.into_iter().map(Ok).collect(),
        Err(e) => all(EngineError::Internal(e.to_string())),
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
