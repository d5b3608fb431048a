//! Runtime support for the code `stash!` and `#[stashed]` expand to. Not a public API: the
//! macros are.
//!
//! The expansion owns the evaluated arguments as one tuple `A`, encodes the key from them before
//! the call can move them (see [`crate::key`]), and hands both to [`Probed`], whose methods are
//! picked by autoref-based dispatch on the concrete return type: a `Result<T, E>` stores only
//! `Ok(T)`; bytes, strings and vectors of plain numbers (see [`RawValue`]) are restored
//! straight into their final buffer; anything else stores the whole value. The expansion calls
//! `(&&&probed).__devstash_run(..)`, so method lookup tries, in order: [`StashOkRaw`] and
//! [`StashBytes`] (receiver `&&&Probed`), [`StashOk`] (`&&&&Probed`, by autoref),
//! [`StashValue`] (`&&Probed`, by deref), then two fallbacks that exist only to fail with a
//! readable error, [`StashOkUnstorable`] (`&Probed` of a `Result`) and
//! [`StashUnstorable`] (`Probed`): their methods require [`StoredValue`], whose message names
//! the value type and the traits it lacks. Traits at one level never apply to the same type.
//!
//! A site registers once per set of concrete types it runs with (a generic function's marker
//! runs with as many as the function is instantiated with), describing to the runner what the
//! compiler resolved: the callee's full path, the argument and value types, and the value
//! type's shape (see [`crate::shape`]). The runner folds all of it into the site's keys.

use core::cell::Cell;
use core::marker::PhantomData;
#[cfg(target_arch = "wasm32")]
use core::sync::atomic::Ordering;
use core::sync::atomic::{AtomicI32, AtomicUsize};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use devstash_protocol::SiteKind;

/// A marked call site; one static per marker.
pub struct Site {
    /// `module_path!()` at the marker.
    pub module_path: &'static str,
    /// The callee or function name as written.
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
    /// For `stash!(name(..))` where `name` is bound, at the marker, to a closure written there:
    /// the binding's name and the fingerprint of the closure's code.
    pub closure: Option<(&'static str, &'static str)>,
    /// The handle of the first set of types the site ran with, found by the address and length
    /// of its type tag (see [`Site::handle`]). Natively nothing is registered.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    first_tag: AtomicUsize,
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    first_len: AtomicUsize,
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    first: AtomicI32,
    /// Every registration: the tag's address and length, what it resolved to, and its handle.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    more: std::sync::Mutex<Vec<Registered>>,
}

/// One registration of a site: the address and length of the tag it was found by, the key
/// material it resolved to (all that decides its keys), and the runner's handle.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Registered {
    tag: (usize, usize),
    resolved: Option<(String, &'static str, String)>,
    handle: i32,
}

/// A site handle before the site has been registered.
pub const UNREGISTERED: i32 = -1;
/// A site handle when the call runs uncached (the runner refused the site, or the callee cannot
/// be keyed honestly).
pub const DISABLED: i32 = -2;

/// What the compiler resolved the marked callee to, taken at the call.
#[derive(Clone, Copy)]
pub enum Callee {
    /// `#[stashed]`: the function itself (its path comes from the dispatch closure's type).
    Fn,
    /// `stash!(path(..))`: the type name and size of the value the path names.
    Path {
        /// `core::any::type_name` of the callee's type.
        name: &'static str,
        /// Its size: 0 for a function item or a closure that captures nothing.
        size: usize,
    },
    /// `stash!(receiver.method(..))`.
    Method {
        /// `core::any::type_name` of the receiver's type.
        receiver: &'static str,
        /// The method's name.
        method: &'static str,
        /// Explicit generic arguments (`::<u8>`), as written.
        turbofish: &'static str,
    },
}

impl Callee {
    /// The callee a path names.
    #[inline]
    pub fn path<C: ?Sized>(callee: &C) -> Callee {
        Callee::Path {
            name: core::any::type_name::<C>(),
            size: core::mem::size_of_val(callee),
        }
    }

    /// A method of `receiver`.
    #[inline]
    pub fn method<T: ?Sized>(
        receiver: &T,
        method: &'static str,
        turbofish: &'static str,
    ) -> Callee {
        let _ = receiver;
        Callee::Method {
            receiver: core::any::type_name::<T>(),
            method,
            turbofish,
        }
    }
}

/// The canonical bytes of a call's key material, or `None` when they could not be encoded (the
/// call then runs uncached, with a warning: never under a shared key).
pub struct KeyBytes(#[allow(dead_code)] Option<Vec<u8>>);

/// Encodes the key material of a call (its arguments, and a method call's receiver) with the
/// canonical encoding of [`crate::key`].
#[inline]
pub fn encode_key<K: Serialize + ?Sized>(key: &K) -> KeyBytes {
    #[cfg(target_arch = "wasm32")]
    {
        KeyBytes(crate::key::encode(key).ok())
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = key;
        KeyBytes(None)
    }
}

/// The key bytes of a method call (its receiver, then its arguments) and the resolved callee,
/// from one evaluation of the receiver expression.
#[inline]
pub fn method_key<T: Serialize + ?Sized, A: Serialize>(
    receiver: &T,
    args: &A,
    method: &'static str,
    turbofish: &'static str,
) -> (KeyBytes, Callee) {
    (
        encode_key(&(receiver, args)),
        Callee::method(receiver, method, turbofish),
    )
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
        |args| Some(bounded_debug(args, PREVIEW_MAX))
    }
}

/// `Debug` of `value`, cut at `max` bytes. Formatting stops as soon as the text is that long
/// (the writer refuses more, and `Debug` implementations give up on the first refusal), so a
/// preview costs about the same whatever the size of the value.
pub fn bounded_debug<T: core::fmt::Debug + ?Sized>(value: &T, max: usize) -> String {
    struct Bounded {
        text: String,
        max: usize,
        full: bool,
    }
    impl core::fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let room = self.max - self.text.len();
            if s.len() <= room {
                self.text.push_str(s);
                return Ok(());
            }
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&s[..end]);
            self.full = true;
            Err(core::fmt::Error)
        }
    }
    let mut out = Bounded {
        text: String::with_capacity(max.min(64)),
        max,
        full: false,
    };
    let _ = core::fmt::write(&mut out, format_args!("{value:?}"));
    if out.full {
        out.text.push('…');
    }
    out.text
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

/// A marked call waiting to run: its arguments' type `A`, its value type `R` and the call `F`.
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

/// Everything a run method is handed besides the arguments.
pub struct Marker {
    /// The site.
    pub site: &'static Site,
    /// The resolved callee.
    pub callee: Callee,
    /// The key bytes.
    pub key: KeyBytes,
}

/// Dispatch for calls returning `Result<T, E>`: only `Ok(T)` is stored.
pub trait StashOk<A, T, E> {
    /// Runs the call or returns its stored value.
    fn __devstash_run(
        &self,
        marker: Marker,
        preview: fn(&A) -> Option<String>,
        args: A,
    ) -> Result<T, E>;
}

impl<A, T, E, F> StashOk<A, T, E> for &&&Probed<A, Result<T, E>, F>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(A) -> Result<T, E>,
{
    #[inline]
    fn __devstash_run(
        &self,
        marker: Marker,
        preview: fn(&A) -> Option<String>,
        args: A,
    ) -> Result<T, E> {
        #[cfg(target_arch = "wasm32")]
        let stored: Stored<T> = (imp::lookup::<T>, imp::store::<T>);
        #[cfg(not(target_arch = "wasm32"))]
        let stored: Stored<T> = PhantomData;
        run_ok::<A, T, E, F>(self.take(), stored, marker, preview, args)
    }
}

pub mod raw;

pub use raw::RawValue;

/// Dispatch for a `Result<T, E>` whose `T` is restored straight into its buffer (see
/// [`RawValue`]): only `Ok(T)` is stored. Picked before [`StashOk`], which one more autoref reaches.
pub trait StashOkRaw<A, T, E> {
    /// Runs the call or returns its stored value.
    fn __devstash_run(
        self,
        marker: Marker,
        preview: fn(&A) -> Option<String>,
        args: A,
    ) -> Result<T, E>;
}

impl<A, T, E, F> StashOkRaw<A, T, E> for &&&Probed<A, Result<T, E>, F>
where
    T: RawValue + DeserializeOwned,
    F: FnOnce(A) -> Result<T, E>,
{
    #[inline]
    fn __devstash_run(
        self,
        marker: Marker,
        preview: fn(&A) -> Option<String>,
        args: A,
    ) -> Result<T, E> {
        #[cfg(target_arch = "wasm32")]
        let stored: Stored<T> = (imp::lookup_raw::<T>, imp::store_raw::<T>);
        #[cfg(not(target_arch = "wasm32"))]
        let stored: Stored<T> = PhantomData;
        run_ok::<A, T, E, F>(self.take(), stored, marker, preview, args)
    }
}

/// Dispatch for values restored straight into their buffer (see [`RawValue`]): bytes,
/// strings and vectors of plain numbers. Same priority as [`StashOkRaw`], whose types never
/// overlap with these.
pub trait StashBytes<A, R> {
    /// Runs the call or returns its stored value.
    fn __devstash_run(self, marker: Marker, preview: fn(&A) -> Option<String>, args: A) -> R;
}

impl<A, R, F> StashBytes<A, R> for &&&Probed<A, R, F>
where
    R: RawValue + DeserializeOwned,
    F: FnOnce(A) -> R,
{
    #[inline]
    fn __devstash_run(self, marker: Marker, preview: fn(&A) -> Option<String>, args: A) -> R {
        #[cfg(target_arch = "wasm32")]
        let stored: Stored<R> = (imp::lookup_raw::<R>, imp::store_raw::<R>);
        #[cfg(not(target_arch = "wasm32"))]
        let stored: Stored<R> = PhantomData;
        run_whole::<A, R, F>(self.take(), stored, marker, preview, args)
    }
}

/// Dispatch for every other value type: the whole value is stored.
pub trait StashValue<A, R> {
    /// Runs the call or returns its stored value.
    fn __devstash_run(self, marker: Marker, preview: fn(&A) -> Option<String>, args: A) -> R;
}

impl<A, R, F> StashValue<A, R> for &&Probed<A, R, F>
where
    R: Serialize + DeserializeOwned,
    F: FnOnce(A) -> R,
{
    #[inline]
    fn __devstash_run(self, marker: Marker, preview: fn(&A) -> Option<String>, args: A) -> R {
        #[cfg(target_arch = "wasm32")]
        let stored: Stored<R> = (imp::lookup::<R>, imp::store::<R>);
        #[cfg(not(target_arch = "wasm32"))]
        let stored: Stored<R> = PhantomData;
        run_whole::<A, R, F>(self.take(), stored, marker, preview, args)
    }
}

/// What a stored value must be: `Serialize` to be stored, `DeserializeOwned` to be restored.
/// Only the fallbacks name it, so that a value type lacking either is a compile error that says
/// so (instead of "method `__devstash_run` exists but its trait bounds were not satisfied").
#[diagnostic::on_unimplemented(
    message = "the value type `{Self}` of a stashed call must implement `Serialize` and `Deserialize`",
    label = "the value of this call is stored and restored: `{Self}` must implement `serde::Serialize` and `serde::Deserialize`",
    note = "derive them on `{Self}`: `#[derive(serde::Serialize, serde::Deserialize)]` (a type from another crate may have a `serde` feature; else return a type of your own built from it)",
    note = "for a `Result<T, E>`, only `T` is stored and needs them; `E` needs neither"
)]
pub trait StoredValue: Serialize + DeserializeOwned {}

impl<T: Serialize + DeserializeOwned> StoredValue for T {}

/// Fallback for a `Result<T, E>` whose `T` cannot be stored (see [`StoredValue`]): never
/// compiles, since [`StashOk`] is picked whenever `T: StoredValue`.
pub trait StashOkUnstorable<A, T, E> {
    /// Fails to compile, naming `T` and what it lacks.
    fn __devstash_run(
        self,
        marker: Marker,
        preview: fn(&A) -> Option<String>,
        args: A,
    ) -> Result<T, E>
    where
        T: StoredValue;
}

impl<A, T, E, F> StashOkUnstorable<A, T, E> for &Probed<A, Result<T, E>, F>
where
    F: FnOnce(A) -> Result<T, E>,
{
    fn __devstash_run(
        self,
        marker: Marker,
        preview: fn(&A) -> Option<String>,
        args: A,
    ) -> Result<T, E>
    where
        T: StoredValue,
    {
        let _ = (marker, preview);
        self.take()(args)
    }
}

/// Fallback for any other value type that cannot be stored (see [`StoredValue`]): never
/// compiles, since [`StashValue`] is picked whenever `R: StoredValue`.
pub trait StashUnstorable<A, R> {
    /// Fails to compile, naming `R` and what it lacks.
    fn __devstash_run(self, marker: Marker, preview: fn(&A) -> Option<String>, args: A) -> R
    where
        R: StoredValue;
}

impl<A, R, F> StashUnstorable<A, R> for Probed<A, R, F>
where
    F: FnOnce(A) -> R,
{
    fn __devstash_run(self, marker: Marker, preview: fn(&A) -> Option<String>, args: A) -> R
    where
        R: StoredValue,
    {
        let _ = (marker, preview);
        self.take()(args)
    }
}

/// How a value type is looked up and stored: a lookup and a store function.
#[cfg(target_arch = "wasm32")]
type Stored<R> = (
    fn(&imp::Prepared) -> imp::Lookup<R>,
    fn(i64, &R, Option<String>),
);
/// Off wasm the markers are plain calls: nothing is looked up or stored.
#[cfg(not(target_arch = "wasm32"))]
type Stored<R> = PhantomData<R>;

/// Runs a call whose whole value is stored (see [`StashBytes`] and [`StashValue`]), or returns
/// its stored value.
#[inline]
fn run_whole<A, R: DeserializeOwned, F: FnOnce(A) -> R>(
    call: F,
    stored: Stored<R>,
    marker: Marker,
    preview: fn(&A) -> Option<String>,
    args: A,
) -> R {
    #[cfg(target_arch = "wasm32")]
    {
        let (lookup, store) = stored;
        let Some(c) = imp::prepare::<A, R, F>(&marker) else {
            return call(args);
        };
        match lookup(&c) {
            imp::Lookup::Hit(v) => v,
            imp::Lookup::Miss(ticket) => {
                let text = preview(&args);
                let value = imp::timed(ticket, || call(args));
                store(ticket, &value, text);
                value
            }
            imp::Lookup::Uncached => call(args),
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (stored, marker, preview);
        call(args)
    }
}

/// Runs a call returning a `Result` whose `Ok` value is stored (see [`StashOk`] and
/// [`StashOkRaw`]), or returns its stored value.
#[inline]
fn run_ok<A, T: DeserializeOwned, E, F: FnOnce(A) -> Result<T, E>>(
    call: F,
    stored: Stored<T>,
    marker: Marker,
    preview: fn(&A) -> Option<String>,
    args: A,
) -> Result<T, E> {
    #[cfg(target_arch = "wasm32")]
    {
        let (lookup, store) = stored;
        let Some(c) = imp::prepare::<A, T, F>(&marker) else {
            return call(args);
        };
        match lookup(&c) {
            imp::Lookup::Hit(v) => Ok(v),
            imp::Lookup::Miss(ticket) => {
                let text = preview(&args);
                let result = imp::timed(ticket, || call(args));
                match &result {
                    Ok(v) => store(ticket, v, text),
                    Err(_) => imp::forget(ticket),
                }
                result
            }
            imp::Lookup::Uncached => call(args),
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (stored, marker, preview);
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

/// `app::W<u8>::m` -> `app::W::m`: a path without its generic arguments (a qualified path such
/// as `<app::T as app::Tr>::m` is kept as it is).
pub fn without_generics(path: &str) -> String {
    if path.starts_with('<') {
        return path.to_string();
    }
    let mut out = String::with_capacity(path.len());
    let mut depth = 0usize;
    for c in path.chars() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// What a site registers as, for one set of concrete types; or why it runs uncached.
pub struct Resolved {
    /// The identity shown and used in entry names (a path without generic arguments).
    pub callee: String,
    /// The fingerprint of the code that decides the value.
    pub fingerprint: &'static str,
    /// Everything else the compiler resolved (see `SiteDesc::types`).
    pub types: String,
}

/// Whether a type's name holds a closure's type among its generic arguments
/// (`app::run<app::main::{{closure}}>`): every closure of a function has the same name, so such a
/// name does not tell two instantiations apart.
fn closure_in_generics(name: &str) -> bool {
    let mut depth = 0usize;
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => depth += 1,
            b'>' => depth = depth.saturating_sub(1),
            b'{' if depth > 0 && name[i..].starts_with("{{closure}}") => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Works out what `site` registers as when it runs with arguments `A`, value type `V`
/// (for a `Result`, its `Ok` type) and dispatch closure `F`. `Err` says why the call cannot be
/// keyed honestly and must run uncached.
pub fn resolve<A, V: DeserializeOwned, F>(site: &Site, callee: Callee) -> Result<Resolved, String> {
    let args = core::any::type_name::<A>();
    if args.contains("&mut ") {
        return Err(
            "an argument is a `&mut` reference: a stored value would skip what the call does to \
             it"
            .into(),
        );
    }
    // The dispatch closure is defined inside the function that holds the marker, and its type's
    // name carries that function's path and generic arguments.
    let closure = core::any::type_name::<F>();
    let enclosing = closure.strip_suffix("::{{closure}}").unwrap_or(closure);
    let callee_name = match callee {
        Callee::Path { name, .. } => name,
        Callee::Method { receiver, .. } => receiver,
        Callee::Fn => "",
    };
    for name in [closure, callee_name, args, core::any::type_name::<V>()] {
        if closure_in_generics(name) {
            return Err(format!(
                "it runs with a closure as a type argument ({name}), and closures have no name \
                 that tells one from another; call a named function"
            ));
        }
    }
    let mut fingerprint = site.fingerprint;
    let (callee, full) = match callee {
        Callee::Fn => (without_generics(enclosing), enclosing.to_string()),
        Callee::Path { name, size } => {
            if size != 0 {
                return Err(
                    "its callee is a function pointer, a reference, or a closure that captures \
                     variables: what it captures (or which function it points at) is not part \
                     of the key; call a named function, or pass what varies as an argument"
                        .into(),
                );
            }
            match name.strip_suffix("::{{closure}}") {
                Some(defined_in) => {
                    let Some((binding, code)) = site.closure else {
                        return Err(format!(
                            "its callee `{}` is a closure that is not written where it is \
                             called, so its code is not part of the key; call a named function",
                            site.callee
                        ));
                    };
                    if !enclosing.starts_with(defined_in) {
                        return Err(format!(
                            "its callee `{}` is a closure defined in {defined_in}, not at the \
                             marker; call a named function",
                            site.callee
                        ));
                    }
                    fingerprint = code;
                    (
                        format!("{}::{binding}", without_generics(defined_in)),
                        format!("{name} {binding}"),
                    )
                }
                None => (without_generics(name), name.to_string()),
            }
        }
        Callee::Method {
            receiver,
            method,
            turbofish,
        } => {
            let receiver = receiver.trim_start_matches('&').trim_start_matches("mut ");
            // The method a name resolves to depends on the traits in scope where it is called:
            // the function that holds the marker is part of what resolved it.
            (
                format!("{}::{method}", without_generics(receiver)),
                format!("{receiver}::{method}{turbofish} in {enclosing}"),
            )
        }
    };
    let value = core::any::type_name::<V>();
    let shape = crate::shape::of::<V>();
    Ok(Resolved {
        callee,
        fingerprint,
        types: format!("callee={full}\nargs={args}\nvalue={value}\nshape={shape}"),
    })
}

impl Site {
    /// The handle registered for the tag `tag` (the name of the dispatch closure's type, which
    /// differs between the instantiations of a generic function), if a tag at that address was
    /// seen before. A name can be at more than one address, and two instantiations can have the
    /// same name: a miss here is resolved again and compared by what it resolves to.
    #[cfg(target_arch = "wasm32")]
    fn handle(&self, tag: &'static str) -> Option<i32> {
        let at = (tag.as_ptr() as usize, tag.len());
        // The common case, one set of types: two loads and a compare.
        if self.first_tag.load(Ordering::Acquire) == at.0
            && self.first_len.load(Ordering::Relaxed) == at.1
        {
            return Some(self.first.load(Ordering::Relaxed));
        }
        let more = self.more.lock().unwrap_or_else(|e| e.into_inner());
        more.iter().find(|r| r.tag == at).map(|r| r.handle)
    }

    /// Remembers the handle of `tag`, reusing the handle of an earlier registration that
    /// resolved to the same key material (`register` is called only when there is none).
    #[cfg(target_arch = "wasm32")]
    fn remember(
        &self,
        tag: &'static str,
        resolved: Option<(String, &'static str, String)>,
        register: impl FnOnce() -> i32,
    ) -> i32 {
        let at = (tag.as_ptr() as usize, tag.len());
        let mut more = self.more.lock().unwrap_or_else(|e| e.into_inner());
        let known = resolved
            .as_ref()
            .and_then(|r| more.iter().find(|m| m.resolved.as_ref() == Some(r)))
            .map(|m| m.handle);
        let handle = match (known, &resolved) {
            (Some(h), _) => h,
            (None, None) => DISABLED,
            (None, Some(_)) => register(),
        };
        more.push(Registered {
            tag: at,
            resolved,
            handle,
        });
        if self.first_tag.load(Ordering::Acquire) == 0 {
            self.first.store(handle, Ordering::Relaxed);
            self.first_len.store(at.1, Ordering::Relaxed);
            self.first_tag.store(at.0, Ordering::Release);
        }
        handle
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;
    use crate::abi;
    use core::mem::MaybeUninit;
    use devstash_protocol::{ABI_VERSION, LogLevel, SiteDesc, Status, codec, get_flags};

    pub enum Lookup<V> {
        Hit(V),
        Miss(i64),
        Uncached,
    }

    /// A call ready to look up: its site's handle and its key bytes.
    pub struct Prepared<'a> {
        site: &'static Site,
        handle: i32,
        args: &'a [u8],
    }

    /// Registers the site for these types when it is the first call with them; `None` when the
    /// call runs uncached.
    pub fn prepare<'a, A, V: DeserializeOwned, F>(marker: &'a Marker) -> Option<Prepared<'a>> {
        let site = marker.site;
        let tag = core::any::type_name::<F>();
        let handle = match site.handle(tag) {
            Some(h) => h,
            None => match resolve::<A, V, F>(site, marker.callee) {
                Ok(r) => {
                    let material = (r.callee.clone(), r.fingerprint, r.types.clone());
                    site.remember(tag, Some(material), || register::<V>(site, r))
                }
                Err(why) => {
                    warn(site, &format!("{why}; the call runs uncached"));
                    site.remember(tag, None, || DISABLED)
                }
            },
        };
        if handle == DISABLED {
            return None;
        }
        let Some(args) = &marker.key.0 else {
            warn(
                site,
                "its arguments could not be encoded; the call runs uncached",
            );
            return None;
        };
        Some(Prepared {
            site,
            handle,
            args: args.as_slice(),
        })
    }

    fn register<V>(site: &'static Site, resolved: Resolved) -> i32 {
        let desc = SiteDesc {
            abi_version: ABI_VERSION,
            module_path: site.module_path.into(),
            callee: resolved.callee,
            file: site.file.into(),
            line: site.line,
            ttl_secs: site.ttl_secs,
            fingerprint: resolved.fingerprint.into(),
            value_type: core::any::type_name::<V>().into(),
            kind: site.kind,
            types: resolved.types,
        };
        let h = match codec::encode(&desc) {
            // SAFETY: pointer and length describe `bytes`, alive for the call.
            Ok(bytes) => unsafe { abi::site_register(bytes.as_ptr(), bytes.len()) },
            Err(_) => DISABLED,
        };
        if h < 0 { DISABLED } else { h }
    }

    fn get(handle: i32, args: &[u8], flags: i32) -> (i32, u64) {
        let mut out = 0u64;
        // SAFETY: `args` is alive for the call and `out` is a valid, aligned u64.
        let status = unsafe { abi::stash_get(handle, args.as_ptr(), args.len(), flags, &mut out) };
        (status, out)
    }

    /// Runs a missed call, telling the runner when it starts and ends so that its recorded
    /// compute time is the call's own (not the preview's, nor the value's encoding).
    pub fn timed<T>(ticket: i64, call: impl FnOnce() -> T) -> T {
        // SAFETY: plain integer calls.
        unsafe { abi::stash_begin(ticket) };
        let value = call();
        unsafe { abi::stash_end(ticket) };
        value
    }

    /// After a stored value could not be used: a ticket to recompute it. `why` is the warning
    /// for a value that was read but cannot be used (a corrupt one was reported by the runner).
    fn refresh<V>(c: &Prepared, why: Option<&str>) -> Lookup<V> {
        if let Some(why) = why {
            warn(c.site, &format!("{why}; recomputing"));
        }
        match get(c.handle, c.args, get_flags::REFRESH) {
            (s, ticket) if s == Status::Miss as i32 => Lookup::Miss(ticket as i64),
            _ => Lookup::Uncached,
        }
    }

    /// A buffer for `len` bytes, or `None` when the guest cannot hold them.
    fn buffer(len: u64) -> Option<Vec<u8>> {
        let len = usize::try_from(len).ok()?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len).ok()?;
        Some(buf)
    }

    const TOO_LARGE: &str = "its stored value is larger than this program's memory can hold";

    pub fn lookup<V: DeserializeOwned>(c: &Prepared) -> Lookup<V> {
        let (status, out) = get(c.handle, c.args, 0);
        match Status::from_raw(status) {
            Some(Status::Hit) => {
                let Some(mut buf) = buffer(out) else {
                    return refresh(c, Some(TOO_LARGE));
                };
                let len = out as usize;
                // SAFETY: `buf` has capacity `len`; the host writes exactly `len` bytes or
                // fails, and the length is only set after success.
                let taken = unsafe { abi::stash_take(buf.as_mut_ptr(), len) };
                if taken != Status::Hit as i32 {
                    return refresh(c, None);
                }
                unsafe { buf.set_len(len) };
                match codec::decode::<V>(&buf) {
                    Ok(v) => Lookup::Hit(v),
                    Err(_) => refresh(c, Some("its stored value no longer decodes")),
                }
            }
            Some(Status::Miss) => Lookup::Miss(out as i64),
            _ => Lookup::Uncached,
        }
    }

    /// The value of the last hit, read through `stash_read`.
    struct Pending {
        total: u64,
    }

    // SAFETY: the runner writes all of `dst` before it answers `Hit`.
    unsafe impl raw::Source for Pending {
        fn total(&self) -> u64 {
            self.total
        }

        fn read(&mut self, offset: u64, dst: &mut [MaybeUninit<u8>]) -> Result<(), raw::Unusable> {
            // SAFETY: `dst` is valid for `dst.len()` bytes for the call.
            let s = unsafe { abi::stash_read(offset, dst.as_mut_ptr().cast::<u8>(), dst.len()) };
            if s == Status::Hit as i32 {
                Ok(())
            } else {
                Err(raw::Unusable::Refused)
            }
        }
    }

    /// Like [`lookup`], for a [`RawValue`]: read straight into the value's own buffer.
    pub fn lookup_raw<V: RawValue>(c: &Prepared) -> Lookup<V> {
        let (status, out) = get(c.handle, c.args, 0);
        match Status::from_raw(status) {
            Some(Status::Hit) => match V::decode(&mut Pending { total: out }) {
                Ok(v) => Lookup::Hit(v),
                Err(raw::Unusable::Shape) => refresh(c, Some("its stored value no longer decodes")),
                Err(raw::Unusable::TooLarge) => refresh(c, Some(TOO_LARGE)),
                Err(raw::Unusable::Refused) => refresh(c, None),
            },
            Some(Status::Miss) => Lookup::Miss(out as i64),
            _ => Lookup::Uncached,
        }
    }

    /// Stores a [`RawValue`]: the bytes postcard would write for it, built in one buffer of
    /// exactly their size.
    pub fn store_raw<V: RawValue>(ticket: i64, value: &V, preview: Option<String>) {
        let Some(bytes) = value.encode() else {
            crate::log::write(
                LogLevel::Warn,
                "a value is too large to encode in this program's memory; it was not stored",
            );
            return forget(ticket);
        };
        let p = preview.unwrap_or_default();
        // SAFETY: both buffers are alive for the call.
        unsafe { abi::stash_put(ticket, bytes.as_ptr(), bytes.len(), p.as_ptr(), p.len()) };
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
    closure: Option<(&'static str, &'static str)>,
) -> Site {
    Site {
        module_path,
        callee,
        file,
        line,
        ttl_secs,
        fingerprint,
        kind,
        closure,
        first_tag: AtomicUsize::new(0),
        first_len: AtomicUsize::new(0),
        first: AtomicI32::new(UNREGISTERED),
        more: std::sync::Mutex::new(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_stop_early() {
        struct Counted<'a>(&'a Cell<usize>);
        impl core::fmt::Debug for Counted<'_> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                self.0.set(self.0.get() + 1);
                f.write_str("item")
            }
        }
        let count = Cell::new(0);
        let items: Vec<Counted> = (0..100_000).map(|_| Counted(&count)).collect();
        let p = bounded_debug(&items, PREVIEW_MAX);
        assert!(p.len() <= PREVIEW_MAX + '…'.len_utf8(), "{}", p.len());
        assert!(p.ends_with('…') && p.starts_with("[item, item"));
        assert!(count.get() < 100, "formatted {} items", count.get());
        assert_eq!(bounded_debug(&(1, "é"), 200), "(1, \"é\")");
        // Cut at a character boundary.
        assert_eq!(bounded_debug("éééé", 4), "\"é…");
    }

    #[test]
    fn paths_lose_their_generic_arguments() {
        assert_eq!(without_generics("app::W<u8>::m"), "app::W::m");
        assert_eq!(without_generics("app::f<alloc::vec::Vec<u8>>"), "app::f");
        assert_eq!(
            without_generics("<app::T as app::Tr>::m"),
            "<app::T as app::Tr>::m"
        );
    }

    static SITE: Site = site(
        "app",
        "score",
        "src/main.rs",
        3,
        None,
        "fp",
        SiteKind::Call,
        Some(("score", "closurefp")),
    );

    fn resolved<F>(_f: &F, callee: Callee) -> Result<Resolved, String> {
        resolve::<(u64,), u64, F>(&SITE, callee)
    }

    #[test]
    fn callees_resolve_to_what_the_compiler_saw() {
        fn load(x: u64) -> u64 {
            x
        }
        let dispatch = |x: u64| x;
        let r = resolved(&dispatch, Callee::path(&load)).unwrap();
        assert!(r.callee.ends_with("::load"), "{}", r.callee);
        assert_eq!(r.fingerprint, "fp");
        // A closure written in this function is keyed by its own code.
        let score = |x: u64| x * 3;
        let r = resolved(&dispatch, Callee::path(&score)).unwrap();
        assert!(r.callee.ends_with("::score"), "{}", r.callee);
        assert_eq!(r.fingerprint, "closurefp");
        // A closure among a generic's type arguments has no name of its own.
        let generic = |x: u64| x;
        fn dispatch_of<G>(_g: &G) -> impl Fn(u64) -> u64 {
            |x| x
        }
        let d = dispatch_of(&generic);
        assert!(resolved(&d, Callee::path(&load)).is_err());
        assert!(closure_in_generics(
            "app::run<app::main::{{closure}}>::{{closure}}"
        ));
        assert!(!closure_in_generics("app::main::{{closure}}::{{closure}}"));
        // A capturing closure or a function pointer cannot be keyed.
        let k = 3;
        let captures = |x: u64| x * k;
        assert!(resolved(&dispatch, Callee::path(&captures)).is_err());
        let pointer: fn(u64) -> u64 = load;
        assert!(resolved(&dispatch, Callee::path(&pointer)).is_err());
        // `&mut` arguments run uncached.
        assert!(resolve::<(&mut Vec<u8>,), u64, fn()>(&SITE, Callee::Fn).is_err());
    }
}
