//! The WASI preview 1 calls on descriptors (files, directories, stdio, sockets, polls that wait
//! on them), recorded and replayed by their results.
//!
//! A recording puts a host function in place of each of wasmtime-wasi's (see [`record`]): it
//! calls the real one, then copies what it returned and what it wrote into the guest's memory
//! (a descriptor, a `filestat`, the bytes read, a directory listing, an errno) onto the tape. A
//! replay puts in place functions that write those results back at the guest's pointers and
//! return the recorded errno, without touching the host (see [`replay`]). So inode numbers,
//! times, `readdir` order and cookies, seek positions, errno values and symlink targets come
//! back bit for bit, on any machine, with no folder granted.
//!
//! wasmtime-wasi finds the guest's memory through its caller's `memory` export, and a host
//! function calling another one has no caller instance: the real functions are called through a
//! small module ([`shim`]) that imports the guest's memory, re-exports it, and forwards each
//! call. It is compiled once, as any module, and instantiated on the first call.
//!
//! Which calls are on the tape, and what a replay compares, is said by [`FUNCS`]: every
//! parameter that is not a pointer must be the recorded one (a replay that calls otherwise has
//! diverged); paths too; the bytes a guest writes are outputs, compared by `--verify`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use wasmtime::{
    Caller, Extern, Func, FuncType, Instance, Linker, Memory, Module, Result, Store, Val, ValType,
    bail, format_err,
};

use super::format::{PathBytes, SysResult};
use super::wasi::WASI;
use crate::runtime::Ctx;

/// The role of a parameter (or of a pair: a pointer and a length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// A descriptor (`i32`): compared, and names the file in reports.
    Fd,
    /// Any other `i32` that is not a pointer (flags, a whence, a count): compared.
    Int,
    /// An `i64` (offsets, sizes, rights, times, cookies): compared.
    Long,
    /// A path: a pointer and a length. Compared.
    Path,
    /// `ciovec` array (pointer, count): bytes the guest writes. Kept as output.
    Write,
    /// `iovec` array (pointer, count): buffers the call reads into, filled with as many bytes as
    /// the call's first 4-byte result says.
    Read,
    /// A buffer (pointer, length) the call fills with as many bytes as its first 4-byte result
    /// says, or whole when it has none.
    Buf,
    /// A pointer to a result of this many bytes.
    Out(u32),
    /// `poll_oneoff`'s subscriptions (pointer): read, not compared (they hold pointers).
    Subs,
    /// `poll_oneoff`'s events (pointer): as many as its 4-byte result says.
    Events,
}

impl Arg {
    /// How many wasm parameters the role takes.
    fn width(self) -> usize {
        match self {
            Arg::Path | Arg::Write | Arg::Read | Arg::Buf => 2,
            _ => 1,
        }
    }
}

/// A WASI function the tape answers.
#[derive(Debug)]
pub struct Spec {
    /// Its name in `wasi_snapshot_preview1`.
    pub name: &'static str,
    /// Its parameters.
    pub args: &'static [Arg],
}

use Arg::*;

/// The functions on descriptors, numbered by their place here on tapes: append only, never
/// reorder.
pub const FUNCS: &[Spec] = &[
    spec("fd_advise", &[Fd, Long, Long, Int]),
    spec("fd_allocate", &[Fd, Long, Long]),
    spec("fd_close", &[Fd]),
    spec("fd_datasync", &[Fd]),
    spec("fd_fdstat_get", &[Fd, Out(24)]),
    spec("fd_fdstat_set_flags", &[Fd, Int]),
    spec("fd_fdstat_set_rights", &[Fd, Long, Long]),
    spec("fd_filestat_get", &[Fd, Out(64)]),
    spec("fd_filestat_set_size", &[Fd, Long]),
    spec("fd_filestat_set_times", &[Fd, Long, Long, Int]),
    spec("fd_pread", &[Fd, Read, Long, Out(4)]),
    spec("fd_prestat_get", &[Fd, Out(8)]),
    spec("fd_prestat_dir_name", &[Fd, Buf]),
    spec("fd_pwrite", &[Fd, Write, Long, Out(4)]),
    spec("fd_read", &[Fd, Read, Out(4)]),
    spec("fd_readdir", &[Fd, Buf, Long, Out(4)]),
    spec("fd_renumber", &[Fd, Fd]),
    spec("fd_seek", &[Fd, Long, Int, Out(8)]),
    spec("fd_sync", &[Fd]),
    spec("fd_tell", &[Fd, Out(8)]),
    spec("fd_write", &[Fd, Write, Out(4)]),
    spec("path_create_directory", &[Fd, Path]),
    spec("path_filestat_get", &[Fd, Int, Path, Out(64)]),
    spec("path_filestat_set_times", &[Fd, Int, Path, Long, Long, Int]),
    spec("path_link", &[Fd, Int, Path, Fd, Path]),
    spec("path_open", &[Fd, Int, Path, Int, Long, Long, Int, Out(4)]),
    spec("path_readlink", &[Fd, Path, Buf, Out(4)]),
    spec("path_remove_directory", &[Fd, Path]),
    spec("path_rename", &[Fd, Path, Fd, Path]),
    spec("path_symlink", &[Path, Fd, Path]),
    spec("path_unlink_file", &[Fd, Path]),
    spec("poll_oneoff", &[Subs, Events, Int, Out(4)]),
    spec("sock_accept", &[Fd, Int, Out(4)]),
    spec("sock_recv", &[Fd, Read, Int, Out(4), Out(2)]),
    spec("sock_send", &[Fd, Write, Int, Out(4)]),
    spec("sock_shutdown", &[Fd, Int]),
];

const fn spec(name: &'static str, args: &'static [Arg]) -> Spec {
    Spec { name, args }
}

/// Index of a function in [`FUNCS`].
pub fn func_index(name: &str) -> Option<u16> {
    FUNCS.iter().position(|s| s.name == name).map(|i| i as u16)
}

fn idx(name: &str) -> u16 {
    func_index(name).expect("a function of FUNCS")
}

/// Size of a `subscription` and an `event` in WASI preview 1.
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
/// `errno::success`.
const SUCCESS: u16 = 0;

/// The module that calls wasmtime-wasi's functions on behalf of the guest: one forwarder per
/// function of [`FUNCS`], same name, same signature.
pub fn shim() -> String {
    let mut imports = String::new();
    let mut exports = String::new();
    for (i, spec) in FUNCS.iter().enumerate() {
        let params: Vec<&str> = spec
            .args
            .iter()
            .flat_map(|a| {
                let t = if *a == Long { "i64" } else { "i32" };
                std::iter::repeat_n(t, a.width())
            })
            .collect();
        let sig = format!("(param {}) (result i32)", params.join(" "));
        imports.push_str(&format!(
            "  (import \"{WASI}\" \"{}\" (func $f{i} {sig}))\n",
            spec.name
        ));
        let gets: String = (0..params.len())
            .map(|p| format!(" (local.get {p})"))
            .collect();
        exports.push_str(&format!(
            "  (func (export \"{}\") {sig} (call $f{i}{gets}))\n",
            spec.name
        ));
    }
    format!(
        "(module\n  (import \"guest\" \"memory\" (memory 0))\n{imports}  (export \"memory\" (memory \
         0))\n{exports})\n"
    )
}

fn func_type(engine: &wasmtime::Engine, spec: &Spec) -> FuncType {
    let params = spec.args.iter().flat_map(|a| {
        let t = if *a == Long {
            ValType::I64
        } else {
            ValType::I32
        };
        std::iter::repeat_n(t, a.width())
    });
    FuncType::new(engine, params, [ValType::I32])
}

fn guest_memory(caller: &mut Caller<'_, Ctx>) -> Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        // As wasmtime-wasi: WASI needs the guest's memory.
        _ => bail!("missing required memory export"),
    }
}

/// `ptr..ptr+len` if it lies inside a memory of `size` bytes.
fn range(ptr: u32, len: usize, size: usize) -> Option<std::ops::Range<usize>> {
    let start = ptr as usize;
    let end = start.checked_add(len)?;
    (end <= size).then_some(start..end)
}

/// The `(pointer, length)` pairs of an `iovec` or `ciovec` array, if it lies in memory.
fn iovecs(data: &[u8], ptr: u32, count: u32) -> Option<Vec<(u32, u32)>> {
    let r = range(ptr, (count as usize).checked_mul(8)?, data.len())?;
    Some(
        data[r]
            .chunks_exact(8)
            .map(|c| {
                let p = u32::from_le_bytes(c[0..4].try_into().expect("4 bytes"));
                let l = u32::from_le_bytes(c[4..8].try_into().expect("4 bytes"));
                (p, l)
            })
            .collect(),
    )
}

/// The first `max` bytes of the buffers of an iovec array (fewer if they hold fewer).
fn gather(data: &[u8], iovs: &[(u32, u32)], max: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(max.min(1 << 20));
    for &(p, l) in iovs {
        let want = (l as usize).min(max - out.len());
        match range(p, want, data.len()) {
            Some(r) => out.extend_from_slice(&data[r]),
            None => break,
        }
        if out.len() == max {
            break;
        }
    }
    out
}

/// Writes `bytes` across the buffers of an iovec array, in order; false if they do not hold
/// them or lie outside memory.
fn scatter(data: &mut [u8], iovs: &[(u32, u32)], mut bytes: &[u8]) -> bool {
    for &(p, l) in iovs {
        if bytes.is_empty() {
            break;
        }
        let n = (l as usize).min(bytes.len());
        let Some(r) = range(p, n, data.len()) else {
            return false;
        };
        data[r].copy_from_slice(&bytes[..n]);
        bytes = &bytes[n..];
    }
    bytes.is_empty()
}

/// What a call was given, as a tape compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// The parameters that are not pointers, in order.
    pub scalars: Vec<u64>,
    /// The paths, in order.
    pub paths: Vec<PathBytes>,
}

/// A parameter as a raw value (every parameter is an `i32` or an `i64`).
fn raw(v: &Val) -> u64 {
    match v {
        Val::I32(x) => *x as u32 as u64,
        Val::I64(x) => *x as u64,
        _ => 0,
    }
}

/// Walks a call's parameters by role: `(role, first raw value, second raw value)`.
fn walk<'a>(spec: &'a Spec, params: &'a [Val]) -> impl Iterator<Item = (Arg, u64, u64)> + 'a {
    let mut at = 0;
    spec.args.iter().map(move |&a| {
        let first = params.get(at).map(raw).unwrap_or(0);
        let second = if a.width() == 2 {
            params.get(at + 1).map(raw).unwrap_or(0)
        } else {
            0
        };
        at += a.width();
        (a, first, second)
    })
}

/// The inputs a tape compares. A path outside memory reads as empty (the call itself traps).
pub fn inputs(spec: &Spec, params: &[Val], data: &[u8]) -> Inputs {
    let mut scalars = Vec::with_capacity(spec.args.len());
    let mut paths = Vec::new();
    for (a, x, y) in walk(spec, params) {
        match a {
            Fd | Int | Long => scalars.push(x),
            Path => paths.push(PathBytes(
                range(x as u32, y as usize, data.len())
                    .map(|r| data[r].to_vec())
                    .unwrap_or_default(),
            )),
            _ => {}
        }
    }
    Inputs { scalars, paths }
}

/// What a successful call returned in the guest's memory, as a recording reads it.
pub struct Outputs {
    /// The fixed-size results, concatenated in parameter order.
    pub out: Vec<u8>,
    /// The bytes it read or listed into the guest's buffers (for [`Arg::Read`], [`Arg::Buf`],
    /// [`Arg::Events`]).
    pub filled: Option<Vec<u8>>,
    /// The bytes the guest wrote (for [`Arg::Write`]), as many as the call took.
    pub written: Option<Vec<u8>>,
}

/// Where a call's first 4-byte result (a count of bytes or events) lies among its fixed
/// results, which are concatenated in parameter order.
fn count_at(spec: &Spec) -> Option<usize> {
    let mut at = 0;
    for a in spec.args {
        match a {
            Out(4) => return Some(at),
            Out(n) => at += *n as usize,
            _ => {}
        }
    }
    None
}

/// How many bytes a call filled: its first 4-byte result (times the event size for polls), or
/// `whole` when it has none.
fn filled_len(spec: &Spec, out: &[u8], whole: u64, events: bool) -> usize {
    let first = count_at(spec).and_then(|at| {
        out.get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    });
    match first {
        Some(n) if events => (n as usize).saturating_mul(EVENT_SIZE),
        Some(n) => n as usize,
        None => whole as usize,
    }
}

/// Reads what a successful call returned (see [`Outputs`]). `keep_written` says whether the
/// bytes written are wanted (not for stdout and stderr, which the output streams keep).
pub fn outputs(spec: &Spec, params: &[Val], data: &[u8], keep_written: bool) -> Outputs {
    let mut out = Vec::new();
    for (a, x, _) in walk(spec, params) {
        if let Out(n) = a {
            match range(x as u32, n as usize, data.len()) {
                Some(r) => out.extend_from_slice(&data[r]),
                None => out.extend(std::iter::repeat_n(0, n as usize)),
            }
        }
    }
    let (mut filled, mut written) = (None, None);
    for (a, x, y) in walk(spec, params) {
        match a {
            Read => {
                let n = filled_len(spec, &out, 0, false);
                let iovs = iovecs(data, x as u32, y as u32).unwrap_or_default();
                filled = Some(gather(data, &iovs, n));
            }
            Buf => {
                let n = filled_len(spec, &out, y, false).min(y as usize);
                filled = Some(
                    range(x as u32, n, data.len())
                        .map(|r| data[r].to_vec())
                        .unwrap_or_default(),
                );
            }
            Events => {
                let n = filled_len(spec, &out, 0, true);
                filled = Some(
                    range(x as u32, n, data.len())
                        .map(|r| data[r].to_vec())
                        .unwrap_or_default(),
                );
            }
            Write if keep_written => {
                let n = filled_len(spec, &out, 0, false);
                let iovs = iovecs(data, x as u32, y as u32).unwrap_or_default();
                written = Some(gather(data, &iovs, n));
            }
            _ => {}
        }
    }
    Outputs {
        out,
        filled,
        written,
    }
}

/// The bytes a guest passes to a write call (for a replay, which does not run it), at most
/// `max`.
pub fn written(spec: &Spec, params: &[Val], data: &[u8], max: usize) -> Vec<u8> {
    for (a, x, y) in walk(spec, params) {
        if a == Write {
            let iovs = iovecs(data, x as u32, y as u32).unwrap_or_default();
            return gather(data, &iovs, max);
        }
    }
    Vec::new()
}

/// Why recorded results cannot be written back into a replaying guest's memory.
#[derive(Debug)]
pub struct DoesNotFit(pub String);

/// Writes a recorded call's results at this call's pointers: the fixed results, then `filled`
/// (what it read or listed). The buffers must hold what was recorded.
pub fn write_back(
    spec: &Spec,
    params: &[Val],
    data: &mut [u8],
    out: &[u8],
    filled: &[u8],
) -> Result<(), DoesNotFit> {
    let mut at = 0usize;
    for (a, x, y) in walk(spec, params) {
        match a {
            Out(n) => {
                let n = n as usize;
                let src = out
                    .get(at..at + n)
                    .ok_or_else(|| DoesNotFit("the tape holds fewer results".into()))?;
                let r = range(x as u32, n, data.len())
                    .ok_or_else(|| DoesNotFit("a result pointer lies outside memory".into()))?;
                data[r].copy_from_slice(src);
                at += n;
            }
            Read => {
                let iovs = iovecs(data, x as u32, y as u32)
                    .ok_or_else(|| DoesNotFit("the buffers lie outside memory".into()))?;
                if !scatter(data, &iovs, filled) {
                    return Err(DoesNotFit(format!(
                        "the buffers hold less than the {} bytes the recorded call read",
                        filled.len()
                    )));
                }
            }
            Buf | Events => {
                let cap = if a == Buf { y as usize } else { filled.len() };
                if filled.len() > cap {
                    return Err(DoesNotFit(format!(
                        "the buffer holds {cap} bytes, less than the {} the recorded call filled",
                        filled.len()
                    )));
                }
                let r = range(x as u32, filled.len(), data.len())
                    .ok_or_else(|| DoesNotFit("the buffer lies outside memory".into()))?;
                data[r].copy_from_slice(filled);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The 4-byte count among a call's fixed results (bytes written, read, listed), if it has one.
pub fn count(spec: &Spec, out: &[u8]) -> Option<u32> {
    count_at(spec).map(|_| filled_len(spec, out, 0, false) as u32)
}

/// Sets a call's 4-byte count among its fixed results (a replay that wrote less than recorded
/// says so).
pub fn set_count(spec: &Spec, out: &mut [u8], n: u32) {
    if let Some(b) = count_at(spec).and_then(|at| out.get_mut(at..at + 4)) {
        b.copy_from_slice(&n.to_le_bytes());
    }
}

/// Whether a `poll_oneoff` waits on clocks only (the realtime and monotonic ones): those are
/// not on the tape, since the clock readings around them are.
pub fn clock_only(data: &[u8], subs: u32, n: u32) -> bool {
    let Some(r) = (n as usize)
        .checked_mul(SUBSCRIPTION_SIZE)
        .and_then(|len| range(subs, len, data.len()))
    else {
        return false;
    };
    n > 0
        && data[r].chunks_exact(SUBSCRIPTION_SIZE).all(|sub| {
            let id = u32::from_le_bytes(sub[16..20].try_into().expect("4 bytes"));
            sub[8] == 0 && id <= 1
        })
}

/// What a descriptor is, as far as the calls on a tape tell: a replay knows the same, from the
/// same calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Open {
    /// Standard input.
    Stdin,
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A file or folder, by the guest's path.
    Named(String),
}

/// The descriptors of a run, followed through the calls on its tape: which are stdio, and
/// which file each names (for `--verify` diffs, reports and `inspect`).
#[derive(Debug, Clone)]
pub struct FdTable {
    fds: HashMap<u32, Open>,
}

impl Default for FdTable {
    fn default() -> Self {
        FdTable {
            fds: HashMap::from([(0, Open::Stdin), (1, Open::Stdout), (2, Open::Stderr)]),
        }
    }
}

impl FdTable {
    /// The descriptors a run starts with: stdio, then the granted folders `preopens` (by guest
    /// path) from 3 on, in order, as WASI numbers them.
    pub fn new(preopens: &[String]) -> FdTable {
        let mut t = FdTable::default();
        for (i, p) in preopens.iter().enumerate() {
            t.fds.insert(3 + i as u32, Open::Named(p.clone()));
        }
        t
    }

    /// What `fd` is.
    pub fn get(&self, fd: u32) -> Option<&Open> {
        self.fds.get(&fd)
    }

    /// `fd` as a report shows it: `fd 4 (/work/out.txt)`.
    pub fn describe(&self, fd: u32) -> String {
        match self.fds.get(&fd) {
            Some(Open::Stdin) => format!("fd {fd} (stdin)"),
            Some(Open::Stdout) => format!("fd {fd} (stdout)"),
            Some(Open::Stderr) => format!("fd {fd} (stderr)"),
            Some(Open::Named(p)) if !p.is_empty() => format!("fd {fd} ({p})"),
            _ => format!("fd {fd}"),
        }
    }

    /// The file `fd` names, or `fd N` when the tape does not say.
    pub fn file(&self, fd: u32) -> String {
        match self.fds.get(&fd) {
            Some(Open::Named(p)) if !p.is_empty() => p.clone(),
            _ => format!("fd {fd}"),
        }
    }

    /// The guest path of `path` opened relative to `dir`.
    pub fn join(&self, dir: u32, path: &[u8]) -> String {
        let path = String::from_utf8_lossy(path);
        match self.fds.get(&dir) {
            Some(Open::Named(base)) if !base.is_empty() && !path.starts_with('/') => {
                if base.ends_with('/') {
                    format!("{base}{path}")
                } else {
                    format!("{base}/{path}")
                }
            }
            _ => path.into_owned(),
        }
    }

    /// Follows one successful call.
    pub fn apply(&mut self, func: u16, inputs: &Inputs, out: &[u8], filled: Option<&[u8]>) {
        let fd = inputs.scalars.first().copied().unwrap_or(0) as u32;
        match FUNCS[func as usize].name {
            "fd_prestat_get" => {
                self.fds
                    .entry(fd)
                    .or_insert_with(|| Open::Named(String::new()));
            }
            "fd_prestat_dir_name" => {
                let name = filled.unwrap_or_default();
                // The name may be followed by a NUL in some guests' buffers: cut there.
                let name = name.split(|&b| b == 0).next().unwrap_or_default();
                self.fds
                    .insert(fd, Open::Named(String::from_utf8_lossy(name).into_owned()));
            }
            "path_open" => {
                if let (Some(new), Some(path)) = (out.get(0..4), inputs.paths.first()) {
                    let new = u32::from_le_bytes(new.try_into().expect("4 bytes"));
                    let name = self.join(fd, &path.0);
                    self.fds.insert(new, Open::Named(name));
                }
            }
            "fd_close" => {
                self.fds.remove(&fd);
            }
            "fd_renumber" => {
                let to = inputs.scalars.get(1).copied().unwrap_or(0) as u32;
                if let Some(open) = self.fds.remove(&fd) {
                    self.fds.insert(to, open);
                }
            }
            _ => {}
        }
    }
}

/// One call as a report shows it: `path_open(fd 3 (/work), "a.txt", 0, 1, …)`.
pub fn describe(func: u16, inputs: &Inputs, fds: &FdTable) -> String {
    let spec = &FUNCS[func as usize];
    let (mut s, mut p) = (0, 0);
    let mut parts = Vec::new();
    for a in spec.args {
        match a {
            Fd => {
                let fd = inputs.scalars.get(s).copied().unwrap_or(0) as u32;
                parts.push(fds.describe(fd));
                s += 1;
            }
            Int | Long => {
                parts.push(inputs.scalars.get(s).copied().unwrap_or(0).to_string());
                s += 1;
            }
            Path => {
                let path = inputs
                    .paths
                    .get(p)
                    .map(|b| b.0.as_slice())
                    .unwrap_or_default();
                parts.push(format!("{:?}", String::from_utf8_lossy(path)));
                p += 1;
            }
            _ => {}
        }
    }
    format!("{}({})", spec.name, parts.join(", "))
}

/// What a call returned, in a word: `ok`, `errno 44 (noent)`, `trap`.
pub fn result_text(result: &SysResult) -> String {
    match result {
        SysResult::Errno(SUCCESS) => "ok".into(),
        SysResult::Errno(e) => format!("errno {e} ({})", errno_name(*e)),
        SysResult::Trap(_) => "trap".into(),
    }
}

/// The name WASI gives an errno.
pub fn errno_name(e: u16) -> &'static str {
    const NAMES: &[&str] = &[
        "success",
        "2big",
        "acces",
        "addrinuse",
        "addrnotavail",
        "afnosupport",
        "again",
        "already",
        "badf",
        "badmsg",
        "busy",
        "canceled",
        "child",
        "connaborted",
        "connrefused",
        "connreset",
        "deadlk",
        "destaddrreq",
        "dom",
        "dquot",
        "exist",
        "fault",
        "fbig",
        "hostunreach",
        "idrm",
        "ilseq",
        "inprogress",
        "intr",
        "inval",
        "io",
        "isconn",
        "isdir",
        "loop",
        "mfile",
        "mlink",
        "msgsize",
        "multihop",
        "nametoolong",
        "netdown",
        "netreset",
        "netunreach",
        "nfile",
        "nobufs",
        "nodev",
        "noent",
        "noexec",
        "nolck",
        "nolink",
        "nomem",
        "nomsg",
        "noprotoopt",
        "nospc",
        "nosys",
        "notconn",
        "notdir",
        "notempty",
        "notrecoverable",
        "notsock",
        "notsup",
        "notty",
        "nxio",
        "overflow",
        "ownerdead",
        "perm",
        "pipe",
        "proto",
        "protonosupport",
        "prototype",
        "range",
        "rofs",
        "spipe",
        "srch",
        "stale",
        "timedout",
        "txtbsy",
        "xdev",
        "notcapable",
    ];
    NAMES.get(e as usize).copied().unwrap_or("unknown")
}

/// The real functions, called through the shim, made on the first call (with the guest's
/// memory, which the shim imports).
struct Forwarders {
    made: OnceLock<(Memory, Vec<Func>)>,
    shim: Module,
    originals: Vec<Func>,
}

impl Forwarders {
    /// The guest's memory and the forwarder of function `i`.
    fn get(&self, caller: &mut Caller<'_, Ctx>, i: u16) -> Result<(Memory, Func)> {
        if let Some((memory, funcs)) = self.made.get() {
            return Ok((*memory, funcs[i as usize]));
        }
        let memory = guest_memory(caller)?;
        let mut imports = vec![Extern::Memory(memory)];
        imports.extend(self.originals.iter().map(|f| Extern::Func(*f)));
        let instance = Instance::new(&mut *caller, &self.shim, &imports)?;
        let funcs = FUNCS
            .iter()
            .map(|s| {
                instance
                    .get_func(&mut *caller, s.name)
                    .ok_or_else(|| format_err!("the WASI shim has no `{}`", s.name))
            })
            .collect::<Result<Vec<_>>>()?;
        let (memory, funcs) = self.made.get_or_init(|| (memory, funcs));
        Ok((*memory, funcs[i as usize]))
    }
}

/// What a recording does with each call on a descriptor: `record(func, params, memory, result)`
/// is called after the real call, with its result (`Err` with the message of a trap).
pub trait Recording: Send + Sync + 'static {
    /// The real call, given `inputs` (read before it ran), returned `result`; `data` is the
    /// guest's memory after it.
    /// An error stops the guest (the recording passed a limit).
    fn record(
        &self,
        func: u16,
        inputs: Inputs,
        params: &[Val],
        data: &[u8],
        result: SysResult,
    ) -> Result<()>;
}

/// Puts the recording functions in place: each calls wasmtime-wasi's (through `shim`, the
/// compiled [`shim`] module) and hands what it returned to `rec`. Polls on clocks only are
/// left to wasmtime-wasi and not recorded.
pub fn record(
    linker: &mut Linker<Ctx>,
    store: &mut Store<Ctx>,
    shim: Module,
    rec: Arc<dyn Recording>,
) -> Result<()> {
    let originals = FUNCS
        .iter()
        .map(|s| {
            linker
                .get(&mut *store, WASI, s.name)
                .ok()
                .and_then(Extern::into_func)
                .ok_or_else(|| format_err!("wasmtime-wasi provides no `{}`", s.name))
        })
        .collect::<Result<Vec<_>>>()?;
    let forwarders = Arc::new(Forwarders {
        made: OnceLock::new(),
        shim,
        originals,
    });
    let poll = idx("poll_oneoff");
    linker.allow_shadowing(true);
    for (i, spec) in FUNCS.iter().enumerate() {
        let i = i as u16;
        let fwd = forwarders.clone();
        let rec = rec.clone();
        let ty = func_type(store.engine(), spec);
        linker.func_new(
            WASI,
            spec.name,
            ty,
            move |mut caller: Caller<'_, Ctx>, params: &[Val], results: &mut [Val]| {
                let (mem, real) = fwd.get(&mut caller, i)?;
                if i == poll
                    && clock_only(
                        mem.data(&caller),
                        raw(&params[0]) as u32,
                        raw(&params[2]) as u32,
                    )
                {
                    return real.call(&mut caller, params, results);
                }
                let inputs = inputs(&FUNCS[i as usize], params, mem.data(&caller));
                match real.call(&mut caller, params, results) {
                    Ok(()) => {
                        let errno = results[0].i32().unwrap_or(0) as u16;
                        let result = SysResult::Errno(errno);
                        rec.record(i, inputs, params, mem.data(&caller), result)
                    }
                    Err(e) => {
                        // A limit (fuel, a deadline, the memory budget, the tape's size) stops
                        // the guest inside the call: that is not the call's result, and no tape
                        // is written.
                        if e.downcast_ref::<wasmtime::Trap>().is_some()
                            || e.downcast_ref::<crate::host::OverBudget>().is_some()
                            || e.downcast_ref::<super::record::TapeFull>().is_some()
                        {
                            return Err(e);
                        }
                        // A trap of WASI's own (a pointer outside memory): recorded by its
                        // cause, and raised again from here, so that the guest's backtrace is
                        // the one a run shows, without the shim's frame.
                        let cause = e.root_cause().to_string();
                        let result = SysResult::Trap(cause.clone());
                        rec.record(i, inputs, params, mem.data(&caller), result)?;
                        Err(format_err!("{cause}"))
                    }
                }
            },
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// What a replay does with each call on a descriptor.
pub trait Replaying: Send + Sync + 'static {
    /// Answers call `func` (its parameters `params`, the guest's memory `data`): writes the
    /// recorded results into `data` and returns the recorded errno, or an error that stops the
    /// guest (a divergence, a recorded trap).
    fn replay(&self, func: u16, params: &[Val], data: &mut [u8]) -> Result<i32>;
    /// Answers a poll on clocks only, at once (see `wasi::instant_sleep`); false if it is not
    /// one.
    fn instant_poll(&self, caller: &mut Caller<'_, Ctx>, params: &[Val]) -> Result<bool>;
}

/// Puts the replaying functions in place: none reaches wasmtime-wasi or the host.
pub fn replay(
    linker: &mut Linker<Ctx>,
    engine: &wasmtime::Engine,
    rep: Arc<dyn Replaying>,
) -> Result<()> {
    let poll = idx("poll_oneoff");
    linker.allow_shadowing(true);
    for (i, spec) in FUNCS.iter().enumerate() {
        let i = i as u16;
        let rep = rep.clone();
        linker.func_new(
            WASI,
            spec.name,
            func_type(engine, spec),
            move |mut caller: Caller<'_, Ctx>, params: &[Val], results: &mut [Val]| {
                if i == poll && rep.instant_poll(&mut caller, params)? {
                    results[0] = Val::I32(0);
                    return Ok(());
                }
                let mem = guest_memory(&mut caller)?;
                let errno = rep.replay(i, params, mem.data_mut(&mut caller))?;
                results[0] = Val::I32(errno);
                Ok(())
            },
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// Whether `func` is one of the two read calls, whose bytes may come from a file by hash.
pub fn is_read(func: u16) -> bool {
    matches!(FUNCS[func as usize].name, "fd_read" | "fd_pread")
}

/// The offset a `fd_pread` reads at.
pub fn pread_offset(func: u16, inputs: &Inputs) -> Option<u64> {
    (FUNCS[func as usize].name == "fd_pread").then(|| inputs.scalars.get(1).copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_has_a_forwarder_of_its_signature() {
        let engine = wasmtime::Engine::default();
        let module = Module::new(&engine, shim()).expect("the shim compiles");
        for spec in FUNCS {
            let ty = module
                .exports()
                .find(|e| e.name() == spec.name)
                .and_then(|e| e.ty().func().cloned())
                .unwrap_or_else(|| panic!("no forwarder for {}", spec.name));
            assert!(
                FuncType::eq(&ty, &func_type(&engine, spec)),
                "{}",
                spec.name
            );
        }
    }

    #[test]
    fn iovecs_gather_and_scatter_in_order() {
        let mut mem = vec![0u8; 64];
        // Two iovecs at 0: (32, 3) and (40, 5).
        mem[0..4].copy_from_slice(&32u32.to_le_bytes());
        mem[4..8].copy_from_slice(&3u32.to_le_bytes());
        mem[8..12].copy_from_slice(&40u32.to_le_bytes());
        mem[12..16].copy_from_slice(&5u32.to_le_bytes());
        let iovs = iovecs(&mem, 0, 2).unwrap();
        assert!(scatter(&mut mem, &iovs, b"abcdefg"));
        assert_eq!(&mem[32..35], b"abc");
        assert_eq!(&mem[40..44], b"defg");
        assert_eq!(gather(&mem, &iovs, 6), b"abcdef");
        assert!(!scatter(&mut mem, &iovs, b"more than eight"));
        assert!(iovecs(&mem, 60, 2).is_none());
    }

    #[test]
    fn descriptors_follow_opens_renumbers_and_closes() {
        let mut t = FdTable::default();
        let i = |scalars: Vec<u64>, paths: &[&str]| Inputs {
            scalars,
            paths: paths
                .iter()
                .map(|p| PathBytes(p.as_bytes().to_vec()))
                .collect(),
        };
        t.apply(idx("fd_prestat_get"), &i(vec![3], &[]), &[0; 8], None);
        t.apply(
            idx("fd_prestat_dir_name"),
            &i(vec![3], &[]),
            &[],
            Some(b"/work"),
        );
        t.apply(
            idx("path_open"),
            &i(vec![3, 0, 0, 0, 0, 0], &["a.txt"]),
            &5u32.to_le_bytes(),
            None,
        );
        assert_eq!(t.file(5), "/work/a.txt");
        t.apply(idx("fd_renumber"), &i(vec![5, 1], &[]), &[], None);
        assert_eq!(t.get(1), Some(&Open::Named("/work/a.txt".into())));
        assert_eq!(t.get(5), None);
        t.apply(idx("fd_close"), &i(vec![1], &[]), &[], None);
        assert_eq!(t.describe(1), "fd 1");
        assert_eq!(t.describe(2), "fd 2 (stderr)");
    }
}
