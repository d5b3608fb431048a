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
//! - Stdin is served from the tape, then end of file.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};

use devstash_protocol::{HttpResult, codec};

use super::format::{
    CallOutcome, CallRecord, Event, HttpRecord, Invocation, SiteRecord, Stream, Tape,
};
use super::report::{args_preview, short_hex};
use super::stdio::{Capture, lock, write_real};
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
    /// Stdin as the program read it.
    pub stdin: Vec<u8>,
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
            divergence: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            counts: ReplayCounts::default(),
        };
        let mut invocation = None;
        let mut exit = None;
        let (mut stdin, mut stdout, mut stderr) = (Vec::new(), Vec::new(), Vec::new());
        for event in tape.events {
            match event {
                Event::Invocation(i) => invocation = Some(*i),
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
                Event::Stdin(bytes) => stdin.extend_from_slice(&bytes),
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
        Ok((
            p,
            Recorded {
                invocation,
                stdin,
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

/// The player, as the replay's `clock_time_get` and `poll_oneoff` see it.
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
    fn check(&self) -> wasmtime::Result<()> {
        lock(&self.0).check()
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
