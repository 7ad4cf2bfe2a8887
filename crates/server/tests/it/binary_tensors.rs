//! The binary tensor extension on OIP REST over a real socket: raw inputs after the JSON header, raw
//! outputs on request, BYTES framing, and clear 400s for bodies that do not add up.

#![allow(clippy::unwrap_used)]

use crate::common::{TestServer, expected};
use serde_json::{Value, json};

const HEADER: &str = "inference-header-content-length";

fn le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A body of `header` JSON followed by `binary`, and its header length.
fn body(header: &Value, binary: &[u8]) -> (Vec<u8>, usize) {
    let mut bytes = serde_json::to_vec(header).unwrap();
    let length = bytes.len();
    bytes.extend_from_slice(binary);
    (bytes, length)
}

struct Answer {
    status: u16,
    header_length: Option<usize>,
    content_type: String,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        let end = self.header_length.unwrap_or(self.bytes.len());
        serde_json::from_slice(&self.bytes[..end]).unwrap()
    }

    fn binary(&self) -> &[u8] {
        &self.bytes[self.header_length.unwrap_or(self.bytes.len())..]
    }
}

async fn infer(s: &TestServer, bytes: Vec<u8>, header_length: Option<usize>) -> Answer {
    let mut r = s.client.post(format!("{}/v2/models/tiny/infer", s.inference)).body(bytes);
    if let Some(n) = header_length {
        r = r.header(HEADER, n).header("content-type", "application/octet-stream");
    }
    let r = r.send().await.unwrap();
    Answer {
        status: r.status().as_u16(),
        header_length: r.headers().get(HEADER).map(|v| v.to_str().unwrap().parse().unwrap()),
        content_type: r.headers()["content-type"].to_str().unwrap().to_owned(),
        bytes: r.bytes().await.unwrap().to_vec(),
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn json_data(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_inputs_and_outputs_equal_the_json_path() {
    let s = TestServer::default().await;
    let (status, meta) = s.get(format!("{}/v2", s.inference)).await;
    assert_eq!(status, 200);
    assert!(meta["extensions"].as_array().unwrap().contains(&json!("binary_tensor_data")));

    let plain = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                   "data": expected()["tiny"]["input"]}]});
    let reference = infer(&s, serde_json::to_vec(&plain).unwrap(), None).await;
    assert_eq!(reference.status, 200);
    assert_eq!(reference.header_length, None);
    let reference = json_data(&reference.json()["outputs"][0]["data"]);

    // Binary in, JSON out.
    let header = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                    "parameters": {"binary_data_size": 256}}]});
    let (bytes, n) = body(&header, &le(&crate::common::tiny_row()));
    let a = infer(&s, bytes, Some(n)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
    assert_eq!(a.header_length, None);
    assert_eq!(json_data(&a.json()["outputs"][0]["data"]), reference);

    // Binary in, binary out for every output (request-level flag).
    let mut header = header.clone();
    header["parameters"] = json!({"binary_data_output": true});
    let (bytes, n) = body(&header, &le(&crate::common::tiny_row()));
    let a = infer(&s, bytes, Some(n)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type, "application/octet-stream");
    let out = &a.json()["outputs"][0];
    assert_eq!(out["parameters"]["binary_data_size"], 40);
    assert!(out.get("data").is_none(), "{out}");
    assert_eq!(f32s(a.binary()), reference);

    // JSON in, binary out for a named output; an explicit `binary_data: false` wins over the
    // request-level flag.
    let output = s.get(format!("{}/v2/models/tiny", s.inference)).await.1["outputs"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut asked = plain.clone();
    asked["outputs"] = json!([{"name": output, "parameters": {"binary_data": true}}]);
    let a = infer(&s, serde_json::to_vec(&asked).unwrap(), None).await;
    assert_eq!(a.header_length.map(|n| n + 40), Some(a.bytes.len()));
    assert_eq!(f32s(a.binary()), reference);
    asked["parameters"] = json!({"binary_data_output": true});
    asked["outputs"] = json!([{"name": output, "parameters": {"binary_data": false}}]);
    let a = infer(&s, serde_json::to_vec(&asked).unwrap(), None).await;
    assert_eq!(a.header_length, None);
    assert_eq!(json_data(&a.json()["outputs"][0]["data"]), reference);
    // The same output asked twice is refused, as Triton does.
    asked["outputs"] = json!([{"name": output}, {"name": output}]);
    let a = infer(&s, serde_json::to_vec(&asked).unwrap(), None).await;
    assert_eq!(a.status, 400);
    assert!(
        a.json()["error"].as_str().unwrap().contains("already exists in request"),
        "{:?}",
        a.json()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_do_not_add_up_are_refused() {
    let s = TestServer::default().await;
    let header = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                    "parameters": {"binary_data_size": 256}}]});
    let check = |a: Answer, needle: &str| {
        assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.bytes));
        let error = a.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(needle), "{error}");
    };
    // Fewer bytes than binary_data_size says.
    let (bytes, n) = body(&header, &le(&crate::common::tiny_row())[..200]);
    check(infer(&s, bytes, Some(n)).await, "runs past");
    // Bytes left over.
    let mut extra = le(&crate::common::tiny_row());
    extra.extend_from_slice(&[0; 8]);
    let (bytes, n) = body(&header, &extra);
    check(infer(&s, bytes, Some(n)).await, "belong to no input");
    // binary_data_size that does not fit the shape.
    let mut short = header.clone();
    short["inputs"][0]["parameters"]["binary_data_size"] = json!(252);
    let (bytes, n) = body(&short, &le(&crate::common::tiny_row())[..252]);
    check(infer(&s, bytes, Some(n)).await, "256 bytes");
    // A header length past the end of the body.
    let (bytes, _) = body(&header, &le(&crate::common::tiny_row()));
    let len = bytes.len();
    check(infer(&s, bytes, Some(len + 1)).await, HEADER);
    // Neither data nor binary_data_size, and both.
    let none = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32"}]});
    check(infer(&s, serde_json::to_vec(&none).unwrap(), None).await, "neither");
    let mut both = header.clone();
    both["inputs"][0]["data"] = expected()["tiny"]["input"].clone();
    let (bytes, n) = body(&both, &le(&crate::common::tiny_row()));
    check(infer(&s, bytes, Some(n)).await, "both");
    // A flag that is not a boolean.
    let mut flag = header.clone();
    flag["parameters"] = json!({"binary_data_output": "yes"});
    let (bytes, n) = body(&flag, &le(&crate::common::tiny_row()));
    check(infer(&s, bytes, Some(n)).await, "boolean");
    s.stop().await;
}
