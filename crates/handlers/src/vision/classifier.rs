//! `image_classifier`: TorchServe's answer per image is the top-k classes with their softmax
//! probabilities, `{"tabby": 0.41, "tiger_cat": 0.33, …}`, most probable first.

use std::any::Any;

use oxserve_backend::Tensor;
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::pipeline::{Defaults, IMAGENET_MEAN, IMAGENET_STD, Pipeline, Resize};
use super::{Labels, ListContext, Options, answer, floats, prepare, softmax};
use oxserve_core::handler::{Handler, HandlerContext, Payload, Prediction, Prepared};
use oxserve_core::{EngineError, Result};

/// See the module docs. Options (model-config.yaml `handler:`): the pipeline's (defaults resize
/// 256, crop 224, ImageNet mean/std), `top_k` (5), `softmax` (true; false when the model already
/// outputs probabilities).
#[derive(Debug)]
pub struct ImageClassifier {
    pipeline: Pipeline,
    labels: Labels,
    top_k: usize,
    softmax: bool,
}

/// Classes ranked by probability; serialises as a JSON object in that order.
struct Ranked(Vec<(String, f32)>);

impl Serialize for Ranked {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (label, p) in &self.0 {
            map.serialize_entry(label, p)?;
        }
        map.end()
    }
}

impl ImageClassifier {
    /// Builds the handler for a model.
    ///
    /// # Errors
    /// A bad option, an unreadable `index_to_name.json`, or a model without one image input and one
    /// output.
    pub fn new(ctx: &HandlerContext<'_>) -> std::result::Result<Self, String> {
        let options = Options::new(ctx)?;
        let defaults = Defaults {
            resize: Resize::ShortSide(256),
            crop: Some((224, 224)),
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        };
        let pipeline = Pipeline::configure(&options, ctx.signature, defaults)?;
        let top_k = usize::try_from(options.u64("top_k", 5)?).unwrap_or(usize::MAX);
        if top_k == 0 {
            return Err("handler.top_k must be at least 1".into());
        }
        let softmax = options.bool("softmax", true)?;
        options.finish("image_classifier")?;
        if ctx.signature.outputs.is_empty() {
            return Err("the model has no outputs".into());
        }
        Ok(Self { pipeline, labels: Labels::load(ctx.model_dir)?, top_k, softmax })
    }

    fn rank(&self, mut row: Vec<f32>) -> Ranked {
        if self.softmax {
            softmax(&mut row);
        }
        let mut order: Vec<usize> = (0..row.len()).collect();
        let k = self.top_k.min(row.len());
        let by_probability = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
        if k < order.len() {
            order.select_nth_unstable_by(k, by_probability);
            order.truncate(k);
        }
        order.sort_by(by_probability);
        let mut ranked: Vec<(String, f32)> = Vec::with_capacity(k);
        for i in order {
            let label = self.labels.name(i);
            // Two classes with one name (ImageNet has two "crane"s) would repeat a JSON key.
            if !ranked.iter().any(|(l, _)| *l == label) {
                ranked.push((label, row[i]));
            }
        }
        Ranked(ranked)
    }
}

impl Handler for ImageClassifier {
    fn preprocess(&self, payload: &Payload) -> Result<Prepared> {
        Ok(prepare(&self.pipeline, payload)?.into_prepared())
    }

    fn postprocess(
        &self,
        outputs: Vec<Tensor>,
        context: Box<dyn Any + Send>,
    ) -> Result<Prediction> {
        let context =
            oxserve_core::handler::own_context::<ListContext>(context, "image_classifier")?;
        let Some(scores) = outputs.first() else {
            return Err(EngineError::Internal("the model returned no outputs".into()));
        };
        let rows = scores.rows();
        let values = floats(scores)?;
        if rows == 0 || values.len() % rows != 0 {
            return Err(EngineError::Internal(format!(
                "the model's output has shape {:?}; expected [images, classes]",
                scores.shape()
            )));
        }
        let per_row = values.len() / rows;
        let answers: Vec<Ranked> =
            values.chunks_exact(per_row).map(|row| self.rank(row.to_vec())).collect();
        answer(answers, context.list)
    }
}
