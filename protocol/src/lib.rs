//! The guest/host protocol of devstash, defined once for both sides.
//!
//! A guest (any language that targets `wasm32-wasip1`) talks to the devstash runner through a
//! handful of functions imported from the wasm module [`IMPORT_MODULE`] (`"devstash"`). Every
//! pointer and length is a 32-bit offset into the guest's exported `memory`; every structured
//! value crosses the boundary as [postcard](https://postcard.jamesmunns.com/wire-format) bytes
//! (see [`codec`]). The runner bounds-checks everything it is handed and traps the guest with a
//! clear message when something is out of range.
//!
//! # Imports (ABI version 2)
//!
//! | import | signature | what it does |
//! |---|---|---|
//! | `site_register` | `(desc_ptr: i32, desc_len: i32) -> i32` | Registers a marked call site described by a postcard [`SiteDesc`]. Returns a site handle (>= 0) or a negative [`Status`]. |
//! | `stash_get` | `(site: i32, args_ptr: i32, args_len: i32, flags: i32, out_ptr: i32) -> i32` | Looks up the call with the given canonical argument bytes. Returns [`Status::Hit`] and writes the value's length (u64, little endian) at `out_ptr`, or [`Status::Miss`] and writes a ticket (u64) at `out_ptr`. `flags` is a set of [`get_flags`]. |
//! | `stash_take` | `(dst_ptr: i32, dst_len: i32) -> i32` | Copies the value of the last hit into guest memory. `dst_len` must equal the length `stash_get` reported. Returns [`Status::Hit`], or [`Status::Corrupt`]. |
//! | `stash_read` | `(offset: i64, dst_ptr: i32, dst_len: i32) -> i32` | Copies bytes `offset..offset + dst_len` of the value of the last hit into guest memory, so that a value can be read in parts (a length prefix, then the bytes straight into their final buffer). The value stays pending until the next `stash_get`. Read front to back: start each read at or after the end of the one before (the runner refuses to go back over a large value). Returns [`Status::Hit`], or [`Status::Corrupt`]. |
//! | `stash_put` | `(ticket: i64, val_ptr: i32, val_len: i32, preview_ptr: i32, preview_len: i32) -> i32` | Stores the value computed for a missed call. The preview is optional UTF-8 text describing the arguments (`preview_len` 0 for none). |
//! | `stash_forget` | `(ticket: i64) -> i32` | The call for this ticket finished without a value to store (for example an `Err`). |
//! | `stash_begin` | `(ticket: i64) -> i32` | The missed call for this ticket starts running now (optional): its recorded compute time counts from here, so that work the guest does before the call (an arguments preview) is not counted. |
//! | `stash_end` | `(ticket: i64) -> i32` | The call for this ticket has returned (optional): its compute time ends here, before the value is encoded. |
//! | `secret_hash` | `(ptr: i32, len: i32, out_ptr: i32) -> i32` | Writes 32 bytes at `out_ptr`: a keyed hash of the bytes at `ptr`, under a key of the runner's user that no guest can read. A guest puts it in a key in place of a secret, so that the secret reaches no entry, tape or report. A recording keeps the hashes handed out and a replay hands them back in order. |
//! | `log` | `(level: i32, msg_ptr: i32, msg_len: i32) -> i32` | Writes a log line through the runner's logger ([`LogLevel`]). |
//! | `http_request` | `(req_ptr: i32, req_len: i32, out_ptr: i32) -> i32` | Performs (or answers from the cache) the request described by a postcard [`HttpRequest`]. Returns [`Status::Hit`] and writes the length (u64) of a postcard [`HttpResult`] at `out_ptr`; fetch it with `stash_take`. Refusals and network failures are `Err` values in the result, never traps. |
//!
//! A guest calls `site_register` once per site (once per set of concrete types, for a generic
//! one) and keeps the handle. A hit costs one
//! `stash_get` and one `stash_take` (or a few `stash_read`s); a miss costs `stash_get`, the real
//! call, and `stash_put`.
//!
//! A large value is verified as it is read, so its checksum is judged by the read that reaches
//! its last byte. [`Status::Corrupt`] from that read means the stored value is damaged: throw
//! away everything read of it and call `stash_get` again with [`get_flags::REFRESH`], which
//! returns a ticket to recompute it.
//!
//! # Keys
//!
//! The runner derives an entry's key with [`entry_key`]: blake3 over the ABI version, the site
//! identity, the site's code fingerprint, its [`SiteDesc::types`] (everything else the compiler
//! resolved that decides the value: the callee's concrete path, the argument and value types,
//! the value type's shape) and the canonical encoding of the arguments, each length-prefixed so
//! that no two different inputs share a byte stream. The runner treats argument bytes as opaque:
//! their encoding is the guest SDK's, and it must be canonical (equal arguments give equal
//! bytes, different arguments different bytes). The Rust SDK's is described in its `key`
//! module.
//!
//! # Sites in the module
//!
//! The SDK macros also describe every marked site in the custom section [`SITES_SECTION`]: one
//! JSON object per line (see [`SiteRecord`]), so that `devstash inspect app.wasm` can list them
//! without running the module.

#![no_std]
#![warn(missing_docs)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// The version of this protocol. A runner refuses a module built against another version.
pub const ABI_VERSION: u32 = 2;

/// The wasm import module every devstash import lives in.
pub const IMPORT_MODULE: &str = "devstash";

/// Name of the custom section in which the SDK macros describe the module's marked sites.
pub const SITES_SECTION: &str = "devstash.sites";

/// Import names, one constant each, so that both sides spell them the same.
pub mod import {
    /// `site_register(desc_ptr, desc_len) -> i32`
    pub const SITE_REGISTER: &str = "site_register";
    /// `stash_get(site, args_ptr, args_len, flags, out_ptr) -> i32`
    pub const STASH_GET: &str = "stash_get";
    /// `stash_take(dst_ptr, dst_len) -> i32`
    pub const STASH_TAKE: &str = "stash_take";
    /// `stash_read(offset, dst_ptr, dst_len) -> i32`
    pub const STASH_READ: &str = "stash_read";
    /// `stash_put(ticket, val_ptr, val_len, preview_ptr, preview_len) -> i32`
    pub const STASH_PUT: &str = "stash_put";
    /// `stash_forget(ticket) -> i32`
    pub const STASH_FORGET: &str = "stash_forget";
    /// `log(level, msg_ptr, msg_len) -> i32`
    pub const LOG: &str = "log";
    /// `http_request(req_ptr, req_len, out_ptr) -> i32`
    pub const HTTP_REQUEST: &str = "http_request";
    /// `stash_begin(ticket) -> i32`
    pub const STASH_BEGIN: &str = "stash_begin";
    /// `stash_end(ticket) -> i32`
    pub const STASH_END: &str = "stash_end";
    /// `secret_hash(ptr, len, out_ptr) -> i32`
    pub const SECRET_HASH: &str = "secret_hash";
    /// Every import of this ABI version.
    pub const ALL: &[&str] = &[
        SITE_REGISTER,
        STASH_GET,
        STASH_TAKE,
        STASH_READ,
        STASH_PUT,
        STASH_FORGET,
        LOG,
        HTTP_REQUEST,
        STASH_BEGIN,
        STASH_END,
        SECRET_HASH,
    ];
}

/// Flags of `stash_get`.
pub mod get_flags {
    /// Treat a stored value as missing: the guest could not decode it (its type changed), so it
    /// asks for a ticket to store a fresh one.
    pub const REFRESH: i32 = 1;
}

/// Status codes returned by the imports. Non-negative values are successes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    /// The call's value is stored; its length was written at `out_ptr`.
    Hit = 0,
    /// Nothing usable is stored; run the call and hand its value to `stash_put` with the ticket
    /// written at `out_ptr`.
    Miss = 1,
    /// A handle or ticket the runner does not know.
    UnknownHandle = -1,
    /// The value could not be stored (disk full, read-only cache); the run goes on uncached.
    StoreFailed = -2,
    /// `stash_take` was called with nothing pending or with the wrong length.
    NothingPending = -3,
    /// The stored value failed verification as it was read: discard what was read of it and
    /// call `stash_get` again with [`get_flags::REFRESH`].
    Corrupt = -4,
}

impl Status {
    /// The status for a raw return value, if it is one this version defines.
    pub fn from_raw(raw: i32) -> Option<Status> {
        Some(match raw {
            0 => Status::Hit,
            1 => Status::Miss,
            -1 => Status::UnknownHandle,
            -2 => Status::StoreFailed,
            -3 => Status::NothingPending,
            -4 => Status::Corrupt,
            _ => return None,
        })
    }
}

/// Severity of a guest log line, as passed to the `log` import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum LogLevel {
    /// Fine-grained detail.
    Trace = 0,
    /// Diagnostics for developers.
    Debug = 1,
    /// Normal progress.
    Info = 2,
    /// Something looks wrong but the run goes on.
    Warn = 3,
    /// Something failed.
    Error = 4,
}

impl LogLevel {
    /// The level for a raw value; anything unknown is treated as `Info`.
    pub fn from_raw(raw: i32) -> LogLevel {
        match raw {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            _ => LogLevel::Info,
        }
    }
}

/// How a site was marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteKind {
    /// `stash!(callee(args))` on a call expression.
    Call,
    /// `#[stashed]` on a function definition.
    Fn,
}

/// A marked call site, as the guest describes it to `site_register` (postcard-encoded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteDesc {
    /// The ABI version the guest was built against; must equal [`ABI_VERSION`].
    pub abi_version: u32,
    /// Module path of the marker, e.g. `quickstart` or `app::net`.
    pub module_path: String,
    /// The callee as the compiler resolved it, without generic arguments: the site's identity
    /// (e.g. `app::csv_src::load`, `app::Client::fetch`, `app::offset::score` for a closure
    /// bound to `score`).
    pub callee: String,
    /// Source file of the marker.
    pub file: String,
    /// Line of the marker.
    pub line: u32,
    /// Time to live in seconds; `None` keeps the entry until it is cleared.
    pub ttl_secs: Option<u64>,
    /// blake3 (hex) of the marked code, so that editing it invalidates its entries.
    pub fingerprint: String,
    /// Rust type name of the stored value.
    pub value_type: String,
    /// How the site was marked.
    pub kind: SiteKind,
    /// Everything else that decides the value, as the compiler resolved it for this
    /// instantiation of the site: the callee's full path with its generic arguments, the
    /// argument and value types, and a fingerprint of the value type's shape. Opaque to the
    /// runner, which folds it into every key of the site.
    pub types: String,
}

impl SiteDesc {
    /// The site's identity: the resolved callee path.
    pub fn identity(&self) -> String {
        self.callee.clone()
    }
}

/// One line of the [`SITES_SECTION`] custom section (JSON), written at compile time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    /// ABI version of the SDK that emitted the record.
    pub abi: u32,
    /// Module path of the site.
    pub module: String,
    /// Callee or function name.
    pub callee: String,
    /// Source file.
    pub file: String,
    /// Source line.
    pub line: u32,
    /// TTL as written in the marker (e.g. `1d`), if any.
    pub ttl: Option<String>,
    /// `call` or `fn`.
    pub kind: String,
    /// Code fingerprint (blake3 hex).
    pub fingerprint: String,
}

/// An HTTP request the guest asks the host to make (`http_request`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Request headers, in order.
    pub headers: Vec<(String, String)>,
    /// Request body (empty for none).
    pub body: Vec<u8>,
    /// Timeout for the whole request in milliseconds; `None` for the runner's default.
    pub timeout_ms: Option<u64>,
    /// Store successful (2xx) responses and answer later identical requests from the store.
    pub cache: Option<HttpCache>,
}

/// Caching of an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCache {
    /// Time to live in seconds; `None` keeps the response until it is cleared.
    pub ttl_secs: Option<u64>,
}

/// An HTTP response, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Response headers, in order.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

/// Why an HTTP request produced no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpErrorKind {
    /// The host is not in `--allow-net`.
    NotAllowed,
    /// The runner is offline (`--offline`) and has no stored response. (A replay answers from
    /// its tape, and stops on a request the tape does not hold.)
    Offline,
    /// The connection failed (refused, DNS, TLS).
    Connect,
    /// The request took longer than its timeout.
    Timeout,
    /// The request was malformed (bad URL, method or header).
    InvalidRequest,
    /// Anything else (protocol error, response too large).
    Other,
}

/// A failed HTTP request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpError {
    /// What kind of failure.
    pub kind: HttpErrorKind,
    /// A message for people, saying what to do where there is something to do.
    pub message: String,
}

/// Request headers that carry secrets (compared case-insensitively). Their values are never
/// written to disk, to tapes, or into keys in clear; a runner may add more
/// (`--redact-header`).
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
];

/// Whether a header name is one of [`SECRET_HEADERS`].
pub fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// What `http_request` hands back.
pub type HttpResult = Result<HttpResponse, HttpError>;

/// The key of a stored entry: blake3 over the ABI version, the site identity, the site's code
/// fingerprint, its resolved types ([`SiteDesc::types`]) and the canonical argument bytes, each
/// length-prefixed.
pub fn entry_key(site_identity: &str, fingerprint: &str, types: &str, args: &[u8]) -> [u8; 32] {
    KeyHasher::for_site(site_identity, fingerprint, types).key(args)
}

/// Incremental form of [`entry_key`]: the site part is hashed once, each call adds its arguments.
#[derive(Clone)]
pub struct KeyHasher {
    site: blake3::Hasher,
}

impl KeyHasher {
    /// Hashes the per-site prefix of the key.
    pub fn for_site(site_identity: &str, fingerprint: &str, types: &str) -> KeyHasher {
        let mut site = blake3::Hasher::new();
        site.update(b"devstash-key");
        site.update(&ABI_VERSION.to_le_bytes());
        for part in [
            site_identity.as_bytes(),
            fingerprint.as_bytes(),
            types.as_bytes(),
        ] {
            site.update(&(part.len() as u64).to_le_bytes());
            site.update(part);
        }
        KeyHasher { site }
    }

    /// The key of one call of this site with the given canonical argument bytes.
    pub fn key(&self, args: &[u8]) -> [u8; 32] {
        let mut h = self.site.clone();
        h.update(&(args.len() as u64).to_le_bytes());
        h.update(args);
        *h.finalize().as_bytes()
    }
}

/// The one codec both sides use for values and arguments: postcard, whose wire format is
/// specified and stable across 1.x releases.
pub mod codec {
    use alloc::vec::Vec;
    use serde::{Serialize, de::DeserializeOwned};

    /// Encodes a value.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(value)
    }

    /// Decodes a value, refusing trailing bytes so that a value of another type is not
    /// silently accepted.
    pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
        let (value, rest) = postcard::take_from_bytes(bytes)?;
        if rest.is_empty() {
            Ok(value)
        } else {
            Err(postcard::Error::DeserializeBadEncoding)
        }
    }
}
