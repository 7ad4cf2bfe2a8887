//! `text_embedding`: one vector per text, the way sentence-transformers and TEI make them.
//!
//! A model that returns token embeddings (`last_hidden_state`, `[texts, tokens, hidden]`) is pooled
//! here: the mean over the tokens the attention mask keeps (`pooling: mean`, the
//! sentence-transformers default) or the first token (`pooling: cls`). A model that already returns
//! `[texts, hidden]` is taken as is. Vectors are L2-normalised unless `normalize: false` (TEI's
//! default is to normalise; a request may say `"normalize": false`).
//!
//! The answer is a JSON list of vectors, one per text, like TEI's `/embed`.

use std::any::Any;

use bytes::Bytes;
use oxserve_backend::{DType, Tensor};

use super::{DEFAULT_MAX_TEXTS, Settings, TextEncoder, floats, read_request};
use oxserve_core::handler::{Handler, HandlerContext, Payload, Prediction, Prepared};
use oxserve_core::{EngineError, Result};

/// How token embeddings become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean of the unmasked tokens.
    Mean,
    /// The first token (`[CLS]`).
    Cls,
}

/// See the module docs.
#[derive(Debug)]
pub struct TextEmbedding {
    encoder: TextEncoder,
    pooling: Pooling,
    normalize: bool,
    output: usize,
    max_texts: usize,
}

/// What postprocess needs to know about the request.
struct Context {
    lengths: Vec<usize>,
    normalize: bool,
}

/// Outputs looked for, in order, when `output` is not set.
const OUTPUT_NAMES: [&str; 4] =
    ["sentence_embedding", "last_hidden_state", "token_embeddings", "embeddings"];

impl TextEmbedding {
    /// Initialises from the model folder and settings (`pooling`, `normalize`, `output`,
    /// `max_texts`, and the [`TextEncoder`] ones).
    ///
    /// # Errors
    /// A message for the model-load error.
    pub fn new(ctx: &HandlerContext<'_>) -> std::result::Result<Self, String> {
        let settings = Settings::new(ctx.config);
        let encoder = TextEncoder::new(ctx.model_dir, ctx.signature, &settings)?;
        let outputs = &ctx.signature.outputs;
        let output = match settings.string("output")? {
            Some(name) => outputs
                .iter()
                .position(|o| o.name == name)
                .ok_or_else(|| format!("the model has no output `{name}`"))?,
            None => OUTPUT_NAMES
                .iter()
                .find_map(|name| outputs.iter().position(|o| o.name == *name))
                .or_else(|| outputs.iter().position(|o| o.dtype == DType::F32))
                .ok_or("the model has no float output to read embeddings from")?,
        };
        let pooling = match settings.string("pooling")? {
            None | Some("mean") => Pooling::Mean,
            Some("cls") => Pooling::Cls,
            Some(other) => return Err(format!("pooling must be `mean` or `cls`, got `{other}`")),
        };
        Ok(Self {
            encoder,
            pooling,
            normalize: settings.bool("normalize")?.unwrap_or(true),
            output,
            max_texts: settings.usize("max_texts")?.unwrap_or(DEFAULT_MAX_TEXTS).max(1),
        })
    }
}

impl Handler for TextEmbedding {
    fn preprocess(&self, payload: &Payload) -> Result<Prepared> {
        let request = read_request(payload, self.max_texts)?;
        let encoded = self.encoder.encode(&request.texts)?;
        let context = Context {
            lengths: encoded.lengths,
            normalize: request.normalize.unwrap_or(self.normalize),
        };
        Ok(Prepared { inputs: encoded.inputs, context: Box::new(context) })
    }

    fn postprocess(
        &self,
        outputs: Vec<Tensor>,
        context: Box<dyn Any + Send>,
    ) -> Result<Prediction> {
        let context = oxserve_core::handler::own_context::<Context>(context, "text_embedding")?;
        let output = outputs
            .get(self.output)
            .ok_or_else(|| EngineError::Internal("the model returned too few outputs".into()))?;
        let values = floats(output)?;
        let mut vectors = match *output.shape() {
            [rows, hidden] if rows == context.lengths.len() => {
                values.chunks_exact(hidden.max(1)).map(<[f32]>::to_vec).collect()
            }
            [rows, tokens, hidden] if rows == context.lengths.len() => (0..rows)
                .map(|r| {
                    let row = &values[r * tokens * hidden..(r + 1) * tokens * hidden];
                    pool(row, hidden, context.lengths[r].min(tokens), self.pooling)
                })
                .collect::<Vec<_>>(),
            ref other => {
                return Err(EngineError::Internal(format!(
                    "expected embeddings [{texts}, hidden] or token embeddings [{texts}, tokens, \
                     hidden], got shape {other:?}",
                    texts = context.lengths.len()
                )));
            }
        };
        if context.normalize {
            vectors.iter_mut().for_each(|v| l2_normalize(v));
        }
        let body = serde_json::to_vec(&vectors)
            .map_err(|e| EngineError::Internal(format!("cannot render the answer: {e}")))?;
        Ok(Prediction { body: Bytes::from(body), content_type: "application/json".into() })
    }
}

/// Pools one text's token embeddings (`tokens × hidden`, row-major) over its first `kept` tokens.
fn pool(row: &[f32], hidden: usize, kept: usize, pooling: Pooling) -> Vec<f32> {
    match pooling {
        Pooling::Cls => row[..hidden].to_vec(),
        Pooling::Mean => {
            let mut sum = vec![0.0f64; hidden];
            for token in row.chunks_exact(hidden).take(kept) {
                for (s, x) in sum.iter_mut().zip(token) {
                    *s += f64::from(*x);
                }
            }
            let n = kept.max(1) as f64;
            sum.into_iter().map(|s| (s / n) as f32).collect()
        }
    }
}

/// Scales to unit length; a zero vector stays zero (sentence-transformers clamps the norm too).
fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm > 1e-12 {
        let scale = (1.0 / norm) as f32;
        v.iter_mut().for_each(|x| *x *= scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pooling_ignores_padding() {
        // Two real tokens and one padding token of width 2.
        let row = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];
        assert_eq!(pool(&row, 2, 2, Pooling::Mean), vec![2.0, 3.0]);
        assert_eq!(pool(&row, 2, 2, Pooling::Cls), vec![1.0, 2.0]);
    }

    #[test]
    fn normalisation_gives_unit_vectors() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut zero = vec![0.0, 0.0];
        l2_normalize(&mut zero);
        assert_eq!(zero, vec![0.0, 0.0]);
    }
}
