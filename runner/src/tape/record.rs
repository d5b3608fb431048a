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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime_wasi::Rng as _;
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock, MonotonicClock, WallClock};

use super::format::{
    CallOutcome, CallRecord, Event, HttpRecord, InnerReads, Invocation, OutputChunk, SiteRecord,
    Stream, ValueRecord, WallReading,
};
use super::stdio::{Capture, lock};
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
        let mut r = Recorder {
            body: Vec::with_capacity(4096),
            scratch: Vec::with_capacity(64),
            events: 0,
            pending_output: None,
            sites: HashMap::new(),
            values: HashMap::new(),
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

    fn input(&mut self, bytes: &[u8]) {
        match self.frame() {
            Some(f) => f.inner.stdin_bytes += bytes.len() as u64,
            None => {
                self.counts.stdin_bytes += bytes.len() as u64;
                self.push(Event::Stdin(bytes.to_vec()));
            }
        }
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
