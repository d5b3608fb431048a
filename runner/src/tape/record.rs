//! Recording: everything the guest takes from outside is appended to a tape as it happens.
//!
//! One [`Recorder`] per run, shared (behind a mutex) by the pieces that see the guest's inputs:
//! the clocks, `random_get`, stdin, stdout/stderr and the marked-call hook. While a marked call
//! runs (a miss), what it reads and writes belongs to that call: its clock and random reads are
//! left out of the replay's streams (a replay answers the call without running it, so it would
//! never ask for them) and its output is kept with the call, to be written again when a replay
//! answers it. HTTP exchanges are recorded with the depth they were made at, for the same
//! reason.
//!
//! What the recorder holds counts against `--max-memory` with the guest's own memory (see
//! `host::Budget`), and a tape never grows past [`MAX_TAPE`]: past either, the guest is stopped
//! and no tape is written.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime_wasi::Rng as _;
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock, MonotonicClock, WallClock};

use super::format::{
    CallOutcome, CallRecord, Event, HttpRecord, InnerReads, Invocation, OutputChunk, RefFile,
    SiteRecord, Stream, SysData, SysRecord, SysResult, ValueRecord, WallReading,
};
use super::stdio::{Capture, lock};
use super::syscall::{self, FUNCS, FdTable, Inputs, Open};
use crate::host::{Budget, Call, CallHook, Exchange, OverBudget};

/// Largest tape a recording makes, in bytes (without `--max-memory`; with it, the tape being
/// recorded counts against it).
pub const MAX_TAPE: u64 = 1 << 30;

/// Most argument bytes a tape keeps of a call (for divergence reports; calls are matched by
/// key, so whole arguments are never needed).
pub const MAX_TAPE_ARGS: usize = 256;

/// The error that stops a guest whose recording passed [`MAX_TAPE`].
#[derive(Debug)]
pub struct TapeFull;

impl std::fmt::Display for TapeFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the recording passed {}, the most a tape holds; record a shorter run",
            crate::output::human_size(MAX_TAPE)
        )
    }
}

impl std::error::Error for TapeFull {}

/// Why a recording stopped growing: the error the guest is stopped with, kept as it is so that
/// every later call stops it the same way (exit 124, the limit named).
#[derive(Debug, Clone)]
pub enum Stop {
    /// It passed [`MAX_TAPE`].
    Full,
    /// It passed `--max-memory`.
    Memory(OverBudget),
}

impl Stop {
    fn error(&self) -> wasmtime::Error {
        match self {
            Stop::Full => wasmtime::Error::new(TapeFull),
            Stop::Memory(e) => wasmtime::Error::new(e.clone()),
        }
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Full => TapeFull.fmt(f),
            Stop::Memory(e) => e.fmt(f),
        }
    }
}

/// A marked call that is running (it missed), with what it has read and written so far.
struct Frame {
    ticket: u64,
    site: u32,
    key: [u8; 32],
    args: Vec<u8>,
    started: Instant,
    output: Vec<OutputChunk>,
    inner: InnerReads,
}

/// Counts for the closing line.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecordCounts {
    /// Marked calls recorded.
    pub calls: u64,
    /// Clock readings recorded.
    pub clock: u64,
    /// Random bytes recorded.
    pub random_bytes: u64,
    /// Stdin bytes recorded.
    pub stdin_bytes: u64,
    /// HTTP exchanges recorded.
    pub http: u64,
    /// Secret hashes recorded.
    pub secrets: u64,
    /// WASI calls on descriptors recorded.
    pub sys: u64,
    /// Bytes those calls read or wrote.
    pub file_bytes: u64,
    /// Of which on the tape (each chunk once).
    pub chunk_bytes: u64,
}

/// Chunks of file contents: pieces up to [`CHUNK_MIN`] stay whole; larger ones are cut at
/// content-defined boundaries, so that the same bytes read in other pieces mostly meet the
/// same chunks.
const CHUNK_MIN: usize = 16 << 10;
const CHUNK_AVG: usize = 64 << 10;
const CHUNK_MAX: usize = 256 << 10;

/// Folders whose files a recording keeps off the tape, by hash (`--by-hash`).
#[derive(Debug, Clone, Default)]
pub struct ByHash {
    /// `(guest folder, host folder)` of each.
    pub dirs: Vec<(String, PathBuf)>,
    /// Files registered so far, by guest path: their id.
    files: HashMap<String, Option<u32>>,
    /// Descriptors open on such files: the file's id and the read position.
    fds: HashMap<u32, (u32, u64)>,
}

impl ByHash {
    /// The folders `dirs` (guest path, host path).
    pub fn new(dirs: Vec<(String, PathBuf)>) -> ByHash {
        ByHash {
            dirs,
            ..ByHash::default()
        }
    }
}

/// The tape being recorded.
pub struct Recorder {
    body: Vec<u8>,
    scratch: Vec<u8>,
    events: u64,
    /// Output not yet written as an event: consecutive writes to one stream become one event.
    pending_output: Option<OutputChunk>,
    sites: HashMap<(String, String), u32>,
    values: HashMap<blake3::Hash, u32>,
    chunks: HashMap<blake3::Hash, u32>,
    fds: FdTable,
    by_hash: ByHash,
    frames: Vec<Frame>,
    rng: Box<dyn wasmtime_wasi::Rng + Send>,
    budget: Arc<Budget>,
    /// Bytes charged to the budget so far.
    charged: u64,
    /// Why the recording stopped growing, once it has.
    pub full: Option<Stop>,
    /// What was recorded, for the closing line.
    pub counts: RecordCounts,
}

impl Recorder {
    /// A recorder whose tape starts with `invocation`; what it holds is counted in `budget`.
    pub fn new(invocation: Invocation, budget: Arc<Budget>) -> Recorder {
        let fds = FdTable::new(&invocation.preopens);
        let mut r = Recorder {
            body: Vec::with_capacity(4096),
            scratch: Vec::with_capacity(64),
            events: 0,
            pending_output: None,
            sites: HashMap::new(),
            values: HashMap::new(),
            chunks: HashMap::new(),
            fds,
            by_hash: ByHash::default(),
            frames: Vec::new(),
            rng: wasmtime_wasi::thread_rng(),
            budget,
            charged: 0,
            full: None,
            counts: RecordCounts::default(),
        };
        r.push(Event::Invocation(Box::new(invocation)));
        r
    }

    /// Keeps the files under these folders off the tape (see [`ByHash`]).
    pub fn with_by_hash(mut self, by_hash: ByHash) -> Recorder {
        self.by_hash = by_hash;
        self
    }

    /// Counts `n` more bytes held by the recording; an error (kept in [`Recorder::full`]) once
    /// it would pass [`MAX_TAPE`] or the memory budget. Nothing is recorded past that point.
    fn charge(&mut self, n: u64) -> wasmtime::Result<()> {
        self.check()?;
        let stop = if self.charged.saturating_add(n) > MAX_TAPE {
            Stop::Full
        } else {
            match self.budget.charge("the tape being recorded", n) {
                Ok(()) => {
                    self.charged += n;
                    return Ok(());
                }
                Err(e) => Stop::Memory(e),
            }
        };
        let e = stop.error();
        self.full = Some(stop);
        Err(e)
    }

    /// Whether `n` more bytes could be held (without taking them).
    fn fits(&self, n: u64) -> bool {
        self.full.is_none()
            && self.charged.saturating_add(n) <= MAX_TAPE
            && self.budget.left().is_none_or(|left| n <= left)
    }

    /// Whether the recording has stopped growing (see [`Recorder::charge`]).
    fn stopped(&self) -> bool {
        self.full.is_some()
    }

    /// An error once the recording has stopped growing: the guest is stopped.
    pub fn check(&self) -> wasmtime::Result<()> {
        match &self.full {
            Some(stop) => Err(stop.error()),
            None => Ok(()),
        }
    }

    fn push(&mut self, event: Event) {
        if self.stopped() {
            return;
        }
        self.flush_output();
        self.events += 1;
        let before = self.body.len();
        event.encode_into(&mut self.body, &mut self.scratch);
        let _ = self.charge((self.body.len() - before) as u64);
    }

    /// Writes the output gathered so far as one event.
    fn flush_output(&mut self) {
        if let Some(out) = self.pending_output.take() {
            self.events += 1;
            Event::Output(out).encode_into(&mut self.body, &mut self.scratch);
        }
    }

    /// The guest asked for a secret's hash and got `hash`: recorded, unless a running marked
    /// call asked (a replay never runs it).
    pub fn secret(&mut self, hash: [u8; 32]) {
        if self.frames.is_empty() {
            self.counts.secrets += 1;
            self.push(Event::Secret(hash));
        }
    }

    /// Ends the tape with `exit`; returns the encoded events and their count. The recorder is
    /// empty afterwards.
    pub fn finish(&mut self, exit: super::format::ExitRecord) -> (Vec<u8>, u64) {
        // Calls still running: the program trapped or exited inside them.
        while let Some(f) = self.frames.last() {
            let ticket = f.ticket;
            self.call_ended(ticket, None, |_| CallOutcome::Unfinished);
        }
        self.push(Event::Exit(exit));
        (
            std::mem::take(&mut self.body),
            std::mem::take(&mut self.events),
        )
    }

    /// The innermost running marked call, if any.
    fn frame(&mut self) -> Option<&mut Frame> {
        self.frames.last_mut()
    }

    fn wall(&mut self, now: Duration) {
        match self.frame() {
            Some(f) => f.inner.clock += 1,
            None => {
                self.counts.clock += 1;
                self.push(Event::WallClock(WallReading {
                    secs: now.as_secs(),
                    nanos: now.subsec_nanos(),
                }));
            }
        }
    }

    fn monotonic(&mut self, now: u64) {
        match self.frame() {
            Some(f) => f.inner.clock += 1,
            None => {
                self.counts.clock += 1;
                self.push(Event::MonotonicClock(now));
            }
        }
    }

    /// Fills `buf` from the real RNG and records the bytes.
    pub fn random(&mut self, buf: &mut [u8]) {
        self.rng.fill_bytes(buf);
        match self.frame() {
            Some(f) => f.inner.random_bytes += buf.len() as u64,
            None => {
                self.counts.random_bytes += buf.len() as u64;
                self.push(Event::Random(buf.to_vec()));
            }
        }
    }

    fn site_id(&mut self, call: &Call<'_>) -> u32 {
        let k = (call.identity.to_string(), call.location.to_string());
        if let Some(&id) = self.sites.get(&k) {
            return id;
        }
        let id = self.sites.len() as u32;
        self.sites.insert(k, id);
        self.push(Event::Site(Box::new(SiteRecord {
            id,
            identity: call.identity.to_string(),
            location: call.location.to_string(),
            fingerprint: call.desc.fingerprint.clone(),
            value_type: call.desc.value_type.clone(),
            kind: match call.desc.kind {
                devstash_protocol::SiteKind::Call => "call",
                devstash_protocol::SiteKind::Fn => "fn",
            }
            .into(),
            ttl_secs: call.desc.ttl_secs,
        })));
        id
    }

    /// The id of `value`, writing it to the tape the first time it is seen.
    fn value_id(&mut self, value: &[u8]) -> u32 {
        let hash = blake3::hash(value);
        if let Some(&id) = self.values.get(&hash) {
            return id;
        }
        // Checked before the value is copied (into the event, then onto the tape): a value
        // that cannot fit stops the recording.
        if !self.fits(2 * value.len() as u64) {
            let _ = self.charge(2 * value.len() as u64);
            return u32::MAX;
        }
        let id = self.values.len() as u32;
        self.values.insert(hash, id);
        self.push(Event::Value(ValueRecord {
            id,
            bytes: value.to_vec(),
        }));
        id
    }

    fn call_ended(
        &mut self,
        ticket: u64,
        preview: Option<&str>,
        outcome: impl FnOnce(&mut Self) -> CallOutcome,
    ) {
        let Some(pos) = self.frames.iter().rposition(|f| f.ticket == ticket) else {
            return;
        };
        let frame = self.frames.remove(pos);
        let mut outcome = outcome(self);
        if let CallOutcome::Computed { compute_ns, .. } = &mut outcome {
            *compute_ns = u64::try_from(frame.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        }
        self.counts.calls += 1;
        let depth = self.frames.len() as u32;
        self.push(Event::Call(Box::new(CallRecord {
            site: frame.site,
            key: frame.key,
            args: frame.args,
            preview: preview.map(str::to_string),
            outcome,
            depth,
            output: frame.output,
            inner: frame.inner,
        })));
    }
}

impl Capture for Recorder {
    fn output(&mut self, stream: Stream, bytes: &[u8]) -> wasmtime::Result<()> {
        // The output is kept once, and once more with the outermost running call: a replay
        // answers that call and writes it again. Inner calls are never answered by a replay.
        let copies = 1 + u64::from(!self.frames.is_empty());
        self.charge(copies * bytes.len() as u64)?;
        if let Some(f) = self.frames.first_mut() {
            append(&mut f.output, stream, bytes);
        }
        match &mut self.pending_output {
            Some(out) if out.stream == stream => out.bytes.extend_from_slice(bytes),
            _ => {
                self.flush_output();
                self.pending_output = Some(OutputChunk {
                    stream,
                    bytes: bytes.to_vec(),
                });
            }
        }
        Ok(())
    }
}

impl Recorder {
    /// A WASI call on a descriptor returned `result` (see `syscall::record`).
    pub fn sys(
        &mut self,
        func: u16,
        inputs: Inputs,
        params: &[wasmtime::Val],
        data: &[u8],
        result: SysResult,
    ) {
        let spec = &FUNCS[func as usize];
        let ok = result == SysResult::Errno(0);
        let fd = match spec.args.first() {
            Some(syscall::Arg::Fd) => inputs.scalars.first().map(|&f| f as u32),
            _ => None,
        };
        let open = fd.and_then(|fd| self.fds.get(fd)).cloned();
        let stdio = matches!(open, Some(Open::Stdout | Open::Stderr));
        let outs = ok.then(|| syscall::outputs(spec, params, data, !stdio));
        let stdin_read = matches!(open, Some(Open::Stdin)) && syscall::is_read(func);
        if let Some(f) = self.frames.last_mut() {
            // Made inside a marked call that ran: a replay answers the call and never makes it.
            if stdin_read {
                f.inner.stdin_bytes += outs
                    .as_ref()
                    .and_then(|o| o.filled.as_ref())
                    .map_or(0, |b| b.len() as u64);
            }
            return;
        }
        self.counts.sys += 1;
        let (out, filled, written) = match outs {
            Some(o) => (o.out, o.filled, o.written),
            None => (Vec::new(), None, None),
        };
        let by_hash = fd.and_then(|fd| self.by_hash.fds.get(&fd).copied());
        let data = match (&filled, &written) {
            (Some(bytes), _) => {
                if stdin_read {
                    self.counts.stdin_bytes += bytes.len() as u64;
                }
                match by_hash {
                    Some((file, pos)) if syscall::is_read(func) => {
                        // `fd_read` moves the position; `fd_pread` reads where it is told.
                        let pread = syscall::pread_offset(func, &inputs);
                        let offset = pread.unwrap_or(pos);
                        if pread.is_none()
                            && let Some(fd) = fd
                        {
                            self.by_hash
                                .fds
                                .insert(fd, (file, pos + bytes.len() as u64));
                        }
                        SysData::Ref {
                            file,
                            offset,
                            hash: *blake3::hash(bytes).as_bytes(),
                        }
                    }
                    _ => SysData::Chunks(self.chunk_ids(bytes)),
                }
            }
            (None, Some(bytes)) => SysData::Chunks(self.chunk_ids(bytes)),
            (None, None) => SysData::None,
        };
        if ok {
            self.follow(func, &inputs, &out, filled.as_deref());
        }
        self.push(Event::Sys(Box::new(SysRecord {
            func,
            scalars: inputs.scalars,
            paths: inputs.paths,
            result,
            out,
            data,
        })));
    }

    /// Follows a successful call in the descriptor table, and in the files kept by hash.
    fn follow(&mut self, func: u16, inputs: &Inputs, out: &[u8], filled: Option<&[u8]>) {
        let fd = inputs.scalars.first().copied().unwrap_or(0) as u32;
        self.fds.apply(func, inputs, out, filled);
        if self.by_hash.dirs.is_empty() {
            return;
        }
        match FUNCS[func as usize].name {
            "path_open" => {
                let Some(new) = out.get(0..4) else { return };
                let new = u32::from_le_bytes(new.try_into().expect("4 bytes"));
                self.by_hash.fds.remove(&new);
                let name = self.fds.file(new);
                if let Some(id) = self.ref_file(&name) {
                    self.by_hash.fds.insert(new, (id, 0));
                }
            }
            "fd_seek" => {
                if let (Some(e), Some(pos)) = (self.by_hash.fds.get_mut(&fd), out.get(0..8)) {
                    e.1 = u64::from_le_bytes(pos.try_into().expect("8 bytes"));
                }
            }
            "fd_close" => {
                self.by_hash.fds.remove(&fd);
            }
            "fd_renumber" => {
                let to = inputs.scalars.get(1).copied().unwrap_or(0) as u32;
                let moved = self.by_hash.fds.remove(&fd);
                self.by_hash.fds.remove(&to);
                if let Some(m) = moved {
                    self.by_hash.fds.insert(to, m);
                }
            }
            _ => {}
        }
    }

    /// The id of the file at guest path `name` if it lies in a `--by-hash` folder and is a
    /// regular file, registering it (its size and blake3) the first time.
    fn ref_file(&mut self, name: &str) -> Option<u32> {
        if let Some(id) = self.by_hash.files.get(name) {
            return *id;
        }
        let id = self.by_hash.dirs.iter().find_map(|(guest, host)| {
            let rest = name.strip_prefix(guest.trim_end_matches('/'))?;
            let rel = rest.strip_prefix('/')?;
            Some((guest.clone(), host.clone(), rel.to_string()))
        });
        let id = id.and_then(|(guest, host, rel)| {
            let (_, len, hash) = open_hashed(&host, &rel).ok()?;
            let id = self.by_hash.files.values().flatten().count() as u32;
            self.push(Event::RefFile(Box::new(RefFile {
                id,
                dir: guest,
                path: rel,
                len,
                hash,
            })));
            Some(id)
        });
        self.by_hash.files.insert(name.to_string(), id);
        id
    }

    /// The chunk ids of `bytes`, each chunk written to the tape the first time it is seen.
    fn chunk_ids(&mut self, bytes: &[u8]) -> Vec<u32> {
        self.counts.file_bytes += bytes.len() as u64;
        if bytes.len() <= CHUNK_MIN {
            return vec![self.chunk_id(bytes)];
        }
        fastcdc::v2020::FastCDC::new(bytes, CHUNK_MIN, CHUNK_AVG, CHUNK_MAX)
            .map(|c| self.chunk_id(&bytes[c.offset..c.offset + c.length]))
            .collect()
    }

    fn chunk_id(&mut self, chunk: &[u8]) -> u32 {
        let hash = blake3::hash(chunk);
        if let Some(&id) = self.chunks.get(&hash) {
            return id;
        }
        // Checked before the chunk is copied (into the event, then onto the tape).
        if !self.fits(2 * chunk.len() as u64) {
            let _ = self.charge(2 * chunk.len() as u64);
            return u32::MAX;
        }
        let id = self.chunks.len() as u32;
        self.chunks.insert(hash, id);
        self.counts.chunk_bytes += chunk.len() as u64;
        self.push(Event::Chunk(chunk.to_vec()));
        id
    }
}

/// The regular file `rel` in the host folder `dir` (never outside it, never a FIFO or a
/// device), opened, with its size and blake3.
pub fn open_hashed(
    dir: &std::path::Path,
    rel: &str,
) -> std::io::Result<(std::fs::File, u64, [u8; 32])> {
    let root = cap_std::fs::Dir::open_ambient_dir(dir, cap_std::ambient_authority())?;
    let file = crate::store::disk::open_regular(&root, rel)?.into_std();
    let mut hasher = blake3::Hasher::new();
    let len = std::io::copy(&mut &file, &mut hasher)?;
    Ok((file, len, *hasher.finalize().as_bytes()))
}

/// The recorder, as the recording WASI functions see it.
pub struct SysRecorder(pub Arc<Mutex<Recorder>>);

impl syscall::Recording for SysRecorder {
    fn record(
        &self,
        func: u16,
        inputs: Inputs,
        params: &[wasmtime::Val],
        data: &[u8],
        result: SysResult,
    ) -> wasmtime::Result<()> {
        let mut r = lock(&self.0);
        r.sys(func, inputs, params, data, result);
        r.check()
    }
}

/// What a tape keeps of a call's argument bytes: their start.
fn tape_args(args: &[u8]) -> Vec<u8> {
    args[..args.len().min(MAX_TAPE_ARGS)].to_vec()
}

fn append(chunks: &mut Vec<OutputChunk>, stream: Stream, bytes: &[u8]) {
    match chunks.last_mut() {
        Some(last) if last.stream == stream => last.bytes.extend_from_slice(bytes),
        _ => chunks.push(OutputChunk {
            stream,
            bytes: bytes.to_vec(),
        }),
    }
}

/// The marked-call hook of a recording: logs every value returned or computed.
pub struct RecordHook(pub Arc<Mutex<Recorder>>);

impl CallHook for RecordHook {
    fn hit(&mut self, call: &Call<'_>, args: &[u8], value: &[u8], preview: Option<&str>) {
        let mut r = lock(&self.0);
        let site = r.site_id(call);
        let value = r.value_id(value);
        let depth = r.frames.len() as u32;
        r.counts.calls += 1;
        r.push(Event::Call(Box::new(CallRecord {
            site,
            key: *call.key,
            args: tape_args(args),
            preview: preview.map(str::to_string),
            outcome: CallOutcome::Hit { value },
            depth,
            output: Vec::new(),
            inner: InnerReads::default(),
        })));
    }

    fn miss(&mut self, call: &Call<'_>, args: &[u8], ticket: u64) {
        let mut r = lock(&self.0);
        let site = r.site_id(call);
        r.frames.push(Frame {
            ticket,
            site,
            key: *call.key,
            args: tape_args(args),
            started: Instant::now(),
            output: Vec::new(),
            inner: InnerReads::default(),
        });
    }

    fn computed(&mut self, _call: &Call<'_>, ticket: u64, value: &[u8], preview: Option<&str>) {
        // The compute time is filled in from the frame's start.
        lock(&self.0).call_ended(ticket, preview, |r| CallOutcome::Computed {
            value: r.value_id(value),
            compute_ns: 0,
        });
    }

    fn failed(&mut self, _call: &Call<'_>, ticket: u64) {
        lock(&self.0).call_ended(ticket, None, |_| CallOutcome::Failed);
    }

    fn http_done(&mut self, exchange: &Exchange<'_>, result: &devstash_protocol::HttpResult) {
        // `Set-Cookie` is a secret the server handed out: kept off tapes as off cache entries.
        let result = result
            .as_ref()
            .map(crate::net::storable)
            .map_err(Clone::clone);
        let bytes = devstash_protocol::codec::encode(&result).expect("plain data encodes");
        let mut r = lock(&self.0);
        let result = r.value_id(&bytes);
        let depth = r.frames.len() as u32;
        r.counts.http += 1;
        r.push(Event::Http(Box::new(HttpRecord {
            key: *exchange.key,
            preview: exchange.preview.to_string(),
            result,
            depth,
        })));
    }

    fn secret(&mut self, hash: [u8; 32]) -> wasmtime::Result<[u8; 32]> {
        lock(&self.0).secret(hash);
        Ok(hash)
    }

    fn check(&mut self) -> wasmtime::Result<()> {
        lock(&self.0).check()
    }
}

/// The wall clock of a recording: the real one, every reading logged.
pub struct RecordingWallClock {
    real: WallClock,
    recorder: Arc<Mutex<Recorder>>,
}

impl RecordingWallClock {
    /// Logs into `recorder`.
    pub fn new(recorder: Arc<Mutex<Recorder>>) -> Self {
        RecordingWallClock {
            real: WallClock::new(),
            recorder,
        }
    }
}

impl HostWallClock for RecordingWallClock {
    fn resolution(&self) -> Duration {
        self.real.resolution()
    }
    fn now(&self) -> Duration {
        let now = self.real.now();
        lock(&self.recorder).wall(now);
        now
    }
}

/// The monotonic clock of a recording: the real one, every reading logged.
pub struct RecordingMonotonicClock {
    real: MonotonicClock,
    recorder: Arc<Mutex<Recorder>>,
}

impl RecordingMonotonicClock {
    /// Logs into `recorder`.
    pub fn new(recorder: Arc<Mutex<Recorder>>) -> Self {
        RecordingMonotonicClock {
            real: MonotonicClock::new(),
            recorder,
        }
    }
}

impl HostMonotonicClock for RecordingMonotonicClock {
    fn resolution(&self) -> u64 {
        self.real.resolution()
    }
    fn now(&self) -> u64 {
        let now = self.real.now();
        lock(&self.recorder).monotonic(now);
        now
    }
}
