//! Tapes: `devstash record` and `devstash replay`.

use anyhow::Result;
use clap::Args;

use crate::cli::GlobalArgs;

/// `devstash record`.
#[derive(Debug, Args)]
pub struct RecordArgs {}

/// `devstash replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {}

/// Runs `devstash record`.
pub fn record(_global: &GlobalArgs, _args: &RecordArgs) -> Result<i32> {
    anyhow::bail!("`devstash record` is not available in this version")
}

/// Runs `devstash replay`.
pub fn replay(_global: &GlobalArgs, _args: &ReplayArgs) -> Result<i32> {
    anyhow::bail!("`devstash replay` is not available in this version")
}
