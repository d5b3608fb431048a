//! The entry file format.
//!
//! ```text
//! devstash-entry 1 <blake3 hex of everything after this line>\n
//! {"key":"…","created_ms":…,"ttl_secs":…,"site":"…",…}\n      <- Header, JSON, one line
//! <payload bytes>                                               <- postcard-encoded value
//! ```
//!
//! The first two lines are readable with `head -2`. The checksum covers the header and the
//! payload, so a flipped byte anywhere (even in the created time, which decides expiry) makes the
//! entry fail verification instead of returning a wrong or stale value.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Version of the entry format written by this runner.
pub const FORMAT_VERSION: u32 = 1;

const MAGIC: &str = "devstash-entry";

/// Metadata stored in front of every value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The full key, hex.
    pub key: String,
    /// When the value was stored, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The TTL the marker had when the value was stored, in seconds.
    pub ttl_secs: Option<u64>,
    /// Site identity, `module::callee`.
    pub site: String,
    /// Source location of the marker, `file:line`.
    pub location: String,
    /// `call` (`stash!`) or `fn` (`#[stashed]`).
    pub kind: String,
    /// Rust type name of the value.
    pub value_type: String,
    /// How long the call took when it ran, in nanoseconds.
    pub compute_ns: u64,
    /// Length of the payload in bytes.
    pub payload_len: u64,
    /// Debug preview of the arguments, if the SDK could make one.
    pub args_preview: Option<String>,
}

impl Header {
    /// When the value was stored.
    pub fn created(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.created_ms)
    }

    /// Whether the value is past the given TTL at `now` (no TTL: never).
    pub fn is_expired(&self, ttl_secs: Option<u64>, now: SystemTime) -> bool {
        match ttl_secs {
            None => false,
            Some(ttl) => {
                let age = now.duration_since(self.created()).unwrap_or_default();
                age > Duration::from_secs(ttl)
            }
        }
    }
}

/// A verified entry: its header and the file's bytes, with the payload's offset (kept in place
/// so that restoring a large value costs no extra copy).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry's metadata.
    pub header: Header,
    bytes: Vec<u8>,
    payload_start: usize,
}

impl Entry {
    /// The stored value's bytes.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.payload_start..]
    }

    /// Encodes an entry file.
    pub fn encode(header: &Header, payload: &[u8]) -> Vec<u8> {
        let json = serde_json::to_vec(header).expect("a header always serializes");
        let mut hasher = blake3::Hasher::new();
        hasher.update(&json);
        hasher.update(b"\n");
        hasher.update(payload);
        let first = format!("{MAGIC} {FORMAT_VERSION} {}\n", hasher.finalize().to_hex());
        let mut out = Vec::with_capacity(first.len() + json.len() + 1 + payload.len());
        out.extend_from_slice(first.as_bytes());
        out.extend_from_slice(&json);
        out.push(b'\n');
        out.extend_from_slice(payload);
        out
    }

    /// Decodes and verifies an entry file. The error says what is wrong, for the warning.
    pub fn decode(bytes: Vec<u8>) -> Result<Entry, String> {
        let first_end = bytes
            .iter()
            .take(128)
            .position(|&b| b == b'\n')
            .ok_or("no header line (not an entry file, or cut short)")?;
        let first = std::str::from_utf8(&bytes[..first_end]).map_err(|_| "unreadable header")?;
        let mut parts = first.split(' ');
        if parts.next() != Some(MAGIC) {
            return Err("not a devstash entry (bad magic)".into());
        }
        let version = parts.next().ok_or("no format version")?;
        if version != FORMAT_VERSION.to_string() {
            return Err(format!(
                "entry format version {version}; this runner reads version {FORMAT_VERSION}"
            ));
        }
        let sum = parts.next().ok_or("no checksum")?;
        let rest = &bytes[first_end + 1..];
        if blake3::hash(rest).to_hex().as_str() != sum {
            return Err("checksum mismatch (corrupt or torn entry)".into());
        }
        let json_end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("header not terminated")?;
        let header: Header =
            serde_json::from_slice(&rest[..json_end]).map_err(|e| format!("bad header: {e}"))?;
        let payload_start = first_end + 1 + json_end + 1;
        if (bytes.len() - payload_start) as u64 != header.payload_len {
            return Err("payload length does not match the header".into());
        }
        Ok(Entry {
            header,
            bytes,
            payload_start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Header, Vec<u8>) {
        let payload = b"\x14hello".to_vec();
        let header = Header {
            key: "ab".repeat(32),
            created_ms: 1_700_000_000_000,
            ttl_secs: Some(60),
            site: "app::f".into(),
            location: "src/main.rs:3".into(),
            kind: "call".into(),
            value_type: "u64".into(),
            compute_ns: 5,
            payload_len: payload.len() as u64,
            args_preview: Some("(1,)".into()),
        };
        (header, payload)
    }

    #[test]
    fn round_trip() {
        let (h, p) = sample();
        let e = Entry::decode(Entry::encode(&h, &p)).unwrap();
        assert_eq!(e.header, h);
        assert_eq!(e.payload(), &p[..]);
    }

    #[test]
    fn every_flip_and_truncation_is_rejected() {
        let (h, p) = sample();
        let good = Entry::encode(&h, &p);
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(Entry::decode(bad).is_err(), "flip at {i} accepted");
        }
        for n in 0..good.len() {
            assert!(
                Entry::decode(good[..n].to_vec()).is_err(),
                "cut at {n} accepted"
            );
        }
    }

    #[test]
    fn expiry_is_judged_from_created_time() {
        let (h, _) = sample();
        let created = h.created();
        assert!(!h.is_expired(Some(60), created + Duration::from_secs(60)));
        assert!(h.is_expired(Some(60), created + Duration::from_secs(61)));
        assert!(!h.is_expired(None, created + Duration::from_secs(1 << 40)));
    }
}
