//! `oxserve serve` (being written).
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {}
pub(crate) fn run(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
