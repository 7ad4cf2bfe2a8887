//! TorchServe's metric log files: `ts_metrics.log` (frontend and system metrics) and
//! `model_metrics.log` (per-request handler metrics), plus `access_log.log` and `model_log.log` (what
//! models' worker processes print).
//!
//! Lines follow TorchServe's log4j pattern `%d{ISO8601} - %m`:
//!
//! ```text
//! 2026-11-25T12:21:59,143 - QueueTime.Milliseconds:0.42|#Level:Host|#hostname:vm,timestamp:1795609319
//! 2026-11-25T12:21:59,143 - PredictionTime.ms:1.93|#ModelName:tiny,Level:Model|#hostname:vm,requestID:3f…,timestamp:1795609319
//! ```
//!
//! so TorchServe's benchmark scraper, which takes `line.split("|")[0].split(":")[3]`, reads the
//! value. The request path only appends its lines to a buffer; a writer thread does the file I/O
//! in bulk ([`writer`]; lines are dropped, never waited for, if the disk cannot keep up).
//!
//! Each file rolls over by size ([`Rotation`], TorchServe's log4j policy of 100 MB and five rolled
//! files), on the writer thread. Unrotated, a busy server fills a disk: a one-hour soak at 9,200
//! requests/s wrote 22 GB of logs in 46 minutes before the disk ran out.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};

mod writer;

use writer::{Output, Writer};

/// The files, in the writer's numbering.
const TS_METRICS: usize = 0;
const MODEL_METRICS: usize = 1;
const ACCESS: usize = 2;
const MODEL_LOG: usize = 3;

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
/// Dropping it writes what is buffered and stops the writer thread.
#[derive(Debug)]
pub struct MetricLog {
    dir: PathBuf,
    writer: Writer,
}

fn open(dir: &Path, name: &str, rotation: Rotation) -> std::io::Result<Output> {
    let path = dir.join(name);
    // Fail at startup on a file that cannot be written: the rotating writer would skip its writes
    // without a word.
    let existing = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    let written = usize::try_from(existing.metadata()?.len()).unwrap_or(usize::MAX);
    let limit = usize::try_from(rotation.max_bytes.max(1)).unwrap_or(usize::MAX);
    let file = FileRotate::new(
        &path,
        AppendCount::new(rotation.backups),
        // Rolls after the write that crosses the size, so a file holds whole lines.
        ContentLimit::BytesSurpassed(limit),
        Compression::None,
        None,
    );
    Ok(Output { file, written, limit })
}

/// `2026-11-25T12:21:59,143`, TorchServe's log4j ISO8601 timestamp (local time, comma before millis).
fn format_stamp(at: SystemTime) -> String {
    use chrono::{Datelike, Timelike};
    let at = chrono::DateTime::<chrono::Utc>::from(at).with_timezone(local_offset());
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02},{:03}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.timestamp_subsec_millis().min(999)
    )
}

/// The local UTC offset, read once per process.
fn local_offset() -> &'static chrono::FixedOffset {
    static OFFSET: std::sync::OnceLock<chrono::FixedOffset> = std::sync::OnceLock::new();
    OFFSET.get_or_init(|| *chrono::Local::now().offset())
}

/// What every per-request line of one model version names, shared by its entries.
#[derive(Debug)]
pub struct ModelLabels {
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
    /// Host name.
    pub host: String,
}

/// The values of one answered request's lines: TorchServe's frontend metrics in
/// `ts_metrics.log` and its handler metrics in `model_metrics.log`.
#[derive(Debug)]
pub struct RequestLines {
    /// The model version it ran on.
    pub labels: Arc<ModelLabels>,
    /// Its request id, on the model metrics.
    pub request_id: Option<String>,
    /// Time from arrival to answer.
    pub total: Duration,
    /// Time in the queue.
    pub queue: Duration,
    /// Time its batch ran.
    pub inference: Duration,
    /// Handler time: preprocess, inference and postprocess.
    pub handler: Duration,
}

impl MetricLog {
    /// Creates `dir` if needed and opens the three files for appending, each rolling over as
    /// `rotation` says.
    ///
    /// # Errors
    /// When the folder or a file cannot be created.
    pub fn open(dir: &Path, rotation: Rotation) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let outputs = ["ts_metrics.log", "model_metrics.log", "access_log.log", "model_log.log"]
            .into_iter()
            .map(|name| open(dir, name, rotation))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self { dir: dir.to_path_buf(), writer: Writer::start(outputs)? })
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One frontend or system metric line in `ts_metrics.log`.
    pub fn frontend(&self, name: &str, unit: &str, value: f64, dims: &[(&str, &str)], host: &str) {
        let mut body = String::new();
        Line { name, unit, value, dims, host, request_id: None }.write_body(&mut body);
        self.writer.append(
            TS_METRICS,
            Box::new(move |out, stamp| {
                let _ = writeln!(out, "{} - {body},timestamp:{}", stamp.text, stamp.epoch);
            }),
        );
    }

    /// A `ts_metrics.log` line counting one event of the host: `<name>.Count:1|#Level:Host|…`,
    /// formatted on the writer thread.
    pub fn host_count(&self, name: &'static str, host: &Arc<str>) {
        let host = Arc::clone(host);
        self.writer.append(
            TS_METRICS,
            Box::new(move |out, stamp| {
                let line = Line {
                    name,
                    unit: "Count",
                    value: 1.0,
                    dims: &[("Level", "Host")],
                    host: &host,
                    request_id: None,
                };
                line.write(out, stamp);
            }),
        );
    }

    /// The lines of one answered request (seven, in two files). Only the values are taken here;
    /// the writer thread formats them.
    pub fn request(&self, lines: RequestLines) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let RequestLines { labels, request_id, total, queue, inference, handler } = lines;
        let model_labels = Arc::clone(&labels);
        self.writer.append(
            TS_METRICS,
            Box::new(move |out, stamp| {
                let l = &*labels;
                let model =
                    [("model_name", l.name.as_str()), ("model_version", l.version.as_str())];
                let host_level = [("Level", "Host")];
                let line = |name, unit, value, dims| Line {
                    name,
                    unit,
                    value,
                    dims,
                    host: &l.host,
                    request_id: None,
                };
                for line in [
                    line("ts_inference_requests_total", "Count", 1.0, &model[..]),
                    line("ts_inference_latency_microseconds", "Microseconds", us(total), &model),
                    line("ts_queue_latency_microseconds", "Microseconds", us(queue), &model),
                    line("QueueTime", "Milliseconds", ms(queue), &host_level),
                    line("WorkerThreadTime", "Milliseconds", ms(inference), &host_level),
                ] {
                    line.write(out, stamp);
                }
            }),
        );
        self.writer.append(
            MODEL_METRICS,
            Box::new(move |out, stamp| {
                let l = &*model_labels;
                let dims = [("ModelName", l.name.as_str()), ("Level", "Model")];
                let request_id = request_id.as_deref();
                for (name, value) in
                    [("HandlerTime", ms(handler)), ("PredictionTime", ms(inference))]
                {
                    Line { name, unit: "ms", value, dims: &dims, host: &l.host, request_id }
                        .write(out, stamp);
                }
            }),
        );
    }

    /// A `model_metrics.log` line a worker process wrote itself (the text after its `[METRICS]`
    /// marker: `Name.Unit:value|#dims|#hostname:h,epoch[,request ids]`), stamped as the others.
    pub fn worker(&self, text: &str) {
        let text = text.trim_end().to_owned();
        self.writer.append(
            MODEL_METRICS,
            Box::new(move |out, stamp| {
                let _ = writeln!(out, "{} - {text}", stamp.text);
            }),
        );
    }

    /// A line a model's worker process printed, in `model_log.log` as TorchServe's log4j pattern
    /// `%d{ISO8601} [%-5p] %t %c - %m` writes it: `thread` names the worker and stream
    /// (`W-<pid>-<model>-stdout`), `warn` marks its standard error.
    pub fn model_output(&self, thread: &str, warn: bool, text: &str) {
        let line = format!(
            "[{}] {thread} MODEL_LOG - {}",
            if warn { "WARN " } else { "INFO " },
            text.trim_end()
        );
        self.writer.append(
            MODEL_LOG,
            Box::new(move |out, stamp| {
                let _ = writeln!(out, "{} {line}", stamp.text);
            }),
        );
    }

    /// An access log line: `<ts> - /<peer> "<request line>" <status> <millis>`, the request line
    /// being `<METHOD> <path> <version>`; both are formatted on the writer thread.
    pub fn access(
        &self,
        peer: impl std::fmt::Display + Send + 'static,
        request_line: impl std::fmt::Display + Send + 'static,
        status: u16,
        millis: u128,
    ) {
        self.writer.append(
            ACCESS,
            Box::new(move |out, stamp| {
                let _ =
                    writeln!(out, "{} - /{peer} \"{request_line}\" {status} {millis}", stamp.text);
            }),
        );
    }
}

/// One metric: `Name.Unit:value|#dims|#hostname:h[,requestID:id],timestamp:epoch`.
struct Line<'a> {
    /// Metric name, e.g. `PredictionTime`.
    name: &'a str,
    /// Unit, e.g. `ms`.
    unit: &'a str,
    value: f64,
    /// Dimensions, in order.
    dims: &'a [(&'a str, &'a str)],
    host: &'a str,
    /// Request id, on model metrics.
    request_id: Option<&'a str>,
}

impl Line<'_> {
    /// The whole line, with its timestamp and newline.
    fn write(&self, out: &mut String, stamp: &writer::Stamp) {
        let _ = write!(out, "{} - ", stamp.text);
        self.write_body(out);
        let _ = writeln!(out, ",timestamp:{}", stamp.epoch);
    }

    /// The line between its timestamp and its `timestamp:` field.
    fn write_body(&self, out: &mut String) {
        let _ = write!(out, "{}.{}:{}|#", self.name, self.unit, self.value);
        for (i, (k, v)) in self.dims.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(out, "{sep}{k}:{v}");
        }
        let _ = write!(out, "|#hostname:{}", self.host);
        if let Some(id) = self.request_id {
            let _ = write!(out, ",requestID:{id}");
        }
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
            // 300 lines of about 70 bytes, written out together: about ten files' worth.
            for i in 0..300 {
                log.access(
                    "127.0.0.1:5000",
                    format!("POST /predictions/tiny/{i} HTTP/1.1"),
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

    /// The line stamped now, with its newline.
    fn stamped_now(line: &Line<'_>) -> String {
        let mut out = String::new();
        line.write(&mut out, &writer::Stamp::at(SystemTime::now()));
        out
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
        };
        let line = stamped_now(&line);
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
        };
        let line = stamped_now(&line);
        assert_eq!(scrape(&line), 3.0);
        assert!(
            line.contains("|#ModelName:m,Level:Model|#hostname:vm,requestID:abc,timestamp:"),
            "{line}"
        );
        // The timestamp has exactly two colons, as the scraper assumes.
        assert_eq!(line.split(" - ").next().unwrap().matches(':').count(), 2);
    }
}
