//! The checksum of entry format 2 and of pack records.
//!
//! XXH3-128 over the concatenated XXH3-128 digests (16 bytes each, little endian) of the input's
//! [`SEGMENT`]-byte segments (the last one may be shorter). Segmenting costs one more tiny hash,
//! and lets a large value be verified in parallel, each segment while its bytes are still in the
//! cache from being read into place (see `store::stream`). XXH3 is made for exactly this: it
//! catches torn writes and flipped bits at memory speed; the store guards against accidents, not
//! against someone who can already write the cache directory.

use twox_hash::XxHash3_128;

/// Bytes per segment.
pub const SEGMENT: usize = 1 << 20;

/// The digest of one segment.
pub fn segment(bytes: &[u8]) -> [u8; 16] {
    XxHash3_128::oneshot(bytes).to_le_bytes()
}

/// The checksum of `bytes`.
pub fn of(bytes: &[u8]) -> u128 {
    // One segment (every small entry, every pack record): no streaming state to allocate.
    if !bytes.is_empty() && bytes.len() <= SEGMENT {
        return XxHash3_128::oneshot(&segment(bytes));
    }
    let mut s = Segments::default();
    s.update(bytes);
    s.finish()
}

/// The checksum of a byte stream fed in pieces of any size.
#[derive(Default)]
pub struct Segments {
    digests: Vec<u8>,
    // The segment being filled; created on first use (it allocates).
    current: Option<XxHash3_128>,
    fill: usize,
}

impl Segments {
    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.fill == 0 && bytes.len() >= SEGMENT {
                self.digests.extend_from_slice(&segment(&bytes[..SEGMENT]));
                bytes = &bytes[SEGMENT..];
                continue;
            }
            let take = (SEGMENT - self.fill).min(bytes.len());
            self.current
                .get_or_insert_with(XxHash3_128::new)
                .write(&bytes[..take]);
            self.fill += take;
            bytes = &bytes[take..];
            if self.fill == SEGMENT {
                self.close();
            }
        }
    }

    /// Bytes fed so far, modulo [`SEGMENT`]: zero when the stream is at a segment boundary.
    pub fn fill(&self) -> usize {
        self.fill
    }

    /// Adds the digests of whole segments hashed elsewhere (see [`segment`]). The stream must be
    /// at a segment boundary.
    pub fn push(&mut self, digests: &[[u8; 16]]) {
        debug_assert_eq!(self.fill, 0, "digests pushed mid-segment");
        for d in digests {
            self.digests.extend_from_slice(d);
        }
    }

    fn close(&mut self) {
        if let Some(h) = self.current.take() {
            self.digests
                .extend_from_slice(&h.finish_128().to_le_bytes());
        }
        self.fill = 0;
    }

    /// The checksum of everything fed.
    pub fn finish(mut self) -> u128 {
        if self.fill > 0 {
            self.close();
        }
        XxHash3_128::oneshot(&self.digests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_and_pushed_segments_agree_with_one_pass() {
        let data: Vec<u8> = (0..(3 * SEGMENT + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let whole = of(&data);
        // Odd piece sizes, across segment boundaries.
        let mut s = Segments::default();
        for piece in data.chunks(SEGMENT / 3 + 17) {
            s.update(piece);
        }
        assert_eq!(s.finish(), whole);
        // Whole segments hashed apart and pushed, then the tail.
        let mut s = Segments::default();
        let digests: Vec<[u8; 16]> = data.chunks_exact(SEGMENT).map(segment).collect();
        s.push(&digests);
        s.update(&data[3 * SEGMENT..]);
        assert_eq!(s.finish(), whole);
        // Any change is seen.
        let mut bad = data.clone();
        bad[2 * SEGMENT + 5] ^= 1;
        assert_ne!(of(&bad), whole);
        // A segment boundary is part of the checksum, not only the bytes' order.
        assert_ne!(of(&data[..SEGMENT]), of(&data[..SEGMENT + 1]));
        // The one-segment shortcut is the same function.
        for n in [0, 1, 100, SEGMENT - 1, SEGMENT] {
            let mut s = Segments::default();
            s.update(&data[..n]);
            assert_eq!(of(&data[..n]), s.finish(), "{n} bytes");
        }
    }
}
