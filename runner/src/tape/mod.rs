//! Tapes: `devstash record` captures everything a run takes from outside, `devstash replay` plays
//! it back offline and sealed, and `devstash inspect TAPE` summarizes one.
//!
//! - [`format`]: the file format (readable header, checksummed postcard events).
//! - [`record`]: the recorder behind the clocks, `random_get`, stdio and the marked-call hook.
//! - [`replay`]: the player that serves all of it back, and the divergence it reports when the
//!   program asks for something the tape cannot answer.
//! - [`syscall`]: the WASI calls on descriptors (files, stdio, sockets), recorded and answered
//!   by their results, so that a replay reads and writes no host file.
//! - [`stdio`] and [`wasi`]: the other WASI pieces record and replay put in place.
//! - [`report`]: divergence reports, `--verify` diffs, `inspect` summaries.

pub mod format;
pub mod keytext;
pub mod record;
pub mod replay;
pub mod report;
pub mod stdio;
pub mod syscall;
pub mod wasi;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use wasmtime_wasi::Deterministic;
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock, MonotonicClock, WallClock};

use self::format::{ExitRecord, Invocation, Stream, Tape, TapeHeader};
use self::record::{
    ByHash, RecordHook, Recorder, RecordingMonotonicClock, RecordingWallClock, SysRecorder,
};
use self::replay::{Player, PlayerTime, ReplayHook, SysPlayer, TapeMonotonicClock, TapeWallClock};
use self::report::RunOutput;
use self::stdio::{TeeOutput, lock};
use crate::engine::{self, ModuleCache};
use crate::exit;
use crate::flags::{GlobalArgs, RecordArgs, ReplayArgs};
use crate::home::Home;
use crate::host::{Budget, Policy, StashHost};
use crate::net::NetPolicy;
use crate::output::{self, human_size, plural, say};
use crate::python::{self, Program};
use crate::runtime::{self, Exit, Kind};
use crate::sandbox::{EnvVar, Sandbox};
use crate::store::disk::{
    DiskTier, create_cache_dir, open_cache_dir, remove_dead_temps, write_via_temp,
};
use crate::store::names::sanitize;
use crate::store::{EntryRef, Header, Lookup, Tier};

pub use self::format::TAPE_MAGIC;

/// Folder of the cache directory that holds tapes recorded without `-o`.
pub use crate::store::listing::TAPES_DIR;

/// What a tape stores instead of the value of an environment variable whose name looks secret;
/// a replay gives the guest this.
pub const REDACTED_ENV: &str = "<redacted by devstash>";

/// Parts of environment variable names (compared case-insensitively, anywhere in the name) that
/// mark their values as secret.
const SECRET_ENV_PARTS: &[&str] = &[
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
    "SESSION",
    "COOKIE",
];

/// Words of environment variable names (between `_`s, compared case-insensitively) that mark
/// their values as secret: too short to look for inside other words (`PATH` is not `PAT`).
const SECRET_ENV_WORDS: &[&str] = &["PAT", "PASS", "PWD", "PW", "DSN", "SIG"];

/// Whether the value of the environment variable `name` is kept off tapes. Errs on the side of
/// secrecy (`AUTHOR` matches too): a replay then sees the placeholder, which a `--verify` shows
/// if the program prints it.
pub fn is_secret_env(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_ENV_PARTS.iter().any(|part| upper.contains(part))
        || upper
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| SECRET_ENV_WORDS.contains(&word))
}

/// Whether a value holds a secret whatever its variable's name: a URL with a password or a user
/// (`postgres://user:pw@host/db`, `https://key@sentry.io/1`).
fn holds_credentials(value: &str) -> bool {
    url::Url::parse(value.trim())
        .is_ok_and(|u| u.password().is_some() || (!u.username().is_empty() && u.has_host()))
}

/// An argument as a tape stores it: the credentials of every URL in it (`user:pass@` or
/// `token@` after a `scheme://`, as in `--db=postgres://u:p@h/db`) replaced by `redacted`. A
/// replayed program that requests such a URL still matches the recording: a URL's credentials
/// travel as an `Authorization` header, which tapes match by name only.
fn tape_arg(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first `/`, `?`, `#` or blank; credentials end at its last `@`.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(userinfo) => {
                out.push_str("redacted");
                rest = &tail[userinfo..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// The environment as a tape stores it: secret values (see [`is_secret_env`], values holding
/// credentials, and the names in `redact`) replaced by [`REDACTED_ENV`]; and the name and keyed
/// hash (see [`env_hash`]) of each value replaced.
#[allow(clippy::type_complexity)]
fn tape_env(
    env: Vec<(String, String)>,
    redact: &[String],
    key: &[u8; 32],
) -> (Vec<(String, String)>, Vec<(String, [u8; 32])>) {
    let mut secrets = Vec::new();
    let env = env
        .into_iter()
        .map(|(k, v)| {
            let secret = is_secret_env(&k)
                || holds_credentials(&v)
                || redact.iter().any(|r| r.eq_ignore_ascii_case(&k));
            if !secret {
                return (k, v);
            }
            secrets.push((k.clone(), env_hash(key, &k, &v)));
            (k, REDACTED_ENV.to_string())
        })
        .collect();
    (env, secrets)
}

/// The keyed hash a tape keeps of a redacted variable's value: with a key of the user's own
/// (`home::Keys::env`), so that the tape does not let anyone test guesses of the value.
fn env_hash(key: &[u8; 32], name: &str, value: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&(name.len() as u64).to_le_bytes());
    h.update(name.as_bytes());
    h.update(value.as_bytes());
    *h.finalize().as_bytes()
}

/// The `(guest folder, host folder)` of each `record --by-hash DIR`: DIR names a read-only
/// grant by its guest or host path.
fn by_hash_dirs(names: &[String], sandbox: &Sandbox) -> Result<Vec<(String, PathBuf)>> {
    // Folders devstash grants (the Python runtime's library, 54 MB) are always kept off the
    // tape: a replay finds them where it finds the runtime.
    let internal = sandbox
        .internal
        .iter()
        .map(|d| Ok((d.guest.clone(), d.host.clone())));
    names
        .iter()
        .map(|name| {
            let grant = sandbox
                .dirs
                .iter()
                .find(|d| d.guest == *name || d.host == Path::new(name))
                .ok_or_else(|| {
                    anyhow!(
                        "--by-hash {name}: no folder is granted as {name}; grant it with `--dir \
                         HOST::{name}:ro`"
                    )
                })?;
            if !grant.read_only {
                bail!(
                    "--by-hash {name}: the folder is granted writable, and a file the program \
                     could change cannot be checked by hash; grant it with `--dir {}::{}:ro`",
                    grant.host.display(),
                    grant.guest
                );
            }
            Ok((grant.guest.clone(), grant.host.clone()))
        })
        .chain(internal)
        .collect()
}

/// Where a module's tape goes when no path is given.
pub fn default_tape(global: &GlobalArgs, module: &Path) -> PathBuf {
    let stem = module
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "module".into());
    global
        .cache_dir
        .join(TAPES_DIR)
        .join(format!("{}.tape", sanitize(&stem)))
}

/// Runs `devstash record`.
pub fn record(global: &GlobalArgs, args: &RecordArgs) -> Result<i32> {
    let home = Home::open()?;
    let tier = DiskTier::new(&global.cache_dir, home.signer());
    if !args.cache.no_cache {
        tier.prefetch();
    }
    let module = args.module.module()?;
    args.cache.check_refresh_spelling(module)?;
    let limits = args.module.limits.limits();
    let modules = ModuleCache::new(&home)?;
    let program = Program::resolve(&home, module, args.module.sandbox()?)?;
    let prepared = runtime::prepare(&program.module, program.kind, &limits, Some(&modules))?;
    let sandbox = program.sandbox;
    let by_hash = ByHash::new(by_hash_dirs(&args.by_hash, &sandbox)?);
    let shim = engine::load_text(&prepared.engine, &syscall::shim(), Some(&modules))?;
    let budget = Arc::new(Budget::new(limits.max_memory));
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| default_tape(global, module));
    let tty = [
        std::io::stdin().is_terminal(),
        std::io::stdout().is_terminal(),
        std::io::stderr().is_terminal(),
    ];
    // The guest gets the real values; only the tape holds placeholders.
    let (env, secret_env) = tape_env(sandbox.resolved_env(), &args.redact_env, &home.keys().env);
    let recorder = Arc::new(Mutex::new(
        Recorder::new(
            Invocation {
                argv: sandbox.args.iter().map(|a| tape_arg(a)).collect(),
                env,
                wall_resolution_ns: u64::try_from(WallClock::new().resolution().as_nanos())
                    .unwrap_or(u64::MAX),
                monotonic_resolution_ns: MonotonicClock::new().resolution(),
                tty,
                secret_env,
                key_id: home.keys().id.clone(),
                redact_headers: args.net.policy()?.redact,
                preopens: sandbox.grants().map(|d| d.guest.clone()).collect(),
            },
            budget.clone(),
        )
        .with_by_hash(by_hash),
    ));

    let mut wasi = sandbox.builder(&home)?;
    wasi.wall_clock(RecordingWallClock::new(recorder.clone()))
        .monotonic_clock(RecordingMonotonicClock::new(recorder.clone()))
        .stdout(TeeOutput::new(Stream::Stdout, tty[1], recorder.clone()))
        .stderr(TeeOutput::new(Stream::Stderr, tty[2], recorder.clone()));
    let tier = if args.cache.no_cache {
        Box::new(tier) as Box<dyn Tier>
    } else {
        crate::team::tier(tier, &args.cache.remote.choice())?
    };
    let stash = StashHost::new(tier, args.cache.policy(&args.net)?)
        .with_net(args.net.policy()?)
        .with_secret_keys(home.keys().secrets, home.keys().headers)
        .with_writer(prepared.hash)
        .with_budget(budget)
        .with_hook(Box::new(RecordHook(recorder.clone())));
    let rng = recorder.clone();
    let sys = Arc::new(SysRecorder(recorder.clone()));
    let outcome = runtime::execute_with(&prepared, wasi.build_p1(), stash, |linker, store| {
        wasi::random_get(linker, move |buf| {
            lock(&rng).random(buf);
            Ok(())
        })?;
        syscall::record(linker, store, shim, sys)
    })?;
    runtime::finish(&outcome, global.quiet, args.cache.no_cache);

    let exit_record = ExitRecord {
        code: outcome.exit.code(),
        trap: match &outcome.exit {
            Exit::Trap(msg) | Exit::Limit(msg) => Some(msg.clone()),
            Exit::Code(_) => None,
        },
    };
    let mut recorder = lock(&recorder);
    if recorder.full.is_some() {
        // Stopped at a limit, which `finish` has named: the exit code of every limit.
        say("devstash: no tape was written");
        return Ok(exit::LIMIT);
    }
    let counts = recorder.counts;
    let (body, events) = recorder.finish(exit_record);
    let now = SystemTime::now();
    let header = TapeHeader {
        module: file_name(module),
        module_xxh3: format!("{:032x}", prepared.hash),
        module_blake3: String::new(),
        devstash: env!("CARGO_PKG_VERSION").into(),
        created: humantime::format_rfc3339_seconds(now).to_string(),
        created_ms: now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        events,
    };
    let bytes = format::encode(&header, &body);
    write_tape(global, &path, &bytes)?;
    if !global.quiet {
        say(&format!(
            "devstash: recorded {} ({}): {} marked call{},{} {} clock reading{}, {} random, {} \
             WASI call{} on files and stdio ({} read or written, {} of it on the tape), {} of \
             stdin",
            path.display(),
            human_size(bytes.len() as u64),
            counts.calls,
            plural(counts.calls),
            http_count(counts.http),
            counts.clock,
            plural(counts.clock),
            human_size(counts.random_bytes),
            counts.sys,
            plural(counts.sys),
            human_size(counts.file_bytes),
            human_size(counts.chunk_bytes),
            human_size(counts.stdin_bytes),
        ));
    }
    Ok(outcome.exit.code())
}

/// Runs `devstash replay`.
pub fn replay(global: &GlobalArgs, args: &ReplayArgs) -> Result<i32> {
    if let Some(d) = args.dirs.iter().find(|d| !d.read_only) {
        bail!(
            "--dir {}: a replay grants directories only read-only; write `--dir {}:ro`",
            d.host.display(),
            d.host.display()
        );
    }
    let path = match &args.tape {
        Some(p) => p.clone(),
        None => {
            let p = default_tape(global, &args.module);
            if !p.exists() {
                bail!(
                    "no tape for {} at {}: record one with `devstash record {}`, or pass the \
                     tape's path after the module",
                    args.module.display(),
                    p.display(),
                    args.module.display()
                );
            }
            p
        }
    };
    let tape = Tape::read(&path)?;
    let header = tape.header.clone();
    let (mut player, recorded) =
        Player::new(tape).map_err(|e| anyhow!("cannot use tape {}: {e:#}", path.display()))?;

    // Compiled modules come from the per-user directory: a replay reads and writes nothing in
    // the cache directory.
    let home = Home::open()?;
    let modules = ModuleCache::new(&home)?;
    // A script's tape is played on the runtime that recorded it (checked below by its hash);
    // the script itself, like every file it read, is on the tape.
    let (module, kind, runtime_lib) = if python::is_script(&args.module) {
        let rt = python::Runtime::open(&home)?;
        (rt.wasm, Kind::Python, Some(rt.lib))
    } else {
        (args.module.clone(), Kind::Command, None)
    };
    let prepared = runtime::prepare(&module, kind, &args.limits.limits(), Some(&modules))?;
    let module_changed = if header.module_xxh3.is_empty() {
        // A tape from before module_xxh3: its module is identified by blake3, taken here.
        let bytes = std::fs::read(&module)
            .with_context(|| format!("cannot read module {}", module.display()))?;
        blake3::hash(&bytes).to_hex().as_str() != header.module_blake3
    } else {
        format!("{:032x}", prepared.hash) != header.module_xxh3
    };
    // Files kept off the tape are read from the granted folders, each checked first.
    for d in &args.dirs {
        home.check_grant(&d.host)?;
    }
    let grants: Vec<(String, PathBuf)> = args
        .dirs
        .iter()
        .map(|d| (d.guest.clone(), d.host.clone()))
        .chain(runtime_lib.map(|lib| (python::LIB_GUEST.to_string(), lib)))
        .collect();
    player
        .open_refs(&grants)
        .with_context(|| format!("cannot replay {}", path.display()))?;
    for d in &args.dirs {
        let used = recorded
            .refs
            .iter()
            .any(|r| r.dir.trim_end_matches('/') == d.guest.trim_end_matches('/'));
        if !used && !global.quiet {
            say(&format!(
                "devstash: note: --dir {}: the tape reads no file from {} by hash (every file the \
                 recording read is on the tape), so nothing is read from this folder",
                d.host.display(),
                d.guest
            ));
        }
    }

    // Arguments and environment come from the tape, redacted values from `--env`; no folder
    // is granted to WASI: every call on a file is answered from the tape.
    let inv = &recorded.invocation;
    let env = replay_env(
        inv,
        &args.env,
        &home.keys().env,
        &home.keys().id,
        global.quiet,
    )?;
    let sandbox = Sandbox {
        args: inv.argv.clone(),
        env,
        dirs: Vec::new(),
        internal: Vec::new(),
    };
    let player = Arc::new(Mutex::new(player));
    let mut wasi = sandbox.builder(&home)?;
    wasi.wall_clock(TapeWallClock {
        resolution: std::time::Duration::from_nanos(inv.wall_resolution_ns),
        player: player.clone(),
    })
    .monotonic_clock(TapeMonotonicClock {
        resolution: inv.monotonic_resolution_ns,
        player: player.clone(),
    })
    // Preview 1 reaches randomness only through `random_get`, which the tape serves (see
    // `wasi::random_get`); these fixed generators make sure nothing else could reach a real one.
    .secure_random(Deterministic::new(vec![0]))
    .insecure_random(Deterministic::new(vec![0]))
    .insecure_random_seed(0)
    // Every read and write of a descriptor is answered from the tape (see `syscall`): these
    // streams are never reached, and the real stdin is never read.
    .stdin(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(Vec::new()))
    .stdout(TeeOutput::new(Stream::Stdout, inv.tty[1], player.clone()))
    .stderr(TeeOutput::new(Stream::Stderr, inv.tty[2], player.clone()));
    // Sealed: every marked call and HTTP request is answered by the hook (or stops the replay),
    // the store holds nothing, and behind the hook no host is allowed and there is no network
    // (`offline`), so nothing could reach a socket even if the hook let a request through.
    // Secret headers are those of the recording (and any named here), so that requests are
    // keyed as they were.
    let policy = Policy {
        offline: true,
        ..Policy::default()
    };
    let mut redact = inv.redact_headers.clone();
    redact.extend(args.redact_header.iter().map(|h| h.to_ascii_lowercase()));
    let stash = StashHost::new(Box::new(SealedTier), policy)
        .with_net(NetPolicy {
            redact,
            ..NetPolicy::default()
        })
        .with_budget(Arc::new(Budget::new(args.limits.max_memory)))
        .with_hook(Box::new(ReplayHook(player.clone())));
    let engine = prepared.engine.clone();
    let outcome = runtime::execute_with(&prepared, wasi.build_p1(), stash, |linker, _| {
        let p = player.clone();
        wasi::random_get(linker, move |buf| lock(&p).random(buf))?;
        wasi::replay_time(linker, PlayerTime(player.clone()))?;
        syscall::replay(linker, &engine, Arc::new(SysPlayer(player.clone())))
    })?;

    let player = lock(&player);
    if let Some(d) = &player.divergence {
        // The report quotes the guest and the tape: escaped, like everything they wrote.
        say(&output::escape_lines(&report::divergence(
            d,
            &path,
            &args.module,
        )));
        return Ok(exit::DIVERGENCE);
    }
    if let Exit::Trap(msg) = &outcome.exit {
        say(msg);
    }
    let code = outcome.exit.code();
    if !global.quiet {
        let c = player.counts;
        say(&format!(
            "devstash: replayed {}{}: {} marked call{}{} answered from the tape, {} clock \
             reading{}, {} random",
            path.display(),
            if module_changed {
                " with a changed module"
            } else {
                ""
            },
            c.calls,
            plural(c.calls),
            match c.http {
                0 => String::new(),
                n => format!(" and {n} HTTP request{}", plural(n)),
            },
            c.clock,
            plural(c.clock),
            human_size(c.random_bytes)
        ));
    }
    if !args.verify {
        return Ok(code);
    }
    let diff = report::verify_diff(
        &RunOutput {
            stdout: &recorded.stdout,
            stderr: &recorded.stderr,
            files: &recorded.files,
            code: recorded.exit_code,
        },
        &RunOutput {
            stdout: &player.stdout,
            stderr: &player.stderr,
            files: &player.files,
            code,
        },
    );
    match diff {
        Some(diff) => {
            // The diff quotes what the program wrote, and file names from the tape: escaped.
            say(&format!(
                "devstash: verify failed: the replay's output differs from the recording ({})\n{}",
                path.display(),
                output::escape_lines(diff.trim_end_matches('\n'))
            ));
            Ok(exit::VERIFY_FAILED)
        }
        None => {
            if !global.quiet {
                say(&format!(
                    "devstash: verified: stdout, stderr, {} and exit code match the recording",
                    match recorded.files.len() {
                        0 => "no file written".to_string(),
                        n => format!("{n} file{} written", plural(n as u64)),
                    }
                ));
            }
            Ok(0)
        }
    }
}

/// The environment of a replay: the tape's, with the values given by `--env` in place of the
/// redacted ones, each checked against the recorded hash. A redacted value not given stays the
/// placeholder, and a note says which variable would make the run exact.
fn replay_env(
    inv: &Invocation,
    given: &[EnvVar],
    key: &[u8; 32],
    key_id: &str,
    quiet: bool,
) -> Result<Vec<EnvVar>> {
    let mut values: Vec<(String, String)> = Vec::new();
    for g in given {
        let Some((_, hash)) = inv.secret_env.iter().find(|(n, _)| *n == g.name) else {
            bail!(
                "--env {}: the tape holds {}; a replay takes values only for the variables \
                 the tape keeps redacted ({})",
                g.name,
                if inv.env.iter().any(|(n, _)| *n == g.name) {
                    "its value already"
                } else {
                    "no such variable"
                },
                match inv.secret_env.len() {
                    0 => "none".to_string(),
                    _ => inv
                        .secret_env
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            );
        };
        let value = match &g.value {
            Some(v) => v.clone(),
            None => std::env::var(&g.name).map_err(|_| {
                anyhow!(
                    "--env {}: {} is not set here; set it, or pass --env {}=VALUE",
                    g.name,
                    g.name,
                    g.name
                )
            })?,
        };
        if inv.key_id != key_id {
            say(&format!(
                "devstash: warning: the tape was recorded with another user's key, so the value \
                 of {} cannot be checked against the recorded one",
                g.name
            ));
        } else if blake3::Hash::from_bytes(env_hash(key, &g.name, &value)) != *hash {
            bail!(
                "--env {}: this is not the value the recording had (its hash differs); give the \
                 recorded value",
                g.name
            );
        }
        values.push((g.name.clone(), value));
    }
    let missing: Vec<&str> = inv
        .secret_env
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !values.iter().any(|(v, _)| v == n))
        .collect();
    if !missing.is_empty() && !quiet {
        say(&format!(
            "devstash: note: the tape keeps {} redacted and the program sees a placeholder; pass \
             {} to replay with the recorded value{}",
            missing.join(", "),
            missing
                .iter()
                .map(|n| format!("--env {n}"))
                .collect::<Vec<_>>()
                .join(" "),
            plural(missing.len() as u64)
        ));
    }
    Ok(inv
        .env
        .iter()
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(
                values
                    .iter()
                    .find(|(n, _)| n == k)
                    .map_or_else(|| v.clone(), |(_, real)| real.clone()),
            ),
        })
        .collect())
}

/// Prints a summary of the tape at `path` (`devstash inspect TAPE`, for files that start with
/// [`TAPE_MAGIC`]). Like a corrupt entry, a tape that fails verification is reported and exits
/// with 1.
pub fn inspect(_global: &GlobalArgs, path: &Path, json: bool) -> Result<i32> {
    match Tape::read(path) {
        Ok(tape) if json => {
            output::json(&report::info(path, &tape))?;
            Ok(0)
        }
        Ok(tape) => {
            output::line(output::escape_lines(&report::summary(path, &tape)))?;
            Ok(0)
        }
        Err(e) => {
            say(&format!("error: {e:#}"));
            Ok(1)
        }
    }
}

/// The store of a replay: holds nothing and accepts nothing. The replay hook answers every
/// marked call before the store is asked, so this is only a guarantee that a replay can never
/// read or write the cache directory.
struct SealedTier;

impl Tier for SealedTier {
    fn get(&self, _at: &EntryRef) -> Lookup {
        Lookup::Missing
    }
    fn put(&self, _at: &EntryRef, _header: &Header, _payload: &[u8]) -> Result<()> {
        bail!("a replay stores nothing")
    }
    fn location(&self) -> String {
        "(the tape)".into()
    }
}

/// Writes a tape atomically, creating the cache directory (with its tag) or the parent
/// directory as needed.
fn write_tape(global: &GlobalArgs, path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        anyhow!(
            "cannot write a tape to {}: give a file name",
            path.display()
        )
    })?;
    let dir = if parent == global.cache_dir.join(TAPES_DIR) {
        tapes_dir(&global.cache_dir)?
    } else {
        if parent.starts_with(&global.cache_dir) && !global.cache_dir.exists() {
            create_cache_dir(&global.cache_dir)?;
        }
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create {} for the tape", parent.display()))?;
        Dir::open_ambient_dir(&parent, ambient_authority())
            .with_context(|| format!("cannot open {}", parent.display()))?
    };
    // Tapes that recordings killed while writing left behind.
    remove_dead_temps(&dir, TAPE_MAGIC);
    let written = write_via_temp(&dir, name, bytes, |dir, tmp| {
        // The old tape goes first: ext4 flushes a file renamed over another to disk before the
        // rename returns (its auto_da_alloc safeguard), about 0.4 ms, a tenth of a short
        // recording. A crash in between leaves the new tape in its `.tmp` file.
        match dir.remove_file(name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        dir.rename(tmp, dir, name)
    });
    written.with_context(|| format!("cannot write tape {}", path.display()))
}

/// The cache's folder of tapes, made when missing. Neither the cache nor the folder is followed
/// if it is a symbolic link (see `store::disk::open_cache_dir`): a program granted the project
/// could otherwise have the next recording written wherever it points.
fn tapes_dir(cache: &Path) -> Result<Dir> {
    let shown = cache.join(TAPES_DIR);
    let dir = match open_cache_dir(cache) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_cache_dir(cache)?,
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot open cache directory {}", cache.display()));
        }
    };
    match dir.create_dir(TAPES_DIR) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", shown.display())),
    }
    // A link is refused by name; one swapped in after this check is still resolved inside the
    // cache by `open_dir`, which never leaves the directory it is called on.
    if dir.symlink_metadata(TAPES_DIR)?.is_symlink() {
        bail!(
            "{} is a symbolic link, which devstash does not follow for its tapes (a program \
             granted the folder around it could point it anywhere): remove it",
            shown.display()
        );
    }
    dir.open_dir(TAPES_DIR)
        .with_context(|| format!("cannot open {}", shown.display()))
}

/// ` N HTTP exchange(s),` for the closing line of a recording; nothing when there were none.
fn http_count(n: u64) -> String {
    match n {
        0 => String::new(),
        n => format!(" {n} HTTP exchange{},", plural(n)),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_url_arguments_stay_off_tapes() {
        assert_eq!(
            tape_arg("http://user:PASS1234@127.0.0.1:8080/x?q=a@b"),
            "http://redacted@127.0.0.1:8080/x?q=a@b"
        );
        assert_eq!(
            tape_arg("--db=postgres://u:p@h/db,https://TOKEN@sentry.io/1"),
            "--db=postgres://redacted@h/db,https://redacted@sentry.io/1"
        );
        assert_eq!(tape_arg("plain"), "plain");
        assert_eq!(
            tape_arg("https://example.com/a@b"),
            "https://example.com/a@b"
        );
        // What replaces them still parses as the URL without them.
        let u = url::Url::parse(&tape_arg("http://u:p@h:1/x")).unwrap();
        assert_eq!(
            (u.host_str(), u.port(), u.path()),
            (Some("h"), Some(1), "/x")
        );
    }

    #[test]
    fn secret_looking_environment_values_stay_off_tapes() {
        for name in [
            "OPENAI_API_KEY",
            "github_token",
            "DB_PASSWORD",
            "MYSQL_PASSWD",
            "Client_Secret",
            "AWS_CREDENTIALS",
            "HTTP_AUTH",
        ] {
            assert!(is_secret_env(name), "{name}");
        }
        for name in ["LANG", "GREETING", "OPENAI_BASE_URL", "API_TTL", "PATH"] {
            assert!(!is_secret_env(name), "{name}");
        }
        for name in [
            "GITHUB_PAT",
            "MY_PASS",
            "SENTRY_DSN",
            "DB_PWD",
            "SESSION_ID",
        ] {
            assert!(is_secret_env(name), "{name}");
        }
        for name in ["PATH", "PATTERN", "PASSAGE", "HOME"] {
            assert!(!is_secret_env(name), "{name}");
        }
        let key = [7; 32];
        let (env, secrets) = tape_env(
            vec![
                ("OPENAI_API_KEY".into(), "sk-123".into()),
                ("LANG".into(), "C".into()),
                ("DATABASE_URL".into(), "postgres://u:PW-DB@h/db".into()),
                ("WEB".into(), "https://example.com/x".into()),
                ("MINE".into(), "plain".into()),
            ],
            &["mine".into()],
            &key,
        );
        let names: Vec<&str> = secrets.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["OPENAI_API_KEY", "DATABASE_URL", "MINE"]);
        assert_eq!(secrets[0].1, env_hash(&key, "OPENAI_API_KEY", "sk-123"));
        assert_ne!(secrets[0].1, env_hash(&[8; 32], "OPENAI_API_KEY", "sk-123"));
        let redacted = REDACTED_ENV.to_string();
        assert_eq!(
            env,
            vec![
                ("OPENAI_API_KEY".into(), redacted.clone()),
                ("LANG".into(), "C".into()),
                ("DATABASE_URL".into(), redacted.clone()),
                ("WEB".into(), "https://example.com/x".into()),
                ("MINE".into(), redacted),
            ]
        );
    }
}
