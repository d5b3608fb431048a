//! `devstash list` and `devstash clear`.

use anyhow::Result;
use clap::Args;

use crate::cli::GlobalArgs;

/// `devstash list`.
#[derive(Debug, Args)]
pub struct ListArgs {}

/// `devstash clear`.
#[derive(Debug, Args)]
pub struct ClearArgs {}

/// Runs `devstash list`.
pub fn list(_global: &GlobalArgs, _args: &ListArgs) -> Result<i32> {
    anyhow::bail!("`devstash list` is not available in this version")
}

/// Runs `devstash clear`.
pub fn clear(_global: &GlobalArgs, _args: &ClearArgs) -> Result<i32> {
    anyhow::bail!("`devstash clear` is not available in this version")
}
