//! The HTTP ceiling of a machine: a hyper server that reads each request's body and answers with
//! fixed bytes, on the same listener machinery, runtime and protocols (HTTP/1.1 and HTTP/2 without
//! TLS) as oxserve. `scripts/overhead.sh` measures oxserve against it in one run, with the same load
//! generator and the same answer bytes, so their ratio is the server's own overhead.
//!
//! ```text
//! cargo run --release -p oxserve-server --example bare_http -- ANSWER_FILE [CONTENT_TYPE]
//! ```
//!
//! It prints `listening on http://127.0.0.1:PORT` (a free port) and serves until killed. A request
//! whose content type is `application/grpc...` is answered as a gRPC call: the file's bytes (a
//! length-prefixed message), then the `grpc-status: 0` trailer.

#![allow(clippy::print_stdout)] // the address line is this program's output

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;

type Answer = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(
    request: Request<Incoming>,
    body: Bytes,
    content_type: HeaderValue,
) -> Result<Response<Answer>, hyper::Error> {
    let grpc = request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    // Read the whole request, as a server that decodes it must.
    request.into_body().collect().await?;
    let response = if grpc {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let frames = [Ok(Frame::data(body)), Ok(Frame::trailers(trailers))];
        Response::builder()
            .header(CONTENT_TYPE, "application/grpc")
            .body(StreamBody::new(futures_util::stream::iter(frames)).boxed())
    } else {
        Response::builder().header(CONTENT_TYPE, content_type).body(Full::new(body).boxed())
    };
    Ok(response.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed())))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: bare_http ANSWER_FILE [CONTENT_TYPE]"))?;
    let body = Bytes::from(std::fs::read(&file)?);
    let content_type = HeaderValue::from_str(&args.next().unwrap_or("application/json".into()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (body, content_type) = (body.clone(), content_type.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                answer(request, body.clone(), content_type.clone())
            });
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
