//! `oxserve archive`: packs a model into a TorchServe-compatible archive.
//!
//! The flags are torch-model-archiver's, so existing packaging scripts work by swapping the
//! command name; the archives open in TorchServe and in `oxserve serve` alike.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use oxserve_store::archive::{self, ArchiveFormat, PackOptions};

/// Flags of `oxserve archive`. Boxed so the `Command` enum in `main.rs` stays small whichever
/// subcommand it holds (clippy's `large_enum_variant`).
#[derive(Debug, clap::Args)]
pub(crate) struct ArchiveArgs {
    #[command(flatten)]
    flags: Box<ArchiveFlags>,
}

/// The flags themselves, named as torch-model-archiver names them.
#[derive(Debug, clap::Args)]
struct ArchiveFlags {
    /// Model name: the archive's file name and the name the server registers it under. Letters,
    /// digits, `_`, `-` and `.` only, starting with a letter or digit.
    #[arg(long)]
    model_name: String,

    /// Model version, written to the manifest as `modelVersion`.
    #[arg(short = 'v', long, default_value = archive::DEFAULT_VERSION)]
    version: String,

    /// The model weights, e.g. model.onnx; stored at the archive root as `serializedFile`. May be
    /// left out for a Python handler that needs none.
    #[arg(long)]
    serialized_file: Option<PathBuf>,

    /// Python model definition (for eager PyTorch models served by TorchServe); copied in.
    #[arg(long)]
    model_file: Option<PathBuf>,

    /// Handler: a built-in name (e.g. image_classifier), stored as given, or a path to a .py file
    /// (optionally file.py:function), copied in. Leave it out to serve raw tensors with oxserve.
    #[arg(long)]
    handler: Option<String>,

    /// Extra files to copy in, separated by commas; folders have their contents copied into the
    /// archive root, as torch-model-archiver does (e.g. index_to_name.json,vocab/).
    #[arg(long, value_delimiter = ',')]
    extra_files: Vec<PathBuf>,

    /// model-config.yaml with worker, batching and handler settings; copied in as `configFile`.
    #[arg(short = 'c', long)]
    config_file: Option<PathBuf>,

    /// pip requirements file, copied in for TorchServe (oxserve never installs anything).
    #[arg(short = 'r', long)]
    requirements_file: Option<PathBuf>,

    /// Runtime written to the manifest; TorchServe accepts python, python3 and LSP.
    #[arg(long, default_value = archive::DEFAULT_RUNTIME)]
    runtime: String,

    /// Existing folder to write the archive to.
    #[arg(long, default_value = ".")]
    export_path: PathBuf,

    /// Output layout: default (zip, NAME.mar), tgz (NAME.tar.gz), no-archive (folder NAME/) or
    /// zip-store (uncompressed zip, NAME.mar).
    #[arg(long, value_enum, default_value_t = FormatArg::Default)]
    archive_format: FormatArg,

    /// Overwrite an existing archive of the same name.
    #[arg(short = 'f', long)]
    force: bool,
}

/// `--archive-format` values, spelled as torch-model-archiver spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FormatArg {
    /// A deflate-compressed zip: NAME.mar.
    Default,
    /// A gzip'd tar: NAME.tar.gz.
    Tgz,
    /// A plain folder: NAME/.
    NoArchive,
    /// An uncompressed zip: NAME.mar.
    ZipStore,
}

impl From<FormatArg> for ArchiveFormat {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Default => Self::Default,
            FormatArg::Tgz => Self::Tgz,
            FormatArg::NoArchive => Self::NoArchive,
            FormatArg::ZipStore => Self::ZipStore,
        }
    }
}

/// Packs the model and prints the path written.
pub(crate) fn run(args: ArchiveArgs) -> anyhow::Result<()> {
    let args = *args.flags;
    let model_name = args.model_name.clone();
    let opts = PackOptions {
        model_name: args.model_name,
        version: args.version,
        serialized_file: args.serialized_file,
        handler: args.handler,
        model_file: args.model_file,
        extra_files: args.extra_files,
        config_file: args.config_file,
        requirements_file: args.requirements_file,
        runtime: args.runtime,
        export_path: args.export_path,
        format: args.archive_format.into(),
        force: args.force,
    };
    let written =
        archive::pack(&opts).with_context(|| format!("cannot archive model `{model_name}`"))?;
    writeln!(std::io::stdout(), "{}", written.display()).context("cannot write to stdout")?;
    Ok(())
}
