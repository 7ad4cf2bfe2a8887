//! Runs the example server binary as a real process on loopback ports and sends it digits.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// The server process, killed when the test ends (pass or fail).
struct Running {
    child: Child,
    inference: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn start() -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxserve-digit-art"))
        .args(["--disable-token-auth"])
        .args(["--inference-address", "127.0.0.1:0"])
        .args(["--management-address", "127.0.0.1:0"])
        .args(["--metrics-address", "127.0.0.1:0"])
        .args(["--grpc-inference-address", "127.0.0.1:0"])
        .args(["--grpc-management-address", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut running = Running { child, inference: String::new() };
    // The process exits (and the read ends) if startup fails, so this cannot hang.
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("Model server started. Inference API: ") {
            running.inference = rest.split(',').next().unwrap().to_owned();
            return running;
        }
    }
    panic!("the server exited before it started");
}

async fn predict(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, Value) {
    let response = client.post(url).body(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn custom_handler_serves_ascii_art_digits() {
    let server = start();
    let client = reqwest::Client::new();
    let url = format!("{}/predictions/digit-art", server.inference);
    let inputs = crate_dir().join("inputs");

    let (status, two) =
        predict(&client, &url, std::fs::read(inputs.join("two.txt")).unwrap()).await;
    assert_eq!(status, 200, "{two}");
    assert_eq!((two["digit"].clone(), two["name"].clone()), (json!(2), json!("two")), "{two}");
    assert!(two["confidence"].as_f64().unwrap() > 0.5);

    let (_, eight) = predict(&client, &url, std::fs::read(inputs.join("eight.txt")).unwrap()).await;
    assert_eq!(eight["name"], "eight", "{eight}");

    // One request, three digits (ASCII art and pixel lists): one batch, answered in order.
    let (status, batch) =
        predict(&client, &url, std::fs::read(inputs.join("batch.json")).unwrap()).await;
    assert_eq!(status, 200, "{batch}");
    let digits: Vec<Value> = batch.as_array().unwrap().iter().map(|a| a["digit"].clone()).collect();
    assert_eq!(digits, vec![json!(6), json!(7), json!(9)]);

    // Bad input is the handler's 400, with its message.
    let (status, error) = predict(&client, &url, b"@@@\n@@@\n".to_vec()).await;
    assert_eq!(status, 400, "{error}");
    assert!(error.to_string().contains("8 lines"), "{error}");
    let (status, error) = predict(&client, &url, br#"{"pixels": [1, 2]}"#.to_vec()).await;
    assert_eq!(status, 400, "{error}");
    assert!(error.to_string().contains("64"), "{error}");
}
