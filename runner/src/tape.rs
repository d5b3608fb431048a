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

/// The first bytes of every tape file; `devstash inspect` uses them to tell a tape from an entry.
pub const TAPE_MAGIC: &[u8] = b"devstash-tape";

/// Prints a summary of the tape at `path` (`devstash inspect TAPE`).
pub fn inspect(_global: &GlobalArgs, path: &std::path::Path) -> Result<i32> {
    anyhow::bail!(
        "cannot summarize {}: tapes are not available in this version",
        path.display()
    )
}
