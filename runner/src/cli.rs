//! Command-line interface: one typed struct per command; options shared by every command that
//! runs a module live in [`ModuleArgs`] and [`CacheArgs`] and are flattened into each.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::sandbox::{DirGrant, EnvVar};

/// Record/replay runner for WebAssembly programs: marked calls are computed once and stored.
#[derive(Debug, Parser)]
#[command(name = "devstash", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Cache directory.
    #[arg(
        long,
        global = true,
        env = "DEVSTASH_CACHE_DIR",
        default_value = ".devstash_cache",
        value_name = "DIR"
    )]
    pub cache_dir: PathBuf,
    /// More logging (-v info, -vv debug, -vvv trace); `DEVSTASH_LOG` takes a full filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors; no summary line.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a wasm32-wasip1 module; marked calls are answered from the cache or computed and stored.
    Run(RunArgs),
    /// Run a module and record everything it takes from outside to a tape.
    Record(crate::tape::RecordArgs),
    /// Play a run back from its tape, offline and sealed.
    Replay(crate::tape::ReplayArgs),
    /// List cache entries.
    List(crate::manage::ListArgs),
    /// Remove cache entries.
    Clear(crate::manage::ClearArgs),
    /// Show an entry, a module's marked sites, or a tape.
    Inspect(crate::inspect::InspectArgs),
}

/// `devstash run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// What to run and what it may see.
    #[command(flatten)]
    pub module: ModuleArgs,
    /// How marked calls use the cache.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// What the guest may reach over HTTP.
    #[command(flatten)]
    pub net: NetArgs,
}

/// What the guest may reach over HTTP (`devstash::http`).
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Allow HTTP requests to these hosts: HOST, HOST:PORT, *.DOMAIN, comma-separated; with no
    /// list, every host. Nothing is allowed by default.
    #[arg(long, value_name = "HOST[:PORT],...", num_args = 0..=1, require_equals = true, default_missing_value = "", value_delimiter = ',')]
    pub allow_net: Option<Vec<String>>,
    /// No network: requests are answered only from the cache, and expired entries are served
    /// (with a warning) instead of recomputed.
    #[arg(long)]
    pub offline: bool,
    /// Treat this request header as a secret too (never stored in clear). Repeatable.
    #[arg(long, value_name = "NAME")]
    pub redact_header: Vec<String>,
}

/// The module, its arguments, and the capabilities granted to it.
#[derive(Debug, Args)]
pub struct ModuleArgs {
    /// Pass an environment variable: NAME=VALUE, or NAME for the host's value. Repeatable.
    #[arg(long = "env", value_name = "NAME[=VAL]")]
    pub env: Vec<EnvVar>,
    /// Grant a directory: HOST, HOST::GUEST, and a `:ro` suffix for read-only. Repeatable.
    #[arg(long = "dir", value_name = "HOST[::GUEST][:ro]")]
    pub dirs: Vec<DirGrant>,
    /// The module (.wasm, or .wat text).
    #[arg(value_name = "MODULE.wasm")]
    pub module: PathBuf,
    /// Arguments for the guest (after the module, or after `--`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

/// How marked calls use the cache.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Run every marked call for real and store nothing (`DEVSTASH_SKIP=1` does the same).
    #[arg(long, env = "DEVSTASH_SKIP", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_cache: bool,
    /// Recompute entries matching PATTERN (all without one): a glob or substring of the site
    /// (`app::fetch`) or entry file name.
    #[arg(long, value_name = "PATTERN", num_args = 0..=1, require_equals = true, default_missing_value = "*")]
    pub refresh: Option<String>,
}
