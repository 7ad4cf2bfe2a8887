//! `oxserve redact`: PII redaction of Contact Lens transcripts (`.json`) and text files, one file
//! or a folder tree at a time, with Amazon Comprehend's entity types and modes.
//!
//! Each file is one document: a bad one (not UTF-8, not a transcript, a turn over the size limit)
//! is reported and skipped, and the rest go on; the exit status says whether any failed. Results
//! are written to a temporary file and renamed, so an interrupted run leaves no half-written file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use oxserve_pii::document::{self, Format, Output};
use oxserve_pii::{Detector, MaskMode, Redaction};

/// Flags of `oxserve redact`, named after Comprehend's `RedactionConfig`.
#[derive(Debug, clap::Args)]
pub(crate) struct RedactArgs {
    /// A file, or a folder whose files (in sub-folders too) are each one document.
    #[arg(long)]
    input: PathBuf,

    /// Folder for the results, with the input's file names and sub-folders.
    #[arg(long)]
    output: PathBuf,

    #[command(flatten)]
    flags: RedactionFlags,

    /// Files redacted at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
}

/// What to redact and how, named after Comprehend's `RedactionConfig` (shared by `redact` and `job`).
#[derive(Debug, clap::Args)]
pub(crate) struct RedactionFlags {
    /// Entity types to redact, comma-separated, as Comprehend names them (NAME,SSN,PHONE), or ALL.
    #[arg(long, default_value = "ALL")]
    entity_types: String,

    /// `replace`: each entity becomes `[TYPE]`; `mask`: each of its characters the mask character.
    #[arg(long, value_enum, default_value = "replace")]
    mask_mode: MaskModeArg,

    /// The mask character for `--mask-mode mask`: one of !@#$%&*.
    #[arg(long, default_value_t = '*')]
    mask_character: char,

    /// `redaction`: write redacted copies; `offsets`: write the entities found, as JSON.
    #[arg(long, value_enum, default_value = "redaction")]
    mode: ModeArg,

    /// Entities below this confidence are left as they are.
    #[arg(long, default_value_t = 0.5)]
    min_score: f32,
}

impl RedactionFlags {
    /// The redaction the flags ask for, checked as Comprehend checks a `RedactionConfig`.
    pub(crate) fn redaction(&self) -> anyhow::Result<Redaction> {
        let mode = match self.mask_mode {
            MaskModeArg::Replace => MaskMode::ReplaceWithPiiEntityType,
            MaskModeArg::Mask => MaskMode::Mask,
        };
        let mask = self.mask_character.to_string();
        Ok(Redaction::new(&self.entity_types, mode, &mask, self.min_score)?)
    }

    /// Redacted copies or offset reports.
    pub(crate) fn output(&self) -> Output {
        match self.mode {
            ModeArg::Redaction => Output::Redaction,
            ModeArg::Offsets => Output::Offsets,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MaskModeArg {
    Replace,
    Mask,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Redaction,
    Offsets,
}

pub(crate) fn run(args: RedactArgs) -> anyhow::Result<()> {
    let redaction = args.flags.redaction()?;
    let output = args.flags.output();
    let files = inputs(&args.input)?;
    if args.input.is_dir() && same_place(&args.input, &args.output) {
        bail!("--output must not be the input folder: the originals would be overwritten");
    }
    let started = Instant::now();
    let detector = Detector::new();
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .clamp(1, files.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                while let Some((source, relative)) = files.get(next.fetch_add(1, Ordering::Relaxed))
                {
                    let target = args.output.join(relative);
                    if let Err(err) = one(&detector, source, &target, output, &redaction) {
                        eprintln!("oxserve redact: {}: {err:#}", source.display());
                        failed
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(source.clone());
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let done = files.len() - failed.len();
    eprintln!(
        "oxserve redact: {done} of {} files written to {} in {:.2?}",
        files.len(),
        args.output.display(),
        started.elapsed()
    );
    if !failed.is_empty() {
        bail!("{} of {} files could not be redacted (reasons above)", failed.len(), files.len());
    }
    Ok(())
}

/// The files to read, each with its path relative to the input (its name when the input is a file).
fn inputs(input: &Path) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let meta = std::fs::metadata(input).with_context(|| format!("--input {}", input.display()))?;
    if meta.is_file() {
        let name = input.file_name().context("--input has no file name")?;
        return Ok(vec![(input.to_owned(), PathBuf::from(name))]);
    }
    let mut files = Vec::new();
    let mut folders = vec![input.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in
            std::fs::read_dir(&folder).with_context(|| format!("reading {}", folder.display()))?
        {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                folders.push(path);
            } else if kind.is_file() {
                let relative =
                    path.strip_prefix(input).context("a file outside the input folder")?.to_owned();
                files.push((path, relative));
            }
        }
    }
    files.sort();
    Ok(files)
}

fn same_place(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// Reads, redacts and writes one file (through a temporary file renamed into place).
fn one(
    detector: &Detector,
    source: &Path,
    target: &Path,
    output: Output,
    redaction: &Redaction,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(source).context("reading")?;
    let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let result = document::process(detector, &name, &bytes, Format::of(&name), output, redaction)?;
    let folder = target.parent().context("output path has no folder")?;
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let mut staged =
        tempfile::NamedTempFile::new_in(folder).context("creating a temporary file")?;
    std::io::Write::write_all(&mut staged, &result).context("writing")?;
    staged.persist(target).with_context(|| format!("writing {}", target.display()))?;
    Ok(())
}
