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
//! A directory listing of thousands of entries costs more than all the hits of a run, so a run
//! that had to list appends a signed *stamp* record: the directory's identity and change times
//! (dev, inode, mtime, ctime) as they were before the listing, and the names the listing found
//! stale. Every change the listing can see (a file created, renamed over, or removed) updates the
//! directory's mtime and ctime, and ctime cannot be set back; so while the directory still has
//! those times and the stamp is still the pack's last record, the next run trusts the stamp
//! instead of listing. The times must be older than the listing by more than the filesystem's
//! timestamp granularity (see [`settled`]), or a change made in the same clock tick as the
//! listing could leave them unchanged: a directory that changed just before is listed again.
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

/// Name of stamp records: a `/` never appears in an entry file name.
const STAMP_NAME: &str = "/listing";
/// Signed before a stamp's bytes, so that an entry record's body never verifies as a stamp, nor
/// a stamp's as an entry's.
const STAMP_DOMAIN: &[u8] = b"devstash index.pack listing stamp 1\0";

/// What a stamp records (see the module documentation).
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug, Clone, Copy)]
struct DirState {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// A stamp record's content.
#[derive(Serialize, Deserialize)]
struct Stamp<'a> {
    /// The directory as it was just before the listing.
    dir: DirState,
    /// Where the stamp record itself starts: a stamp answers only as the pack's last record.
    at: u64,
    /// Names whose last record (before the stamp) did not copy their file at the listing.
    #[serde(borrow)]
    stale: Vec<&'a str>,
}

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
    /// Whether loading listed the directory (rather than trusting a stamp).
    listed: bool,
}

impl Pack {
    /// Reads the pack, keeping the last record of each name whose entry file still exists.
    /// Whether a record still copies its file is judged when it is asked for ([`Pack::get`]).
    ///
    /// Which files exist (and their inodes) comes from the pack's last record when it is a stamp
    /// `signer` verifies for the directory as it is now, else from a directory listing, after
    /// which a stamp is appended when the directory has settled (see the module documentation).
    pub fn load(dir: &Dir, signer: &Signer) -> Pack {
        Pack::load_at(dir, signer, std::time::SystemTime::now())
    }

    /// [`Pack::load`], taking `now` as the time of the listing.
    fn load_at(dir: &Dir, signer: &Signer, now: std::time::SystemTime) -> Pack {
        // Before the pack is read: a change after this is either seen in the pack (a record
        // after the stamp) or made after this snapshot, as with a listing.
        let state = dir_state(dir);
        let Some(bytes) = read_pack(dir) else {
            return Pack::default();
        };
        let (mut last, mut dead_bytes, stamp) = last_records(&bytes);
        if let (Some(state), Some((at, end))) = (state, stamp)
            && end == bytes.len()
            && let Some(stale) = stamp_stale(&bytes[at..end], at, state, signer)
        {
            for name in stale {
                if let Some((s, e)) = last.remove(name) {
                    dead_bytes += e - s;
                }
            }
            return Pack {
                bytes,
                by_name: last,
                dead_bytes,
                fresh: HashMap::default(),
                listed: false,
            };
        }
        let Ok(existing) = list(dir) else {
            return Pack::default();
        };
        let mut stale = Vec::new();
        let by_name = live(&bytes, last, &existing, &mut dead_bytes, &mut stale);
        if let Some(state) = state
            && settled(state, now)
            && let Some(record) = stamp_record(state, bytes.len(), &stale, signer)
        {
            // Best effort: without it the next run lists again.
            if let Err(e) = Appender::default().write(dir, &record) {
                tracing::debug!("cannot append a stamp to {PACK_NAME}: {e}");
            }
        }
        Pack {
            bytes,
            by_name,
            dead_bytes,
            fresh: HashMap::default(),
            listed: true,
        }
    }

    /// Whether loading listed the directory, rather than trusting the pack's stamp.
    pub fn listed(&self) -> bool {
        self.listed
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
        // Most runs that hit append nothing: skip hashing the name for an empty map.
        if !self.fresh.is_empty()
            && let Some(fresh) = self.fresh.get(name)
        {
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
        let existing = list(dir)?;
        // Stamps are dropped: the renamed pack changes the directory, which voids them anyway.
        let (last, mut dead, _) = last_records(&bytes);
        let kept = live(&bytes, last, &existing, &mut dead, &mut Vec::new());
        let mut records: Vec<(&String, &(usize, usize))> = kept.iter().collect();
        records.sort_by_key(|(_, (s, _))| *s);
        let mut out = Vec::with_capacity(bytes.len() - dead);
        for (name, &(s, e)) in records {
            out.extend_from_slice(&record(name, &bytes[s..e]));
        }
        super::disk::write_atomic(dir, PACK_NAME, &out).map(|_| ())
    }
}

/// The last record of each name in `bytes`, the bytes the others (and a torn tail and all
/// stamps) take, and where the last stamp record starts and ends, if the last record is one.
fn last_records(bytes: &[u8]) -> (Names, usize, Option<(usize, usize)>) {
    let mut last = Names::default();
    let mut at = 0;
    let mut dead_bytes = 0;
    let mut stamp = None;
    while let Some((name, start, end)) = record_at(bytes, at) {
        if name == STAMP_NAME {
            dead_bytes += end - at;
            stamp = Some((at, end));
        } else {
            stamp = None;
            if let Some((s, e)) = last.insert(name.to_string(), (start, end)) {
                dead_bytes += e - s;
            }
        }
        at = end;
    }
    // Anything after the last whole record is a torn append: it is ignored, and dropped when
    // the pack is next rewritten.
    dead_bytes += bytes.len() - at;
    (last, dead_bytes, stamp)
}

/// The records that copy the file their name has now (a tombstone copies none): records of
/// files that are gone or were rewritten since are never served. The names of the others are
/// pushed to `stale`.
fn live(
    bytes: &[u8],
    mut last: Names,
    existing: &Inodes,
    dead_bytes: &mut usize,
    stale: &mut Vec<String>,
) -> Names {
    last.retain(|name, &mut (s, e)| {
        let keep = existing
            .get(name)
            .is_some_and(|&ino| ino != 0 && record_ino(&bytes[s..e]) == Some(ino));
        if !keep {
            *dead_bytes += e - s;
            stale.push(name.clone());
        }
        keep
    });
    last
}

/// Lists the cache directory: the current inode of each name.
fn list(dir: &Dir) -> std::io::Result<Inodes> {
    Ok(dir
        .entries()?
        .filter_map(|e| {
            let e = e.ok()?;
            let ino = inode_of(&e);
            Some((e.file_name().into_string().ok()?, ino))
        })
        .collect())
}

/// The directory's identity and change times, where the platform has them.
#[cfg(unix)]
fn dir_state(dir: &Dir) -> Option<DirState> {
    use cap_std::fs::MetadataExt;
    let m = dir.dir_metadata().ok()?;
    Some(DirState {
        dev: m.dev(),
        ino: m.ino(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

#[cfg(not(unix))]
fn dir_state(_dir: &Dir) -> Option<DirState> {
    None
}

/// Whether the directory's last change is far enough before `now` that a change made from
/// `now` on gets other times. Kernels stamp files from a clock that ticks every few
/// milliseconds, and some filesystems keep whole seconds only (their nanoseconds are zero).
fn settled(state: DirState, now: std::time::SystemTime) -> bool {
    let Ok(now) = now.duration_since(std::time::UNIX_EPOCH) else {
        return false;
    };
    let coarse = state.mtime.1 == 0 && state.ctime.1 == 0;
    let margin = if coarse {
        std::time::Duration::from_secs(2)
    } else {
        std::time::Duration::from_millis(100)
    };
    let Some(limit) = now.checked_sub(margin) else {
        return false;
    };
    let before = |(secs, nanos): (i64, i64)| {
        u64::try_from(secs).is_ok_and(|secs| {
            std::time::Duration::new(secs, nanos.clamp(0, 999_999_999) as u32) < limit
        })
    };
    before(state.mtime) && before(state.ctime)
}

/// The stamp record for a pack of `len` bytes whose listing found `stale` names.
fn stamp_record(state: DirState, len: usize, stale: &[String], signer: &Signer) -> Option<Vec<u8>> {
    let stamp = Stamp {
        dir: state,
        at: len as u64,
        stale: stale.iter().map(String::as_str).collect(),
    };
    let content = postcard::to_allocvec(&stamp).ok()?;
    let mut signed = STAMP_DOMAIN.to_vec();
    signed.extend_from_slice(&content);
    let mut body = signer.sign(&signed).to_vec();
    body.extend_from_slice(&content);
    let record = record(STAMP_NAME, &body);
    // The pack's size limit holds for what a stamp adds, too.
    (len as u64 + record.len() as u64 <= MAX_PACK).then_some(record)
}

/// The stale names of the stamp record `record` (starting at `at`), if `signer` signed it for
/// this place in the pack and this state of the directory.
fn stamp_stale<'a>(
    record: &'a [u8],
    at: usize,
    state: DirState,
    signer: &Signer,
) -> Option<Vec<&'a str>> {
    let (_, start, end) = record_at(record, 0)?;
    let (sig, content) = record.get(start..end)?.split_first_chunk::<SIG_LEN>()?;
    let mut signed = STAMP_DOMAIN.to_vec();
    signed.extend_from_slice(content);
    if !signer.verify(&signed, sig) {
        return None;
    }
    let stamp: Stamp<'a> = postcard::from_bytes(content).ok()?;
    (stamp.at == at as u64 && stamp.dir == state).then_some(stamp.stale)
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
        let pack = Pack::load(&dir, &test_signer());
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
        assert!(
            Pack::load(&dir, &test_signer())
                .get("b.stash", "k1", &s)
                .is_none()
        );
        Pack::compact(&dir).unwrap();
        let again = Pack::load(&dir, &test_signer());
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
            value(&Pack::load(&dir, &test_signer()), "a.stash", "k1").as_deref(),
            Some(&b"v1"[..])
        );
        // The file is rewritten and its new copy never reaches the pack (a failed append):
        // the old record is not served.
        let second = write_file(&dir, "a.stash", "v2");
        assert_ne!(first, second);
        assert!(value(&Pack::load(&dir, &test_signer()), "a.stash", "k1").is_none());
        // A value too large for the pack leaves a tombstone: no older record of the name is
        // served, even if the new file reuses the inode of the one it copied (ext4 reuses
        // inodes at once).
        let mut w = Appender::default();
        w.append(&dir, "a.stash", &h, b"v1", second, &s).unwrap();
        assert!(value(&Pack::load(&dir, &test_signer()), "a.stash", "k1").is_some());
        let big = vec![0u8; MAX_PACKED + 1];
        assert!(
            w.append(&dir, "a.stash", &h, &big, second, &s)
                .unwrap()
                .is_empty()
        );
        assert!(value(&Pack::load(&dir, &test_signer()), "a.stash", "k1").is_none());
        // A compaction keeps the newest record of each name from the pack as it is when it
        // runs, not from a snapshot: an append made after another run loaded the pack survives.
        let before = Pack::load(&dir, &test_signer());
        w.append(&dir, "a.stash", &h, b"v4", second, &s).unwrap();
        Pack::compact(&dir).unwrap();
        let after = Pack::load(&dir, &test_signer());
        assert_eq!(value(&after, "a.stash", "k1").as_deref(), Some(&b"v4"[..]));
        drop(before);
        // And an appender whose file was replaced by the compaction reopens the new one.
        w.append(&dir, "a.stash", &h, b"v5", second, &s).unwrap();
        assert_eq!(
            value(&Pack::load(&dir, &test_signer()), "a.stash", "k1").as_deref(),
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
        assert!(value(&Pack::load(&dir, &test_signer()), "a.stash", "k1").is_some());
        // From the signature on (a flip in the length or the name is a different record).
        for i in 5 + "a.stash".len()..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 1;
            dir.write(PACK_NAME, &bad).unwrap();
            assert!(
                value(&Pack::load(&dir, &test_signer()), "a.stash", "k1").is_none(),
                "flip at {i}"
            );
        }
        dir.write(PACK_NAME, &good).unwrap();
        let other = Signer::new([1; 32], "fedcba9876543210");
        assert!(
            Pack::load(&dir, &test_signer())
                .get("a.stash", "k1", &other)
                .is_none()
        );
    }

    /// A time well after every change made so far, as if the next run came a while later.
    fn later() -> std::time::SystemTime {
        std::time::SystemTime::now() + std::time::Duration::from_secs(5)
    }

    #[test]
    fn a_settled_directory_is_listed_once_then_trusted_until_it_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        let s = test_signer();
        let h = header("k1");
        let mut w = Appender::default();
        for name in ["a.stash", "b.stash", "c.stash"] {
            let ino = write_file(&dir, name, name);
            w.append(&dir, name, &h, name.as_bytes(), ino, &s).unwrap();
        }
        // Removed before the first listing: the stamp remembers it as stale.
        dir.remove_file("c.stash").unwrap();
        // Just changed: listed, and no stamp (a change in the same clock tick would not show).
        let first = Pack::load(&dir, &s);
        assert!(first.listed());
        assert!(Pack::load_at(&dir, &s, std::time::SystemTime::now()).listed());
        // Settled: listed once more, then the stamp answers.
        assert!(Pack::load_at(&dir, &s, later()).listed());
        let trusted = Pack::load_at(&dir, &s, later());
        assert!(!trusted.listed());
        assert_eq!(
            value(&trusted, "a.stash", "k1").as_deref(),
            Some(&b"a.stash"[..])
        );
        assert!(value(&trusted, "c.stash", "k1").is_none());
        assert_eq!(trusted.len(), 2);
        // Each change of the directory voids the stamp: a removal, a rewrite, a new name.
        dir.remove_file("b.stash").unwrap();
        let after = Pack::load_at(&dir, &s, later());
        assert!(after.listed());
        assert!(value(&after, "b.stash", "k1").is_none());
        assert!(!Pack::load_at(&dir, &s, later()).listed());
        let old = dir.metadata("a.stash").unwrap();
        write_file(&dir, "a.stash", "rewritten");
        assert_ne!(
            cap_std::fs::MetadataExt::ino(&old),
            cap_std::fs::MetadataExt::ino(&dir.metadata("a.stash").unwrap())
        );
        let after = Pack::load_at(&dir, &s, later());
        assert!(after.listed());
        assert!(value(&after, "a.stash", "k1").is_none());
        // A record appended after the stamp (here a heal, which changes no directory entry).
        assert!(!Pack::load_at(&dir, &s, later()).listed());
        let ino = cap_std::fs::MetadataExt::ino(&dir.metadata("a.stash").unwrap());
        w.append(&dir, "a.stash", &h, b"rewritten", ino, &s)
            .unwrap();
        let after = Pack::load_at(&dir, &s, later());
        assert!(after.listed());
        assert_eq!(
            value(&after, "a.stash", "k1").as_deref(),
            Some(&b"rewritten"[..])
        );
        // A compaction renames a new pack in, without its stamps.
        assert!(!Pack::load_at(&dir, &s, later()).listed());
        Pack::compact(&dir).unwrap();
        assert!(Pack::load_at(&dir, &s, later()).listed());
    }

    #[test]
    fn a_stamp_of_another_key_place_or_kind_is_not_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        let s = test_signer();
        let ino = write_file(&dir, "a.stash", "a");
        Appender::default()
            .append(&dir, "a.stash", &header("k1"), b"a", ino, &s)
            .unwrap();
        assert!(Pack::load_at(&dir, &s, later()).listed());
        assert!(!Pack::load_at(&dir, &s, later()).listed());
        let good = std::fs::read(tmp.path().join(PACK_NAME)).unwrap();
        let (_, _, stamp) = last_records(&good);
        let (at, end) = stamp.unwrap();
        assert_eq!(end, good.len());
        // Written in place (no directory change), as a forger with write access could.
        let put = |bytes: &[u8]| {
            let mut f = dir
                .open_with(PACK_NAME, OpenOptions::new().write(true).truncate(true))
                .unwrap();
            f.write_all(bytes).unwrap();
        };
        // Any flipped byte of the stamp (after its length and name).
        for i in at + 5 + STAMP_NAME.len()..end {
            let mut bad = good.clone();
            bad[i] ^= 1;
            put(&bad);
            let p = Pack::load_at(&dir, &s, std::time::SystemTime::now());
            assert!(p.listed(), "flip at {i}");
        }
        // Another user's key.
        put(&good);
        let other = Signer::new([1; 32], "fedcba9876543210");
        assert!(Pack::load_at(&dir, &other, std::time::SystemTime::now()).listed());
        // A torn record after it.
        let mut torn = good.clone();
        torn.extend_from_slice(&[9, 0, 0, 0, 1]);
        put(&torn);
        assert!(Pack::load_at(&dir, &s, std::time::SystemTime::now()).listed());
        // The stamp moved to another place (an earlier record dropped before it).
        let mut moved = good[..at].to_vec();
        let first_end = record_at(&good, 0).unwrap().2;
        moved.drain(..first_end);
        moved.extend_from_slice(&good[at..]);
        put(&moved);
        assert!(Pack::load_at(&dir, &s, std::time::SystemTime::now()).listed());
        // An entry record's body under the stamp's name, and the stamp's under an entry's.
        let entry_body = &good[record_at(&good, 0).unwrap().1..first_end];
        let mut relabeled = good[..at].to_vec();
        relabeled.extend_from_slice(&record(STAMP_NAME, entry_body));
        put(&relabeled);
        assert!(Pack::load_at(&dir, &s, std::time::SystemTime::now()).listed());
        let stamp_body = &good[record_at(&good, at).unwrap().1..end];
        let mut as_entry = good[..at].to_vec();
        as_entry.extend_from_slice(&record("a.stash", stamp_body));
        put(&as_entry);
        assert!(value(&Pack::load(&dir, &s), "a.stash", "k1").is_none());
        // The good stamp still answers.
        put(&good);
        assert!(!Pack::load_at(&dir, &s, std::time::SystemTime::now()).listed());
    }

    #[test]
    fn only_a_directory_changed_long_enough_ago_is_settled() {
        let at = |secs: i64, nanos: i64| DirState {
            dev: 1,
            ino: 2,
            mtime: (secs, nanos),
            ctime: (secs, nanos),
        };
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        assert!(settled(at(999, 800_000_000), now));
        assert!(!settled(at(999, 950_000_000), now));
        // Whole seconds only: a filesystem with coarse times waits 2 s.
        assert!(!settled(at(999, 0), now));
        assert!(settled(at(997, 0), now));
        // Either time too recent is enough to wait.
        let mixed = DirState {
            ctime: (999, 990_000_000),
            ..at(990, 5)
        };
        assert!(!settled(mixed, now));
        assert!(!settled(at(-5, 0), now));
    }
}
