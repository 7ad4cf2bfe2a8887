//! `object_detector`: per image, TorchServe's list of `{"<label>": [x1, y1, x2, y2], "score": s}`
//! for the detections scoring at least the threshold, boxes in the original image's pixels.
//!
//! The model's outputs are found by name (`*box*`, `*score*`, `*label*`/`*class*`), else taken in
//! torchvision's order (boxes, labels, scores): boxes `[N, K, 4]` as x1, y1, x2, y2 in the model
//! input's pixels (or 0..1 with `normalized_boxes`), scores `[N, K]` with labels `[N, K]`, or
//! per-class scores `[N, K, C]` without labels. Models that stop short of non-maximum suppression
//! (most exports without torchvision's post-processing) get it here, per class as torchvision's
//! `batched_nms`, unless `nms: false`.

use std::any::Any;

use oxserve_backend::{Signature, Tensor};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::pipeline::{Defaults, Geometry, Pipeline, Resize};
use super::{Labels, Options, answer, floats, prepare};
use oxserve_core::handler::{Handler, HandlerContext, Payload, Prediction, Prepared};
use oxserve_core::{EngineError, Result};

/// See the module docs. Options (model-config.yaml `handler:`): the pipeline's (defaults: resize
/// to the model's fixed input size, no crop, scale 1/255, mean 0, std 1: torchvision's
/// `ToTensor`), `score_threshold` (0.5), `nms` (true), `nms_iou` (0.5), `max_detections` (100),
/// `normalized_boxes` (false).
#[derive(Debug)]
pub struct ObjectDetector {
    pipeline: Pipeline,
    labels: Labels,
    outputs: Outputs,
    threshold: f32,
    nms: bool,
    iou: f32,
    max_detections: usize,
    normalized: bool,
}

/// Positions of the model outputs.
#[derive(Debug, Clone, Copy)]
struct Outputs {
    boxes: usize,
    scores: usize,
    labels: Option<usize>,
}

struct Context {
    geometry: Vec<Geometry>,
    size: (f32, f32),
    list: bool,
}

/// One detection, in original image pixels.
#[derive(Debug, Clone, PartialEq)]
struct Detection {
    label: usize,
    score: f32,
    bbox: [f32; 4],
}

/// A detection as TorchServe writes it: the label keyed to the box, then the score.
struct Rendered(String, [f32; 4], f32);

impl Serialize for Rendered {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry(&self.0, &self.1)?;
        map.serialize_entry("score", &self.2)?;
        map.end()
    }
}

impl ObjectDetector {
    /// Builds the handler for a model.
    ///
    /// # Errors
    /// A bad option, unreadable labels, or outputs that are not boxes and scores.
    pub fn new(ctx: &HandlerContext<'_>) -> std::result::Result<Self, String> {
        let options = Options::new(ctx)?;
        let defaults = Defaults { resize: Resize::Off, crop: None, mean: [0.0; 3], std: [1.0; 3] };
        let pipeline = Pipeline::configure(&options, ctx.signature, defaults)?;
        #[allow(clippy::cast_possible_truncation)]
        let threshold = options.f64("score_threshold", 0.5)? as f32;
        let nms = options.bool("nms", true)?;
        #[allow(clippy::cast_possible_truncation)]
        let iou = options.f64("nms_iou", 0.5)? as f32;
        if !(0.0..=1.0).contains(&iou) {
            return Err(format!("handler.nms_iou must be between 0 and 1, got {iou}"));
        }
        let max_detections =
            usize::try_from(options.u64("max_detections", 100)?).unwrap_or(usize::MAX);
        let normalized = options.bool("normalized_boxes", false)?;
        options.finish("object_detector")?;
        Ok(Self {
            pipeline,
            labels: Labels::load(ctx.model_dir)?,
            outputs: find_outputs(ctx.signature)?,
            threshold,
            nms,
            iou,
            max_detections,
            normalized,
        })
    }

    /// The detections of one image, from its rows of the outputs.
    fn detect(
        &self,
        boxes: &[f32],
        scores: &[f32],
        labels: Option<&[f32]>,
        classes: usize,
    ) -> Vec<Detection> {
        let mut found = Vec::new();
        for (k, b) in boxes.chunks_exact(4).enumerate() {
            let (label, score) = match labels {
                Some(labels) => {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let label = labels[k].max(0.0) as usize;
                    (label, scores[k])
                }
                None => {
                    let row = &scores[k * classes..(k + 1) * classes];
                    let (label, score) = row
                        .iter()
                        .copied()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(&b.1))
                        .unwrap_or((0, f32::NEG_INFINITY));
                    (label, score)
                }
            };
            if score >= self.threshold && score.is_finite() {
                found.push(Detection { label, score, bbox: [b[0], b[1], b[2], b[3]] });
            }
        }
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        if self.nms {
            found = non_maximum_suppression(found, self.iou);
        }
        found.truncate(self.max_detections);
        found
    }
}

/// Keeps the best box of each cluster: a box is dropped when it overlaps a better-scoring box of
/// the same class by more than `iou`. `sorted` must be best first.
fn non_maximum_suppression(sorted: Vec<Detection>, iou: f32) -> Vec<Detection> {
    let mut kept: Vec<Detection> = Vec::new();
    for candidate in sorted {
        if kept
            .iter()
            .all(|k| k.label != candidate.label || overlap(&k.bbox, &candidate.bbox) <= iou)
        {
            kept.push(candidate);
        }
    }
    kept
}

/// Intersection over union of two x1, y1, x2, y2 boxes.
fn overlap(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

fn find_outputs(signature: &Signature) -> std::result::Result<Outputs, String> {
    let names: Vec<String> =
        signature.outputs.iter().map(|o| o.name.to_ascii_lowercase()).collect();
    let find = |keys: &[&str]| names.iter().position(|n| keys.iter().any(|k| n.contains(k)));
    let by_name = (find(&["box"]), find(&["score"]), find(&["label", "class"]));
    let outputs = match by_name {
        (Some(boxes), Some(scores), labels) => Outputs { boxes, scores, labels },
        _ => match names.len() {
            3 => Outputs { boxes: 0, labels: Some(1), scores: 2 },
            2 => Outputs { boxes: 0, scores: 1, labels: None },
            _ => {
                return Err(format!(
                    "object_detector needs outputs named like boxes, scores (and labels), or in \
                     torchvision's order; the model's outputs are {}",
                    names.join(", ")
                ));
            }
        },
    };
    Ok(outputs)
}

impl Handler for ObjectDetector {
    fn preprocess(&self, payload: &Payload) -> Result<Prepared> {
        let images = prepare(&self.pipeline, payload)?;
        let shape = images.tensor.shape();
        #[allow(clippy::cast_precision_loss)]
        let size = match self.pipeline.layout {
            super::pipeline::Layout::Nchw => (shape[3] as f32, shape[2] as f32),
            super::pipeline::Layout::Nhwc => (shape[2] as f32, shape[1] as f32),
        };
        let context = Context { geometry: images.geometry, size, list: images.list };
        Ok(Prepared { inputs: vec![images.tensor], context: Box::new(context) })
    }

    fn postprocess(
        &self,
        outputs: Vec<Tensor>,
        context: Box<dyn Any + Send>,
    ) -> Result<Prediction> {
        let context = oxserve_core::handler::own_context::<Context>(context, "object_detector")?;
        let images = context.geometry.len();
        let output = |i: usize| {
            outputs
                .get(i)
                .ok_or_else(|| EngineError::Internal(format!("the model returned no output {i}")))
        };
        let (boxes, scores) = (output(self.outputs.boxes)?, output(self.outputs.scores)?);
        let labels = self.outputs.labels.map(output).transpose()?;
        let bad = |what: &str, t: &Tensor| {
            EngineError::Internal(format!(
                "the detector's {what} output has an unexpected shape {:?}",
                t.shape()
            ))
        };
        let box_values = floats(boxes)?;
        if images == 0 || box_values.len() % (images * 4) != 0 {
            return Err(bad("boxes", boxes));
        }
        let per_image = box_values.len() / images / 4;
        let score_values = floats(scores)?;
        if per_image == 0 || score_values.len() % (images * per_image) != 0 {
            return Err(bad("scores", scores));
        }
        let classes = score_values.len() / (images * per_image);
        let label_values = labels.map(floats).transpose()?;
        if let (Some(l), Some(t)) = (&label_values, labels)
            && (l.len() != images * per_image || classes != 1)
        {
            return Err(bad("labels", t));
        }
        let mut answers = Vec::with_capacity(images);
        for (i, geometry) in context.geometry.iter().enumerate() {
            let b = &box_values[i * per_image * 4..(i + 1) * per_image * 4];
            let s = &score_values[i * per_image * classes..(i + 1) * per_image * classes];
            let l = label_values.as_ref().map(|l| &l[i * per_image..(i + 1) * per_image]);
            let found = self.detect(b, s, l, classes);
            let rendered: Vec<Rendered> = found
                .into_iter()
                .map(|d| {
                    let [mut x1, mut y1, mut x2, mut y2] = d.bbox;
                    if self.normalized {
                        (x1, x2) = (x1 * context.size.0, x2 * context.size.0);
                        (y1, y2) = (y1 * context.size.1, y2 * context.size.1);
                    }
                    let (x1, y1) = geometry.to_original(x1, y1);
                    let (x2, y2) = geometry.to_original(x2, y2);
                    Rendered(self.labels.name(d.label), [x1, y1, x2, y2].map(round2), d.score)
                })
                .collect();
            answers.push(rendered);
        }
        answer(answers, context.list)
    }
}

/// Two decimals: sub-pixel digits beyond that are noise and bloat the answer.
fn round2(x: f32) -> f32 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(label: usize, score: f32, bbox: [f32; 4]) -> Detection {
        Detection { label, score, bbox }
    }

    #[test]
    fn nms_keeps_the_best_of_each_overlapping_cluster_per_class() {
        let sorted = vec![
            det(0, 0.9, [0.0, 0.0, 10.0, 10.0]),
            det(0, 0.8, [1.0, 0.0, 11.0, 10.0]), // IoU 0.82 with the first: dropped
            det(1, 0.7, [1.0, 0.0, 11.0, 10.0]), // another class: kept
            det(0, 0.6, [20.0, 20.0, 30.0, 30.0]), // no overlap: kept
        ];
        let kept = non_maximum_suppression(sorted, 0.5);
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.9, 0.7, 0.6]);
    }

    #[test]
    fn iou_of_known_boxes() {
        assert!((overlap(&[0.0, 0.0, 2.0, 2.0], &[1.0, 0.0, 3.0, 2.0]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(overlap(&[0.0, 0.0, 1.0, 1.0], &[2.0, 2.0, 3.0, 3.0]), 0.0);
    }
}
