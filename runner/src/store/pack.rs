//! `index.pack`: copies of small entries in one append-only file beside the entry files, so a
//! hit costs a hash-map lookup and a signature check instead of an open, a read, a close and a
//! JSON parse.
//!
//! The entry files stay the truth, and the pack answers only for the very file it copied. Each
//! record carries the inode number of the entry file it was made from (every write of an entry
//! makes a new file, so a new inode), and the one directory listing made when the pack is loaded
//! gives each file's current inode with its name, at no extra cost. A record answers only when
//! the two agree, so:
//! - an entry removed (by `devstash clear` or by hand) is not served from the pack;
//! - an entry rewritten by a refresh, an expiry, a repair or another run, whatever the size of
//!   its new value, whether or not its new copy reached the pack (a value too large for it, a
//!   failed append, a compaction by a run that loaded the pack earlier), is read from its file;
//! - a record torn by a crash, written by anyone without the user's key, or in an older layout
//!   fails its signature, and the file is read.
//!
//! Record layout: `u32 LE length of the rest`, `u8 name length`, name, then a 32-byte signature
//! (`store::sign`) of what follows it: the `u64 LE` inode of the file the record copies (at a
//! fixed place, so that loading the pack reads it without decoding the rest), the
//! postcard-encoded [`Meta`] and the payload. The record keeps only what a hit needs of the
//! entry's header.

use std::collections::HashMap;
use std::io::{Read, Write};

use cap_std::fs::{Dir, OpenOptions};
use serde::{Deserialize, Serialize};

use super::sign::{SIG_LEN, Signer};
use super::{Found, Header, Value};

/// What a pack record keeps of an entry's header, and which file it copied.
#[derive(Serialize, Deserialize)]
struct Meta<'a> {
    key: &'a str,
    created_ms: u64,
    compute_ns: u64,
    args_preview: Option<&'a str>,
}

/// Bytes of the inode number that follows a record's signature.
const INO_LEN: usize = 8;

type Names = HashMap<String, (usize, usize), foldhash::fast::RandomState>;

/// File name of the pack inside the cache directory.
pub const PACK_NAME: &str = "index.pack";
/// Entries larger than this are only kept as files (their read is dominated by the copy).
pub const MAX_PACKED: usize = 64 * 1024;
/// A pack larger than this is not read (it cannot be one devstash grew: compaction keeps it near
/// the size of the small entries it copies); it is removed, and grows again from the files.
pub const MAX_PACK: u64 = 256 << 20;

/// The loaded pack: the file's bytes and where each live record's entry starts and ends, and
/// the records this run added since.
#[derive(Default)]
pub struct Pack {
    bytes: Vec<u8>,
    by_name: Names,
    dead_bytes: usize,
    /// Record bodies this run appended (empty for an entry it wrote that the pack does not
    /// copy), which answer before the loaded ones.
    fresh: HashMap<String, Vec<u8>, foldhash::fast::RandomState>,
}

impl Pack {
    /// Reads the pack, keeping the last record of each name whose entry file still exists.
    /// Whether a record still copies its file is judged when it is asked for ([`Pack::get`]).
    ///
    /// The directory listing that tells which files exist (and their inodes) is the slow part
    /// (the kernel walks the whole directory), so it runs on another thread while this one reads
    /// and parses the pack.
    pub fn load(dir: &Dir) -> Pack {
        let listing = dir.try_clone().map(|dir| {
            std::thread::spawn(move || -> Option<Inodes> {
                let entries = dir.entries().ok()?;
                Some(
                    entries
                        .filter_map(|e| {
                            let e = e.ok()?;
                            let ino = inode_of(&e);
                            Some((e.file_name().into_string().ok()?, ino))
                        })
                        .collect(),
                )
            })
        });
        let Some(bytes) = read_pack(dir) else {
            return Pack::default();
        };
        let (last, mut dead_bytes) = last_records(&bytes);
        let existing = match listing.map(|t| t.join()) {
            Ok(Ok(Some(existing))) => existing,
            _ => return Pack::default(),
        };
        let by_name = live(&bytes, last, &existing, &mut dead_bytes);
        Pack {
            bytes,
            by_name,
            dead_bytes,
            fresh: HashMap::default(),
        }
    }

    /// Notes a record this run appended (`body` empty for a tombstone), so that later lookups
    /// of this run see it.
    pub fn note(&mut self, name: &str, body: Vec<u8>) {
        self.fresh.insert(name.to_string(), body);
    }

    /// How many names the pack answers for.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether the pack answers for no name.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The record body kept for `name`, if any (unverified).
    fn body(&self, name: &str) -> Option<&[u8]> {
        if let Some(fresh) = self.fresh.get(name) {
            return Some(fresh);
        }
        self.by_name.get(name).map(|&(s, e)| &self.bytes[s..e])
    }

    /// The value recorded for `name` under `key_hex`, if its record verifies.
    pub fn get(&self, name: &str, key_hex: &str, signer: &Signer) -> Option<Found> {
        let body = self.body(name)?;
        let (sig, rest) = body.split_first_chunk::<SIG_LEN>()?;
        if !signer.verify(rest, sig) {
            return None;
        }
        let (meta, payload) = postcard::take_from_bytes::<Meta<'_>>(rest.get(INO_LEN..)?).ok()?;
        (meta.key == key_hex).then(|| Found {
            created_ms: meta.created_ms,
            compute_ns: meta.compute_ns,
            args_preview: meta.args_preview.map(str::to_string),
            value: Value::Bytes(payload.to_vec()),
        })
    }

    /// Whether rewriting the pack would reclaim more than half of it.
    pub fn wants_compaction(&self) -> bool {
        self.dead_bytes > (64 << 10) && self.dead_bytes * 2 > self.bytes.len()
    }

    /// Rewrites the pack with only its live records, atomically and without losing a record:
    /// under an exclusive lock on the pack (appends take a shared one), from the pack as it is
    /// now (not as this run loaded it), keeping the last record of each name whose file is the
    /// one it copied. Appenders that held the old file reopen the new one.
    pub fn compact(dir: &Dir) -> std::io::Result<()> {
        let file = open_pack(dir, false)?;
        let _lock = Lock::take(&file, true)?;
        let mut bytes = Vec::new();
        (&file).take(MAX_PACK).read_to_end(&mut bytes)?;
        let existing: Inodes = dir
            .entries()?
            .filter_map(|e| {
                let e = e.ok()?;
                let ino = inode_of(&e);
                Some((e.file_name().into_string().ok()?, ino))
            })
            .collect();
        let (last, mut dead) = last_records(&bytes);
        let kept = live(&bytes, last, &existing, &mut dead);
        let mut records: Vec<(&String, &(usize, usize))> = kept.iter().collect();
        records.sort_by_key(|(_, (s, _))| *s);
        let mut out = Vec::with_capacity(bytes.len() - dead);
        for (name, &(s, e)) in records {
            out.extend_from_slice(&record(name, &bytes[s..e]));
        }
        super::disk::write_atomic(dir, PACK_NAME, &out).map(|_| ())
    }
}

/// The last record of each name in `bytes`, and the bytes the others (and a torn tail) take.
fn last_records(bytes: &[u8]) -> (Names, usize) {
    let mut last = Names::default();
    let mut at = 0;
    let mut dead_bytes = 0;
    while let Some((name, start, end)) = record_at(bytes, at) {
        if let Some((s, e)) = last.insert(name.to_string(), (start, end)) {
            dead_bytes += e - s;
        }
        at = end;
    }
    // Anything after the last whole record is a torn append: it is ignored, and dropped when
    // the pack is next rewritten.
    dead_bytes += bytes.len() - at;
    (last, dead_bytes)
}

/// The records that copy the file their name has now (a tombstone copies none): records of
/// files that are gone or were rewritten since are never served.
fn live(bytes: &[u8], mut last: Names, existing: &Inodes, dead_bytes: &mut usize) -> Names {
    last.retain(|name, &mut (s, e)| {
        let keep = existing
            .get(name)
            .is_some_and(|&ino| ino != 0 && record_ino(&bytes[s..e]) == Some(ino));
        if !keep {
            *dead_bytes += e - s;
        }
        keep
    });
    last
}

/// Parses the record starting at `at`: its name and the span of its body.
fn record_at(bytes: &[u8], at: usize) -> Option<(&str, usize, usize)> {
    let len = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize;
    let body = bytes.get(at + 4..at + 4 + len)?;
    let name_len = *body.first()? as usize;
    let name = std::str::from_utf8(body.get(1..1 + name_len)?).ok()?;
    let start = at + 4 + 1 + name_len;
    Some((name, start, at + 4 + len))
}

/// One record's bytes, from its name and body.
fn record(name: &str, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(5 + name.len() + body.len());
    r.extend_from_slice(&((1 + name.len() + body.len()) as u32).to_le_bytes());
    r.push(name.len() as u8);
    r.extend_from_slice(name.as_bytes());
    r.extend_from_slice(body);
    r
}

/// A record body: signature, inode, meta, payload. (A tombstone has an empty body: it says that the
/// pack holds no copy of the name's file, whatever an earlier record says.)
fn body(header: &Header, payload: &[u8], ino: u64, signer: &Signer) -> Vec<u8> {
    let meta = Meta {
        key: &header.key,
        created_ms: header.created_ms,
        compute_ns: header.compute_ns,
        args_preview: header.args_preview.as_deref(),
    };
    let mut out = vec![0; SIG_LEN];
    out.extend_from_slice(&ino.to_le_bytes());
    postcard::to_io(&meta, &mut out).expect("plain data encodes");
    out.extend_from_slice(payload);
    let sig = signer.sign(&out[SIG_LEN..]);
    out[..SIG_LEN].copy_from_slice(&sig);
    out
}

/// The inode a record body names, read before its signature is checked (a forged one only makes
/// a record look live; its signature still fails when it is asked for).
fn record_ino(body: &[u8]) -> Option<u64> {
    let ino = body.get(SIG_LEN..SIG_LEN + INO_LEN)?;
    Some(u64::from_le_bytes(ino.try_into().ok()?))
}

/// Current inode of each name in the cache directory.
type Inodes = HashMap<String, u64, foldhash::fast::RandomState>;

/// The inode number of a directory entry, from the listing itself (no `stat`).
#[cfg(unix)]
fn inode_of(e: &cap_std::fs::DirEntry) -> u64 {
    std::os::unix::fs::DirEntryExt::ino(e)
}

/// Where inodes are not at hand, every record looks stale and the pack never answers.
#[cfg(not(unix))]
fn inode_of(_e: &cap_std::fs::DirEntry) -> u64 {
    0
}

/// The pack's bytes, if it is a regular file of a believable size (a FIFO or a device under its
/// name must not block or flood a run; an oversized one is removed, since the files hold
/// everything it copies).
fn read_pack(dir: &Dir) -> Option<Vec<u8>> {
    let file = super::disk::open_regular(dir, PACK_NAME).ok()?;
    let len = file.metadata().ok()?.len();
    if len > MAX_PACK {
        tracing::warn!(
            "{PACK_NAME} is {} (larger than devstash makes it); removing it, the entry files hold \
             everything it copies",
            crate::output::human_size(len)
        );
        let _ = dir.remove_file(PACK_NAME);
        return None;
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_PACK).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// Opens the pack for appending (`create`) or reading and writing, refusing anything but a
/// regular file, and without blocking on a FIFO (opened for writing, it would wait for a reader).
fn open_pack(dir: &Dir, create: bool) -> std::io::Result<cap_std::fs::File> {
    let mut opts = OpenOptions::new();
    if create {
        opts.append(true).create(true);
    } else {
        opts.read(true).write(true);
    }
    #[cfg(unix)]
    cap_std::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NONBLOCK);
    let file = dir.open_with(PACK_NAME, &opts)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// An advisory lock on the pack (`flock`), released when dropped: appends share it, a compaction
/// holds it alone, so that no append lands in a file a compaction is replacing.
struct Lock<'a>(&'a cap_std::fs::File);

impl<'a> Lock<'a> {
    fn take(file: &'a cap_std::fs::File, exclusive: bool) -> std::io::Result<Lock<'a>> {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let op = if exclusive {
                libc::LOCK_EX
            } else {
                libc::LOCK_SH
            };
            // SAFETY: flock on a descriptor this file owns; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), op) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        #[cfg(not(unix))]
        let _ = exclusive;
        Ok(Lock(file))
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: as in `take`.
            unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

/// Appends records to the pack. Each record goes out in one `write` on a file opened for
/// appending, so concurrent appends never interleave (and a crash leaves at most one torn
/// record at the end), under a shared lock that keeps a compaction from replacing the file
/// meanwhile. The file stays open for the run, and is reopened when a compaction (or `clear`)
/// replaced it.
#[derive(Default)]
pub struct Appender {
    file: Option<cap_std::fs::File>,
}

impl Appender {
    /// Appends the record of one entry, whose file (about to be linked into place, or read) has
    /// inode `ino`; a value over [`MAX_PACKED`] bytes gets a tombstone, so that no earlier record
    /// of the name is served. Returns the body appended (empty for a tombstone).
    pub fn append(
        &mut self,
        dir: &Dir,
        name: &str,
        header: &Header,
        payload: &[u8],
        ino: u64,
        signer: &Signer,
    ) -> std::io::Result<Vec<u8>> {
        if name.len() > u8::MAX as usize {
            return Ok(Vec::new());
        }
        let body = if payload.len() > MAX_PACKED {
            Vec::new()
        } else {
            body(header, payload, ino, signer)
        };
        self.write(dir, &record(name, &body))?;
        Ok(body)
    }

    fn write(&mut self, dir: &Dir, bytes: &[u8]) -> std::io::Result<()> {
        for _ in 0..3 {
            if self.file.is_none() {
                self.file = Some(open_pack(dir, true)?);
            }
            let file = self.file.as_ref().expect("opened above");
            let lock = Lock::take(file, false)?;
            // Still the file under the pack's name? (A compaction renames a new one in.)
            if same_file(file, dir) {
                let written = (&*file).write_all(bytes);
                drop(lock);
                return written;
            }
            drop(lock);
            self.file = None;
        }
        Err(std::io::Error::other("the pack keeps being replaced"))
    }
}

/// Whether `file` is the file now named [`PACK_NAME`] in `dir`.
#[cfg(unix)]
fn same_file(file: &cap_std::fs::File, dir: &Dir) -> bool {
    use cap_std::fs::MetadataExt;
    match (file.metadata(), dir.symlink_metadata(PACK_NAME)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &cap_std::fs::File, _dir: &Dir) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::entry::test_signer;
    use cap_std::ambient_authority;

    fn header(key: &str) -> Header {
        Header {
            created_ms: 5,
            compute_ns: 9,
            args_preview: Some("(1,)".into()),
            ..crate::store::entry::test_header(key, 0)
        }
    }

    fn value(pack: &Pack, name: &str, key: &str) -> Option<Vec<u8>> {
        pack.get(name, key, &test_signer()).map(|f| match f.value {
            Value::Bytes(b) => b,
            other => panic!("{other:?}"),
        })
    }

    /// Writes a file (a new inode each time, as an entry write does) and returns its inode.
    fn write_file(dir: &Dir, name: &str, text: &str) -> u64 {
        crate::store::disk::write_atomic(dir, name, text.as_bytes()).unwrap()
    }

    #[test]
    fn last_record_wins_and_deleted_files_are_not_served() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        let s = test_signer();
        let a = write_file(&dir, "a.stash", "file a");
        let b = write_file(&dir, "b.stash", "file b");
        let h = header("k1");
        let mut w = Appender::default();
        w.append(&dir, "a.stash", &h, b"old a", a, &s).unwrap();
        w.append(&dir, "b.stash", &h, b"b", b, &s).unwrap();
        w.append(&dir, "a.stash", &h, b"new a", a, &s).unwrap();
        w.append(&dir, "gone.stash", &h, b"gone", 1, &s).unwrap();
        // A torn record at the end is ignored.
        let mut f = dir
            .open_with(PACK_NAME, OpenOptions::new().append(true))
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 7]).unwrap();
        let pack = Pack::load(&dir);
        assert_eq!(
            value(&pack, "a.stash", "k1").as_deref(),
            Some(&b"new a"[..])
        );
        let found = pack.get("b.stash", "k1", &s).unwrap();
        assert_eq!((found.created_ms, found.compute_ns), (5, 9));
        assert_eq!(found.args_preview.as_deref(), Some("(1,)"));
        // Another key under the same name is not served.
        assert!(pack.get("a.stash", "k2", &s).is_none());
        assert!(pack.get("gone.stash", "k1", &s).is_none());
        dir.remove_file("b.stash").unwrap();
        assert!(Pack::load(&dir).get("b.stash", "k1", &s).is_none());
        Pack::compact(&dir).unwrap();
        let again = Pack::load(&dir);
        assert_eq!(
            value(&again, "a.stash", "k1").as_deref(),
            Some(&b"new a"[..])
        );
    }

    #[test]
    fn a_rewritten_file_is_never_answered_by_an_older_record() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        let s = test_signer();
        let h = header("k1");
        let first = write_file(&dir, "a.stash", "v1");
        Appender::default()
            .append(&dir, "a.stash", &h, b"v1", first, &s)
            .unwrap();
        assert_eq!(
            value(&Pack::load(&dir), "a.stash", "k1").as_deref(),
            Some(&b"v1"[..])
        );
        // The file is rewritten and its new copy never reaches the pack (a failed append):
        // the old record is not served.
        let second = write_file(&dir, "a.stash", "v2");
        assert_ne!(first, second);
        assert!(value(&Pack::load(&dir), "a.stash", "k1").is_none());
        // A value too large for the pack leaves a tombstone: no older record of the name is
        // served, even if the new file reuses the inode of the one it copied (ext4 reuses
        // inodes at once).
        let mut w = Appender::default();
        w.append(&dir, "a.stash", &h, b"v1", second, &s).unwrap();
        assert!(value(&Pack::load(&dir), "a.stash", "k1").is_some());
        let big = vec![0u8; MAX_PACKED + 1];
        assert!(
            w.append(&dir, "a.stash", &h, &big, second, &s)
                .unwrap()
                .is_empty()
        );
        assert!(value(&Pack::load(&dir), "a.stash", "k1").is_none());
        // A compaction keeps the newest record of each name from the pack as it is when it
        // runs, not from a snapshot: an append made after another run loaded the pack survives.
        let before = Pack::load(&dir);
        w.append(&dir, "a.stash", &h, b"v4", second, &s).unwrap();
        Pack::compact(&dir).unwrap();
        let after = Pack::load(&dir);
        assert_eq!(value(&after, "a.stash", "k1").as_deref(), Some(&b"v4"[..]));
        drop(before);
        // And an appender whose file was replaced by the compaction reopens the new one.
        w.append(&dir, "a.stash", &h, b"v5", second, &s).unwrap();
        assert_eq!(
            value(&Pack::load(&dir), "a.stash", "k1").as_deref(),
            Some(&b"v5"[..])
        );
    }

    #[test]
    fn every_flip_in_a_record_and_another_key_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        let ino = write_file(&dir, "a.stash", "file a");
        Appender::default()
            .append(
                &dir,
                "a.stash",
                &header("k1"),
                b"value",
                ino,
                &test_signer(),
            )
            .unwrap();
        let good = dir.read(PACK_NAME).unwrap();
        assert!(value(&Pack::load(&dir), "a.stash", "k1").is_some());
        // From the signature on (a flip in the length or the name is a different record).
        for i in 5 + "a.stash".len()..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 1;
            dir.write(PACK_NAME, &bad).unwrap();
            assert!(
                value(&Pack::load(&dir), "a.stash", "k1").is_none(),
                "flip at {i}"
            );
        }
        dir.write(PACK_NAME, &good).unwrap();
        let other = Signer::new([1; 32], "fedcba9876543210");
        assert!(Pack::load(&dir).get("a.stash", "k1", &other).is_none());
    }
}
