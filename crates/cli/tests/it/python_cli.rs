//! TorchServe's Python workers through the real binary, set up from config.properties (`python`,
//! `model_metrics_auto_detect`): a handler's own counter reaches `/metrics`, and faults (a worker
//! killed mid-batch, a handler that ends its process at load, scaling up and down, unregister)
//! leave the server with the file descriptors it had, and no worker process or socket file behind,
//! also once it has stopped.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::serve_cli::{copy_dir, get_json, oxserve, repo, start_with, terminate};

/// The worker venv's interpreter (scripts/install-python-worker.sh), or `None` when skipped.
fn python() -> Option<PathBuf> {
    let python = repo().join(".venv-python-worker/bin/python");
    if python.exists() {
        return Some(python);
    }
    if std::env::var("OXSERVE_SKIP_PYTHON_WORKER").is_ok_and(|v| v == "1") {
        eprintln!("skipped: OXSERVE_SKIP_PYTHON_WORKER=1 and {} is missing", python.display());
        return None;
    }
    panic!("{} is missing: run `bash scripts/install-python-worker.sh`", python.display());
}

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.split_whitespace().nth(2) != Some("Z"))
}

/// Socket files left in the server's private folders under `tmp`.
fn sockets(tmp: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(tmp).unwrap().flatten() {
        if let Ok(entries) = std::fs::read_dir(dir.path()) {
            found.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().contains(".ts.sock.")),
            );
        }
    }
    found
}

async fn worker_pids(client: &reqwest::Client, management: &str, model: &str) -> Vec<u64> {
    let describe = get_json(client, format!("{management}/models/{model}")).await;
    describe[0]["workers"].as_array().unwrap().iter().filter_map(|w| w["pid"].as_u64()).collect()
}

/// Polls `f` until it holds (the server closes connections and reaps workers in the background).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_faults_leave_no_process_socket_or_descriptor_behind() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    for model in ["faults", "exit_at_load"] {
        copy_dir(&repo().join("tests/fixtures/python").join(model), &store.join(model));
    }
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let config = dir.path().join("config.properties");
    std::fs::write(
        &config,
        format!(
            "model_store={}\nenable_model_api=true\ndisable_token_authorization=true\n\
             python={}\nmodel_metrics_auto_detect=true\n",
            store.display(),
            python.display()
        ),
    )
    .unwrap();
    let mut command = oxserve();
    command.env("TMPDIR", &tmp);
    let (running, [inference, management, metrics]) =
        start_with(&["--ts-config", config.to_str().unwrap()], &dir.path().join("logs"), command);
    let server = running.0.as_ref().unwrap().id();
    // No connection pooling: a kept-alive connection would hold a descriptor in the server.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let before = descriptors(server);

    let register = |query: &str| {
        let url = format!("{management}/models?{query}&synchronous=true");
        let client = client.clone();
        async move {
            let r = client.post(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // A handler that ends its process at load: the registration fails with the reason, and the
    // model is not left registered.
    let (status, body) = register("url=exit_at_load&initial_workers=1").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("exited while loading") && body.contains("exit status: 3"), "{body}");
    let r = client.get(format!("{management}/models/exit_at_load")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    assert_eq!(register("url=faults&initial_workers=1").await.0, 200);
    let predict = |body: &'static str| {
        let (client, url) = (client.clone(), format!("{inference}/predictions/faults"));
        async move {
            let r = client.post(url).body(body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // The handler's own counter, added twice by 2: a series without being declared.
    assert_eq!(predict("metric").await.0, 200);
    assert_eq!(predict("metric").await.0, 200);
    let wanted = "FaultsSeen{ModelName=\"faults\",Level=\"Model\",Hostname=";
    let mut text = String::new();
    for _ in 0..1000 {
        text = client.get(format!("{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
        if text.lines().any(|l| l.starts_with(wanted) && l.ends_with(" 4.0")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(text.lines().any(|l| l.starts_with(wanted) && l.ends_with(" 4.0")), "{text}");

    // A worker killed mid-batch: its request fails, a new worker answers the next.
    let hung = tokio::spawn(predict("hang"));
    let pid_file = store.join("faults/hang.pid");
    eventually("the handler never hung", || pid_file.exists()).await;
    let hung_pid = std::fs::read_to_string(&pid_file).unwrap();
    std::process::Command::new("kill").args(["-9", hung_pid.trim()]).status().unwrap();
    assert_eq!(hung.await.unwrap().0, 507);
    assert_eq!(predict("ok").await, (200, "ok".to_owned()));

    // Scale up to three workers and back down to one.
    let scale = |n: usize| {
        let url = format!("{management}/models/faults?min_worker={n}&synchronous=true");
        let client = client.clone();
        async move { client.put(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(scale(3).await, 200);
    let three = worker_pids(&client, &management, "faults").await;
    assert_eq!(three.len(), 3, "{three:?}");
    assert_eq!(scale(1).await, 200);
    let one = worker_pids(&client, &management, "faults").await;
    assert_eq!(one.len(), 1, "{one:?}");
    for pid in three.iter().filter(|p| !one.contains(p)) {
        eventually(&format!("scaled-down worker {pid} still runs"), || !alive(*pid)).await;
    }

    // Unregister: the last worker and its socket go, and the server holds what it held before.
    let r =
        client.delete(format!("{management}/models/faults?synchronous=true")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    eventually(&format!("worker {} outlived its model", one[0]), || !alive(one[0])).await;
    eventually("a socket file was left behind", || sockets(&tmp).is_empty()).await;
    let mut after = 0;
    for _ in 0..1000 {
        after = descriptors(server);
        if after <= before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(after <= before, "descriptors: {before} before the faults, {after} after");

    // A worker running when the server stops goes with it, and so does the private folder.
    assert_eq!(register("url=faults&initial_workers=1").await.0, 200);
    let last = worker_pids(&client, &management, "faults").await;
    terminate(running);
    for pid in last {
        eventually(&format!("worker {pid} outlived the server"), || !alive(pid)).await;
    }
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("oxserve-python-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
