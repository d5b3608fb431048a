//! The flags of every command: one typed struct per command, and the option groups shared by the
//! commands that run a module ([`ModuleArgs`], [`CacheArgs`], [`NetArgs`], [`LimitArgs`]).
//!
//! Only the command line ([`crate::cli`]) and the commands read these types; they turn them into
//! the plain settings of the layers below ([`crate::runtime::Limits`], [`crate::sandbox::Sandbox`],
//! [`crate::host::Policy`], [`crate::net::NetPolicy`]), which know nothing of flags.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{ArgGroup, Args, ValueEnum};

use crate::host::Policy;
use crate::net::{Allow, HostRule, NetPolicy};
use crate::runtime::Limits;
use crate::sandbox::{DirGrant, EnvVar, Sandbox};
use crate::store::pattern::Pattern;
use crate::store::remote::Mode;
use crate::team::Choice;

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

/// `devstash run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// How marked calls use the cache.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// What the guest may reach over HTTP.
    #[command(flatten)]
    pub net: NetArgs,
    /// What to run and what it may see.
    #[command(flatten)]
    pub module: ModuleArgs,
}

/// What the guest may reach over HTTP (`devstash::http`).
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Allow HTTP requests to these hosts: HOST, HOST:PORT, *.DOMAIN, comma-separated. Alone
    /// (`--allow-net`), every host. Nothing is allowed by default.
    #[arg(long, value_name = "HOST[:PORT],...", num_args = 0..=1, require_equals = true, default_missing_value = ALL_HOSTS)]
    pub allow_net: Option<String>,
    /// No network: requests are answered only from the cache, and expired entries are served
    /// (with a warning) instead of recomputed.
    #[arg(long)]
    pub offline: bool,
    /// Treat this request header as a secret too (never stored in clear). Repeatable.
    #[arg(long, value_name = "NAME")]
    pub redact_header: Vec<String>,
}

/// What a bare `--allow-net` stands for.
const ALL_HOSTS: &str = "\0every host";

impl NetArgs {
    /// The network policy these flags describe.
    pub fn policy(&self) -> Result<NetPolicy> {
        let allow = match self.allow_net.as_deref() {
            None => Allow::Nothing,
            Some(ALL_HOSTS) => Allow::Every,
            Some(list) => {
                let hosts: Vec<&str> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                // An empty list (`--allow-net=` from an unset shell variable) must not mean
                // "every host": that is what the bare flag says.
                if hosts.is_empty() {
                    bail!(
                        "--allow-net={list:?} names no host: give one or more, e.g. \
                         --allow-net=api.example.com,localhost:8080 (or `--allow-net` alone for \
                         every host)"
                    );
                }
                Allow::Hosts(
                    hosts
                        .into_iter()
                        .map(|s| s.parse::<HostRule>().map_err(anyhow::Error::msg))
                        .collect::<Result<Vec<_>>>()?,
                )
            }
        };
        Ok(NetPolicy {
            allow,
            redact: self
                .redact_header
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            ..NetPolicy::default()
        })
    }
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
    /// Limits on what the guest may consume.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The module (.wasm, or .wat text), then the guest's arguments. Everything after the module
    /// is the guest's, options included (a `--` right after the module is dropped).
    #[arg(
        value_name = "MODULE.wasm [ARGS]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

impl ModuleArgs {
    /// The module's path.
    pub fn module(&self) -> Result<&Path> {
        let first = self.command.first().map(Path::new);
        match first {
            Some(p) if p.to_string_lossy().starts_with('-') => bail!(
                "{} is not an option devstash knows: options go before the module \
                 (`devstash run --help` lists them)",
                p.display()
            ),
            Some(p) => Ok(p),
            None => bail!("no module given: pass the path of a .wasm file"),
        }
    }

    /// The guest's arguments: everything after the module, less a `--` right after it.
    pub fn guest_args(&self) -> Result<Vec<String>> {
        let mut rest = self.command.iter().skip(1).peekable();
        if rest.peek().is_some_and(|a| *a == "--") {
            rest.next();
        }
        rest.map(|a| {
            a.clone().into_string().map_err(|a| {
                anyhow::anyhow!(
                    "the guest argument {} is not UTF-8, which WASI cannot pass",
                    a.to_string_lossy()
                )
            })
        })
        .collect()
    }

    /// The sandbox these flags describe: `argv` starts with the module's file name.
    pub fn sandbox(&self) -> Result<Sandbox> {
        let module = self.module()?;
        let program = module
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "main.wasm".into());
        let mut args = vec![program];
        args.extend(self.guest_args()?);
        Ok(Sandbox {
            args,
            env: self.env.clone(),
            dirs: self.dirs.clone(),
            internal: Vec::new(),
        })
    }
}

/// Limits on what the guest may consume; hitting one stops it with exit code 124.
#[derive(Debug, Clone, Default, Args)]
pub struct LimitArgs {
    /// Stop the guest after this long (e.g. 30s, 5m), even inside a sleep.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Largest memory the guest may use, its linear memory and what the host holds for it
    /// (e.g. 256MiB, 1GB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_memory: Option<u64>,
    /// Stop the guest after it executes roughly this many wasm instructions' worth of fuel.
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,
}

impl LimitArgs {
    /// The limits these flags describe.
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: self.timeout,
            max_memory: self.max_memory,
            fuel: self.fuel,
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "invalid duration {s:?}: use a number and a unit, e.g. 30s, 5m, 1h"
        )),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    match s.trim().parse::<bytesize::ByteSize>() {
        Ok(b) if b.as_u64() > 0 => Ok(b.as_u64()),
        _ => Err(format!(
            "invalid size {s:?}: use a number and a unit, e.g. 256MiB or 1GB"
        )),
    }
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
    /// The team cache behind the local one.
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Which team cache to use, and how (see `devstash.toml`'s `[remote]` for the rest).
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// Share entries through a team's store: s3://BUCKET/PREFIX?endpoint=URL&region=R,
    /// redis://HOST:PORT/DB/PREFIX, gs://, azblob://, webdav://, fs:///shared/folder. Default:
    /// `[remote] url` in ./devstash.toml. Credentials come from the environment only.
    #[arg(
        long,
        env = "DEVSTASH_REMOTE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub remote: Option<String>,
    /// read (the default: look entries up), read-write (also upload what is computed, signed
    /// with DEVSTASH_REMOTE_SIGNING_KEY: for trusted writers such as CI on a protected branch),
    /// or off.
    #[arg(long, env = "DEVSTASH_REMOTE_MODE", value_name = "MODE")]
    pub remote_mode: Option<Mode>,
}

impl RemoteArgs {
    /// The choice these flags make.
    pub fn choice(&self) -> Choice {
        Choice {
            url: self.remote.clone(),
            mode: self.remote_mode,
        }
    }
}

/// `devstash remote`.
#[derive(Debug, Args)]
pub struct RemoteCmdArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: RemoteAction,
}

/// `devstash remote` actions.
#[derive(Debug, clap::Subcommand)]
pub enum RemoteAction {
    /// Check the team cache: reachable, readable, writable (in read-write mode), signing set up.
    /// Exits with 1 when a check fails.
    Check(RemoteArgs),
    /// Make a writer key pair: the signing key (for the writer's environment only) and the
    /// public key (for `public_keys` in devstash.toml).
    Keygen,
}

impl CacheArgs {
    /// An error for `--refresh PATTERN` written with a space: the pattern was taken for the
    /// module (`--refresh` takes its pattern after `=`).
    pub fn check_refresh_spelling(&self, module: &Path) -> Result<()> {
        if self.refresh.as_deref() == Some("*") && module.extension().is_none() && !module.exists()
        {
            bail!(
                "cannot read module {0}: `--refresh` takes its pattern after `=`; to recompute \
                 the entries matching {0}, write `--refresh={0}` before the module",
                module.display()
            );
        }
        Ok(())
    }

    /// The policy these flags (and `--offline`) describe.
    pub fn policy(&self, net: &NetArgs) -> Result<Policy> {
        Ok(Policy {
            no_cache: self.no_cache,
            refresh: self.refresh.as_deref().map(Pattern::new).transpose()?,
            offline: net.offline,
        })
    }
}

/// `devstash record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Where to write the tape [default: <cache dir>/tapes/<module name>.tape].
    #[arg(short = 'o', long = "output", value_name = "TAPE")]
    pub output: Option<PathBuf>,
    /// Keep this environment variable's value off the tape too (names that look secret, and
    /// values that hold a password, are kept off already). Repeatable.
    #[arg(long, value_name = "NAME")]
    pub redact_env: Vec<String>,
    /// Keep the files the program reads in this read-only granted folder (its guest path, or
    /// its host path) off the tape: the tape holds their size and hash, and a replay reads them
    /// from a folder granted with `--dir HOST::GUEST:ro`, checked first. For large inputs.
    /// Repeatable.
    #[arg(long, value_name = "DIR")]
    pub by_hash: Vec<String>,
    /// How marked calls use the cache (as in `devstash run`).
    #[command(flatten)]
    pub cache: CacheArgs,
    /// What the guest may reach over HTTP (as in `devstash run`). Every exchange goes on the
    /// tape, secret header values redacted, and a replay answers requests from it.
    #[command(flatten)]
    pub net: NetArgs,
    /// What to run and what it may see (as in `devstash run`).
    #[command(flatten)]
    pub module: ModuleArgs,
}

/// `devstash replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Compare stdout, stderr and exit code with the recording: on a difference, print a unified
    /// diff and exit with 122; when they match, exit with 0.
    #[arg(long)]
    pub verify: bool,
    /// Grant a folder the tape reads files from by hash (`record --by-hash`), read-only:
    /// HOST::GUEST:ro. Each file is checked against the recorded one before the replay starts.
    /// Nothing else is read from the host: every other file is on the tape.
    #[arg(long = "dir", value_name = "HOST[::GUEST]:ro")]
    pub dirs: Vec<DirGrant>,
    /// Give a variable whose value the tape keeps redacted its real value: NAME for the host's,
    /// or NAME=VALUE. Checked against the recorded value's hash. Repeatable.
    #[arg(long = "env", value_name = "NAME[=VAL]")]
    pub env: Vec<EnvVar>,
    /// Treat this request header as a secret too, as `record --redact-header` did (the tape
    /// names those already). Repeatable.
    #[arg(long, value_name = "NAME")]
    pub redact_header: Vec<String>,
    /// Limits on what the replayed guest may consume.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The module to replay (the recorded one, or a changed build of it).
    #[arg(value_name = "MODULE.wasm")]
    pub module: PathBuf,
    /// The tape [default: <cache dir>/tapes/<module name>.tape].
    #[arg(value_name = "TAPE")]
    pub tape: Option<PathBuf>,
}

/// `devstash list`.
#[derive(Debug, Args)]
#[command(
    after_help = "One row per entry: name, site, size, age, TTL status and compute time, then a \
                  total.\n\nEach entry is judged against the TTL it was stored with (`--ttl` \
                  judges every entry against one TTL instead). Entries that fail verification \
                  are listed and flagged `corrupt`."
)]
pub struct ListArgs {
    /// Judge every entry against this TTL instead of its own: `valid (<=1m)` or `expired
    /// (>1m)`. A number and a unit: 30s, 10m, 2h, 1d, 1w.
    #[arg(long, value_name = "DUR")]
    pub ttl: Option<Dur>,
    /// Print one JSON object (entries, totals) for scripts instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Order of the rows: name (A to Z), age (newest first) or size (largest first).
    #[arg(long, value_enum, default_value_t = SortKey::Name, value_name = "KEY")]
    pub sort: SortKey,
    /// What the team cache holds for this project instead (its entry count and size), from
    /// DEVSTASH_REMOTE or devstash.toml.
    #[arg(long)]
    pub remote: bool,
}

/// Orders of `devstash list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    /// By file name, A to Z.
    Name,
    /// Newest first.
    Age,
    /// Largest first.
    Size,
}

/// `devstash clear`.
#[derive(Debug, Args)]
#[command(
    after_help = "Give --all, or one or more conditions (--pattern, --expired, --older-than, \
                  --corrupt): an entry is removed when it meets all of them.\n\nOnly files \
                  devstash wrote are ever removed: symlinks are skipped, never followed; tapes \
                  (tapes/) are kept; and a directory that has neither devstash's CACHEDIR.TAG nor \
                  any entry file is refused.",
    group(
        ArgGroup::new("what")
            .required(true)
            .multiple(true)
            .args(["all", "pattern", "expired", "older_than", "corrupt", "stale"])
    )
)]
pub struct ClearArgs {
    /// Remove every entry, the pack of entry copies and temporary files left by a crash. Tapes
    /// are kept.
    #[arg(long, conflicts_with_all = ["pattern", "expired", "older_than", "corrupt"])]
    pub all: bool,
    /// Remove entries whose site (`app::fetch`) or file name matches: a glob (`app::*`), or
    /// without glob characters a substring of either.
    #[arg(long, value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// Remove entries past the TTL they were stored with (or past --ttl). Entries without a TTL
    /// never expire.
    #[arg(long)]
    pub expired: bool,
    /// With --expired: judge every entry against this TTL instead of its own (30s, 10m, 2h, 1d,
    /// 1w).
    #[arg(long, value_name = "DUR", requires = "expired")]
    pub ttl: Option<Dur>,
    /// Remove entries stored longer ago than this (30s, 10m, 2h, 1d, 1w).
    #[arg(long, value_name = "DUR")]
    pub older_than: Option<Dur>,
    /// Remove entries that fail verification (corrupt, cut short, or not signed by this user's
    /// key); a run recomputes them anyway.
    #[arg(long, conflicts_with_all = ["expired", "older_than"])]
    pub corrupt: bool,
    /// Remove the entries of this module's crates whose marked site is no longer in the module
    /// (renamed or removed): an entry is kept if a site of MODULE.wasm calls a function of its
    /// name. Check with --dry-run first.
    #[arg(long, value_name = "MODULE.wasm", conflicts_with_all = ["all", "corrupt"])]
    pub stale: Option<PathBuf>,
    /// Print what would be removed, and remove nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// `devstash inspect`.
#[derive(Debug, Args)]
#[command(after_help = "An entry is named by its \
                  file name in the cache (`devstash list` shows them), a unique prefix of one, or \
                  a path: every header field, the signature verdict, the arguments preview and a \
                  preview of the stored value. A module (.wasm or .wat) shows the marked sites \
                  compiled into it and the capabilities it imports. Exits with 1 when an entry \
                  fails verification.")]
pub struct InspectArgs {
    /// An entry (file name, unique prefix of one, or path), a module (MODULE.wasm) or a tape.
    #[arg(value_name = "ENTRY|MODULE.wasm|TAPE")]
    pub target: PathBuf,
    /// Print JSON for scripts (entries and modules).
    #[arg(long)]
    pub json: bool,
}

/// A duration given on the command line (`30m`, `2h`, `1d`, `1w`), kept with its text so that
/// verdicts show it as the user wrote it (`valid (<=1m)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dur {
    /// As written.
    pub text: String,
    /// As parsed.
    pub duration: Duration,
}

impl FromStr for Dur {
    type Err = String;

    fn from_str(s: &str) -> Result<Dur, String> {
        let text = s.trim();
        humantime::parse_duration(text)
            .map(|duration| Dur {
                text: text.to_string(),
                duration,
            })
            .map_err(|_| "write a number and a unit, e.g. 30s, 10m, 2h, 1d or 1w".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert!("1x".parse::<Dur>().is_err());
        assert_eq!("1d".parse::<Dur>().unwrap().duration.as_secs(), 86_400);
        assert_eq!("1w".parse::<Dur>().unwrap().duration.as_secs(), 7 * 86_400);
    }

    fn net(allow: Option<&str>) -> NetArgs {
        NetArgs {
            allow_net: allow.map(str::to_string),
            offline: false,
            redact_header: Vec::new(),
        }
    }

    #[test]
    fn an_empty_host_list_is_an_error_and_the_bare_flag_allows_all() {
        for empty in ["", ",", " ", " , "] {
            let e = net(Some(empty)).policy().unwrap_err().to_string();
            assert!(e.contains("names no host"), "{empty:?}: {e}");
        }
        assert_eq!(net(Some(ALL_HOSTS)).policy().unwrap().allow, Allow::Every);
        assert_eq!(net(None).policy().unwrap().allow, Allow::Nothing);
        assert!(matches!(
            net(Some("a.example, b.example:8080")).policy().unwrap().allow,
            Allow::Hosts(h) if h.len() == 2
        ));
    }
}
