//! `text_classifier`: TorchServe's text classification handler, batched.
//!
//! Each text is answered as `{"label": probability, …}`, most likely first, with labels from the
//! archive's `index_to_name.json` (class indices as strings without one). TorchServe's version
//! answers every class; `top_k` keeps the best k. The model's first float output (or the one
//! `output` names) holds logits `[texts, classes]`; `softmax: false` for a model whose output is
//! already probabilities.

use std::any::Any;
use std::collections::BTreeMap;

use bytes::Bytes;
use oxserve_backend::{DType, Tensor};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{DEFAULT_MAX_TEXTS, Settings, TextEncoder, floats, read_request};
use oxserve_core::handler::{Handler, HandlerContext, Payload, Prediction, Prepared};
use oxserve_core::{EngineError, Result};

/// See the module docs.
#[derive(Debug)]
pub struct TextClassifier {
    encoder: TextEncoder,
    /// Class index → name, from `index_to_name.json`.
    labels: BTreeMap<usize, String>,
    top_k: Option<usize>,
    softmax: bool,
    output: usize,
    max_texts: usize,
}

/// What postprocess needs to know about the request.
struct Shape {
    list: bool,
}

impl TextClassifier {
    /// Initialises from the model folder and settings (`top_k`, `softmax`, `output`, `max_texts`,
    /// and the [`TextEncoder`] ones).
    ///
    /// # Errors
    /// A message for the model-load error.
    pub fn new(ctx: &HandlerContext<'_>) -> std::result::Result<Self, String> {
        let settings = Settings::new(ctx.config);
        let encoder = TextEncoder::new(ctx.model_dir, ctx.signature, &settings)?;
        let output = match settings.string("output")? {
            Some(name) => ctx
                .signature
                .outputs
                .iter()
                .position(|o| o.name == name)
                .ok_or_else(|| format!("the model has no output `{name}`"))?,
            None => ctx
                .signature
                .outputs
                .iter()
                .position(|o| matches!(o.dtype, DType::F32 | DType::F64 | DType::F16))
                .ok_or("the model has no float output to read class scores from")?,
        };
        Ok(Self {
            encoder,
            labels: read_labels(ctx.model_dir)?,
            top_k: settings.usize("top_k")?.filter(|k| *k > 0),
            softmax: settings.bool("softmax")?.unwrap_or(true),
            output,
            max_texts: settings.usize("max_texts")?.unwrap_or(DEFAULT_MAX_TEXTS).max(1),
        })
    }

    fn scores(&self, row: &[f32]) -> Vec<(String, f32)> {
        let probs = if self.softmax { softmax(row) } else { row.to_vec() };
        let mut scored: Vec<(String, f32)> = probs
            .into_iter()
            .enumerate()
            .map(|(i, p)| (self.labels.get(&i).cloned().unwrap_or_else(|| i.to_string()), p))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        if let Some(k) = self.top_k {
            scored.truncate(k);
        }
        scored
    }
}

impl Handler for TextClassifier {
    fn preprocess(&self, payload: &Payload) -> Result<Prepared> {
        let request = read_request(payload, self.max_texts)?;
        let encoded = self.encoder.encode(&request.texts)?;
        Ok(Prepared { inputs: encoded.inputs, context: Box::new(Shape { list: request.list }) })
    }

    fn postprocess(
        &self,
        outputs: Vec<Tensor>,
        context: Box<dyn Any + Send>,
    ) -> Result<Prediction> {
        let shape = oxserve_core::handler::own_context::<Shape>(context, "text_classifier")?;
        let logits = outputs
            .get(self.output)
            .ok_or_else(|| EngineError::Internal("the model returned too few outputs".into()))?;
        let [rows, classes] = logits.shape() else {
            return Err(EngineError::Internal(format!(
                "expected class scores [texts, classes], got shape {:?}",
                logits.shape()
            )));
        };
        let values = floats(logits)?;
        let answers: Vec<Scores> = (0..*rows)
            .map(|r| Scores(self.scores(&values[r * classes..(r + 1) * classes])))
            .collect();
        let body = if shape.list || answers.len() != 1 {
            serde_json::to_vec(&answers)
        } else {
            serde_json::to_vec(&answers[0])
        }
        .map_err(|e| EngineError::Internal(format!("cannot render the answer: {e}")))?;
        Ok(Prediction { body: Bytes::from(body), content_type: "application/json".into() })
    }
}

/// Label → probability, in the order given (a JSON object keeps it; a map type would sort by key).
struct Scores(Vec<(String, f32)>);

impl Serialize for Scores {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (label, p) in &self.0 {
            map.serialize_entry(label, p)?;
        }
        map.end()
    }
}

/// Numerically stable softmax.
fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = row.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// `index_to_name.json`: `{"0": "name", …}`, or TorchServe's `{"0": ["id", "name"]}` form (the
/// last element is the name). Absent: no labels.
fn read_labels(dir: &std::path::Path) -> std::result::Result<BTreeMap<usize, String>, String> {
    let path = dir.join("index_to_name.json");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(BTreeMap::new()) };
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a JSON object: {e}", path.display()))?;
    map.into_iter()
        .map(|(k, v)| {
            let index: usize = k
                .parse()
                .map_err(|_| format!("{}: key `{k}` is not a class index", path.display()))?;
            let name = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Array(parts) => match parts.last() {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    _ => return Err(format!("{}: class {k} has no name", path.display())),
                },
                other => other.to_string(),
            };
            Ok((index, name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::softmax;

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let p = softmax(&[1000.0, 1000.0, 998.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - p[1]).abs() < 1e-7 && p[2] < p[0]);
    }
}
