//! Texts → token tensors: a Hugging Face `tokenizer.json`, truncation or refusal past the length
//! limit, and padding that lets the worker stack the rows of many requests.
//!
//! The worker batches requests whose inputs share every dimension but the first. Padding each
//! request to its own longest text would give nearly every request a different width, and tract
//! builds one plan per concrete shape, so by default a request is padded to a *bucket*: the next
//! power of two (at least 16) up to the length limit. Short texts then share a few widths and batch
//! together, and none pays for the full limit. `padding: max_length` pads everything to the limit
//! (one shape, always stackable, slower for short texts); a model whose sequence axis is fixed in
//! its graph is always padded to that size.

use std::path::Path;

use oxserve_backend::{DType, Dim, Signature, Tensor, TensorData};
use serde_json::Value;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::settings::Settings;
use oxserve_core::{EngineError, Result};

/// Narrowest padded width, so one-word texts do not each get their own plan.
const MIN_BUCKET: usize = 16;

/// What to do with a text longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Keep its first tokens (special tokens included in the count), as TEI and
    /// sentence-transformers do.
    Truncate,
    /// Answer 400, for callers that must not embed or classify a partial text.
    Refuse,
}

/// How wide each request's rows are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// The next power of two (at least 16) that holds the request's longest text.
    Bucket,
    /// Always the length limit.
    MaxLength,
}

/// Which tokenizer output feeds a model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    Ids,
    Mask,
    TypeIds,
}

/// Texts of one request as model inputs.
#[derive(Debug)]
pub struct Encoded {
    /// Tensors in the model's input order, each `[texts, width]`.
    pub inputs: Vec<Tensor>,
    /// Real (unpadded) tokens per text: the attention mask is `1` for the first `lengths[i]`
    /// positions of row `i` and `0` after.
    pub lengths: Vec<usize>,
    /// Padded width of every row.
    pub width: usize,
}

/// A tokenizer bound to a model's inputs. Reusable by custom handlers.
#[derive(Debug, Clone)]
pub struct TextEncoder {
    tokenizer: Tokenizer,
    feeds: Vec<(Feed, DType)>,
    max_length: usize,
    overflow: Overflow,
    padding: Padding,
    /// The graph's fixed sequence length, when it has one.
    fixed_width: Option<usize>,
    pad_id: i64,
}

impl TextEncoder {
    /// Loads `tokenizer.json` (or the file `tokenizer` names) from the model folder and matches the
    /// model's inputs by name: `input_ids` (or any other name containing `ids`/`input`),
    /// `attention_mask` (`mask`), `token_type_ids` (`type`), each int64 or int32 `[batch, sequence]`.
    ///
    /// Settings: `max_length` (default: the checkpoint's own limit from `sentence_bert_config.json`,
    /// `tokenizer_config.json` or `tokenizer.json`, else 512), `on_overflow` (`truncate` | `refuse`),
    /// `padding` (`bucket` | `max_length`), `tokenizer` (file name).
    ///
    /// # Errors
    /// A message for the model-load error: missing or broken tokenizer, inputs it cannot feed,
    /// bad settings.
    pub fn new(
        model_dir: &Path,
        signature: &Signature,
        settings: &Settings<'_>,
    ) -> std::result::Result<Self, String> {
        let file = settings.string("tokenizer")?.unwrap_or("tokenizer.json");
        let path = model_dir.join(file);
        if !path.is_file() {
            return Err(format!(
                "the model folder has no {file}; text handlers need a Hugging Face tokenizer.json \
                 (add it with --extra-files)"
            ));
        }
        let mut tokenizer = Tokenizer::from_file(&path)
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| ["[PAD]", "<pad>", "<PAD>"].iter().find_map(|t| tokenizer.token_to_id(t)))
            .unwrap_or(0);
        let feeds = feeds(signature)?;
        let fixed_width = signature.inputs.first().and_then(|s| match s.shape.get(1) {
            Some(Dim::Fixed(n)) => Some(*n),
            _ => None,
        });
        let mut max_length = match settings.usize("max_length")? {
            Some(n) => n,
            None => checkpoint_limit(model_dir, &tokenizer),
        };
        if let Some(fixed) = fixed_width {
            max_length = max_length.min(fixed);
        }
        if max_length < 2 {
            return Err(format!("max_length must be at least 2, got {max_length}"));
        }
        let overflow = match settings.string("on_overflow")? {
            None | Some("truncate") => Overflow::Truncate,
            Some("refuse") => Overflow::Refuse,
            Some(other) => {
                return Err(format!("on_overflow must be `truncate` or `refuse`, got `{other}`"));
            }
        };
        let padding = match settings.string("padding")? {
            None | Some("bucket") => Padding::Bucket,
            Some("max_length") => Padding::MaxLength,
            Some(other) => {
                return Err(format!("padding must be `bucket` or `max_length`, got `{other}`"));
            }
        };
        // The handler pads itself (to a bucket); the file's own padding and truncation are replaced.
        tokenizer.with_padding(None);
        let truncation = match overflow {
            Overflow::Truncate => {
                Some(TruncationParams { max_length, ..TruncationParams::default() })
            }
            Overflow::Refuse => None,
        };
        tokenizer.with_truncation(truncation).map_err(|e| format!("tokenizer truncation: {e}"))?;
        let encoder = Self {
            tokenizer,
            feeds,
            max_length,
            overflow,
            padding,
            fixed_width,
            pad_id: i64::from(pad_id),
        };
        encoder
            .encode(&["oxserve"])
            .map_err(|e| format!("the tokenizer cannot encode a test text: {e}"))?;
        Ok(encoder)
    }

    /// The most tokens a text may have, special tokens included.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Tokenises `texts` (one request's) and builds the model inputs, padded to one width.
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`]: an empty text, or a text over the limit with
    /// `on_overflow: refuse`.
    pub fn encode<S: AsRef<str>>(&self, texts: &[S]) -> Result<Encoded> {
        let mut encodings = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let text = text.as_ref();
            if text.is_empty() {
                return Err(invalid(format!("text {} is empty", i + 1)));
            }
            let encoding = self
                .tokenizer
                .encode_fast(text, true)
                .map_err(|e| invalid(format!("text {} cannot be tokenised: {e}", i + 1)))?;
            if self.overflow == Overflow::Refuse && encoding.len() > self.max_length {
                return Err(invalid(format!(
                    "text {} is {} tokens long, over this model's limit of {} (the handler is set \
                     to refuse long texts: on_overflow: refuse)",
                    i + 1,
                    encoding.len(),
                    self.max_length
                )));
            }
            encodings.push(encoding);
        }
        let longest = encodings.iter().map(Encoding::len).max().unwrap_or(0);
        let width = match (self.fixed_width, self.padding) {
            (Some(fixed), _) => fixed,
            (None, Padding::MaxLength) => self.max_length,
            (None, Padding::Bucket) => bucket(longest, self.max_length),
        };
        let inputs = self
            .feeds
            .iter()
            .map(|&(feed, dtype)| self.tensor(&encodings, feed, dtype, width))
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoded { inputs, lengths: encodings.iter().map(Encoding::len).collect(), width })
    }

    fn tensor(
        &self,
        encodings: &[Encoding],
        feed: Feed,
        dtype: DType,
        width: usize,
    ) -> Result<Tensor> {
        let mut values: Vec<i64> = Vec::with_capacity(encodings.len() * width);
        for encoding in encodings {
            let (row, pad): (&[u32], i64) = match feed {
                Feed::Ids => (encoding.get_ids(), self.pad_id),
                Feed::Mask => (encoding.get_attention_mask(), 0),
                Feed::TypeIds => (encoding.get_type_ids(), 0),
            };
            values.extend(row.iter().map(|&v| i64::from(v)));
            values.resize(values.len() + width.saturating_sub(row.len()), pad);
        }
        let data = match dtype {
            DType::I32 => TensorData::I32(
                values.into_iter().map(|v| i32::try_from(v).unwrap_or(i32::MAX)).collect(),
            ),
            _ => TensorData::I64(values),
        };
        Tensor::new(vec![encodings.len(), width], data).map_err(EngineError::from)
    }
}

/// The smallest power of two (at least [`MIN_BUCKET`]) holding `longest`, capped at `max`.
fn bucket(longest: usize, max: usize) -> usize {
    longest.max(MIN_BUCKET).next_power_of_two().min(max)
}

/// Matches each model input to a tokenizer output.
fn feeds(signature: &Signature) -> std::result::Result<Vec<(Feed, DType)>, String> {
    let mut feeds = Vec::with_capacity(signature.inputs.len());
    for spec in &signature.inputs {
        let name = spec.name.to_ascii_lowercase();
        let feed = if name.contains("mask") {
            Feed::Mask
        } else if name.contains("type") || name.contains("segment") {
            Feed::TypeIds
        } else if name.contains("ids") || name.contains("input") {
            Feed::Ids
        } else {
            return Err(format!(
                "model input `{}` is not one a tokenizer fills (input_ids, attention_mask, \
                 token_type_ids)",
                spec.name
            ));
        };
        if !matches!(spec.dtype, DType::I64 | DType::I32) || spec.shape.len() != 2 {
            return Err(format!(
                "model input `{}` must be int64 or int32 [batch, sequence], not {} {}",
                spec.name,
                spec.dtype,
                spec.shape_string()
            ));
        }
        feeds.push((feed, spec.dtype));
    }
    if !feeds.iter().any(|(f, _)| *f == Feed::Ids) {
        return Err("the model has no token-id input (input_ids)".into());
    }
    Ok(feeds)
}

/// The length the checkpoint was made for: sentence-transformers' `max_seq_length`, the
/// tokenizer's `model_max_length` (transformers writes a huge sentinel when unknown), the
/// truncation saved in `tokenizer.json`, else BERT's 512.
fn checkpoint_limit(model_dir: &Path, tokenizer: &Tokenizer) -> usize {
    let read = |file: &str, key: &str| -> Option<usize> {
        let text = std::fs::read_to_string(model_dir.join(file)).ok()?;
        let value: Value = serde_json::from_str(&text).ok()?;
        value.get(key)?.as_u64().and_then(|n| usize::try_from(n).ok()).filter(|n| *n <= 1 << 20)
    };
    read("sentence_bert_config.json", "max_seq_length")
        .or_else(|| read("tokenizer_config.json", "model_max_length"))
        .or_else(|| tokenizer.get_truncation().map(|t| t.max_length))
        .unwrap_or(512)
}

fn invalid(message: String) -> EngineError {
    EngineError::InvalidInput(message)
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_are_few_and_hold_the_longest_text() {
        assert_eq!(bucket(3, 256), 16);
        assert_eq!(bucket(16, 256), 16);
        assert_eq!(bucket(17, 256), 32);
        assert_eq!(bucket(200, 256), 256);
        assert_eq!(bucket(40, 48), 48);
        let widths: std::collections::BTreeSet<usize> = (1..=256).map(|n| bucket(n, 256)).collect();
        assert_eq!(widths.len(), 5);
        assert!((1..=256).all(|n| bucket(n, 256) >= n));
    }
}
