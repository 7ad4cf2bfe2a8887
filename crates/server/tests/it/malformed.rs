//! A generated corpus of malformed requests, over a real socket, against every endpoint family:
//! each gets a 4xx, never a 5xx or a panic, and the server still answers a good request afterwards
//! (security-tests §4 C8).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::common::TestServer;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// Cases per endpoint family.
const CASES: usize = 1000;

/// A small deterministic generator, so a failing case can be reproduced from its index.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A request to send: method, path (relative to the listener), headers, body.
struct Case {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    extra_header: Option<(&'static str, String)>,
    body: Vec<u8>,
}

fn valid_v2() -> Value {
    json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.5; 64]}]})
}

/// Turns a valid OIP request into a broken one, in one of many ways.
fn broken_v2(rng: &mut Rng) -> (Vec<u8>, Option<(&'static str, String)>) {
    let good = serde_json::to_vec(&valid_v2()).unwrap();
    let mut v = valid_v2();
    let input = &mut v["inputs"][0];
    match rng.below(20) {
        0 => return (good[..rng.below(good.len())].to_vec(), None),
        1 => {
            let n = 1 + rng.below(200);
            return (rng.bytes(n), None);
        }
        2 => {
            return (
                b"{\"inputs\": [{\"name\": \"input\", \"data\": [NaN, Infinity]}]}".to_vec(),
                None,
            );
        }
        3 => input["shape"] = json!([1, 63]),
        4 => input["shape"] = json!([-1, 64]),
        5 => input["shape"] = json!([4_294_967_296u64, 4_294_967_296u64, 4_294_967_296u64]),
        6 => input["shape"] = json!("1x64"),
        7 => input["datatype"] = json!(*rng.pick(&["FP128", "", "fp32 ", "INT4", "BYTES"])),
        8 => input["datatype"] = json!(32),
        9 => input["name"] = json!("nope"),
        10 => v["inputs"] = json!([]),
        11 => {
            let dup = v["inputs"][0].clone();
            v["inputs"].as_array_mut().unwrap().push(dup);
        }
        12 => input["data"] = json!(vec!["a"; 64]),
        13 => input["data"] = json!([vec![0.5; 32], vec![0.5; 31]]),
        14 => input["data"] = json!({"x": 1}),
        15 => input.as_object_mut().unwrap().remove("data").map(|_| ()).unwrap_or(()),
        16 => v = json!({"inputs": "input"}),
        17 => v = json!([1, 2, 3]),
        18 => {
            input.as_object_mut().unwrap().remove("data");
            input["parameters"] = json!({"binary_data_size": 256 + rng.below(1 << 20)});
            let json_part = serde_json::to_vec(&v).unwrap();
            let len = json_part.len();
            let mut body = json_part;
            let tail = rng.below(256);
            body.extend(rng.bytes(tail));
            return (body, Some(("inference-header-content-length", len.to_string())));
        }
        _ => {
            // A header length pointing past (or into the middle of) the JSON.
            let (past, inside) = (good.len() + 1 + rng.below(1000), rng.below(good.len()));
            let len = *rng.pick(&[past, inside]);
            return (good, Some(("inference-header-content-length", len.to_string())));
        }
    }
    (serde_json::to_vec(&v).unwrap(), None)
}

fn broken_prediction(rng: &mut Rng) -> (Vec<u8>, Option<&'static str>) {
    let good: Vec<u8> = serde_json::to_vec(&vec![0.5f32; 64]).unwrap();
    match rng.below(9) {
        0 => (good[..rng.below(good.len())].to_vec(), Some("application/json")),
        1 => {
            let n = 1 + rng.below(300);
            (rng.bytes(n), None)
        }
        2 => (serde_json::to_vec(&vec![0.5f32; 63]).unwrap(), Some("application/json")),
        3 => (b"[[1,2],[3]]".to_vec(), Some("application/json")),
        4 => (b"{\"data\": \"not numbers\"}".to_vec(), Some("application/json")),
        5 => (Vec::new(), None),
        6 => (
            b"--x\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n[1,2".to_vec(),
            Some("multipart/form-data; boundary=x"),
        ),
        7 => (b"--nope".to_vec(), Some("multipart/form-data")),
        _ => (b"[1e400, -1e400]".to_vec(), Some("application/json")),
    }
}

fn broken_management(rng: &mut Rng) -> (Method, String) {
    let junk = ["-1", "abc", "1e3", "99999999999999999999999", "", "%00", "..%2f..%2fetc"];
    match rng.below(9) {
        0 => (Method::POST, "/models".to_owned()),
        1 => (
            Method::POST,
            format!(
                "/models?url={}",
                rng.pick(&[
                    "../tiny",
                    "/etc/passwd",
                    "http://169.254.169.254/x.mar",
                    "file:///etc/passwd",
                    "nope.mar",
                    "%2e%2e/tiny"
                ])
            ),
        ),
        2 => (Method::POST, format!("/models?url=tiny&batch_size={}", rng.pick(&junk))),
        3 => (
            Method::POST,
            format!("/models?url=tiny&model_name={}", rng.pick(&["a/b", "..", "x y", "é", "tiny"])),
        ),
        // Unparsable counts are "not given", as TorchServe reads them; negative ones are refused.
        4 => (
            Method::PUT,
            format!("/models/tiny?min_worker={}", rng.pick(&["-1", "-7", "-2147483648"])),
        ),
        5 => (Method::PUT, "/models/tiny?min_worker=3&max_worker=1".to_owned()),
        6 => (Method::GET, format!("/models/{}", rng.pick(&["nope", "tiny/9.9", "%ff"]))),
        7 => (Method::PUT, format!("/models/tiny/{}/set-default", rng.pick(&["9.9", "..", "x"]))),
        _ => (Method::DELETE, format!("/models/{}", rng.pick(&["nope", "tiny/9.9"]))),
    }
}

async fn send_all(server: &TestServer, base: &str, cases: Vec<Case>) -> BTreeMap<u16, usize> {
    let limit = Arc::new(Semaphore::new(16));
    let mut tasks = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        let client = server.client.clone();
        let url = format!("{base}{}", case.path);
        let permit = Arc::clone(&limit).acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut request = client.request(case.method, &url).body(case.body);
            if let Some(ct) = case.content_type {
                request = request.header("content-type", ct);
            }
            if let Some((name, value)) = case.extra_header {
                request = request.header(name, value);
            }
            let response = request.send().await.unwrap_or_else(|e| panic!("case {i} {url}: {e}"));
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            drop(permit);
            assert!(
                (400..500).contains(&status),
                "case {i} {url}: expected a 4xx, got {status}: {body}"
            );
            status
        }));
    }
    let mut counts = BTreeMap::new();
    for task in tasks {
        *counts.entry(task.await.unwrap()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_malformed_requests_per_family_get_4xx_and_the_server_carries_on() {
    let _measured = crate::common::MEMORY_MEASURED.lock().await;
    let server = TestServer::default().await;
    let mut rng = Rng(0x005E_ED0F_0A5E);
    let rss_before = crate::common::rss_kib();

    let v2: Vec<Case> = (0..CASES)
        .map(|_| {
            let (body, extra_header) = broken_v2(&mut rng);
            let path = (*rng
                .pick(&["/v2/models/tiny/infer", "/v2/models/tiny/versions/1.0/infer"]))
            .to_owned();
            Case {
                method: Method::POST,
                path,
                content_type: Some("application/json"),
                extra_header,
                body,
            }
        })
        .collect();
    let predictions: Vec<Case> = (0..CASES)
        .map(|_| {
            let (body, content_type) = broken_prediction(&mut rng);
            Case {
                method: Method::POST,
                path: "/predictions/tiny".into(),
                content_type,
                extra_header: None,
                body,
            }
        })
        .collect();
    let management: Vec<Case> = (0..CASES)
        .map(|_| {
            let (method, path) = broken_management(&mut rng);
            Case { method, path, content_type: None, extra_header: None, body: Vec::new() }
        })
        .collect();

    let inference = server.inference.clone();
    let v2_counts = send_all(&server, &inference, v2).await;
    let prediction_counts = send_all(&server, &inference, predictions).await;
    let management_counts = send_all(&server, &server.management.clone(), management).await;
    eprintln!(
        "v2: {v2_counts:?}\npredictions: {prediction_counts:?}\nmanagement: {management_counts:?}"
    );

    // Still serving, and the models are still the two it started with.
    let (status, body) =
        server.post(format!("{inference}/v2/models/tiny/infer"), valid_v2().to_string()).await;
    assert_eq!(status, 200, "{body}");
    let (status, list) = server.get(format!("{}/models", server.management)).await;
    assert_eq!(status, 200);
    assert_eq!(list["models"].as_array().unwrap().len(), 2, "{list}");
    if let (Some(before), Some(after)) = (rss_before, crate::common::rss_kib()) {
        eprintln!("RSS {before} KiB -> {after} KiB");
        assert!(after.saturating_sub(before) < 50 * 1024, "RSS grew from {before} to {after} KiB");
    }
    server.stop().await;
}
