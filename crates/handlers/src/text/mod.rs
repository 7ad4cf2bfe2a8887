//! Text handlers: `text_classifier` (TorchServe's) and `text_embedding` (sentence embeddings, as
//! sentence-transformers and TEI produce them), both tokenising with a Hugging Face
//! `tokenizer.json` from the model folder.
//!
//! Requests: a text body, a JSON string or list of strings (bare or under `data`/`body`/
//! `instances`), multipart parts, or TEI's `{"inputs": "…" | ["…", …]}`. Every text of a request is
//! a row of one model run, and the worker stacks the rows of concurrent requests (see
//! [`TextEncoder`] for how padding keeps them stackable). One text is answered with one result, a
//! list (or several parts) with a list.

mod classifier;
mod embedding;
mod encoder;
mod settings;

use std::borrow::Cow;

use oxserve_backend::{Tensor, TensorData};
use serde_json::Value;

pub use classifier::TextClassifier;
pub use embedding::{Pooling, TextEmbedding};
pub use encoder::{Encoded, Overflow, Padding, TextEncoder};
pub use settings::Settings;

use crate::input::{self, Item, Want};
use oxserve_core::handler::Payload;
use oxserve_core::{EngineError, Result};

/// Texts per request unless `max_texts` says otherwise: TEI's default client batch. Each text is a
/// row of the model run, so this bounds one request's share of a batch.
const DEFAULT_MAX_TEXTS: usize = 32;

/// The texts of one request and how it was shaped.
#[derive(Debug)]
struct TextRequest {
    texts: Vec<String>,
    /// Sent as a list (or several parts): answered with a list even when it holds one text.
    list: bool,
    /// TEI's per-request `normalize`.
    normalize: Option<bool>,
}

/// Reads the texts of a request; at most `max_texts`.
fn read_request(payload: &Payload, max_texts: usize) -> Result<TextRequest> {
    let items = input::items(payload, Want::Text)?;
    let mut request = TextRequest {
        texts: Vec::with_capacity(items.len()),
        list: items.len() > 1 || sent_as_list(payload),
        normalize: None,
    };
    for item in items {
        match item {
            Item::Json(Value::Object(mut map)) => {
                if let Some(flag) = map.remove("normalize") {
                    request.normalize = Some(
                        flag.as_bool()
                            .ok_or_else(|| invalid("`normalize` must be true or false"))?,
                    );
                }
                match map.remove("inputs").or_else(|| map.remove("text")) {
                    Some(Value::String(text)) => request.texts.push(text),
                    Some(Value::Array(list)) => {
                        request.list = true;
                        for value in list {
                            match value {
                                Value::String(text) => request.texts.push(text),
                                other => {
                                    return Err(invalid(format!(
                                        "`inputs` must hold strings, got {other}"
                                    )));
                                }
                            }
                        }
                    }
                    _ => {
                        return Err(invalid(
                            "expected text, a list of texts, or {\"inputs\": text or list}",
                        ));
                    }
                }
            }
            other => request.texts.push(other.as_text()?.into_owned()),
        }
        if request.texts.len() > max_texts {
            return Err(invalid(format!(
                "the request holds more than {max_texts} texts, this model's limit per request \
                 (max_texts); send fewer per request"
            )));
        }
    }
    if request.texts.is_empty() {
        return Err(invalid("the request holds no texts"));
    }
    Ok(request)
}

/// Whether the request's one body or part is a JSON list, bare or under an envelope key.
fn sent_as_list(payload: &Payload) -> bool {
    let Some(part) = payload.main_part() else { return false };
    let first = part.body.iter().find(|b| !b.is_ascii_whitespace());
    if !matches!(first, Some(b'[' | b'{')) {
        return false;
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(&part.body) else { return false };
    while let Value::Object(map) = &mut value {
        let inner = ["data", "body", "instances", "inputs"].iter().find_map(|k| map.remove(*k));
        match inner {
            Some(v) => value = v,
            None => return false,
        }
    }
    value.is_array()
}

/// A float output as `f32`s, whatever float type the model returns.
fn floats(tensor: &Tensor) -> Result<Cow<'_, [f32]>> {
    match tensor.data() {
        TensorData::F32(v) => Ok(Cow::Borrowed(v)),
        TensorData::F64(v) => Ok(Cow::Owned(v.iter().map(|&x| x as f32).collect())),
        TensorData::F16(v) => Ok(Cow::Owned(v.iter().map(|x| x.to_f32()).collect())),
        other => Err(EngineError::Internal(format!(
            "the model's output is {}, not a float tensor",
            other.dtype()
        ))),
    }
}

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::InvalidInput(message.into())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use oxserve_core::handler::Part;

    fn body(ct: Option<&str>, body: &str) -> Payload {
        Payload {
            parts: vec![Part {
                name: "body".into(),
                content_type: ct.map(str::to_owned),
                body: Bytes::copy_from_slice(body.as_bytes()),
            }],
        }
    }

    #[test]
    fn request_shapes() {
        let r = read_request(&body(Some("text/plain"), "hello world"), 4).expect("text");
        assert_eq!((r.texts, r.list), (vec!["hello world".to_owned()], false));
        let r = read_request(&body(None, r#"["one"]"#), 4).expect("list of one");
        assert_eq!((r.texts, r.list), (vec!["one".to_owned()], true));
        let r = read_request(&body(None, r#"{"data": ["a", "b"]}"#), 4).expect("data");
        assert_eq!((r.texts.len(), r.list), (2, true));
        let r =
            read_request(&body(None, r#"{"inputs": "tei", "normalize": false}"#), 4).expect("tei");
        assert_eq!((r.texts, r.list, r.normalize), (vec!["tei".to_owned()], false, Some(false)));
        let r = read_request(&body(None, r#"{"inputs": ["x", "y"]}"#), 4).expect("tei list");
        assert_eq!((r.texts.len(), r.list), (2, true));
    }

    #[test]
    fn bad_requests_are_refused() {
        let err = |p: Payload, max| match read_request(&p, max) {
            Err(EngineError::InvalidInput(m)) => m,
            other => panic!("expected InvalidInput, got {other:?}"),
        };
        assert!(err(body(None, r#"["a", "b", "c"]"#), 2).contains("more than 2 texts"));
        assert!(err(body(None, r#"{"inputs": [1]}"#), 2).contains("strings"));
        assert!(err(body(None, r#"{"other": 1}"#), 2).contains("expected text"));
        assert!(err(body(None, "[3]"), 2).contains("expected text"));
    }
}
