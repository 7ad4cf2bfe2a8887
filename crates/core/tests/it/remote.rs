//! Registering models from URLs against real local HTTP origins that count their connections:
//! refused URLs cause no connection and leave the store untouched; allowed ones load and serve.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use oxserve_backend::{Tensor, TensorData};
use oxserve_backend_tract::TractBackend;
use oxserve_core::config::EngineConfig;
use oxserve_core::{EngineError, RegisterRequest, Registry, RequestOptions};
use oxserve_store::remote::{AllowList, DownloadLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A tiny HTTP/1.1 origin: `/models/<file>` serves `body`, `/redirect/<file>` answers 302 to
/// `redirect_to`, `/chunked/<file>` streams `body` without a length. Counts accepted connections.
struct Origin {
    base: String,
    connections: Arc<AtomicUsize>,
}

async fn origin(body: Vec<u8>, redirect_to: Option<String>) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    let body = Arc::new(body);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = Arc::clone(&body);
            let redirect_to = redirect_to.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let file = path.rsplit('/').next().unwrap_or_default().to_owned();
                let response: Vec<u8> = if path.starts_with("/models/") {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&body);
                    r
                } else if path.starts_with("/chunked/") {
                    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                        .to_vec();
                    for chunk in body.chunks(4096) {
                        r.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        r.extend_from_slice(chunk);
                        r.extend_from_slice(b"\r\n");
                    }
                    r.extend_from_slice(b"0\r\n\r\n");
                    r
                } else if let (true, Some(to)) = (path.starts_with("/redirect/"), &redirect_to) {
                    format!(
                        "HTTP/1.1 302 Found\r\nLocation: {to}/models/{file}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .into_bytes()
                } else {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_vec()
                };
                let _ = socket.write_all(&response).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Origin { base, connections }
}

fn tiny_model() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/tiny.onnx");
    std::fs::read(path).unwrap()
}

fn store_files(store: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(store).unwrap().map(|e| e.unwrap().path()).collect()
}

fn registry(store: &Path, allowed: &str, max_bytes: u64) -> Arc<Registry> {
    let config = EngineConfig {
        model_store: store.to_owned(),
        allowed_urls: AllowList::parse(allowed).unwrap(),
        download_limits: DownloadLimits { max_bytes, ..DownloadLimits::default() },
        ..EngineConfig::default()
    };
    Arc::new(Registry::new(config, Arc::new(TractBackend), oxserve_handlers::builtins()))
}

fn request(url: &str, sha256: Option<String>) -> RegisterRequest {
    RegisterRequest {
        url: url.to_owned(),
        model_name: Some("remote".into()),
        synchronous: true,
        sha256,
        ..Default::default()
    }
}

fn assert_refused(result: Result<impl std::fmt::Debug, EngineError>, url: &str) -> String {
    match result {
        Err(e @ (EngineError::InvalidArgument(_) | EngineError::Conflict(_))) => e.to_string(),
        other => panic!("{url}: expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn refused_urls_make_no_connection_and_write_nothing() {
    let allowed = origin(tiny_model(), None).await;
    let elsewhere = origin(tiny_model(), None).await;
    let store = tempfile::tempdir().unwrap();
    std::fs::write(store.path().join("sentinel.txt"), b"unchanged").unwrap();
    let before = store_files(store.path());
    let port = allowed.base.rsplit(':').next().unwrap().to_owned();
    let other_port = elsewhere.base.rsplit(':').next().unwrap().to_owned();
    let registry = registry(store.path(), &format!("{}/models/", allowed.base), 1 << 30);

    for url in [
        "file:///etc/passwd".to_owned(),
        "http://169.254.169.254/latest/meta-data/x.mar".to_owned(),
        format!("{}/models/../x/tiny.onnx", allowed.base),
        format!("{}/models/%2e%2e/x/tiny.onnx", allowed.base),
        format!("http://127.0.0.1:{port}@127.0.0.1:{other_port}/models/tiny.onnx"),
        format!("http://127.0.0.1.nip.invalid:{port}/models/tiny.onnx"),
        format!("http://2130706433:{port}/models/tiny.onnx"),
        format!("http://0x7f000001:{port}/models/tiny.onnx"),
        format!("http://[::ffff:127.0.0.1]:{port}/models/tiny.onnx"),
        format!("http://localhost:{port}/models/tiny.onnx"),
        format!("{}/models/tiny.onnx", elsewhere.base),
        format!("{}/models/script.sh", allowed.base),
    ] {
        let err = assert_refused(registry.register(request(&url, None)).await, &url);
        assert!(err.contains("not allowed") || err.contains("not a model archive"), "{url}: {err}");
    }
    assert_eq!(allowed.connections.load(Ordering::SeqCst), 0, "a refused URL was fetched");
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0, "a refused URL was fetched");
    assert_eq!(store_files(store.path()), before);
}

#[tokio::test]
async fn redirects_off_the_list_are_refused_without_touching_the_target() {
    let elsewhere = origin(tiny_model(), None).await;
    let allowed = origin(tiny_model(), Some(elsewhere.base.clone())).await;
    let store = tempfile::tempdir().unwrap();
    let registry = registry(store.path(), &format!("{}/redirect/", allowed.base), 1 << 30);
    let url = format!("{}/redirect/tiny.onnx", allowed.base);
    let err = assert_refused(registry.register(request(&url, None)).await, &url);
    assert!(err.contains("failed to download"), "{err}");
    assert_eq!(allowed.connections.load(Ordering::SeqCst), 1);
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0, "the redirect was followed");
    assert!(store_files(store.path()).is_empty());
}

#[tokio::test]
async fn oversized_and_mismatched_downloads_leave_no_file() {
    let model = tiny_model();
    let allowed = origin(model.clone(), None).await;
    let store = tempfile::tempdir().unwrap();
    let small = registry(store.path(), &allowed.base, (model.len() - 1) as u64);
    for path in ["models", "chunked"] {
        let url = format!("{}/{path}/tiny.onnx", allowed.base);
        let err = assert_refused(small.register(request(&url, None)).await, &url);
        assert!(err.contains("over the limit"), "{err}");
    }
    let roomy = registry(store.path(), &allowed.base, 1 << 30);
    let url = format!("{}/models/tiny.onnx", allowed.base);
    let err = assert_refused(roomy.register(request(&url, Some("00".repeat(32)))).await, &url);
    assert!(err.contains("sha256"), "{err}");
    assert!(store_files(store.path()).is_empty(), "a partial or rejected download is visible");
}

#[tokio::test]
async fn an_allowed_url_downloads_into_the_store_and_serves() {
    use sha2::{Digest, Sha256};
    let model = tiny_model();
    let digest: String = Sha256::digest(&model).iter().map(|b| format!("{b:02x}")).collect();
    let allowed = origin(model, None).await;
    let store = tempfile::tempdir().unwrap();
    let registry = registry(store.path(), &format!("{}/chunked/", allowed.base), 1 << 30);
    let url = format!("{}/chunked/tiny.onnx", allowed.base);
    let version = registry.register(request(&url, Some(digest))).await.unwrap();
    assert_eq!(version.url(), url);
    assert_eq!(store_files(store.path()), BTreeSet::from([store.path().join("tiny.onnx")]));
    let input = Tensor::new(vec![1, 64], TensorData::F32(vec![0.5; 64])).unwrap();
    let out = version.infer(vec![input], &RequestOptions::default()).await.unwrap();
    assert_eq!(out.output[0].shape(), &[1, 10]);

    // The same file again is a conflict, not a silent overwrite.
    let again = RegisterRequest { model_name: Some("again".into()), ..request(&url, None) };
    let err = assert_refused(registry.register(again).await, &url);
    assert!(err.contains("already exists"), "{err}");
    registry.shutdown();
}
