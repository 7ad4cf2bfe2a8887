//! Slow and oversized clients, compressed bodies and HTTPS, over real sockets
//! (security-tests §4 C9, C10 and the TLS listener).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::{Options, TestServer};
use oxserve_server::{TlsConfig, TlsListeners};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn tiny_body() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.5; 64]}]
    }))
    .unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

async fn short_timeouts() -> TestServer {
    let mut options = Options::default();
    options.server.header_read_timeout = Duration::from_secs(1);
    options.server.body_read_timeout = Duration::from_secs(1);
    TestServer::start(options).await
}

/// Reads until the server closes the connection; returns what it sent and how long that took.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open for {within:?}"),
            Ok(Ok(0) | Err(_)) => {
                return (String::from_utf8_lossy(&seen).into_owned(), started.elapsed());
            }
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn compressed_bodies_are_inflated_under_the_size_limit() {
    let server = TestServer::default().await;
    let url = format!("{}/v2/models/tiny/infer", server.inference);
    let send = |body: Vec<u8>, encoding: &'static str| {
        server
            .client
            .post(&url)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .send()
    };
    let ok = send(gzip(&tiny_body()), "gzip").await.unwrap();
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());

    // 64 MiB of zeros is about 64 KiB gzipped: far under the limit on the wire, far over it inflated.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 6_553_500 / 10);
    let refused = send(bomb, "gzip").await.unwrap();
    assert_eq!(refused.status(), 413);

    let refused = send(tiny_body(), "br").await.unwrap();
    assert_eq!(refused.status(), 415);
    let refused = send(b"not gzip at all".to_vec(), "gzip").await.unwrap();
    assert_eq!(refused.status(), 400);
    server.stop().await;
}

#[tokio::test]
async fn slow_header_senders_are_disconnected_and_others_are_served() {
    let server = short_timeouts().await;
    let addr = server.inference.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream.write_all(b"P").await.unwrap();
        slow.push(stream);
    }
    // A normal client is served while the slow ones hang on.
    let (status, _) =
        server.post(format!("{}/v2/models/tiny/infer", server.inference), tiny_body()).await;
    assert_eq!(status, 200);
    for stream in &mut slow {
        // Another byte now and then does not reset the clock.
        let _ = stream.write_all(b"O").await;
    }
    for mut stream in slow {
        let (_, took) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
        assert!(took < Duration::from_secs(10));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_slow_body_is_answered_408() {
    let server = short_timeouts().await;
    let addr = server.inference.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let head = "POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 1000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{\"inp").await.unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn https_listeners_serve_with_the_configured_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.key_pair.serialize_pem()).unwrap();
    let mut options = Options::default();
    // TLS on the inference listener only, as `inference_address=https://...` with the others
    // `http://` sets it.
    let only_inference =
        TlsListeners { inference: true, management: false, metrics: false, grpc: false };
    options.server.tls = Some(TlsConfig {
        certificate_file: cert_file.clone(),
        private_key_file: key_file.clone(),
        listeners: only_inference,
    });
    let server = TestServer::start(options).await;
    let metrics = server.client.get(format!("{}/metrics", server.metrics)).send().await.unwrap();
    assert_eq!(metrics.status(), 200, "the metrics listener stays plain HTTP");
    let port = server.inference.rsplit(':').next().unwrap().to_owned();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}/v2/models/tiny/infer");
    let answer = client.post(&url).body(tiny_body()).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.version(), reqwest::Version::HTTP_2, "ALPN should offer h2");
    // Plain HTTP on a TLS port gets no answer.
    let plain = server.client.get(format!("http://127.0.0.1:{port}/ping")).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    server.stop().await;

    // A key that does not match the certificate stops the start with a clear error.
    let other = rcgen::generate_simple_self_signed(vec!["other".to_owned()]).unwrap();
    std::fs::write(&key_file, other.key_pair.serialize_pem()).unwrap();
    let registry = std::sync::Arc::new(oxserve_core::Registry::new(
        oxserve_core::config::EngineConfig::default(),
        std::sync::Arc::new(oxserve_backend_tract::TractBackend),
        oxserve_handlers::builtins(),
    ));
    let mut config = Options::default().server;
    config.tls = Some(TlsConfig {
        certificate_file: cert_file,
        private_key_file: key_file,
        listeners: TlsListeners::ALL,
    });
    let err = oxserve_server::Server::bind(config.clone(), registry.clone()).await.unwrap_err();
    assert!(err.to_string().contains("does not fit the certificate"), "{err}");

    // An RSA-1024 key (old test suites ship them) is refused as too weak, and the message says so.
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tls");
    config.tls = Some(TlsConfig {
        certificate_file: fixtures.join("rsa1024-cert.pem"),
        private_key_file: fixtures.join("rsa1024-key.pem"),
        listeners: TlsListeners::ALL,
    });
    let err = oxserve_server::Server::bind(config.clone(), registry.clone()).await.unwrap_err();
    assert!(err.to_string().contains("RSA keys of 2048 to 8192 bits"), "{err}");

    // Two APIs on one address must agree on TLS.
    config.tls = Some(TlsConfig { listeners: only_inference, ..config.tls.unwrap() });
    // (A fixed port: port-0 addresses never share; the start stops before anything binds.)
    config.inference_address = "127.0.0.1:1".parse().unwrap();
    config.management_address = config.inference_address;
    let err = oxserve_server::Server::bind(config, registry).await.unwrap_err();
    assert!(err.to_string().contains("https://"), "{err}");
}

fn rss_kib() -> u64 {
    crate::common::rss_kib().unwrap_or(0)
}

/// Ten times the queue size of clients, each sending a 4 MB body to a slow model: requests beyond
/// what the model can hold are refused before their bodies are read, so the server's peak memory
/// stays under queue × max_request_size + 50 MB (security-tests §4 D13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_times_the_queue_of_clients_keeps_memory_bounded() {
    const QUEUE: usize = 10;
    let _measured = crate::common::MEMORY_MEASURED.lock().await;
    let options = Options {
        engine: oxserve_core::config::EngineConfig { job_queue_size: QUEUE, ..Default::default() },
        models: vec![crate::common::model("slow", "slow.onnx")],
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    // Valid JSON padded with whitespace to 4 MB; one buffer shared by every client.
    let mut text = String::from("[[1.0]");
    text.push_str(&" ".repeat(4 << 20));
    text.push(']');
    let body = bytes::Bytes::from(text);
    let baseline = rss_kib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let sampler = {
        let peak = std::sync::Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let url = format!("{}/predictions/slow", server.inference);
    let tasks: Vec<_> = (0..10 * QUEUE)
        .map(|_| {
            let (client, url, body) = (server.client.clone(), url.clone(), body.clone());
            tokio::spawn(async move {
                client.post(url).body(body).send().await.map(|r| r.status().as_u16())
            })
        })
        .collect();
    let (mut ok, mut refused, mut reset) = (0, 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(200) => ok += 1,
            Ok(503) => refused += 1,
            // Answered 503 before the body was read, the connection is closed while the client is
            // still sending; some clients then see the reset instead of the answer.
            Err(_) => reset += 1,
            Ok(other) => panic!("unexpected status {other}"),
        }
    }
    sampler.abort();
    let grown_mib = peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(baseline) / 1024;
    eprintln!(
        "{ok} answered, {refused} refused at once, {reset} reset; peak RSS growth {grown_mib} MiB"
    );
    assert!(ok >= 1 && refused + reset >= 1, "ok={ok} refused={refused} reset={reset}");
    let bound_mib = (QUEUE * 6_553_500 / (1 << 20) + 50) as u64;
    assert!(grown_mib < bound_mib, "peak RSS grew {grown_mib} MiB, bound {bound_mib} MiB");
    server.stop().await;
}

/// HTTP/2 rapid reset (CVE-2023-44487): one connection opens prediction streams to the slow model
/// and resets each right after sending it, as fast as it can. The server must not do work in
/// proportion to the streams (reset requests are dropped from the queue, or the connection is
/// closed with GOAWAY), and it must go on serving everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_reset_costs_the_server_no_work_per_stream() {
    const STREAMS: usize = 5_000;
    let options =
        Options { models: vec![crate::common::model("slow", "slow.onnx")], ..Options::default() };
    let server = TestServer::start(options).await;
    let addr = server.inference.trim_start_matches("http://").to_owned();
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let uri = format!("{}/predictions/slow", server.inference);
    let mut sent = 0;
    let mut client = Some(client);
    while sent < STREAMS {
        let Some(ready) = client.take() else { break };
        let Ok(mut ready) = ready.ready().await else { break };
        let request =
            http::Request::post(&uri).header("content-type", "application/json").body(()).unwrap();
        let Ok((_response, mut stream)) = ready.send_request(request, false) else { break };
        if stream.send_data(bytes::Bytes::from_static(b"[[1.0]]"), true).is_err() {
            break;
        }
        stream.send_reset(h2::Reason::CANCEL);
        sent += 1;
        client = Some(ready);
    }
    drop(client);
    // The connection ends: closed by the server (GOAWAY), or by us once every stream is sent.
    let closed_by_server = sent < STREAMS;
    let _ = tokio::time::timeout(Duration::from_secs(30), connection).await;

    // Everyone else is still served.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let r = client.post(&uri).body("[[1.0]]").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let m = crate::common::scrape(&server).await;
    let outcome = |o: &str| {
        m.get(&format!("oxserve_requests_total{{model=\"slow\",outcome=\"{o}\",version=\"1.0\"}}"))
            .copied()
            .unwrap_or(0.0)
    };
    let (ran, cancelled) = (outcome("ok"), outcome("cancelled"));
    eprintln!(
        "rapid reset: {sent} streams sent (connection closed by the server: {closed_by_server}), \
         {ran} requests run (the last one ours), {cancelled} cancelled in the queue"
    );
    assert!(sent >= 1);
    // At most one in ten streams did any model work (a worker may take a request before its reset
    // arrives); the rest were never run.
    assert!(ran <= 1.0 + sent as f64 / 10.0, "{ran} of {sent} reset requests ran");
    server.stop().await;
}

/// A chunked OIP request for `tiny`: its JSON as one chunk, then `spaces` one-byte chunks of
/// whitespace (so the body stays valid JSON), then the last chunk.
fn many_chunks(spaces: usize) -> bytes::Bytes {
    let json = tiny_body();
    let mut wire = b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\n\
        Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        .to_vec();
    wire.extend_from_slice(format!("{:x}\r\n", json.len()).as_bytes());
    wire.extend_from_slice(&json);
    wire.extend_from_slice(b"\r\n");
    for _ in 0..spaces {
        wire.extend_from_slice(b"1\r\n \r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire.into()
}

/// Sends `wire` (writes stop when the server hangs up) and returns what came back.
async fn send_raw(addr: &str, wire: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(wire).await;
    read_until_closed(&mut stream, Duration::from_secs(30)).await.0
}

/// security-tests §4 C9 (Triton's limit): a body without a Content-Length may come in at most
/// 65,536 non-empty chunks; one more gets a 400. (The memory side, a hundred requests of a million
/// chunks each against the real server process, is `cli/tests/it/serve_cli.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_in_more_than_65536_chunks_is_refused() {
    let server = TestServer::default().await;
    let addr = server.inference.trim_start_matches("http://").to_owned();
    // The JSON is one chunk, so 65,535 more is the most that is accepted.
    let answer = send_raw(&addr, &many_chunks(65_535)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{}", &answer[..answer.len().min(300)]);
    let answer = send_raw(&addr, &many_chunks(65_536)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{}", &answer[..answer.len().min(300)]);
    assert!(answer.contains("more than 65536 chunks"), "{answer}");
    server.stop().await;
}

/// A body sent one byte per HTTP/2 DATA frame, with an honest Content-Length, is not read to the
/// end: h2 itself ends such a connection (GOAWAY `too_many_data_frames`, ENHANCE_YOUR_CALM, seen
/// after a few thousand frames here), and the server's own cap of 65,536 pieces would answer 400
/// behind it. Either way the request is not served and the server goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_body_in_one_byte_frames_is_not_read_to_the_end() {
    const SPACES: usize = 70_000;
    let server = TestServer::default().await;
    let addr = server.inference.trim_start_matches("http://").to_owned();
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut body = tiny_body();
    body.resize(body.len() + SPACES, b' ');
    let url = format!("{}/v2/models/tiny/infer", server.inference);
    let request = http::Request::post(&url)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(())
        .unwrap();
    let mut client = client.ready().await.unwrap();
    let (response, mut stream) = client.send_request(request, false).unwrap();
    for (i, byte) in body.iter().enumerate() {
        // Wait for flow-control room, so each byte leaves as a frame of its own.
        stream.reserve_capacity(1);
        match futures_util::future::poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(_)) => {}
            _ => break,
        }
        if stream.send_data(bytes::Bytes::copy_from_slice(&[*byte]), i + 1 == body.len()).is_err() {
            break;
        }
    }
    match tokio::time::timeout(Duration::from_secs(60), response).await.unwrap() {
        // The server's cap answered first.
        Ok(answer) => assert_eq!(answer.status(), 400),
        // h2 closed the connection first.
        Err(e) => assert!(e.is_go_away() || e.is_io(), "{e:?}"),
    }
    assert_eq!(server.post(url, tiny_body()).await.0, 200, "the server goes on serving");
    server.stop().await;
}

/// Writes the whole of `wire` before reading, as Python's `urllib` does, and returns the answer
/// once its JSON body has come (or the connection ended).
async fn write_all_then_read(addr: &str, wire: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(wire).await.expect("the server read the whole body before answering");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).ends_with('}') {
        match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await.unwrap() {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// A client that sends its whole oversized body before reading (Python's urllib, 7–20 MB bodies)
/// gets the 413 JSON answer, not a broken pipe: the server reads and drops the rest of the body
/// before answering. Declared by Content-Length, and chunked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_written_before_reading_still_gets_its_413() {
    let server = TestServer::default().await;
    let addr = server.inference.trim_start_matches("http://").to_owned();
    let body = vec![b' '; 12 << 20];
    let mut wire = format!(
        "POST /predictions/tiny HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    wire.extend_from_slice(&body);
    let answer = write_all_then_read(&addr, &wire).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", &answer[..answer.len().min(300)]);
    assert!(answer.contains("max_request_size"), "{answer}");

    let mut wire =
        b"POST /predictions/tiny HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for piece in body.chunks(1 << 20) {
        wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let answer = write_all_then_read(&addr, &wire).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", &answer[..answer.len().min(300)]);
    server.stop().await;
}
