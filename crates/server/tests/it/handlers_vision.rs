//! The vision handlers end to end over HTTP on a real socket: a classifier trained on real photos,
//! a detector and a segmenter that scripts/fixtures/make.sh vision builds (committed under
//! tests/fixtures/handlers/vision), and EfficientNet-Lite0 on its reference photos when
//! `../shared/models` (or `OXSERVE_SHARED_MODELS`) has it.

#![allow(clippy::unwrap_used)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use crate::common::{Options, TestServer, copy_dir, repo, server_timing, write_model_dir};
use base64::Engine as _;
use image::{ImageFormat, Rgb, RgbImage};
use oxserve_core::RegisterRequest;
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/handlers/vision")
}

/// Copies a fixture model folder into the store as `name`, with a manifest naming `handler` and
/// the given model-config.yaml, and registers it.
async fn add_model(
    server: &TestServer,
    name: &str,
    from: &Path,
    model_file: &str,
    handler: &str,
    config: &str,
) -> Result<(), String> {
    let dir = server.store.path().join(name);
    copy_dir(from, &dir);
    write_model_dir(&dir, name, model_file, handler, config);
    let request = RegisterRequest {
        url: name.into(),
        model_name: Some(name.into()),
        synchronous: true,
        ..RegisterRequest::default()
    };
    server.registry.register(request).await.map(|_| ()).map_err(|e| e.to_string())
}

async fn empty_server() -> TestServer {
    TestServer::start(Options { models: vec![], ..Options::default() }).await
}

fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// POSTs raw bytes with a content type; returns status, content type and body.
async fn post_bytes(
    server: &TestServer,
    model: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String, Vec<u8>) {
    let response = server
        .client
        .post(format!("{}/predictions/{model}", server.inference))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let ctype = response.headers()["content-type"].to_str().unwrap().to_owned();
    (status, ctype, response.bytes().await.unwrap().to_vec())
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// The first key of a JSON object as written (the most probable class).
fn first_key(body: &[u8]) -> String {
    let text = std::str::from_utf8(body).unwrap();
    let rest = text.strip_prefix("{\"").unwrap_or_else(|| panic!("not an object: {text}"));
    rest[..rest.find('"').unwrap()].to_owned()
}

const CLASSIFIER_CONFIG: &str =
    "batchSize: 8\nmaxBatchDelay: 5\nhandler:\n  resize: 36\n  crop: 32\n";

fn photos() -> Vec<(String, Vec<u8>, String)> {
    let dir = fixtures().join("classifier/photos");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("classifier/expected.json")).unwrap(),
    )
    .unwrap();
    let mut out: Vec<_> = expected
        .as_object()
        .unwrap()
        .iter()
        .map(|(file, label)| {
            (
                file.clone(),
                std::fs::read(dir.join(file)).unwrap(),
                label.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn image_classifier_labels_real_photos_in_every_input_form() {
    let server = empty_server().await;
    let dir = fixtures().join("classifier");
    add_model(&server, "photos", &dir, "model.onnx", "image_classifier", CLASSIFIER_CONFIG)
        .await
        .unwrap();
    let url = format!("{}/predictions/photos", server.inference);

    // Raw JPEG bodies, as `curl -T kitten.jpg` sends them, all at once so they batch.
    let photos = photos();
    let answers = futures_util::future::join_all(
        photos
            .iter()
            .map(|(_, bytes, _)| post_bytes(&server, "photos", "image/jpeg", bytes.clone())),
    )
    .await;
    for ((file, _, label), (status, ctype, body)) in photos.iter().zip(answers) {
        assert_eq!(status, 200, "{file}: {}", String::from_utf8_lossy(&body));
        assert_eq!(ctype, "application/json");
        assert_eq!(&first_key(&body), label, "{file}: {}", String::from_utf8_lossy(&body));
        // The labels here hold no `,` or `:`, so the object splits into its entries in order.
        let text = std::str::from_utf8(&body).unwrap();
        let probabilities: Vec<f64> = text
            .trim_matches(['{', '}'])
            .split(',')
            .map(|entry| entry.rsplit(':').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(probabilities.len(), 5, "top 5 by default: {text}");
        assert!(probabilities.windows(2).all(|w| w[0] >= w[1]), "most probable first: {text}");
        assert!(probabilities.iter().all(|p| (0.0..=1.0).contains(p)));
    }

    // The same photo re-encoded in the other common formats, without a content type.
    let (_, cat_jpeg, cat) = photos.iter().find(|(f, _, _)| f == "chelsea.jpg").unwrap().clone();
    let cat_rgb = image::load_from_memory(&cat_jpeg).unwrap().to_rgb8();
    for format in
        [ImageFormat::Png, ImageFormat::Bmp, ImageFormat::Gif, ImageFormat::WebP, ImageFormat::Tiff]
    {
        let body = encode(&cat_rgb, format);
        let response = server.client.post(&url).body(body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{format:?}");
        assert_eq!(first_key(&response.bytes().await.unwrap()), cat, "{format:?}");
    }

    // Base64 in JSON: {"data": …} answers one image; a list answers a list in order.
    let coffee = photos.iter().find(|(f, _, _)| f == "coffee.jpg").unwrap();
    let (status, body) =
        server.post(url.clone(), json!({"data": b64(&coffee.1)}).to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body[&coffee.2].as_f64().unwrap() > 0.5, "{body}");
    let list = json!([{"data": b64(&coffee.1)}, {"b64": b64(&cat_jpeg)}, b64(&coffee.1)]);
    let (status, body) = server.post(url.clone(), list.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let tops: Vec<String> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_object().unwrap();
            a.iter()
                .max_by(|x, y| x.1.as_f64().partial_cmp(&y.1.as_f64()).unwrap())
                .unwrap()
                .0
                .clone()
        })
        .collect();
    assert_eq!(tops, vec![coffee.2.clone(), cat.clone(), coffee.2.clone()]);

    // Multipart: one image per `data` part, answered as a list in order.
    let rocket = photos.iter().find(|(f, _, _)| f == "rocket.jpg").unwrap();
    let part = |bytes: &[u8]| {
        reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name("x.jpg")
            .mime_str("image/jpeg")
            .unwrap()
    };
    let form =
        reqwest::multipart::Form::new().part("data", part(&rocket.1)).part("data", part(&cat_jpeg));
    let response = server.client.post(&url).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 2, "{body}");
    assert!(body[0][&rocket.2].as_f64().unwrap() > 0.5, "{body}");
    assert!(body[1][&cat].as_f64().unwrap() > 0.5, "{body}");

    // Per-stage timings come back in Server-Timing.
    let response = server.client.post(&url).body(cat_jpeg.clone()).send().await.unwrap();
    let timing = response.headers()["server-timing"].to_str().unwrap().to_owned();
    assert!(timing.contains("preprocess;dur="), "{timing}");
    server.stop().await;
}

#[tokio::test]
async fn bad_images_get_clear_400s() {
    let server = empty_server().await;
    let dir = fixtures().join("classifier");
    let config = format!("{CLASSIFIER_CONFIG}  max_image_pixels: 1000000\n");
    add_model(&server, "photos", &dir, "model.onnx", "image_classifier", &config).await.unwrap();
    let photo = std::fs::read(dir.join("photos/rocket.jpg")).unwrap();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated JPEG", photo[..photo.len() / 3].to_vec(), "JPEG"),
        ("not an image", b"\x00\x01\x02 definitely not an image".to_vec(), "not an image"),
        ("empty body", Vec::new(), "empty"),
        ("pixel bomb", pixel_bomb(100_000, 100_000), "100000x100000"),
        ("over max_image_pixels", pixel_bomb(2000, 2000), "max_image_pixels"),
    ];
    for (what, body, needle) in cases {
        let (status, _, body) = post_bytes(&server, "photos", "image/png", body).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{what}: {text}");
        assert!(text.contains(needle), "{what}: {text}");
    }
    let (status, body) = server
        .post(
            format!("{}/predictions/photos", server.inference),
            json!({"data": "not base64!"}).to_string(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("base64"), "{body}");
    let (status, body) = server
        .post(
            format!("{}/predictions/photos", server.inference),
            json!({"data": [1, 2, 3]}).to_string(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("a number"), "{body}");

    // A crop that does not fit the model's fixed 32x32 input fails at load, not per request.
    let error = add_model(
        &server,
        "wrong",
        &dir,
        "model.onnx",
        "image_classifier",
        "handler:\n  crop: 48\n",
    )
    .await
    .unwrap_err();
    assert!(error.contains("48x48") && error.contains("32x32"), "{error}");
    let error = add_model(
        &server,
        "typo",
        &dir,
        "model.onnx",
        "image_classifier",
        "handler:\n  crop: 32\n  top_kk: 3\n",
    )
    .await
    .unwrap_err();
    assert!(error.contains("top_kk"), "{error}");
    server.stop().await;
}

/// A PNG of a few dozen bytes whose header declares `width`×`height` pixels.
fn pixel_bomb(width: u32, height: u32) -> Vec<u8> {
    let mut file = encode(&RgbImage::new(1, 1), ImageFormat::Png);
    file[16..20].copy_from_slice(&width.to_be_bytes());
    file[20..24].copy_from_slice(&height.to_be_bytes());
    let mut crc = !0u32;
    for &byte in &file[12..29] {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    file[29..33].copy_from_slice(&(!crc).to_be_bytes());
    file
}

/// A 128 wide, 192 tall black image with a red and a blue square; the detector's 64x64 input
/// sees them as 16x16 squares at (16, 16) and (40, 36).
fn squares() -> RgbImage {
    let mut image = RgbImage::new(128, 192);
    for (x0, y0, colour) in [(32, 48, Rgb([255, 0, 0])), (80, 108, Rgb([0, 0, 255]))] {
        for y in y0..y0 + 48 {
            for x in x0..x0 + 32 {
                image.put_pixel(x, y, colour);
            }
        }
    }
    image
}

#[tokio::test]
async fn object_detector_finds_squares_in_original_coordinates() {
    let server = empty_server().await;
    let dir = fixtures().join("detector");
    let base = "handler:\n  resize_filter: nearest\n";
    add_model(&server, "squares", &dir, "model.onnx", "object_detector", base).await.unwrap();
    let no_nms = format!("{base}  nms: false\n");
    add_model(&server, "squares_raw", &dir, "model.onnx", "object_detector", &no_nms)
        .await
        .unwrap();
    let png = encode(&squares(), ImageFormat::Png);

    let (status, _, body) = post_bytes(&server, "squares", "image/png", png.clone()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let found = json_of(&body);
    assert_eq!(
        found,
        json!([
            {"red": [32.0, 48.0, 64.0, 96.0], "score": 1.0},
            {"blue": [80.0, 108.0, 112.0, 156.0], "score": 1.0}
        ]),
        "one box per square, mapped back through the 2x3 resize"
    );
    let text = String::from_utf8(body).unwrap();
    assert!(text.starts_with(r#"[{"red":"#), "label first, as TorchServe: {text}");

    // Without NMS each square also yields its four half-shifted neighbours (score 0.5625).
    let (status, _, body) = post_bytes(&server, "squares_raw", "image/png", png.clone()).await;
    assert_eq!(status, 200);
    let raw = json_of(&body);
    let raw = raw.as_array().unwrap();
    assert_eq!(raw.len(), 10, "{raw:?}");
    assert!(raw.iter().all(|d| d["score"].as_f64().unwrap() >= 0.5));

    // Two images in one request: a list of lists; an image with nothing bright finds nothing.
    let black = encode(&RgbImage::new(64, 64), ImageFormat::Png);
    let (status, body) = server
        .post(
            format!("{}/predictions/squares", server.inference),
            json!([b64(&png), b64(&black)]).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body[0].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(body[1], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn image_segmenter_answers_per_pixel_json_or_a_png_mask() {
    let server = empty_server().await;
    let dir = fixtures().join("segmenter");
    add_model(&server, "colours", &dir, "model.onnx", "image_segmenter", "minWorkers: 1\n")
        .await
        .unwrap();
    add_model(
        &server,
        "colours_png",
        &dir,
        "model.onnx",
        "image_segmenter",
        "handler:\n  output: png\n",
    )
    .await
    .unwrap();
    // Black background (class 0), a red (1) and a green (2) rectangle, at the model's 64x64.
    let mut image = RgbImage::new(64, 64);
    let mut expected = vec![0u8; 64 * 64];
    for (x0, x1, y0, y1, colour, class) in
        [(8, 24, 8, 40, Rgb([230, 20, 10]), 1u8), (32, 56, 40, 60, Rgb([15, 200, 40]), 2u8)]
    {
        for y in y0..y1 {
            for x in x0..x1 {
                image.put_pixel(x, y, colour);
                expected[(y * 64 + x) as usize] = class;
            }
        }
    }
    let png = encode(&image, ImageFormat::Png);

    let (status, _, body) = post_bytes(&server, "colours", "image/png", png.clone()).await;
    assert_eq!(status, 200);
    let answer = json_of(&body);
    let rows = answer.as_array().unwrap();
    assert_eq!(rows.len(), 64);
    for (y, row) in rows.iter().enumerate() {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), 64);
        for (x, pixel) in row.iter().enumerate() {
            let class = pixel[0].as_f64().unwrap();
            let probability = pixel[1].as_f64().unwrap();
            assert_eq!(class, f64::from(expected[y * 64 + x]), "pixel ({x}, {y})");
            assert!(probability > 0.5 && probability <= 1.0, "pixel ({x}, {y}): {probability}");
        }
    }

    let (status, ctype, body) = post_bytes(&server, "colours_png", "image/png", png).await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "image/png");
    let mask = image::load_from_memory(&body).unwrap().to_luma8();
    assert_eq!(mask.dimensions(), (64, 64));
    assert_eq!(mask.into_raw(), expected);
    assert!(body.len() < 1000, "the PNG mask is compact: {} bytes", body.len());
    server.stop().await;
}

/// `../shared/models`, or `OXSERVE_SHARED_MODELS`, when it holds EfficientNet-Lite0.
fn shared_models() -> Option<PathBuf> {
    let dir = std::env::var_os("OXSERVE_SHARED_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/models"));
    dir.join("efficientnet_lite0.onnx").is_file().then_some(dir)
}

/// EfficientNet-Lite0's preprocessing (shared/models/README.md): bicubic resize to 256, centre
/// crop 224, `(x - 127) / 128`.
const LITE0_CONFIG: &str =
    "handler:\n  resize_filter: bicubic\n  scale: 1\n  mean: 127\n  std: 128\n";

async fn lite0_server(models: &Path, config: &str) -> TestServer {
    let server = empty_server().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(models.join("efficientnet_lite0.onnx"), dir.path().join("model.onnx")).unwrap();
    add_model(&server, "lite0", dir.path(), "model.onnx", "image_classifier", config)
        .await
        .unwrap();
    server
}

#[tokio::test]
async fn efficientnet_lite0_labels_the_reference_photos() {
    let Some(models) = shared_models() else {
        eprintln!(
            "skipped: no efficientnet_lite0.onnx in ../shared/models (set OXSERVE_SHARED_MODELS)"
        );
        return;
    };
    let server = lite0_server(&models, LITE0_CONFIG).await;
    for (photo, classes) in [
        ("chelsea.png", &["282"][..]),
        ("coffee.png", &["967"]),
        ("rocket.jpg", &["657"]),
        ("grace_hopper.jpg", &["400", "652"]),
    ] {
        let bytes = std::fs::read(models.join("images").join(photo)).unwrap();
        let (status, _, body) =
            post_bytes(&server, "lite0", "application/octet-stream", bytes).await;
        assert_eq!(status, 200, "{photo}: {}", String::from_utf8_lossy(&body));
        let top = first_key(&body);
        eprintln!("{photo}: top-1 {top}; {}", String::from_utf8_lossy(&body));
        assert!(classes.contains(&top.as_str()), "{photo}: expected {classes:?}, got {top}");
    }
    server.stop().await;
}

/// Images per second end to end and the share of latency spent preprocessing, with EfficientNet-
/// Lite0 on tract (and ONNX Runtime when scripts/install-onnxruntime.sh ran), one request at a time
/// at batch size 1 and 8 concurrent requests at batch size 8. Run with
/// `cargo test --release -p oxserve-server --test it -- handlers_vision::bench --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly"]
async fn bench_efficientnet_lite0() {
    use std::sync::Arc;

    use oxserve_backend::Backend;
    use oxserve_core::config::EngineConfig;

    let Some(models) = shared_models() else {
        eprintln!("skipped: no efficientnet_lite0.onnx");
        return;
    };
    let mut engines: Vec<(&str, Arc<dyn Backend>)> =
        vec![("tract", Arc::new(oxserve_backend_tract::TractBackend))];
    match oxserve_backend_ort::OrtBackend::new(oxserve_backend_ort::OrtConfig::default()) {
        Ok(ort) => engines.push(("onnxruntime", Arc::new(ort))),
        Err(e) => eprintln!("ONNX Runtime rows skipped: {e}"),
    }
    let photo = std::fs::read(models.join("images/chelsea.png")).unwrap();
    println!(
        "| engine | batch size | clients | images/s | mean latency ms | preprocess ms | preprocess share |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (engine_name, engine) in engines {
        for batch in [1usize, 8] {
            let store = tempfile::tempdir().unwrap();
            let dir = store.path().join("lite0");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(models.join("efficientnet_lite0.onnx"), dir.join("model.onnx")).unwrap();
            let config =
                format!("minWorkers: 1\nbatchSize: {batch}\nmaxBatchDelay: 5\n{LITE0_CONFIG}");
            write_model_dir(&dir, "lite0", "model.onnx", "image_classifier", &config);
            let engine_config =
                EngineConfig { model_store: store.path().to_path_buf(), ..EngineConfig::default() };
            let registry = crate::common::registry(engine_config, vec![Arc::clone(&engine)], None);
            let request = RegisterRequest {
                url: "lite0".into(),
                model_name: Some("lite0".into()),
                synchronous: true,
                ..RegisterRequest::default()
            };
            registry.register(request).await.unwrap();
            let server = TestServer::serve(registry, store, crate::common::open_server()).await;
            let url = format!("{}/predictions/lite0", server.inference);
            let client = &server.client;
            let send = || async {
                let r = client.post(&url).body(photo.clone()).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.headers()["server-timing"].to_str().unwrap().to_owned()
            };
            // Warm-up: the first batch of each size builds the engine's plan.
            futures_util::future::join_all((0..batch).map(|_| send())).await;
            let rounds = if batch == 1 { 32 } else { 6 };
            let (mut pre, mut total) = (0.0, 0.0);
            let started = std::time::Instant::now();
            for _ in 0..rounds {
                for timing in futures_util::future::join_all((0..batch).map(|_| send())).await {
                    pre += server_timing(&timing, "preprocess");
                    total += server_timing(&timing, "total");
                }
            }
            let elapsed = started.elapsed().as_secs_f64();
            #[allow(clippy::cast_precision_loss)]
            let images = (rounds * batch) as f64;
            println!(
                "| {engine_name} | {batch} | {batch} | {:.1} | {:.1} | {:.1} | {:.0}% |",
                images / elapsed,
                total / images,
                pre / images,
                100.0 * pre / total
            );
            server.stop().await;
        }
    }
}
