//! Replaying: every input of the guest is served from the tape.
//!
//! - Marked calls are matched by key, so a changed module can still use the recorded results of
//!   the calls it still makes. For each key, the calls the program made itself are served in
//!   recording order, each writing again the output it produced when it ran; once they are used
//!   up, the key's value keeps being served (as a store would) with no output. A call the tape
//!   cannot answer never runs: it stops the replay with a [`Divergence`].
//! - HTTP requests are matched by their tape key (method, URL, body and headers, with secret
//!   headers by name only), served per key in recording order, then the key's last result. No
//!   socket is opened; a request the tape holds no exchange for stops the replay.
//! - Clocks and random bytes are served in recording order; one read more than recorded is a
//!   divergence.
//! - WASI calls on descriptors (files, stdio, sockets) are answered in recording order with
//!   their recorded results (see `syscall`); a call other than the tape's next one, or one more
//!   (a read past the recorded stdin), is a divergence. What the guest writes to files is kept
//!   for `--verify`, and what it writes to stdout and stderr goes out as it did.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};

use devstash_protocol::{HttpResult, codec};

use super::format::{
    CallOutcome, CallRecord, Event, HttpRecord, Invocation, RefFile, SiteRecord, Stream, SysData,
    SysRecord, SysResult, Tape,
};
use super::report::{args_preview, short_hex};
use super::stdio::{Capture, lock, write_real};
use super::syscall::{self, Arg, FUNCS, FdTable, Inputs, Open};
use crate::host::{Call, CallHook, Exchange};

/// Why a replay stopped: the program asked for something the tape cannot answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// One line: what the program asked for.
    pub summary: String,
    /// Indented lines with the details (site, arguments, what the tape holds).
    pub details: String,
}

/// The error that stops the guest on a divergence (the report itself is kept in the
/// [`Player`]).
#[derive(Debug)]
pub struct Diverged;

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the replay diverged from its tape")
    }
}

impl std::error::Error for Diverged {}

/// The recorded calls of one key.
#[derive(Default)]
struct KeyCalls {
    /// Calls the program made itself, not yet served.
    top: VecDeque<usize>,
    /// The last value recorded for the key.
    value: Option<u32>,
}

/// The recorded HTTP exchanges of one key.
#[derive(Default)]
struct KeyExchanges {
    /// Exchanges the program made itself, not yet served.
    top: VecDeque<usize>,
    /// The last result recorded for the key.
    result: Option<u32>,
}

/// Most recorded exchanges a divergence report lists.
const SHOWN: usize = 8;

/// Counts for the closing line.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayCounts {
    /// HTTP requests answered.
    pub http: u64,
    /// Marked calls answered.
    pub calls: u64,
    /// Clock readings served.
    pub clock: u64,
    /// Random bytes served.
    pub random_bytes: u64,
    /// WASI calls on descriptors answered.
    pub sys: u64,
}

/// The tape being played, and what the replay produced.
pub struct Player {
    sites: Vec<SiteRecord>,
    values: Vec<Arc<[u8]>>,
    calls: Vec<CallRecord>,
    by_key: HashMap<[u8; 32], KeyCalls>,
    exchanges: Vec<HttpRecord>,
    http_by_key: HashMap<[u8; 32], KeyExchanges>,
    wall: VecDeque<Duration>,
    wall_total: usize,
    last_wall: Duration,
    monotonic: VecDeque<u64>,
    monotonic_total: usize,
    last_monotonic: u64,
    random: Vec<u8>,
    random_used: usize,
    secrets: VecDeque<[u8; 32]>,
    secrets_total: usize,
    sys: VecDeque<SysRecord>,
    sys_total: usize,
    chunks: Vec<Vec<u8>>,
    refs: Vec<RefFile>,
    /// The files of [`Player::refs`], opened from the granted folders.
    ref_files: Vec<Option<std::fs::File>>,
    fds: FdTable,
    /// What the guest wrote to each file during the replay, in order.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The first divergence, once there is one.
    pub divergence: Option<Divergence>,
    /// What the guest wrote to stdout during the replay.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr.
    pub stderr: Vec<u8>,
    /// What was served, for the closing line.
    pub counts: ReplayCounts,
}

/// What a tape recorded apart from the inputs the [`Player`] serves.
pub struct Recorded {
    /// How the run was started.
    pub invocation: Invocation,
    /// What it wrote to each file, in order.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The files it read by hash, kept off the tape.
    pub refs: Vec<RefFile>,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
    /// Its exit code.
    pub exit_code: i32,
}

impl Player {
    /// Builds a player from a verified tape, checking that its events fit together.
    pub fn new(tape: Tape) -> Result<(Player, Recorded)> {
        let mut p = Player {
            sites: Vec::new(),
            values: Vec::new(),
            calls: Vec::new(),
            by_key: HashMap::new(),
            exchanges: Vec::new(),
            http_by_key: HashMap::new(),
            wall: VecDeque::new(),
            wall_total: 0,
            last_wall: Duration::ZERO,
            monotonic: VecDeque::new(),
            monotonic_total: 0,
            last_monotonic: 0,
            random: Vec::new(),
            random_used: 0,
            secrets: VecDeque::new(),
            secrets_total: 0,
            sys: VecDeque::new(),
            sys_total: 0,
            chunks: Vec::new(),
            refs: Vec::new(),
            ref_files: Vec::new(),
            fds: FdTable::default(),
            files: BTreeMap::new(),
            divergence: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            counts: ReplayCounts::default(),
        };
        let mut invocation = None;
        let mut exit = None;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        // The recorded run's descriptors and file writes, followed as the replay will.
        let mut fds = FdTable::default();
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for event in tape.events {
            match event {
                Event::Invocation(i) => {
                    fds = FdTable::new(&i.preopens);
                    p.fds = fds.clone();
                    invocation = Some(*i);
                }
                Event::Site(s) => {
                    if s.id as usize != p.sites.len() {
                        bail!("site {} is out of order", s.id);
                    }
                    p.sites.push(*s);
                }
                Event::Value(v) => {
                    if v.id as usize != p.values.len() {
                        bail!("value {} is out of order", v.id);
                    }
                    p.values.push(v.bytes.into());
                }
                Event::Call(c) => {
                    if c.site as usize >= p.sites.len() {
                        bail!("a call refers to site {}, which is not on the tape", c.site);
                    }
                    if let Some(v) = c.outcome.value()
                        && v as usize >= p.values.len()
                    {
                        bail!("a call refers to value {v}, which is not on the tape");
                    }
                    let k = p.by_key.entry(c.key).or_default();
                    if c.depth == 0 {
                        k.top.push_back(p.calls.len());
                    }
                    if let Some(v) = c.outcome.value() {
                        k.value = Some(v);
                    }
                    p.calls.push(*c);
                }
                Event::WallClock(w) => {
                    // A reading a clock can give: nanoseconds since 1970 that fit in 64 bits.
                    let ns = w
                        .secs
                        .checked_mul(1_000_000_000)
                        .and_then(|ns| ns.checked_add(u64::from(w.nanos)))
                        .filter(|_| w.nanos < 1_000_000_000);
                    let Some(ns) = ns else {
                        bail!(
                            "a wall clock reading ({}s and {}ns) is past what a clock can show",
                            w.secs,
                            w.nanos
                        );
                    };
                    p.wall.push_back(Duration::from_nanos(ns));
                }
                Event::MonotonicClock(m) => p.monotonic.push_back(m),
                Event::Random(bytes) => p.random.extend_from_slice(&bytes),
                Event::Secret(hash) => p.secrets.push_back(hash),
                Event::Chunk(bytes) => p.chunks.push(bytes),
                Event::RefFile(r) => {
                    if r.id as usize != p.refs.len() {
                        bail!("file {} is out of order", r.id);
                    }
                    p.refs.push(*r);
                }
                Event::Sys(c) => {
                    let spec = &FUNCS[c.func as usize];
                    let filled = match &c.data {
                        SysData::Chunks(ids) => Some(p.join_chunks(ids)?),
                        SysData::Ref { file, .. } if *file as usize >= p.refs.len() => {
                            bail!("a read refers to file {file}, which is not on the tape")
                        }
                        _ => None,
                    };
                    if c.result == SysResult::Errno(0) {
                        let inputs = Inputs {
                            scalars: c.scalars.clone(),
                            paths: c.paths.clone(),
                        };
                        if spec.args.contains(&Arg::Write) {
                            let fd = c.scalars.first().copied().unwrap_or(0) as u32;
                            if !matches!(fds.get(fd), Some(Open::Stdout | Open::Stderr)) {
                                files
                                    .entry(fds.file(fd))
                                    .or_default()
                                    .extend_from_slice(filled.as_deref().unwrap_or_default());
                            }
                        }
                        fds.apply(c.func, &inputs, &c.out, filled.as_deref());
                    }
                    p.sys.push_back(*c);
                }
                Event::Output(o) => match o.stream {
                    Stream::Stdout => stdout.extend_from_slice(&o.bytes),
                    Stream::Stderr => stderr.extend_from_slice(&o.bytes),
                },
                Event::Exit(e) => exit = Some(e),
                Event::Http(h) => {
                    if h.result as usize >= p.values.len() {
                        bail!(
                            "an HTTP exchange refers to value {}, which is not on the tape",
                            h.result
                        );
                    }
                    let k = p.http_by_key.entry(h.key).or_default();
                    if h.depth == 0 {
                        k.top.push_back(p.exchanges.len());
                    }
                    k.result = Some(h.result);
                    p.exchanges.push(*h);
                }
                Event::Unknown { kind, .. } => bail!(
                    "it holds events of kind {kind}, which this devstash does not know: it was \
                     recorded by a newer devstash; update devstash to replay it"
                ),
            }
        }
        let Some(invocation) = invocation else {
            bail!("it does not say how the run was started (no invocation event)");
        };
        let Some(exit) = exit else {
            bail!("it does not say how the run ended (no exit event)");
        };
        p.wall_total = p.wall.len();
        p.monotonic_total = p.monotonic.len();
        p.secrets_total = p.secrets.len();
        p.sys_total = p.sys.len();
        let refs = p.refs.clone();
        Ok((
            p,
            Recorded {
                invocation,
                files,
                refs,
                stdout,
                stderr,
                exit_code: exit.code,
            },
        ))
    }

    fn diverge(&mut self, summary: String, details: String) -> wasmtime::Error {
        if self.divergence.is_none() {
            self.divergence = Some(Divergence { summary, details });
        }
        wasmtime::Error::new(Diverged)
    }

    /// Writes what the guest would have written, to the real stream and the capture.
    fn emit(&mut self, stream: Stream, bytes: &[u8]) {
        // A closed stdout must not stop the replay; the guest's own writes report it.
        let _ = write_real(stream, bytes);
        let _ = self.output(stream, bytes);
    }

    /// The bytes of chunks `ids`, in order.
    fn join_chunks(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for &id in ids {
            match self.chunks.get(id as usize) {
                Some(c) => out.extend_from_slice(c),
                None => bail!("a call refers to chunk {id}, which is not on the tape"),
            }
        }
        Ok(out)
    }

    /// Opens the files the tape reads by hash from `grants` (guest folder, host folder), each
    /// checked against its recorded size and blake3 before the replay starts.
    pub fn open_refs(&mut self, grants: &[(String, std::path::PathBuf)]) -> Result<()> {
        for r in &self.refs {
            let shown = format!("{}/{}", r.dir.trim_end_matches('/'), r.path);
            let Some((_, host)) = grants
                .iter()
                .find(|(guest, _)| guest.trim_end_matches('/') == r.dir.trim_end_matches('/'))
            else {
                bail!(
                    "the tape reads {shown} ({}) from the host rather than holding it: grant the \
                     folder that holds it, read-only, with `--dir HOST::{}:ro`",
                    crate::output::human_size(r.len),
                    r.dir
                );
            };
            let host_file = host.join(&r.path);
            match super::record::open_hashed(host, &r.path) {
                Ok((file, len, hash)) if len == r.len && hash == r.hash => {
                    self.ref_files.push(Some(file));
                }
                Ok(_) => bail!(
                    "{} is not the file the recording read as {shown}: its contents differ \
                     (blake3 {} recorded); grant the folder as it was when recorded",
                    host_file.display(),
                    short_hex(&r.hash)
                ),
                Err(e) => bail!(
                    "cannot read {} (the recording read it as {shown}): {e}",
                    host_file.display()
                ),
            }
        }
        Ok(())
    }

    /// Answers a WASI call on a descriptor from the tape (see `syscall::replay`).
    fn sys(
        &mut self,
        func: u16,
        params: &[wasmtime::Val],
        data: &mut [u8],
    ) -> wasmtime::Result<i32> {
        self.check()?;
        let spec = &FUNCS[func as usize];
        let inputs = syscall::inputs(spec, params, data);
        let Some(rec) = self.sys.pop_front() else {
            let total = self.sys_total;
            let call = syscall::describe(func, &inputs, &self.fds);
            let stdin = FUNCS[func as usize].name == "fd_read"
                && matches!(self.fds.get(inputs.scalars[0] as u32), Some(Open::Stdin));
            return Err(self.diverge(
                if stdin {
                    "the program read past the stdin of the recording".into()
                } else {
                    "the program made a WASI call after the last one the recording made".into()
                },
                format!(
                    "  call:      {call}\n  the tape:  holds {total} WASI call{}, all made \
                     already",
                    if total == 1 { "" } else { "s" }
                ),
            ));
        };
        if rec.func != func || rec.scalars != inputs.scalars || rec.paths != inputs.paths {
            let call = syscall::describe(func, &inputs, &self.fds);
            let next = syscall::describe(
                rec.func,
                &Inputs {
                    scalars: rec.scalars.clone(),
                    paths: rec.paths.clone(),
                },
                &self.fds,
            );
            let n = self.sys_total - self.sys.len();
            // A read of stdin where the recording read no more of it: past its end.
            let past_stdin = FUNCS[func as usize].name == "fd_read"
                && matches!(self.fds.get(inputs.scalars[0] as u32), Some(Open::Stdin))
                && !std::iter::once(&rec)
                    .chain(self.sys.iter())
                    .any(|r| r.func == func && r.scalars.first() == inputs.scalars.first());
            return Err(self.diverge(
                if past_stdin {
                    "the program read past the stdin of the recording".into()
                } else {
                    "the program made a WASI call other than the one the recording made next".into()
                },
                format!(
                    "  call:      {call}\n  the tape:  holds next (call {n} of {}) {next} -> {}",
                    self.sys_total,
                    syscall::result_text(&rec.result)
                ),
            ));
        }
        self.counts.sys += 1;
        match &rec.result {
            SysResult::Trap(msg) => return Err(wasmtime::format_err!("{msg}")),
            SysResult::Errno(0) => {}
            SysResult::Errno(e) => return Ok(i32::from(*e)),
        }
        let mut out = rec.out.clone();
        let fd = inputs.scalars.first().copied().unwrap_or(0) as u32;
        let (filled, fits) = if spec.args.contains(&Arg::Write) {
            let recorded = syscall::count(spec, &out).unwrap_or(0);
            let bytes = syscall::written(spec, params, data, recorded as usize);
            if (bytes.len() as u32) < recorded {
                // The guest passes fewer bytes than the recorded call took.
                syscall::set_count(spec, &mut out, bytes.len() as u32);
            }
            match self.fds.get(fd) {
                Some(Open::Stdout) => self.emit(Stream::Stdout, &bytes),
                Some(Open::Stderr) => self.emit(Stream::Stderr, &bytes),
                _ => self
                    .files
                    .entry(self.fds.file(fd))
                    .or_default()
                    .extend_from_slice(&bytes),
            }
            (
                Vec::new(),
                syscall::write_back(spec, params, data, &out, &[]),
            )
        } else {
            let filled = match &rec.data {
                SysData::Chunks(ids) => self
                    .join_chunks(ids)
                    .map_err(|e| wasmtime::format_err!("{e}"))?,
                SysData::Ref { file, offset, hash } => {
                    let n = syscall::count(spec, &out).unwrap_or(0) as usize;
                    let mut buf = vec![0; n];
                    let f = self.ref_files.get(*file as usize).and_then(Option::as_ref);
                    match f.map(|f| std::os::unix::fs::FileExt::read_exact_at(f, &mut buf, *offset))
                    {
                        Some(Ok(())) if blake3::hash(&buf) == blake3::Hash::from_bytes(*hash) => {
                            buf
                        }
                        _ => {
                            let r = &self.refs[*file as usize];
                            return Err(self.diverge(
                                format!("the file {}/{} changed during the replay", r.dir, r.path),
                                format!(
                                    "  call:      {}",
                                    syscall::describe(func, &inputs, &self.fds)
                                ),
                            ));
                        }
                    }
                }
                SysData::None => Vec::new(),
            };
            let fits = syscall::write_back(spec, params, data, &out, &filled);
            (filled, fits)
        };
        if let Err(syscall::DoesNotFit(why)) = fits {
            let call = syscall::describe(func, &inputs, &self.fds);
            return Err(self.diverge(
                "the program gave a WASI call buffers that do not fit its recorded results".into(),
                format!("  call:      {call}\n  why:       {why}"),
            ));
        }
        self.fds.apply(func, &inputs, &out, Some(&filled));
        Ok(0)
    }

    /// Answers a marked call from the tape, or diverges.
    fn answer(
        &mut self,
        call: &Call<'_>,
        args: &[u8],
        refresh: bool,
    ) -> wasmtime::Result<Arc<[u8]>> {
        if refresh {
            return Err(self.diverge(
                format!(
                    "the recorded value of {} no longer decodes as `{}`",
                    call.identity, call.desc.value_type
                ),
                format!(
                    "  site:      {} ({})\n  \
                     the value type of this marked call changed since the recording, so the \
                     recorded value cannot be used and the call cannot run during a replay",
                    call.identity, call.location
                ),
            ));
        }
        let (next, fallback) = match self.by_key.get_mut(call.key) {
            Some(k) => (k.top.pop_front(), k.value),
            None => (None, None),
        };
        if let Some(i) = next {
            let outcome = self.calls[i].outcome;
            let Some(v) = outcome.value() else {
                let details = self.call_details(call, args);
                let summary = if outcome == CallOutcome::Failed {
                    format!(
                        "{} returned an error when recorded, and errors are never stored",
                        call.identity
                    )
                } else {
                    format!(
                        "the recorded run ended inside {} (it trapped or exited there), so the \
                         tape holds no value for it",
                        call.identity
                    )
                };
                return Err(self.diverge(summary, details));
            };
            let output = std::mem::take(&mut self.calls[i].output);
            for chunk in &output {
                self.emit(chunk.stream, &chunk.bytes);
            }
            self.counts.calls += 1;
            return Ok(self.values[v as usize].clone());
        }
        if let Some(v) = fallback {
            self.counts.calls += 1;
            return Ok(self.values[v as usize].clone());
        }
        let details = self.call_details(call, args);
        Err(self.diverge(
            "the program made a marked call that the tape cannot answer".into(),
            details,
        ))
    }

    /// Answers an HTTP request from the tape, or diverges.
    fn answer_http(&mut self, exchange: &Exchange<'_>) -> wasmtime::Result<HttpResult> {
        let (next, fallback) = match self.http_by_key.get_mut(exchange.key) {
            Some(k) => (
                k.top.pop_front().map(|i| self.exchanges[i].result),
                k.result,
            ),
            None => (None, None),
        };
        let Some(value) = next.or(fallback) else {
            let details = self.http_details(exchange);
            return Err(self.diverge(
                "the program made an HTTP request that the tape holds no exchange for".into(),
                details,
            ));
        };
        match codec::decode::<HttpResult>(&self.values[value as usize]) {
            Ok(result) => {
                self.counts.http += 1;
                Ok(result)
            }
            Err(e) => Err(self.diverge(
                format!(
                    "the recorded result of {} does not decode ({e})",
                    exchange.preview
                ),
                "  the tape was written by a devstash whose HTTP results differ from this \
                 one's; record it again"
                    .into(),
            )),
        }
    }

    /// The report's lines about an HTTP request: the request (redacted) and the exchanges the
    /// tape holds instead, those to the same method and URL first.
    fn http_details(&self, exchange: &Exchange<'_>) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "  request:   {}", exchange.preview);
        let _ = writeln!(s, "  key:       {}", short_hex(exchange.key));
        if self.exchanges.is_empty() {
            let _ = write!(
                s,
                "  the tape:  holds no HTTP exchange: the recorded run made no request"
            );
            return s;
        }
        // The method and URL: the preview up to the redacted header names.
        let target = |p: &str| p.split(" (").next().unwrap_or_default().to_string();
        let wanted = target(exchange.preview);
        let mut recorded: Vec<&HttpRecord> = self.exchanges.iter().collect();
        recorded.sort_by_key(|h| target(&h.preview) != wanted);
        let same = recorded
            .iter()
            .filter(|h| target(&h.preview) == wanted)
            .count();
        if same > 0 {
            let _ = writeln!(
                s,
                "  note:      the tape holds {same} exchange{} with this method and URL, made \
                 with other headers or another body",
                if same == 1 { "" } else { "s" }
            );
        }
        let _ = writeln!(
            s,
            "  the tape:  holds {} HTTP exchange{}:",
            recorded.len(),
            if recorded.len() == 1 { "" } else { "s" }
        );
        for h in recorded.iter().take(SHOWN) {
            let what = match codec::decode::<HttpResult>(&self.values[h.result as usize]) {
                Ok(Ok(r)) => format!("status {}", r.status),
                Ok(Err(e)) => format!("error ({:?})", e.kind),
                Err(_) => "a result that does not decode".into(),
            };
            let _ = writeln!(s, "             {}  -> {what}", h.preview);
        }
        if recorded.len() > SHOWN {
            let _ = writeln!(s, "             … and {} more", recorded.len() - SHOWN);
        }
        s.truncate(s.trim_end().len());
        s
    }

    /// The report's lines about a call: the site, its arguments, and what the tape holds for
    /// the site instead.
    fn call_details(&self, call: &Call<'_>, args: &[u8]) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "  site:      {} ({})", call.identity, call.location);
        let _ = writeln!(s, "  arguments: {}", args_preview(args));
        let _ = writeln!(s, "  key:       {}", short_hex(call.key));
        let same_site: Vec<&SiteRecord> = self
            .sites
            .iter()
            .filter(|s| s.identity == call.identity)
            .collect();
        if same_site.is_empty() {
            let _ = write!(
                s,
                "  the tape:  holds no call of this site: the marked call was added (or renamed) \
                 since the recording"
            );
            return s;
        }
        let ids: Vec<u32> = same_site.iter().map(|s| s.id).collect();
        let recorded: Vec<&CallRecord> = self
            .calls
            .iter()
            .filter(|c| ids.contains(&c.site))
            .collect();
        if same_site
            .iter()
            .all(|s| s.fingerprint != call.desc.fingerprint)
        {
            let _ = writeln!(
                s,
                "  code:      the marked code changed since the recording (fingerprint {} on the \
                 tape, {} now), so none of its recorded results apply",
                short(&same_site[0].fingerprint),
                short(&call.desc.fingerprint)
            );
        }
        let _ = writeln!(
            s,
            "  the tape:  holds {} call{} of this site:",
            recorded.len(),
            if recorded.len() == 1 { "" } else { "s" }
        );
        for c in recorded.iter().take(SHOWN) {
            let what = match c.outcome {
                CallOutcome::Hit { value } | CallOutcome::Computed { value, .. } => {
                    let n = self.values[value as usize].len();
                    format!("{n} byte{}", if n == 1 { "" } else { "s" })
                }
                CallOutcome::Failed => "an error (not stored)".into(),
                CallOutcome::Unfinished => "never finished".into(),
            };
            let preview = c.preview.as_deref().unwrap_or("(no preview)");
            let _ = writeln!(
                s,
                "             {preview}  [arguments {}]  -> {what}",
                args_preview(&c.args)
            );
        }
        if recorded.len() > SHOWN {
            let _ = writeln!(s, "             … and {} more", recorded.len() - SHOWN);
        }
        s.truncate(s.trim_end().len());
        s
    }

    fn wall_now(&mut self) -> Duration {
        match self.wall.pop_front() {
            Some(d) => {
                self.counts.clock += 1;
                self.last_wall = d;
                d
            }
            None => {
                let total = self.wall_total;
                let _ = self.diverge(
                    "the program read the wall clock more often than the recording did".into(),
                    format!(
                        "  clock:     the tape holds {total} wall clock reading{}; this is read {}",
                        if total == 1 { "" } else { "s" },
                        total + 1
                    ),
                );
                // Time must not go backwards for the instruction or two before the guest stops.
                self.last_wall
            }
        }
    }

    fn monotonic_now(&mut self) -> u64 {
        match self.monotonic.pop_front() {
            Some(t) => {
                self.counts.clock += 1;
                self.last_monotonic = t;
                t
            }
            None => {
                let total = self.monotonic_total;
                let _ = self.diverge(
                    "the program read the monotonic clock more often than the recording did".into(),
                    format!(
                        "  clock:     the tape holds {total} monotonic clock reading{}; this is \
                         read {}",
                        if total == 1 { "" } else { "s" },
                        total + 1
                    ),
                );
                self.last_monotonic
            }
        }
    }

    /// Serves random bytes into `buf`, or diverges.
    pub fn random(&mut self, buf: &mut [u8]) -> wasmtime::Result<()> {
        let left = self.random.len() - self.random_used;
        if buf.len() > left {
            let total = self.random.len();
            return Err(self.diverge(
                "the program asked for more random bytes than the recording did".into(),
                format!(
                    "  random:    it asked for {} byte{}; the tape recorded {total}, of which {left} \
                     {} left",
                    buf.len(),
                    if buf.len() == 1 { "" } else { "s" },
                    if left == 1 { "is" } else { "are" }
                ),
            ));
        }
        buf.copy_from_slice(&self.random[self.random_used..self.random_used + buf.len()]);
        self.random_used += buf.len();
        self.counts.random_bytes += buf.len() as u64;
        Ok(())
    }

    /// Hands back the next recorded secret hash, or diverges.
    pub fn secret(&mut self) -> wasmtime::Result<[u8; 32]> {
        match self.secrets.pop_front() {
            Some(h) => Ok(h),
            None => {
                let total = self.secrets_total;
                Err(self.diverge(
                    "the program hashed a secret more often than the recording did".into(),
                    format!(
                        "  secrets:   the tape holds {total} secret hash{}; this is number {}",
                        if total == 1 { "" } else { "es" },
                        total + 1
                    ),
                ))
            }
        }
    }

    /// The last clock reading served, in nanoseconds: the wall clock (0) or the monotonic one.
    pub fn last_reading(&self, clock: u32) -> u64 {
        match clock {
            0 => u64::try_from(self.last_wall.as_nanos()).unwrap_or(u64::MAX),
            _ => self.last_monotonic,
        }
    }

    /// An error if the replay has diverged (checked after WASI calls that read a clock).
    pub fn check(&self) -> wasmtime::Result<()> {
        match self.divergence {
            Some(_) => Err(wasmtime::Error::new(Diverged)),
            None => Ok(()),
        }
    }
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(12)]
}

impl Capture for Player {
    fn output(&mut self, stream: Stream, bytes: &[u8]) -> wasmtime::Result<()> {
        match stream {
            Stream::Stdout => self.stdout.extend_from_slice(bytes),
            Stream::Stderr => self.stderr.extend_from_slice(bytes),
        }
        Ok(())
    }
}

/// The marked-call hook of a replay: every call is answered from the tape, none runs.
pub struct ReplayHook(pub Arc<Mutex<Player>>);

impl CallHook for ReplayHook {
    fn answer(
        &mut self,
        call: &Call<'_>,
        args: &[u8],
        refresh: bool,
    ) -> wasmtime::Result<Option<Arc<[u8]>>> {
        lock(&self.0).answer(call, args, refresh).map(Some)
    }

    fn http_answer(&mut self, exchange: &Exchange<'_>) -> wasmtime::Result<Option<HttpResult>> {
        lock(&self.0).answer_http(exchange).map(Some)
    }

    fn secret(&mut self, _hash: [u8; 32]) -> wasmtime::Result<[u8; 32]> {
        lock(&self.0).secret()
    }
}

/// The player, as the replaying WASI functions see it.
pub struct SysPlayer(pub Arc<Mutex<Player>>);

impl syscall::Replaying for SysPlayer {
    fn replay(
        &self,
        func: u16,
        params: &[wasmtime::Val],
        data: &mut [u8],
    ) -> wasmtime::Result<i32> {
        lock(&self.0).sys(func, params, data)
    }

    fn instant_poll(
        &self,
        caller: &mut wasmtime::Caller<'_, crate::runtime::Ctx>,
        params: &[wasmtime::Val],
    ) -> wasmtime::Result<bool> {
        let p = |i: usize| params.get(i).and_then(wasmtime::Val::i32).unwrap_or(0);
        super::wasi::instant_sleep(caller, &PlayerTime(self.0.clone()), p(0), p(1), p(2), p(3))
    }
}

/// The player, as the replay's `clock_time_get` sees it.
#[derive(Clone)]
pub struct PlayerTime(pub Arc<Mutex<Player>>);

impl super::wasi::TapeTime for PlayerTime {
    fn wall(&self) -> wasmtime::Result<Duration> {
        let mut p = lock(&self.0);
        let now = p.wall_now();
        p.check().map(|()| now)
    }
    fn monotonic(&self) -> wasmtime::Result<u64> {
        let mut p = lock(&self.0);
        let now = p.monotonic_now();
        p.check().map(|()| now)
    }
    fn last(&self, clock: u32) -> u64 {
        lock(&self.0).last_reading(clock)
    }
}

/// The wall clock of a replay: readings from the tape.
pub struct TapeWallClock {
    /// The recorded resolution.
    pub resolution: Duration,
    /// The player serving the readings.
    pub player: Arc<Mutex<Player>>,
}

impl HostWallClock for TapeWallClock {
    fn resolution(&self) -> Duration {
        self.resolution
    }
    fn now(&self) -> Duration {
        lock(&self.player).wall_now()
    }
}

/// The monotonic clock of a replay: readings from the tape.
pub struct TapeMonotonicClock {
    /// The recorded resolution, in nanoseconds.
    pub resolution: u64,
    /// The player serving the readings.
    pub player: Arc<Mutex<Player>>,
}

impl HostMonotonicClock for TapeMonotonicClock {
    fn resolution(&self) -> u64 {
        self.resolution
    }
    fn now(&self) -> u64 {
        lock(&self.player).monotonic_now()
    }
}
