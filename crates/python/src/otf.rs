//! TorchServe's frontend-to-worker wire format ("OTF"), as its Python worker reads and writes it
//! (`ts/protocol/otf_message_handler.py`).
//!
//! Integers are big-endian `i32`; a string is its length then its bytes; a list ends with `-1`
//! where the next element's length would be. There is no frame length, so replies are read field
//! by field, each length checked against a limit before anything is allocated.

use std::io::{self, Read};

/// What a LOAD message tells a worker.
#[derive(Debug, Clone)]
pub(crate) struct Load<'a> {
    pub(crate) model_name: &'a str,
    /// The unpacked model folder, absolute.
    pub(crate) model_path: &'a str,
    pub(crate) batch_size: usize,
    /// The manifest's handler: a file in the model folder, `module:function`, or a default
    /// handler's name.
    pub(crate) handler: &'a str,
    /// `None` runs on the CPU.
    pub(crate) gpu: Option<u32>,
    /// `""` for none.
    pub(crate) envelope: &'a str,
    pub(crate) limit_max_image_pixels: bool,
}

/// One request of an INFER message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WireRequest<'a> {
    pub(crate) id: &'a str,
    pub(crate) headers: &'a [(String, String)],
    /// `(name, content type or "", value)`.
    pub(crate) params: &'a [(String, String, bytes::Bytes)],
}

/// A worker's answer to a LOAD or an INFER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// 200 when the batch ran; anything else fails every request in it.
    pub(crate) code: i32,
    pub(crate) message: String,
    /// One per request the frame covers (none for a LOAD reply).
    pub(crate) predictions: Vec<Prediction>,
}

/// One request's answer within a [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prediction {
    pub(crate) request_id: String,
    pub(crate) content_type: String,
    pub(crate) status: i32,
    pub(crate) reason: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Prediction {
    /// Whether more frames follow for this request (a streaming handler's intermediate answer).
    pub(crate) fn streams_on(&self) -> bool {
        self.headers.iter().any(|(k, v)| k == "ts_stream_next" && v == "true")
    }
}

/// Encodes a LOAD message.
pub(crate) fn encode_load(load: &Load<'_>) -> Vec<u8> {
    let mut out = vec![b'L'];
    put_str(&mut out, load.model_name.as_bytes());
    put_str(&mut out, load.model_path.as_bytes());
    put_int(&mut out, saturating_i32(load.batch_size));
    put_str(&mut out, load.handler.as_bytes());
    put_int(&mut out, load.gpu.map_or(-1, |g| i32::try_from(g).unwrap_or(i32::MAX)));
    put_str(&mut out, load.envelope.as_bytes());
    out.push(u8::from(load.limit_max_image_pixels));
    out
}

/// Encodes an INFER message for a batch.
pub(crate) fn encode_infer(batch: &[WireRequest<'_>]) -> Vec<u8> {
    let mut out = vec![b'I'];
    for request in batch {
        put_str(&mut out, request.id.as_bytes());
        for (name, value) in request.headers {
            put_str(&mut out, name.as_bytes());
            put_str(&mut out, value.as_bytes());
        }
        put_int(&mut out, -1);
        for (name, content_type, value) in request.params {
            put_str(&mut out, name.as_bytes());
            put_str(&mut out, content_type.as_bytes());
            put_str(&mut out, value);
        }
        put_int(&mut out, -1);
    }
    put_int(&mut out, -1);
    out
}

/// Why a reply could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The worker closed its end (it exited) or the read timed out; see the source.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The bytes do not follow the protocol.
    #[error("the worker's reply is malformed: {0}")]
    Malformed(String),
}

/// Reads one reply frame. `max_body` bounds each prediction's body (`max_response_size`);
/// strings other than bodies are bounded by the same limit.
pub(crate) fn read_reply(r: &mut impl Read, max_body: usize) -> Result<Reply, ReadError> {
    let code = get_int(r)?;
    let message = get_string(r, max_body)?;
    let mut predictions = Vec::new();
    while let Some(request_id) = get_optional_string(r, max_body)? {
        let content_type = get_string(r, max_body)?;
        let status = get_int(r)?;
        let reason = get_string(r, max_body)?;
        let n_headers = get_len(r, max_body)?;
        let mut headers = Vec::with_capacity(n_headers.min(64));
        for _ in 0..n_headers {
            headers.push((get_string(r, max_body)?, get_string(r, max_body)?));
        }
        let body = get_bytes(r, max_body)?;
        predictions.push(Prediction { request_id, content_type, status, reason, headers, body });
    }
    Ok(Reply { code, message, predictions })
}

fn saturating_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn put_int(out: &mut Vec<u8>, n: i32) {
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, bytes: &[u8]) {
    put_int(out, saturating_i32(bytes.len()));
    out.extend_from_slice(bytes);
}

fn get_int(r: &mut impl Read) -> io::Result<i32> {
    let mut buf = [0; 4];
    r.read_exact(&mut buf)?;
    Ok(i32::from_be_bytes(buf))
}

fn get_len(r: &mut impl Read, max: usize) -> Result<usize, ReadError> {
    let n = get_int(r)?;
    let len =
        usize::try_from(n).map_err(|_| ReadError::Malformed(format!("negative length {n}")))?;
    if len > max {
        return Err(ReadError::Malformed(format!(
            "a field of {len} bytes is over the limit of {max} (max_response_size)"
        )));
    }
    Ok(len)
}

fn get_bytes(r: &mut impl Read, max: usize) -> Result<Vec<u8>, ReadError> {
    let len = get_len(r, max)?;
    let mut buf = vec![0; len];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

fn get_string(r: &mut impl Read, max: usize) -> Result<String, ReadError> {
    String::from_utf8(get_bytes(r, max)?)
        .map_err(|e| ReadError::Malformed(format!("a text field is not UTF-8: {e}")))
}

/// A string, or `None` for the end-of-list marker `-1`.
fn get_optional_string(r: &mut impl Read, max: usize) -> Result<Option<String>, ReadError> {
    let n = get_int(r)?;
    if n == -1 {
        return Ok(None);
    }
    let len =
        usize::try_from(n).map_err(|_| ReadError::Malformed(format!("negative length {n}")))?;
    if len > max {
        return Err(ReadError::Malformed(format!("a request id of {len} bytes")));
    }
    let mut buf = vec![0; len];
    r.read_exact(&mut buf)?;
    String::from_utf8(buf)
        .map(Some)
        .map_err(|e| ReadError::Malformed(format!("a request id is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes `ts/tests/unit_tests/test_otf_codec_protocol.py` expects of the Python worker's
    /// `create_load_model_response(200, "model_loaded")`.
    #[test]
    fn reads_the_python_worker_s_load_reply() {
        let bytes = b"\x00\x00\x00\xc8\x00\x00\x00\x0cmodel_loaded\xff\xff\xff\xff";
        let reply = read_reply(&mut &bytes[..], 1 << 20).expect("reads");
        assert_eq!(reply, Reply { code: 200, message: "model_loaded".into(), predictions: vec![] });
    }

    /// `create_predict_response(["OK"], {0: "request_id"}, "success", 200)` without a context (the
    /// same test file's bytes): no content type, the frame's code as status, no reason, no headers.
    #[test]
    fn reads_a_prediction_without_context() {
        let bytes = b"\x00\x00\x00\xc8\x00\x00\x00\x07success\x00\x00\x00\nrequest_id\x00\x00\x00\x00\x00\x00\
            \x00\xc8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02OK\xff\xff\xff\xff";
        let reply = read_reply(&mut &bytes[..], 1 << 20).expect("reads");
        assert_eq!((reply.code, reply.message.as_str()), (200, "success"));
        assert_eq!(reply.predictions.len(), 1);
        let p = &reply.predictions[0];
        assert_eq!(
            (p.request_id.as_str(), p.status, p.body.as_slice()),
            ("request_id", 200, &b"OK"[..])
        );
        assert!(p.content_type.is_empty() && p.reason.is_empty() && p.headers.is_empty());
        assert!(!p.streams_on());
    }

    #[test]
    fn a_body_over_the_limit_or_a_negative_length_is_refused_before_allocating() {
        let mut bytes = Vec::new();
        put_int(&mut bytes, 200);
        put_int(&mut bytes, i32::MAX);
        let err = read_reply(&mut &bytes[..], 1024).expect_err("too long");
        assert!(err.to_string().contains("over the limit"), "{err}");
        let mut bytes = Vec::new();
        put_int(&mut bytes, 200);
        put_int(&mut bytes, -7);
        assert!(read_reply(&mut &bytes[..], 1024).is_err());
    }

    #[test]
    fn a_truncated_reply_is_an_io_error() {
        let bytes = b"\x00\x00\x00\xc8\x00\x00\x00\x0cmodel";
        assert!(matches!(read_reply(&mut &bytes[..], 1024), Err(ReadError::Io(_))));
    }

    #[test]
    fn load_and_infer_encode_as_the_worker_reads_them() {
        let load = encode_load(&Load {
            model_name: "m",
            model_path: "/p",
            batch_size: 4,
            handler: "h.py",
            gpu: None,
            envelope: "",
            limit_max_image_pixels: true,
        });
        assert_eq!(
            load,
            b"L\x00\x00\x00\x01m\x00\x00\x00\x02/p\x00\x00\x00\x04\x00\x00\x00\x04h.py\xff\xff\xff\xff\x00\x00\x00\x00\x01"
        );
        let headers = vec![("a".to_owned(), "b".to_owned())];
        let params = vec![("body".to_owned(), String::new(), bytes::Bytes::from_static(b"x"))];
        let infer = encode_infer(&[WireRequest { id: "r", headers: &headers, params: &params }]);
        let mut want =
            b"I\x00\x00\x00\x01r\x00\x00\x00\x01a\x00\x00\x00\x01b\xff\xff\xff\xff".to_vec();
        want.extend_from_slice(b"\x00\x00\x00\x04body\x00\x00\x00\x00\x00\x00\x00\x01x\xff\xff\xff\xff\xff\xff\xff\xff");
        assert_eq!(infer, want);
    }
}
