//! Signatures of entries and pack records: blake3 in keyed mode, under a key derived from the
//! user's key in the per-user directory (see `home`), which no guest and no repository can read.
//! A file anyone else wrote (a guest with a write grant over the cache, a cloned repository,
//! another user) does not verify, so its bytes never become a value.
//!
//! A large value is signed and verified in 1 MiB segments (see [`Segments`]), each hashed as a
//! blake3 subtree while its bytes are still in the cache from being read into place, on as many
//! threads as read them; the segments' chaining values are then merged the way blake3's tree
//! merges them, so the signature is exactly `blake3::keyed_hash(key, bytes)` whatever the size.

use blake3::hazmat::{ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root};

/// Bytes per segment: a power of two, so that every segment is a whole blake3 subtree.
pub const SEGMENT: usize = 1 << 20;

/// Length of a signature.
pub const SIG_LEN: usize = 32;

/// Signs and verifies with one user's key.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
    id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.id)
    }
}

impl Signer {
    /// A signer with `key`, named by `id` (16 hex digits that reveal nothing of the key).
    pub fn new(key: [u8; 32], id: &str) -> Signer {
        Signer {
            key,
            id: id.to_string(),
        }
    }

    /// The key's id, written beside each signature so that an entry signed by another key is
    /// told apart from a damaged one.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The signature of `bytes` (the same, whether computed here or a segment at a time).
    pub fn sign(&self, bytes: &[u8]) -> [u8; SIG_LEN] {
        *blake3::keyed_hash(&self.key, bytes).as_bytes()
    }

    /// Whether `sig` is the signature of `bytes` (compared in constant time).
    pub fn verify(&self, bytes: &[u8], sig: &[u8; SIG_LEN]) -> bool {
        blake3::Hash::from_bytes(self.sign(bytes)) == blake3::Hash::from_bytes(*sig)
    }

    /// A signature computed over bytes fed in pieces.
    pub fn segments(&self) -> Segments {
        Segments {
            key: self.key,
            cvs: Vec::new(),
            current: None,
            fill: 0,
            total: 0,
        }
    }

    /// The chaining value of segment `index` (whole, or the last one), for [`Segments::push`]:
    /// what a reader thread computes for the segment it read.
    pub fn segment(&self, index: u64, bytes: &[u8]) -> ChainingValue {
        blake3::Hasher::new_keyed(&self.key)
            .set_input_offset(index * SEGMENT as u64)
            .update(bytes)
            .finalize_non_root()
    }
}

/// The signature of a byte stream fed in pieces of any size, a segment at a time.
pub struct Segments {
    key: [u8; 32],
    /// Chaining values of the segments closed so far.
    cvs: Vec<ChainingValue>,
    /// The segment being filled (also the whole input, while it fits in one).
    current: Option<blake3::Hasher>,
    fill: usize,
    total: u64,
}

impl Segments {
    fn hasher(&self) -> blake3::Hasher {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.set_input_offset(self.cvs.len() as u64 * SEGMENT as u64);
        h
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            // A full segment that is followed by more bytes is closed into a chaining value;
            // the last one stays open, since it is the root if the input ends there.
            if self.fill == SEGMENT {
                self.close();
            }
            let take = (SEGMENT - self.fill).min(bytes.len());
            if self.current.is_none() {
                self.current = Some(self.hasher());
            }
            if let Some(h) = self.current.as_mut() {
                h.update(&bytes[..take]);
            }
            self.fill += take;
            self.total += take as u64;
            bytes = &bytes[take..];
        }
    }

    /// Bytes fed so far, modulo [`SEGMENT`]: zero when the stream is at a segment boundary
    /// (after at least one whole segment, or none).
    pub fn fill(&self) -> usize {
        self.fill % SEGMENT
    }

    /// Bytes fed so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Index of the next segment to be hashed.
    pub fn next_segment(&self) -> u64 {
        self.cvs.len() as u64 + u64::from(self.fill == SEGMENT)
    }

    /// Adds the chaining values of whole segments hashed elsewhere (see [`Signer::segment`]),
    /// in order. The stream must be at a segment boundary, and longer than one segment in all
    /// (a stream of one segment is the root of its tree, hashed by [`Segments::update`]).
    pub fn push(&mut self, cvs: &[ChainingValue]) {
        debug_assert_eq!(self.fill(), 0, "segments pushed mid-segment");
        if self.fill == SEGMENT {
            self.close();
        }
        self.cvs.extend_from_slice(cvs);
        self.total += (cvs.len() * SEGMENT) as u64;
    }

    fn close(&mut self) {
        let h = self.current.take().unwrap_or_else(|| self.hasher());
        self.cvs.push(h.finalize_non_root());
        self.fill = 0;
    }

    /// The signature of everything fed.
    pub fn finish(mut self) -> [u8; SIG_LEN] {
        if self.cvs.is_empty() {
            // One segment or less: the plain root hash.
            let h = self
                .current
                .take()
                .unwrap_or_else(|| blake3::Hasher::new_keyed(&self.key));
            return *h.finalize().as_bytes();
        }
        if self.fill > 0 || self.current.is_some() {
            self.close();
        }
        let total = self.total;
        *root(&self.key, &self.cvs, total).as_bytes()
    }
}

/// The root of the tree over the segments' chaining values (at least two segments), as blake3
/// shapes it: the left subtree is the largest power-of-two number of chunks short of the whole,
/// which is always a whole number of segments here.
fn root(key: &[u8; 32], cvs: &[ChainingValue], len: u64) -> blake3::Hash {
    let left = left_subtree_len(len);
    let split = (left / SEGMENT as u64) as usize;
    let l = subtree(key, &cvs[..split], left);
    let r = subtree(key, &cvs[split..], len - left);
    blake3::hazmat::merge_subtrees_root(&l, &r, Mode::KeyedHash(key))
}

fn subtree(key: &[u8; 32], cvs: &[ChainingValue], len: u64) -> ChainingValue {
    if cvs.len() == 1 {
        return cvs[0];
    }
    let left = left_subtree_len(len);
    let split = (left / SEGMENT as u64) as usize;
    let l = subtree(key, &cvs[..split], left);
    let r = subtree(key, &cvs[split..], len - left);
    merge_subtrees_non_root(&l, &r, Mode::KeyedHash(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segmented_signatures_are_plain_keyed_blake3() {
        let signer = Signer::new([7; 32], "k");
        let data: Vec<u8> = (0..(5 * SEGMENT + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        for n in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            2 * SEGMENT,
            3 * SEGMENT + 5,
            4 * SEGMENT,
            data.len(),
        ] {
            let bytes = &data[..n];
            let want = *blake3::keyed_hash(&[7; 32], bytes).as_bytes();
            // In odd pieces.
            let mut s = signer.segments();
            for piece in bytes.chunks(SEGMENT / 3 + 17) {
                s.update(piece);
            }
            assert_eq!(s.finish(), want, "{n} bytes in pieces");
            // Whole segments hashed apart and pushed, then the rest.
            let whole = n / SEGMENT;
            let pushable = if n % SEGMENT == 0 {
                whole.saturating_sub(1)
            } else {
                whole
            };
            let mut s = signer.segments();
            let cvs: Vec<ChainingValue> = (0..pushable)
                .map(|i| signer.segment(i as u64, &bytes[i * SEGMENT..(i + 1) * SEGMENT]))
                .collect();
            s.push(&cvs);
            s.update(&bytes[pushable * SEGMENT..]);
            assert_eq!(s.finish(), want, "{n} bytes pushed");
        }
    }

    #[test]
    fn another_key_or_any_change_fails() {
        let a = Signer::new([1; 32], "a");
        let b = Signer::new([2; 32], "b");
        let data = vec![3u8; 3 * SEGMENT];
        let sig = a.sign(&data);
        assert!(a.verify(&data, &sig));
        assert!(!b.verify(&data, &sig));
        let mut bad = data.clone();
        bad[2 * SEGMENT + 9] ^= 1;
        assert!(!a.verify(&bad, &sig));
        assert!(!a.verify(&data[..data.len() - 1], &sig));
    }
}
