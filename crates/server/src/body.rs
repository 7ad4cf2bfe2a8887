//! Reading request bodies under the size limit, and turning them into handler payloads.

use axum::body::Body;
use std::io::Read;

use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use oxserve_core::handler::{Part, Payload};

use crate::ServerConfig;
use crate::error::ApiError;

/// Reads the whole body, refusing with 413 as soon as it passes `config.max_request_size` bytes: at
/// once when `Content-Length` says so, else while reading a chunked body, so an oversized body is
/// never held whole in memory. A gzip or deflate body (`Content-Encoding`) is inflated under the
/// same limit, so a small bomb cannot become a large body. A client that does not finish sending
/// within `config.body_read_timeout` gets 408: a slow sender cannot hold a connection and a request
/// slot for ever. A body in more than 65,536 pieces (chunks or frames) gets 400.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    mut body: Body,
    config: &ServerConfig,
) -> Result<Bytes, ApiError> {
    let limit = config.max_request_size;
    let encoding = Encoding::of(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let outcome = if declared.is_some_and(|n| n > limit as u64) {
        Err(Unread::TooLarge)
    } else {
        let read = collect(&mut body, limit, max_pieces(limit));
        tokio::time::timeout(config.body_read_timeout, read).await.unwrap_or(Err(Unread::Late))
    };
    let bytes = match outcome {
        Ok(collected) => collected,
        Err(Unread::TooLarge) => {
            drain(headers, body, declared, config).await;
            return Err(ApiError::too_large(limit));
        }
        Err(Unread::Late) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeoutException",
                format!(
                    "the request body did not arrive within {:?} (body_read_timeout)",
                    config.body_read_timeout
                ),
            ));
        }
        Err(Unread::TooManyPieces) => {
            return Err(ApiError::bad_request(format!(
                "the request body came in more than {} chunks or frames; send it in fewer, \
                 larger ones",
                max_pieces(limit)
            )));
        }
        Err(Unread::Broken(e)) => {
            return Err(ApiError::bad_request(format!("could not read the request body: {e}")));
        }
    };
    if encoding == Encoding::Identity {
        return Ok(bytes);
    }
    // Inflating megabytes takes milliseconds of CPU: off the async runtime.
    tokio::task::spawn_blocking(move || encoding.decode(bytes, limit))
        .await
        .map_err(ApiError::internal)?
}

/// Most bytes of an oversized body read and dropped before its 413 goes out.
const DRAIN_MAX: u64 = 64 << 20;

/// Reads and drops the rest of an oversized body (up to [`DRAIN_MAX`] bytes, within the body read
/// timeout), so that the 413 reaches a client that writes its whole body before reading the
/// answer (Python's `urllib`): answering and closing while it still sends would leave it a broken
/// pipe instead of the answer. A client that waits for `100 Continue` has sent nothing, and a body
/// declared larger than the cap is not read: those get the answer at once.
async fn drain(headers: &HeaderMap, mut body: Body, declared: Option<u64>, config: &ServerConfig) {
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue || declared.is_some_and(|n| n > DRAIN_MAX) {
        return;
    }
    let read = async {
        let mut dropped = 0u64;
        while dropped <= DRAIN_MAX {
            match body.frame().await {
                Some(Ok(frame)) => {
                    dropped += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(config.body_read_timeout, read).await;
}

/// Most non-empty pieces (chunks of a chunked body, DATA frames of an HTTP/2 stream, reads of a
/// plain one) a body may come in: Triton's limit for chunks, so a body of a million one-byte chunks
/// or frames is refused early instead of costing a million rounds of framing work. It applies
/// whatever the headers say: an HTTP/2 client may declare a Content-Length and still send one-byte
/// frames.
const MAX_BODY_PIECES: usize = 65_536;

/// The piece cap for a body of at most `limit` bytes: [`MAX_BODY_PIECES`], or more for a limit
/// raised past 32 MiB, so that pieces averaging 512 bytes (a slow link's reads) always fit.
fn max_pieces(limit: usize) -> usize {
    MAX_BODY_PIECES.max(limit / 512)
}

/// Why a body was not read whole.
#[derive(Debug)]
enum Unread {
    /// Past the size limit.
    TooLarge,
    /// Past the body read timeout.
    Late,
    /// In more than [`max_pieces`] pieces.
    TooManyPieces,
    /// The connection failed under it.
    Broken(axum::Error),
}

/// Reads every data frame of `body` into one buffer, refusing a body over `limit` bytes or in more
/// than `max_pieces` non-empty frames; what is left unread stays in `body`.
async fn collect(body: &mut Body, limit: usize, max_pieces: usize) -> Result<Bytes, Unread> {
    // A body in one piece is kept as it came, without a copy.
    let (mut first, mut joined) = (None::<Bytes>, None::<bytes::BytesMut>);
    let (mut pieces, mut total) = (0usize, 0usize);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(Unread::Broken)?.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        pieces += 1;
        total += data.len();
        if total > limit {
            return Err(Unread::TooLarge);
        }
        if pieces > max_pieces {
            return Err(Unread::TooManyPieces);
        }
        match (&first, &mut joined) {
            (None, _) => first = Some(data),
            (Some(head), None) => {
                let mut buffer = bytes::BytesMut::with_capacity(head.len() + data.len());
                buffer.extend_from_slice(head);
                buffer.extend_from_slice(&data);
                joined = Some(buffer);
            }
            (Some(_), Some(buffer)) => buffer.extend_from_slice(&data),
        }
    }
    Ok(joined.map(bytes::BytesMut::freeze).or(first).unwrap_or_default())
}

/// A request body's `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

impl Encoding {
    fn of(headers: &HeaderMap) -> Result<Self, ApiError> {
        let Some(value) = headers.get(header::CONTENT_ENCODING) else { return Ok(Self::Identity) };
        let value = value.to_str().unwrap_or_default().trim().to_ascii_lowercase();
        match value.as_str() {
            "" | "identity" => Ok(Self::Identity),
            "gzip" | "x-gzip" => Ok(Self::Gzip),
            "deflate" => Ok(Self::Deflate),
            other => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaTypeException",
                format!("Content-Encoding `{other}` is not supported; use gzip, deflate or none"),
            )),
        }
    }

    /// Inflates `bytes`, stopping with 413 as soon as the output passes `limit`.
    fn decode(self, bytes: Bytes, limit: usize) -> Result<Bytes, ApiError> {
        let mut reader: Box<dyn Read + '_> = match self {
            Self::Identity => return Ok(bytes),
            Self::Gzip => Box::new(flate2::read::MultiGzDecoder::new(bytes.as_ref())),
            // HTTP's "deflate" is zlib-wrapped.
            Self::Deflate => Box::new(flate2::read::ZlibDecoder::new(bytes.as_ref())),
        };
        let mut out = Vec::new();
        let read = reader.by_ref().take(limit as u64 + 1).read_to_end(&mut out);
        match read {
            Ok(n) if n > limit => Err(ApiError::too_large(limit)),
            Ok(_) => Ok(Bytes::from(out)),
            Err(e) => Err(ApiError::bad_request(format!(
                "the request body is not valid {self:?} data: {e}"
            ))),
        }
    }
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The handler payload of a prediction request: each multipart part, or the raw body as `body`.
pub(crate) async fn payload(headers: &HeaderMap, body: Bytes) -> Result<Payload, ApiError> {
    let ctype = content_type(headers);
    let boundary = ctype.as_deref().and_then(|c| multer::parse_boundary(c).ok());
    let Some(boundary) = boundary else {
        return Ok(Payload {
            parts: vec![Part { name: "body".into(), content_type: ctype, body }],
        });
    };
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    let bad = |e: multer::Error| ApiError::bad_request(format!("malformed multipart body: {e}"));
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("data").to_owned();
        let content_type = field.content_type().map(ToString::to_string);
        let body = field.bytes().await.map_err(bad)?;
        parts.push(Part { name, content_type, body });
    }
    if parts.is_empty() {
        return Err(ApiError::bad_request("the multipart body has no parts"));
    }
    Ok(Payload { parts })
}
