//! Splitting a request into the items a handler works on, the way TorchServe's handlers read the
//! `data`/`body` of each request.
//!
//! TorchServe clients send images and text in many shapes: raw bytes with an image content type,
//! multipart forms, JSON objects wrapping a base64 string, JSON lists of several inputs. Every
//! built-in handler (and a custom one) needs the same unwrapping, so it lives here once:
//!
//! - a multipart request: each part named `data` or `body` (else every part) gives its items;
//! - a raw body with an image, audio, video or `application/octet-stream` content type: one
//!   [`Item::Bytes`];
//! - a JSON body (`application/json`, or no/unknown content type and a body that parses as a JSON
//!   object or list): `{"data": X}` / `{"body": X}` unwrap to X, `{"instances": [..]}` (KServe v1)
//!   to its list; a JSON list gives one item per element; `{"b64": "…"}` (the TF Serving envelope)
//!   decodes to [`Item::Bytes`]; a string decodes from base64 to [`Item::Bytes`] when the caller
//!   wants binary input ([`Want::Binary`], images), else stays [`Item::Text`]; anything else stays
//!   [`Item::Json`];
//! - a `text/*` body, or an unknown one that is valid UTF-8: one [`Item::Text`] (base64-decoded for
//!   [`Want::Binary`], as TorchServe's image handler decodes a string body);
//! - any other body that is not UTF-8: one [`Item::Bytes`].
//!
//! Errors are [`EngineError::InvalidInput`] (HTTP 400): an empty request or part, malformed JSON
//! under a JSON content type, bad base64, more than [`MAX_ITEMS`] items.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use serde_json::Value;

use oxserve_core::handler::{Part, Payload};
use oxserve_core::{EngineError, Result};

/// The most items one request may carry, so a request of a million tiny list elements cannot make
/// a handler allocate a million tensors' worth of work. Each item becomes at least one model row.
pub const MAX_ITEMS: usize = 1024;

/// One input a client sent: a request may carry several (a JSON list, several multipart parts).
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Binary data: an image file, or a decoded base64 string.
    Bytes(Bytes),
    /// A string: a text body, or a JSON string when the caller wants text.
    Text(String),
    /// Any other JSON value (a number, a nested list, an object the envelope rules do not unwrap).
    Json(Value),
}

/// What kind of input the caller (a handler) expects, which decides how strings are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Binary data (images): strings are base64 and decode to [`Item::Bytes`].
    Binary,
    /// Text: strings stay [`Item::Text`].
    Text,
}

impl Item {
    /// A short name of the item's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bytes(_) => "binary data",
            Self::Text(_) => "a string",
            Self::Json(Value::Null) => "null",
            Self::Json(Value::Bool(_)) => "a boolean",
            Self::Json(Value::Number(_)) => "a number",
            Self::Json(Value::String(_)) => "a string",
            Self::Json(Value::Array(_)) => "a list",
            Self::Json(Value::Object(_)) => "an object",
        }
    }

    /// The item as text: a string as is, bytes when they are UTF-8.
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] for bytes that are not UTF-8 or a JSON value that is not a
    /// string.
    pub fn as_text(&self) -> Result<Cow<'_, str>> {
        match self {
            Self::Text(s) => Ok(Cow::Borrowed(s)),
            Self::Json(Value::String(s)) => Ok(Cow::Borrowed(s)),
            Self::Bytes(b) => std::str::from_utf8(b)
                .map(Cow::Borrowed)
                .map_err(|_| invalid("the input is binary data, not UTF-8 text")),
            other => Err(invalid(format!("expected text, got {}", other.kind()))),
        }
    }
}

/// Splits a request into items; see the module docs for the rules. At most [`MAX_ITEMS`].
///
/// # Errors
/// [`EngineError::InvalidInput`]: an empty request, malformed JSON under a JSON content type, bad
/// base64, too many items.
pub fn items(payload: &Payload, want: Want) -> Result<Vec<Item>> {
    items_at_most(payload, want, MAX_ITEMS)
}

/// [`items`] with a caller-chosen bound on the number of items.
///
/// # Errors
/// As [`items`].
pub fn items_at_most(payload: &Payload, want: Want, max_items: usize) -> Result<Vec<Item>> {
    let named: Vec<&Part> =
        payload.parts.iter().filter(|p| p.name == "data" || p.name == "body").collect();
    let parts: Vec<&Part> = if named.is_empty() { payload.parts.iter().collect() } else { named };
    if parts.is_empty() {
        return Err(invalid("the request is empty"));
    }
    let mut out = Items { items: Vec::new(), max: max_items };
    for part in parts {
        part_items(part, want, &mut out)?;
    }
    if out.items.is_empty() {
        return Err(invalid("the request holds no inputs (an empty list?)"));
    }
    Ok(out.items)
}

/// Decodes a base64 string (standard or URL-safe alphabet, padded or not, line breaks allowed,
/// optionally as a `data:…;base64,` URL).
///
/// # Errors
/// [`EngineError::InvalidInput`] when the string is not base64.
pub fn decode_base64(text: &str) -> Result<Bytes> {
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
    let text = text.trim();
    let text = match text.strip_prefix("data:") {
        Some(url) => url.split_once(";base64,").map_or(text, |(_, data)| data),
        None => text,
    };
    let compact: Cow<'_, str> = if text.bytes().any(|b| b.is_ascii_whitespace()) {
        Cow::Owned(text.chars().filter(|c| !c.is_ascii_whitespace()).collect())
    } else {
        Cow::Borrowed(text)
    };
    if compact.is_empty() {
        return Err(invalid("the base64 string is empty"));
    }
    let engine = if compact.contains(['-', '_']) { &URL_SAFE } else { &STANDARD };
    engine.decode(compact.as_bytes()).map(Bytes::from).map_err(|e| {
        invalid(format!(
            "expected binary data or a base64 string, but the string is not valid base64 ({e})"
        ))
    })
}

/// Items collected so far, with the bound enforced on every push.
struct Items {
    items: Vec<Item>,
    max: usize,
}

impl Items {
    fn push(&mut self, item: Item) -> Result<()> {
        if self.items.len() >= self.max {
            return Err(invalid(format!(
                "the request holds more than {} inputs; send fewer per request",
                self.max
            )));
        }
        self.items.push(item);
        Ok(())
    }
}

/// How a part's content type says to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Json,
    Binary,
    Text,
    Unknown,
}

fn media(content_type: Option<&str>) -> Media {
    let Some(ct) = content_type else { return Media::Unknown };
    let essence = ct.split(';').next().unwrap_or(ct).trim().to_ascii_lowercase();
    let (kind, sub) = essence.split_once('/').unwrap_or((essence.as_str(), ""));
    match (kind, sub) {
        ("application", "json") => Media::Json,
        ("application", s) if s.ends_with("+json") => Media::Json,
        ("image" | "audio" | "video", _) => Media::Binary,
        ("application", "octet-stream" | "pdf" | "zip" | "x-npy") => Media::Binary,
        ("text", _) => Media::Text,
        _ => Media::Unknown,
    }
}

fn part_items(part: &Part, want: Want, out: &mut Items) -> Result<()> {
    let label = || {
        if part.name == "body" {
            "the request body".to_owned()
        } else {
            format!("part `{}`", part.name)
        }
    };
    if part.body.is_empty() {
        return Err(invalid(format!("{} is empty", label())));
    }
    match media(part.content_type.as_deref()) {
        Media::Binary => out.push(Item::Bytes(part.body.clone())),
        Media::Json => {
            let value: Value = serde_json::from_slice(&part.body)
                .map_err(|e| invalid(format!("{} is not valid JSON: {e}", label())))?;
            json_items(value, want, out, 0)
        }
        Media::Text => {
            let text = std::str::from_utf8(&part.body).map_err(|_| {
                invalid(format!("{} is declared as text but is not UTF-8", label()))
            })?;
            string_item(text.to_owned(), want, out)
        }
        Media::Unknown => match std::str::from_utf8(&part.body) {
            Err(_) => out.push(Item::Bytes(part.body.clone())),
            Ok(text) => {
                let first = text.trim_start().as_bytes().first().copied();
                if matches!(first, Some(b'{' | b'['))
                    && let Ok(value) = serde_json::from_str::<Value>(text)
                {
                    return json_items(value, want, out, 0);
                }
                string_item(text.to_owned(), want, out)
            }
        },
    }
}

fn string_item(text: String, want: Want, out: &mut Items) -> Result<()> {
    match want {
        Want::Binary => out.push(Item::Bytes(decode_base64(&text)?)),
        Want::Text => out.push(Item::Text(text)),
    }
}

/// Unwraps the JSON envelopes; `depth` counts list levels already split, so only the outermost
/// list becomes several items and inner lists stay values.
fn json_items(value: Value, want: Want, out: &mut Items, depth: u8) -> Result<()> {
    match value {
        Value::Object(mut map) => {
            for key in ["data", "body"] {
                if let Some(inner) = map.remove(key) {
                    return json_items(inner, want, out, depth);
                }
            }
            if depth == 0
                && let Some(instances) = map.remove("instances")
            {
                return json_items(instances, want, out, depth);
            }
            if map.len() == 1
                && let Some(Value::String(b64)) = map.get("b64")
            {
                return out.push(Item::Bytes(decode_base64(b64)?));
            }
            out.push(Item::Json(Value::Object(map)))
        }
        Value::Array(list) if depth == 0 => {
            for element in list {
                json_items(element, want, out, depth + 1)?;
            }
            Ok(())
        }
        Value::String(s) => string_item(s, want, out),
        other => out.push(Item::Json(other)),
    }
}

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::InvalidInput(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, ct: Option<&str>, body: &[u8]) -> Part {
        Part {
            name: name.to_owned(),
            content_type: ct.map(str::to_owned),
            body: Bytes::copy_from_slice(body),
        }
    }

    fn one(ct: Option<&str>, body: &[u8], want: Want) -> Result<Vec<Item>> {
        items(&Payload { parts: vec![part("body", ct, body)] }, want)
    }

    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n\0\0";

    #[test]
    fn raw_image_bytes_are_one_item() {
        let got = one(Some("image/png"), PNG_MAGIC, Want::Binary).expect("items");
        assert_eq!(got, vec![Item::Bytes(Bytes::from_static(PNG_MAGIC))]);
        // Not UTF-8 and no content type: still bytes.
        let got = one(None, PNG_MAGIC, Want::Binary).expect("items");
        assert_eq!(got, vec![Item::Bytes(Bytes::from_static(PNG_MAGIC))]);
    }

    #[test]
    fn json_envelopes_unwrap() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(PNG_MAGIC);
        let bytes = Item::Bytes(Bytes::from_static(PNG_MAGIC));
        for body in [
            format!(r#"{{"data": "{b64}"}}"#),
            format!(r#"{{"body": "{b64}"}}"#),
            format!(r#"{{"data": {{"b64": "{b64}"}}}}"#),
            format!(r#""{b64}""#),
        ] {
            let got = one(Some("application/json"), body.as_bytes(), Want::Binary).expect(&body);
            assert_eq!(got, vec![bytes.clone()], "{body}");
        }
        let list = format!(r#"[{{"data": "{b64}"}}, "{b64}", {{"b64": "{b64}"}}]"#);
        let got = one(None, list.as_bytes(), Want::Binary).expect("list");
        assert_eq!(got, vec![bytes.clone(), bytes.clone(), bytes]);
    }

    #[test]
    fn strings_stay_text_when_text_is_wanted() {
        let got = one(Some("application/json"), br#"{"data": ["a b", "Y29mZmVl"]}"#, Want::Text)
            .expect("items");
        assert_eq!(got, vec![Item::Text("a b".into()), Item::Text("Y29mZmVl".into())]);
        let got = one(Some("text/plain; charset=utf-8"), b"hello [world]", Want::Text).expect("t");
        assert_eq!(got, vec![Item::Text("hello [world]".into())]);
        let got = one(None, b"[not json", Want::Text).expect("t");
        assert_eq!(got, vec![Item::Text("[not json".into())]);
    }

    #[test]
    fn text_body_is_base64_when_binary_is_wanted() {
        let got = one(Some("text/plain"), b"Y29m\nZmVl", Want::Binary).expect("items");
        assert_eq!(got, vec![Item::Bytes(Bytes::from_static(b"coffee"))]);
        let got = one(None, b"data:image/png;base64,Y29mZmVl", Want::Binary).expect("url");
        assert_eq!(got, vec![Item::Bytes(Bytes::from_static(b"coffee"))]);
        let got = one(None, b"-_8", Want::Binary).expect("url-safe");
        assert_eq!(got, vec![Item::Bytes(Bytes::from_static(&[0xfb, 0xff]))]);
    }

    #[test]
    fn inner_lists_and_other_values_stay_json() {
        let got =
            one(None, br#"{"instances": [[1, 2], {"text": "x"}, 3]}"#, Want::Text).expect("i");
        assert_eq!(
            got,
            vec![
                Item::Json(serde_json::json!([1, 2])),
                Item::Json(serde_json::json!({"text": "x"})),
                Item::Json(serde_json::json!(3)),
            ]
        );
    }

    #[test]
    fn multipart_prefers_data_parts() {
        let payload = Payload {
            parts: vec![
                part("meta", Some("text/plain"), b"ignored"),
                part("data", Some("image/jpeg"), b"\xff\xd8\xff"),
                part("data", Some("image/png"), PNG_MAGIC),
            ],
        };
        let got = items(&payload, Want::Binary).expect("items");
        assert_eq!(got.len(), 2);
        let payload =
            Payload { parts: vec![part("a", Some("text/plain"), b"one"), part("b", None, b"two")] };
        let got = items(&payload, Want::Text).expect("items");
        assert_eq!(got, vec![Item::Text("one".into()), Item::Text("two".into())]);
    }

    #[test]
    fn bad_input_is_refused_clearly() {
        let message = |r: Result<Vec<Item>>| match r {
            Err(EngineError::InvalidInput(m)) => m,
            other => panic!("expected InvalidInput, got {other:?}"),
        };
        assert!(message(items(&Payload::default(), Want::Text)).contains("empty"));
        assert!(message(one(None, b"", Want::Binary)).contains("empty"));
        assert!(message(one(None, b"not base64!", Want::Binary)).contains("base64"));
        assert!(message(one(Some("application/json"), b"{", Want::Text)).contains("JSON"));
        assert!(message(one(None, b"[]", Want::Text)).contains("no inputs"));
        assert!(message(one(Some("text/plain"), b"\xff\xfe", Want::Text)).contains("UTF-8"));
        let many = serde_json::to_vec(&vec!["x"; MAX_ITEMS + 1]).expect("json");
        assert!(message(one(None, &many, Want::Text)).contains("more than"));
    }

    #[test]
    fn as_text_reads_strings_and_utf8_bytes() {
        assert_eq!(Item::Bytes(Bytes::from_static(b"hi")).as_text().expect("utf8"), "hi");
        assert!(Item::Bytes(Bytes::from_static(b"\xff")).as_text().is_err());
        assert!(Item::Json(serde_json::json!(1)).as_text().is_err());
    }
}
