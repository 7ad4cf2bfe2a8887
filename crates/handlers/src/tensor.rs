//! The raw-tensor handler: JSON lists in, JSON lists out.
//!
//! Accepted bodies, for a model whose input `input` is `[-1, 64]`:
//! - a nested list: one row `[…64]`, or several `[[…64], …]`;
//! - `{"data": …}` holding either of those;
//! - `{"instances": [row, row, …]}` (KServe v1 / TF Serving), answered as `{"predictions": […]}`;
//! - for models with several inputs, an object keyed by input name, at the top level, under `data`,
//!   or as each instance.
//!
//! A single row gets the batch dimension added and is answered without it; a batch is answered as a
//! list with one entry per row. A model with several outputs is answered with an object keyed by
//! output name (one per row).

use std::any::Any;

use bytes::Bytes;
use oxserve_backend::{Signature, Tensor, TensorSpec};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

use oxserve_backend::json::{NestedJson, tensor_from_nested};
use oxserve_core::handler::{Handler, Payload, Prediction, Prepared};
use oxserve_core::{EngineError, Result};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct TensorHandler {
    signature: Signature,
}

/// How the request was shaped, so the answer can be shaped the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// One row without a batch dimension.
    Single,
    /// Rows with a batch dimension.
    Batch,
    /// `{"instances": …}`.
    Instances,
}

impl TensorHandler {
    /// A handler for a model with this signature.
    pub fn new(signature: Signature) -> Self {
        Self { signature }
    }

    /// Splits a value into one entry per model input.
    fn per_input<'a>(&self, value: &'a Value) -> Result<Vec<&'a Value>> {
        let inputs = &self.signature.inputs;
        if let Value::Object(map) = value {
            if inputs.iter().all(|s| map.contains_key(&s.name)) {
                if let Some(extra) = map.keys().find(|k| self.signature.input(k).is_none()) {
                    return Err(invalid(format!(
                        "unknown input `{extra}`; the model takes {}",
                        names(inputs)
                    )));
                }
                return Ok(inputs.iter().map(|s| &map[&s.name]).collect());
            }
            return Err(invalid(format!(
                "expected a list, or an object with the model's inputs ({}), or `data` or `instances`",
                names(inputs)
            )));
        }
        if inputs.len() != 1 {
            return Err(invalid(format!(
                "the model takes {} inputs ({}); send an object keyed by input name",
                inputs.len(),
                names(inputs)
            )));
        }
        Ok(vec![value])
    }

    /// Parses one input; returns the tensor with a batch dimension and whether one was added.
    fn parse_input(spec: &TensorSpec, value: &Value, single_row: bool) -> Result<(Tensor, bool)> {
        let tensor = tensor_from_nested(value, spec.dtype)
            .map_err(|e| invalid(format!("input `{}`: {e}", spec.name)))?;
        let rank = tensor.shape().len();
        let added = single_row || rank + 1 == spec.shape.len();
        let tensor = if added {
            let mut shape = Vec::with_capacity(rank + 1);
            shape.push(1);
            shape.extend_from_slice(tensor.shape());
            let (_, data) = tensor.into_parts();
            Tensor::new(shape, data).map_err(EngineError::from)?
        } else {
            tensor
        };
        spec.check_shape(tensor.shape()).map_err(|e| {
            invalid(format!(
                "input `{}`: {e}; send one row of shape {} or a batch of shape {}",
                spec.name,
                row_shape(spec),
                spec.shape_string()
            ))
        })?;
        Ok((tensor, added))
    }

    fn parse_rows(&self, value: &Value) -> Result<(Vec<Tensor>, Form)> {
        let mut tensors = Vec::with_capacity(self.signature.inputs.len());
        let mut single = None;
        for (spec, v) in self.signature.inputs.iter().zip(self.per_input(value)?) {
            let (t, added) = Self::parse_input(spec, v, false)?;
            if *single.get_or_insert(added) != added {
                return Err(invalid("send every input as one row, or every input as a batch"));
            }
            tensors.push(t);
        }
        let form = if single == Some(true) { Form::Single } else { Form::Batch };
        Ok((tensors, form))
    }

    fn parse_instances(&self, instances: &[Value]) -> Result<Vec<Tensor>> {
        if instances.is_empty() {
            return Err(invalid("`instances` is empty"));
        }
        let mut columns: Vec<Vec<Tensor>> =
            vec![Vec::with_capacity(instances.len()); self.signature.inputs.len()];
        for (i, instance) in instances.iter().enumerate() {
            for ((spec, v), column) in
                self.signature.inputs.iter().zip(self.per_input(instance)?).zip(&mut columns)
            {
                let (t, _) = Self::parse_input(spec, v, true)
                    .map_err(|e| invalid(format!("instance {i}: {e}")))?;
                column.push(t);
            }
        }
        columns
            .iter()
            .map(|col| {
                Tensor::concat_rows(&col.iter().collect::<Vec<_>>()).map_err(EngineError::from)
            })
            .collect()
    }
}

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::InvalidInput(message.into())
}

fn names(specs: &[TensorSpec]) -> String {
    specs.iter().map(|s| format!("`{}`", s.name)).collect::<Vec<_>>().join(", ")
}

fn row_shape(spec: &TensorSpec) -> String {
    let dims: Vec<String> = spec.shape.iter().skip(1).map(|d| d.as_i64().to_string()).collect();
    format!("[{}]", dims.join(", "))
}

impl Handler for TensorHandler {
    fn preprocess(&self, payload: &Payload) -> Result<Prepared> {
        let part = payload.main_part().ok_or_else(|| invalid("the request has no body"))?;
        let value: Value = serde_json::from_slice(&part.body)
            .map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
        let (inputs, form) = match &value {
            Value::Object(map) if map.contains_key("instances") => match &map["instances"] {
                Value::Array(items) => (self.parse_instances(items)?, Form::Instances),
                _ => return Err(invalid("`instances` must be a list")),
            },
            Value::Object(map)
                if map.contains_key("data") && self.signature.input("data").is_none() =>
            {
                self.parse_rows(&map["data"])?
            }
            other => self.parse_rows(other)?,
        };
        let rows = inputs.first().map_or(0, Tensor::rows);
        if rows == 0 {
            return Err(invalid("the request holds no rows"));
        }
        if let Some(t) = inputs.iter().find(|t| t.rows() != rows) {
            return Err(invalid(format!(
                "inputs disagree on the number of rows ({rows} and {})",
                t.rows()
            )));
        }
        Ok(Prepared { inputs, context: Box::new(form) })
    }

    fn postprocess(
        &self,
        outputs: Vec<Tensor>,
        context: Box<dyn Any + Send>,
    ) -> Result<Prediction> {
        let form = context.downcast_ref::<Form>().copied().unwrap_or(Form::Batch);
        let answer = Answer { names: &self.signature.outputs, outputs: &outputs };
        let body = match form {
            Form::Single => serde_json::to_vec(&answer.row(0)),
            Form::Batch => serde_json::to_vec(&answer),
            Form::Instances => serde_json::to_vec(&Predictions(answer)),
        }
        .map_err(|e| EngineError::Internal(format!("cannot write the answer: {e}")))?;
        Ok(Prediction { body: Bytes::from(body), content_type: "application/json".into() })
    }
}

/// A request's outputs, written one entry per row.
#[derive(Clone, Copy)]
struct Answer<'a> {
    names: &'a [TensorSpec],
    outputs: &'a [Tensor],
}

impl<'a> Answer<'a> {
    fn rows(&self) -> usize {
        self.outputs.first().map_or(0, Tensor::rows)
    }

    fn row(self, i: usize) -> RowAnswer<'a> {
        RowAnswer { answer: self, row: i }
    }
}

/// One row of the outputs: the single output's row, or an object of every output's row.
struct RowAnswer<'a> {
    answer: Answer<'a>,
    row: usize,
}

/// A tensor's row `i`, or the whole tensor when its rows do not line up with the request's.
fn row_of(t: &Tensor, i: usize, rows: usize) -> NestedJson<'_> {
    if t.shape().is_empty() || t.rows() != rows {
        NestedJson::new(t)
    } else {
        NestedJson::row(t, i)
    }
}

impl Serialize for RowAnswer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let rows = self.answer.rows();
        if let [only] = self.answer.outputs {
            return row_of(only, self.row, rows).serialize(s);
        }
        let mut map = s.serialize_map(Some(self.answer.outputs.len()))?;
        for (spec, t) in self.answer.names.iter().zip(self.answer.outputs) {
            map.serialize_entry(&spec.name, &row_of(t, self.row, rows))?;
        }
        map.end()
    }
}

impl Serialize for Answer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let rows = self.rows();
        let mut seq = s.serialize_seq(Some(rows))?;
        for i in 0..rows {
            seq.serialize_element(&self.row(i))?;
        }
        seq.end()
    }
}

struct Predictions<'a>(Answer<'a>);

impl Serialize for Predictions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("predictions", &self.0)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxserve_backend::{DType, Dim, TensorData};
    use oxserve_core::handler::Part;

    fn spec(name: &str, dtype: DType, shape: &[Dim]) -> TensorSpec {
        TensorSpec { name: name.into(), dtype, shape: shape.to_vec() }
    }

    fn handler(inputs: Vec<TensorSpec>, outputs: Vec<TensorSpec>) -> TensorHandler {
        TensorHandler::new(Signature { inputs, outputs })
    }

    fn mlp() -> TensorHandler {
        handler(
            vec![spec("input", DType::F32, &[Dim::Dynamic, Dim::Fixed(2)])],
            vec![spec("output", DType::F32, &[Dim::Dynamic, Dim::Fixed(1)])],
        )
    }

    fn payload(body: &str) -> Payload {
        Payload {
            parts: vec![Part {
                name: "body".into(),
                content_type: None,
                body: Bytes::from(body.to_owned()),
            }],
        }
    }

    fn answer(h: &TensorHandler, body: &str, out: Tensor) -> String {
        let p = h.preprocess(&payload(body)).unwrap();
        let pred = h.postprocess(vec![out], p.context).unwrap();
        String::from_utf8(pred.body.to_vec()).unwrap()
    }

    fn col(values: &[f32]) -> Tensor {
        Tensor::new(vec![values.len(), 1], TensorData::F32(values.to_vec())).unwrap()
    }

    #[test]
    fn single_row_gets_a_batch_dimension_and_loses_it_in_the_answer() {
        let h = mlp();
        let p = h.preprocess(&payload("[1, 2]")).unwrap();
        assert_eq!(p.inputs[0].shape(), &[1, 2]);
        assert_eq!(answer(&h, "[1, 2]", col(&[0.5])), "[0.5]");
        assert_eq!(answer(&h, r#"{"data": [1, 2]}"#, col(&[0.5])), "[0.5]");
    }

    #[test]
    fn batches_and_instances_answer_per_row() {
        let h = mlp();
        assert_eq!(answer(&h, "[[1, 2], [3, 4]]", col(&[0.5, 1.5])), "[[0.5],[1.5]]");
        assert_eq!(
            answer(&h, r#"{"instances": [[1, 2], [3, 4]]}"#, col(&[0.5, 1.5])),
            r#"{"predictions":[[0.5],[1.5]]}"#
        );
    }

    #[test]
    fn several_outputs_answer_with_an_object() {
        let h = handler(
            vec![spec("input", DType::F32, &[Dim::Dynamic, Dim::Fixed(2)])],
            vec![
                spec("label", DType::I64, &[Dim::Dynamic]),
                spec("probabilities", DType::F32, &[Dim::Dynamic, Dim::Fixed(2)]),
            ],
        );
        let p = h.preprocess(&payload("[1, 2]")).unwrap();
        let label = Tensor::new(vec![1], TensorData::I64(vec![1])).unwrap();
        let probs = Tensor::new(vec![1, 2], TensorData::F32(vec![0.25, 0.75])).unwrap();
        let pred = h.postprocess(vec![label, probs], p.context).unwrap();
        assert_eq!(pred.body, r#"{"label":1,"probabilities":[0.25,0.75]}"#);
    }

    #[test]
    fn several_inputs_are_keyed_by_name() {
        let h = handler(
            vec![
                spec("x", DType::I64, &[Dim::Dynamic, Dim::Fixed(2)]),
                spec("y", DType::F32, &[Dim::Dynamic, Dim::Fixed(2)]),
            ],
            vec![spec("sum", DType::F32, &[Dim::Dynamic, Dim::Fixed(2)])],
        );
        let p = h.preprocess(&payload(r#"{"x": [1, 2], "y": [0.5, 0.5]}"#)).unwrap();
        assert_eq!(p.inputs[0].dtype(), DType::I64);
        assert_eq!(p.inputs[1].shape(), &[1, 2]);
        assert!(h.preprocess(&payload("[1, 2]")).is_err());
        assert!(h.preprocess(&payload(r#"{"x": [1, 2], "y": [0.5, 0.5], "z": 1}"#)).is_err());
    }

    #[test]
    fn bad_bodies_are_invalid_input() {
        let h = mlp();
        for body in [
            "not json",
            "[1, 2, 3]",
            "[[1, 2], [3]]",
            r#"{"instances": []}"#,
            r#"["a", "b"]"#,
            "[]",
            r#"{"other": 1}"#,
        ] {
            let err = h.preprocess(&payload(body)).unwrap_err();
            assert!(matches!(err, EngineError::InvalidInput(_)), "{body}: {err:?}");
        }
        assert!(h.preprocess(&Payload::default()).is_err());
    }
}
