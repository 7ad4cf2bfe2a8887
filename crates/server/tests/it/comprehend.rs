//! Amazon Comprehend's PII API over a real socket: boto3's own `comprehend` client (SigV4 with the
//! inference key as the secret) gets the library's spans, and bad requests get Comprehend's errors.
//! boto3 is installed by `scripts/install-boto3.sh` (scripts/test.sh runs it); without it this test
//! fails and says how to install it, unless `OXSERVE_SKIP_BOTO3=1`.

#![allow(clippy::unwrap_used, clippy::field_reassign_with_default)]

use crate::common::{TestServer, repo};
use oxserve_pii::Detector;
use serde_json::{Value, json};

const TEXTS: [&str; 4] = [
    "Hello, my name is John Stiles. The number we have on file is 555-456-7890.",
    "It’s 4111 1111 1111 1111, expiring 09/27, and my email is jane.doe@example.com.",
    "I live at 1234 Jane Doe Street, Springfield, Illinois 62704.",
    "Nothing to see here, thanks for calling.",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_gets_the_library_spans_and_comprehend_errors() {
    let python = repo().join(".venv-aws/bin/python");
    if !python.exists() {
        if std::env::var("OXSERVE_SKIP_BOTO3").is_ok_and(|v| v == "1") {
            eprintln!("skipped: OXSERVE_SKIP_BOTO3=1 and {} is missing", python.display());
            return;
        }
        panic!(
            "{} is missing: install boto3 with `bash scripts/install-boto3.sh` (or set OXSERVE_SKIP_BOTO3=1)",
            python.display()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = TestServer::with_keys(dir.path()).await;
    let inference = keys["inference"]["key"].as_str().unwrap().to_owned();

    let texts = dir.path().join("texts.json");
    std::fs::write(&texts, serde_json::to_vec(&TEXTS).unwrap()).unwrap();
    let (endpoint, key) = (s.inference.clone(), inference.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(repo().join("tests/interop/comprehend_check.py"))
            .args(["--endpoint", &endpoint, "--key", &key, "--texts"])
            .arg(&texts)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "boto3 check failed:\n{stderr}");
    let got: Value = serde_json::from_slice(&output.stdout).unwrap();

    let detector = Detector::new();
    for (i, text) in TEXTS.iter().enumerate() {
        let library = serde_json::to_value(detector.detect(text)).unwrap();
        let wire = &got["detect"][i];
        let spans = |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|e| (e["Type"].clone(), e["BeginOffset"].clone(), e["EndOffset"].clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(spans(wire), spans(&library), "{text}");
        let mut types: Vec<Value> =
            library.as_array().unwrap().iter().map(|e| e["Type"].clone()).collect();
        types.sort_by_key(Value::to_string);
        types.dedup();
        let labels: Vec<Value> =
            got["contains"][i].as_array().unwrap().iter().map(|l| l["Name"].clone()).collect();
        assert_eq!(labels, types, "{text}");
    }
    assert!(
        !got["detect"][0].as_array().unwrap().is_empty()
            && got["detect"][3].as_array().unwrap().is_empty()
    );
    assert_eq!(got["errors"]["wrong_secret"], json!(["InvalidSignatureException", 403]));
    assert_eq!(got["errors"]["language"], json!(["UnsupportedLanguageException", 400]));
    assert_eq!(got["errors"]["too_large"], json!(["TextSizeLimitExceededException", 400]));

    // What boto3 never sends: a bearer key instead of a signature, broken bodies, unknown operations.
    let post = |target: &'static str, body: &'static str, token: Option<&str>| {
        let mut r = s
            .client
            .post(format!("{}/", s.inference))
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let r = post(
        "Comprehend_20171127.DetectPiiEntities",
        r#"{"Text":"Call me at 206 555 0147.","LanguageCode":"en"}"#,
        Some(&inference),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-amz-json-1.1");
    assert_eq!(r.json::<Value>().await.unwrap()["Entities"][0]["Type"], "PHONE");
    for (target, body, status, kind) in [
        ("Comprehend_20171127.DetectPiiEntities", "{not json", 400, "InvalidRequestException"),
        (
            "Comprehend_20171127.DetectPiiEntities",
            r#"{"LanguageCode":"en"}"#,
            400,
            "InvalidRequestException",
        ),
        (
            "Comprehend_20171127.DetectPiiEntities",
            r#"{"Text":"","LanguageCode":"en"}"#,
            400,
            "InvalidRequestException",
        ),
        (
            "Comprehend_20171127.DetectEntities",
            r#"{"Text":"x","LanguageCode":"en"}"#,
            400,
            "UnknownOperationException",
        ),
        ("", r#"{"Text":"x","LanguageCode":"en"}"#, 400, "UnknownOperationException"),
    ] {
        let r = post(target, body, Some(&inference)).await.unwrap();
        assert_eq!(r.status(), status, "{target} {body}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["__type"], kind, "{target} {body}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(
        post("Comprehend_20171127.DetectPiiEntities", r#"{"Text":"x","LanguageCode":"en"}"#, None)
            .await
            .unwrap()
            .status(),
        401
    );
    s.stop().await;
}
