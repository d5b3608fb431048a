//! `index.pack`: copies of small entries in one append-only file beside the entry files, so a
//! hit costs a hash-map lookup and a checksum instead of an open, a read, a close and a JSON
//! parse.
//!
//! The entry files stay the source of truth; the pack only ever answers for a name whose file
//! still exists (checked with one directory listing when the pack is loaded), and every record
//! is a complete entry, verified like a file. So:
//! - an entry removed by `devstash clear` or by hand is not served from the pack;
//! - a record torn by a crash, or any foreign bytes (a record of an older layout among them),
//!   fails verification and the file is read;
//! - a rewritten entry (refresh, expiry, repair) is appended again, and the last record wins;
//! - a run that started before another run appended sees the file, not the new record.
//!
//! Record layout: `u32 LE length of the rest`, `u8 name length`, name, then a 16-byte checksum
//! (`store::checksum`, little endian) of what follows it: the postcard-encoded [`Meta`] and the
//! payload. The record keeps only what a hit needs of the entry's header.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use cap_std::fs::{Dir, OpenOptions};
use serde::{Deserialize, Serialize};

use super::{Found, Header, Value, checksum};

/// What a pack record keeps of an entry's header.
#[derive(Serialize, Deserialize)]
struct Meta<'a> {
    key: &'a str,
    created_ms: u64,
    compute_ns: u64,
    args_preview: Option<&'a str>,
}

type Names = HashMap<String, (usize, usize), foldhash::fast::RandomState>;

/// File name of the pack inside the cache directory.
pub const PACK_NAME: &str = "index.pack";
/// Entries larger than this are only kept as files (their read is dominated by the copy).
pub const MAX_PACKED: usize = 64 * 1024;

/// The loaded pack: the file's bytes and where each live record's entry starts and ends.
#[derive(Default)]
pub struct Pack {
    bytes: Vec<u8>,
    by_name: Names,
    dead_bytes: usize,
}

impl Pack {
    /// Reads the pack, keeping the last record of each name whose entry file still exists.
    ///
    /// The directory listing that tells which files exist is the slow part (the kernel walks
    /// the whole directory), so it runs on another thread while this one reads and parses the
    /// pack.
    pub fn load(dir: &Dir) -> Pack {
        let listing = dir.try_clone().map(|dir| {
            std::thread::spawn(
                move || -> Option<HashSet<String, foldhash::fast::RandomState>> {
                    let entries = dir.entries().ok()?;
                    Some(
                        entries
                            .filter_map(|e| e.ok()?.file_name().into_string().ok())
                            .collect(),
                    )
                },
            )
        });
        let Ok(bytes) = dir.read(PACK_NAME) else {
            return Pack::default();
        };
        // The last record of each name, in file order.
        let mut last = Names::default();
        let mut at = 0;
        let mut dead_bytes = 0;
        while let Some((name, start, end)) = record_at(&bytes, at) {
            if let Some((s, e)) = last.insert(name.to_string(), (start, end)) {
                dead_bytes += e - s;
            }
            at = end;
        }
        // Anything after the last whole record is a torn append: it is ignored, and dropped
        // when the pack is next rewritten.
        dead_bytes += bytes.len() - at;
        let existing = match listing.map(|t| t.join()) {
            Ok(Ok(Some(existing))) => existing,
            _ => return Pack::default(),
        };
        last.retain(|name, &mut (s, e)| {
            let keep = existing.contains(name);
            if !keep {
                dead_bytes += e - s;
            }
            keep
        });
        Pack {
            bytes,
            by_name: last,
            dead_bytes,
        }
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
        self.by_name.get(name).map(|&(s, e)| &self.bytes[s..e])
    }

    /// The value recorded for `name` under `key_hex`, if its record is intact.
    pub fn get(&self, name: &str, key_hex: &str) -> Option<Found> {
        let body = self.body(name)?;
        let (sum, rest) = body.split_first_chunk::<16>()?;
        if checksum::of(rest) != u128::from_le_bytes(*sum) {
            return None;
        }
        let (meta, payload) = postcard::take_from_bytes::<Meta<'_>>(rest).ok()?;
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

    /// Rewrites the pack with only its live records (atomically; a concurrent append to the old
    /// file may be lost from the pack, which only costs that run's reader a file read).
    pub fn compact(&self, dir: &Dir) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(self.bytes.len() - self.dead_bytes);
        let mut live: Vec<(&String, &(usize, usize))> = self.by_name.iter().collect();
        live.sort_by_key(|(_, (s, _))| *s);
        for (name, &(s, e)) in live {
            out.extend_from_slice(&record(name, &self.bytes[s..e]));
        }
        super::disk::write_atomic(dir, PACK_NAME, &out)
    }
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

/// A record body: checksum, meta, payload.
fn body(header: &Header, payload: &[u8]) -> Vec<u8> {
    let meta = Meta {
        key: &header.key,
        created_ms: header.created_ms,
        compute_ns: header.compute_ns,
        args_preview: header.args_preview.as_deref(),
    };
    let mut out = vec![0; 16];
    postcard::to_io(&meta, &mut out).expect("plain data encodes");
    out.extend_from_slice(payload);
    let sum = checksum::of(&out[16..]);
    out[..16].copy_from_slice(&sum.to_le_bytes());
    out
}

/// Appends records to the pack. Each record goes out in one `write` on a file opened for
/// appending, so concurrent appends never interleave (and a crash leaves at most one torn
/// record at the end). The file stays open for the run: a store costs one syscall more.
#[derive(Default)]
pub struct Appender {
    file: Option<cap_std::fs::File>,
}

impl Appender {
    /// Appends the record of one entry (values over [`MAX_PACKED`] bytes are skipped).
    pub fn append(
        &mut self,
        dir: &Dir,
        name: &str,
        header: &Header,
        payload: &[u8],
    ) -> std::io::Result<()> {
        if payload.len() > MAX_PACKED || name.len() > u8::MAX as usize {
            return Ok(());
        }
        if self.file.is_none() {
            let mut opts = OpenOptions::new();
            opts.append(true).create(true);
            self.file = Some(dir.open_with(PACK_NAME, &opts)?);
        }
        let file = self.file.as_mut().expect("opened above");
        file.write_all(&record(name, &body(header, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        pack.get(name, key).map(|f| match f.value {
            Value::Bytes(b) => b,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn last_record_wins_and_deleted_files_are_not_served() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        dir.write("a.stash", "file a").unwrap();
        dir.write("b.stash", "file b").unwrap();
        let h = header("k1");
        let mut w = Appender::default();
        w.append(&dir, "a.stash", &h, b"old a").unwrap();
        w.append(&dir, "b.stash", &h, b"b").unwrap();
        w.append(&dir, "a.stash", &h, b"new a").unwrap();
        w.append(&dir, "gone.stash", &h, b"gone").unwrap();
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
        let found = pack.get("b.stash", "k1").unwrap();
        assert_eq!((found.created_ms, found.compute_ns), (5, 9));
        assert_eq!(found.args_preview.as_deref(), Some("(1,)"));
        // Another key under the same name is not served.
        assert!(pack.get("a.stash", "k2").is_none());
        assert!(pack.get("gone.stash", "k1").is_none());
        dir.remove_file("b.stash").unwrap();
        assert!(Pack::load(&dir).get("b.stash", "k1").is_none());
        pack.compact(&dir).unwrap();
        let again = Pack::load(&dir);
        assert_eq!(
            value(&again, "a.stash", "k1").as_deref(),
            Some(&b"new a"[..])
        );
    }

    #[test]
    fn every_flip_in_a_record_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        dir.write("a.stash", "file a").unwrap();
        Appender::default()
            .append(&dir, "a.stash", &header("k1"), b"value")
            .unwrap();
        let good = dir.read(PACK_NAME).unwrap();
        // From the checksum on (a flip in the length or the name is a different record).
        for i in 5 + "a.stash".len()..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 1;
            dir.write(PACK_NAME, &bad).unwrap();
            assert!(
                value(&Pack::load(&dir), "a.stash", "k1").is_none(),
                "flip at {i}"
            );
        }
    }
}
