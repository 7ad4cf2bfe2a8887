//! TorchServe's default vision handlers, natively: `image_classifier`, `object_detector` and
//! `image_segmenter`.
//!
//! Each request's items (see [`crate::input`]) are image files: raw bytes, base64 strings, multipart
//! parts. They are decoded under limits checked *before* pixels are allocated ([`decode`]), turned
//! into one float tensor row each by a configurable pipeline ([`pipeline`]), and the model's rows
//! come back as TorchServe's answers. A request of several images (a JSON list, several parts) is
//! answered with a list, one entry per image, in order; a request of one image with that image's
//! answer alone, as TorchServe answers each request.
//!
//! Configuration comes from the `handler:` map of `model-config.yaml` (unknown keys there are a
//! load error, so a typo does not silently fall back to a default); see the README section
//! "Handlers" for every key.

use std::collections::BTreeMap;
use std::path::Path;

use oxserve_backend::{Tensor, TensorData};
use serde_json::{Map, Value};

use oxserve_core::handler::HandlerContext;
use oxserve_core::{EngineError, Result};

mod classifier;
pub mod decode;
mod detector;
pub mod pipeline;
mod segmenter;

pub use classifier::ImageClassifier;
pub use detector::ObjectDetector;
pub use segmenter::ImageSegmenter;

/// The `handler:` map of model-config.yaml, with each read key remembered so that leftovers can be
/// reported as unknown.
#[derive(Debug)]
pub(crate) struct Options<'a> {
    map: Option<&'a Map<String, Value>>,
    used: std::cell::RefCell<Vec<&'static str>>,
}

impl<'a> Options<'a> {
    /// The options of a model.
    ///
    /// # Errors
    /// When `handler` is present but not a map.
    pub(crate) fn new(ctx: &HandlerContext<'a>) -> std::result::Result<Self, String> {
        let map = match ctx.config.get("handler") {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(other) => {
                return Err(format!("model-config.yaml `handler` must be a map, got {other}"));
            }
        };
        Ok(Self { map, used: std::cell::RefCell::default() })
    }

    /// The raw value of a key (`None` when absent or null).
    pub(crate) fn get(&self, key: &'static str) -> Option<&'a Value> {
        self.used.borrow_mut().push(key);
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    pub(crate) fn f64(&self, key: &'static str, default: f64) -> std::result::Result<f64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| format!("handler.{key} must be a number, got {v}")),
        }
    }

    pub(crate) fn u64(&self, key: &'static str, default: u64) -> std::result::Result<u64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| format!("handler.{key} must be a whole number >= 0, got {v}")),
        }
    }

    pub(crate) fn bool(
        &self,
        key: &'static str,
        default: bool,
    ) -> std::result::Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => {
                v.as_bool().ok_or_else(|| format!("handler.{key} must be true or false, got {v}"))
            }
        }
    }

    pub(crate) fn string(&self, key: &'static str) -> std::result::Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_ascii_lowercase())),
            Some(v) => Err(format!("handler.{key} must be a string, got {v}")),
        }
    }

    /// Fails on keys nobody read: call after every option was read.
    pub(crate) fn finish(self, handler: &str) -> std::result::Result<(), String> {
        let Some(map) = self.map else { return Ok(()) };
        let used = self.used.borrow();
        let unknown: Vec<&str> =
            map.keys().map(String::as_str).filter(|k| !used.contains(k)).collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let mut known: Vec<&str> = used.clone();
        known.sort_unstable();
        known.dedup();
        Err(format!(
            "unknown key(s) under `handler` in model-config.yaml for {handler}: {}; known keys: {}",
            unknown.join(", "),
            known.join(", ")
        ))
    }
}

/// Class names from the archive's `index_to_name.json`: TorchServe's `{"0": ["n01440764",
/// "tench"]}` (the last string is the name) or plain `{"0": "tench"}`. Without the file, classes
/// are named by their index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Labels(BTreeMap<usize, String>);

impl Labels {
    /// Reads `index_to_name.json` from the model folder when present.
    ///
    /// # Errors
    /// When the file exists but is not in either format.
    pub(crate) fn load(model_dir: &Path) -> std::result::Result<Self, String> {
        let path = model_dir.join("index_to_name.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let bad = |why: String| format!("{} {why}", path.display());
        let value: Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("is not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(bad("must be an object of class index to name".into()));
        };
        let mut labels = BTreeMap::new();
        for (key, value) in map {
            let index: usize =
                key.trim().parse().map_err(|_| bad(format!("has a non-numeric key `{key}`")))?;
            let name = match &value {
                Value::String(s) => s.clone(),
                Value::Array(list) => match list.last() {
                    Some(Value::String(s)) => s.clone(),
                    _ => return Err(bad(format!("entry `{key}` must end with a string name"))),
                },
                _ => return Err(bad(format!("entry `{key}` must be a name or [id, name]"))),
            };
            labels.insert(index, name);
        }
        Ok(Self(labels))
    }

    /// The name of class `index`, else the index itself.
    pub(crate) fn name(&self, index: usize) -> String {
        self.0.get(&index).cloned().unwrap_or_else(|| index.to_string())
    }
}

/// The values of an output tensor as `f32`, whatever its float or integer type.
pub(crate) fn floats(tensor: &Tensor) -> Result<Vec<f32>> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let out = match tensor.data() {
        TensorData::F32(v) => v.clone(),
        TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        TensorData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as f32).collect(),
        TensorData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
        other => {
            return Err(EngineError::Internal(format!(
                "the model answered {} where numbers were expected",
                other.dtype()
            )));
        }
    };
    Ok(out)
}

/// Softmax of one row, computed stably (max subtracted first).
pub(crate) fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    if sum > 0.0 {
        for x in row.iter_mut() {
            *x /= sum;
        }
    }
}

/// The images of one request, preprocessed into one tensor, with what postprocess needs.
#[derive(Debug)]
pub(crate) struct Images {
    /// `[n, …]` float rows, one per image.
    pub tensor: Tensor,
    /// Per image: how row coordinates map back to it.
    pub geometry: Vec<pipeline::Geometry>,
    /// Whether to answer with a list (several images) or one image's answer.
    pub list: bool,
}

/// What the classifier and segmenter carry from preprocess to postprocess: whether the request
/// sent several images (answered with a list) or one (answered alone).
#[derive(Debug)]
pub(crate) struct ListContext {
    pub(crate) list: bool,
}

impl Images {
    /// The batch tensor as the model's only input, remembering whether to answer with a list.
    pub(crate) fn into_prepared(self) -> oxserve_core::handler::Prepared {
        oxserve_core::handler::Prepared {
            inputs: vec![self.tensor],
            context: Box::new(ListContext { list: self.list }),
        }
    }
}

/// Splits a request into image files and runs the pipeline on each.
///
/// # Errors
/// [`EngineError::InvalidInput`] for a request that holds no image, an item that is not an image,
/// or images of different sizes when the pipeline does not fix one.
pub(crate) fn prepare(
    pipeline: &pipeline::Pipeline,
    payload: &oxserve_core::handler::Payload,
) -> Result<Images> {
    let items = crate::input::items(payload, crate::input::Want::Binary)?;
    let list = items.len() > 1;
    let mut data = Vec::new();
    let mut geometry = Vec::with_capacity(items.len());
    let mut size = None;
    for (i, item) in items.iter().enumerate() {
        let crate::input::Item::Bytes(bytes) = item else {
            return Err(EngineError::InvalidInput(format!(
                "input {i} is {}; send an image file, or a base64 string of one",
                item.kind()
            )));
        };
        let row = pipeline.run(bytes).map_err(|e| match e {
            EngineError::InvalidInput(m) if list => {
                EngineError::InvalidInput(format!("image {i}: {m}"))
            }
            other => other,
        })?;
        if *size.get_or_insert(row.size) != row.size {
            return Err(EngineError::InvalidInput(
                "the images have different sizes and the model's handler config fixes none; \
                 send one image per request or set handler.crop"
                    .into(),
            ));
        }
        if data.is_empty() {
            data.reserve_exact(row.data.len() * items.len());
        }
        data.extend_from_slice(&row.data);
        geometry.push(row.geometry);
    }
    let size = size.unwrap_or((0, 0));
    let tensor = Tensor::new(pipeline.shape(items.len(), size), TensorData::F32(data))?;
    Ok(Images { tensor, geometry, list })
}

/// An answer as JSON bytes: the single image's answer, or a list for a request of several.
pub(crate) fn answer<T: serde::Serialize>(
    mut per_image: Vec<T>,
    list: bool,
) -> Result<oxserve_core::handler::Prediction> {
    let body = if !list && per_image.len() == 1 {
        serde_json::to_vec(&per_image.remove(0))
    } else {
        serde_json::to_vec(&per_image)
    }
    .map_err(|e| EngineError::Internal(format!("cannot render the answer: {e}")))?;
    Ok(oxserve_core::handler::Prediction {
        body: body.into(),
        content_type: "application/json".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_both_torchserve_formats() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(Labels::load(dir.path()).expect("absent").name(3), "3");
        std::fs::write(
            dir.path().join("index_to_name.json"),
            r#"{"0": ["n01440764", "tench"], "1": "goldfish"}"#,
        )
        .expect("write");
        let labels = Labels::load(dir.path()).expect("labels");
        assert_eq!(labels.name(0), "tench");
        assert_eq!(labels.name(1), "goldfish");
        assert_eq!(labels.name(2), "2");
        std::fs::write(dir.path().join("index_to_name.json"), r#"{"x": "a"}"#).expect("write");
        assert!(Labels::load(dir.path()).expect_err("bad key").contains("non-numeric"));
    }

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let mut row = [1000.0, 1001.0, 999.0];
        softmax(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(row[1] > row[0] && row[0] > row[2]);
    }
}
