//! Token authorization over real sockets: key file, 401/403, rotation, open health checks.

#![allow(clippy::unwrap_used, clippy::field_reassign_with_default)]

use crate::common::{Options, TestServer, expected};
use oxserve_server::AuthConfig;
use serde_json::Value;

fn key(file: &Value, kind: &str) -> String {
    file[kind]["key"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_guard_each_api_and_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key_file.json");
    let (s, file) = TestServer::with_keys(dir.path()).await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key file must be readable by its owner only");
    }
    let (inference, management, api) =
        (key(&file, "inference"), key(&file, "management"), key(&file, "API"));
    assert_eq!(inference.len(), 64, "32 random bytes, hex");
    assert!(inference != management && management != api);

    let exp = expected();
    let predict = format!("{}/predictions/tiny", s.inference);
    let body = exp["tiny"]["input"].to_string();
    let send = |url: String, token: Option<String>| {
        let mut r = s.client.post(url).body(body.clone());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    // Missing or wrong key: 401. A valid key of the wrong kind: 403. The right key: 200.
    let r = send(predict.clone(), None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(send(predict.clone(), Some("0".repeat(64))).await.unwrap().status(), 401);
    assert_eq!(send(predict.clone(), Some(management.clone())).await.unwrap().status(), 403);
    assert_eq!(send(predict.clone(), Some(inference.clone())).await.unwrap().status(), 200);

    let describe = format!("{}/models/tiny", s.management);
    let get = |url: String, token: &str| s.client.get(url).bearer_auth(token).send();
    assert_eq!(s.client.get(describe.clone()).send().await.unwrap().status(), 401);
    assert_eq!(get(describe.clone(), &inference).await.unwrap().status(), 403);
    assert_eq!(get(describe.clone(), &management).await.unwrap().status(), 200);

    // Health checks and metrics stay open for probes and scrapers.
    assert_eq!(s.client.get(format!("{}/ping", s.inference)).send().await.unwrap().status(), 200);
    assert_eq!(
        s.client.get(format!("{}/v2/health/ready", s.inference)).send().await.unwrap().status(),
        200
    );
    assert_eq!(s.client.get(format!("{}/metrics", s.metrics)).send().await.unwrap().status(), 200);

    // Rotation needs the API key; the old inference key stops working at once.
    let rotate = format!("{}/token?type=inference", s.management);
    assert_eq!(get(rotate.clone(), &management).await.unwrap().status(), 403);
    let r = get(rotate.clone(), &api).await.unwrap();
    assert_eq!(r.status(), 200);
    let fresh: Value = r.json().await.unwrap();
    let new_inference = key(&fresh, "inference");
    assert_ne!(new_inference, inference);
    assert_eq!(send(predict.clone(), Some(inference)).await.unwrap().status(), 401);
    assert_eq!(send(predict.clone(), Some(new_inference.clone())).await.unwrap().status(), 200);
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert_eq!(key(&file, "inference"), new_inference, "the key file holds the rotated key");
    assert_eq!(
        get(format!("{}/token?type=other", s.management), &api).await.unwrap().status(),
        400
    );

    s.stop().await;
    assert!(!key_file.exists(), "the key file is deleted at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys.json");
    let mut options = Options::default();
    options.server.auth = Some(AuthConfig {
        key_file: key_file.clone(),
        expiration: Some(std::time::Duration::ZERO),
        external: false,
    });
    let s = TestServer::start(options).await;
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert!(file["inference"]["expiration time"].is_string());
    let r = s
        .client
        .get(format!("{}/models", s.management))
        .bearer_auth(key(&file, "management"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("expired"), "{body}");
    // The API key never expires, so keys can always be rotated.
    let r = s
        .client
        .get(format!("{}/token?type=management", s.management))
        .bearer_auth(key(&file, "API"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

/// Replicas share keys from a Secret: the file is read, never written or deleted, refused when
/// malformed, and re-read within a second when it changes (as a Kubernetes Secret volume changes
/// it: a new file swapped in under the same name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_keys_are_read_reread_and_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key_file.json");
    let write = |inference: &str| {
        let text = serde_json::json!({
            "inference": {"key": inference},
            "management": {"key": "m".repeat(32)},
            "API": {"key": "a".repeat(32)},
        })
        .to_string();
        let tmp = dir.path().join("next.json");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &key_file).unwrap();
    };
    let options = |file: &std::path::Path| {
        let mut options = Options::default();
        options.server.auth =
            Some(AuthConfig { key_file: file.to_owned(), expiration: None, external: true });
        options
    };

    // A file that cannot be used stops the start with the reason.
    std::fs::write(&key_file, r#"{"inference": {"key": "short"}}"#).unwrap();
    let registry = crate::common::registry(
        oxserve_core::config::EngineConfig::default(),
        vec![std::sync::Arc::new(oxserve_backend_tract::TractBackend)],
        None,
    );
    let e = oxserve_server::Server::bind(options(&key_file).server, registry).await.unwrap_err();
    assert!(e.to_string().contains("at least 16 printable characters"), "{e}");

    let (first, second) = ("1".repeat(40), "2".repeat(40));
    write(&first);
    let written = std::fs::read_to_string(&key_file).unwrap();
    let s = TestServer::start(options(&key_file)).await;
    let exp = expected();
    let predict = format!("{}/predictions/tiny", s.inference);
    let send = |token: &str| {
        s.client
            .post(predict.clone())
            .body(exp["tiny"]["input"].to_string())
            .bearer_auth(token)
            .send()
    };
    assert_eq!(send(&first).await.unwrap().status(), 200);
    assert_eq!(send(&"m".repeat(32)).await.unwrap().status(), 403);
    let r = s
        .client
        .get(format!("{}/token?type=inference", s.management))
        .bearer_auth("a".repeat(32))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "oxserve does not rotate keys it does not own");
    assert!(r.text().await.unwrap().contains("change that file"));

    // The Secret changes: within a second the old key (revoked) stops, with no unknown key sent
    // first, and the new one works, without a restart.
    write(&second);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(send(&first).await.unwrap().status(), 401);
    assert_eq!(send(&second).await.unwrap().status(), 200);

    s.stop().await;
    assert!(key_file.exists(), "an external key file is the operator's to delete");
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), written);
}
