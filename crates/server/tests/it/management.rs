//! The management API end to end: register, list, describe, scale, versions, unregister.

#![allow(clippy::unwrap_used, clippy::field_reassign_with_default)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use crate::common::{Options, TestServer, expected, model};
use oxserve_store::archive::{ArchiveFormat, PackOptions, pack};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_describe_scale_unregister() {
    let mut options = Options::default();
    options.models = vec![];
    let s = TestServer::start(options).await;
    let m = &s.management;

    // Register synchronously with TorchServe's query parameters; unknown ones are ignored.
    let (status, body) = s
        .post(format!("{m}/models?url=tiny&model_name=t&batch_size=3&max_batch_delay=7&initial_workers=2&synchronous=true&batch_delay=1"), "")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "Model \"t\" Version: 1.0 registered with 2 initial workers");
    assert_eq!(s.get(format!("{}/ping", s.inference)).await.0, 200);

    let (status, body) = s.get(format!("{m}/models/t")).await;
    assert_eq!(status, 200);
    let d = &body[0];
    assert_eq!(d["modelName"], "t");
    assert_eq!(d["modelVersion"], "1.0");
    assert_eq!(d["modelUrl"], "tiny");
    assert_eq!(d["batchSize"], 3);
    assert_eq!(d["maxBatchDelay"], 7);
    assert_eq!(d["minWorkers"], 2);
    assert_eq!(d["loadedAtStartup"], false);
    assert_eq!(d["jobQueueStatus"], json!({"remainingCapacity": 100, "pendingRequests": 0}));
    let workers = d["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for w in workers {
        assert_eq!(w["status"], "READY");
        assert_eq!(w["pid"], std::process::id());
        assert!(w["memoryUsage"].as_u64().unwrap() > 0);
        assert_eq!(w["gpu"], false);
        assert!(w["startTime"].as_str().unwrap().ends_with('Z'));
    }

    // The same name and version again is a conflict.
    assert_eq!(s.post(format!("{m}/models?url=tiny&model_name=t"), "").await.0, 409);
    // Bad urls.
    assert_eq!(s.post(format!("{m}/models?url=missing.mar"), "").await.0, 404);
    assert_eq!(s.post(format!("{m}/models?url=../etc"), "").await.0, 400);
    assert_eq!(s.post(format!("{m}/models?url=https://example.com/x.mar"), "").await.0, 400);
    assert_eq!(s.post(format!("{m}/models"), "").await.0, 400);

    // Scale up and down, synchronously.
    let (status, body) =
        s.send(Method::PUT, format!("{m}/models/t?min_worker=3&synchronous=true")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "Workers scaled to 3 for model: t");
    let (_, body) = s.get(format!("{m}/models/t")).await;
    assert_eq!(body[0]["workers"].as_array().unwrap().len(), 3);
    assert_eq!(body[0]["maxWorkers"], 3);
    let (status, _) = s
        .send(Method::PUT, format!("{m}/models/t/1.0?min_worker=1&max_worker=2&synchronous=true"))
        .await;
    assert_eq!(status, 200);
    let (_, body) = s.get(format!("{m}/models/t")).await;
    assert_eq!(body[0]["workers"].as_array().unwrap().len(), 1);
    assert_eq!(body[0]["maxWorkers"], 2);
    assert_eq!(s.send(Method::PUT, format!("{m}/models/t?min_worker=3&max_worker=1")).await.0, 400);
    let (status, body) = s.send(Method::PUT, format!("{m}/models/t?min_worker=2")).await;
    assert_eq!((status, body), (202, json!({"status": "Processing worker updates..."})));

    // Still answers after scaling.
    let exp = expected();
    assert_eq!(
        s.post(format!("{}/predictions/t", s.inference), exp["tiny"]["input"].to_string()).await.0,
        200
    );

    let (status, body) = s.send(Method::DELETE, format!("{m}/models/t")).await;
    assert_eq!((status, body), (200, json!({"status": "Model \"t\" unregistered"})));
    assert_eq!(s.get(format!("{m}/models/t")).await.0, 404);
    assert_eq!(s.post(format!("{}/predictions/t", s.inference), "[1]").await.0, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_through_models() {
    let mut options = Options::default();
    options.models = vec![model("a", "tiny"), model("b", "tiny"), model("c", "digits")];
    let s = TestServer::start(options).await;
    let (status, body) = s.get(format!("{}/models?limit=2", s.management)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"nextPageToken": "2", "models": [{"modelName": "a", "modelUrl": "tiny"}, {"modelName": "b", "modelUrl": "tiny"}]})
    );
    let (_, body) = s.get(format!("{}/models?limit=2&next_page_token=2", s.management)).await;
    assert_eq!(body, json!({"models": [{"modelName": "c", "modelUrl": "digits"}]}));
    let (_, body) = s.get(format!("{}/models", s.management)).await;
    assert_eq!(body["models"].as_array().unwrap().len(), 3);
    // A token that is no position is the start, as TorchServe reads it.
    let (status, body) = s.get(format!("{}/models?next_page_token=x", s.management)).await;
    assert_eq!((status, body["models"].as_array().map(Vec::len)), (200, Some(3)));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_default_and_set_default() {
    let mut options = Options::default();
    options.models = vec![];
    let s = TestServer::start(options).await;
    let m = &s.management;
    let store = s.store.path();
    // Two versions of one model, packed by the archiver into the store.
    for version in ["1.0", "2.0"] {
        let mut opts =
            PackOptions::new("tiny", crate::common::repo().join("examples/models/tiny.onnx"));
        opts.version = version.into();
        opts.export_path = store.join(format!("v{version}"));
        std::fs::create_dir_all(&opts.export_path).unwrap();
        let written = pack(&opts).unwrap();
        let (status, body) = s
            .post(
                format!(
                    "{m}/models?url=v{version}/{}",
                    written.file_name().unwrap().to_string_lossy()
                ),
                "",
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, body) = s.get(format!("{m}/models/tiny/all")).await;
    let versions: Vec<&str> =
        body.as_array().unwrap().iter().map(|d| d["modelVersion"].as_str().unwrap()).collect();
    assert_eq!(versions, ["1.0", "2.0"]);
    let (_, body) = s.get(format!("{m}/models/tiny")).await;
    assert_eq!(body[0]["modelVersion"], "1.0");

    // The default cannot go while another version is loaded.
    assert_eq!(s.send(Method::DELETE, format!("{m}/models/tiny")).await.0, 400);
    let (status, body) = s.send(Method::PUT, format!("{m}/models/tiny/2.0/set-default")).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = s.get(format!("{m}/models/tiny")).await;
    assert_eq!(body[0]["modelVersion"], "2.0");
    assert_eq!(s.send(Method::PUT, format!("{m}/models/tiny/9.0/set-default")).await.0, 404);
    let (status, _) = s.send(Method::DELETE, format!("{m}/models/tiny/1.0")).await;
    assert_eq!(status, 200);
    assert_eq!(s.get(format!("{m}/models/tiny/1.0")).await.0, 404);
    assert_eq!(
        s.get(format!("{}/v2/models/tiny", s.inference)).await.1["versions"],
        json!(["2.0"])
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_from_oxserve_and_from_torch_model_archiver_serve() {
    let mut options = Options::default();
    options.models = vec![];
    let s = TestServer::start(options).await;
    let m = &s.management;
    let exp = expected();

    // The real torch-model-archiver's .mar (handler base_handler, a model-config.yaml with batchSize 2).
    let (status, body) = s.post(format!("{m}/models?url=tiny_ts.mar"), "").await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = s.get(format!("{m}/models/tiny_ts")).await;
    assert_eq!(body[0]["batchSize"], 2);
    assert_eq!(body[0]["maxBatchDelay"], 20);
    assert_eq!(body[0]["handler"], "base_handler");
    let (status, body) = s
        .post(format!("{}/predictions/tiny_ts", s.inference), exp["tiny"]["input"].to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    crate::common::assert_close(&body, &exp["tiny"]["output"], 1e-5);

    // Every archive format oxserve writes.
    for (format, name) in [
        (ArchiveFormat::Default, "zip"),
        (ArchiveFormat::Tgz, "tgz"),
        (ArchiveFormat::NoArchive, "dir"),
        (ArchiveFormat::ZipStore, "store"),
    ] {
        let mut opts =
            PackOptions::new(name, crate::common::repo().join("examples/models/tiny.onnx"));
        opts.format = format;
        opts.export_path = s.store.path().to_path_buf();
        opts.config_file =
            Some(crate::common::repo().join("examples/model-store/tiny/model-config.yaml"));
        let written = pack(&opts).unwrap();
        let url = written.file_name().unwrap().to_string_lossy().into_owned();
        let (status, body) = s.post(format!("{m}/models?url={url}&synchronous=true"), "").await;
        assert_eq!(status, 200, "{url}: {body}");
        let (status, body) = s
            .post(format!("{}/predictions/{name}", s.inference), exp["tiny"]["input"].to_string())
            .await;
        assert_eq!(status, 200, "{url}: {body}");
        crate::common::assert_close(&body, &exp["tiny"]["output"], 1e-5);
    }

    // A corrupt archive is a clear 400, not a crash.
    std::fs::write(s.store.path().join("broken.mar"), b"PK\x03\x04 not really a zip").unwrap();
    let (status, body) = s.post(format!("{m}/models?url=broken.mar"), "").await;
    assert_eq!(status, 400, "{body}");
    // A file that is not ONNX is refused with a reason.
    std::fs::write(s.store.path().join("model.pt"), b"not onnx").unwrap();
    let mut opts = PackOptions::new("torchscript", s.store.path().join("model.pt"));
    opts.export_path = s.store.path().to_path_buf();
    pack(&opts).unwrap();
    let (status, body) = s.post(format!("{m}/models?url=torchscript.mar"), "").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("ONNX"), "{body}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    s.stop().await;
}

/// security-tests G24: a registration that fails names the model's files relative to the model
/// store (or to the archive), never by an absolute path that would tell a client where the store or
/// the unpacking folder lives. One case per way a model can fail to load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_registrations_name_no_absolute_path() {
    let mut options = Options::default();
    options.models = vec![];
    let s = TestServer::start(options).await;
    let store = s.store.path();
    std::fs::write(store.join("bad.onnx"), b"not a protobuf").unwrap();
    std::fs::write(store.join("broken.mar"), b"PK\x03\x04 not really a zip").unwrap();
    std::fs::create_dir_all(store.join("badman/MAR-INF")).unwrap();
    std::fs::write(store.join("badman/MAR-INF/MANIFEST.json"), "{").unwrap();
    std::fs::create_dir_all(store.join("empty")).unwrap();
    std::fs::create_dir_all(store.join("two")).unwrap();
    for name in ["a.onnx", "b.onnx"] {
        std::fs::copy(store.join("tiny/tiny.onnx"), store.join("two").join(name)).unwrap();
    }
    // A well-formed archive whose model is not: it fails after unpacking, in the staging folder.
    let mut opts = PackOptions::new("junk", store.join("bad.onnx"));
    opts.export_path = store.to_path_buf();
    pack(&opts).unwrap();

    let canonical = std::fs::canonicalize(store).unwrap();
    let temp = std::env::temp_dir();
    // Neither the store, the temp folder, nor a tail of the store's path (its own folder name).
    let hidden = [
        store.display().to_string(),
        canonical.display().to_string(),
        temp.display().to_string(),
        store.file_name().unwrap().to_string_lossy().into_owned(),
    ];
    for (url, want) in [
        ("nope.mar", 404),
        ("bad.onnx", 400),
        ("broken.mar", 400),
        ("badman", 400),
        ("empty", 400),
        ("two", 400),
        ("junk.mar", 400),
    ] {
        let (status, body) = s.post(format!("{}/models?url={url}", s.management), "").await;
        assert_eq!(status, want, "{url}: {body}");
        let message = body["message"].as_str().unwrap();
        for dir in &hidden {
            assert!(!message.contains(dir.as_str()), "{url}: {message}");
        }
        // Nor any other absolute path: a `/` that starts a word.
        let starts_a_path = message.char_indices().any(|(i, c)| {
            c == '/' && (i == 0 || message[..i].ends_with([' ', '`', '\'', '"', '(']))
        });
        assert!(!starts_a_path, "{url}: {message}");
    }
    s.stop().await;
}
