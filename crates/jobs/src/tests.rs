//! Jobs over real folders: outputs equal the library's, bad documents reported, a stopped job
//! resumed to the same bytes, two processes sharing one job, one-document-per-line files.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use oxserve_pii::document::{self, Format, Output};
use oxserve_pii::eval::Call;
use oxserve_pii::{Detector, Redaction};
use tokio_util::sync::CancellationToken;

use crate::{
    Counters, DocumentsPer, Finish, Job, JobError, Location, META, Redact, RunOptions, Shard,
    testing,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CALLS: &str = include_str!("../../pii/eval/heldout-calls.jsonl");

/// `count` Contact Lens files (the held-out calls, round and round) in sub-folders of `dir`.
fn write_calls(dir: &Path, count: usize) -> TestResult {
    Ok(testing::write_calls(dir, &Call::read_lines(CALLS)?, count)?)
}

fn redact(output: Output, per: DocumentsPer) -> Arc<Redact> {
    Arc::new(Redact {
        detector: Arc::new(Detector::new()),
        redaction: Redaction::default(),
        output,
        per,
    })
}

fn options(owner: &str, shard: Shard) -> RunOptions {
    RunOptions { concurrency: 4, shard, owner: owner.to_owned(), lease: Duration::from_secs(30) }
}

async fn run_job(
    input: &Path,
    output: &Path,
    transform: Arc<Redact>,
    batch: usize,
) -> Result<Finish, JobError> {
    let input = Location::parse(input.to_str().unwrap_or_default(), false)?;
    let output = Location::parse(output.to_str().unwrap_or_default(), true)?;
    let job = Job::open(input, output, transform, batch).await?;
    job.run(&options("test", Shard::default()), &Counters::default(), &CancellationToken::new())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_equal_the_library_and_bad_documents_are_reported() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("in");
    write_calls(&input, 25)?;
    std::fs::write(input.join("broken.json"), "{\"Transcript\": [")?;
    std::fs::write(input.join("latin1.txt"), b"Jos\xe9 called")?;
    std::fs::write(input.join("big.txt"), "word ".repeat(300_000))?;
    std::fs::write(input.join("note.txt"), "Call Maria Lopez back at (206) 555-0147.")?;
    let output = tmp.path().join("out");

    let finish =
        run_job(&input, &output, redact(Output::Redaction, DocumentsPer::File), 10).await?;
    let Finish::Completed(report) = finish else { return Err("stopped".into()) };
    assert_eq!((report.documents, report.succeeded), (29, 26));
    let reasons: Vec<(&str, &str)> =
        report.failed.iter().map(|f| (f.file.as_str(), f.reason.as_str())).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].0 == "big.txt" && reasons[0].1.contains("the most one may hold is 1048576"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].0 == "broken.json" && reasons[1].1.contains("not valid JSON"),
        "{reasons:?}"
    );
    assert!(reasons[2].0 == "latin1.txt" && reasons[2].1.contains("not UTF-8"), "{reasons:?}");

    let detector = Detector::new();
    let written = testing::outputs(&output);
    assert_eq!(written.len(), 26);
    for (name, bytes) in &written {
        let source = std::fs::read(input.join(name))?;
        let expected = document::process(
            &detector,
            name,
            &source,
            Format::of(name),
            Output::Redaction,
            &Redaction::default(),
        )?;
        assert_eq!(bytes, &expected, "{name}");
    }
    assert_eq!(String::from_utf8_lossy(&written["note.txt"]), "Call [NAME] back at [PHONE].");
    let saved: crate::Report =
        serde_json::from_slice(&std::fs::read(output.join(META).join("report.json"))?)?;
    assert_eq!(saved, report);

    // The same arguments again: the job is found done, nothing is redone.
    let again = run_job(&input, &output, redact(Output::Redaction, DocumentsPer::File), 10).await?;
    assert_eq!(again, Finish::Completed(report));
    // Other arguments over the same output are another job, refused.
    let other = run_job(&input, &output, redact(Output::Offsets, DocumentsPer::File), 10).await;
    assert!(matches!(other, Err(JobError::OtherJob { .. })), "{other:?}");
    let inside =
        run_job(&input, &input.join("out"), redact(Output::Redaction, DocumentsPer::File), 10)
            .await;
    assert!(matches!(inside, Err(JobError::Invalid(ref m)) if m.contains("overlap")), "{inside:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_job_resumes_to_the_same_bytes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("in");
    write_calls(&input, 120)?;
    let whole = tmp.path().join("whole");
    run_job(&input, &whole, redact(Output::Redaction, DocumentsPer::File), 16).await?;

    let parts = tmp.path().join("parts");
    let transform = redact(Output::Redaction, DocumentsPer::File);
    let open = || async {
        let i = Location::parse(input.to_str().unwrap_or_default(), false)?;
        let o = Location::parse(parts.to_str().unwrap_or_default(), true)?;
        Job::open(i, o, transform.clone(), 16).await
    };
    let job = open().await?;
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let watcher = {
        let (counters, stop) = (counters.clone(), stop.clone());
        tokio::spawn(async move {
            while counters.finished() < 40 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            stop.cancel();
        })
    };
    let first = job.run(&options("test", Shard::default()), &counters, &stop).await?;
    watcher.await?;
    assert_eq!(first, Finish::Stopped);
    let done = job.done().await?.len();
    assert!(done < 8, "{done} of 8 batches done before the stop");

    let job = open().await?;
    let counters = Counters::default();
    let second =
        job.run(&options("test", Shard::default()), &counters, &CancellationToken::new()).await?;
    assert!(matches!(second, Finish::Completed(ref r) if r.succeeded == 120), "{second:?}");
    assert_eq!(counters.skipped.load(std::sync::atomic::Ordering::Relaxed), done as u64 * 16);
    assert_eq!(testing::outputs(&parts), testing::outputs(&whole));
    assert_eq!(
        std::fs::read(parts.join(META).join("report.json"))?,
        std::fs::read(whole.join(META).join("report.json"))?
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_job() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("in");
    write_calls(&input, 90)?;
    let whole = tmp.path().join("whole");
    run_job(&input, &whole, redact(Output::Redaction, DocumentsPer::File), 10).await?;

    let shared = tmp.path().join("shared");
    let mut runs = Vec::new();
    for index in 0..2 {
        let (input, shared) = (input.clone(), shared.clone());
        runs.push(tokio::spawn(async move {
            let i = Location::parse(input.to_str().unwrap_or_default(), false)?;
            let o = Location::parse(shared.to_str().unwrap_or_default(), true)?;
            let job = Job::open(i, o, redact(Output::Redaction, DocumentsPer::File), 10).await?;
            let options = options(&format!("worker-{index}"), Shard { index, count: 2 });
            job.run(&options, &Counters::default(), &CancellationToken::new()).await
        }));
    }
    for run in runs {
        assert!(matches!(run.await??, Finish::Completed(ref r) if r.succeeded == 90));
    }
    assert_eq!(testing::outputs(&shared), testing::outputs(&whole));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_document_per_line() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input)?;
    std::fs::write(
        input.join("lines.txt"),
        "My name is John Stiles.\r\n\nCall 206-555-0147\nnothing here",
    )?;
    let redacted = tmp.path().join("redacted");
    run_job(&input, &redacted, redact(Output::Redaction, DocumentsPer::Line), 10).await?;
    assert_eq!(
        std::fs::read_to_string(redacted.join("lines.txt"))?,
        "My name is [NAME].\r\n\nCall [PHONE]\nnothing here"
    );

    let offsets = tmp.path().join("offsets");
    run_job(&input, &offsets, redact(Output::Offsets, DocumentsPer::Line), 10).await?;
    let records: Vec<serde_json::Value> = std::fs::read_to_string(offsets.join("lines.txt.out"))?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(records.len(), 4);
    assert_eq!(records[0]["Line"], 0);
    assert_eq!(records[0]["File"], "lines.txt");
    assert_eq!(records[0]["Entities"][0]["Type"], "NAME");
    assert_eq!(records[0]["Entities"][0]["BeginOffset"], 11);
    assert_eq!(records[2]["Entities"][0]["Type"], "PHONE");
    assert_eq!(records[3]["Entities"].as_array().map(Vec::len), Some(0));
    Ok(())
}
