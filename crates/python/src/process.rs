//! One Python worker process: started as TorchServe's frontend starts it, watched through its
//! output, connected over a Unix socket in a private folder, and killed with its children.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use oxserve_core::metrics::Metrics;

use crate::otf;

/// The worker prints this once it listens on its socket.
const READY_LINE: &str = "Torch worker started.";
/// Lines of a worker's output kept to explain why it failed.
const TAIL_LINES: usize = 20;
/// Longest output line kept whole; the rest of a longer line is skipped, so a worker that writes
/// without newlines cannot make the server buffer without bound.
const MAX_LINE: usize = 16 * 1024;
/// Environment variables a worker inherits from the server (when set); everything else, keys and
/// cloud credentials included, stays out of model code.
const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "LD_LIBRARY_PATH",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "PYTHONPATH",
];

/// Socket numbers are unique within the server.
static NEXT_SOCKET: AtomicUsize = AtomicUsize::new(9000);

/// How to start a worker for one model version.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) model: String,
    pub(crate) python: PathBuf,
    /// The folder holding the `ts` package.
    pub(crate) ts_home: PathBuf,
    /// The metrics file the worker reads (`--metrics-config`).
    pub(crate) metrics_config: PathBuf,
    pub(crate) launcher: PathBuf,
    /// The private (0700) folder the sockets live in.
    pub(crate) socket_dir: PathBuf,
    /// The unpacked model folder: the worker's working folder.
    pub(crate) model_dir: PathBuf,
    /// Folders put first on the worker's `PYTHONPATH`.
    pub(crate) python_path: Vec<PathBuf>,
    /// How long the worker may take to print that it listens, and then to load the model
    /// (TorchServe's `startupTimeout`).
    pub(crate) start_timeout: Duration,
    /// Where its `[METRICS]` lines go (Prometheus and `model_metrics.log`).
    pub(crate) metrics: Metrics,
}

/// A running worker process and its connection.
#[derive(Debug)]
pub(crate) struct Process {
    child: Child,
    /// The connection, read through a buffer: a reply arrives in one or two reads, not one per
    /// field.
    stream: Option<BufReader<UnixStream>>,
    socket: PathBuf,
    tail: Arc<Mutex<VecDeque<String>>>,
    pid: u32,
}

impl Process {
    /// Starts the worker and connects to it once it says it listens.
    pub(crate) fn start(launch: &Launch) -> Result<Self, String> {
        let n = NEXT_SOCKET.fetch_add(1, Ordering::Relaxed);
        let socket = launch.socket_dir.join(format!(".ts.sock.{n}"));
        let _ = std::fs::remove_file(&socket);
        let mut command = Command::new(&launch.python);
        command
            .arg(&launch.launcher)
            .args(["--sock-type", "unix", "--sock-name"])
            .arg(&socket)
            .arg("--metrics-config")
            .arg(&launch.metrics_config)
            .current_dir(&launch.model_dir)
            .env_clear()
            .envs(INHERITED_ENV.iter().filter_map(|k| std::env::var_os(k).map(|v| (k, v))))
            .env("PYTHONPATH", python_path(launch))
            .env("PYTHONUNBUFFERED", "1")
            .env("TS_DECODE_INPUT_REQUEST", "true")
            .env("TS_IPEX_ENABLE", "false")
            .env("TS_IPEX_GPU_ENABLE", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: the whole group is killed, so a handler's children die too.
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", launch.python.display()))?;
        let pid = child.id();
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let mut process = Self { child, stream: None, socket, tail, pid };
        if let Some(out) = stdout {
            process.pump_stdout(out, launch, ready_tx)?;
        }
        if let Some(err) = stderr {
            process.pump_stderr(err, launch)?;
        }
        match ready_rx.recv_timeout(launch.start_timeout) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "the Python worker did not start within {:?}{}",
                    launch.start_timeout,
                    process.last_words()
                ));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!("the Python worker exited at start{}", process.exit_words()));
            }
        }
        let stream = UnixStream::connect(&process.socket).map_err(|e| {
            format!("cannot connect to the Python worker's socket: {e}{}", process.last_words())
        })?;
        process.stream = Some(BufReader::with_capacity(64 * 1024, stream));
        Ok(process)
    }

    /// The worker's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends a message.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream()?.get_mut().write_all(bytes)
    }

    /// Reads one reply, waiting at most until `deadline`.
    pub(crate) fn read_reply(
        &mut self,
        deadline: Instant,
        max_body: usize,
    ) -> Result<otf::Reply, otf::ReadError> {
        let stream = self.stream()?;
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        stream.get_ref().set_read_timeout(Some(left))?;
        otf::read_reply(stream, max_body)
    }

    fn stream(&mut self) -> std::io::Result<&mut BufReader<UnixStream>> {
        self.stream.as_mut().ok_or_else(|| std::io::Error::other("the worker is not connected"))
    }

    /// How the worker ended, once its connection is gone: waits briefly for it to exit.
    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }

    /// `": <last lines of its output>"`, or nothing when it wrote none.
    pub(crate) fn last_words(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        if tail.is_empty() {
            String::new()
        } else {
            format!("; its last output: {}", tail.iter().cloned().collect::<Vec<_>>().join(" | "))
        }
    }

    fn exit_words(&mut self) -> String {
        let status = self.exit_status().map_or_else(String::new, |s| format!(" ({s})"));
        format!("{status}{}", self.last_words())
    }

    fn pump_stdout(
        &self,
        out: ChildStdout,
        launch: &Launch,
        ready: mpsc::SyncSender<()>,
    ) -> Result<(), String> {
        let tail = Arc::clone(&self.tail);
        let model = launch.model.clone();
        let metrics = launch.metrics.clone();
        let pid = self.pid;
        let thread = format!("W-{pid}-{model}-stdout");
        spawn_pump(format!("{model}-py-{pid}-out"), move || {
            let mut ready = Some(ready);
            for_each_line(out, |line| {
                if line.contains(READY_LINE)
                    && let Some(tx) = ready.take()
                {
                    let _ = tx.send(());
                }
                if let Some((_, metric)) = line.split_once("[METRICS]") {
                    metrics.worker_line(metric);
                } else {
                    tracing::info!(target: "model_log", model = %model, pid, "{line}");
                    if let Some(log) = metrics.log() {
                        log.model_output(&thread, false, line);
                    }
                    remember(&tail, line);
                }
            });
        })
    }

    fn pump_stderr(&self, err: ChildStderr, launch: &Launch) -> Result<(), String> {
        let tail = Arc::clone(&self.tail);
        let model = launch.model.clone();
        let log = launch.metrics.log().cloned();
        let pid = self.pid;
        let thread = format!("W-{pid}-{model}-stderr");
        spawn_pump(format!("{model}-py-{pid}-err"), move || {
            for_each_line(err, |line| {
                tracing::warn!(target: "model_log", model = %model, pid, "{line}");
                if let Some(log) = &log {
                    log.model_output(&thread, true, line);
                }
                remember(&tail, line);
            });
        })
    }

    /// Kills the worker and everything it started, and removes its socket.
    pub(crate) fn kill(&mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = stream.get_ref().shutdown(std::net::Shutdown::Both);
        }
        if let Some(pid) = i32::try_from(self.pid).ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether the worker was killed by SIGKILL (the kernel's OOM killer, most often).
pub(crate) fn was_killed(status: Option<ExitStatus>) -> bool {
    status.and_then(|s| s.signal()) == Some(9)
}

fn python_path(launch: &Launch) -> std::ffi::OsString {
    let mut parts: Vec<PathBuf> = launch.python_path.clone();
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        parts.extend(std::env::split_paths(&existing));
    }
    parts.push(launch.model_dir.clone());
    parts.push(launch.ts_home.clone());
    std::env::join_paths(parts).unwrap_or_default()
}

fn spawn_pump(name: String, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map(drop)
        .map_err(|e| format!("cannot start a thread to read the worker's output: {e}"))
}

fn remember(tail: &Mutex<VecDeque<String>>, line: &str) {
    let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
    if tail.len() == TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(line.to_owned());
}

/// Calls `f` with each line (without its newline, lossily decoded, cut at [`MAX_LINE`]) until EOF.
fn for_each_line(source: impl Read, mut f: impl FnMut(&str)) {
    let mut reader = BufReader::new(source);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE as u64).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') && line.len() >= MAX_LINE {
            // Skip the rest of an overlong line.
            let mut sink = Vec::new();
            loop {
                sink.clear();
                match (&mut reader).take(MAX_LINE as u64).read_until(b'\n', &mut sink) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if sink.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                }
            }
        }
        let text = String::from_utf8_lossy(&line);
        f(text.trim_end_matches(['\n', '\r']));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_at_the_limit_and_the_rest_skipped() {
        let mut input = vec![b'a'; MAX_LINE * 3];
        input.extend_from_slice(b"\nnext\n");
        let mut lines = Vec::new();
        for_each_line(&input[..], |l| lines.push(l.to_owned()));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1], "next");
    }
}
