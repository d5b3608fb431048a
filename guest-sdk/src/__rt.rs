//! Runtime support for the code `stash!` and `#[stashed]` expand to. Not a public API: the
//! macros are.
//!
//! The expansion owns the evaluated arguments as one tuple `A`, encodes the key from them before
//! the call can move them, and hands both to [`Probed`], whose methods are picked by
//! autoref-based dispatch on the concrete return type: a `Result<T, E>` stores only `Ok(T)`;
//! bytes and strings (`Vec<u8>`, `String`, `serde_bytes::ByteBuf`) are restored straight into
//! their final buffer; anything else stores the whole value.

use core::cell::Cell;
use core::marker::PhantomData;
use core::sync::atomic::AtomicI32;
#[cfg(target_arch = "wasm32")]
use core::sync::atomic::Ordering;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use devstash_protocol::SiteKind;

/// A marked call site; one static per marker.
pub struct Site {
    /// `module_path!()` at the marker.
    pub module_path: &'static str,
    /// Callee or function name.
    pub callee: &'static str,
    /// `file!()` at the marker.
    pub file: &'static str,
    /// `line!()` at the marker.
    pub line: u32,
    /// TTL in seconds, parsed at compile time.
    pub ttl_secs: Option<u64>,
    /// blake3 of the marked code, computed at compile time.
    pub fingerprint: &'static str,
    /// How the site was marked.
    pub kind: SiteKind,
    /// Handle from `site_register`: `UNREGISTERED` until the first call, `DISABLED` if the
    /// runner refused the site (the call then runs uncached).
    pub handle: AtomicI32,
}

/// [`Site::handle`] before the first call.
pub const UNREGISTERED: i32 = -1;
/// [`Site::handle`] when the runner refused the site.
pub const DISABLED: i32 = -2;

/// The canonical bytes of a call's key material, or `None` when they could not be encoded (the
/// call then runs uncached, with a warning: never under a shared key).
pub struct KeyBytes(#[allow(dead_code)] Option<Vec<u8>>);

/// Encodes the key material of a call (its arguments, and a method call's receiver).
#[inline]
pub fn encode_key<K: Serialize + ?Sized>(key: &K) -> KeyBytes {
    #[cfg(target_arch = "wasm32")]
    {
        KeyBytes(devstash_protocol::codec::encode(key).ok())
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = key;
        KeyBytes(None)
    }
}

/// Makes an arguments preview with `Debug` where the arguments implement it.
pub struct PreviewProbe<A>(PhantomData<A>);

impl<A> PreviewProbe<A> {
    /// A probe for the type of `args`.
    pub fn of(_args: &A) -> Self {
        PreviewProbe(PhantomData)
    }
}

/// Preferred: the arguments implement `Debug`.
pub trait PreviewDebug<A> {
    /// A function that previews the arguments.
    fn previewer(self) -> fn(&A) -> Option<String>;
}

impl<A: core::fmt::Debug> PreviewDebug<A> for &PreviewProbe<A> {
    fn previewer(self) -> fn(&A) -> Option<String> {
        |args| {
            let mut s = format!("{args:?}");
            if s.len() > PREVIEW_MAX {
                let mut end = PREVIEW_MAX;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
                s.push('…');
            }
            Some(s)
        }
    }
}

/// Fallback: no preview.
pub trait PreviewNone<A> {
    /// A function that previews nothing.
    fn previewer(&self) -> fn(&A) -> Option<String>;
}

impl<A> PreviewNone<A> for &PreviewProbe<A> {
    fn previewer(&self) -> fn(&A) -> Option<String> {
        |_| None
    }
}

/// Longest arguments preview stored with an entry, in bytes.
pub const PREVIEW_MAX: usize = 200;

/// A marked call waiting to run: its arguments' type `A`, its value type `R` and the call.
pub struct Probed<A, R, F> {
    call: Cell<Option<F>>,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R, F: FnOnce(A) -> R> Probed<A, R, F> {
    /// Wraps the call; `args` only fixes the type the call receives.
    pub fn new(_args: &A, call: F) -> Self {
        Probed {
            call: Cell::new(Some(call)),
            _types: PhantomData,
        }
    }

    fn take(&self) -> F {
        // The expansion calls exactly one run method exactly once.
        match self.call.take() {
            Some(f) => f,
            None => unreachable!("a marked call runs once"),
        }
    }
}

/// Dispatch for calls returning `Result<T, E>`: only `Ok(T)` is stored.
pub trait StashOk<A, T, E> {
    /// Runs the call or returns its stored value.
    fn __devstash_run(
        self,
        site: &'static Site,
        key: KeyBytes,
        preview: fn(&A) -> Option<String>,
        args: A,
    ) -> Result<T, E>;
}

impl<A, T, E, F> StashOk<A, T, E> for &Probed<A, Result<T, E>, F>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(A) -> Result<T, E>,
{
    #[inline]
    fn __devstash_run(
        self,
        site: &'static Site,
        key: KeyBytes,
        preview: fn(&A) -> Option<String>,
        args: A,
    ) -> Result<T, E> {
        let call = self.take();
        #[cfg(target_arch = "wasm32")]
        {
            match imp::lookup::<T>(site, &key) {
                imp::Lookup::Hit(v) => Ok(v),
                imp::Lookup::Miss(ticket) => {
                    let text = preview(&args);
                    let result = call(args);
                    match &result {
                        Ok(v) => imp::store(ticket, v, text),
                        Err(_) => imp::forget(ticket),
                    }
                    result
                }
                imp::Lookup::Uncached => call(args),
            }
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = (site, key, preview);
            call(args)
        }
    }
}

/// Value types whose postcard form is a length and their bytes, restored by reading those bytes
/// straight into the value's own buffer: one copy from the host, none in the guest.
pub trait RawBytes: Sized {
    /// The value's bytes.
    fn as_raw(&self) -> &[u8];
    /// The value from its bytes, or `None` if they are not a valid value.
    fn from_raw(bytes: Vec<u8>) -> Option<Self>;
}

impl RawBytes for Vec<u8> {
    fn as_raw(&self) -> &[u8] {
        self
    }
    fn from_raw(bytes: Vec<u8>) -> Option<Self> {
        Some(bytes)
    }
}

impl RawBytes for String {
    fn as_raw(&self) -> &[u8] {
        self.as_bytes()
    }
    fn from_raw(bytes: Vec<u8>) -> Option<Self> {
        String::from_utf8(bytes).ok()
    }
}

impl RawBytes for serde_bytes::ByteBuf {
    fn as_raw(&self) -> &[u8] {
        self
    }
    fn from_raw(bytes: Vec<u8>) -> Option<Self> {
        Some(serde_bytes::ByteBuf::from(bytes))
    }
}

/// Dispatch for bytes and strings (see [`RawBytes`]); same priority as [`StashOk`], whose
/// types never overlap with these.
pub trait StashBytes<A, R> {
    /// Runs the call or returns its stored value.
    fn __devstash_run(
        self,
        site: &'static Site,
        key: KeyBytes,
        preview: fn(&A) -> Option<String>,
        args: A,
    ) -> R;
}

impl<A, R, F> StashBytes<A, R> for &Probed<A, R, F>
where
    R: RawBytes,
    F: FnOnce(A) -> R,
{
    #[inline]
    fn __devstash_run(
        self,
        site: &'static Site,
        key: KeyBytes,
        preview: fn(&A) -> Option<String>,
        args: A,
    ) -> R {
        #[cfg(target_arch = "wasm32")]
        let stored: Stored<R> = (imp::lookup_raw::<R>, |t, v, p| {
            imp::store_raw(t, v.as_raw(), p)
        });
        #[cfg(not(target_arch = "wasm32"))]
        let stored: Stored<R> = PhantomData;
        run_whole(self.take(), stored, site, key, preview, args)
    }
}

/// Dispatch for every other value type: the whole value is stored.
pub trait StashValue<A, R> {
    /// Runs the call or returns its stored value.
    fn __devstash_run(
        &self,
        site: &'static Site,
        key: KeyBytes,
        preview: fn(&A) -> Option<String>,
        args: A,
    ) -> R;
}

impl<A, R, F> StashValue<A, R> for &Probed<A, R, F>
where
    R: Serialize + DeserializeOwned,
    F: FnOnce(A) -> R,
{
    #[inline]
    fn __devstash_run(
        &self,
        site: &'static Site,
        key: KeyBytes,
        preview: fn(&A) -> Option<String>,
        args: A,
    ) -> R {
        #[cfg(target_arch = "wasm32")]
        let stored: Stored<R> = (imp::lookup::<R>, imp::store::<R>);
        #[cfg(not(target_arch = "wasm32"))]
        let stored: Stored<R> = PhantomData;
        run_whole(self.take(), stored, site, key, preview, args)
    }
}

/// How a value type is looked up and stored: a lookup and a store function.
#[cfg(target_arch = "wasm32")]
type Stored<R> = (
    fn(&'static Site, &KeyBytes) -> imp::Lookup<R>,
    fn(i64, &R, Option<String>),
);
/// Off wasm the markers are plain calls: nothing is looked up or stored.
#[cfg(not(target_arch = "wasm32"))]
type Stored<R> = PhantomData<R>;

/// Runs a call whose whole value is stored (see [`StashBytes`] and [`StashValue`]), or returns
/// its stored value.
#[inline]
fn run_whole<A, R>(
    call: impl FnOnce(A) -> R,
    stored: Stored<R>,
    site: &'static Site,
    key: KeyBytes,
    preview: fn(&A) -> Option<String>,
    args: A,
) -> R {
    #[cfg(target_arch = "wasm32")]
    {
        let (lookup, store) = stored;
        match lookup(site, &key) {
            imp::Lookup::Hit(v) => v,
            imp::Lookup::Miss(ticket) => {
                let text = preview(&args);
                let value = call(args);
                store(ticket, &value, text);
                value
            }
            imp::Lookup::Uncached => call(args),
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (stored, site, key, preview);
        call(args)
    }
}

/// Copies a string into a fixed-size array, for the site records placed in the module's custom
/// section (which must be plain bytes, computed at compile time).
pub const fn record_bytes<const N: usize>(s: &str) -> [u8; N] {
    let bytes = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;
    use crate::abi;
    use devstash_protocol::{ABI_VERSION, LogLevel, SiteDesc, Status, codec, get_flags};

    pub enum Lookup<V> {
        Hit(V),
        Miss(i64),
        Uncached,
    }

    fn handle<V>(site: &'static Site) -> i32 {
        let h = site.handle.load(Ordering::Relaxed);
        if h != UNREGISTERED {
            return h;
        }
        let desc = SiteDesc {
            abi_version: ABI_VERSION,
            module_path: site.module_path.into(),
            callee: site.callee.into(),
            file: site.file.into(),
            line: site.line,
            ttl_secs: site.ttl_secs,
            fingerprint: site.fingerprint.into(),
            value_type: core::any::type_name::<V>().into(),
            kind: site.kind,
        };
        let h = match codec::encode(&desc) {
            // SAFETY: pointer and length describe `bytes`, alive for the call.
            Ok(bytes) => unsafe { abi::site_register(bytes.as_ptr(), bytes.len()) },
            Err(_) => DISABLED,
        };
        let h = if h < 0 { DISABLED } else { h };
        site.handle.store(h, Ordering::Relaxed);
        h
    }

    fn get(handle: i32, args: &[u8], flags: i32) -> (i32, u64) {
        let mut out = 0u64;
        // SAFETY: `args` is alive for the call and `out` is a valid, aligned u64.
        let status = unsafe { abi::stash_get(handle, args.as_ptr(), args.len(), flags, &mut out) };
        (status, out)
    }

    /// The site's handle and the call's key bytes, or `None` when the call runs uncached.
    fn prepare<'k, V>(site: &'static Site, key: &'k KeyBytes) -> Option<(i32, &'k [u8])> {
        let Some(args) = &key.0 else {
            warn(
                site,
                "its arguments could not be encoded; the call runs uncached",
            );
            return None;
        };
        let h = handle::<V>(site);
        (h != DISABLED).then_some((h, args.as_slice()))
    }

    /// After a stored value could not be used: a ticket to recompute it. `undecodable` is set
    /// when the value was read but is not a `V` (a corrupt one was reported by the runner).
    fn refresh<V>(site: &'static Site, h: i32, args: &[u8], undecodable: bool) -> Lookup<V> {
        if undecodable {
            warn(site, "its stored value no longer decodes; recomputing");
        }
        match get(h, args, get_flags::REFRESH) {
            (s, ticket) if s == Status::Miss as i32 => Lookup::Miss(ticket as i64),
            _ => Lookup::Uncached,
        }
    }

    pub fn lookup<V: DeserializeOwned>(site: &'static Site, key: &KeyBytes) -> Lookup<V> {
        let Some((h, args)) = prepare::<V>(site, key) else {
            return Lookup::Uncached;
        };
        let (status, out) = get(h, args, 0);
        match Status::from_raw(status) {
            Some(Status::Hit) => {
                let len = out as usize;
                let mut buf = Vec::with_capacity(len);
                // SAFETY: `buf` has capacity `len`; the host writes exactly `len` bytes or
                // fails, and the length is only set after success.
                let taken = unsafe { abi::stash_take(buf.as_mut_ptr(), len) };
                if taken != Status::Hit as i32 {
                    return refresh(site, h, args, false);
                }
                unsafe { buf.set_len(len) };
                match codec::decode::<V>(&buf) {
                    Ok(v) => Lookup::Hit(v),
                    Err(_) => refresh(site, h, args, true),
                }
            }
            Some(Status::Miss) => Lookup::Miss(out as i64),
            _ => Lookup::Uncached,
        }
    }

    /// Like [`lookup`], for a [`RawBytes`] value: its length prefix is read first, then its
    /// bytes straight into the value's buffer.
    pub fn lookup_raw<V: RawBytes>(site: &'static Site, key: &KeyBytes) -> Lookup<V> {
        let Some((h, args)) = prepare::<V>(site, key) else {
            return Lookup::Uncached;
        };
        let (status, out) = get(h, args, 0);
        match Status::from_raw(status) {
            Some(Status::Hit) => match read_raw(out) {
                Ok(bytes) => match V::from_raw(bytes) {
                    Some(v) => Lookup::Hit(v),
                    None => refresh(site, h, args, true),
                },
                Err(undecodable) => refresh(site, h, args, undecodable),
            },
            Some(Status::Miss) => Lookup::Miss(out as i64),
            _ => Lookup::Uncached,
        }
    }

    /// Reads a pending value of `total` bytes that holds a length prefix and that many bytes.
    /// `Err(true)` when it is not shaped so, `Err(false)` when the runner refused the read.
    fn read_raw(total: u64) -> Result<Vec<u8>, bool> {
        // The prefix is a LEB128 varint, whose length follows from the total: the one `p` with
        // `varint_len(total - p) == p`.
        let p = (1..=10u64)
            .find(|&p| total >= p && varint_len(total - p) == p)
            .ok_or(true)?;
        let mut prefix = [0u8; 10];
        // SAFETY: `prefix` has room for `p` <= 10 bytes.
        let s = unsafe { abi::stash_read(0, prefix.as_mut_ptr(), p as usize) };
        if s != Status::Hit as i32 {
            return Err(false);
        }
        match postcard::take_from_bytes::<u64>(&prefix[..p as usize]) {
            Ok((n, rest)) if rest.is_empty() && n == total - p => {}
            _ => return Err(true),
        }
        let n = usize::try_from(total - p).map_err(|_| true)?;
        let mut buf = Vec::with_capacity(n);
        // SAFETY: `buf` has capacity `n`; its length is set only after the host wrote it all.
        let s = unsafe { abi::stash_read(p, buf.as_mut_ptr(), n) };
        if s != Status::Hit as i32 {
            return Err(false);
        }
        unsafe { buf.set_len(n) };
        Ok(buf)
    }

    fn varint_len(n: u64) -> u64 {
        (64 - u64::from(n.leading_zeros())).div_ceil(7).max(1)
    }

    /// Stores a [`RawBytes`] value: its length prefix, then its bytes (the same bytes postcard
    /// writes for it, so either path reads what the other stored).
    pub fn store_raw(ticket: i64, bytes: &[u8], preview: Option<String>) {
        let mut out = match codec::encode(&(bytes.len() as u64)) {
            Ok(prefix) => prefix,
            Err(_) => return forget(ticket),
        };
        out.extend_from_slice(bytes);
        let p = preview.unwrap_or_default();
        // SAFETY: both buffers are alive for the call.
        unsafe { abi::stash_put(ticket, out.as_ptr(), out.len(), p.as_ptr(), p.len()) };
    }

    pub fn store<V: Serialize>(ticket: i64, value: &V, preview: Option<String>) {
        match codec::encode(value) {
            Ok(bytes) => {
                let p = preview.unwrap_or_default();
                // SAFETY: both buffers are alive for the call.
                unsafe { abi::stash_put(ticket, bytes.as_ptr(), bytes.len(), p.as_ptr(), p.len()) };
            }
            Err(e) => {
                crate::log::write(
                    LogLevel::Warn,
                    &format!("a value could not be encoded ({e}); it was not stored"),
                );
                forget(ticket);
            }
        }
    }

    pub fn forget(ticket: i64) {
        // SAFETY: plain integer call.
        unsafe { abi::stash_forget(ticket) };
    }

    fn warn(site: &'static Site, what: &str) {
        crate::log::write(
            LogLevel::Warn,
            &format!(
                "{}::{} ({}:{}): {what}",
                site.module_path, site.callee, site.file, site.line
            ),
        );
    }
}

/// Builds a [`Site`] constant; used by the macro expansions.
#[allow(clippy::too_many_arguments)]
pub const fn site(
    module_path: &'static str,
    callee: &'static str,
    file: &'static str,
    line: u32,
    ttl_secs: Option<u64>,
    fingerprint: &'static str,
    kind: SiteKind,
) -> Site {
    Site {
        module_path,
        callee,
        file,
        line,
        ttl_secs,
        fingerprint,
        kind,
        handle: AtomicI32::new(UNREGISTERED),
    }
}
