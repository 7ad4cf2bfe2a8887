//! `oxserve archive` (being written).
#[derive(Debug, clap::Args)]
pub(crate) struct ArchiveArgs {}
pub(crate) fn run(_args: ArchiveArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
