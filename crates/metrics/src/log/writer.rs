//! The writer behind the log files: request threads hand over entries (the values of a few lines,
//! and how to write them) under a short lock, and one thread writes them out in bulk.
//!
//! A channel message per line cost a thread wake-up and a `write` per line, three per request, and
//! formatting nine lines (floats, timestamps) cost the request path microseconds. Here the request
//! path only moves its values into a list; the writer thread sleeps while nothing is logged, wakes
//! on the first entry after it last wrote, gathers entries for [`GATHER`] (less when the list fills
//! or the log closes), formats them, and writes each file's lines in one call, split only where a
//! file rolls over. Entries are dropped, never waited for, past [`MAX_PENDING`] (a disk that cannot
//! keep up).

use std::io::Write as _;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use file_rotate::FileRotate;
use file_rotate::suffix::AppendCount;

/// How long the writer gathers entries before writing them.
const GATHER: Duration = Duration::from_millis(50);
/// This many entries are written at once.
const WRITE_AT: usize = 4096;
/// Most entries waiting; entries beyond are dropped.
const MAX_PENDING: usize = 256 * 1024;

/// Writes one entry's lines (each ending in a newline) for the moment it was made.
pub(super) type Render = Box<dyn FnOnce(&mut String, &Stamp) + Send>;

/// When an entry was made, and that moment as the log writes it.
pub(super) struct Stamp {
    /// `2026-11-25T12:21:59,143`, TorchServe's log4j ISO8601 timestamp.
    pub(super) text: String,
    /// Seconds since the Unix epoch.
    pub(super) epoch: i64,
}

/// A file the writer owns, and the size it would roll over at.
pub(super) struct Output {
    pub(super) file: FileRotate<AppendCount>,
    /// Bytes in the current file (the size it had when opened, then what was written).
    pub(super) written: usize,
    /// `FileRotate` rolls over before a write once the file holds more than this.
    pub(super) limit: usize,
}

#[derive(Default)]
struct Pending {
    /// Entries in the order they came: the file, when, and what.
    entries: Vec<(usize, SystemTime, Render)>,
    /// The writer waits for a first line (not gathering).
    idle: bool,
    closed: bool,
    dropped: u64,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Buffers lines for a set of files and writes them from one thread; dropping it writes what is
/// left and joins the thread.
pub(super) struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    pub(super) fn start(outputs: Vec<Output>) -> std::io::Result<Self> {
        let pending = Pending::default();
        let shared = Arc::new(Shared { pending: Mutex::new(pending), wake: Condvar::new() });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("oxserve-metric-log".into())
                .spawn(move || run(&shared, outputs))?
        };
        Ok(Self { shared, thread: Some(thread) })
    }

    /// Adds an entry for file number `file`, stamped now.
    pub(super) fn append(&self, file: usize, render: Render) {
        let at = SystemTime::now();
        let mut pending = self.shared.lock();
        if pending.entries.len() >= MAX_PENDING {
            pending.dropped += 1;
            return;
        }
        pending.entries.push((file, at, render));
        let filled = pending.entries.len() == WRITE_AT;
        let first = std::mem::take(&mut pending.idle);
        drop(pending);
        if first || filled {
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared, mut outputs: Vec<Output>) {
    // The log is written in bulk every 50 ms; at a lower priority that burst waits for the threads
    // answering requests instead of delaying them. On Linux a thread id names one thread here.
    #[cfg(target_os = "linux")]
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10);
    let mut entries = Vec::new();
    let mut texts: Vec<String> = vec![String::new(); outputs.len()];
    let mut stamps = Stamps::default();
    loop {
        let mut pending = shared.lock();
        while pending.entries.is_empty() && !pending.closed {
            pending.idle = true;
            pending = shared.wake.wait(pending).unwrap_or_else(PoisonError::into_inner);
        }
        let until = Instant::now() + GATHER;
        loop {
            let now = Instant::now();
            if pending.closed || now >= until || pending.entries.len() >= WRITE_AT {
                break;
            }
            pending = shared
                .wake
                .wait_timeout(pending, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::swap(&mut pending.entries, &mut entries);
        let closed = pending.closed;
        let dropped = std::mem::take(&mut pending.dropped);
        drop(pending);
        for (file, at, render) in entries.drain(..) {
            if let Some(text) = texts.get_mut(file) {
                render(text, stamps.of(at));
            }
        }
        for (output, text) in outputs.iter_mut().zip(&mut texts) {
            if let Err(e) = write_lines(output, text.as_bytes()) {
                tracing::warn!(error = %e, "could not write a metric log file");
            }
            text.clear();
        }
        if dropped > 0 {
            tracing::warn!(dropped, "metric log lines dropped: the disk does not keep up");
        }
        if closed {
            return;
        }
    }
}

/// Formats timestamps, once per millisecond however many lines share it.
#[derive(Default)]
struct Stamps {
    last: Option<(u128, Stamp)>,
}

impl Stamps {
    fn of(&mut self, at: SystemTime) -> &Stamp {
        let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let millis = since.as_millis();
        if self.last.as_ref().is_some_and(|(m, _)| *m != millis) {
            self.last = None;
        }
        &self.last.get_or_insert_with(|| (millis, Stamp::at(at))).1
    }
}

impl Stamp {
    /// The moment `at` as the log writes it.
    pub(super) fn at(at: SystemTime) -> Self {
        let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let epoch = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
        Self { text: super::format_stamp(at), epoch }
    }
}

/// Writes `lines` in as few calls as the file's rollover allows: `FileRotate` rolls over before a
/// write once the file holds more than its limit, so each call ends with the line that takes it
/// past the limit, as if every line had been written on its own.
fn write_lines(output: &mut Output, mut lines: &[u8]) -> std::io::Result<()> {
    while !lines.is_empty() {
        if output.written > output.limit {
            output.written = 0;
        }
        let room = output.limit - output.written;
        let end = lines
            .get(room..)
            .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
            .map_or(lines.len(), |p| room + p + 1);
        output.file.write_all(&lines[..end])?;
        output.written += end;
        lines = &lines[end..];
    }
    output.file.flush()
}
