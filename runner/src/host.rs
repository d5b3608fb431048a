//! The `devstash` host imports (see `devstash_protocol` for the contract) and the per-run state
//! behind them.
//!
//! The guest is untrusted: every pointer and length is bounds-checked against its memory, every
//! handle and ticket is checked, and sizes are capped. A guest that breaks the protocol is
//! trapped with a message naming the import and what was wrong; the host never panics on guest
//! input.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use devstash_protocol::{
    ABI_VERSION, HttpErrorKind, HttpRequest, HttpResponse, HttpResult, IMPORT_MODULE, KeyHasher,
    LogLevel, SiteDesc, SiteKind, Status, codec, get_flags, import,
};
use wasmtime::{Caller, Extern, Linker, Memory, Result, bail, format_err};

pub mod bridge;

use crate::net::{self, NetPolicy};
use crate::store::names::{entry_name, entry_stem};
use crate::store::pattern::Pattern;
use crate::store::{EntryRef, Header, Lookup, ReadError, Tier, Value};

/// Largest site descriptor a guest may register, in bytes.
const MAX_SITE_DESC: usize = 64 * 1024;
/// Most sites one run may register.
const MAX_SITES: usize = 1 << 16;
/// Most host memory the registered sites of one run may take, in bytes (without
/// `--max-memory`; with it, they count against it).
pub const MAX_SITE_BYTES: u64 = 64 << 20;
/// Host memory a registered site takes besides its descriptor (its key hasher, its names).
const SITE_OVERHEAD: u64 = 4096;
/// Most missed calls that may be running at once (nested marked calls).
const MAX_TICKETS: usize = 1 << 16;
/// Longest log line taken from a guest, in bytes.
const MAX_LOG: usize = 64 * 1024;
/// Longest arguments preview kept, in bytes.
const MAX_PREVIEW: usize = 256;
/// Largest HTTP request a guest may hand over, in bytes.
const MAX_HTTP_REQUEST: usize = 256 << 20;

/// What the run does with marked calls.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Run every marked call and store nothing (`--no-cache`, `DEVSTASH_SKIP=1`).
    pub no_cache: bool,
    /// Recompute the entries that match (`--refresh[=PATTERN]`).
    pub refresh: Option<Pattern>,
    /// No network (`--offline`): expired entries are served, with a warning, rather than
    /// recomputed where recomputing would need the network.
    pub offline: bool,
}

/// Counters for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls answered from the store.
    pub hits: u64,
    /// Calls that ran.
    pub misses: u64,
    /// Values written to the store.
    pub stored: u64,
    /// Of the misses, those whose entry had expired.
    pub expired: u64,
    /// Of the misses, those whose entry failed verification.
    pub corrupt: u64,
    /// Recorded compute time of the hits, in nanoseconds.
    pub saved_ns: u64,
    /// The team cache's counts, when there is one.
    /// HTTP requests refused: their host is not in `--allow-net`.
    pub refused: u64,
    /// HTTP requests with no stored response under `--offline`.
    pub offline_misses: u64,
    /// Whether `--refresh`'s pattern matched a lookup of this run.
    pub refresh_matched: bool,
    /// `--refresh`'s pattern when it matched no lookup (set by [`StashHost::finish`]).
    pub refresh_unmatched: Option<String>,
    pub remote: Option<crate::store::remote::RemoteStats>,
}

/// Memory the host holds on the guest's behalf, counted against `--max-memory` together with the
/// guest's own linear memory, so that no import lets a guest grow the host past the limit.
#[derive(Debug, Default)]
pub struct Budget {
    /// `--max-memory`, in bytes.
    limit: Option<u64>,
    /// The guest's linear memory, in bytes (kept by the runtime's resource limiter).
    guest: AtomicU64,
    /// What the host holds for the guest, in bytes.
    host: AtomicU64,
}

/// The error a guest stops with when it, or what the host holds for it, would pass
/// `--max-memory`.
#[derive(Debug, Clone)]
pub struct OverBudget {
    /// What the memory was wanted for.
    pub what: String,
    /// Bytes wanted in all.
    pub wanted: u64,
    /// The limit.
    pub limit: u64,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the guest needed {} ({}) but --max-memory is {}",
            crate::output::human_size(self.wanted),
            self.what,
            crate::output::human_size(self.limit)
        )
    }
}

impl std::error::Error for OverBudget {}

impl Budget {
    /// A budget of `limit` bytes (`None`: only the per-item caps apply).
    pub fn new(limit: Option<u64>) -> Budget {
        Budget {
            limit,
            ..Budget::default()
        }
    }

    /// The limit, if any.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Takes `n` bytes for the host; an error naming `what` if that passes the limit.
    pub fn charge(&self, what: &str, n: u64) -> std::result::Result<(), OverBudget> {
        let host = self.host.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if let Some(limit) = self.limit {
            let wanted = host.saturating_add(self.guest.load(Ordering::Relaxed));
            if wanted > limit {
                self.host.fetch_sub(n, Ordering::Relaxed);
                return Err(OverBudget {
                    what: what.to_string(),
                    wanted,
                    limit,
                });
            }
        }
        Ok(())
    }

    /// Gives back `n` bytes the host no longer holds.
    pub fn release(&self, n: u64) {
        let _ = self
            .host
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(n))
            });
    }

    /// Whether the guest's memory may grow to `desired` bytes; an error if that, with what the
    /// host holds, passes the limit.
    pub fn grow_guest(&self, desired: u64) -> std::result::Result<(), OverBudget> {
        if let Some(limit) = self.limit {
            let wanted = desired.saturating_add(self.host.load(Ordering::Relaxed));
            if wanted > limit {
                return Err(OverBudget {
                    what: "its linear memory".into(),
                    wanted,
                    limit,
                });
            }
        }
        self.guest.store(desired, Ordering::Relaxed);
        Ok(())
    }

    /// Bytes left under the limit (`None` without one).
    pub fn left(&self) -> Option<u64> {
        self.limit.map(|l| {
            l.saturating_sub(
                self.host
                    .load(Ordering::Relaxed)
                    .saturating_add(self.guest.load(Ordering::Relaxed)),
            )
        })
    }
}

/// A registered site.
struct Site {
    desc: SiteDesc,
    identity: String,
    location: String,
    /// Sanitized, capped identity: the first part of every entry file name of this site.
    stem: String,
    hasher: KeyHasher,
}

/// A missed call whose value is being computed.
struct Ticket {
    site: usize,
    key: [u8; 32],
    /// When the call started: its `stash_get`, or its `stash_begin`.
    started: Instant,
    /// When it returned (`stash_end`), if the guest said.
    ended: Option<Instant>,
}

/// A marked call, as a [`CallHook`] sees it.
pub struct Call<'a> {
    /// The site as the guest described it.
    pub desc: &'a SiteDesc,
    /// The site's identity: the callee as the compiler resolved it (see `SiteDesc::callee`).
    pub identity: &'a str,
    /// The marker's source location, `file:line`.
    pub location: &'a str,
    /// The entry key of this call.
    pub key: &'a [u8; 32],
}

/// An HTTP exchange, as a [`CallHook`] sees it.
pub struct Exchange<'a> {
    /// Its key on a tape ([`net::Prepared::tape_key`]): method, URL, body and headers, with no
    /// secret header value in it.
    pub key: &'a [u8; 32],
    /// One line describing the request, secret header values redacted.
    pub preview: &'a str,
}

/// Lets `devstash record` and `devstash replay` see and steer the marked calls and the HTTP
/// exchanges of a run.
///
/// `devstash run` installs no hook, so its lookups pay one `Option` check and nothing else. A
/// recording hook observes every value returned (hit) or computed (miss); a replay hook answers
/// every lookup itself and refuses (with an error that traps the guest) any call its tape cannot
/// answer, so that no marked call runs during a replay.
pub trait CallHook: Send {
    /// Asked first on every lookup, before the store. `Ok(Some(value))` answers the call with
    /// `value`; `Ok(None)` lets the store answer; an error traps the guest. `refresh` is set when
    /// the guest could not decode the value it was given and asks again.
    fn answer(&mut self, call: &Call<'_>, args: &[u8], refresh: bool) -> Result<Option<Arc<[u8]>>> {
        let _ = (call, args, refresh);
        Ok(None)
    }
    /// The store answered the call with `value`; `preview` is the stored arguments preview.
    fn hit(&mut self, call: &Call<'_>, args: &[u8], value: &[u8], preview: Option<&str>) {
        let _ = (call, args, value, preview);
    }
    /// The call missed and is about to run in the guest, under `ticket`.
    fn miss(&mut self, call: &Call<'_>, args: &[u8], ticket: u64) {
        let _ = (call, args, ticket);
    }
    /// The call of `ticket` ran and produced `value` (handed to the store unless caching is off).
    fn computed(&mut self, call: &Call<'_>, ticket: u64, value: &[u8], preview: Option<&str>) {
        let _ = (call, ticket, value, preview);
    }
    /// The call of `ticket` ran and produced nothing to store (an `Err`).
    fn failed(&mut self, call: &Call<'_>, ticket: u64) {
        let _ = (call, ticket);
    }
    /// Asked first on every HTTP request the guest makes (once its URL and method are valid),
    /// before the store and the network. `Ok(Some(result))` answers the request with `result`;
    /// `Ok(None)` lets the run answer it; an error traps the guest.
    fn http_answer(&mut self, exchange: &Exchange<'_>) -> Result<Option<HttpResult>> {
        let _ = exchange;
        Ok(None)
    }
    /// The run answered the request (from the store or the network) with `result`, which the
    /// guest receives as it is.
    fn http_done(&mut self, exchange: &Exchange<'_>, result: &HttpResult) {
        let _ = (exchange, result);
    }
    /// The guest asked for the keyed hash of a secret (`secret_hash`) and the run computed
    /// `hash`; what is returned is what the guest gets (a replay hands back the recorded one).
    fn secret(&mut self, hash: [u8; 32]) -> Result<[u8; 32]> {
        Ok(hash)
    }
    /// An error that stops the guest, once the hook cannot go on (a recording past its limit);
    /// asked after every call that gave the hook something to keep.
    fn check(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A value waiting for `stash_read` / `stash_take`: a stored value (kept as read, no copy; a
/// large one not read yet), other bytes, or bytes a [`CallHook`] answered with.
enum Pending {
    Stored {
        value: Value,
        /// Entry file name, for the warning if it fails verification as it is read.
        name: String,
        compute_ns: u64,
    },
    Bytes(Vec<u8>),
    Answered(Arc<[u8]>),
}

impl Pending {
    fn len(&self) -> u64 {
        match self {
            Pending::Stored { value, .. } => value.len(),
            Pending::Bytes(b) => b.len() as u64,
            Pending::Answered(v) => v.len() as u64,
        }
    }

    fn read(&mut self, offset: u64, dst: &mut [u8]) -> Result<(), ReadError> {
        let bytes: &[u8] = match self {
            Pending::Stored { value, .. } => return value.read(offset, dst),
            Pending::Bytes(b) => b,
            Pending::Answered(v) => v,
        };
        let range = usize::try_from(offset)
            .ok()
            .and_then(|o| Some(o..o.checked_add(dst.len())?))
            .filter(|r| r.end <= bytes.len())
            .ok_or(ReadError::OutOfRange)?;
        dst.copy_from_slice(&bytes[range]);
        Ok(())
    }
}

/// The state behind the imports, one per run.
pub struct StashHost {
    tier: Box<dyn Tier>,
    policy: Policy,
    net: NetPolicy,
    sites: Vec<Site>,
    tickets: HashMap<u64, Ticket>,
    next_ticket: u64,
    pending: Option<Pending>,
    store_failed: bool,
    hook: Option<Box<dyn CallHook>>,
    /// Key of `secret_hash` (from the user's key).
    secret_key: [u8; 32],
    /// XXH3-128 (hex) of the running module, written into every entry it stores.
    writer: Option<String>,
    budget: Arc<Budget>,
    /// Host memory the registered sites take.
    site_bytes: u64,
    /// The guest's `host_alloc` export, for `host::call`'s responses (see [`bridge`]).
    bridge_alloc: Option<wasmtime::TypedFunc<i32, i32>>,
    /// The guest's exported memory, once an import has looked it up (see [`memory`]).
    guest_memory: Option<Memory>,
    /// Counters for the summary line.
    pub stats: Stats,
}

impl StashHost {
    /// Ends the run's use of the store (a team cache's uploads are waited for) and returns the
    /// counters for the summary line.
    pub fn finish(&mut self) -> Stats {
        let mut stats = std::mem::take(&mut self.stats);
        stats.remote = self.tier.finish();
        if let Some(p) = &self.policy.refresh
            && !stats.refresh_matched
        {
            stats.refresh_unmatched = Some(p.text().to_string());
        }
        stats
    }

    /// State for a run that keeps its entries in `tier`.
    pub fn new(tier: Box<dyn Tier>, policy: Policy) -> StashHost {
        StashHost {
            tier,
            policy,
            net: NetPolicy::default(),
            sites: Vec::new(),
            tickets: HashMap::new(),
            next_ticket: 1,
            pending: None,
            store_failed: false,
            hook: None,
            secret_key: [0; 32],
            writer: None,
            budget: Arc::new(Budget::default()),
            site_bytes: 0,
            bridge_alloc: None,
            guest_memory: None,
            stats: Stats::default(),
        }
    }

    /// Sets the keys secrets are hashed with: `guest` for `secret_hash`, `headers` for secret
    /// header values in stored responses' keys (two keys derived from the user's, see
    /// `home::Keys`).
    pub fn with_secret_keys(mut self, guest: [u8; 32], headers: [u8; 32]) -> StashHost {
        self.secret_key = guest;
        self.net.secret_key = headers;
        self
    }

    /// Names the running module (its XXH3-128, hex) as the writer of the entries it stores.
    pub fn with_writer(mut self, module_hash: u128) -> StashHost {
        self.writer = Some(format!("{module_hash:032x}"));
        self
    }

    /// Counts what the host holds for the guest against `budget` (shared with the run's
    /// resource limiter).
    pub fn with_budget(mut self, budget: Arc<Budget>) -> StashHost {
        self.budget = budget;
        self
    }

    /// The memory budget of the run.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Installs a hook that sees (record) or answers (replay) every marked call.
    pub fn with_hook(mut self, hook: Box<dyn CallHook>) -> StashHost {
        self.hook = Some(hook);
        self
    }

    fn call<'a>(sites: &'a [Site], site: usize, key: &'a [u8; 32]) -> Call<'a> {
        let s = &sites[site];
        Call {
            desc: &s.desc,
            identity: &s.identity,
            location: &s.location,
            key,
        }
    }

    /// Sets what the guest may reach over HTTP (nothing by default).
    pub fn with_net(mut self, net: NetPolicy) -> StashHost {
        self.net = NetPolicy {
            secret_key: self.net.secret_key,
            ..net
        };
        self
    }

    fn register(&mut self, desc: SiteDesc) -> Result<i32> {
        if desc.abi_version != ABI_VERSION {
            bail!(
                "this module was built with a devstash SDK that speaks ABI version {}, and this \
                 runner speaks version {ABI_VERSION}: rebuild the module against a matching \
                 `devstash` crate, or use a matching runner",
                desc.abi_version
            );
        }
        if self.sites.len() >= MAX_SITES {
            bail!("the guest registered more than {MAX_SITES} marked sites");
        }
        let bytes = desc_bytes(&desc) * 3 + SITE_OVERHEAD;
        if self.site_bytes.saturating_add(bytes) > MAX_SITE_BYTES {
            bail!(
                "the guest's marked sites take more than {} of site descriptors; a program \
                 registers one small descriptor per marked call site",
                crate::output::human_size(MAX_SITE_BYTES)
            );
        }
        self.budget.charge("its marked sites' descriptors", bytes)?;
        self.site_bytes += bytes;
        let identity = desc.identity();
        if identity.starts_with(net::SITE_PREFIX) {
            bail!(
                "a marked site may not be named `{}…`: those are the host's stored HTTP \
                 responses",
                net::SITE_PREFIX
            );
        }
        let stem = entry_stem(&identity);
        let site = Site {
            hasher: KeyHasher::for_site(&identity, &desc.fingerprint, &desc.types),
            location: format!("{}:{}", desc.file, desc.line),
            identity,
            stem,
            desc,
        };
        self.sites.push(site);
        Ok((self.sites.len() - 1) as i32)
    }

    fn entry_ref(&self, site: usize, key: &[u8; 32]) -> EntryRef {
        let key_hex = key_hex(key);
        let name = entry_name(&self.sites[site].stem, &key_hex);
        EntryRef { name, key_hex }
    }

    /// Looks up a call; returns the status and the u64 to write at `out_ptr`.
    fn get(
        &mut self,
        site: usize,
        key: [u8; 32],
        args: &[u8],
        flags: i32,
    ) -> Result<(Status, u64)> {
        // A value handed over but not used (the guest asks again for a ticket: it could not
        // decode or hold it) was no hit.
        if flags & get_flags::REFRESH != 0
            && let Some(Pending::Stored { compute_ns, .. }) = &self.pending
        {
            self.stats.hits = self.stats.hits.saturating_sub(1);
            self.stats.saved_ns = self.stats.saved_ns.saturating_sub(*compute_ns);
            self.pending = None;
        }
        if let Some(hook) = self.hook.as_mut() {
            let call = Self::call(&self.sites, site, &key);
            if let Some(value) = hook.answer(&call, args, flags & get_flags::REFRESH != 0)? {
                let len = value.len() as u64;
                self.stats.hits += 1;
                self.pending = Some(Pending::Answered(value));
                return Ok((Status::Hit, len));
            }
        }
        let at = self.entry_ref(site, &key);
        let s = &self.sites[site];
        let refreshed = self
            .policy
            .refresh
            .as_ref()
            .is_some_and(|p| p.matches(&s.identity, &at.name));
        self.stats.refresh_matched |= refreshed;
        let forced = flags & get_flags::REFRESH != 0 || refreshed;
        if !self.policy.no_cache && !forced {
            match self.tier.get(&at) {
                Lookup::Found(mut found) => {
                    let expired = found.is_expired(s.desc.ttl_secs, SystemTime::now());
                    if expired && self.policy.offline {
                        tracing::warn!("{}: expired, served anyway (--offline)", at.name);
                    }
                    if expired && !self.policy.offline {
                        self.stats.expired += 1;
                        tracing::debug!("{} expired; recomputing", at.name);
                    } else if let Some(hook) = self.hook.as_mut() {
                        // A recording needs the bytes now: a large value is read (and verified)
                        // here rather than as the guest takes it, if the memory budget allows.
                        let len = found.value.len();
                        let room = self.budget.left().is_none_or(|left| len <= left);
                        match found.value.verified() {
                            Ok(value) if room => {
                                let call = Self::call(&self.sites, site, &key);
                                hook.hit(&call, args, value, found.args_preview.as_deref());
                                hook.check()?;
                                return Ok(self.hit_pending(found, at.name));
                            }
                            Ok(_) => self.corrupt(&at.name, "larger than --max-memory leaves"),
                            Err(why) => self.corrupt(&at.name, &why),
                        }
                    } else {
                        return Ok(self.hit_pending(found, at.name));
                    }
                }
                Lookup::Corrupt(why) => self.corrupt(&at.name, &why),
                Lookup::Missing => {}
            }
        }
        if self.tickets.len() >= MAX_TICKETS {
            bail!("more than {MAX_TICKETS} marked calls are in flight at once");
        }
        self.stats.misses += 1;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if let Some(hook) = self.hook.as_mut() {
            hook.miss(&Self::call(&self.sites, site, &key), args, ticket);
        }
        self.tickets.insert(
            ticket,
            Ticket {
                site,
                key,
                started: Instant::now(),
                ended: None,
            },
        );
        Ok((Status::Miss, ticket))
    }

    fn hit(&mut self, compute_ns: u64) {
        self.stats.hits += 1;
        self.stats.saved_ns = self.stats.saved_ns.saturating_add(compute_ns);
    }

    /// Counts a hit and leaves its value for the guest to read.
    fn hit_pending(&mut self, found: crate::store::Found, name: String) -> (Status, u64) {
        tracing::debug!("hit {name}");
        self.hit(found.compute_ns);
        let len = found.value.len();
        self.pending = Some(Pending::Stored {
            value: found.value,
            name,
            compute_ns: found.compute_ns,
        });
        (Status::Hit, len)
    }

    /// An entry failed verification: counted and reported; the call is recomputed.
    fn corrupt(&mut self, name: &str, why: &str) {
        self.stats.corrupt += 1;
        tracing::warn!(
            "{}: {why}; ignoring it and recomputing",
            std::path::Path::new(&self.tier.location())
                .join(name)
                .display()
        );
    }

    /// Reads bytes of the pending value for `stash_read` / `stash_take`. A stored value found
    /// corrupt as it is read is no longer a hit: it is reported, and the guest is told so that it
    /// asks again (and gets a ticket).
    fn read_pending(&mut self, func: &str, offset: u64, dst: &mut [u8]) -> Result<Status> {
        let Some(pending) = self.pending.as_mut() else {
            bail!("devstash::{func}: called with no pending value (call stash_get first)");
        };
        match pending.read(offset, dst) {
            Ok(()) => Ok(Status::Hit),
            Err(ReadError::OutOfRange) => bail!(
                "devstash::{func}: bytes {offset}..{} are not readable: the pending value has {} \
                 bytes, and a large value is read front to back",
                offset.saturating_add(dst.len() as u64),
                pending.len()
            ),
            Err(ReadError::Corrupt(why)) => {
                if let Some(Pending::Stored {
                    name, compute_ns, ..
                }) = self.pending.take()
                {
                    self.stats.hits = self.stats.hits.saturating_sub(1);
                    self.stats.saved_ns = self.stats.saved_ns.saturating_sub(compute_ns);
                    self.corrupt(&name, &why);
                }
                Ok(Status::Corrupt)
            }
        }
    }

    fn put(
        &mut self,
        id: u64,
        ticket: Ticket,
        value: &[u8],
        preview: Option<String>,
    ) -> Result<Status> {
        if let Some(hook) = self.hook.as_mut() {
            let call = Self::call(&self.sites, ticket.site, &ticket.key);
            hook.computed(&call, id, value, preview.as_deref());
            hook.check()?;
        }
        if self.policy.no_cache {
            return Ok(Status::Hit);
        }
        let ended = ticket.ended.unwrap_or_else(Instant::now);
        let compute_ns =
            u64::try_from(ended.duration_since(ticket.started).as_nanos()).unwrap_or(u64::MAX);
        let at = self.entry_ref(ticket.site, &ticket.key);
        let s = &self.sites[ticket.site];
        let header = Header {
            key: at.key_hex.clone(),
            created_ms: now_ms(),
            ttl_secs: s.desc.ttl_secs,
            site: s.identity.clone(),
            location: s.location.clone(),
            kind: match s.desc.kind {
                SiteKind::Call => "call",
                SiteKind::Fn => "fn",
            }
            .into(),
            value_type: s.desc.value_type.clone(),
            compute_ns,
            payload_len: value.len() as u64,
            args_preview: preview,
            writer: self.writer.clone(),
        };
        Ok(self.store(&at, &header, value))
    }

    fn store(&mut self, at: &EntryRef, header: &Header, value: &[u8]) -> Status {
        match self.tier.put(at, header, value) {
            Ok(()) => {
                self.stats.stored += 1;
                Status::Hit
            }
            Err(e) => {
                if !self.store_failed {
                    tracing::warn!("{e:#}; the run goes on without storing results");
                    self.store_failed = true;
                }
                Status::StoreFailed
            }
        }
    }
}

impl StashHost {
    /// The call of `id` starts (`begin`) or has returned: its compute time counts between the
    /// two.
    fn timing(&mut self, func: &str, id: u64, begin: bool) -> Result<()> {
        let Some(t) = self.tickets.get_mut(&id) else {
            bail!("devstash::{func}: unknown ticket {id}");
        };
        let now = Instant::now();
        if begin {
            t.started = now;
            t.ended = None;
        } else {
            t.ended = Some(now);
        }
        Ok(())
    }

    /// The key secret header values are hashed with in stored responses' keys.
    #[cfg(test)]
    pub(crate) fn net_secret_key(&self) -> [u8; 32] {
        self.net.secret_key
    }

    /// The keyed hash of a secret the guest hands over (see `secret_hash`).
    pub(crate) fn secret_hash(&mut self, secret: &[u8]) -> Result<[u8; 32]> {
        let hash = *blake3::keyed_hash(&self.secret_key, secret).as_bytes();
        match self.hook.as_mut() {
            Some(hook) => hook.secret(hash),
            None => Ok(hash),
        }
    }

    /// The call of `id` finished without a value to store.
    fn forget(&mut self, id: u64) -> Result<()> {
        let Some(t) = self.tickets.remove(&id) else {
            bail!("devstash::{}: unknown ticket {id}", import::STASH_FORGET);
        };
        if let Some(hook) = self.hook.as_mut() {
            hook.failed(&Self::call(&self.sites, t.site, &t.key), id);
        }
        Ok(())
    }

    /// Answers an HTTP request: from the hook when one is installed and answers, else as
    /// [`StashHost::fetch`] does. An error traps the guest (a replay that cannot answer).
    fn http(&mut self, request: HttpRequest) -> Result<HttpResult> {
        let prepared = match net::Prepared::new(request) {
            Ok(p) => p,
            // Refused from the request alone, the same way in every run: nothing to record.
            Err(e) => return Ok(Err(e)),
        };
        if self.hook.is_none() {
            return Ok(self.fetch(&prepared));
        }
        let key = prepared.tape_key(&self.net);
        let preview = prepared.preview(&self.net);
        let exchange = Exchange {
            key: &key,
            preview: &preview,
        };
        if let Some(hook) = self.hook.as_mut()
            && let Some(result) = hook.http_answer(&exchange)?
        {
            return Ok(result);
        }
        let result = self.fetch(&prepared);
        if let Some(hook) = self.hook.as_mut() {
            hook.http_done(&exchange, &result);
            hook.check()?;
        }
        Ok(result)
    }

    /// Answers a checked HTTP request: from the store when the guest asked for caching and a
    /// usable response is stored, else over the network when allowed and not offline.
    fn fetch(&mut self, prepared: &net::Prepared) -> HttpResult {
        let cache = prepared.request.cache.clone();
        let stored = cache.as_ref().map(|c| {
            let key = prepared.key(&self.net);
            let key_hex = key_hex(&key);
            let site = prepared.site();
            let at = EntryRef {
                name: entry_name(&entry_stem(&site), &key_hex),
                key_hex,
            };
            (at, site, c.ttl_secs)
        });

        if let Some((at, site, ttl)) = &stored {
            let forced = self
                .policy
                .refresh
                .as_ref()
                .is_some_and(|p| p.matches(site, &at.name));
            self.stats.refresh_matched |= forced;
            if !self.policy.no_cache && !forced {
                match self.tier.get(at) {
                    Lookup::Found(mut found) => {
                        let expired = found.is_expired(*ttl, SystemTime::now());
                        if !expired || self.policy.offline {
                            let decoded = found.value.verified().map(codec::decode::<HttpResponse>);
                            if let Ok(Ok(response)) = decoded {
                                if expired {
                                    tracing::warn!(
                                        "{}: expired, served anyway (--offline)",
                                        prepared.preview(&self.net)
                                    );
                                }
                                self.hit(found.compute_ns);
                                return Ok(response);
                            }
                            tracing::warn!(
                                "{}: stored response does not decode; ignoring it",
                                at.name
                            );
                        } else {
                            self.stats.expired += 1;
                        }
                    }
                    Lookup::Corrupt(why) => {
                        self.stats.corrupt += 1;
                        tracing::warn!("{}: {why}; ignoring it", at.name);
                    }
                    Lookup::Missing => {}
                }
            }
        }

        if self.policy.offline {
            self.stats.offline_misses += 1;
            return Err(devstash_protocol::HttpError {
                kind: HttpErrorKind::Offline,
                message: format!(
                    "{}: no stored response and --offline is set; run once without --offline to store it",
                    prepared.preview(&self.net)
                ),
            });
        }
        if let Err(e) = prepared.check_allowed(&self.net) {
            self.stats.refused += 1;
            return Err(e);
        }
        let started = Instant::now();
        // A response the guest could not hold under --max-memory is refused as it arrives.
        let limit = self
            .budget
            .left()
            .map_or(net::MAX_RESPONSE, |left| left.min(net::MAX_RESPONSE));
        let response = prepared.perform(limit)?;
        if let Some((at, site, ttl)) = stored {
            self.stats.misses += 1;
            if (200..300).contains(&response.status) && !self.policy.no_cache {
                let value = codec::encode(&net::storable(&response)).expect("plain data encodes");
                let header = Header {
                    key: at.key_hex.clone(),
                    created_ms: now_ms(),
                    ttl_secs: ttl,
                    site,
                    location: prepared.shown_url().to_string(),
                    kind: "http".into(),
                    value_type: "devstash::http::Response".into(),
                    compute_ns: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
                    payload_len: value.len() as u64,
                    args_preview: Some(prepared.preview(&self.net)),
                    writer: self.writer.clone(),
                };
                self.store(&at, &header, &value);
            }
        }
        Ok(response)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Lowercase hex of a key (blake3's formatter: a table lookup, not `fmt` per byte).
fn key_hex(key: &[u8; 32]) -> String {
    // `as_str`, not `to_string`: the `Display` machinery cost more than the hex itself.
    blake3::Hash::from_bytes(*key).to_hex().as_str().to_owned()
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The bytes a site descriptor holds (its strings), for the memory it takes.
fn desc_bytes(desc: &SiteDesc) -> u64 {
    [
        &desc.module_path,
        &desc.callee,
        &desc.file,
        &desc.fingerprint,
        &desc.value_type,
        &desc.types,
    ]
    .iter()
    .map(|s| s.len() as u64)
    .sum()
}

/// Access to the host state from the store's data.
pub trait HasStash {
    /// The devstash state of this run.
    fn stash(&mut self) -> &mut StashHost;
}

/// The guest's exported memory; `func` names the import for the error. Looked up by name once
/// per run: the lookup was a tenth of a small hit's host time, and a module's exports cannot
/// change once it is instantiated.
pub(crate) fn memory<T: HasStash>(caller: &mut Caller<'_, T>, func: &str) -> Result<Memory> {
    if let Some(m) = caller.data_mut().stash().guest_memory {
        return Ok(m);
    }
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => {
            caller.data_mut().stash().guest_memory = Some(m);
            Ok(m)
        }
        _ => bail!("devstash::{func}: the guest exports no memory named `memory`"),
    }
}

/// The range `ptr..ptr+len` if it lies inside a memory of `size` bytes.
pub(crate) fn span(
    func: &str,
    what: &str,
    ptr: i32,
    len: i32,
    size: usize,
) -> Result<std::ops::Range<usize>> {
    let (p, l) = (ptr as u32 as usize, len as u32 as usize);
    match p.checked_add(l) {
        Some(end) if end <= size => Ok(p..end),
        _ => Err(format_err!(
            "devstash::{func}: {what} ({p:#x}, {l} bytes) lies outside the guest's memory of {size} bytes"
        )),
    }
}

fn site_index(host: &StashHost, func: &str, site: i32) -> Result<usize> {
    usize::try_from(site)
        .ok()
        .filter(|&i| i < host.sites.len())
        .ok_or_else(|| format_err!("devstash::{func}: unknown site handle {site}"))
}

/// Adds the `devstash` imports to a linker whose store data implements [`HasStash`].
pub fn add_to_linker<T: HasStash + 'static>(linker: &mut Linker<T>) -> Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        import::SITE_REGISTER,
        |mut caller: Caller<'_, T>, ptr: i32, len: i32| -> Result<i32> {
            let f = import::SITE_REGISTER;
            let mem = memory(&mut caller, f)?;
            let (data, state) = mem.data_and_store_mut(&mut caller);
            let r = span(f, "the site descriptor", ptr, len, data.len())?;
            if r.len() > MAX_SITE_DESC {
                bail!("devstash::{f}: a site descriptor of {} bytes is larger than {MAX_SITE_DESC}", r.len());
            }
            let desc: SiteDesc = codec::decode(&data[r])
                .map_err(|e| format_err!("devstash::{f}: the site descriptor does not decode ({e}); is the module built with a matching devstash SDK?"))?;
            state.stash().register(desc)
        },
    )?;

    linker.func_wrap(
        IMPORT_MODULE,
        import::STASH_GET,
        |mut caller: Caller<'_, T>,
         site: i32,
         ptr: i32,
         len: i32,
         flags: i32,
         out: i32|
         -> Result<i32> {
            let f = import::STASH_GET;
            let mem = memory(&mut caller, f)?;
            let (data, state) = mem.data_and_store_mut(&mut caller);
            let host = state.stash();
            let site = site_index(host, f, site)?;
            let out_r = span(f, "the output slot", out, 8, data.len())?;
            let args = span(f, "the arguments", ptr, len, data.len())?;
            // Hash straight from guest memory: no copy of the arguments.
            let args = &data[args];
            let key = host.sites[site].hasher.key(args);
            let (status, value) = host.get(site, key, args, flags)?;
            data[out_r].copy_from_slice(&value.to_le_bytes());
            Ok(status as i32)
        },
    )?;

    linker.func_wrap(
        IMPORT_MODULE,
        import::STASH_READ,
        |mut caller: Caller<'_, T>, offset: i64, ptr: i32, len: i32| -> Result<i32> {
            let f = import::STASH_READ;
            let mem = memory(&mut caller, f)?;
            let (data, state) = mem.data_and_store_mut(&mut caller);
            let r = span(f, "the destination", ptr, len, data.len())?;
            let host = state.stash();
            Ok(host.read_pending(f, offset as u64, &mut data[r])? as i32)
        },
    )?;

    linker.func_wrap(
        IMPORT_MODULE,
        import::STASH_TAKE,
        |mut caller: Caller<'_, T>, ptr: i32, len: i32| -> Result<i32> {
            let f = import::STASH_TAKE;
            let mem = memory(&mut caller, f)?;
            let (data, state) = mem.data_and_store_mut(&mut caller);
            let host = state.stash();
            let Some(pending) = host.pending.as_ref() else {
                bail!("devstash::{f}: called with no pending value (call stash_get first)");
            };
            if len as u32 as u64 != pending.len() {
                bail!(
                    "devstash::{f}: asked for {} bytes but the pending value has {}",
                    len as u32,
                    pending.len()
                );
            }
            let r = span(f, "the destination", ptr, len, data.len())?;
            let status = host.read_pending(f, 0, &mut data[r])?;
            host.pending = None;
            Ok(status as i32)
        },
    )?;

    linker.func_wrap(
        IMPORT_MODULE,
        import::STASH_PUT,
        |mut caller: Caller<'_, T>,
         ticket: i64,
         ptr: i32,
         len: i32,
         pptr: i32,
         plen: i32|
         -> Result<i32> {
            let f = import::STASH_PUT;
            let mem = memory(&mut caller, f)?;
            let (data, state) = mem.data_and_store_mut(&mut caller);
            let host = state.stash();
            let Some(t) = host.tickets.remove(&(ticket as u64)) else {
                bail!("devstash::{f}: unknown ticket {ticket}");
            };
            let value = span(f, "the value", ptr, len, data.len())?;
            let preview = span(f, "the preview", pptr, plen, data.len())?;
            let preview = (!preview.is_empty()).then(|| {
                let bytes = &data[preview];
                let mut s =
                    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_PREVIEW)]).into_owned();
                if bytes.len() > MAX_PREVIEW {
                    s.push('…');
                }
                s
            });
            Ok(host.put(ticket as u64, t, &data[value], preview)? as i32)
        },
    )?;

    linker.func_wrap(
        IMPORT_MODULE,
        import::STASH_FORGET,
        |mut caller: Caller<'_, T>, ticket: i64| -> Result<i32> {
            caller.data_mut().stash().forget(ticket as u64)?;
            Ok(Status::Hit as i32)
        },
    )?;

    for (name, begin) in [(import::STASH_BEGIN, true), (import::STASH_END, false)] {
        linker.func_wrap(
            IMPORT_MODULE,
            name,
            move |mut caller: Caller<'_, T>, ticket: i64| -> Result<i32> {
                caller
                    .data_mut()
                    .stash()
                    .timing(name, ticket as u64, begin)?;
                Ok(Status::Hit as i32)
            },
        )?;
    }

    linker.func_wrap(
        IMPORT_MODULE,
        import::SECRET_HASH,
        |mut caller: Caller<'_, T>, ptr: i32, len: i32, out: i32| -> Result<i32> {
            let f = import::SECRET_HASH;
            let mem = memory(&mut caller, f)?;
            let (data, state) = mem.data_and_store_mut(&mut caller);
            let out_r = span(f, "the output", out, 32, data.len())?;
            let r = span(f, "the secret", ptr, len, data.len())?;
            let hash = state.stash().secret_hash(&data[r])?;
            data[out_r].copy_from_slice(&hash);
            Ok(Status::Hit as i32)
        },
    )?;

    linker.func_wrap(
        IMPORT_MODULE,
        import::HTTP_REQUEST,
        |mut caller: Caller<'_, T>, ptr: i32, len: i32, out: i32| -> Result<i32> {
            let f = import::HTTP_REQUEST;
            let mem = memory(&mut caller, f)?;
            let (data, state) = mem.data_and_store_mut(&mut caller);
            let out_r = span(f, "the output slot", out, 8, data.len())?;
            let r = span(f, "the request", ptr, len, data.len())?;
            if r.len() > MAX_HTTP_REQUEST {
                bail!(
                    "devstash::{f}: a request of {} bytes is larger than {MAX_HTTP_REQUEST}",
                    r.len()
                );
            }
            let request: HttpRequest = codec::decode(&data[r])
                .map_err(|e| format_err!("devstash::{f}: the request does not decode ({e})"))?;
            let host = state.stash();
            let result = host.http(request)?;
            let bytes = codec::encode(&result).map_err(|e| format_err!("devstash::{f}: {e}"))?;
            data[out_r].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            host.pending = Some(Pending::Bytes(bytes));
            Ok(Status::Hit as i32)
        },
    )?;

    linker.func_wrap(
        IMPORT_MODULE,
        import::LOG,
        |mut caller: Caller<'_, T>, level: i32, ptr: i32, len: i32| -> Result<i32> {
            let f = import::LOG;
            let mem = memory(&mut caller, f)?;
            let data = mem.data(&caller);
            let r = span(f, "the message", ptr, len, data.len())?;
            let bytes = &data[r];
            let msg = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_LOG)]);
            log_line(level, &msg);
            Ok(0)
        },
    )?;
    Ok(())
}

/// Writes a guest's log line through the runner's logger, at the guest's level.
fn log_line(level: i32, msg: &str) {
    match LogLevel::from_raw(level) {
        LogLevel::Trace => tracing::trace!(target: "guest", "{msg}"),
        LogLevel::Debug => tracing::debug!(target: "guest", "{msg}"),
        LogLevel::Info => tracing::info!(target: "guest", "{msg}"),
        LogLevel::Warn => tracing::warn!(target: "guest", "{msg}"),
        LogLevel::Error => tracing::error!(target: "guest", "{msg}"),
    }
}
