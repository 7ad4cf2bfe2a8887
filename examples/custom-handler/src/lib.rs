//! An example custom handler for oxserve, written against the public
//! [`Handler`](oxserve_core::handler::Handler) trait: it reads handwritten digits drawn as 8×8
//! ASCII art (or given as 64 pixel intensities) and answers with the digit's name.
//!
//! The model is `examples/models/digits_mlp.onnx` (scikit-learn's 8×8 digits, pixels 0–16 →
//! `label`, `probabilities`). A handler has three parts:
//!
//! - **initialise** ([`DigitArtHandler::new`]): runs once when the model loads, with the
//!   [`HandlerContext`]: the model folder, manifest, signature and the model-config.yaml keys the
//!   server does not use (here `handler.ramp` and `handler.min_confidence`). Errors stop the load
//!   with the message.
//! - **preprocess**: one request → input tensors. Each digit is a row, so a request holding a list
//!   of digits is one batch, and the server's workers stack the rows of concurrent requests.
//! - **postprocess**: this request's rows of the model's outputs → the answer body.
//!
//! The model runs between the two on the server's worker threads; preprocess and postprocess run
//! on a blocking thread pool, never on the async runtime. See `src/main.rs` for the server binary
//! that registers this handler next to the built-in ones.

use std::any::Any;

use bytes::Bytes;
use oxserve_backend::{Tensor, TensorData};
use oxserve_core::handler::{Handler, HandlerContext, Payload, Prediction, Prepared, own_context};
use oxserve_core::{EngineError, Result};
use oxserve_handlers::input::{self, Item, Want};
use serde::Serialize;
use serde_json::Value;

/// The handler's registered name; a manifest names it as `handler: digit_art`.
pub const NAME: &str = "digit_art";

/// The model's pixel range: scikit-learn's digits are 0 (paper) to 16 (ink).
const MAX_INTENSITY: f32 = 16.0;

const NAMES: [&str; 10] =
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

/// See the crate docs.
#[derive(Debug)]
pub struct DigitArtHandler {
    /// Characters from paper to ink; position `i` of `n` means intensity `16·i/(n-1)`.
    ramp: Vec<char>,
    /// Below this probability the answer says it is unsure instead of naming a digit.
    min_confidence: f32,
    /// Where the model's `probabilities` output sits in its output list.
    probabilities: usize,
}

/// One digit's answer.
#[derive(Debug, Serialize)]
struct Answer {
    digit: Option<usize>,
    name: Option<&'static str>,
    confidence: f32,
}

impl DigitArtHandler {
    /// Initialises from the model's context.
    ///
    /// # Errors
    /// When the model does not look like the digits classifier, or a setting is malformed.
    pub fn new(ctx: &HandlerContext<'_>) -> std::result::Result<Self, String> {
        let setting = |key: &str| {
            ctx.config.get("handler").and_then(|h| h.get(key)).or_else(|| ctx.config.get(key))
        };
        let ramp: Vec<char> = match setting("ramp") {
            None => " .:-=+*#%@".chars().collect(),
            Some(Value::String(s)) => s.chars().collect(),
            Some(other) => return Err(format!("`ramp` must be a string, got {other}")),
        };
        if ramp.len() < 2 {
            return Err("`ramp` needs at least two characters (paper and ink)".into());
        }
        #[allow(clippy::cast_possible_truncation)]
        let min_confidence = match setting("min_confidence") {
            None => 0.0,
            Some(v) => v.as_f64().ok_or("`min_confidence` must be a number")? as f32,
        };
        let input = ctx.signature.inputs.first().ok_or("the model has no input")?;
        if input.shape_string() != "[-1, 64]" {
            return Err(format!(
                "digit_art serves 8x8 digit models (input [-1, 64]); `{}` is {}",
                input.name,
                input.shape_string()
            ));
        }
        let probabilities = ctx
            .signature
            .outputs
            .iter()
            .position(|o| o.name == "probabilities")
            .ok_or("the model has no `probabilities` output")?;
        Ok(Self { ramp, min_confidence, probabilities })
    }

    /// 64 intensities from 8 lines of up to 8 ramp characters (short lines are padded with paper,
    /// since editors strip trailing spaces).
    fn read_art(&self, art: &str) -> Result<Vec<f32>> {
        let mut lines: Vec<&str> = art.lines().collect();
        while lines.len() > 8 && lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        if lines.len() != 8 {
            return Err(invalid(format!(
                "a digit is 8 lines of 8 characters; got {} lines",
                lines.len()
            )));
        }
        let steps = (self.ramp.len() - 1) as f32;
        let mut pixels = Vec::with_capacity(64);
        for (row, line) in lines.iter().enumerate() {
            let mut chars: Vec<char> = line.chars().collect();
            if chars.len() > 8 {
                return Err(invalid(format!(
                    "line {} has {} characters, not 8",
                    row + 1,
                    chars.len()
                )));
            }
            chars.resize(8, self.ramp[0]);
            for c in chars {
                let level = self.ramp.iter().position(|r| *r == c).ok_or_else(|| {
                    invalid(format!(
                        "`{c}` is not one of the ramp characters {:?}",
                        self.ramp.iter().collect::<String>()
                    ))
                })?;
                pixels.push(level as f32 * MAX_INTENSITY / steps);
            }
        }
        Ok(pixels)
    }

    /// 64 intensities from `{"pixels": [...]}`.
    fn read_pixels(value: &Value) -> Result<Vec<f32>> {
        let list = value
            .get("pixels")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("expected ASCII art or {\"pixels\": [64 numbers]}"))?;
        if list.len() != 64 {
            return Err(invalid(format!("`pixels` holds {} numbers, not 64", list.len())));
        }
        #[allow(clippy::cast_possible_truncation)]
        list.iter()
            .map(|v| match v.as_f64() {
                Some(x) if (0.0..=f64::from(MAX_INTENSITY)).contains(&x) => Ok(x as f32),
                _ => Err(invalid(format!("pixel {v} is not a number from 0 to 16"))),
            })
            .collect()
    }
}

/// Whether the request was a list, so one digit in a list is still answered with a list.
struct Shape {
    list: bool,
}

impl Handler for DigitArtHandler {
    fn preprocess(&self, payload: &Payload) -> Result<Prepared> {
        let items = input::items_at_most(payload, Want::Text, 64)?;
        let list = items.len() > 1
            || payload.main_part().is_some_and(|p| p.body.trim_ascii_start().starts_with(b"["));
        let mut pixels = Vec::with_capacity(items.len() * 64);
        for item in &items {
            match item {
                Item::Json(value) => pixels.extend(Self::read_pixels(value)?),
                other => pixels.extend(self.read_art(&other.as_text()?)?),
            }
        }
        let input = Tensor::new(vec![items.len(), 64], TensorData::F32(pixels))?;
        Ok(Prepared { inputs: vec![input], context: Box::new(Shape { list }) })
    }

    fn postprocess(
        &self,
        outputs: Vec<Tensor>,
        context: Box<dyn Any + Send>,
    ) -> Result<Prediction> {
        let shape = own_context::<Shape>(context, "digit_art")?;
        let probs = outputs.get(self.probabilities).ok_or_else(|| internal("missing output"))?;
        let TensorData::F32(values) = probs.data() else {
            return Err(internal("probabilities are not float32"));
        };
        let answers: Vec<Answer> = values
            .chunks_exact(10)
            .map(|row| {
                let (digit, &p) =
                    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap_or((0, &0.0));
                let sure = p >= self.min_confidence;
                Answer {
                    digit: sure.then_some(digit),
                    name: sure.then_some(NAMES[digit]),
                    confidence: p,
                }
            })
            .collect();
        let body = match answers.as_slice() {
            [one] if !shape.list => serde_json::to_vec(one),
            all => serde_json::to_vec(all),
        }
        .map_err(|e| internal(&e.to_string()))?;
        Ok(Prediction { body: Bytes::from(body), content_type: "application/json".into() })
    }
}

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::InvalidInput(message.into())
}

fn internal(message: &str) -> EngineError {
    EngineError::Internal(format!("digit_art: {message}"))
}
