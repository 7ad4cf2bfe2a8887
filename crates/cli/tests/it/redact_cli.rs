//! Runs the real `oxserve redact` over a folder as a user would: transcripts and text redacted,
//! offsets reported, and each bad file reported on its own while the others are written.

use std::fs;
use std::process::Command;

use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BLOG_CALL: &str = include_str!("../../../pii/tests/data/blog-call.json");

fn redact(args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new(env!("CARGO_BIN_EXE_oxserve")).arg("redact").args(args).output()
}

#[test]
fn a_folder_is_redacted_file_by_file_and_bad_files_are_reported_alone() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("in");
    fs::create_dir_all(input.join("2026/12"))?;
    fs::write(input.join("2026/12/blog-call.json"), BLOG_CALL)?;
    fs::write(input.join("note.txt"), "Customer Maria Lopez, call back at (206) 555-0147.")?;
    fs::write(input.join("broken.json"), "{\"Transcript\": [")?;
    fs::write(input.join("no-transcript.json"), "{\"Version\": \"1.1.0\"}")?;
    fs::write(input.join("latin1.txt"), b"Jos\xe9 called")?;
    let huge = serde_json::json!({ "Transcript": [{ "Id": "t0", "Content": "a".repeat(10 * 1024 * 1024) }] });
    fs::write(input.join("huge-turn.json"), serde_json::to_vec(&huge)?)?;
    let output = tmp.path().join("out");

    let run = redact(&[
        "--input",
        input.to_str().ok_or("path")?,
        "--output",
        output.to_str().ok_or("path")?,
        "--entity-types",
        "NAME,SSN,PHONE",
    ])?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    for (bad, reason) in [
        ("broken.json", "not valid JSON"),
        ("no-transcript.json", "no `Transcript`"),
        ("latin1.txt", "not UTF-8"),
        ("huge-turn.json", "the most one document or turn may hold"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(bad))
            .ok_or_else(|| format!("{bad} not reported: {stderr}"))?;
        assert!(line.contains(reason), "{line}");
        assert!(!output.join(bad).exists(), "{bad} was written");
    }
    assert!(stderr.contains("2 of 6 files written"), "{stderr}");

    let redacted: Value =
        serde_json::from_slice(&fs::read(output.join("2026/12/blog-call.json"))?)?;
    let contents: Vec<&str> = redacted["Transcript"]
        .as_array()
        .ok_or("turns")?
        .iter()
        .filter_map(|t| t["Content"].as_str())
        .collect();
    assert_eq!(contents[1], "Hello, my name is [NAME].");
    assert_eq!(contents[5], "Yes, it’s [SSN].");
    assert_eq!(
        contents[8],
        "The number we have on file for you is [PHONE]. Is that still correct?"
    );
    assert_eq!(contents[12], "Thank you, [NAME]. Have a great day.");
    assert_eq!(redacted["ContentMetadata"]["Output"], "Redacted");
    assert_eq!(
        fs::read_to_string(output.join("note.txt"))?,
        "Customer [NAME], call back at [PHONE]."
    );
    Ok(())
}

#[test]
fn offsets_and_masks_follow_comprehend() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let note = tmp.path().join("note.txt");
    fs::write(&note, "I’m Maria Lopez, SSN 123-45-6789.")?;
    let out = tmp.path().join("out");
    let (note, out_str) = (note.to_str().ok_or("path")?, out.to_str().ok_or("path")?);

    let run = redact(&["--input", note, "--output", out_str, "--mode", "offsets"])?;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: Value = serde_json::from_slice(&fs::read(out.join("note.txt"))?)?;
    assert_eq!(report["File"], "note.txt");
    let spans: Vec<(String, u64, u64)> = report["Entities"]
        .as_array()
        .ok_or("entities")?
        .iter()
        .map(|e| {
            (
                e["Type"].as_str().unwrap_or("").to_owned(),
                e["BeginOffset"].as_u64().unwrap_or(0),
                e["EndOffset"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        spans,
        [("NAME".to_owned(), 4, 15), ("SSN".to_owned(), 21, 32)],
        "code-point offsets, the ’ counted once"
    );

    let run = redact(&[
        "--input",
        note,
        "--output",
        out_str,
        "--mask-mode",
        "mask",
        "--mask-character",
        "#",
    ])?;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(fs::read_to_string(out.join("note.txt"))?, "I’m ###########, SSN ###########.");

    let run = redact(&["--input", note, "--output", out_str, "--entity-types", "NAME,SOCIAL"])?;
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("unknown PII entity type \"SOCIAL\""));
    let run = redact(&["--input", note, "--output", out_str, "--mask-character", "x"])?;
    assert_eq!(run.status.code(), Some(2));
    Ok(())
}
