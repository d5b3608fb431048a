//! The cache directory as `devstash list`, `clear` and `inspect` see it: which files are
//! entries, what each one holds, and removing them.
//!
//! Everything goes through a cap-std [`Dir`] opened on the cache directory, and every name is
//! looked at with `symlink_metadata` first: symlinks are skipped, never followed, so nothing
//! outside the directory is read or removed whatever a link points at. A file is removed only
//! when devstash wrote it, and this is checked again right before the removal:
//!
//! - an entry has an entry name ([`is_entry_name`]) *and* starts with [`ENTRY_MAGIC`];
//! - a compiled module has a compiled-module name (`<32 hex>.cwasm`) in the modules folder and
//!   is a wasmtime image (ELF);
//! - a temporary file has a temp-file name, is empty or holds the start of an entry or a compiled
//!   module, and is older than [`TEMP_GRACE`], so that no running `devstash` can still be
//!   writing it.
//!
//! - a temporary tape in `tapes/` is named `.tmp-<pid>-…` by a process that is no longer
//!   running, and starts like a tape (or is empty).
//!
//! Nothing else is ever removed; in particular tapes themselves are never touched.

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use cap_std::fs::Dir;

use super::ReadError;
use super::disk::{CACHEDIR_TAG, is_dead_temp, is_devstash_tag, open_cache_dir, open_regular};
use super::entry::{Entry, Header, unverified_header};
use super::names::is_entry_name;
use super::pack::PACK_NAME;
use super::sign::Signer;
use super::stream::Stream;

/// The first bytes of every entry file (`devstash-entry <version> <checksum>`, see
/// [`super::entry`]).
pub const ENTRY_MAGIC: &[u8] = b"devstash-entry ";

/// The first bytes of a compiled module: wasmtime serializes modules as ELF images.
const ELF_MAGIC: &[u8] = b"\x7fELF";

/// Suffix of the compiled modules kept in the modules folder.
const COMPILED_SUFFIX: &str = ".cwasm";

/// How old a leftover temporary file must be before `clear --all` removes it. Younger ones may
/// belong to a `devstash run` that is writing them right now.
pub const TEMP_GRACE: Duration = Duration::from_secs(60 * 60);

/// Largest `CACHEDIR.TAG` read when judging whether a directory is a cache.
const MAX_TAG_LEN: u64 = 4096;

/// The folder in which devstash kept compiled modules inside the cache directory before they
/// moved to the per-user directory; `clear --all` removes what is left in it.
pub const LEGACY_MODULES_DIR: &str = "modules";

/// A cache directory opened for listing and pruning.
pub struct CacheDir {
    path: PathBuf,
    dir: Dir,
    signer: Signer,
}

/// One entry file and what verification found.
#[derive(Debug, Clone)]
pub struct Listed {
    /// File name inside the cache directory.
    pub name: String,
    /// Size of the file in bytes (header and payload).
    pub size: u64,
    /// The file's modification time; the age of an entry that cannot be verified.
    pub modified: Option<SystemTime>,
    /// The verified header, or what is wrong with the file.
    pub state: Result<Header, Damage>,
}

impl Listed {
    /// The verified header, if the entry passed verification.
    pub fn header(&self) -> Option<&Header> {
        self.state.as_ref().ok()
    }

    /// The site identity of a verified entry, or an empty string.
    pub fn site(&self) -> &str {
        self.header().map_or("", |h| h.site.as_str())
    }

    /// When the entry was stored: the header's created time, or for an entry that failed
    /// verification (whose header cannot be trusted) the file's modification time.
    pub fn stored_at(&self) -> Option<SystemTime> {
        match &self.state {
            Ok(h) => Some(h.created()),
            Err(_) => self.modified,
        }
    }

    /// Whether `clear` may remove this file: it starts with the entry magic, so devstash wrote it
    /// (a verified entry always does).
    pub fn is_ours(&self) -> bool {
        self.state.as_ref().map_or_else(|d| d.has_magic, |_| true)
    }
}

/// Why an entry failed verification, and what could still be read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// What failed, e.g. `checksum mismatch (corrupt or torn entry)`.
    pub problem: String,
    /// Whether the file starts with [`ENTRY_MAGIC`].
    pub has_magic: bool,
    /// The header as written, parsed without verification: it may be wrong.
    pub unverified: Option<Box<Header>>,
}

/// Verifies an entry file's bytes; on failure says what failed and keeps what can be read.
pub fn verify(bytes: Vec<u8>, signer: &Signer) -> Result<Entry, Damage> {
    let has_magic = bytes.starts_with(ENTRY_MAGIC);
    // Parsed before `decode` consumes the bytes; only used when verification fails.
    let unverified = unverified_header(&bytes).map(Box::new);
    Entry::decode(bytes, signer).map_err(|problem| Damage {
        problem,
        has_magic,
        unverified,
    })
}

/// An entry verified from its file, with the first bytes of its payload.
#[derive(Debug)]
pub struct Checked {
    /// The verified header.
    pub header: Header,
    /// The first bytes of the payload (all of it, up to the length asked for).
    pub head: Vec<u8>,
}

/// Bytes of an entry file read at a time when it is verified by streaming.
const VERIFY_CHUNK: usize = 1 << 20;

/// Verifies the entry file in `file` (`len` bytes) with bounded memory, whatever its size: a
/// small one is read whole, a large one streamed through its signature a megabyte at a time.
/// Keeps the first `keep` bytes of the payload. On failure, says what failed and keeps what can
/// be read of the header (unverified).
pub fn verify_file(
    file: std::fs::File,
    len: u64,
    signer: &Signer,
    keep: usize,
) -> Result<Checked, Damage> {
    let mut head = Vec::new();
    let read = (&file).take(HEAD_READ as u64).read_to_end(&mut head);
    let damage = |problem: String, head: &[u8]| Damage {
        problem,
        has_magic: head.starts_with(ENTRY_MAGIC),
        unverified: unverified_header(head).map(Box::new),
    };
    if let Err(e) = read {
        return Err(damage(format!("cannot read: {e}"), &head));
    }
    if len <= STREAM_FROM {
        let mut bytes = head;
        if let Err(e) = (&file).take(STREAM_FROM).read_to_end(&mut bytes) {
            return Err(damage(format!("cannot read: {e}"), &bytes));
        }
        let entry = verify(bytes, signer)?;
        let head = entry.payload()[..entry.payload().len().min(keep)].to_vec();
        return Ok(Checked {
            header: entry.header,
            head,
        });
    }
    let (header, mut stream) =
        Stream::open(file, len, signer).map_err(|problem| damage(problem, &head))?;
    let total = stream.len();
    let mut kept = vec![0; (total as usize).min(keep)];
    let mut scratch = vec![0; VERIFY_CHUNK];
    let mut at = 0u64;
    let mut read_to = |dst: &mut [u8], at: &mut u64| -> Result<(), String> {
        stream.read(*at, dst).map_err(|e| match e {
            ReadError::Corrupt(why) => why,
            ReadError::OutOfRange => "read out of order".into(),
        })?;
        *at += dst.len() as u64;
        Ok(())
    };
    let result = read_to(&mut kept, &mut at).and_then(|()| {
        while at < total {
            let n = (total - at).min(VERIFY_CHUNK as u64) as usize;
            read_to(&mut scratch[..n], &mut at)?;
        }
        Ok(())
    });
    match result {
        Ok(()) => Ok(Checked { header, head: kept }),
        Err(problem) => Err(damage(problem, &head)),
    }
}

/// How much of a file is read first: enough for any header devstash writes.
const HEAD_READ: usize = crate::store::stream::HEAD;
/// Files larger than this are verified by streaming, as a run reads them.
const STREAM_FROM: u64 = super::disk::STREAM_OVER;

/// Where in the cache directory a non-entry file lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The cache directory itself.
    Top,
    /// The compiled-module folder an older devstash kept.
    Modules,
    /// The folder of tapes (only temporary files left by killed recordings are ever removed).
    Tapes,
}

/// The folder of the cache directory that holds tapes recorded without `-o`.
pub const TAPES_DIR: &str = "tapes";

/// The first bytes of every tape (see `tape::format`): a temporary file that starts so is a tape
/// a killed recording was writing.
pub const TAPE_START: &[u8] = b"devstash-tape";

/// What a non-entry file devstash keeps is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A compiled module (`modules/<hash>.cwasm`), recompiled on the next run when missing.
    CompiledModule,
    /// A temporary file left behind by a run that crashed while writing.
    StaleTemp,
    /// The pack of entry copies (`index.pack`, see `store::pack`), rebuilt as entries are stored.
    Pack,
}

/// A file devstash keeps besides entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptFile {
    /// Which folder it is in.
    pub place: Place,
    /// File name inside that folder.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// What it is.
    pub kind: FileKind,
}

/// Everything in the cache directory that `list` and `clear` deal with.
#[derive(Debug, Default)]
pub struct Scan {
    /// Files with entry names, verified or not, in directory order.
    pub entries: Vec<Listed>,
    /// Compiled modules.
    pub modules: Vec<KeptFile>,
    /// Temporary files old enough to be leftovers of a crash.
    pub stale_temps: Vec<KeptFile>,
    /// The pack of entry copies, if there is one.
    pub pack: Option<KeptFile>,
    /// Symlinks met (and skipped), as paths inside the cache directory.
    pub symlinks: Vec<String>,
    /// Whether the directory carries devstash's `CACHEDIR.TAG`.
    pub tagged: bool,
}

impl Scan {
    /// Whether the directory looks like a devstash cache: it carries devstash's tag or holds at
    /// least one file that devstash wrote as an entry. `clear` refuses any other directory.
    pub fn looks_like_cache(&self) -> bool {
        self.tagged || self.entries.iter().any(Listed::is_ours)
    }
}

impl CacheDir {
    /// Opens the cache directory at `path`, whose entries verify under `signer`; `Ok(None)`
    /// when it does not exist.
    pub fn open(path: &Path, signer: &Signer) -> Result<Option<CacheDir>> {
        match open_cache_dir(path) {
            Ok(dir) => Ok(Some(CacheDir {
                path: path.to_path_buf(),
                dir,
                signer: signer.clone(),
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotADirectory => bail!(
                "{} is not a directory: pass the cache directory with --cache-dir DIR",
                path.display()
            ),
            Err(e) => {
                Err(e).with_context(|| format!("cannot open cache directory {}", path.display()))
            }
        }
    }

    /// The cache directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the directory carries the `CACHEDIR.TAG` devstash writes (a regular file, not a
    /// link).
    pub fn is_tagged(&self) -> bool {
        let Some(meta) = regular_file(&self.dir, CACHEDIR_TAG) else {
            return false;
        };
        if meta.len() > MAX_TAG_LEN {
            return false;
        }
        self.dir
            .read(CACHEDIR_TAG)
            .is_ok_and(|body| is_devstash_tag(&body))
    }

    /// Reads and verifies every entry, and finds compiled modules and stale temporary files
    /// (judged at `now`). Unreadable single files are reported as damaged entries or skipped;
    /// only an unreadable directory is an error.
    pub fn scan(&self, now: SystemTime) -> Result<Scan> {
        let mut scan = Scan {
            tagged: self.is_tagged(),
            ..Scan::default()
        };
        for name in self.names(&self.dir)? {
            let Ok(meta) = self.dir.symlink_metadata(&name) else {
                continue; // Removed since the listing: nothing to report.
            };
            if meta.file_type().is_symlink() {
                scan.symlinks.push(name);
            } else if meta.is_dir() && name == LEGACY_MODULES_DIR {
                self.scan_modules(now, &mut scan)?;
            } else if meta.is_dir() && name == TAPES_DIR {
                self.scan_tapes(&mut scan)?;
            } else if meta.is_file() && is_entry_name(&name) {
                let state = self.check_entry(&name, 0).map(|c| c.header);
                scan.entries.push(Listed {
                    name,
                    size: meta.len(),
                    modified: meta.modified().ok().map(|t| t.into_std()),
                    state,
                });
            } else if meta.is_file() && name == PACK_NAME {
                scan.pack = Some(KeptFile {
                    place: Place::Top,
                    name,
                    size: meta.len(),
                    kind: FileKind::Pack,
                });
            } else if meta.is_file() && is_stale_temp(&self.dir, &name, &meta, now) {
                scan.stale_temps.push(KeptFile {
                    place: Place::Top,
                    name,
                    size: meta.len(),
                    kind: FileKind::StaleTemp,
                });
            }
        }
        Ok(scan)
    }

    fn scan_modules(&self, now: SystemTime, scan: &mut Scan) -> Result<()> {
        let Some(dir) = self.modules()? else {
            return Ok(());
        };
        for name in self.names(&dir)? {
            let Ok(meta) = dir.symlink_metadata(&name) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                scan.symlinks.push(format!("{}/{name}", LEGACY_MODULES_DIR));
            } else if meta.is_file() && is_compiled_name(&name) {
                scan.modules.push(KeptFile {
                    place: Place::Modules,
                    name,
                    size: meta.len(),
                    kind: FileKind::CompiledModule,
                });
            } else if meta.is_file() && is_stale_temp(&dir, &name, &meta, now) {
                scan.stale_temps.push(KeptFile {
                    place: Place::Modules,
                    name,
                    size: meta.len(),
                    kind: FileKind::StaleTemp,
                });
            }
        }
        Ok(())
    }

    /// Temporary tapes that recordings killed while writing left in the tapes folder (tapes
    /// themselves are never touched).
    fn scan_tapes(&self, scan: &mut Scan) -> Result<()> {
        let Some(dir) = self.subdir(TAPES_DIR)? else {
            return Ok(());
        };
        for name in self.names(&dir)? {
            if let Some(meta) = regular_file(&dir, &name)
                && is_dead_temp(&name)
                && (meta.len() == 0 || starts_with(&dir, &name, TAPE_START))
            {
                scan.stale_temps.push(KeptFile {
                    place: Place::Tapes,
                    name,
                    size: meta.len(),
                    kind: FileKind::StaleTemp,
                });
            }
        }
        Ok(())
    }

    /// The modules folder, unless it is missing or is not a real directory (a link to elsewhere
    /// is never entered).
    fn modules(&self) -> Result<Option<Dir>> {
        self.subdir(LEGACY_MODULES_DIR)
    }

    /// A folder of the cache directory, unless it is missing or is not a real directory.
    fn subdir(&self, name: &str) -> Result<Option<Dir>> {
        match self.dir.symlink_metadata(name) {
            Ok(meta) if meta.is_dir() => {
                let dir = self
                    .dir
                    .open_dir(name)
                    .with_context(|| format!("cannot open {}", self.path.join(name).display()))?;
                Ok(Some(dir))
            }
            _ => Ok(None),
        }
    }

    /// The UTF-8 names in `dir`, sorted. Names that are not UTF-8 were not made by devstash.
    fn names(&self, dir: &Dir) -> Result<Vec<String>> {
        let read = dir
            .entries()
            .with_context(|| format!("cannot list {}", self.path.display()))?;
        let mut names: Vec<String> = read
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Names of the entry files (regular files with entry names), sorted; nothing is read.
    pub fn entry_names(&self) -> Result<Vec<String>> {
        Ok(self
            .names(&self.dir)?
            .into_iter()
            .filter(|n| is_entry_name(n) && regular_file(&self.dir, n).is_some())
            .collect())
    }

    /// Verifies the entry file `name` with bounded memory (see [`verify_file`]), keeping the
    /// first `keep` bytes of its payload.
    pub fn check_entry(&self, name: &str, keep: usize) -> Result<Checked, Damage> {
        let cannot = |e: std::io::Error| Damage {
            problem: format!("cannot read: {e}"),
            has_magic: false,
            unverified: None,
        };
        let file = open_regular(&self.dir, name).map_err(cannot)?;
        let len = file.metadata().map_err(cannot)?.len();
        verify_file(file.into_std(), len, &self.signer, keep)
    }

    /// Refuses a name that is not an entry file (a symlink, anything but a regular file).
    pub fn entry_file(&self, name: &str) -> Result<()> {
        if !is_entry_name(name) || regular_file(&self.dir, name).is_none() {
            bail!(
                "{} is not an entry file (devstash does not follow links in its cache)",
                self.path.join(name).display()
            );
        }
        Ok(())
    }

    /// Removes the entry file `name` if it still is one devstash wrote (entry name, regular file,
    /// entry magic). `Ok(false)` when it no longer is, or is gone.
    pub fn remove_entry(&self, name: &str) -> std::io::Result<bool> {
        let ours = is_entry_name(name)
            && regular_file(&self.dir, name).is_some()
            && starts_with(&self.dir, name, ENTRY_MAGIC);
        remove_if(&self.dir, name, ours)
    }

    /// Removes a compiled module or stale temporary file found by [`CacheDir::scan`], after
    /// checking again that it still is what the scan found (judged at `now`).
    pub fn remove_kept(&self, file: &KeptFile, now: SystemTime) -> std::io::Result<bool> {
        let dir = match file.place {
            Place::Top => None,
            Place::Modules => match self.modules() {
                Ok(Some(d)) => Some(d),
                _ => return Ok(false),
            },
            Place::Tapes => match self.subdir(TAPES_DIR) {
                Ok(Some(d)) => Some(d),
                _ => return Ok(false),
            },
        };
        let dir = dir.as_ref().unwrap_or(&self.dir);
        let Some(meta) = regular_file(dir, &file.name) else {
            return Ok(false);
        };
        let ours = match file.kind {
            FileKind::CompiledModule => {
                file.place == Place::Modules
                    && is_compiled_name(&file.name)
                    && starts_with(dir, &file.name, ELF_MAGIC)
            }
            FileKind::StaleTemp if file.place == Place::Tapes => {
                is_dead_temp(&file.name)
                    && (meta.len() == 0 || starts_with(dir, &file.name, TAPE_START))
            }
            FileKind::StaleTemp => is_stale_temp(dir, &file.name, &meta, now),
            FileKind::Pack => file.place == Place::Top && file.name == PACK_NAME,
        };
        remove_if(dir, &file.name, ours)
    }
}

fn remove_if(dir: &Dir, name: &str, ours: bool) -> std::io::Result<bool> {
    if !ours {
        return Ok(false);
    }
    match dir.remove_file(name) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The metadata of `name` if it is a regular file (a symlink is not, whatever it points at).
fn regular_file(dir: &Dir, name: &str) -> Option<cap_std::fs::Metadata> {
    dir.symlink_metadata(name).ok().filter(|m| m.is_file())
}

/// Whether the file starts with `magic`.
fn starts_with(dir: &Dir, name: &str, magic: &[u8]) -> bool {
    let mut head = Vec::with_capacity(magic.len());
    dir.open(name)
        .and_then(|f| f.take(magic.len() as u64).read_to_end(&mut head))
        .is_ok()
        && head == magic
}

/// `<32 lowercase hex digits>.cwasm`, as the engine names compiled modules.
fn is_compiled_name(name: &str) -> bool {
    name.strip_suffix(COMPILED_SUFFIX).is_some_and(|stem| {
        stem.len() == 32
            && stem
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Names temporary files get: cap-tempfile names a temp file with a UUID where the file system
/// has no anonymous temp files (on Linux it uses `O_TMPFILE`, which leaves nothing behind), and
/// the `tempfile` crate's convention is a `.tmp` prefix.
fn is_temp_name(name: &str) -> bool {
    if name.starts_with(".tmp") {
        return true;
    }
    let groups: Vec<&str> = name.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A temp-named file, untouched for [`TEMP_GRACE`], that is empty or holds the start of what
/// devstash writes (an entry or a compiled module).
fn is_stale_temp(dir: &Dir, name: &str, meta: &cap_std::fs::Metadata, now: SystemTime) -> bool {
    if !is_temp_name(name) || !meta.is_file() {
        return false;
    }
    let old = meta
        .modified()
        .ok()
        .and_then(|t| now.duration_since(t.into_std()).ok())
        .is_some_and(|age| age >= TEMP_GRACE);
    old && (meta.len() == 0
        || starts_with(dir, name, ENTRY_MAGIC)
        || starts_with(dir, name, ELF_MAGIC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::disk::{create_cache_dir, write_atomic};
    use crate::store::entry::test_signer;
    use crate::store::names::entry_file_name;

    fn header(key: &str, len: usize) -> Header {
        Header {
            created_ms: 1_700_000_000_000,
            ttl_secs: Some(60),
            ..crate::store::entry::test_header(key, len)
        }
    }

    #[test]
    fn magic_matches_the_entry_format() {
        let bytes = Entry::encode(&header("ab", 1), b"x", &test_signer());
        assert!(bytes.starts_with(ENTRY_MAGIC));
    }

    #[test]
    fn damage_keeps_the_unverified_header() {
        let h = header("ab", 3);
        let mut bytes = Entry::encode(&h, b"xyz", &test_signer());
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let damage = verify(bytes, &test_signer()).unwrap_err();
        assert!(damage.problem.contains("signature"), "{}", damage.problem);
        assert!(damage.has_magic);
        assert_eq!(damage.unverified.as_deref(), Some(&h));
        let junk = verify(b"hello\n".to_vec(), &test_signer()).unwrap_err();
        assert!(!junk.has_magic);
        assert_eq!(junk.unverified, None);
    }

    #[test]
    fn names() {
        assert!(is_compiled_name(&format!("{}.cwasm", "0a".repeat(16))));
        assert!(!is_compiled_name(&format!("{}.cwasm", "0A".repeat(16))));
        assert!(!is_compiled_name("x.cwasm"));
        assert!(is_temp_name("0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"));
        assert!(is_temp_name(".tmpAbC123"));
        assert!(!is_temp_name("notes.txt"));
        assert!(!is_temp_name("0f1e2d3c-4b5a-4978-8a6b"));
    }

    #[test]
    fn scan_finds_entries_modules_and_skips_links() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cache");
        let dir = create_cache_dir(&root).unwrap();
        let key = "ab".repeat(32);
        let name = entry_file_name("app::f", &key);
        write_atomic(
            &dir,
            &name,
            &Entry::encode(&header(&key, 1), b"x", &test_signer()),
        )
        .unwrap();
        dir.write("bogus__0123456789abcdef.stash", b"not ours")
            .unwrap();
        dir.write("notes.txt", b"mine").unwrap();
        dir.create_dir("modules").unwrap();
        let compiled = format!("{}.cwasm", "0a".repeat(16));
        dir.write(format!("modules/{compiled}"), b"\x7fELF....")
            .unwrap();
        let outside = tmp.path().join("outside.stash");
        std::fs::write(
            &outside,
            Entry::encode(&header(&key, 1), b"x", &test_signer()),
        )
        .unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link__0123456789abcdef.stash")).unwrap();

        let cache = CacheDir::open(&root, &test_signer()).unwrap().unwrap();
        let scan = cache.scan(SystemTime::now()).unwrap();
        assert!(scan.tagged && scan.looks_like_cache());
        let names: Vec<&str> = scan.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "app__f__abababababababab.stash",
                "bogus__0123456789abcdef.stash"
            ]
        );
        assert!(scan.entries[0].header().is_some());
        assert!(!scan.entries[1].is_ours());
        assert_eq!(scan.symlinks, ["link__0123456789abcdef.stash"]);
        assert_eq!(scan.modules.len(), 1);

        // A file devstash did not write, and a link, are never removed.
        assert!(!cache.remove_entry("bogus__0123456789abcdef.stash").unwrap());
        assert!(!cache.remove_entry("link__0123456789abcdef.stash").unwrap());
        assert!(!cache.remove_entry("notes.txt").unwrap());
        assert!(outside.exists() && root.join("notes.txt").exists());
        assert!(cache.remove_entry(&name).unwrap());
        assert!(!root.join(&name).exists());
        assert!(
            cache
                .remove_kept(&scan.modules[0], SystemTime::now())
                .unwrap()
        );
        assert!(!root.join("modules").join(compiled).exists());
    }

    #[test]
    fn stale_temps_respect_the_grace_period() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = create_cache_dir(tmp.path()).unwrap();
        let temp = "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";
        dir.write(temp, b"devstash-entry 1 abc").unwrap();
        dir.write(".tmpforeign", b"someone else's").unwrap();
        let cache = CacheDir::open(tmp.path(), &test_signer()).unwrap().unwrap();
        let now = SystemTime::now();
        assert!(cache.scan(now).unwrap().stale_temps.is_empty());
        let later = now + TEMP_GRACE + Duration::from_secs(1);
        let stale = cache.scan(later).unwrap().stale_temps;
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert_eq!(stale[0].name, temp);
        // Judged again at removal: too young now.
        assert!(!cache.remove_kept(&stale[0], now).unwrap());
        assert!(cache.remove_kept(&stale[0], later).unwrap());
        assert!(tmp.path().join(".tmpforeign").exists());
    }

    #[test]
    fn a_file_is_not_a_cache_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let err = CacheDir::open(&file, &test_signer()).err().unwrap();
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert!(
            CacheDir::open(&tmp.path().join("missing"), &test_signer())
                .unwrap()
                .is_none()
        );
        let plain = CacheDir::open(tmp.path(), &test_signer()).unwrap().unwrap();
        assert!(!plain.scan(SystemTime::now()).unwrap().looks_like_cache());
    }
}
