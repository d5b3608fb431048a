//! `index.pack`: copies of small entries in one append-only file beside the entry files, so a
//! hit costs a hash-map lookup and a checksum instead of an open, a read and a close.
//!
//! The entry files stay the source of truth; the pack only ever answers for a name whose file
//! still exists (checked with one directory listing when the pack is loaded), and every record
//! is a complete entry, verified like a file. So:
//! - an entry removed by `devstash clear` or by hand is not served from the pack;
//! - a record torn by a crash, or any foreign bytes, fails verification and the file is read;
//! - a rewritten entry (refresh, expiry, repair) is appended again, and the last record wins;
//! - a run that started before another run appended sees the file, not the new record.
//!
//! Record layout: `u32 LE length of the rest`, `u8 name length`, name, entry bytes.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use cap_std::fs::{Dir, OpenOptions};

/// File name of the pack inside the cache directory.
pub const PACK_NAME: &str = "index.pack";
/// Entries larger than this are only kept as files (their read is dominated by the copy).
pub const MAX_PACKED: usize = 64 * 1024;

/// The loaded pack: the file's bytes and where each live record's entry starts and ends.
#[derive(Default)]
pub struct Pack {
    bytes: Vec<u8>,
    by_name: HashMap<String, (usize, usize)>,
    dead_bytes: usize,
}

impl Pack {
    /// Reads the pack, keeping the last record of each name whose entry file still exists.
    pub fn load(dir: &Dir) -> Pack {
        let Ok(bytes) = dir.read(PACK_NAME) else {
            return Pack::default();
        };
        let existing: HashSet<String> = match dir.entries() {
            Ok(entries) => entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect(),
            Err(_) => return Pack::default(),
        };
        let mut by_name = HashMap::new();
        let mut at = 0;
        let mut dead_bytes = 0;
        while let Some((name, start, end)) = record_at(&bytes, at) {
            if existing.contains(name) {
                if let Some((s, e)) = by_name.insert(name.to_string(), (start, end)) {
                    dead_bytes += e - s;
                }
            } else {
                dead_bytes += end - start;
            }
            at = end;
        }
        // Anything after the last whole record is a torn append: it is ignored, and dropped
        // when the pack is next rewritten.
        dead_bytes += bytes.len() - at;
        Pack {
            bytes,
            by_name,
            dead_bytes,
        }
    }

    /// The entry bytes recorded for `name`, if any (unverified: decode them).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.by_name.get(name).map(|&(s, e)| &self.bytes[s..e])
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

/// Parses the record starting at `at`: its name and the span of its entry bytes.
fn record_at(bytes: &[u8], at: usize) -> Option<(&str, usize, usize)> {
    let len = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize;
    let body = bytes.get(at + 4..at + 4 + len)?;
    let name_len = *body.first()? as usize;
    let name = std::str::from_utf8(body.get(1..1 + name_len)?).ok()?;
    let start = at + 4 + 1 + name_len;
    Some((name, start, at + 4 + len))
}

/// One record's bytes.
fn record(name: &str, entry: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(5 + name.len() + entry.len());
    r.extend_from_slice(&((1 + name.len() + entry.len()) as u32).to_le_bytes());
    r.push(name.len() as u8);
    r.extend_from_slice(name.as_bytes());
    r.extend_from_slice(entry);
    r
}

/// Appends records to the pack. Each record goes out in one `write` on a file opened for
/// appending, so concurrent appends never interleave (and a crash leaves at most one torn
/// record at the end). The file stays open for the run: a store costs one syscall more.
#[derive(Default)]
pub struct Appender {
    file: Option<cap_std::fs::File>,
}

impl Appender {
    /// Appends the record of one entry (entries over [`MAX_PACKED`] bytes are skipped).
    pub fn append(&mut self, dir: &Dir, name: &str, entry: &[u8]) -> std::io::Result<()> {
        if entry.len() > MAX_PACKED || name.len() > u8::MAX as usize {
            return Ok(());
        }
        if self.file.is_none() {
            let mut opts = OpenOptions::new();
            opts.append(true).create(true);
            self.file = Some(dir.open_with(PACK_NAME, &opts)?);
        }
        let file = self.file.as_mut().expect("opened above");
        file.write_all(&record(name, entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    #[test]
    fn last_record_wins_and_deleted_files_are_not_served() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        dir.write("a.stash", "file a").unwrap();
        dir.write("b.stash", "file b").unwrap();
        let mut w = Appender::default();
        w.append(&dir, "a.stash", b"old a").unwrap();
        w.append(&dir, "b.stash", b"b").unwrap();
        w.append(&dir, "a.stash", b"new a").unwrap();
        w.append(&dir, "gone.stash", b"gone").unwrap();
        // A torn record at the end is ignored.
        let mut f = dir
            .open_with(PACK_NAME, OpenOptions::new().append(true))
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 7]).unwrap();
        let pack = Pack::load(&dir);
        assert_eq!(pack.get("a.stash"), Some(&b"new a"[..]));
        assert_eq!(pack.get("b.stash"), Some(&b"b"[..]));
        assert_eq!(pack.get("gone.stash"), None);
        dir.remove_file("b.stash").unwrap();
        assert_eq!(Pack::load(&dir).get("b.stash"), None);
        pack.compact(&dir).unwrap();
        let again = Pack::load(&dir);
        assert_eq!(again.get("a.stash"), Some(&b"new a"[..]));
    }
}
