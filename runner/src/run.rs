//! Running a module: load (or reuse) its compilation, link WASI and the devstash imports, call
//! `_start`, and turn the outcome into an exit code and a summary line.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use devstash_protocol::{IMPORT_MODULE, import};
use wasmtime::{Engine, Linker, Module, Store, Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::cli::{CacheArgs, GlobalArgs, LimitArgs, ModuleArgs, NetArgs, RunArgs};
use crate::engine;
use crate::exit;
use crate::host::{self, HasStash, Policy, StashHost, Stats};
use crate::net::{HostRule, NetPolicy};
use crate::sandbox::Sandbox;
use crate::store::disk::DiskTier;
use crate::store::pattern::Pattern;

/// The store data of a run: the WASI context and the devstash state.
pub struct Ctx {
    /// WASI preview 1.
    pub wasi: WasiP1Ctx,
    /// The devstash imports' state.
    pub stash: StashHost,
    /// `--max-memory`.
    memory: MemoryCap,
}

/// Refuses memory growth past `--max-memory` with an error that names the flag.
#[derive(Default)]
struct MemoryCap {
    max: Option<u64>,
}

/// The error a guest stops with when it needs more memory than `--max-memory` allows.
#[derive(Debug)]
struct MemoryLimitHit {
    desired: usize,
    max: u64,
}

impl std::fmt::Display for MemoryLimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the guest tried to grow its memory to {} but --max-memory is {}",
            bytesize::ByteSize::b(self.desired as u64),
            bytesize::ByteSize::b(self.max)
        )
    }
}

impl std::error::Error for MemoryLimitHit {}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        match self.max {
            Some(max) if desired as u64 > max => {
                Err(wasmtime::Error::new(MemoryLimitHit { desired, max }))
            }
            _ => Ok(true),
        }
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl HasStash for Ctx {
    fn stash(&mut self) -> &mut StashHost {
        &mut self.stash
    }
}

/// How a guest ended.
#[derive(Debug)]
pub enum Exit {
    /// It returned from `main` (0) or called `proc_exit`.
    Code(i32),
    /// It trapped, or a host import stopped it; the message is ready to print.
    Trap(String),
    /// It hit `--timeout`, `--max-memory` or `--fuel`; the message is ready to print.
    Limit(String),
}

impl Exit {
    /// The process exit code for this ending.
    pub fn code(&self) -> i32 {
        match self {
            Exit::Code(c) => *c,
            Exit::Trap(_) => exit::TRAP,
            Exit::Limit(_) => exit::LIMIT,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// How the guest ended.
    pub exit: Exit,
    /// What the marked calls did.
    pub stats: Stats,
}

/// A module ready to instantiate.
pub struct Prepared {
    /// The engine it was compiled for.
    pub engine: Engine,
    /// The compiled module.
    pub module: Module,
    /// XXH3-128 of the module file's bytes (names its compilation, identifies it on a tape).
    pub hash: u128,
    /// What the guest may consume.
    pub limits: LimitArgs,
}

/// Reads, checks and compiles (or loads the compilation of) the module.
pub fn prepare(global: &GlobalArgs, module: &ModuleArgs) -> Result<Prepared> {
    let file = engine::read_module(&module.module)?;
    let engine = engine::engine(&module.limits)?;
    let compiled = engine::load(&engine, &file, Some(&global.cache_dir))?;
    check_imports(&compiled, &module.module.display().to_string())?;
    Ok(Prepared {
        engine,
        module: compiled,
        hash: file.hash,
        limits: module.limits.clone(),
    })
}

/// Refuses imports devstash does not provide, with a line that says what to do.
pub fn check_imports(module: &Module, shown: &str) -> Result<()> {
    for imp in module.imports() {
        match imp.module() {
            "wasi_snapshot_preview1" => {}
            m if m == IMPORT_MODULE => {
                if !import::ALL.contains(&imp.name()) {
                    bail!(
                        "{shown} imports `{m}::{}`, which this runner does not know: it was built \
                         with a newer devstash SDK; update devstash",
                        imp.name()
                    );
                }
            }
            m => bail!(
                "{shown} imports `{m}::{}`, which devstash does not provide: a wasm32-wasip1 \
                 program may import only WASI preview 1 and the devstash SDK",
                imp.name()
            ),
        }
    }
    Ok(())
}

/// The sandbox described by the command line.
pub fn sandbox(module: &ModuleArgs) -> Sandbox {
    let program = module
        .module
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "main.wasm".into());
    let mut args = vec![program];
    args.extend(module.args.iter().cloned());
    Sandbox {
        args,
        env: module.env.clone(),
        dirs: module.dirs.clone(),
    }
}

/// The policy described by the command line.
pub fn policy(cache: &CacheArgs, net: &NetArgs) -> Result<Policy> {
    Ok(Policy {
        no_cache: cache.no_cache,
        refresh: cache.refresh.as_deref().map(Pattern::new).transpose()?,
        offline: net.offline,
    })
}

/// The network policy described by the command line.
pub fn net_policy(net: &NetArgs) -> Result<NetPolicy> {
    let allow = match &net.allow_net {
        None => None,
        Some(list) => Some(
            list.iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.parse::<HostRule>().map_err(anyhow::Error::msg))
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    Ok(NetPolicy {
        allow,
        redact: net
            .redact_header
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
    })
}

/// Instantiates and runs a prepared module to its end.
pub fn execute(prepared: &Prepared, wasi: WasiP1Ctx, stash: StashHost) -> Result<Outcome> {
    execute_with(prepared, wasi, stash, |_, _| Ok(()))
}

/// [`execute`], with a chance to adjust the linker once WASI and the devstash imports are in it
/// and the store exists: record and replay put their own versions of a few WASI imports in place
/// there (randomness, sleeping), calling the originals where they need them.
pub fn execute_with(
    prepared: &Prepared,
    wasi: WasiP1Ctx,
    stash: StashHost,
    adjust: impl FnOnce(&mut Linker<Ctx>, &mut Store<Ctx>) -> wasmtime::Result<()>,
) -> Result<Outcome> {
    let mut linker: Linker<Ctx> = Linker::new(&prepared.engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |c: &mut Ctx| &mut c.wasi)?;
    host::add_to_linker(&mut linker)?;
    let limits = &prepared.limits;
    let memory = MemoryCap {
        max: limits.max_memory,
    };
    let mut store = Store::new(
        &prepared.engine,
        Ctx {
            wasi,
            stash,
            memory,
        },
    );
    store.limiter(|c| &mut c.memory);
    if let Some(fuel) = limits.fuel {
        store.set_fuel(fuel)?;
    }
    adjust(&mut linker, &mut store)?;
    // The watchdog stops the guest at --timeout; dropping it (when the guest ends) disarms it.
    let _watchdog = limits.timeout.map(|t| {
        store.set_epoch_deadline(1);
        store.epoch_deadline_trap();
        Watchdog::arm(prepared.engine.clone(), t)
    });
    let instance = linker
        .instantiate(&mut store, &prepared.module)
        .map_err(anyhow::Error::from)
        .context("cannot instantiate the module")?;
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .map_err(anyhow::Error::from)
        .context(
            "the module has no `_start` function: build a binary (with `fn main`), not a library",
        )?;
    let exit = match start.call(&mut store, ()) {
        Ok(()) => Exit::Code(0),
        Err(e) => ending(e, limits),
    };
    Ok(Outcome {
        exit,
        stats: std::mem::take(&mut store.data_mut().stash.stats),
    })
}

/// Stops a guest that runs past `--timeout`: first through an epoch deadline (the guest traps
/// at its next loop or call), then, if it is blocked inside a host call such as a long sleep
/// where no epoch check can reach it, by ending the process.
struct Watchdog {
    disarm: Option<std::sync::mpsc::Sender<()>>,
}

/// How long a guest blocked in a host call gets after its deadline before the process ends.
const WATCHDOG_GRACE: Duration = Duration::from_millis(500);

impl Watchdog {
    fn arm(engine: Engine, timeout: Duration) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            use std::sync::mpsc::RecvTimeoutError::Timeout;
            if rx.recv_timeout(timeout) != Err(Timeout) {
                return; // The guest ended in time.
            }
            engine.increment_epoch();
            if rx.recv_timeout(WATCHDOG_GRACE) == Err(Timeout) {
                eprintln!("{}", timeout_message(timeout));
                std::process::exit(exit::LIMIT);
            }
        });
        Watchdog { disarm: Some(tx) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which then returns.
        self.disarm.take();
    }
}

fn timeout_message(timeout: Duration) -> String {
    format!(
        "error: the guest ran longer than --timeout {}; it was stopped",
        human_duration(timeout)
    )
}

/// Classifies the error `_start` ended with.
fn ending(e: wasmtime::Error, limits: &LimitArgs) -> Exit {
    if let Some(code) = e.downcast_ref::<I32Exit>() {
        return Exit::Code(code.0);
    }
    if let Some(hit) = e.downcast_ref::<MemoryLimitHit>() {
        return Exit::Limit(format!("error: {hit}; it was stopped"));
    }
    match (e.downcast_ref::<Trap>(), limits) {
        (
            Some(Trap::Interrupt),
            LimitArgs {
                timeout: Some(t), ..
            },
        ) => {
            return Exit::Limit(timeout_message(*t));
        }
        (Some(Trap::OutOfFuel), LimitArgs { fuel: Some(f), .. }) => {
            return Exit::Limit(format!(
                "error: the guest used up its fuel (--fuel {f}); it was stopped"
            ));
        }
        _ => {}
    }
    let what = match e.downcast_ref::<Trap>() {
        Some(trap) => format!("the guest trapped: {trap}"),
        None => format!("the guest was stopped: {}", e.root_cause()),
    };
    let mut msg = format!("error: {what}");
    if let Some(bt) = e.downcast_ref::<WasmBacktrace>()
        && !bt.frames().is_empty()
    {
        msg.push_str(&format!("\nguest backtrace:\n{bt}"));
    }
    Exit::Trap(msg)
}

/// `devstash run`.
pub fn run(global: &GlobalArgs, args: &RunArgs) -> Result<i32> {
    let tier = DiskTier::new(&global.cache_dir);
    if !args.cache.no_cache {
        tier.prefetch();
    }
    let prepared = prepare(global, &args.module)?;
    let wasi = sandbox(&args.module).builder()?.build_p1();
    let stash = StashHost::new(Box::new(tier), policy(&args.cache, &args.net)?)
        .with_net(net_policy(&args.net)?);
    let outcome = execute(&prepared, wasi, stash)?;
    finish(global, &outcome, args.cache.no_cache);
    Ok(outcome.exit.code())
}

/// Prints a trap's message and the summary line.
pub fn finish(global: &GlobalArgs, outcome: &Outcome, no_cache: bool) {
    if let Exit::Trap(msg) | Exit::Limit(msg) = &outcome.exit {
        eprintln!("{msg}");
    }
    let s = &outcome.stats;
    if !global.quiet && (s.hits + s.misses) > 0 {
        say(&summary(s, no_cache));
    }
}

/// Writes one line to stderr in a single `write` (stderr is unbuffered, and `eprintln!` with
/// arguments writes piece by piece: a dozen system calls for a summary line).
pub fn say(line: &str) {
    use std::io::Write;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&bytes);
}

/// The one summary line: `devstash: 1 hit, 0 misses, 0 stored; saved 2.00s`.
pub fn summary(s: &Stats, no_cache: bool) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if no_cache {
        return format!(
            "devstash: caching off; {} ran",
            plural(s.misses, "marked call", "marked calls")
        );
    }
    let mut line = format!(
        "devstash: {}, {}, {} stored",
        plural(s.hits, "hit", "hits"),
        plural(s.misses, "miss", "misses"),
        s.stored
    );
    if s.hits > 0 {
        line.push_str(&format!(
            "; saved {}",
            human_duration(Duration::from_nanos(s.saved_ns))
        ));
    }
    if s.expired > 0 {
        line.push_str(&format!("; {} expired", s.expired));
    }
    if s.corrupt > 0 {
        line.push_str(&format!("; {} corrupt, recomputed", s.corrupt));
    }
    line
}

/// `2.00s`, `340ms`, `0.4ms`, `3m 20s`: short and readable.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 120.0 {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    } else if secs >= 1.0 {
        format!("{secs:.2}s")
    } else if secs >= 0.01 {
        format!("{:.0}ms", secs * 1e3)
    } else {
        format!("{:.1}ms", secs * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        let s = Stats {
            hits: 1,
            misses: 2,
            stored: 2,
            saved_ns: 2_000_000_000,
            ..Stats::default()
        };
        assert_eq!(
            summary(&s, false),
            "devstash: 1 hit, 2 misses, 2 stored; saved 2.00s"
        );
        assert_eq!(
            summary(&s, true),
            "devstash: caching off; 2 marked calls ran"
        );
        assert_eq!(human_duration(Duration::from_micros(400)), "0.4ms");
        assert_eq!(human_duration(Duration::from_secs(200)), "3m 20s");
    }
}
