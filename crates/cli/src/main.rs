//! The `oxserve` binary: parses the command line, sets up logging and runs one subcommand.

mod commands;
mod logging;
mod settings;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// oxserve: a model server for ONNX models that speaks TorchServe's APIs and the Open Inference Protocol.
#[derive(Debug, Parser)]
#[command(name = "oxserve", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the model server.
    Serve(Box<commands::serve::ServeArgs>),
    /// Package a model into a TorchServe-compatible archive (.mar), like torch-model-archiver.
    Archive(commands::archive::ArchiveArgs),
    /// Load a running server (oxserve or TorchServe) and report throughput and latency percentiles.
    Bench(Box<commands::bench::BenchArgs>),
    /// Sweep workers, batch size and delay; recommend the best configuration under a P99 SLA.
    Tune(Box<commands::tune::TuneArgs>),
    /// Redact PII in Contact Lens transcripts and text files: a file, or every file in a folder.
    Redact(commands::redact::RedactArgs),
    /// A resumable batch job over a folder or S3 prefix: PII redaction, or a model's predictions.
    Job(Box<commands::job::JobArgs>),
    /// TorchServe's command line: `oxserve torchserve --start --model-store ... --models ...` and
    /// `--stop` (also the binary run under the name `torchserve`).
    Torchserve(commands::torchserve::TorchServeArgs),
}

fn main() -> ExitCode {
    if commands::torchserve::invoked_as_torchserve() {
        let cli = commands::torchserve::TorchServeCli::parse();
        return exit(commands::torchserve::run(cli.args));
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(*args),
        Command::Archive(args) => commands::archive::run(args),
        Command::Bench(args) => commands::bench::run(*args),
        Command::Tune(args) => commands::tune::run(*args),
        Command::Redact(args) => commands::redact::run(args),
        Command::Job(args) => commands::job::run(*args),
        Command::Torchserve(args) => return exit(commands::torchserve::run(args)),
    };
    exit(result.map(|()| ExitCode::SUCCESS))
}

fn exit(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|err| {
        eprintln!("oxserve: error: {err:#}");
        ExitCode::from(2)
    })
}
