//! The tape file format.
//!
//! ```text
//! devstash-tape 2 <blake3 hex of everything after this line>\n
//! {"module":"app.wasm","module_xxh3":"…","devstash":"0.1.0","created":"…",…}\n    <- TapeHeader, JSON
//! <event><event>…                                                               <- postcard frames
//! ```
//!
//! Like a cache entry (and an insta snapshot), a tape opens with two readable lines, so
//! `head -2 app.tape` says what it is. The checksum covers the header and every event: a flipped
//! byte or a file cut short is reported as such, never replayed.
//!
//! Each event is one frame, `(kind: u16, body: bytes)` in postcard (a varint kind, a varint
//! length, then the body), and the body is the postcard encoding of that kind's struct. A reader
//! can therefore step over kinds it does not know (a tape written by a newer devstash; HTTP
//! exchanges, kind 11, were added this way), and a newer writer may append fields at the end of a body: readers ignore
//! trailing bytes in a body. Removing or reordering fields, or changing a kind's meaning, needs a
//! new [`FORMAT_VERSION`].
//!
//! Values returned by marked calls are stored once each ([`Event::Value`]) and referred to by id
//! from the [`Event::Call`]s that returned them, so a large value read back a hundred times costs
//! its size once. So are the results of HTTP exchanges ([`Event::Http`]).
//!
//! Every WASI call on a descriptor is one [`Event::Sys`], in the order the program made it. The
//! bytes such calls read or write are cut into content-defined chunks ([`Event::Chunk`]), each
//! stored once: a file read twice, or written as it was read, costs its size once.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::store::disk::open_regular_path;

/// The first bytes of every tape file; `devstash inspect` uses them to tell a tape from an entry.
pub const TAPE_MAGIC: &[u8] = crate::store::listing::TAPE_START;

/// Version of the tape format written by this runner. Version 2 holds every result of the
/// WASI calls on descriptors (files, stdio, sockets), so that a replay touches no host file;
/// a version 1 tape cannot be replayed without them.
pub const FORMAT_VERSION: u32 = 2;

/// Largest tape file read: what a recording writes at most, and room for its header.
pub const MAX_TAPE_FILE: u64 = super::record::MAX_TAPE + (1 << 20);

/// Longest first line a reader looks for, in bytes.
const MAX_FIRST_LINE: usize = 128;

/// The readable second line of a tape (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapeHeader {
    /// File name of the recorded module.
    pub module: String,
    /// XXH3-128 (hex) of the recorded module's bytes (the hash that also names its
    /// compilation, so a replay gets it for free).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub module_xxh3: String,
    /// blake3 (hex) of the recorded module's bytes, on tapes recorded before `module_xxh3`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub module_blake3: String,
    /// Version of the devstash that recorded the tape.
    pub devstash: String,
    /// When the recording was made (RFC 3339, UTC).
    pub created: String,
    /// The same, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Number of events in the body.
    pub events: u64,
}

/// Event kinds, as numbered on disk. Numbers are never reused.
pub mod kind {
    /// [`super::Invocation`]
    pub const INVOCATION: u16 = 1;
    /// [`super::SiteRecord`]
    pub const SITE: u16 = 2;
    /// [`super::ValueRecord`]
    pub const VALUE: u16 = 3;
    /// [`super::CallRecord`]
    pub const CALL: u16 = 4;
    /// [`super::WallReading`]
    pub const WALL_CLOCK: u16 = 5;
    /// Monotonic clock reading, nanoseconds (u64).
    pub const MONOTONIC_CLOCK: u16 = 6;
    /// Random bytes handed to the guest.
    pub const RANDOM: u16 = 7;
    /// [`super::OutputChunk`]
    pub const OUTPUT: u16 = 9;
    /// [`super::ExitRecord`]
    pub const EXIT: u16 = 10;
    /// [`super::HttpRecord`]
    pub const HTTP: u16 = 11;
    /// A secret's keyed hash handed to the guest (32 bytes).
    pub const SECRET: u16 = 12;
    /// [`super::SysRecord`]
    pub const SYS: u16 = 13;
    /// A chunk of file contents (bytes read or written), stored once: [`super::SysData`]
    /// refers to chunks by their order on the tape.
    pub const CHUNK: u16 = 14;
    /// [`super::RefFile`]
    pub const REF_FILE: u16 = 15;
}

/// How the recorded run was started and what its environment looked like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    /// The guest's `argv`, starting with the program name.
    pub argv: Vec<String>,
    /// The guest's environment.
    pub env: Vec<(String, String)>,
    /// Resolution the wall clock reported, in nanoseconds.
    pub wall_resolution_ns: u64,
    /// Resolution the monotonic clock reported, in nanoseconds.
    pub monotonic_resolution_ns: u64,
    /// Whether stdin, stdout and stderr were terminals.
    pub tty: [bool; 3],
    /// The variables whose values [`Invocation::env`] holds redacted, each with the keyed hash
    /// of its value (see `home::Keys::env`): a replay given the value checks it against it.
    pub secret_env: Vec<(String, [u8; 32])>,
    /// Names the key of those hashes (`home::Keys::id`), so that a replay by another user can
    /// say that it cannot check a value rather than call it wrong.
    pub key_id: String,
    /// Request headers named secret with `--redact-header` (lowercase): a replay keys HTTP
    /// exchanges as the recording did.
    pub redact_headers: Vec<String>,
    /// The guest paths of the granted folders, in order: descriptors 3, 4, … (for naming files
    /// in reports and `--verify` diffs).
    pub preopens: Vec<String>,
}

/// How a WASI call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SysResult {
    /// It returned this errno (0: success).
    Errno(u16),
    /// It trapped, with this message (a pointer outside memory, as WASI requires).
    Trap(String),
}

/// The variable part of what a WASI call returned: the bytes it read into the guest's buffers,
/// or the bytes the guest wrote to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SysData {
    /// Nothing (or bytes written to stdout or stderr, which [`Event::Output`] holds).
    None,
    /// The bytes, as chunks ([`Event::Chunk`], by their order on the tape).
    Chunks(Vec<u32>),
    /// Bytes read from a file kept off the tape ([`RefFile`]), at this offset; their number is
    /// the call's result.
    Ref {
        /// [`RefFile::id`]
        file: u32,
        /// Where the read started.
        offset: u64,
        /// blake3 of the bytes read: a replay checks each read, so that a file changed after
        /// its check is a divergence, never other bytes.
        hash: [u8; 32],
    },
}

/// One call of a WASI preview 1 function on descriptors, and what it returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysRecord {
    /// The function, as numbered by `syscall::FUNCS` (numbers are never reused).
    pub func: u16,
    /// Its parameters that are not pointers (descriptors, flags, offsets, cookies): a replay
    /// that calls with others has diverged.
    pub scalars: Vec<u64>,
    /// The paths it was given.
    pub paths: Vec<PathBytes>,
    /// How it ended.
    pub result: SysResult,
    /// Its fixed-size results, in parameter order (a descriptor, a `filestat`, a count…).
    #[serde(with = "serde_bytes_compat")]
    pub out: Vec<u8>,
    /// What it read, or what was written.
    pub data: SysData,
}

/// A path a WASI call was given, as bytes (WASI paths are not always UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathBytes(#[serde(with = "serde_bytes_compat")] pub Vec<u8>);

/// A file the recorded run read that is kept off the tape (`record --by-hash DIR`): a replay
/// reads it from a granted folder, and only if it is the same file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefFile {
    /// Id the reads refer to.
    pub id: u32,
    /// The guest folder it lies in (as given to `--by-hash`).
    pub dir: String,
    /// Its path inside that folder.
    pub path: String,
    /// Its size in bytes.
    pub len: u64,
    /// blake3 of its contents.
    pub hash: [u8; 32],
}

/// A marked call site, written before the first call that refers to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    /// Id the calls refer to.
    pub id: u32,
    /// `module::callee`.
    pub identity: String,
    /// `file:line` of the marker.
    pub location: String,
    /// Code fingerprint (blake3 hex) the site had when recorded.
    pub fingerprint: String,
    /// Rust type name of the value.
    pub value_type: String,
    /// `call` (`stash!`) or `fn` (`#[stashed]`).
    pub kind: String,
    /// The marker's TTL, in seconds.
    pub ttl_secs: Option<u64>,
}

/// A value returned by marked calls, stored once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueRecord {
    /// Id the calls refer to.
    pub id: u32,
    /// The value's bytes (postcard, as the guest encoded it).
    #[serde(with = "serde_bytes_compat")]
    pub bytes: Vec<u8>,
}

/// How a recorded marked call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallOutcome {
    /// The store answered it with this value.
    Hit {
        /// [`ValueRecord::id`]
        value: u32,
    },
    /// It ran and returned this value.
    Computed {
        /// [`ValueRecord::id`]
        value: u32,
        /// How long it ran, in nanoseconds.
        compute_ns: u64,
    },
    /// It ran and returned nothing that devstash stores (an `Err`).
    Failed,
    /// It was still running when the program ended (it trapped or exited inside the call).
    Unfinished,
}

impl CallOutcome {
    /// The value, if the call produced one.
    pub fn value(&self) -> Option<u32> {
        match *self {
            CallOutcome::Hit { value } | CallOutcome::Computed { value, .. } => Some(value),
            CallOutcome::Failed | CallOutcome::Unfinished => None,
        }
    }
}

/// What a marked call read from outside while it ran (recorded for `inspect`; a replay never
/// runs the call, so it needs none of it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InnerReads {
    /// Clock readings.
    pub clock: u32,
    /// Random bytes.
    pub random_bytes: u64,
    /// Bytes of stdin.
    pub stdin_bytes: u64,
}

/// One marked call of the recorded run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// [`SiteRecord::id`]
    pub site: u32,
    /// The entry key.
    pub key: [u8; 32],
    /// The canonical (postcard) argument bytes, for divergence reports.
    #[serde(with = "serde_bytes_compat")]
    pub args: Vec<u8>,
    /// Readable preview of the arguments, when the SDK made one.
    pub preview: Option<String>,
    /// How it ended.
    pub outcome: CallOutcome,
    /// 0 when the program made the call itself; n when it was made inside n marked calls that
    /// were running (a replay answers the outer call and never asks for this one).
    pub depth: u32,
    /// What the call wrote to stdout and stderr while it ran: a replay writes it again when it
    /// answers the call, so the output stays byte for byte that of the recording.
    pub output: Vec<OutputChunk>,
    /// What it read from outside while it ran.
    pub inner: InnerReads,
}

/// One HTTP exchange of the recorded run: a request the guest made through `devstash::http`
/// (answered from the store or the network) and the result it received.
///
/// No secret header value is on it: the key is [`crate::net::Prepared::tape_key`] (secret headers
/// by name only), the preview shows them as `<redacted>`, the request itself is not stored, and
/// `Set-Cookie` is dropped from the stored response as it is from cached ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRecord {
    /// The exchange's key on the tape.
    pub key: [u8; 32],
    /// The request in one line (method and URL), secret header values redacted.
    pub preview: String,
    /// [`ValueRecord::id`] of the `HttpResult` the guest received (postcard, as the protocol
    /// encodes it).
    pub result: u32,
    /// 0 when the program made the request itself; n when it was made inside n marked calls
    /// that were running (a replay answers the outer call and never makes this request).
    pub depth: u32,
}

/// A wall clock reading (time since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WallReading {
    /// Whole seconds.
    pub secs: u64,
    /// Nanoseconds past the second.
    pub nanos: u32,
}

/// A standard output stream of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stream {
    /// stdout
    Stdout,
    /// stderr
    Stderr,
}

/// Bytes the guest wrote to one of its output streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// Which stream.
    pub stream: Stream,
    /// What was written.
    #[serde(with = "serde_bytes_compat")]
    pub bytes: Vec<u8>,
}

/// How the recorded run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit code `devstash record` exited with for the guest.
    pub code: i32,
    /// The trap message, if the guest trapped.
    pub trap: Option<String>,
}

/// One event of a tape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// How the run was started (always the first event).
    Invocation(Box<Invocation>),
    /// A marked site.
    Site(Box<SiteRecord>),
    /// A value returned by marked calls.
    Value(ValueRecord),
    /// A marked call.
    Call(Box<CallRecord>),
    /// A wall clock reading taken by the program.
    WallClock(WallReading),
    /// A monotonic clock reading (nanoseconds) taken by the program.
    MonotonicClock(u64),
    /// Random bytes the program received.
    Random(Vec<u8>),
    /// Bytes the program wrote to stdout or stderr.
    Output(OutputChunk),
    /// How the run ended (always the last event).
    Exit(ExitRecord),
    /// An HTTP exchange.
    Http(Box<HttpRecord>),
    /// The keyed hash of a secret the guest put in a key (see `secret_hash`): a replay hands it
    /// back, so a tape replays without the secret, and the secret is not on it.
    Secret([u8; 32]),
    /// A WASI call on descriptors and its results.
    Sys(Box<SysRecord>),
    /// A chunk of file contents.
    Chunk(Vec<u8>),
    /// A file read by hash, kept off the tape.
    RefFile(Box<RefFile>),
    /// An event of a kind this runner does not know (from a newer devstash).
    Unknown {
        /// Its kind number.
        kind: u16,
        /// Its body's length.
        len: usize,
    },
}

impl Event {
    /// The on-disk kind number.
    pub fn kind(&self) -> u16 {
        match self {
            Event::Invocation(_) => kind::INVOCATION,
            Event::Site(_) => kind::SITE,
            Event::Value(_) => kind::VALUE,
            Event::Call(_) => kind::CALL,
            Event::WallClock(_) => kind::WALL_CLOCK,
            Event::MonotonicClock(_) => kind::MONOTONIC_CLOCK,
            Event::Random(_) => kind::RANDOM,
            Event::Output(_) => kind::OUTPUT,
            Event::Exit(_) => kind::EXIT,
            Event::Http(_) => kind::HTTP,
            Event::Secret(_) => kind::SECRET,
            Event::Sys(_) => kind::SYS,
            Event::Chunk(_) => kind::CHUNK,
            Event::RefFile(_) => kind::REF_FILE,
            Event::Unknown { kind, .. } => *kind,
        }
    }

    /// A short name of an event kind, for summaries.
    pub fn kind_name(kind: u16) -> &'static str {
        match kind {
            kind::INVOCATION => "invocation",
            kind::SITE => "site",
            kind::VALUE => "value",
            kind::CALL => "marked call",
            kind::WALL_CLOCK => "wall clock",
            kind::MONOTONIC_CLOCK => "monotonic clock",
            kind::RANDOM => "random",
            kind::OUTPUT => "output",
            kind::EXIT => "exit",
            kind::HTTP => "http exchange",
            kind::SECRET => "secret hash",
            kind::SYS => "wasi call",
            kind::CHUNK => "file chunk",
            kind::REF_FILE => "file by hash",
            _ => "unknown",
        }
    }

    /// Appends this event's frame to `out`. `scratch` is a buffer the caller keeps, so that
    /// recording a clock reading allocates nothing.
    pub fn encode_into(&self, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        fn body<T: Serialize + ?Sized>(v: &T, scratch: &mut Vec<u8>) {
            let buf = std::mem::take(scratch);
            *scratch = postcard::to_extend(v, buf).expect("tape events always serialize");
        }
        scratch.clear();
        match self {
            Event::Invocation(v) => body(v, scratch),
            Event::Site(v) => body(v, scratch),
            Event::Value(v) => body(v, scratch),
            Event::Call(v) => body(v, scratch),
            Event::WallClock(v) => body(v, scratch),
            Event::MonotonicClock(v) => body(v, scratch),
            Event::Random(v) | Event::Chunk(v) => body(&serde_bytes_compat::Bytes(v), scratch),
            Event::Output(v) => body(v, scratch),
            Event::Exit(v) => body(v, scratch),
            Event::Http(v) => body(v, scratch),
            Event::Secret(v) => body(v, scratch),
            Event::Sys(v) => body(v, scratch),
            Event::RefFile(v) => body(v, scratch),
            Event::Unknown { .. } => unreachable!("unknown events are never written"),
        }
        // The frame: varint kind, varint body length, body (what postcard writes for
        // `(u16, bytes)`).
        let frame = (self.kind(), serde_bytes_compat::Bytes(scratch));
        let buf = std::mem::take(out);
        *out = postcard::to_extend(&frame, buf).expect("a frame always serializes");
    }

    /// Decodes one frame's body.
    fn decode(kind: u16, body: &[u8]) -> Result<Event, postcard::Error> {
        fn take<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, postcard::Error> {
            // Trailing bytes are fields appended by a newer writer: ignored.
            postcard::take_from_bytes(b).map(|(v, _rest)| v)
        }
        Ok(match kind {
            kind::INVOCATION => Event::Invocation(Box::new(take(body)?)),
            kind::SITE => Event::Site(Box::new(take(body)?)),
            kind::VALUE => Event::Value(take(body)?),
            kind::CALL => Event::Call(Box::new(take(body)?)),
            kind::WALL_CLOCK => Event::WallClock(take(body)?),
            kind::MONOTONIC_CLOCK => Event::MonotonicClock(take(body)?),
            kind::RANDOM => Event::Random(take::<serde_bytes_compat::ByteBuf>(body)?.0),
            kind::CHUNK => Event::Chunk(take::<serde_bytes_compat::ByteBuf>(body)?.0),
            kind::SYS => Event::Sys(Box::new(take(body)?)),
            kind::REF_FILE => Event::RefFile(Box::new(take(body)?)),
            kind::OUTPUT => Event::Output(take(body)?),
            kind::EXIT => Event::Exit(take(body)?),
            kind::HTTP => Event::Http(Box::new(take(body)?)),
            kind::SECRET => Event::Secret(take(body)?),
            other => Event::Unknown {
                kind: other,
                len: body.len(),
            },
        })
    }
}

/// A tape read from disk and verified.
#[derive(Debug, Clone)]
pub struct Tape {
    /// The readable header.
    pub header: TapeHeader,
    /// The events, in recording order.
    pub events: Vec<Event>,
    /// The encoded size of each event's frame, in the same order (for `inspect`).
    pub frame_sizes: Vec<usize>,
    /// The file's size.
    pub file_len: usize,
}

/// Encodes a tape file from its header and its already-encoded events.
pub fn encode(header: &TapeHeader, body: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("a tape header always serializes");
    let mut hasher = blake3::Hasher::new();
    hasher.update(&json);
    hasher.update(b"\n");
    hasher.update(body);
    let magic = std::str::from_utf8(TAPE_MAGIC).expect("the magic is ASCII");
    let first = format!("{magic} {FORMAT_VERSION} {}\n", hasher.finalize().to_hex());
    let mut out = Vec::with_capacity(first.len() + json.len() + 1 + body.len());
    out.extend_from_slice(first.as_bytes());
    out.extend_from_slice(&json);
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// Why a file could not be read as a tape. Every message says what is wrong; the caller adds
/// the file's name and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapeError {
    /// It does not start with the tape magic.
    NotATape,
    /// Written in another format version.
    Version(String),
    /// The checksum does not match, or the structure is broken.
    Corrupt(String),
}

impl std::fmt::Display for TapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TapeError::NotATape => write!(
                f,
                "it is not a devstash tape (it does not start with `devstash-tape`)"
            ),
            TapeError::Version(v) => write!(
                f,
                "it is in tape format {v}, and this devstash reads format {FORMAT_VERSION}: use \
                 the devstash that recorded it, or record it again"
            ),
            TapeError::Corrupt(why) => write!(f, "it is corrupt: {why}"),
        }
    }
}

impl Tape {
    /// Reads and verifies the tape at `path`: a regular file (a FIFO or a device must not block
    /// or flood the reader) of at most [`MAX_TAPE_FILE`] bytes.
    pub fn read(path: &Path) -> Result<Tape> {
        let cannot = || format!("cannot read tape {}", path.display());
        let file = open_regular_path(path).with_context(cannot)?;
        let meta = file.metadata().with_context(cannot)?;
        if meta.len() > MAX_TAPE_FILE {
            bail!(
                "cannot use tape {}: it is {} bytes, more than a recording writes",
                path.display(),
                meta.len()
            );
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::io::Read::read_to_end(&mut std::io::Read::take(&file, MAX_TAPE_FILE), &mut bytes)
            .with_context(cannot)?;
        match Tape::decode(&bytes) {
            Ok(tape) => Ok(tape),
            Err(e @ TapeError::Corrupt(_)) => bail!(
                "cannot use tape {}: {e}; record it again with `devstash record`",
                path.display()
            ),
            Err(e) => bail!("cannot use tape {}: {e}", path.display()),
        }
    }

    /// Decodes and verifies a tape file's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Tape, TapeError> {
        let corrupt = |why: &str| TapeError::Corrupt(why.to_string());
        if bytes.is_empty() {
            return Err(corrupt("the file is empty"));
        }
        if !bytes.starts_with(TAPE_MAGIC) {
            return Err(if TAPE_MAGIC.starts_with(bytes) {
                corrupt("it is cut short")
            } else {
                TapeError::NotATape
            });
        }
        let first_end = bytes
            .iter()
            .take(MAX_FIRST_LINE)
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupt("its first line is unterminated (cut short?)"))?;
        let first = std::str::from_utf8(&bytes[..first_end])
            .map_err(|_| corrupt("its first line is not text"))?;
        let mut parts = first.split(' ');
        let magic = std::str::from_utf8(TAPE_MAGIC).expect("the magic is ASCII");
        if parts.next() != Some(magic) {
            return Err(TapeError::NotATape);
        }
        let version = parts
            .next()
            .ok_or_else(|| corrupt("its first line has no format version"))?;
        if version != FORMAT_VERSION.to_string() {
            return Err(TapeError::Version(version.chars().take(16).collect()));
        }
        let sum = parts
            .next()
            .ok_or_else(|| corrupt("its first line has no checksum"))?;
        let rest = &bytes[first_end + 1..];
        if blake3::hash(rest).to_hex().as_str() != sum {
            return Err(corrupt(
                "its checksum does not match its contents (a changed byte, or the file was cut \
                 short)",
            ));
        }
        let json_end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupt("its header line is unterminated"))?;
        let header: TapeHeader = serde_json::from_slice(&rest[..json_end])
            .map_err(|e| TapeError::Corrupt(format!("its header does not parse ({e})")))?;
        let mut body = &rest[json_end + 1..];
        let mut events = Vec::new();
        let mut frame_sizes = Vec::new();
        while !body.is_empty() {
            let before = body.len();
            let ((kind, frame), after): ((u16, &[u8]), &[u8]) = postcard::take_from_bytes(body)
                .map_err(|e| {
                    TapeError::Corrupt(format!("event {} is not a frame ({e})", events.len() + 1))
                })?;
            let event = Event::decode(kind, frame).map_err(|e| {
                TapeError::Corrupt(format!(
                    "event {} ({}) does not decode ({e})",
                    events.len() + 1,
                    Event::kind_name(kind)
                ))
            })?;
            if let Event::Sys(c) = &event
                && usize::from(c.func) >= super::syscall::FUNCS.len()
            {
                return Err(TapeError::Corrupt(format!(
                    "event {} is a WASI call numbered {}, which this devstash does not know",
                    events.len() + 1,
                    c.func
                )));
            }
            events.push(event);
            frame_sizes.push(before - after.len());
            body = after;
        }
        if events.len() as u64 != header.events {
            return Err(TapeError::Corrupt(format!(
                "its header announces {} events and it holds {}",
                header.events,
                events.len()
            )));
        }
        Ok(Tape {
            header,
            events,
            frame_sizes,
            file_len: bytes.len(),
        })
    }
}

/// Byte strings as postcard bytes (a varint length and the bytes), not as a sequence of numbers
/// (which postcard would also write as one byte each, but decode one element at a time).
mod serde_bytes_compat {
    use serde::de::{Deserializer, Visitor};
    use serde::ser::Serializer;
    use serde::{Deserialize, Serialize};

    /// A borrowed byte string that serializes as bytes.
    pub struct Bytes<'a>(pub &'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    /// An owned byte string that deserializes from bytes.
    pub struct ByteBuf(pub Vec<u8>);

    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v.to_vec()))
                }
                fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v))
                }
            }
            d.deserialize_bytes(V)
        }
    }

    /// For `#[serde(with = …)]` on `Vec<u8>` fields.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        Bytes(v).serialize(s)
    }

    /// For `#[serde(with = …)]` on `Vec<u8>` fields.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        ByteBuf::deserialize(d).map(|b| b.0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_events() -> Vec<Event> {
        vec![
            Event::Invocation(Box::new(Invocation {
                argv: vec!["app.wasm".into(), "--n".into(), "3".into()],
                env: vec![("LANG".into(), "C".into())],
                wall_resolution_ns: 1,
                monotonic_resolution_ns: 1,
                tty: [false; 3],
                secret_env: vec![("API_KEY".into(), [5; 32])],
                key_id: "0123456789abcdef".into(),
                redact_headers: vec!["x-secret".into()],
                preopens: vec!["/work".into()],
            })),
            Event::Site(Box::new(SiteRecord {
                id: 0,
                identity: "app::fetch".into(),
                location: "src/main.rs:9".into(),
                fingerprint: "ab".repeat(32),
                value_type: "u64".into(),
                kind: "fn".into(),
                ttl_secs: Some(86_400),
            })),
            Event::Value(ValueRecord {
                id: 0,
                bytes: vec![7, 0, 1],
            }),
            Event::Call(Box::new(CallRecord {
                site: 0,
                key: [3; 32],
                args: vec![3, b'E', b'U', b'R'],
                preview: Some("(\"EUR\",)".into()),
                outcome: CallOutcome::Computed {
                    value: 0,
                    compute_ns: 5,
                },
                depth: 0,
                output: vec![OutputChunk {
                    stream: Stream::Stdout,
                    bytes: b"fetching\n".to_vec(),
                }],
                inner: InnerReads::default(),
            })),
            Event::WallClock(WallReading {
                secs: 1_700_000_000,
                nanos: 5,
            }),
            Event::MonotonicClock(123_456),
            Event::Random(vec![1, 2, 3, 4]),
            Event::Chunk(b"input\n".to_vec()),
            Event::Sys(Box::new(SysRecord {
                func: 14,
                scalars: vec![0],
                paths: vec![PathBytes(b"a/b".to_vec())],
                result: SysResult::Errno(0),
                out: vec![6, 0, 0, 0],
                data: SysData::Chunks(vec![0]),
            })),
            Event::RefFile(Box::new(RefFile {
                id: 0,
                dir: "/data".into(),
                path: "big.csv".into(),
                len: 10,
                hash: [1; 32],
            })),
            Event::Output(OutputChunk {
                stream: Stream::Stderr,
                bytes: b"warn\n".to_vec(),
            }),
            Event::Http(Box::new(HttpRecord {
                key: [9; 32],
                preview: "GET http://127.0.0.1:8080/x (authorization: <redacted>)".into(),
                result: 0,
                depth: 0,
            })),
            Event::Secret([4; 32]),
            Event::Exit(ExitRecord {
                code: 0,
                trap: None,
            }),
        ]
    }

    pub(crate) fn sample_file() -> Vec<u8> {
        let events = sample_events();
        let (mut body, mut scratch) = (Vec::new(), Vec::new());
        for e in &events {
            e.encode_into(&mut body, &mut scratch);
        }
        let header = TapeHeader {
            module: "app.wasm".into(),
            module_xxh3: "cd".repeat(16),
            module_blake3: String::new(),
            devstash: "0.1.0".into(),
            created: "2025-01-01T00:00:00Z".into(),
            created_ms: 1_735_689_600_000,
            events: events.len() as u64,
        };
        encode(&header, &body)
    }

    /// The header of a tape of `events` events from a newer devstash.
    fn bare_header(events: u64) -> TapeHeader {
        TapeHeader {
            module: "m".into(),
            module_xxh3: String::new(),
            module_blake3: String::new(),
            devstash: "9.9.9".into(),
            created: String::new(),
            created_ms: 0,
            events,
        }
    }

    #[test]
    fn round_trip() {
        let tape = Tape::decode(&sample_file()).unwrap();
        assert_eq!(tape.events, sample_events());
        assert_eq!(tape.header.module, "app.wasm");
        assert!(
            String::from_utf8_lossy(&sample_file()).starts_with("devstash-tape 2 "),
            "readable first line"
        );
    }

    #[test]
    fn every_flip_and_truncation_is_an_error() {
        let good = sample_file();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(Tape::decode(&bad).is_err(), "flip at {i} accepted");
        }
        for n in 0..good.len() {
            assert!(Tape::decode(&good[..n]).is_err(), "cut at {n} accepted");
        }
    }

    #[test]
    fn a_wasi_call_of_unknown_number_is_refused() {
        let mut body = Vec::new();
        Event::Sys(Box::new(SysRecord {
            func: super::super::syscall::FUNCS.len() as u16,
            scalars: vec![],
            paths: vec![],
            result: SysResult::Errno(0),
            out: vec![],
            data: SysData::None,
        }))
        .encode_into(&mut body, &mut Vec::new());
        let header = bare_header(1);
        let e = Tape::decode(&encode(&header, &body)).unwrap_err();
        assert!(
            matches!(&e, TapeError::Corrupt(m) if m.contains("WASI call numbered 36")),
            "{e:?}"
        );
    }

    #[test]
    fn foreign_and_future_files() {
        assert_eq!(
            Tape::decode(b"\0asm\x01\0\0\0").unwrap_err(),
            TapeError::NotATape
        );
        assert_eq!(
            Tape::decode(b"devstash-tape 9 abc\n{}\n").unwrap_err(),
            TapeError::Version("9".into())
        );
    }

    #[test]
    fn unknown_kinds_are_skipped_and_trailing_fields_ignored() {
        let mut body = Vec::new();
        Event::MonotonicClock(5).encode_into(&mut body, &mut Vec::new());
        // A kind from the future, then a known kind with a field appended by a newer writer.
        postcard::to_extend(
            &(99u16, serde_bytes_compat::Bytes(b"{\"x\":1}")),
            Vec::new(),
        )
        .map(|v| body.extend(v))
        .unwrap();
        let mut longer = postcard::to_allocvec(&7u64).unwrap();
        longer.push(42);
        body.extend(
            postcard::to_allocvec(&(kind::MONOTONIC_CLOCK, serde_bytes_compat::Bytes(&longer)))
                .unwrap(),
        );
        let header = bare_header(3);
        let tape = Tape::decode(&encode(&header, &body)).unwrap();
        assert_eq!(
            tape.events,
            vec![
                Event::MonotonicClock(5),
                Event::Unknown { kind: 99, len: 7 },
                Event::MonotonicClock(7)
            ]
        );
    }
}
