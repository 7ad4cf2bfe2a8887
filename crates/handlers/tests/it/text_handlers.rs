//! The text handlers on real ONNX models with the tract engine: tokenisation with the fixtures'
//! `tokenizer.json`, classification against answers computed by scripts/fixtures/text_models.py,
//! pooling and normalisation of embeddings, padding buckets, overflow handling and batching.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use oxserve_backend_tract::TractBackend;
use oxserve_core::config::EngineConfig;
use oxserve_core::handler::{Part, Payload};
use oxserve_core::{EngineError, ModelVersion, RegisterRequest, Registry, RequestOptions};
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/handlers/text")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
        .unwrap()
}

/// A store holding a copy of the fixture folder `name`, its model-config.yaml replaced when given.
fn store(name: &str, config: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join(name);
    copy_dir(&fixtures().join(name), &target);
    if let Some(config) = config {
        std::fs::write(target.join("model-config.yaml"), config).unwrap();
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

struct Loaded {
    registry: Arc<Registry>,
    model: Arc<ModelVersion>,
    _store: tempfile::TempDir,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        self.registry.shutdown();
    }
}

async fn try_load(name: &str, config: Option<&str>) -> Result<Loaded, EngineError> {
    let store = store(name, config);
    let engine =
        EngineConfig { model_store: store.path().to_path_buf(), ..EngineConfig::default() };
    let registry =
        Arc::new(Registry::new(engine, Arc::new(TractBackend), oxserve_handlers::builtins()));
    let request = RegisterRequest {
        url: name.into(),
        model_name: Some(name.into()),
        synchronous: true,
        ..RegisterRequest::default()
    };
    let model = registry.register(request).await?;
    Ok(Loaded { registry, model, _store: store })
}

async fn load(name: &str, config: Option<&str>) -> Loaded {
    try_load(name, config).await.unwrap()
}

fn payload(content_type: &str, body: impl Into<Bytes>) -> Payload {
    Payload {
        parts: vec![Part {
            name: "body".into(),
            content_type: Some(content_type.into()),
            body: body.into(),
        }],
    }
}

async fn predict(model: &Arc<ModelVersion>, payload: Payload) -> Result<Value, EngineError> {
    let (prediction, _) = model.predict(payload, &RequestOptions::default()).await?;
    assert_eq!(prediction.content_type, "application/json");
    Ok(serde_json::from_slice(&prediction.body).unwrap())
}

async fn predict_json(model: &Arc<ModelVersion>, body: &Value) -> Result<Value, EngineError> {
    predict(model, payload("application/json", serde_json::to_vec(body).unwrap())).await
}

fn assert_close(got: &[f64], want: &[f64], tolerance: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tolerance, "element {i}: got {g}, want {w}\n{got:?}\n{want:?}");
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn invalid_message(result: Result<Value, EngineError>) -> String {
    match result {
        Err(EngineError::InvalidInput(m)) => m,
        other => panic!("expected a 400 (InvalidInput), got {other:?}"),
    }
}

/// Checks one `{"label": p}` answer against the expected probabilities of that text.
fn check_scores(answer: &Value, case: &Value) {
    let scores = answer.as_object().unwrap();
    let want = case["probabilities"].as_object().unwrap();
    assert_eq!(scores.len(), want.len(), "{answer}");
    for (label, p) in want {
        let got = scores[label].as_f64().unwrap();
        assert!((got - p.as_f64().unwrap()).abs() < 1e-4, "{label}: {got} vs {p}");
    }
    let best = scores.iter().max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()));
    assert_eq!(best.unwrap().0, case["label"].as_str().unwrap(), "{answer}");
}

#[tokio::test]
async fn text_classifier_matches_the_reference_per_text_and_as_a_list() {
    let loaded = load("classifier", None).await;
    let expected = expected();
    let cases = expected["classifier"].as_array().unwrap();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let answer = predict(&loaded.model, payload("text/plain", text.to_owned())).await.unwrap();
        check_scores(&answer, case);
    }
    // Every text in one request: one answer per text, in order.
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let answers = predict_json(&loaded.model, &json!({ "data": texts })).await.unwrap();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), cases.len());
    for (answer, case) in answers.iter().zip(cases) {
        check_scores(answer, case);
    }
    // The answer lists the most likely label first (serde_json's Value sorts keys, so read the
    // body as text).
    let (prediction, _) = loaded
        .model
        .predict(payload("text/plain", texts[1].to_owned()), &RequestOptions::default())
        .await
        .unwrap();
    let body = String::from_utf8(prediction.body.to_vec()).unwrap();
    assert!(body.starts_with(&format!("{{\"{}\":", cases[1]["label"].as_str().unwrap())), "{body}");
    // A list of one is still answered with a list.
    let one = predict_json(&loaded.model, &json!([texts[0]])).await.unwrap();
    assert_eq!(one.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn concurrent_requests_batch_and_each_gets_its_own_answer() {
    let loaded = load("classifier", None).await;
    let expected = expected();
    let cases = expected["classifier"].as_array().unwrap().clone();
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..4 {
        for (i, case) in cases.iter().enumerate() {
            let model = Arc::clone(&loaded.model);
            let case = case.clone();
            // Mixed shapes: single texts and lists of two (this text and its neighbour).
            let body = if (round + i) % 2 == 0 {
                json!(case["text"])
            } else {
                json!([case["text"], cases[(i + 1) % cases.len()]["text"]])
            };
            tasks.spawn(async move { (case, body.is_array(), predict_json(&model, &body).await) });
        }
    }
    let mut answered = 0;
    while let Some(joined) = tasks.join_next().await {
        let (case, list, answer) = joined.unwrap();
        let answer = answer.unwrap();
        check_scores(if list { &answer[0] } else { &answer }, &case);
        answered += 1;
    }
    assert_eq!(answered, 4 * cases.len());
}

#[tokio::test]
async fn text_classifier_settings_top_k_and_overflow() {
    let config = "handler:\n  top_k: 2\n  max_length: 8\n";
    let loaded = load("classifier", Some(config)).await;
    let long = "The striker scored twice in the cup final after extra time at the stadium.";
    let answer = predict(&loaded.model, payload("text/plain", long)).await.unwrap();
    assert_eq!(answer.as_object().unwrap().len(), 2, "{answer}");
    assert!(answer.get("sports").is_some(), "truncated, it still reads as sports: {answer}");

    let refuse = "handler:\n  max_length: 8\n  on_overflow: refuse\n";
    let loaded = load("classifier", Some(refuse)).await;
    let message = invalid_message(predict(&loaded.model, payload("text/plain", long)).await);
    assert!(message.contains("over this model's limit of 8"), "{message}");
    // Short enough: answered.
    predict(&loaded.model, payload("text/plain", "the cup final")).await.unwrap();
}

#[tokio::test]
async fn bad_text_requests_are_refused_with_reasons() {
    let loaded = load("classifier", Some("handler:\n  max_texts: 3\n")).await;
    let m = invalid_message(predict_json(&loaded.model, &json!(["a", "b", "c", "d"])).await);
    assert!(m.contains("more than 3 texts"), "{m}");
    let m = invalid_message(predict_json(&loaded.model, &json!([""])).await);
    assert!(m.contains("empty"), "{m}");
    let m = invalid_message(predict_json(&loaded.model, &json!({"inputs": [1, 2]})).await);
    assert!(m.contains("strings"), "{m}");
    let m = invalid_message(predict(&loaded.model, payload("text/plain", &b"\xff\xfe"[..])).await);
    assert!(m.contains("UTF-8"), "{m}");
}

#[tokio::test]
async fn text_embedding_pools_and_normalises_like_the_reference() {
    let expected = expected();
    let cases = expected["embedder"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();

    for folder in ["embedder", "embedder-pooled"] {
        let loaded = load(folder, None).await;
        // All texts in one request (padded to the longest), and each alone (padded to itself).
        let together = predict_json(&loaded.model, &json!(texts)).await.unwrap();
        for (i, case) in cases.iter().enumerate() {
            assert_close(&floats(&together[i]), &floats(&case["normalized"]), 1e-5);
            let alone = predict_json(&loaded.model, &json!({"inputs": texts[i]})).await.unwrap();
            assert_eq!(alone.as_array().unwrap().len(), 1, "one vector per text");
            assert_close(&floats(&alone[0]), &floats(&case["normalized"]), 1e-5);
        }
        // TEI's per-request switch.
        let raw = predict_json(&loaded.model, &json!({"inputs": texts, "normalize": false}))
            .await
            .unwrap();
        for (i, case) in cases.iter().enumerate() {
            assert_close(&floats(&raw[i]), &floats(&case["mean"]), 1e-5);
        }
    }

    // Without normalisation by configuration, and padded to the full length.
    let config = "handler:\n  normalize: false\n  padding: max_length\n  max_length: 64\n";
    let loaded = load("embedder", Some(config)).await;
    let raw = predict_json(&loaded.model, &json!(texts)).await.unwrap();
    for (i, case) in cases.iter().enumerate() {
        assert_close(&floats(&raw[i]), &floats(&case["mean"]), 1e-5);
    }
}

#[tokio::test]
async fn text_handlers_refuse_to_load_without_what_they_need() {
    let dir = store("embedder", None);
    std::fs::remove_file(dir.path().join("embedder/tokenizer.json")).unwrap();
    let engine = EngineConfig { model_store: dir.path().to_path_buf(), ..EngineConfig::default() };
    let registry =
        Arc::new(Registry::new(engine, Arc::new(TractBackend), oxserve_handlers::builtins()));
    let request =
        RegisterRequest { url: "embedder".into(), synchronous: true, ..RegisterRequest::default() };
    let error = registry.register(request).await.unwrap_err().to_string();
    assert!(error.contains("tokenizer.json"), "{error}");

    for (config, needle) in [
        ("handler:\n  on_overflow: drop\n", "on_overflow"),
        ("handler:\n  pooling: max\n", "pooling"),
        ("handler:\n  max_length: many\n", "max_length"),
        ("handler:\n  output: logits\n", "no output `logits`"),
    ] {
        let error = try_load("embedder", Some(config)).await.err().unwrap().to_string();
        assert!(error.contains(needle), "{config}: {error}");
    }
}

#[tokio::test]
async fn without_index_to_name_labels_are_class_indices() {
    let dir = store("classifier", None);
    std::fs::remove_file(dir.path().join("classifier/index_to_name.json")).unwrap();
    let engine = EngineConfig { model_store: dir.path().to_path_buf(), ..EngineConfig::default() };
    let registry =
        Arc::new(Registry::new(engine, Arc::new(TractBackend), oxserve_handlers::builtins()));
    let request = RegisterRequest {
        url: "classifier".into(),
        synchronous: true,
        ..RegisterRequest::default()
    };
    let model = registry.register(request).await.unwrap();
    let expected = expected();
    let case = &expected["classifier"][1];
    let answer =
        predict(&model, payload("text/plain", case["text"].as_str().unwrap().to_owned())).await;
    let answer = answer.unwrap();
    // Best first, as the handler answers; every class index once.
    let mut labels: Vec<&String> = answer.as_object().unwrap().keys().collect();
    assert_eq!(labels[0], "1", "{answer}");
    labels.sort();
    assert_eq!(labels, ["0", "1", "2", "3"], "{answer}");
    // "food" is class 1.
    assert!(
        (answer["1"].as_f64().unwrap() - case["probabilities"]["food"].as_f64().unwrap()).abs()
            < 1e-4
    );
    registry.shutdown();
}
