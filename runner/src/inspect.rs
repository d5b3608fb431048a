//! `devstash inspect`: an entry, a module's marked sites, or a tape.

use anyhow::Result;
use clap::Args;

use crate::cli::GlobalArgs;

/// `devstash inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {}

/// Runs `devstash inspect`.
pub fn inspect(_global: &GlobalArgs, _args: &InspectArgs) -> Result<i32> {
    anyhow::bail!("`devstash inspect` is not available in this version")
}
