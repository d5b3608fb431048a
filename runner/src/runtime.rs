//! Running a module, for every command that runs one (`run`, `record`, `replay`): load (or
//! reuse) its compilation, link WASI and the devstash imports, call `_start`, and turn the
//! outcome into an exit code and a summary line.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use devstash_protocol::{IMPORT_MODULE, import};
use wasmtime::{Engine, Linker, Module, Store, Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p1::WasiP1Ctx;

use std::sync::Arc;

use crate::engine;
use crate::exit;
use crate::host::{self, Budget, HasStash, OverBudget, StashHost, Stats};
use crate::output::{human_duration, say};

/// Limits on what a guest may consume (`--timeout`, `--max-memory`, `--fuel`).
/// What kind of program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A WASI command module: `_start`.
    Command,
    /// The CPython WASI runtime running a script: a reactor (`_initialize`, then `run`) that
    /// also imports `host::call`.
    Python,
}

#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Stop the guest after this long, even inside a sleep.
    pub timeout: Option<Duration>,
    /// Largest memory the guest may use, in bytes.
    pub max_memory: Option<u64>,
    /// Fuel the guest may burn (about one unit per wasm instruction).
    pub fuel: Option<u64>,
}

/// The store data of a run: the WASI context and the devstash state.
pub struct Ctx {
    /// WASI preview 1.
    pub wasi: WasiP1Ctx,
    /// The devstash imports' state.
    pub stash: StashHost,
    /// `--max-memory`, and the table cap.
    memory: MemoryCap,
}

/// Refuses memory and table growth past `--max-memory` (counting what the host holds for the
/// guest, see [`Budget`]) with an error that names the flag, and tables past
/// [`MAX_TABLE_ELEMENTS`] without it.
struct MemoryCap {
    budget: Arc<Budget>,
}

/// Most elements a guest's tables may grow to without `--max-memory`: far more than any
/// program's function table, far less than the host's memory.
pub const MAX_TABLE_ELEMENTS: usize = 10_000_000;

/// Host bytes one table element takes (a function reference).
const TABLE_ELEMENT_BYTES: u64 = 16;

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.budget
            .grow_guest(desired as u64)
            .map_err(wasmtime::Error::new)?;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.budget.limit().is_none() && desired > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::Error::msg(format!(
                "the guest tried to grow a table to {desired} elements, more than the {MAX_TABLE_ELEMENTS} \
                 devstash allows; set --max-memory to choose the limit yourself"
            )));
        }
        let more = (desired.saturating_sub(current) as u64).saturating_mul(TABLE_ELEMENT_BYTES);
        self.budget
            .charge("its tables", more)
            .map_err(wasmtime::Error::new)?;
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
    /// What the module is, which decides its imports and how it starts.
    pub kind: Kind,
    /// The engine it was compiled for.
    pub engine: Engine,
    /// The compiled module.
    pub module: Module,
    /// XXH3-128 of the module file's bytes (names its compilation, identifies it on a tape).
    pub hash: u128,
    /// What the guest may consume.
    pub limits: Limits,
}

/// Reads, checks and compiles (or loads the compilation of) the module at `path`; compilations
/// are kept in `compiled` (see [`engine::load`]) when one is given.
pub fn prepare(
    path: &Path,
    kind: Kind,
    limits: &Limits,
    compiled: Option<&engine::ModuleCache>,
) -> Result<Prepared> {
    // The Python runtime is 99 MB, hashed in more time than the rest of its load takes: its
    // hash is remembered, so that a warm run does not read it.
    let file = match compiled {
        Some(cache) if kind == Kind::Python => cache.read_module_remembered(path)?,
        _ => engine::read_module(path)?,
    };
    let engine = engine::engine(limits.timeout.is_some(), limits.fuel.is_some())?;
    if kind == Kind::Python && compiled.is_some_and(|c| !c.has(&engine, file.hash)) {
        say(
            "devstash: compiling the Python runtime once (about a minute); later runs load it \
             in milliseconds",
        );
    }
    let started = std::time::Instant::now();
    let module = engine::load(&engine, &file, compiled)?;
    tracing::info!(
        "{}: ready to run in {} (XXH3-128 {:032x})",
        path.display(),
        human_duration(started.elapsed()),
        file.hash
    );
    check_imports(&module, &path.display().to_string(), kind)?;
    Ok(Prepared {
        kind,
        engine,
        module,
        hash: file.hash,
        limits: limits.clone(),
    })
}

/// Refuses imports devstash does not provide, with a line that says what to do.
pub fn check_imports(module: &Module, shown: &str, kind: Kind) -> Result<()> {
    for imp in module.imports() {
        match imp.module() {
            "wasi_snapshot_preview1" => {}
            m if kind == Kind::Python
                && m == host::bridge::MODULE
                && imp.name() == host::bridge::NAME => {}
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
    // WASI's calls run on a Tokio runtime. Without one at hand, wasmtime-wasi starts its own
    // on the first call, with a worker thread per core, counted by reading the cgroup files:
    // a guest that prints one line paid about 0.2 ms for it. The calls run on this thread
    // either way; the one worker only drives the timers and I/O they wait on.
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("devstash-wasi")
        .enable_time()
        .enable_io()
        .build()
        .context("cannot start the runtime of WASI's calls")?;
    let outcome = {
        let _ambient = tokio.enter();
        run_module(prepared, wasi, stash, adjust)
    };
    // Nothing is left on it to wait for: the guest has ended.
    tokio.shutdown_background();
    outcome
}

fn run_module(
    prepared: &Prepared,
    wasi: WasiP1Ctx,
    stash: StashHost,
    adjust: impl FnOnce(&mut Linker<Ctx>, &mut Store<Ctx>) -> wasmtime::Result<()>,
) -> Result<Outcome> {
    let mut linker: Linker<Ctx> = Linker::new(&prepared.engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |c: &mut Ctx| &mut c.wasi)?;
    host::add_to_linker(&mut linker)?;
    if prepared.kind == Kind::Python {
        host::bridge::add_to_linker(&mut linker)?;
    }
    let limits = &prepared.limits;
    let memory = MemoryCap {
        budget: stash.budget().clone(),
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
    let exit = match prepared.kind {
        Kind::Command => {
            let start = instance
                .get_typed_func::<(), ()>(&mut store, "_start")
                .map_err(anyhow::Error::from)
                .context(
                    "the module has no `_start` function: build a binary (with `fn main`), not a \
                     library",
                )?;
            match start.call(&mut store, ()) {
                Ok(()) => Exit::Code(0),
                Err(e) => ending(e, limits),
            }
        }
        Kind::Python => {
            // A reactor: initialised, then `run` runs argv as `python` would and returns the
            // exit code.
            let init = instance
                .get_typed_func::<(), ()>(&mut store, "_initialize")
                .map_err(anyhow::Error::from)
                .context("the Python runtime exports no `_initialize`")?;
            let run = instance
                .get_typed_func::<(), i32>(&mut store, "run")
                .map_err(anyhow::Error::from)
                .context("the Python runtime exports no `run`")?;
            match init
                .call(&mut store, ())
                .and_then(|()| run.call(&mut store, ()))
            {
                Ok(code) => Exit::Code(code),
                Err(e) => ending(e, limits),
            }
        }
    };
    Ok(Outcome {
        exit,
        stats: store.data_mut().stash.finish(),
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
                say(&timeout_message(timeout));
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
fn ending(e: wasmtime::Error, limits: &Limits) -> Exit {
    if let Some(code) = e.downcast_ref::<I32Exit>() {
        return Exit::Code(code.0);
    }
    if let Some(hit) = e.downcast_ref::<OverBudget>() {
        return Exit::Limit(format!("error: {hit}; it was stopped"));
    }
    if let Some(full) = e.downcast_ref::<crate::tape::record::TapeFull>() {
        return Exit::Limit(format!("error: {full}; it was stopped"));
    }
    match (e.downcast_ref::<Trap>(), limits) {
        (
            Some(Trap::Interrupt),
            Limits {
                timeout: Some(t), ..
            },
        ) => {
            return Exit::Limit(timeout_message(*t));
        }
        (Some(Trap::OutOfFuel), Limits { fuel: Some(f), .. }) => {
            return Exit::Limit(format!(
                "error: the guest used up its fuel (--fuel {f}); it was stopped"
            ));
        }
        _ => {}
    }
    let bt = e
        .downcast_ref::<WasmBacktrace>()
        .filter(|bt| !bt.frames().is_empty());
    // A Rust panic: the guest printed its message above, and the trap is the abort after it;
    // its own frame is what the user wants, the 18 frames of std's panic machinery are noise.
    if let Some(bt) = bt
        && let Some(frame) = panic_frame(bt)
    {
        tracing::info!("guest backtrace:\n{bt}");
        return Exit::Trap(format!(
            "error: the guest panicked (its message is above), in {frame}\nnote: `devstash \
             run -v …` shows the guest's whole backtrace"
        ));
    }
    let what = match e.downcast_ref::<Trap>() {
        Some(trap) => format!("the guest trapped: {trap}"),
        None => format!("the guest was stopped: {}", e.root_cause()),
    };
    let mut msg = format!("error: {what}");
    if let Some(bt) = bt {
        msg.push_str(&format!("\nguest backtrace:\n{bt}"));
    }
    Exit::Trap(msg)
}

/// Prints a trap's message and, unless `quiet`, the summary line.
/// The first frame of the program's own code under a Rust panic in `bt`, as `function (file:
/// line)` when the module has line tables; `None` when `bt` is not a panic's.
fn panic_frame(bt: &WasmBacktrace) -> Option<String> {
    let names: Vec<String> = bt
        .frames()
        .iter()
        .map(|f| f.func_name().map(strip_hash).unwrap_or_default())
        .collect();
    let last_panic = names.iter().rposition(|n| {
        n.contains("rust_panic")
            || n.contains("panicking::")
            || n.contains("rust_begin_unwind")
            || n.contains("unwrap_failed")
            || n.contains("expect_failed")
    })?;
    let library = |n: &str| {
        let n = n.trim_start_matches('<');
        [
            "std",
            "core",
            "alloc",
            "__rustc",
            "devstash::",
            "devstash[",
            "panic_",
        ]
        .iter()
        .any(|p| n.starts_with(p))
            || n.is_empty()
    };
    let (i, name) = names
        .iter()
        .enumerate()
        .skip(last_panic + 1)
        .find(|(_, n)| !library(n))?;
    let place = bt.frames()[i].symbols().iter().find_map(|s| {
        Some(format!(
            " ({}:{})",
            s.file()?,
            s.line().map(|l| l.to_string()).unwrap_or_default()
        ))
    });
    Some(format!("{name}{}", place.unwrap_or_default()))
}

/// A symbol demangled, without its hash and crate disambiguators.
fn strip_hash(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

pub fn finish(outcome: &Outcome, quiet: bool, no_cache: bool) {
    if let Exit::Trap(msg) | Exit::Limit(msg) = &outcome.exit {
        say(msg);
    }
    let s = &outcome.stats;
    if !quiet && (s.hits + s.misses + s.refused + s.offline_misses) > 0 {
        say(&summary(s, no_cache));
    }
    if let Some(p) = &s.refresh_unmatched {
        say(&format!(
            "devstash: warning: --refresh={} matched no marked call of this run, so nothing was \
             recomputed (it matches a site, such as `app::fetch`, or an entry file name; \
             `devstash list` shows both)",
            crate::output::escape(p)
        ));
    }
}

/// The one summary line: `devstash: 1 hit, 0 misses, 0 stored; saved 2.00s`.
pub fn summary(s: &Stats, no_cache: bool) -> String {
    let count = crate::output::count;
    if no_cache {
        return format!(
            "devstash: caching off; {} ran",
            count(s.misses, "marked call", "marked calls")
        );
    }
    let mut line = format!(
        "devstash: {}, {}, {} stored",
        count(s.hits, "hit", "hits"),
        count(s.misses, "miss", "misses"),
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
    if s.refused > 0 {
        line.push_str(&format!(
            "; {} refused (not in --allow-net)",
            count(s.refused, "request", "requests")
        ));
    }
    if s.offline_misses > 0 {
        line.push_str(&format!(
            "; {} with nothing stored (--offline)",
            count(s.offline_misses, "request", "requests")
        ));
    }
    if let Some(r) = &s.remote {
        line.push_str(&format!(
            "; remote: {}, {}, {}, {}{}",
            count(r.hits, "hit", "hits"),
            count(r.misses, "miss", "misses"),
            count(r.uploads, "upload", "uploads"),
            count(r.errors, "error", "errors"),
            if r.off { " (turned off)" } else { "" }
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest that waits on a clock through `poll_oneoff` (as `std::thread::sleep` does) is
    /// woken: the runtime WASI's calls run on must drive its timers.
    #[test]
    fn a_guest_waiting_on_a_clock_wakes_up() {
        let tmp = tempfile::tempdir().unwrap();
        // One relative clock subscription of 20 ms at address 0; the event goes to 104.
        let wat = r#"(module
            (import "wasi_snapshot_preview1" "poll_oneoff"
                (func $poll (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (func (export "_start")
                (i32.store8 (i32.const 8) (i32.const 0))
                (i32.store (i32.const 16) (i32.const 1))
                (i64.store (i32.const 24) (i64.const 20000000))
                (if (call $poll (i32.const 0) (i32.const 104) (i32.const 1) (i32.const 200))
                    (then unreachable))
                (if (i32.ne (i32.load (i32.const 200)) (i32.const 1)) (then unreachable))))"#;
        let path = tmp.path().join("sleep.wat");
        std::fs::write(&path, wat).unwrap();
        let (done, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let prepared = prepare(&path, Kind::Command, &Limits::default(), None).unwrap();
            let signer = crate::store::sign::Signer::new([7; 32], "test");
            let tier = crate::store::disk::DiskTier::new(tmp.path().join("cache"), signer);
            let stash = StashHost::new(Box::new(tier), host::Policy::default());
            let wasi = wasmtime_wasi::WasiCtxBuilder::new().build_p1();
            let _ = done.send(execute(&prepared, wasi, stash).map(|o| o.exit));
        });
        // A timer nothing drives never fires: the guest would wait forever.
        let exit = wait
            .recv_timeout(Duration::from_secs(60))
            .expect("the guest was never woken")
            .unwrap();
        assert!(matches!(exit, Exit::Code(0)), "{exit:?}");
    }

    #[test]
    fn symbols_lose_their_hashes_and_disambiguators() {
        assert_eq!(strip_hash("_ZN3pan4main17hf20a8c113fd83e86E"), "pan::main");
        assert_eq!(strip_hash("__main_void"), "__main_void");
    }

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
        let s = Stats {
            remote: Some(crate::store::remote::RemoteStats {
                hits: 1,
                misses: 1,
                uploads: 2,
                errors: 0,
                off: false,
            }),
            ..s
        };
        assert_eq!(
            summary(&s, false),
            "devstash: 1 hit, 2 misses, 2 stored; saved 2.00s; remote: 1 hit, 1 miss, 2 \
             uploads, 0 errors"
        );
    }
}
