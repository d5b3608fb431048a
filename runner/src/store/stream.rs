//! Large entries, read straight into their destination and verified on the way.
//!
//! A hit on a large value must not cost more than reading it once: no host-side copy of the
//! file, no second pass to verify it. So a large entry is opened with only its first
//! [`HEAD`] bytes read (enough for the header), and its payload is read when the guest asks for
//! it, with `pread` straight into guest memory, in [`sign::SEGMENT`](super::sign::SEGMENT)-sized pieces spread over
//! the machine's cores, each hashed (as a blake3 subtree, see `store::sign`) while it is still in
//! the cache. The signature is judged when the last byte has been read; a read that ends there
//! fails if it does not verify, and the guest throws away what it read.
//!
//! The header is parsed before it is verified (it is verified with the payload, at the end): a
//! lookup only uses it to decide whether to read on (the key, the expiry, the length). A forged
//! header can make a run read a forged payload, which then fails the signature like any damage;
//! a length no guest could hold is refused before anything is read.

use std::fs::File;

use blake3::hazmat::ChainingValue;

use super::ReadError;
use super::entry::{BAD_SIGNATURE, Frame, Header, parse_header};
use super::sign::{SEGMENT, SIG_LEN, Segments, Signer};

/// Bytes read when a large entry is opened; its header must fit in them.
pub const HEAD: usize = 64 << 10;

/// Whole segments that one read must cover before it is spread over threads.
const PARALLEL_FROM: usize = 4;

/// Largest payload a stream opens: a 32-bit guest cannot hold more, and a header that claims more
/// is damage (a sparse file can claim anything without taking the space).
pub const MAX_PAYLOAD: u64 = 4 << 30;

/// Bytes read at a time by [`Stream::read_windows`]: enough whole segments to spread their
/// hashing over threads, little enough to keep `inspect`'s memory small.
const WINDOW_CHUNK: usize = 8 * SEGMENT;

/// The start and the end of a verified payload (see [`Stream::read_windows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    /// The payload's first bytes (all of it, when it is no longer than asked for).
    pub head: Vec<u8>,
    /// Its last bytes, after the head (empty when the head holds the whole payload).
    pub tail: Vec<u8>,
    /// The payload's length.
    pub len: u64,
}

/// A large entry whose payload has not been read yet.
pub struct Stream {
    file: File,
    signer: Signer,
    /// File offset of the bytes the signature covers (after the first line).
    rest_at: u64,
    /// Length of those bytes.
    rest_len: u64,
    /// Where the payload starts within them.
    payload_at: u64,
    /// Their first bytes, read at open.
    head: Vec<u8>,
    /// How many of them have been fed to the signature.
    hashed: u64,
    sums: Segments,
    expected: [u8; SIG_LEN],
    /// Set once the last byte has been read: whether the signature verified.
    verdict: Option<Result<(), String>>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("len", &self.len())
            .field("hashed", &self.hashed)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// Opens the entry in `file`, `file_len` bytes long, reading only its head. The error says
    /// why it cannot be used.
    pub fn open(file: File, file_len: u64, signer: &Signer) -> Result<(Header, Stream), String> {
        let mut head = vec![0; HEAD.min(file_len as usize)];
        read_exact_at(&file, &mut head, 0).map_err(|e| format!("cannot read: {e}"))?;
        let frame = Frame::parse(&head, signer)?;
        let rest = &head[frame.first_len..];
        if !rest.contains(&b'\n') {
            return Err(format!(
                "header longer than {} KiB (not written by devstash)",
                HEAD >> 10
            ));
        }
        let (header, payload_at) = parse_header(rest)?;
        let rest_len = file_len - frame.first_len as u64;
        if rest_len - payload_at as u64 != header.payload_len {
            return Err("payload length does not match the header".into());
        }
        if header.payload_len > MAX_PAYLOAD {
            return Err(format!(
                "claims a value of {} bytes, more than a 32-bit guest can hold",
                header.payload_len
            ));
        }
        let head = rest.to_vec();
        let mut sums = signer.segments();
        sums.update(&head);
        let stream = Stream {
            file,
            signer: signer.clone(),
            rest_at: frame.first_len as u64,
            rest_len,
            payload_at: payload_at as u64,
            hashed: head.len() as u64,
            head,
            sums,
            expected: frame.sig,
            verdict: None,
        };
        Ok((header, stream))
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> u64 {
        self.rest_len - self.payload_at
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies payload bytes `offset..offset + dst.len()` (which the caller has checked lie in
    /// the payload) into `dst`. Reads go forward: a range may start before the end of an earlier
    /// one only within the head. The read that reaches the end judges the signature.
    pub fn read(&mut self, offset: u64, dst: &mut [u8]) -> Result<(), ReadError> {
        if let Some(Err(why)) = &self.verdict {
            return Err(ReadError::Corrupt(why.clone()));
        }
        let mut at = self.payload_at + offset;
        let mut dst = dst;
        if at < self.hashed {
            let n = (dst.len() as u64).min(self.hashed - at) as usize;
            let from_head = self
                .head
                .get(at as usize..at as usize + n)
                .ok_or(ReadError::OutOfRange)?;
            dst[..n].copy_from_slice(from_head);
            dst = &mut dst[n..];
            at += n as u64;
        }
        if !dst.is_empty() {
            if at > self.hashed {
                self.skip(at - self.hashed).map_err(ReadError::Corrupt)?;
            }
            self.fill(dst).map_err(ReadError::Corrupt)?;
        }
        if self.hashed == self.rest_len && self.verdict.is_none() {
            let sums = std::mem::replace(&mut self.sums, self.signer.segments());
            let sig = sums.finish();
            let verdict =
                if blake3::Hash::from_bytes(sig) == blake3::Hash::from_bytes(self.expected) {
                    Ok(())
                } else {
                    Err(BAD_SIGNATURE.to_string())
                };
            self.verdict = Some(verdict.clone());
            verdict.map_err(ReadError::Corrupt)?;
        }
        Ok(())
    }

    /// Reads the whole payload (from its start: nothing may have been read yet) with bounded
    /// memory, keeping only its first `head` and its last `tail` bytes, and judges the
    /// signature: what `inspect` needs to show a value it has verified, whatever its size.
    /// Reads go in [`WINDOW_CHUNK`] pieces, so that their segments are hashed on several
    /// threads.
    pub fn read_windows(&mut self, head: usize, tail: usize) -> Result<Windows, ReadError> {
        let total = self.len();
        let mut first = vec![0; (total.min(head as u64)) as usize];
        self.read(0, &mut first)?;
        let mut at = first.len() as u64;
        let tail_from = total.saturating_sub(tail as u64).max(at);
        let mut last = Vec::with_capacity((total - tail_from) as usize);
        let mut chunk = vec![0; (total - at).min(WINDOW_CHUNK as u64) as usize];
        while at < total {
            // Ending each read on a segment boundary makes the next one whole segments, which
            // are hashed on several threads.
            let past = ((self.payload_at + at) % SEGMENT as u64) as usize;
            let n = (total - at).min((WINDOW_CHUNK - past) as u64) as usize;
            self.read(at, &mut chunk[..n])?;
            let end = at + n as u64;
            if end > tail_from {
                let from = tail_from.saturating_sub(at) as usize;
                last.extend_from_slice(&chunk[from..n]);
            }
            at = end;
        }
        // Every byte has been read, so the last read judged the signature; never report a value
        // as verified otherwise.
        match &self.verdict {
            Some(Ok(())) => Ok(Windows {
                head: first,
                tail: last,
                len: total,
            }),
            Some(Err(why)) => Err(ReadError::Corrupt(why.clone())),
            None => Err(ReadError::Corrupt("the signature was not judged".into())),
        }
    }

    /// Reads and hashes `n` bytes nobody asked for (a read that skipped ahead).
    fn skip(&mut self, mut n: u64) -> Result<(), String> {
        let mut scratch = vec![0; n.min(SEGMENT as u64) as usize];
        while n > 0 {
            let k = n.min(scratch.len() as u64) as usize;
            self.fill(&mut scratch[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Reads the next `dst.len()` bytes into `dst`, hashing them.
    fn fill(&mut self, mut dst: &mut [u8]) -> Result<(), String> {
        // Up to the next segment boundary, in this thread.
        let fill = self.sums.fill();
        if fill != 0 || self.sums.total() == 0 {
            let n = dst.len().min(SEGMENT - fill);
            self.pread(&mut dst[..n])?;
            self.sums.update(&dst[..n]);
            self.hashed += n as u64;
            dst = &mut dst[n..];
        }
        // Whole segments, spread over threads (never the stream's only segment, which is the
        // root of its tree and hashed as such by `update`).
        let whole = dst.len() / SEGMENT * SEGMENT;
        if whole > 0 && self.rest_len > SEGMENT as u64 {
            let (segments, tail) = dst.split_at_mut(whole);
            let first = self.sums.next_segment();
            let cvs = read_segments(
                &self.file,
                &self.signer,
                self.rest_at + self.hashed,
                first,
                segments,
            )?;
            self.sums.push(&cvs);
            self.hashed += whole as u64;
            dst = tail;
        }
        if !dst.is_empty() {
            self.pread(dst)?;
            self.sums.update(dst);
            self.hashed += dst.len() as u64;
        }
        Ok(())
    }

    fn pread(&self, dst: &mut [u8]) -> Result<(), String> {
        read_exact_at(&self.file, dst, self.rest_at + self.hashed)
            .map_err(|e| format!("cannot read: {e}"))
    }
}

/// Fills `dst` from `file` at `offset`, without moving a file position (so threads may share the
/// file).
fn read_exact_at(file: &File, dst: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        populate(dst);
        std::os::unix::fs::FileExt::read_exact_at(file, dst, offset)
    }
    #[cfg(windows)]
    {
        let (mut dst, mut offset) = (dst, offset);
        while !dst.is_empty() {
            match std::os::windows::fs::FileExt::seek_read(file, dst, offset)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => {
                    dst = &mut dst[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }
}

/// Has the kernel provide the pages of a large `dst` (fresh guest memory, as a large value's
/// is) in one call before they are read into: faulting them in one at a time as the read
/// copies was the largest cost of a restore after the copy itself. Best effort: only whole
/// pages inside `dst`, and nothing on kernels without `MADV_POPULATE_WRITE` (5.14).
#[cfg(target_os = "linux")]
fn populate(dst: &mut [u8]) {
    const FROM: usize = 256 << 10;
    const PAGE: usize = 4096;
    if dst.len() < FROM {
        return;
    }
    let start = (dst.as_mut_ptr() as usize).next_multiple_of(PAGE);
    let end = (dst.as_mut_ptr() as usize + dst.len()) / PAGE * PAGE;
    if end > start {
        // SAFETY: the range lies inside `dst`, memory this thread may write; populating
        // writable pages changes no byte of them.
        unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                end - start,
                libc::MADV_POPULATE_WRITE,
            )
        };
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
fn populate(_dst: &mut [u8]) {}

/// Reads whole segments (numbered from `first`) from `file` at `at` into `dst` and returns
/// their chaining values in order, using every core when there are enough of them.
fn read_segments(
    file: &File,
    signer: &Signer,
    at: u64,
    first: u64,
    dst: &mut [u8],
) -> Result<Vec<ChainingValue>, String> {
    let one = |at: u64, first: u64, dst: &mut [u8]| -> Result<Vec<ChainingValue>, String> {
        dst.chunks_mut(SEGMENT)
            .enumerate()
            .map(|(i, seg)| {
                read_exact_at(file, seg, at + (i * SEGMENT) as u64)
                    .map_err(|e| format!("cannot read: {e}"))?;
                Ok(signer.segment(first + i as u64, seg))
            })
            .collect()
    };
    let segments = dst.len() / SEGMENT;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(segments / PARALLEL_FROM.max(1))
        .max(1);
    if threads == 1 {
        return one(at, first, dst);
    }
    // Contiguous runs of segments, one per thread, so each thread faults in and fills its own
    // part of the destination.
    let per_segments = segments.div_ceil(threads);
    let per = per_segments * SEGMENT;
    std::thread::scope(|s| {
        let workers: Vec<_> = dst
            .chunks_mut(per)
            .enumerate()
            .map(|(i, part)| {
                s.spawn(move || {
                    one(
                        at + (i * per) as u64,
                        first + (i * per_segments) as u64,
                        part,
                    )
                })
            })
            .collect();
        let mut cvs = Vec::with_capacity(segments);
        for w in workers {
            cvs.extend(
                w.join()
                    .map_err(|_| "a reader thread panicked".to_string())??,
            );
        }
        Ok(cvs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Entry;
    use crate::store::entry::test_signer;

    fn entry_file(payload: &[u8]) -> (tempfile::NamedTempFile, u64) {
        let header = crate::store::entry::test_header(&"ab".repeat(32), payload.len());
        let bytes = Entry::encode(&header, payload, &test_signer());
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, &bytes).unwrap();
        (f, bytes.len() as u64)
    }

    fn open(f: &tempfile::NamedTempFile, len: u64) -> Stream {
        match Stream::open(f.reopen().unwrap(), len, &test_signer()) {
            Ok((_, s)) => s,
            Err(_) => panic!("does not open"),
        }
    }

    #[test]
    fn reads_in_parts_and_verifies_at_the_end() {
        let payload: Vec<u8> = (0..(9 * SEGMENT + 777)).map(|i| (i % 253) as u8).collect();
        let (f, len) = entry_file(&payload);
        // Whole, in one read.
        let mut s = open(&f, len);
        let mut all = vec![0; payload.len()];
        s.read(0, &mut all).unwrap();
        assert!(all == payload);
        // A prefix, a skip, then the rest: the same bytes where they were asked for.
        let mut s = open(&f, len);
        let mut pre = [0u8; 3];
        s.read(0, &mut pre).unwrap();
        let mut tail = vec![0; payload.len() - 2 * SEGMENT - 5];
        s.read((2 * SEGMENT + 5) as u64, &mut tail).unwrap();
        assert!(pre[..] == payload[..3] && tail[..] == payload[2 * SEGMENT + 5..]);
        // Going back past the head is refused.
        let mut s = open(&f, len);
        s.read(0, &mut vec![0; 3 * SEGMENT]).unwrap();
        assert!(s.read(SEGMENT as u64, &mut [0; 4]).is_err());
    }

    #[test]
    fn a_flipped_byte_fails_the_read_that_reaches_the_end() {
        let payload = vec![7u8; 6 * SEGMENT];
        let (f, len) = entry_file(&payload);
        for at in [len - 1, len / 2, HEAD as u64 + 3] {
            let mut bytes = std::fs::read(f.path()).unwrap();
            bytes[at as usize] ^= 1;
            let bad = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(bad.path(), &bytes).unwrap();
            let mut s = open(&bad, len);
            let mut first = vec![0; SEGMENT];
            s.read(0, &mut first).unwrap();
            let mut rest = vec![0; payload.len() - SEGMENT];
            assert!(s.read(SEGMENT as u64, &mut rest).is_err(), "flip at {at}");
            assert!(s.read(0, &mut [0; 1]).is_err(), "stays failed");
        }
    }

    #[test]
    fn windows_keep_the_ends_and_verify_the_whole() {
        let payload: Vec<u8> = (0..(40 * SEGMENT + 321)).map(|i| (i % 251) as u8).collect();
        let (f, len) = entry_file(&payload);
        for (head, tail) in [
            (SEGMENT, 4096),
            (3, 0),
            (0, 10),
            (SEGMENT + 7, 20 * SEGMENT),
        ] {
            let w = open(&f, len).read_windows(head, tail).unwrap();
            assert_eq!(w.len, payload.len() as u64);
            assert!(w.head[..] == payload[..head], "head {head}");
            assert!(w.tail[..] == payload[payload.len() - tail..], "tail {tail}");
        }
        // Windows that overlap: the tail starts where the head ends.
        let w = open(&f, len).read_windows(payload.len() - 5, 100).unwrap();
        assert!(
            w.head[..] == payload[..payload.len() - 5]
                && w.tail[..] == payload[payload.len() - 5..]
        );
        // A flipped byte anywhere, far from both windows too, fails.
        for at in [len / 2, len - 1, HEAD as u64 + 3, 17 * SEGMENT as u64] {
            let mut bytes = std::fs::read(f.path()).unwrap();
            bytes[at as usize] ^= 1;
            let bad = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(bad.path(), &bytes).unwrap();
            let r = open(&bad, len).read_windows(SEGMENT, 64);
            assert!(matches!(r, Err(ReadError::Corrupt(_))), "flip at {at}");
        }
    }
}
