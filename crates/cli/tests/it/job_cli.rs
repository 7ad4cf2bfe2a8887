//! Runs the real `oxserve job` as a user (or a Kubernetes Indexed Job) would: killed with SIGKILL
//! part-way and started again, it writes what an uninterrupted run writes; three workers share a
//! real S3 bucket (moto's server on loopback), one killed mid-job, and the others take its batches
//! over; offset reports are read back from the bucket.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oxserve_jobs::META;
use oxserve_jobs::testing::{self, outputs};
use oxserve_pii::eval::Call;

use super::serve_cli::{Running, oxserve, start_with};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CALLS: &str = include_str!("../../../pii/eval/heldout-calls.jsonl");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn write_calls(dir: &Path, count: usize) -> TestResult {
    Ok(testing::write_calls(dir, &Call::read_lines(CALLS)?, count)?)
}

fn count_files(dir: &Path) -> usize {
    (0..3).map(|d| std::fs::read_dir(dir.join(format!("day-{d}"))).map_or(0, Iterator::count)).sum()
}

fn job(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_oxserve"));
    command.arg("job").args(args).arg("--quiet");
    command
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

#[test]
fn a_job_killed_at_any_moment_resumes_to_the_bytes_of_an_uninterrupted_run() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("calls");
    write_calls(&input, 5000)?;
    std::fs::write(input.join("not-json.json"), "{\"Transcript\": [")?;
    let whole = tmp.path().join("whole");
    let args = |out: &Path| {
        let mut c = job(&[
            "--input",
            path(&input),
            "--output",
            path(out),
            "--redact",
            "--batch-size",
            "250",
        ]);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        c
    };
    let run = args(&whole).output()?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("done: 5000 of 5001 documents written, 1 failed"), "{stderr}");
    assert!(stderr.contains("not-json.json: not valid JSON"), "{stderr}");

    let resumed = tmp.path().join("resumed");
    let mut kills = 0;
    for kill_at in [300, 2_600, 4_100] {
        let mut child = args(&resumed).stderr(Stdio::null()).spawn()?;
        let started = Instant::now();
        while count_files(&resumed) < kill_at
            && child.try_wait()?.is_none()
            && started.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        if child.try_wait()?.is_none() {
            child.kill()?; // SIGKILL: no handler runs, files may be half-written.
            kills += 1;
        }
        child.wait()?;
    }
    assert!(kills >= 2, "the job finished before it could be killed ({kills} kills)");
    let run = args(&resumed).output()?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("done: 5000 of 5001 documents written, 1 failed"), "{stderr}");

    let (got, want) = (outputs(&resumed), outputs(&whole));
    assert_eq!(got.len(), 5000);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    assert!(got == want, "the resumed job's outputs differ from an uninterrupted run's");
    let report = |dir: &Path| std::fs::read(dir.join(META).join("report.json"));
    assert_eq!(report(&resumed)?, report(&whole)?);
    Ok(())
}

/// moto's S3 server on a free loopback port, stopped on drop.
struct S3 {
    child: Child,
    endpoint: String,
}

impl S3 {
    fn start() -> Result<Self, Box<dyn std::error::Error>> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(repo().join(".venv-aws/bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("moto_server (bash scripts/install-boto3.sh installs it): {e}"))?;
        let server = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err("moto_server did not start in 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    fn env(&self, command: &mut Command) {
        command
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1");
    }

    /// A server whose bucket `calls` holds `count` calls under `in/` (also written to
    /// `dir/calls`, returned), with an empty bucket `results`.
    fn with_calls(dir: &Path, count: usize) -> Result<(Self, PathBuf), Box<dyn std::error::Error>> {
        let s3 = Self::start()?;
        let input = dir.join("calls");
        write_calls(&input, count)?;
        s3.tree(&["upload", path(&input), "s3://calls/in/", "results"])?;
        Ok((s3, input))
    }

    /// `s3_tree.py upload|download A B [BUCKET...]` through boto3.
    fn tree(&self, args: &[&str]) -> TestResult {
        let verb = args.first().copied().unwrap_or_default();
        let mut command = Command::new(repo().join(".venv-aws/bin/python"));
        command.arg(repo().join("tests/interop/s3_tree.py")).args(args);
        self.env(&mut command);
        let out = command.output()?;
        assert!(
            out.status.success(),
            "s3_tree.py {verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn three_workers_share_a_bucket_and_take_over_a_killed_ones_batches() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (s3, input) = S3::with_calls(tmp.path(), 600)?;
    let whole = tmp.path().join("whole");
    let local =
        job(&["--input", path(&input), "--output", path(&whole), "--redact", "--batch-size", "25"])
            .output()?;
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));

    let worker = |index: usize| -> std::io::Result<Child> {
        let shard = format!("{index}/3");
        let id = format!("worker-{index}");
        let mut c = job(&[
            "--input",
            "s3://calls/in/",
            "--output",
            "s3://results/redacted/",
            "--redact",
            "--batch-size",
            "25",
            "--shard",
            &shard,
            "--worker-id",
            &id,
            "--lease-seconds",
            "2",
        ]);
        s3.env(&mut c);
        c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()
    };
    let mut workers = (0..3).map(worker).collect::<Result<Vec<_>, _>>()?;
    std::thread::sleep(Duration::from_millis(1500));
    let killed_early = workers[1].try_wait()?.is_some();
    workers[1].kill()?;
    workers[1].wait()?;
    for index in [0, 2] {
        let out = workers.remove(if index == 0 { 0 } else { 1 }).wait_with_output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "worker {index}: {stderr}");
        assert!(
            stderr.contains("done: 600 of 600 documents written, 0 failed"),
            "worker {index}: {stderr}"
        );
    }
    assert!(!killed_early, "worker 1 finished before it was killed: the test proves nothing");

    let fetched = tmp.path().join("fetched");
    s3.tree(&["download", "s3://results/redacted/", path(&fetched)])?;
    assert!(
        outputs(&fetched) == outputs(&whole),
        "the bucket's outputs differ from a one-process run's"
    );
    let records = outputs(&fetched.join(META));
    assert!(
        records.keys().all(|k| !k.contains("leases")),
        "leases left behind: {:?}",
        records.keys()
    );

    // The offsets of the same calls, read back from the bucket.
    let mut offsets = job(&[
        "--input",
        "s3://calls/in/",
        "--output",
        "s3://results/offsets/",
        "--redact",
        "--mode",
        "offsets",
    ]);
    s3.env(&mut offsets);
    let out = offsets.output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fetched = tmp.path().join("offsets");
    s3.tree(&["download", "s3://results/offsets/", path(&fetched)])?;
    let reports = outputs(&fetched);
    assert_eq!(reports.len(), 600);
    let mut names = 0;
    for (name, bytes) in &reports {
        assert!(name.ends_with(".json.out"), "{name}");
        let report: serde_json::Value = serde_json::from_slice(bytes)?;
        assert_eq!(report["File"].as_str(), name.strip_suffix(".out"));
        let turns = report["Transcript"].as_array().ok_or("no Transcript in the offsets report")?;
        names += turns
            .iter()
            .flat_map(|t| t["Entities"].as_array().into_iter().flatten())
            .filter(|e| e["Type"] == "NAME")
            .count();
    }
    assert!(names > 600, "only {names} names found in 600 calls");
    Ok(())
}

#[test]
fn a_model_job_writes_each_files_prediction() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("requests");
    std::fs::create_dir_all(&input)?;
    let request = std::fs::read(repo().join("examples/inputs/tiny.json"))?;
    for i in 0..5 {
        std::fs::write(input.join(format!("r{i}.json")), &request)?;
    }
    std::fs::write(input.join("wrong.json"), "{\"nothing\": 1}")?;
    let output = tmp.path().join("predictions");
    let model = repo().join("examples/model-store/tiny");
    let run = job(&["--model", path(&model), "--input", path(&input), "--output", path(&output)])
        .output()?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("done: 5 of 6 documents written, 1 failed"), "{stderr}");
    assert!(stderr.contains("wrong.json: "), "{stderr}");

    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo().join("examples/inputs/expected.json"))?)?;
    let want: Vec<f64> = serde_json::from_value(expected["tiny"]["output"].clone())?;
    let written = outputs(&output);
    assert_eq!(written.len(), 5);
    for (name, bytes) in written {
        assert!(name.ends_with(".json.out"), "{name}");
        let got: Vec<f64> = serde_json::from_slice(&bytes)?;
        assert_eq!(got.len(), want.len());
        assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-4), "{name}: {got:?}");
    }
    Ok(())
}

/// `oxserve serve` (serve_cli's start-up) with the Comprehend job API, its S3 pointed at `s3`,
/// its key file and logs in `dir`; the inference, management and metrics URLs.
fn serve(s3: &S3, dir: &Path) -> (Running, [String; 3]) {
    let mut command = oxserve();
    s3.env(&mut command);
    let jobs = dir.join("jobs");
    start_with(&["--job-store", path(&jobs)], dir, command)
}

fn comprehend(
    endpoint: &str,
    dir: &Path,
    args: &[&str],
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let keys: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("key_file.json"))?)?;
    let key = keys["inference"]["key"].as_str().ok_or("no inference key")?;
    let out = Command::new(repo().join(".venv-aws/bin/python"))
        .arg(repo().join("tests/interop/comprehend_jobs_check.py"))
        .args(["--endpoint", endpoint, "--key", key])
        .args(args)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "comprehend_jobs_check.py {args:?}: {stderr}");
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn comprehend_pii_jobs_from_boto3_survive_a_server_restart() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (s3, input) = S3::with_calls(tmp.path(), 400)?;
    let whole = tmp.path().join("whole");
    let args = [
        "--input",
        path(&input),
        "--output",
        path(&whole),
        "--redact",
        "--entity-types",
        "NAME,PHONE,SSN",
    ];
    let local = job(&args).output()?;
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));

    let server_dir = tmp.path().join("server");
    std::fs::create_dir_all(&server_dir)?;
    let (server, [endpoint, _, metrics]) = serve(&s3, &server_dir);
    let endpoint = endpoint.as_str();
    let started = comprehend(
        endpoint,
        &server_dir,
        &[
            "start",
            "--name",
            "calls-redaction",
            "--input",
            "s3://calls/in/",
            "--output",
            "s3://results/redacted",
            "--mode",
            "ONLY_REDACTION",
            "--types",
            "NAME,PHONE,SSN",
        ],
    )?;
    let id = started["JobId"].as_str().ok_or("no JobId")?.to_owned();
    assert_eq!(id.len(), 32);
    assert!(started["JobArn"].as_str().is_some_and(|a| a.ends_with(&id)));
    // Killed while the job runs: its record says it has not finished.
    std::thread::sleep(Duration::from_millis(700));
    drop(server); // SIGKILL
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(
        server_dir.join("jobs").join(format!("{id}.json")),
    )?)?;
    assert!(matches!(record["JobStatus"].as_str(), Some("SUBMITTED" | "IN_PROGRESS")), "{record}");

    let (server, [endpoint, _, metrics_after]) = serve(&s3, &server_dir);
    let endpoint = endpoint.as_str();
    assert_ne!(metrics, metrics_after);
    let done = comprehend(endpoint, &server_dir, &["wait", "--job-id", &id])?;
    assert_eq!(done["JobStatus"], "COMPLETED", "{done}");
    assert_eq!(done["JobName"], "calls-redaction");
    assert_eq!(done["Mode"], "ONLY_REDACTION");
    assert_eq!(
        done["RedactionConfig"]["PiiEntityTypes"],
        serde_json::json!(["NAME", "PHONE", "SSN"])
    );
    assert!(done["EndTime"].as_f64() >= done["SubmitTime"].as_f64());
    let output = done["OutputDataConfig"]["S3Uri"].as_str().ok_or("no output URI")?;
    assert!(output.starts_with("s3://results/redacted/") && output.contains(&id), "{output}");
    let fetched = tmp.path().join("fetched");
    s3.tree(&["download", output, path(&fetched)])?;
    assert_eq!(outputs(&fetched).len(), 400);
    assert!(outputs(&fetched) == outputs(&whole), "the job's outputs differ from the library's");

    let metrics_url = format!("{metrics_after}/metrics");
    let metrics_text = tokio::runtime::Runtime::new()?
        .block_on(async { reqwest::get(metrics_url).await?.text().await })?;
    let line = format!(
        "job_id=\"{id}\",job_name=\"calls-redaction\",status=\"COMPLETED\",outcome=\"succeeded\",}} 400.0"
    );
    assert!(metrics_text.contains(&line), "{metrics_text}");

    let offsets = comprehend(
        endpoint,
        &server_dir,
        &[
            "start",
            "--name",
            "calls-offsets",
            "--input",
            "s3://calls/in/",
            "--output",
            "s3://results/offsets/",
            "--mode",
            "ONLY_OFFSETS",
        ],
    )?;
    let offsets_id = offsets["JobId"].as_str().ok_or("no JobId")?.to_owned();
    let stopped = comprehend(
        endpoint,
        &server_dir,
        &[
            "start",
            "--name",
            "to-stop",
            "--input",
            "s3://calls/in/",
            "--output",
            "s3://results/stopped/",
            "--mode",
            "ONLY_OFFSETS",
        ],
    )?;
    let stop_id = stopped["JobId"].as_str().ok_or("no JobId")?.to_owned();
    let stop = comprehend(endpoint, &server_dir, &["stop", "--job-id", &stop_id])?;
    assert_eq!(stop["JobStatus"], "STOP_REQUESTED");
    let offsets_done = comprehend(endpoint, &server_dir, &["wait", "--job-id", &offsets_id])?;
    assert_eq!(offsets_done["JobStatus"], "COMPLETED", "{offsets_done}");
    let fetched = tmp.path().join("fetched-offsets");
    let uri = offsets_done["OutputDataConfig"]["S3Uri"].as_str().ok_or("uri")?;
    s3.tree(&["download", uri, path(&fetched)])?;
    let reports = outputs(&fetched);
    assert_eq!(reports.len(), 400);
    assert!(reports.values().all(|r| {
        serde_json::from_slice::<serde_json::Value>(r).is_ok_and(|v| v["Transcript"].is_array())
    }));
    assert_eq!(
        comprehend(endpoint, &server_dir, &["wait", "--job-id", &stop_id])?["JobStatus"],
        "STOPPED"
    );

    let listed = comprehend(endpoint, &server_dir, &["list", "--name", "calls-redaction"])?;
    let jobs = listed["jobs"].as_array().ok_or("jobs")?;
    assert_eq!(jobs.len(), 1, "{listed}");
    assert_eq!(jobs[0]["JobId"], id.as_str());
    let errors = comprehend(endpoint, &server_dir, &["errors"])?;
    assert_eq!(errors["unknown_job"], serde_json::json!(["JobNotFoundException", 400]));
    assert_eq!(errors["stop_unknown"], serde_json::json!(["JobNotFoundException", 400]));
    for case in ["no_redaction_config", "local_input", "language"] {
        assert_eq!(
            errors[case],
            serde_json::json!(["InvalidRequestException", 400]),
            "{case}: {errors}"
        );
    }
    drop(server); // SIGKILL
    Ok(())
}
