//! The local cache directory (`./.devstash_cache/` by default).
//!
//! Every operation goes through a cap-std [`Dir`] opened on the cache directory, so no entry
//! name, however it was made, and no symlink placed in the directory can make the store read or
//! write outside it.

use std::cell::RefCell;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use cap_std::ambient_authority;
use cap_std::fs::Dir;

use super::pack::{self, Pack};
use super::stream::{self, Stream};
use super::{Entry, EntryRef, Found, Header, Lookup, Tier, Value};

/// Name of the marker file that identifies a devstash cache directory (the cross-tool
/// `CACHEDIR.TAG` convention, which also keeps backup tools out).
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
const CACHEDIR_TAG_BODY: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This directory is a devstash cache (https://crates.io/crates/devstash).\n\
# Its entries are recomputed when missing; `devstash clear --all` empties it.\n";

/// Lookups a run makes before it loads the pack.
const PACK_AFTER: u32 = 16;

/// A pack at least this large is loaded in the background from the start of a run (see
/// [`DiskTier::prefetch`]).
const PREFETCH_FROM: u64 = 16 << 10;

/// The pack, as far as this run has got with it.
enum PackState {
    /// Not loaded (yet).
    Idle,
    /// Being loaded by another thread.
    Loading(std::thread::JoinHandle<Pack>),
    /// Loaded.
    Ready(Pack),
}

/// Entry files larger than this are streamed (see `store::stream`) rather than read whole.
const STREAM_OVER: u64 = 1 << 20;

/// Entries as files in one directory.
pub struct DiskTier {
    path: PathBuf,
    // Opened lazily: a run with no marked calls must not create the directory.
    dir: RefCell<Option<Dir>>,
    // Used once a run has made `PACK_AFTER` lookups; see `pack`.
    pack: RefCell<PackState>,
    lookups: std::cell::Cell<u32>,
    appender: RefCell<pack::Appender>,
}

impl DiskTier {
    /// A tier over `path`, which need not exist yet.
    pub fn new(path: impl Into<PathBuf>) -> DiskTier {
        DiskTier {
            path: path.into(),
            dir: RefCell::new(None),
            pack: RefCell::new(PackState::Idle),
            lookups: std::cell::Cell::new(0),
            appender: RefCell::new(pack::Appender::default()),
        }
    }

    /// The cache directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts loading a large pack on another thread, so that it is ready by the time the
    /// guest, once the module is compiled and instantiated, has made its first lookups. A run
    /// that makes few lookups never waits for it; a small pack is loaded on demand.
    pub fn prefetch(&self) {
        let big = std::fs::metadata(self.path.join(pack::PACK_NAME))
            .is_ok_and(|m| m.len() >= PREFETCH_FROM);
        if !big {
            return;
        }
        if let Ok(Some(Ok(dir))) = self.with_dir(false, Dir::try_clone) {
            let loader = std::thread::Builder::new()
                .name("devstash-pack".into())
                .spawn(move || Pack::load(&dir));
            if let Ok(handle) = loader {
                *self.pack.borrow_mut() = PackState::Loading(handle);
            }
        }
    }

    /// Runs `f` on the directory handle, opening it first; `create` makes the directory (and its
    /// tag) when missing. `Ok(None)` when it does not exist and `create` is false.
    fn with_dir<T>(&self, create: bool, f: impl FnOnce(&Dir) -> T) -> anyhow::Result<Option<T>> {
        let mut slot = self.dir.borrow_mut();
        if slot.is_none() {
            match Dir::open_ambient_dir(&self.path, ambient_authority()) {
                Ok(d) => *slot = Some(d),
                Err(e) if e.kind() == ErrorKind::NotFound && create => {
                    *slot = Some(create_cache_dir(&self.path)?);
                }
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot open cache directory {}", self.path.display())
                    });
                }
            }
        }
        Ok(slot.as_ref().map(f))
    }
}

/// Creates a cache directory with its tag.
pub fn create_cache_dir(path: &Path) -> anyhow::Result<Dir> {
    std::fs::create_dir_all(path)
        .with_context(|| format!("cannot create cache directory {}", path.display()))?;
    let dir = Dir::open_ambient_dir(path, ambient_authority())
        .with_context(|| format!("cannot open cache directory {}", path.display()))?;
    if !dir.exists(CACHEDIR_TAG) {
        // Best effort: the tag is a courtesy to other tools and a sign for `clear`.
        let _ = dir.write(CACHEDIR_TAG, CACHEDIR_TAG_BODY);
    }
    Ok(dir)
}

/// Whether `contents` is a `CACHEDIR.TAG` that devstash wrote: the convention's signature line
/// followed by devstash's own comment. `devstash clear` takes it as proof that a directory is a
/// devstash cache (a tag from another tool is not).
pub fn is_devstash_tag(contents: &[u8]) -> bool {
    let signature = CACHEDIR_TAG_BODY.lines().next().unwrap_or_default();
    let Ok(text) = std::str::from_utf8(contents) else {
        return false;
    };
    text.starts_with(signature) && text.contains("devstash cache")
}

/// Writes `bytes` to `name` inside `dir` atomically (temp file, then rename).
pub fn write_atomic(dir: &Dir, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    // An anonymous temp file (`O_TMPFILE`): a crash leaves nothing behind, which matters more
    // for entries (written by every miss, some of them large) than the three system calls it
    // costs over a named one (about 2 µs of a 17 µs store).
    let mut tmp = cap_tempfile::TempFile::new(dir)?;
    tmp.write_all(bytes)?;
    // No fsync: after a crash the rename either happened or not, and a torn file left by a
    // power loss fails its checksum and is recomputed. A hit must not wait on the disk.
    tmp.replace(name)
}

/// Writes `bytes` to a new temp file named after `name` (`.tmp-<pid>-<name>`) and hands its name
/// to `publish` to move it into place; the temp file is removed if anything fails.
///
/// For files written once per run (tapes): a named temp file and a rename cost about half of an
/// anonymous temp file linked into place on ext4. A crash can leave the temp file; the `.tmp`
/// prefix is what `devstash clear` knows as such a leftover.
pub fn write_via_temp(
    dir: &Dir,
    name: &str,
    bytes: &[u8],
    publish: impl FnOnce(&Dir, &str) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = format!(".tmp-{}-{name}", std::process::id());
    let mut opts = cap_std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    let written = (|| {
        let mut file = match dir.open_with(&tmp, &opts) {
            // Left by a crashed run that had this process id: no live process writes it.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                dir.remove_file(&tmp)?;
                dir.open_with(&tmp, &opts)?
            }
            opened => opened?,
        };
        file.write_all(bytes)?;
        drop(file);
        publish(dir, &tmp)
    })();
    if written.is_err() {
        let _ = dir.remove_file(&tmp);
    }
    written
}

impl DiskTier {
    /// The entry from the pack, if it holds a verified copy for this key. Loading the pack costs
    /// a read of all of it and one directory listing, which only pays off for runs with many
    /// lookups: the first `PACK_AFTER` lookups of a run read their files directly.
    fn lookup_pack(&self, at: &EntryRef) -> Option<Found> {
        let n = self.lookups.get().saturating_add(1);
        self.lookups.set(n);
        if n <= PACK_AFTER {
            return None;
        }
        let mut state = self.pack.borrow_mut();
        if !matches!(*state, PackState::Ready(_)) {
            let started = std::time::Instant::now();
            let loaded = match std::mem::replace(&mut *state, PackState::Idle) {
                PackState::Loading(handle) => handle.join().unwrap_or_default(),
                _ => self.with_dir(false, Pack::load).ok().flatten()?,
            };
            tracing::debug!(
                "{} ready ({} records), waited {:?}",
                pack::PACK_NAME,
                loaded.len(),
                started.elapsed()
            );
            *state = PackState::Ready(loaded);
        }
        match &*state {
            PackState::Ready(pack) => pack.get(&at.name, &at.key_hex),
            _ => None,
        }
    }
}

/// Reads the entry file of `at`: whole when small, else its head only (see `store::stream`).
fn read_file(dir: &Dir, at: &EntryRef) -> Lookup {
    let file = match dir.open(&at.name) {
        Ok(f) => f.into_std(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Lookup::Missing,
        Err(e) => return Lookup::Corrupt(format!("cannot read: {e}")),
    };
    let len = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return Lookup::Corrupt(format!("cannot read: {e}")),
    };
    let other_key = || Lookup::Corrupt("holds another key (file renamed or copied?)".into());
    if len > STREAM_OVER {
        match Stream::open(file, len) {
            Ok((header, _)) if header.key != at.key_hex => return other_key(),
            Ok((header, stream)) => {
                return Lookup::Found(Found {
                    created_ms: header.created_ms,
                    compute_ns: header.compute_ns,
                    args_preview: header.args_preview,
                    value: Value::Stream(Box::new(stream)),
                });
            }
            Err(stream::OpenError::Corrupt(why)) => return Lookup::Corrupt(why),
            Err(stream::OpenError::Whole) => {}
        }
        // Reopened: the read below starts at the beginning of the file.
        return match dir.read(&at.name) {
            Ok(bytes) => decoded(at, bytes),
            Err(e) => Lookup::Corrupt(format!("cannot read: {e}")),
        };
    }
    let mut bytes = Vec::with_capacity(len as usize);
    match std::io::Read::read_to_end(&mut &file, &mut bytes) {
        Ok(_) => decoded(at, bytes),
        Err(e) => Lookup::Corrupt(format!("cannot read: {e}")),
    }
}

/// An entry file's bytes, verified.
fn decoded(at: &EntryRef, bytes: Vec<u8>) -> Lookup {
    match Entry::decode(bytes) {
        Ok(entry) if entry.header.key == at.key_hex => Lookup::Found(Found::entry(entry)),
        Ok(_) => Lookup::Corrupt("holds another key (file renamed or copied?)".into()),
        Err(why) => Lookup::Corrupt(why),
    }
}

impl DiskTier {
    /// A verified entry was read from its file although the run uses the pack (the entry was
    /// stored before the pack existed, or the pack lost it): copy it in, so the next run finds it.
    fn heal_pack(&self, at: &EntryRef, entry: &Entry) {
        if !matches!(*self.pack.borrow(), PackState::Ready(_)) {
            return;
        }
        let appended = self.with_dir(false, |d| {
            self.appender
                .borrow_mut()
                .append(d, &at.name, &entry.header, entry.payload())
        });
        if let Ok(Some(Err(e))) = appended {
            tracing::debug!("cannot append to {}: {e}", pack::PACK_NAME);
        }
    }
}

impl Drop for DiskTier {
    fn drop(&mut self) {
        // Reclaim space taken by superseded or removed records, at most once per run.
        if let (PackState::Ready(pack), Some(dir)) = (self.pack.get_mut(), self.dir.get_mut())
            && pack.wants_compaction()
            && let Err(e) = pack.compact(dir)
        {
            tracing::debug!("cannot compact {}: {e}", pack::PACK_NAME);
        }
    }
}

impl Tier for DiskTier {
    fn get(&self, at: &EntryRef) -> Lookup {
        if let Some(entry) = self.lookup_pack(at) {
            return Lookup::Found(entry);
        }
        let lookup = match self.with_dir(false, |d| read_file(d, at)) {
            Ok(None) => Lookup::Missing,
            Ok(Some(lookup)) => lookup,
            Err(e) => Lookup::Corrupt(format!("{e:#}")),
        };
        if let Lookup::Found(Found {
            value: Value::Entry(entry),
            ..
        }) = &lookup
        {
            self.heal_pack(at, entry);
        }
        lookup
    }

    fn put(&self, at: &EntryRef, header: &Header, payload: &[u8]) -> anyhow::Result<()> {
        let bytes = Entry::encode(header, payload);
        self.with_dir(true, |d| {
            write_atomic(d, &at.name, &bytes)?;
            // The file is written; the pack copy is only a shortcut, so failing to add it is
            // not an error.
            if let Err(e) = self
                .appender
                .borrow_mut()
                .append(d, &at.name, header, payload)
            {
                tracing::debug!("cannot append to {}: {e}", pack::PACK_NAME);
            }
            Ok::<(), std::io::Error>(())
        })?
        .expect("created on demand")
        .with_context(|| format!("cannot write {}", self.path.join(&at.name).display()))
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::names::entry_file_name;

    use crate::store::entry::test_header as header;

    #[test]
    fn put_then_get_and_lazy_creation() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cache");
        let tier = DiskTier::new(&root);
        let key = "ab".repeat(32);
        let at = EntryRef {
            name: entry_file_name("app::f", &key),
            key_hex: key.clone(),
        };
        assert!(matches!(tier.get(&at), Lookup::Missing));
        assert!(!root.exists(), "a lookup must not create the directory");
        tier.put(&at, &header(&key, 3), b"xyz").unwrap();
        assert!(root.join(CACHEDIR_TAG).exists());
        match tier.get(&at) {
            Lookup::Found(mut f) => assert_eq!(f.value.verified().unwrap(), b"xyz"),
            other => panic!("{other:?}"),
        }
        // Another key under the same file name is not returned as this one.
        let other = EntryRef {
            name: at.name.clone(),
            key_hex: "cd".repeat(32),
        };
        assert!(matches!(tier.get(&other), Lookup::Corrupt(_)));
    }

    #[test]
    fn recognizes_its_own_tag_only() {
        let tmp = tempfile::tempdir().unwrap();
        create_cache_dir(tmp.path()).unwrap();
        let ours = std::fs::read(tmp.path().join(CACHEDIR_TAG)).unwrap();
        assert!(is_devstash_tag(&ours));
        // Another tool's tag carries the same signature but is not ours.
        assert!(!is_devstash_tag(
            b"Signature: 8a477f597d28d172789f06886806bc55\n# cargo build directory\n"
        ));
        assert!(!is_devstash_tag(b"devstash cache"));
        assert!(!is_devstash_tag(&[0xff, 0xfe]));
    }
}
