//! The team cache: entries shared through a store a team already runs (S3-compatible, Redis,
//! GCS, Azure Blob, WebDAV, a shared folder), through Apache OpenDAL.
//!
//! [`RemoteTier`] puts a remote behind the local cache directory:
//! - **read**: a local hit never touches the network. A local miss looks the entry up in the
//!   remote; an object is used only if it verifies (signed with Ed25519 by a writer whose
//!   public key the project trusts, for this namespace and this key, its header naming the key
//!   asked for), and is then copied into the local cache (signed there with the user's own key)
//!   and returned. Anything else is a miss, with a warning that says why.
//! - **write** (`read-write`, with a signing key): a value is stored locally at once and
//!   uploaded in the background (a bounded queue); the run's end waits for the uploads, up to a
//!   deadline. Uploads are write-once where the store can (S3 `If-None-Match: *`): a second
//!   writer of the same entry changes nothing. A value recomputed because the remote copy had
//!   expired replaces it.
//! - **failure**: every operation has a deadline; the first one missed, or the third transport
//!   error, turns the remote off for the rest of the run, with one warning. Nothing the remote
//!   does fails a run.
//!
//! An object is `devstash-remote 1 <key id> <signature>\n`, then the entry's header (JSON, one
//! line) and its payload. The signature is Ed25519 over the domain, the namespace, the key and
//! the blake3 of the rest, so an object copied under another key or into another namespace does
//! not verify.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use opendal::{ErrorKind, Operator};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::disk::DiskTier;
use super::{EntryRef, Found, Header, Lookup, Tier, Value};

/// What a run may do with the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read only (the default): what developers run.
    Read,
    /// Read, and upload what is computed: what a trusted writer (CI on a protected branch) runs.
    ReadWrite,
    /// Not used.
    Off,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "read" => Ok(Mode::Read),
            "read-write" => Ok(Mode::ReadWrite),
            "off" => Ok(Mode::Off),
            other => Err(format!(
                "remote mode {other:?}: use read, read-write or off"
            )),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Read => "read",
            Mode::ReadWrite => "read-write",
            Mode::Off => "off",
        })
    }
}

/// How to reach a remote and what to trust in it (see `team` for where each comes from).
#[derive(Clone)]
pub struct Settings {
    /// The URL as the user wrote it (no credentials: those come from the environment).
    pub url: String,
    /// Options added to the URL's (a Redis password from the environment).
    pub options: Vec<(String, String)>,
    /// What the run may do.
    pub mode: Mode,
    /// The writers whose objects are trusted.
    pub trusted: Vec<VerifyingKey>,
    /// The namespace objects are kept under: changing it disowns everything written before.
    pub namespace: String,
    /// The writer's key, for `read-write`.
    pub signing: Option<SigningKey>,
    /// Deadline of a connection.
    pub connect_timeout: Duration,
    /// Deadline of each operation.
    pub timeout: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the signing key.
        write!(
            f,
            "Settings({}, {}, namespace {:?}, {} trusted key(s), signing {})",
            self.url,
            self.mode,
            self.namespace,
            self.trusted.len(),
            self.signing.is_some()
        )
    }
}

/// The id of a public key, as objects name their signer: 16 hex digits.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&blake3::hash(key.as_bytes()).as_bytes()[..8])
}

/// The remote's counts for a run's summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RemoteStats {
    /// Entries found in the remote (after a local miss) and verified.
    pub hits: u64,
    /// Lookups the remote could not answer with a verified entry.
    pub misses: u64,
    /// Entries uploaded.
    pub uploads: u64,
    /// Failures: transport errors, timeouts, objects that did not verify, failed uploads.
    pub errors: u64,
    /// Whether the remote was turned off during the run.
    pub off: bool,
}

/// Magic of an object's first line.
const MAGIC: &str = "devstash-remote";
/// Version of the object format.
const VERSION: u32 = 1;
/// Longest first line read.
const MAX_FIRST_LINE: usize = 256;
/// Largest object read: as large as an entry a 32-bit guest can read back, and its header.
const MAX_OBJECT: u64 = (4 << 30) + (1 << 20);
/// Uploads queued at once; a store past that waits for one to finish (up to the timeout).
const QUEUE: usize = 16;
/// How long the end of a run waits for the uploads still going.
pub const UPLOAD_DEADLINE: Duration = Duration::from_secs(30);
/// Transport errors after which the remote is off for the rest of the run.
const MAX_ERRORS: u64 = 3;
/// Warnings about single objects printed in one run (the count is in the summary).
const MAX_OBJECT_WARNINGS: u64 = 5;

/// The message an object's signature covers.
fn signed_message(namespace: &str, key_hex: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(96 + namespace.len());
    m.extend_from_slice(format!("{MAGIC} {VERSION}\n").as_bytes());
    m.extend_from_slice(&(namespace.len() as u64).to_le_bytes());
    m.extend_from_slice(namespace.as_bytes());
    m.extend_from_slice(key_hex.as_bytes());
    m.extend_from_slice(blake3::hash(body).as_bytes());
    m
}

/// An entry as an object of `namespace`, signed with `key`.
pub fn encode_object(
    namespace: &str,
    header: &Header,
    payload: &[u8],
    key: &SigningKey,
) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("a header always serializes");
    let mut body = Vec::with_capacity(json.len() + 1 + payload.len());
    body.extend_from_slice(&json);
    body.push(b'\n');
    body.extend_from_slice(payload);
    let sig = key.sign(&signed_message(namespace, &header.key, &body));
    let mut out = format!(
        "{MAGIC} {VERSION} {} {}\n",
        key_id(&key.verifying_key()),
        hex::encode(sig.to_bytes())
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The header and payload of an object fetched as entry `key_hex` of `namespace`, if it is
/// signed by one of `trusted` for that namespace and key; else why not.
pub fn decode_object(
    bytes: &[u8],
    namespace: &str,
    key_hex: &str,
    trusted: &[VerifyingKey],
) -> Result<(Header, Vec<u8>), String> {
    let end = bytes
        .iter()
        .take(MAX_FIRST_LINE)
        .position(|&b| b == b'\n')
        .ok_or("it is not a devstash object (no signature line)")?;
    let first = std::str::from_utf8(&bytes[..end]).map_err(|_| "its first line is not text")?;
    let mut parts = first.split(' ');
    if parts.next() != Some(MAGIC) {
        return Err("it is not a devstash object (unsigned)".into());
    }
    if parts.next() != Some(&VERSION.to_string()) {
        return Err("it is in another object format version".into());
    }
    let (Some(id), Some(sig_hex), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("its signature line is malformed".into());
    };
    let key = trusted
        .iter()
        .find(|k| key_id(k) == id)
        .ok_or_else(|| format!("it is signed by key {id}, which is not among the trusted keys"))?;
    let sig_bytes: [u8; 64] = hex::decode(sig_hex)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or("its signature is malformed")?;
    let body = &bytes[end + 1..];
    key.verify(
        &signed_message(namespace, key_hex, body),
        &Signature::from_bytes(&sig_bytes),
    )
    .map_err(|_| {
        "its signature does not verify (changed, or stored under another key or namespace)"
            .to_string()
    })?;
    let json_end = body
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("its header is unterminated")?;
    let header: Header = serde_json::from_slice(&body[..json_end])
        .map_err(|e| format!("its header does not parse ({e})"))?;
    if header.key != key_hex {
        return Err("its header names another key".into());
    }
    let payload = &body[json_end + 1..];
    if payload.len() as u64 != header.payload_len {
        return Err("its payload is not the length its header says".into());
    }
    Ok((header, payload.to_vec()))
}

/// The state of a remote during a run.
#[derive(Default)]
struct State {
    stats: RemoteStats,
    /// Whether the connection was tried (see [`Remote::preflight`]).
    probed: bool,
    /// Transport errors so far.
    transport_errors: u64,
    /// Object warnings printed.
    object_warnings: u64,
}

/// A remote store, and what the run has done with it.
pub struct Remote {
    op: Operator,
    /// Started on the first operation: a run whose lookups all hit locally starts no thread.
    rt: OnceLock<Option<Runtime>>,
    settings: Settings,
    state: Arc<Mutex<State>>,
    queue: Arc<Semaphore>,
    uploads: Mutex<Vec<JoinHandle<()>>>,
    /// Whether writes can be made write-once.
    if_not_exists: bool,
}

/// Why a remote cannot be opened.
#[derive(Debug)]
pub struct OpenError(pub String);

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpenError {}

/// Installs the HTTP client every remote uses, once: rustls with the ring provider (the one
/// devstash's other HTTP uses), and the connection deadline.
fn install_http(connect_timeout: Duration) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .build();
        if let Ok(client) = client {
            opendal::HttpTransporter::install_default(
                opendal_http_transport_reqwest::ReqwestTransport::new(client),
            );
        }
    });
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Prints a warning about the remote.
fn warn(url: &str, what: &str) {
    crate::output::say(&format!("devstash: warning: remote {url}: {what}"));
}

impl Remote {
    /// Opens the remote `settings` describe (no network yet: the first lookup connects).
    pub fn open(settings: Settings) -> Result<Remote, OpenError> {
        opendal::init_default_registry();
        let op = Operator::from_uri((settings.url.as_str(), settings.options.clone()))
            .map_err(|e| {
                OpenError(format!(
                    "cannot use remote {}: {}",
                    settings.url,
                    e.message()
                ))
            })?
            .layer(
                opendal::layers::RetryLayer::new()
                    .with_max_times(1)
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_millis(200)),
            );
        let if_not_exists = op.info().capability().write_with_if_not_exists;
        Ok(Remote {
            op,
            rt: OnceLock::new(),
            settings,
            state: Arc::new(Mutex::new(State::default())),
            queue: Arc::new(Semaphore::new(QUEUE)),
            uploads: Mutex::new(Vec::new()),
            if_not_exists,
        })
    }

    /// The settings it was opened with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether it is still on.
    fn on(&self) -> bool {
        self.settings.mode != Mode::Off && !lock(&self.state).stats.off
    }

    /// The object path of `key_hex`.
    fn path(&self, key_hex: &str) -> String {
        format!("{}/{key_hex}", self.settings.namespace)
    }

    /// Notes a failed operation: a timeout or a refusal turns the remote off at once, transport
    /// errors after [`MAX_ERRORS`]; each with one warning.
    fn failed(&self, what: &str, e: Failure) {
        let mut s = lock(&self.state);
        s.stats.errors += 1;
        if s.stats.off {
            return;
        }
        let off = match &e {
            Failure::NotFound => None,
            Failure::Timeout => Some(format!(
                "{what}: no answer within {}; the remote is off for the rest of this run",
                crate::output::human_duration(self.settings.timeout)
            )),
            Failure::Refused(why) => Some(format!(
                "{what}: refused ({why}); check the credentials in the environment (AWS_*, \
                 DEVSTASH_REDIS_PASSWORD, …); the remote is off for the rest of this run"
            )),
            Failure::Transport(why) => {
                s.transport_errors += 1;
                (s.transport_errors >= MAX_ERRORS).then(|| {
                    format!(
                        "{what}: {why} ({MAX_ERRORS} errors); the remote is off for the rest of \
                         this run"
                    )
                })
            }
        };
        if let Some(msg) = off {
            s.stats.off = true;
            drop(s);
            warn(&self.settings.url, &msg);
        }
    }

    /// The runtime the operations run on, with the HTTP client, started on first use; `None`
    /// if it cannot start (the failure is then the operation's).
    fn rt(&self) -> Option<&Runtime> {
        self.rt
            .get_or_init(|| {
                install_http(self.settings.connect_timeout);
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("devstash-remote")
                    .enable_all()
                    .build()
                    .ok()
            })
            .as_ref()
    }

    /// Runs `fut` with the operation deadline.
    fn run<T>(
        &self,
        fut: impl std::future::IntoFuture<Output = opendal::Result<T>>,
    ) -> Result<T, Failure> {
        let limit = self.settings.timeout;
        self.rt()
            .ok_or_else(|| Failure::Refused("cannot start the remote's threads".into()))?
            .block_on(async move { tokio::time::timeout(limit, fut.into_future()).await })
            .map_err(|_| Failure::Timeout)?
            .map_err(Failure::from)
    }

    /// The host and port the remote is reached at, when the URL says (a Redis server, an S3
    /// or WebDAV endpoint).
    fn address(&self) -> Option<(String, u16)> {
        let url = url::Url::parse(&self.settings.url).ok()?;
        let target = match url.scheme() {
            "redis" => url,
            "webdav" => url::Url::parse(&self.settings.url.replacen("webdav", "http", 1)).ok()?,
            _ => {
                let endpoint = url.query_pairs().find(|(k, _)| k == "endpoint")?.1;
                url::Url::parse(&endpoint).ok()?
            }
        };
        let port = target.port_or_known_default().unwrap_or(6379);
        Some((target.host_str()?.to_string(), port))
    }

    /// Before the first operation of a run: a connection to the remote's address within the
    /// connect timeout, so that a server that is down costs that once, not a client's
    /// reconnection attempts on every lookup. False (and the remote off) if it fails.
    fn preflight(&self) -> bool {
        {
            let mut s = lock(&self.state);
            if s.probed {
                return !s.stats.off;
            }
            s.probed = true;
        }
        let Some((host, port)) = self.address() else {
            return true;
        };
        let limit = self.settings.connect_timeout;
        let reached = if self.settings.url.starts_with("redis:") {
            self.redis_ping(&host, port)
        } else {
            tcp_connect(&host, port, limit)
        };
        match reached {
            Ok(()) => true,
            Err(why) => {
                let mut s = lock(&self.state);
                s.stats.errors += 1;
                s.stats.off = true;
                drop(s);
                warn(
                    &self.settings.url,
                    &format!("{why}; the remote is off for the rest of this run"),
                );
                false
            }
        }
    }

    /// Connects to a Redis server, authenticates as OpenDAL will, and pings it, each within the
    /// connect timeout.
    fn redis_ping(&self, host: &str, port: u16) -> Result<(), String> {
        let limit = self.settings.connect_timeout;
        let db = url::Url::parse(&self.settings.url)
            .ok()
            .and_then(|u| {
                u.path_segments()?
                    .next()
                    .and_then(|s| s.parse::<i64>().ok())
            })
            .unwrap_or(0);
        let password = self
            .settings
            .options
            .iter()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.clone());
        let mut settings = redis::RedisConnectionInfo::default().set_db(db);
        if let Some(pw) = password {
            settings = settings.set_password(pw);
        }
        let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
            host.to_string(),
            port,
        ))
        .map(|i| i.set_redis_settings(settings));
        let failed = |e: redis::RedisError| {
            if e.kind() == redis::ErrorKind::AuthenticationFailed
                || e.to_string().contains("WRONGPASS")
                || e.to_string().contains("NOAUTH")
            {
                format!("the server refused the credentials ({e}); check DEVSTASH_REDIS_PASSWORD")
            } else {
                format!(
                    "cannot connect to {host}:{port} within {} ({e})",
                    crate::output::human_duration(limit)
                )
            }
        };
        let client = info.and_then(redis::Client::open).map_err(failed)?;
        let mut conn = client.get_connection_with_timeout(limit).map_err(failed)?;
        let _ = conn.set_read_timeout(Some(limit));
        let _ = conn.set_write_timeout(Some(limit));
        redis::cmd("PING")
            .query::<String>(&mut conn)
            .map(|_| ())
            .map_err(failed)
    }

    /// The verified entry `at` holds in the remote, if any.
    pub fn fetch(&self, at: &EntryRef) -> Option<(Header, Vec<u8>)> {
        if !self.on() || self.settings.trusted.is_empty() || !self.preflight() {
            return None;
        }
        let path = self.path(&at.key_hex);
        let read = self.run(self.op.read(&path));
        let bytes = match read {
            Ok(buf) if buf.len() as u64 <= MAX_OBJECT => buf.to_vec(),
            Ok(buf) => {
                let mut s = lock(&self.state);
                s.stats.misses += 1;
                s.stats.errors += 1;
                drop(s);
                warn(
                    &self.settings.url,
                    &format!(
                        "ignoring object {path}: {} is larger than any entry",
                        buf.len()
                    ),
                );
                return None;
            }
            Err(Failure::NotFound) => {
                lock(&self.state).stats.misses += 1;
                return None;
            }
            Err(e) => {
                lock(&self.state).stats.misses += 1;
                self.failed("a lookup failed", e);
                return None;
            }
        };
        match decode_object(
            &bytes,
            &self.settings.namespace,
            &at.key_hex,
            &self.settings.trusted,
        ) {
            Ok(found) => {
                lock(&self.state).stats.hits += 1;
                Some(found)
            }
            Err(why) => {
                let mut s = lock(&self.state);
                s.stats.misses += 1;
                s.stats.errors += 1;
                s.object_warnings += 1;
                let shown = s.object_warnings <= MAX_OBJECT_WARNINGS;
                drop(s);
                if shown {
                    warn(
                        &self.settings.url,
                        &format!("ignoring object {path}: {why}; the value is computed instead"),
                    );
                }
                None
            }
        }
    }

    /// Queues the upload of an entry (read-write with a signing key only). `replace` overwrites
    /// an object already there (the remote copy had expired).
    pub fn upload(&self, header: &Header, payload: &[u8], replace: bool) {
        let Some(key) = &self.settings.signing else {
            return;
        };
        if self.settings.mode != Mode::ReadWrite || !self.on() || !self.preflight() {
            return;
        }
        let bytes = encode_object(&self.settings.namespace, header, payload, key);
        let path = self.path(&header.key);
        let limit = self.settings.timeout;
        let Some(rt) = self.rt() else { return };
        let permit = rt.block_on(async {
            tokio::time::timeout(limit, self.queue.clone().acquire_owned()).await
        });
        let Ok(Ok(permit)) = permit else {
            self.failed("an upload waited too long for the queue", Failure::Timeout);
            return;
        };
        let (op, state, url) = (
            self.op.clone(),
            self.state.clone(),
            self.settings.url.clone(),
        );
        let once = self.if_not_exists && !replace;
        let handle = rt.spawn(async move {
            let write = op.write_with(&path, bytes).if_not_exists(once);
            let result = tokio::time::timeout(limit, write).await;
            drop(permit);
            let mut s = lock(&state);
            match result {
                Ok(Ok(_)) => s.stats.uploads += 1,
                // Another writer stored it first: the same entry, nothing to do.
                Ok(Err(e)) if e.kind() == ErrorKind::ConditionNotMatch => {}
                Ok(Err(e)) => {
                    s.stats.errors += 1;
                    if !s.stats.off {
                        s.stats.off = matches!(e.kind(), ErrorKind::PermissionDenied);
                        drop(s);
                        warn(&url, &format!("an upload failed: {}", e.message()));
                    }
                }
                Err(_) => {
                    s.stats.errors += 1;
                    if !s.stats.off {
                        s.stats.off = true;
                        drop(s);
                        warn(&url, "an upload did not finish in time; the remote is off");
                    }
                }
            }
        });
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(handle);
    }

    /// Waits for the uploads still going (up to [`UPLOAD_DEADLINE`]), then returns the run's
    /// counts.
    pub fn finish(&self) -> RemoteStats {
        let handles = std::mem::take(&mut *self.uploads.lock().unwrap_or_else(|p| p.into_inner()));
        if let (false, Some(rt)) = (handles.is_empty(), self.rt()) {
            let n = handles.len();
            let all = async move {
                for h in handles {
                    let _ = h.await;
                }
            };
            if rt
                .block_on(async { tokio::time::timeout(UPLOAD_DEADLINE, all).await })
                .is_err()
            {
                warn(
                    &self.settings.url,
                    &format!(
                        "uploads still going after {}: left unfinished (of {n})",
                        crate::output::human_duration(UPLOAD_DEADLINE)
                    ),
                );
            }
        }
        lock(&self.state).stats
    }

    /// What `remote check` reports: each line a check and its outcome; whether all passed.
    pub fn check(&self) -> (String, bool) {
        let mut out = String::new();
        let mut ok = true;
        let probe = format!("{}/.devstash-check", self.settings.namespace);
        if !self.preflight() {
            let _ = write!(out, "reachable  no (see the warning above)");
            return (out, false);
        }
        let reach = self.run(self.op.stat(&probe));
        let reachable = matches!(reach, Ok(_) | Err(Failure::NotFound));
        let _ = writeln!(
            out,
            "reachable  {}",
            match &reach {
                Ok(_) | Err(Failure::NotFound) => "yes".to_string(),
                Err(e) => format!("no ({e})"),
            }
        );
        ok &= reachable;
        if reachable {
            let read = self.run(self.op.read(&probe));
            let readable = matches!(read, Ok(_) | Err(Failure::NotFound));
            let _ = writeln!(
                out,
                "readable   {}",
                match &read {
                    Ok(_) | Err(Failure::NotFound) => "yes".to_string(),
                    Err(e) => format!("no ({e})"),
                }
            );
            ok &= readable;
            let write = if self.settings.mode == Mode::ReadWrite {
                let w = self.run(self.op.write(&probe, b"devstash remote check\n".to_vec()));
                let _ = self.run(self.op.delete(&probe));
                match w {
                    Ok(_) => "yes".to_string(),
                    Err(e) => {
                        ok = false;
                        format!("no ({e})")
                    }
                }
            } else {
                format!("not tried (mode {})", self.settings.mode)
            };
            let _ = writeln!(out, "writable   {write}");
        }
        let trusted: Vec<String> = self.settings.trusted.iter().map(key_id).collect();
        let signing = match &self.settings.signing {
            Some(k) => {
                let id = key_id(&k.verifying_key());
                let listed = trusted.contains(&id);
                if !listed {
                    ok = false;
                }
                format!(
                    "key {id} set{}",
                    if listed {
                        ", listed in public_keys"
                    } else {
                        "; NOT listed in public_keys: readers would ignore what it signs"
                    }
                )
            }
            None if self.settings.mode == Mode::ReadWrite => {
                ok = false;
                "no DEVSTASH_REMOTE_SIGNING_KEY: nothing would be uploaded".into()
            }
            None => "no key (not needed to read)".into(),
        };
        let _ = writeln!(out, "signing    {signing}");
        let _ = write!(
            out,
            "trusted    {}",
            if trusted.is_empty() {
                ok = false;
                "no public_keys: nothing read from the remote would be used".to_string()
            } else {
                trusted.join(", ")
            }
        );
        (out, ok)
    }

    /// How many objects the remote holds in this namespace, and their total size.
    pub fn usage(&self) -> Result<(u64, u64), String> {
        if !self.op.info().capability().list {
            return Err(format!(
                "a {} store cannot list what it holds; ask the store itself (for Redis: \
                 `redis-cli --scan --pattern '*{}/*'`)",
                self.op.info().scheme(),
                self.settings.namespace
            ));
        }
        let dir = format!("{}/", self.settings.namespace);
        let entries = self
            .run(self.op.list_with(&dir).recursive(true))
            .map_err(|e| e.to_string())?;
        let mut count = 0;
        let mut bytes = 0;
        for e in entries {
            if e.metadata().is_file() && !e.path().ends_with(".devstash-check") {
                count += 1;
                bytes += e.metadata().content_length();
            }
        }
        Ok((count, bytes))
    }
}

/// A TCP connection to `host:port` within `limit`, or why not.
fn tcp_connect(host: &str, port: u16, limit: Duration) -> Result<(), String> {
    let addrs = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut last = "no address".to_string();
    for a in addrs {
        match std::net::TcpStream::connect_timeout(&a, limit) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!(
        "cannot connect to {host}:{port} within {} ({last})",
        crate::output::human_duration(limit)
    ))
}

/// How an operation failed.
#[derive(Debug)]
enum Failure {
    NotFound,
    Timeout,
    Refused(String),
    Transport(String),
}

impl From<opendal::Error> for Failure {
    fn from(e: opendal::Error) -> Failure {
        match e.kind() {
            ErrorKind::NotFound => Failure::NotFound,
            ErrorKind::PermissionDenied | ErrorKind::ConfigInvalid | ErrorKind::Unsupported => {
                Failure::Refused(e.message().to_string())
            }
            _ => Failure::Transport(e.message().to_string()),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotFound => f.write_str("not found"),
            Failure::Timeout => f.write_str("no answer in time"),
            Failure::Refused(why) => write!(f, "refused: {why}"),
            Failure::Transport(why) => f.write_str(why),
        }
    }
}

/// The local cache with a remote behind it (see the module docs).
pub struct RemoteTier {
    local: DiskTier,
    remote: Remote,
    /// Keys a lookup found a value for in this run (local or remote): a value stored for one
    /// of them was recomputed (the value had expired) and replaces the remote copy.
    fetched: Mutex<HashSet<String>>,
}

impl RemoteTier {
    /// `local`, with `remote` behind it.
    pub fn new(local: DiskTier, remote: Remote) -> RemoteTier {
        RemoteTier {
            local,
            remote,
            fetched: Mutex::new(HashSet::new()),
        }
    }
}

impl RemoteTier {
    /// Notes that a lookup of `at` found a value.
    fn seen(&self, at: &EntryRef) {
        self.fetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(at.key_hex.clone());
    }
}

impl Tier for RemoteTier {
    fn get(&self, at: &EntryRef) -> Lookup {
        let local = self.local.get(at);
        if let Lookup::Found(_) = local {
            // Stored again in this run, it was recomputed (expired): the remote copy, most
            // likely this one, must be replaced too.
            self.seen(at);
            return local;
        }
        let Some((header, payload)) = self.remote.fetch(at) else {
            return local;
        };
        // Kept locally (signed with the user's key), so the next run hits without the network.
        if let Err(e) = self.local.put(at, &header, &payload) {
            tracing::debug!("cannot keep a remote entry locally: {e:#}");
        }
        self.seen(at);
        Lookup::Found(Found {
            created_ms: header.created_ms,
            compute_ns: header.compute_ns,
            args_preview: header.args_preview.clone(),
            value: Value::Bytes(payload),
        })
    }

    fn put(&self, at: &EntryRef, header: &Header, payload: &[u8]) -> anyhow::Result<()> {
        self.local.put(at, header, payload)?;
        let replace = self
            .fetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&at.key_hex);
        self.remote.upload(header, payload, replace);
        Ok(())
    }

    fn location(&self) -> String {
        self.local.location()
    }

    fn finish(&self) -> Option<RemoteStats> {
        Some(self.remote.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(key: &str, payload: &[u8]) -> Header {
        crate::store::entry::test_header(key, payload.len())
    }

    #[test]
    fn objects_verify_only_for_their_key_namespace_and_trusted_writer() {
        let writer = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let trusted = [writer.verifying_key()];
        let key = "ab".repeat(32);
        let obj = encode_object("v1", &header(&key, b"42"), b"42", &writer);
        let (h, p) = decode_object(&obj, "v1", &key, &trusted).unwrap();
        assert_eq!((h.key.as_str(), p.as_slice()), (key.as_str(), &b"42"[..]));

        let e = |r: Result<(Header, Vec<u8>), String>| r.unwrap_err();
        assert!(e(decode_object(&obj, "v2", &key, &trusted)).contains("does not verify"));
        assert!(
            e(decode_object(&obj, "v1", &"cd".repeat(32), &trusted)).contains("does not verify")
        );
        let foreign = encode_object("v1", &header(&key, b"42"), b"42", &other);
        assert!(e(decode_object(&foreign, "v1", &key, &trusted)).contains("not among the trusted"));
        let body_start = obj.iter().position(|&b| b == b'\n').unwrap() + 1;
        assert!(e(decode_object(&obj[body_start..], "v1", &key, &trusted)).contains("unsigned"));
        for i in body_start..obj.len() {
            let mut bad = obj.clone();
            bad[i] ^= 1;
            assert!(
                decode_object(&bad, "v1", &key, &trusted).is_err(),
                "flip at {i}"
            );
        }
        for n in 0..obj.len() {
            assert!(
                decode_object(&obj[..n], "v1", &key, &trusted).is_err(),
                "cut at {n}"
            );
        }
        assert!(decode_object(&obj, "v1", &key, &[]).is_err());
    }
}
