//! TorchServe's metric log files: `ts_metrics.log` (frontend and system metrics) and
//! `model_metrics.log` (per-request handler metrics), plus `access_log.log`.
//!
//! Lines follow TorchServe's log4j pattern `%d{ISO8601} - %m`:
//!
//! ```text
//! 2026-11-25T12:21:59,143 - QueueTime.Milliseconds:0.42|#Level:Host|#hostname:vm,timestamp:1795609319
//! 2026-11-25T12:21:59,143 - PredictionTime.ms:1.93|#ModelName:tiny,Level:Model|#hostname:vm,requestID:3f…,timestamp:1795609319
//! ```
//!
//! so TorchServe's benchmark scraper, which takes `line.split("|")[0].split(":")[3]`, reads the
//! value. Writes go through `tracing-appender`'s non-blocking writer: the request path only copies
//! the line into a bounded channel, and a writer thread does the file I/O (lines are dropped, never
//! waited for, if the disk cannot keep up).
//!
//! Each file rolls over by size ([`Rotation`], TorchServe's log4j policy of 100 MB and five rolled
//! files), on the writer thread. Unrotated, a busy server fills a disk: a one-hour soak at 9,200
//! requests/s wrote 22 GB of logs in 46 minutes before the disk ran out.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// When the log files roll over: once a write takes a file past `max_bytes`, it is renamed to
/// `<name>.1` (older rolled files shift to `.2`, `.3` …, and those beyond `backups` are deleted) and
/// a new file is started. At most `(backups + 1) × max_bytes` (plus one write) per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Size at which a file rolls over (`log_file_max_size`; at least 1).
    pub max_bytes: u64,
    /// Rolled files kept per log (`log_file_backups`).
    pub backups: usize,
}

impl Default for Rotation {
    /// TorchServe's log4j2 defaults: 100 MB, five rolled files.
    fn default() -> Self {
        Self { max_bytes: 100 * 1024 * 1024, backups: 5 }
    }
}

/// The three log files of one server.
#[derive(Debug)]
pub struct MetricLog {
    dir: PathBuf,
    ts_metrics: NonBlocking,
    model_metrics: NonBlocking,
    access: NonBlocking,
    /// Flush and stop the writer threads when the log is dropped.
    _guards: [WorkerGuard; 3],
}

fn open(dir: &Path, name: &str, rotation: Rotation) -> std::io::Result<(NonBlocking, WorkerGuard)> {
    let path = dir.join(name);
    // Fail at startup on a file that cannot be written: the rotating writer would skip its writes
    // without a word.
    std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    let file = FileRotate::new(
        &path,
        AppendCount::new(rotation.backups),
        // Rolls after the write that crosses the size, so a file holds whole lines.
        ContentLimit::BytesSurpassed(
            usize::try_from(rotation.max_bytes.max(1)).unwrap_or(usize::MAX),
        ),
        Compression::None,
        None,
    );
    Ok(NonBlockingBuilder::default().lossy(true).thread_name("oxserve-metric-log").finish(file))
}

/// `2026-11-25T12:21:59,143`, TorchServe's log4j ISO8601 timestamp (local time, comma before millis).
/// Written field by field: parsing a format string and looking up the time zone per line cost
/// microseconds on the request path.
fn timestamp() -> String {
    use chrono::{Datelike, Timelike};
    let now = chrono::Utc::now().with_timezone(local_offset());
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02},{:03}",
        now.year(),
        now.month(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.timestamp_subsec_millis().min(999)
    )
}

/// The local UTC offset, read once per process.
fn local_offset() -> &'static chrono::FixedOffset {
    static OFFSET: std::sync::OnceLock<chrono::FixedOffset> = std::sync::OnceLock::new();
    OFFSET.get_or_init(|| *chrono::Local::now().offset())
}

fn epoch() -> i64 {
    chrono::Utc::now().timestamp()
}

impl MetricLog {
    /// Creates `dir` if needed and opens the three files for appending, each rolling over as
    /// `rotation` says.
    ///
    /// # Errors
    /// When the folder or a file cannot be created.
    pub fn open(dir: &Path, rotation: Rotation) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (ts_metrics, g1) = open(dir, "ts_metrics.log", rotation)?;
        let (model_metrics, g2) = open(dir, "model_metrics.log", rotation)?;
        let (access, g3) = open(dir, "access_log.log", rotation)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            ts_metrics,
            model_metrics,
            access,
            _guards: [g1, g2, g3],
        })
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts a group of lines sharing one timestamp; they are written when the group is dropped,
    /// one write per file, which keeps the cost per request to a few hundred nanoseconds.
    pub fn lines(&self) -> Lines<'_> {
        Lines {
            log: self,
            stamp: timestamp(),
            epoch: epoch(),
            ts: String::new(),
            model: String::new(),
        }
    }

    /// One frontend or system metric line in `ts_metrics.log`.
    pub fn frontend(&self, name: &str, unit: &str, value: f64, dims: &[(&str, &str)], host: &str) {
        self.lines().frontend(name, unit, value, dims, host);
    }

    /// An access log line: `<ts> - /<peer> "<METHOD> <path> <version>" <status> <millis>`.
    pub fn access(&self, peer: &str, request_line: &str, status: u16, millis: u128) {
        let line = format!("{} - /{peer} \"{request_line}\" {status} {millis}\n", timestamp());
        let _ = self.access.clone().write_all(line.as_bytes());
    }
}

/// Metric lines that share a timestamp, written to their files when dropped.
#[derive(Debug)]
pub struct Lines<'a> {
    log: &'a MetricLog,
    stamp: String,
    epoch: i64,
    ts: String,
    model: String,
}

impl Lines<'_> {
    /// Adds a `ts_metrics.log` line.
    pub fn frontend(
        &mut self,
        name: &str,
        unit: &str,
        value: f64,
        dims: &[(&str, &str)],
        host: &str,
    ) -> &mut Self {
        let line = Line { name, unit, value, dims, host, request_id: None };
        line.write(&mut self.ts, &self.stamp, self.epoch);
        self
    }

    /// Adds a `model_metrics.log` line.
    pub fn model(&mut self, line: &Line<'_>) -> &mut Self {
        line.write(&mut self.model, &self.stamp, self.epoch);
        self
    }
}

impl Drop for Lines<'_> {
    fn drop(&mut self) {
        if !self.ts.is_empty() {
            let _ = self.log.ts_metrics.clone().write_all(self.ts.as_bytes());
        }
        if !self.model.is_empty() {
            let _ = self.log.model_metrics.clone().write_all(self.model.as_bytes());
        }
    }
}

/// One metric: `Name.Unit:value|#dims|#hostname:h[,requestID:id],timestamp:epoch`.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// Metric name, e.g. `PredictionTime`.
    pub name: &'a str,
    /// Unit, e.g. `ms`.
    pub unit: &'a str,
    /// The value.
    pub value: f64,
    /// Dimensions, in order.
    pub dims: &'a [(&'a str, &'a str)],
    /// Host name.
    pub host: &'a str,
    /// Request id, on model metrics.
    pub request_id: Option<&'a str>,
}

impl Line<'_> {
    fn write(&self, out: &mut String, stamp: &str, epoch: i64) {
        let _ = write!(out, "{stamp} - {}.{}:{}|#", self.name, self.unit, self.value);
        for (i, (k, v)) in self.dims.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(out, "{sep}{k}:{v}");
        }
        let _ = write!(out, "|#hostname:{},", self.host);
        if let Some(id) = self.request_id {
            let _ = write!(out, "requestID:{id},");
        }
        let _ = writeln!(out, "timestamp:{epoch}");
    }

    /// The line stamped now, with its newline.
    pub fn format(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, &timestamp(), epoch());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_roll_over_and_old_ones_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = Rotation { max_bytes: 2_000, backups: 2 };
        {
            let log = MetricLog::open(dir.path(), rotation).unwrap();
            // 300 lines of about 70 bytes, one write each (far below the writer's channel bound, so
            // none is dropped): about ten files' worth.
            for i in 0..300 {
                log.access(
                    "127.0.0.1:5000",
                    &format!("POST /predictions/tiny/{i} HTTP/1.1"),
                    200,
                    1,
                );
            }
        } // Dropping the log flushes the writer threads.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("access_log"))
            .collect();
        names.sort();
        assert_eq!(names, ["access_log.log", "access_log.log.1", "access_log.log.2"]);
        for name in &names {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            // Rolled after the write that crossed 2,000 bytes: at most one line over, whole lines.
            assert!(text.len() < 2_000 + 100, "{name}: {} bytes", text.len());
            assert!(text.ends_with('\n') && text.lines().all(|l| l.contains(" 200 1")), "{name}");
        }
        // The newest lines are in the current file, the ones before them in `.1`.
        let current = std::fs::read_to_string(dir.path().join("access_log.log")).unwrap();
        assert!(current.contains("/predictions/tiny/299 "), "{current}");
        let previous = std::fs::read_to_string(dir.path().join("access_log.log.1")).unwrap();
        let last_of_previous = previous.lines().last().unwrap();
        let first_of_current = current.lines().next().unwrap();
        let number = |l: &str| -> u32 {
            l.split("/predictions/tiny/")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        assert_eq!(number(last_of_previous) + 1, number(first_of_current));
    }

    /// TorchServe's benchmark reads metric values this way (benchmark-ab.py).
    fn scrape(line: &str) -> f64 {
        line.split('|').next().unwrap().split(':').nth(3).unwrap().parse().unwrap()
    }

    #[test]
    fn lines_parse_like_torchserve_s_benchmark_scraper() {
        let line = Line {
            name: "QueueTime",
            unit: "Milliseconds",
            value: 1.25,
            dims: &[("Level", "Host")],
            host: "vm",
            request_id: None,
        }
        .format();
        assert_eq!(scrape(&line), 1.25);
        assert!(
            line.contains(" - QueueTime.Milliseconds:1.25|#Level:Host|#hostname:vm,timestamp:"),
            "{line}"
        );
        let dims = [("ModelName", "m"), ("Level", "Model")];
        let line = Line {
            name: "PredictionTime",
            unit: "ms",
            value: 3.0,
            dims: &dims,
            host: "vm",
            request_id: Some("abc"),
        }
        .format();
        assert_eq!(scrape(&line), 3.0);
        assert!(
            line.contains("|#ModelName:m,Level:Model|#hostname:vm,requestID:abc,timestamp:"),
            "{line}"
        );
        // The timestamp has exactly two colons, as the scraper assumes.
        assert_eq!(line.split(" - ").next().unwrap().matches(':').count(), 2);
    }
}
