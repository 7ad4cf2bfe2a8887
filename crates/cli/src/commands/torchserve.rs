//! TorchServe's own command line, `torchserve --start` / `torchserve --stop`, so the scripts,
//! Makefiles and test harnesses written for it (TorchServe's `ts.launcher` among them) start and
//! stop oxserve unchanged. Reached as `oxserve torchserve ...`, or by running the binary under the
//! name `torchserve` (a symlink or copy).
//!
//! `--start` runs `oxserve serve` with the matching flags as a background process that keeps the
//! caller's stdout and stderr (TorchServe's frontend does the same, and callers wait for its
//! "Model server started" line), and records its pid where TorchServe does
//! (`$TMPDIR/.model_server.pid`); with `--foreground` it waits for the server instead. `--stop`
//! sends that process SIGTERM (it drains, then exits) and, with `--foreground`, waits until it has
//! gone.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// TorchServe's flags (`ts/arg_parser.py`). Those that configure Java (log4j, plugins) or
/// features oxserve has not got are accepted and said to be ignored, so a script does not fail on
/// them.
#[derive(clap::Args, Debug, Default)]
pub(crate) struct TorchServeArgs {
    /// Start the model server in the background.
    #[arg(long, conflicts_with = "stop")]
    start: bool,
    /// Stop the model server started with `--start`.
    #[arg(long)]
    stop: bool,
    /// With `--start`: stay in the foreground until the server exits. With `--stop`: wait until it
    /// has stopped.
    #[arg(long)]
    foreground: bool,
    /// Configuration file (config.properties).
    #[arg(long)]
    ts_config: Option<PathBuf>,
    /// Model store location from where local or default models can be loaded.
    #[arg(long)]
    model_store: Option<PathBuf>,
    /// Models to load at startup: `all`, `name=archive.mar`, or archive names.
    #[arg(long, num_args = 1..)]
    models: Vec<String>,
    /// Turn token authorization off.
    #[arg(long)]
    disable_token_auth: bool,
    /// Allow registering and unregistering models through the management API.
    #[arg(long)]
    enable_model_api: bool,
    /// Accepted and ignored: oxserve writes no config snapshots.
    #[arg(long = "no-config-snapshots", visible_alias = "ncs")]
    no_config_snapshots: bool,
    /// Accepted and ignored: oxserve logs through `RUST_LOG`, not log4j2.
    #[arg(long)]
    log_config: Option<PathBuf>,
    /// Accepted and ignored: TorchServe's C++ backend's logging.
    #[arg(long)]
    cpp_log_config: Option<PathBuf>,
    /// Accepted and ignored: Java frontend plugins cannot load in oxserve.
    #[arg(long)]
    plugins_path: Option<PathBuf>,
    /// Accepted and ignored: oxserve does not serve workflows.
    #[arg(long)]
    workflow_store: Option<PathBuf>,
}

/// `torchserve ...` when the binary runs under that name: TorchServe's flags at the top level.
#[derive(clap::Parser, Debug)]
#[command(name = "torchserve", version, about = "oxserve with TorchServe's command line")]
pub(crate) struct TorchServeCli {
    #[command(flatten)]
    pub(crate) args: TorchServeArgs,
}

/// Whether the program was started under the name `torchserve`.
pub(crate) fn invoked_as_torchserve() -> bool {
    std::env::args_os()
        .next()
        .and_then(|arg0| Path::new(&arg0).file_name().map(|n| n == "torchserve"))
        .unwrap_or(false)
}

pub(crate) fn run(args: TorchServeArgs) -> anyhow::Result<ExitCode> {
    let pid_file = std::env::temp_dir().join(".model_server.pid");
    match (args.start, args.stop) {
        (true, _) => start(&args, &pid_file),
        (false, true) => Ok(stop(&pid_file, args.foreground)),
        (false, false) => bail!("say --start or --stop (torchserve --help lists the flags)"),
    }
}

fn start(args: &TorchServeArgs, pid_file: &Path) -> anyhow::Result<ExitCode> {
    if running(pid_file).is_some() {
        println!("TorchServe is already running, please use torchserve --stop to stop TorchServe.");
        return Ok(ExitCode::FAILURE);
    }
    for (given, what) in [
        (args.log_config.is_some(), "--log-config (oxserve logs through RUST_LOG)"),
        (args.cpp_log_config.is_some(), "--cpp-log-config"),
        (args.plugins_path.is_some(), "--plugins-path (Java plugins cannot load in oxserve)"),
        (args.workflow_store.is_some(), "--workflow-store (oxserve does not serve workflows)"),
    ] {
        if given {
            eprintln!("torchserve: ignoring {what}");
        }
    }
    let exe = std::env::current_exe().context("cannot find the oxserve binary")?;
    let mut command = Command::new(exe);
    command.args(serve_args(args));
    if !args.foreground {
        // Its own process group, as a daemon: a terminal's Ctrl-C after `--start` returned is not
        // meant for it.
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
    }
    let mut child = command.spawn().context("cannot start oxserve serve")?;
    std::fs::write(pid_file, child.id().to_string())
        .with_context(|| format!("cannot write {}", pid_file.display()))?;
    if !args.foreground {
        return Ok(ExitCode::SUCCESS);
    }
    let status = child.wait().context("cannot wait for the server")?;
    let _ = std::fs::remove_file(pid_file);
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The `oxserve serve` flags for TorchServe's.
fn serve_args(args: &TorchServeArgs) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = vec!["serve".into()];
    if let Some(config) = &args.ts_config {
        out.extend(["--ts-config".into(), config.into()]);
    }
    if let Some(store) = &args.model_store {
        out.extend(["--model-store".into(), store.into()]);
    }
    if !args.models.is_empty() {
        out.push("--models".into());
        out.extend(args.models.iter().map(Into::into));
    }
    if args.disable_token_auth {
        out.push("--disable-token-auth".into());
    }
    if args.enable_model_api {
        out.push("--enable-model-api".into());
    }
    out
}

fn stop(pid_file: &Path, wait: bool) -> ExitCode {
    let Some(pid) = running(pid_file) else {
        let _ = std::fs::remove_file(pid_file);
        println!("TorchServe is not currently running.");
        return ExitCode::SUCCESS;
    };
    if rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_err() {
        println!("TorchServe already stopped.");
    } else if wait {
        println!("Waiting for TorchServe to stop...");
        while rustix::process::test_kill_process(pid).is_ok() {
            std::thread::sleep(Duration::from_millis(100));
        }
        println!("TorchServe has stopped.");
    } else {
        println!("TorchServe has stopped.");
    }
    let _ = std::fs::remove_file(pid_file);
    ExitCode::SUCCESS
}

/// The pid in `pid_file` when that process is alive and is an `oxserve serve` (a pid reused by
/// another program since is not ours to stop).
fn running(pid_file: &Path) -> Option<rustix::process::Pid> {
    let pid: i32 = std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let pid = rustix::process::Pid::from_raw(pid)?;
    rustix::process::test_kill_process(pid).ok()?;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.as_raw_nonzero())).ok()?;
    cmdline.split(|&b| b == 0).any(|arg| arg == b"serve").then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn torchserve_flags_become_serve_flags() {
        let cli = TorchServeCli::try_parse_from([
            "torchserve",
            "--start",
            "--ncs",
            "--model-store",
            "store",
            "--models",
            "a=a.mar",
            "b.mar",
            "--ts-config",
            "config.properties",
            "--disable-token-auth",
            "--log-config",
            "log4j2.xml",
        ])
        .unwrap();
        let args: Vec<String> =
            serve_args(&cli.args).iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            [
                "serve",
                "--ts-config",
                "config.properties",
                "--model-store",
                "store",
                "--models",
                "a=a.mar",
                "b.mar",
                "--disable-token-auth"
            ]
        );
        assert!(TorchServeCli::try_parse_from(["torchserve", "--start", "--stop"]).is_err());
    }

    #[test]
    fn a_stale_or_foreign_pid_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".model_server.pid");
        assert!(running(&file).is_none());
        std::fs::write(&file, "not a pid").unwrap();
        assert!(running(&file).is_none());
        // This test process is alive but is not an `oxserve serve`.
        std::fs::write(&file, std::process::id().to_string()).unwrap();
        assert!(running(&file).is_none());
        stop(&file, true);
        assert!(!file.exists(), "--stop removes a stale pid file");
    }
}
