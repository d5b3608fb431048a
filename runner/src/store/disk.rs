//! The local cache directory (`./.devstash_cache/` by default).
//!
//! Every operation goes through a cap-std [`Dir`] opened on the cache directory, so no entry
//! name, however it was made, and no symlink placed in the directory can make the store read or
//! write outside it.

use std::cell::RefCell;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use cap_std::fs::Dir;

use super::pack::{self, Pack};
use super::sign::Signer;
use super::stream::{MAX_PAYLOAD, Stream};
use super::{Entry, EntryRef, Found, Header, Lookup, Tier, Value};

/// Name of the marker file that identifies a devstash cache directory (the cross-tool
/// `CACHEDIR.TAG` convention, which also keeps backup tools out).
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
const CACHEDIR_TAG_BODY: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This directory is a devstash cache (https://bford.info/cachedir/).\n\
# Its entries are recomputed when missing; `devstash clear --all` empties it.\n";

/// Name of the `.gitignore` devstash writes in a cache directory it creates, as Cargo does in
/// `target/`: entries are signed with one user's key and are of no use to anyone else.
pub const GITIGNORE: &str = ".gitignore";
const GITIGNORE_BODY: &str =
    "# Written by devstash: this cache is for this machine and user only.\n*\n";

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
pub const STREAM_OVER: u64 = 1 << 20;

/// Entries as files in one directory.
pub struct DiskTier {
    path: PathBuf,
    signer: Signer,
    // Opened lazily: a run with no marked calls must not create the directory.
    dir: RefCell<Option<Dir>>,
    // Used once a run has made `PACK_AFTER` lookups; see `pack`.
    pack: RefCell<PackState>,
    lookups: std::cell::Cell<u32>,
    appender: RefCell<pack::Appender>,
}

impl DiskTier {
    /// A tier over `path`, which need not exist yet, whose entries are signed (and verified)
    /// with `signer`.
    pub fn new(path: impl Into<PathBuf>, signer: Signer) -> DiskTier {
        DiskTier {
            path: path.into(),
            signer,
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
            let signer = self.signer.clone();
            let loader = std::thread::Builder::new()
                .name("devstash-pack".into())
                .spawn(move || Pack::load(&dir, &signer));
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
            match open_cache_dir(&self.path) {
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

/// Opens the cache directory at `path`, refusing a symbolic link in its place (its parents are
/// followed: the user chose them). A program granted the folder that holds the cache can replace
/// the cache with a link to any folder of the user's, and devstash, which is not confined to the
/// grant, would then write its entries and tapes there.
pub fn open_cache_dir(path: &Path) -> std::io::Result<Dir> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut opts,
        libc::O_DIRECTORY | libc::O_NOFOLLOW,
    );
    match opts.open(path) {
        Ok(file) if file.metadata()?.is_dir() => Ok(Dir::from_std_file(file)),
        Ok(_) => Err(std::io::Error::new(
            ErrorKind::NotADirectory,
            "not a directory",
        )),
        Err(_) if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) => {
            Err(std::io::Error::new(
                ErrorKind::InvalidInput,
                "it is a symbolic link, which devstash does not follow for its cache: a \
                 program granted the folder around it could point it anywhere; pass the real \
                 folder with --cache-dir, or remove the link",
            ))
        }
        Err(e) => Err(e),
    }
}

/// Creates a cache directory with its tag.
pub fn create_cache_dir(path: &Path) -> anyhow::Result<Dir> {
    std::fs::create_dir_all(path)
        .with_context(|| format!("cannot create cache directory {}", path.display()))?;
    let dir = open_cache_dir(path)
        .with_context(|| format!("cannot open cache directory {}", path.display()))?;
    if !dir.exists(CACHEDIR_TAG) {
        // Best effort: the tag is a courtesy to other tools and a sign for `clear`, and the
        // ignore file keeps the cache out of commits.
        let _ = dir.write(CACHEDIR_TAG, CACHEDIR_TAG_BODY);
        if !dir.exists(GITIGNORE) {
            let _ = dir.write(GITIGNORE, GITIGNORE_BODY);
        }
    }
    Ok(dir)
}

/// Opens `name` in `dir` for reading if it is a regular file, without following a symlink out and
/// without blocking on a FIFO or a device that someone put under an entry's name.
pub fn open_regular(dir: &Dir, name: &str) -> std::io::Result<cap_std::fs::File> {
    let mut opts = cap_std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    cap_std::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NONBLOCK);
    let file = dir.open_with(name, &opts)?;
    regular(file.metadata()?.is_file())?;
    Ok(file)
}

/// [`open_regular`] for a path given by the user (a tape, a file to inspect).
pub fn open_regular_path(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NONBLOCK);
    let file = opts.open(path)?;
    regular(file.metadata()?.is_file())?;
    Ok(file)
}

fn regular(is_file: bool) -> std::io::Result<()> {
    if is_file {
        Ok(())
    } else {
        Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "not a regular file",
        ))
    }
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

/// Writes `bytes` to `name` inside `dir` atomically (temp file, then rename); returns the new
/// file's inode number (0 where there is none), which names this version of the file.
pub fn write_atomic(dir: &Dir, name: &str, bytes: &[u8]) -> std::io::Result<u64> {
    write_atomic_then(dir, name, bytes, |_| Ok(()))
}

/// [`write_atomic`], calling `before` with the new file's inode once it is written and before
/// it takes the name: if `before` fails, the name keeps its old file.
pub fn write_atomic_then(
    dir: &Dir,
    name: &str,
    bytes: &[u8],
    before: impl FnOnce(u64) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    // An anonymous temp file (`O_TMPFILE`): a crash leaves nothing behind, which matters more
    // for entries (written by every miss, some of them large) than the three system calls it
    // costs over a named one (about 2 µs of a 17 µs store).
    let mut tmp = cap_tempfile::TempFile::new(dir)?;
    tmp.write_all(bytes)?;
    let ino = inode(&tmp.as_file().metadata()?);
    before(ino)?;
    // No fsync: after a crash the rename either happened or not, and a torn file left by a
    // power loss fails its signature and is recomputed. A hit must not wait on the disk.
    tmp.replace(name)?;
    Ok(ino)
}

#[cfg(unix)]
fn inode(meta: &cap_std::fs::Metadata) -> u64 {
    cap_std::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_meta: &cap_std::fs::Metadata) -> u64 {
    0
}

/// Whether `name` is a temporary file of [`write_via_temp`] whose process is gone (killed while
/// it wrote), so that nobody will ever move it into place: `.tmp-<pid>-<name>` with a `pid` that
/// is not running. Where that cannot be told, it is not.
pub fn is_dead_temp(name: &str) -> bool {
    let Some(pid) = name
        .strip_prefix(".tmp-")
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(pid, _)| pid.parse::<i32>().ok())
    else {
        return false;
    };
    #[cfg(unix)]
    {
        if pid <= 0 || pid as u32 == std::process::id() {
            return false;
        }
        // SAFETY: signal 0 only checks whether the process exists; it sends nothing.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
        !alive
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// Removes the temporary files of [`write_via_temp`] that processes killed while writing left in
/// `dir`, if they start with `magic` (or are empty): only what devstash wrote.
pub fn remove_dead_temps(dir: &Dir, magic: &[u8]) {
    let Ok(entries) = dir.entries() else {
        return;
    };
    for e in entries.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if !is_dead_temp(&name) {
            continue;
        }
        let Ok(file) = open_regular(dir, &name) else {
            continue;
        };
        let mut head = Vec::new();
        let _ = std::io::Read::read_to_end(
            &mut std::io::Read::take(&file, magic.len() as u64),
            &mut head,
        );
        if head.is_empty() || head == magic {
            tracing::debug!("removing {name}, left by a process that was killed while writing it");
            let _ = dir.remove_file(&name);
        }
    }
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
                _ => self
                    .with_dir(false, |d| Pack::load(d, &self.signer))
                    .ok()
                    .flatten()?,
            };
            tracing::debug!(
                "{} ready ({} records, {}), waited {:?}",
                pack::PACK_NAME,
                loaded.len(),
                if loaded.listed() {
                    "directory listed"
                } else {
                    "its stamp trusted"
                },
                started.elapsed()
            );
            *state = PackState::Ready(loaded);
        }
        match &*state {
            PackState::Ready(pack) => pack.get(&at.name, &at.key_hex, &self.signer),
            _ => None,
        }
    }
}

/// Reads the entry file of `at`: whole when small, else its head only (see `store::stream`).
/// Also returns the file's inode, which names this version of it (for the pack).
fn read_file(dir: &Dir, at: &EntryRef, signer: &Signer) -> (Lookup, u64) {
    let file = match open_regular(dir, &at.name) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return (Lookup::Missing, 0),
        Err(e) => return (Lookup::Corrupt(format!("cannot read: {e}")), 0),
    };
    let (len, ino) = match file.metadata() {
        Ok(m) => (m.len(), inode(&m)),
        Err(e) => return (Lookup::Corrupt(format!("cannot read: {e}")), 0),
    };
    let file = file.into_std();
    if len > STREAM_OVER {
        let lookup = match Stream::open(file, len, signer) {
            Ok((header, _)) if header.key != at.key_hex => other_key(),
            Ok((header, stream)) => Lookup::Found(Found {
                created_ms: header.created_ms,
                compute_ns: header.compute_ns,
                args_preview: header.args_preview,
                value: Value::Stream(Box::new(stream)),
            }),
            Err(why) => Lookup::Corrupt(why),
        };
        return (lookup, ino);
    }
    let mut bytes = Vec::with_capacity(len as usize);
    let lookup = match std::io::Read::read_to_end(
        &mut std::io::Read::take(&file, STREAM_OVER + 1),
        &mut bytes,
    ) {
        Ok(_) => decoded(at, bytes, signer),
        Err(e) => Lookup::Corrupt(format!("cannot read: {e}")),
    };
    (lookup, ino)
}

fn other_key() -> Lookup {
    Lookup::Corrupt("holds another key (file renamed or copied?)".into())
}

/// An entry file's bytes, verified.
fn decoded(at: &EntryRef, bytes: Vec<u8>, signer: &Signer) -> Lookup {
    match Entry::decode(bytes, signer) {
        Ok(entry) if entry.header.key == at.key_hex => Lookup::Found(Found::entry(entry)),
        Ok(_) => other_key(),
        Err(why) => Lookup::Corrupt(why),
    }
}

impl DiskTier {
    /// A verified entry was read from its file (inode `ino`) although the run uses the pack (the
    /// entry was stored before the pack existed, or the pack lost it): copy it in, so the next
    /// run finds it.
    fn heal_pack(&self, at: &EntryRef, entry: &Entry, ino: u64) {
        if !matches!(*self.pack.borrow(), PackState::Ready(_)) {
            return;
        }
        let appended = self.with_dir(false, |d| {
            self.appender.borrow_mut().append(
                d,
                &at.name,
                &entry.header,
                entry.payload(),
                ino,
                &self.signer,
            )
        });
        match appended {
            Ok(Some(Ok(body))) => self.note(&at.name, body),
            Ok(Some(Err(e))) => tracing::debug!("cannot append to {}: {e}", pack::PACK_NAME),
            _ => {}
        }
    }

    /// Tells the loaded pack (if any) about a record this run appended.
    fn note(&self, name: &str, body: Vec<u8>) {
        if let PackState::Ready(pack) = &mut *self.pack.borrow_mut() {
            pack.note(name, body);
        }
    }

    /// Records the entry about to be linked under `name` (inode `ino`) in the pack: a copy, or
    /// a tombstone for a value too large for it. It goes in before the file takes the name, so
    /// that the pack's last word on a name is never older than its file. If the pack cannot be
    /// written, it is removed (it would answer for the old file); if it cannot be removed
    /// either, the store fails and the old file keeps the name.
    fn record_in_pack(
        &self,
        d: &Dir,
        name: &str,
        header: &Header,
        payload: &[u8],
        ino: u64,
    ) -> std::io::Result<Vec<u8>> {
        let mut appender = self.appender.borrow_mut();
        match appender.append(d, name, header, payload, ino, &self.signer) {
            Ok(body) => Ok(body),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => {
                tracing::debug!("cannot append to {}: {e}; removing it", pack::PACK_NAME);
                *appender = pack::Appender::default();
                match d.remove_file(pack::PACK_NAME) {
                    Ok(()) => Ok(Vec::new()),
                    Err(r) if r.kind() == ErrorKind::NotFound => Ok(Vec::new()),
                    Err(r) => Err(std::io::Error::other(format!(
                        "cannot append to {} ({e}) nor remove it ({r})",
                        pack::PACK_NAME
                    ))),
                }
            }
        }
    }
}

impl Drop for DiskTier {
    fn drop(&mut self) {
        // Reclaim space taken by superseded or removed records, at most once per run.
        if let (PackState::Ready(pack), Some(dir)) = (self.pack.get_mut(), self.dir.get_mut())
            && pack.wants_compaction()
            && let Err(e) = Pack::compact(dir)
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
        let (lookup, ino) = match self.with_dir(false, |d| read_file(d, at, &self.signer)) {
            Ok(None) => (Lookup::Missing, 0),
            Ok(Some(found)) => found,
            // Nothing can be read from a cache that cannot be opened; the store that follows
            // the miss says why, once.
            Err(e) => {
                tracing::debug!("{e:#}");
                (Lookup::Missing, 0)
            }
        };
        if let Lookup::Found(Found {
            value: Value::Entry(entry),
            ..
        }) = &lookup
        {
            self.heal_pack(at, entry, ino);
        }
        lookup
    }

    fn put(&self, at: &EntryRef, header: &Header, payload: &[u8]) -> anyhow::Result<()> {
        if payload.len() as u64 > MAX_PAYLOAD {
            anyhow::bail!(
                "a value of {} is larger than a 32-bit guest can read back",
                crate::output::human_size(payload.len() as u64)
            );
        }
        let bytes = Entry::encode(header, payload, &self.signer);
        let mut body = None;
        self.with_dir(true, |d| {
            write_atomic_then(d, &at.name, &bytes, |ino| {
                body = Some(self.record_in_pack(d, &at.name, header, payload, ino)?);
                Ok(())
            })
            .map(|_| ())
        })?
        .expect("created on demand")
        .with_context(|| format!("cannot write {}", self.path.join(&at.name).display()))?;
        if let Some(body) = body {
            self.note(&at.name, body);
        }
        Ok(())
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::names::entry_file_name;

    use crate::store::entry::{test_header as header, test_signer};

    #[test]
    fn put_then_get_and_lazy_creation() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cache");
        let tier = DiskTier::new(&root, test_signer());
        let key = "ab".repeat(32);
        let at = EntryRef {
            name: entry_file_name("app::f", &key),
            key_hex: key.clone(),
        };
        assert!(matches!(tier.get(&at), Lookup::Missing));
        assert!(!root.exists(), "a lookup must not create the directory");
        tier.put(&at, &header(&key, 3), b"xyz").unwrap();
        assert!(root.join(CACHEDIR_TAG).exists());
        assert!(root.join(GITIGNORE).exists());
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
