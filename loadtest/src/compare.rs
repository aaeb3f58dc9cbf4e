//! `loadtest compare`: being built; see the next commit.
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct CompareOptions {}

pub async fn run(_o: CompareOptions) -> anyhow::Result<()> {
    anyhow::bail!("compare is not built yet")
}
