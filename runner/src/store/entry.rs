//! The entry file format.
//!
//! ```text
//! devstash-entry 2 <checksum of everything after this line, 32 hex digits>\n
//! {"key":"…","created_ms":…,"ttl_secs":…,"site":"…",…}\n      <- Header, JSON, one line
//! <payload bytes>                                               <- postcard-encoded value
//! ```
//!
//! The first two lines are readable with `head -2`. The checksum covers the header and the
//! payload, so a flipped byte anywhere (even in the created time, which decides expiry) makes the
//! entry fail verification instead of returning a wrong or stale value. Format 2's checksum is
//! described in `store::checksum`; format 1 (a blake3 hex digest in the same place) is still read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::checksum;

/// Version of the entry format written by this runner.
pub const FORMAT_VERSION: u32 = 2;

/// Length of format 2's first line, newline included.
const FIRST_LINE_LEN: usize = MAGIC.len() + 3 + 32 + 1;

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
        is_expired(self.created_ms, ttl_secs, now)
    }
}

/// Whether a value stored at `created_ms` is past the given TTL at `now` (no TTL: never).
pub fn is_expired(created_ms: u64, ttl_secs: Option<u64>, now: SystemTime) -> bool {
    match ttl_secs {
        None => false,
        Some(ttl) => {
            let created = UNIX_EPOCH + Duration::from_millis(created_ms);
            let age = now.duration_since(created).unwrap_or_default();
            age > Duration::from_secs(ttl)
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
        let mut out = Vec::with_capacity(FIRST_LINE_LEN + json.len() + 1 + payload.len());
        // The first line has a fixed length: reserve it, then fill it in once the rest is hashed.
        out.resize(FIRST_LINE_LEN, b' ');
        out.extend_from_slice(&json);
        out.push(b'\n');
        out.extend_from_slice(payload);
        let first = format!(
            "{MAGIC} {FORMAT_VERSION} {:032x}\n",
            checksum::of(&out[FIRST_LINE_LEN..])
        );
        out[..FIRST_LINE_LEN].copy_from_slice(first.as_bytes());
        out
    }

    /// Decodes and verifies an entry file. The error says what is wrong, for the warning.
    pub fn decode(bytes: Vec<u8>) -> Result<Entry, String> {
        let frame = Frame::parse(&bytes)?;
        let rest = &bytes[frame.first_len..];
        frame.sum.verify(rest)?;
        let (header, json_len) = parse_header(rest)?;
        let payload_start = frame.first_len + json_len;
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

/// The first line of an entry: its format and checksum.
pub(crate) struct Frame {
    /// The checksum of everything after the first line.
    pub sum: Sum,
    /// Length of the first line, newline included.
    pub first_len: usize,
}

/// An entry's checksum, by format version.
pub(crate) enum Sum {
    /// Format 1: blake3, as hex.
    Blake3(String),
    /// Format 2: see `store::checksum`.
    Segmented(u128),
}

impl Frame {
    /// Parses the first line of `bytes` (which may hold only the start of the file).
    pub fn parse(bytes: &[u8]) -> Result<Frame, String> {
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
        let sum = parts.next().ok_or("no checksum")?;
        let sum = match version {
            "1" => Sum::Blake3(sum.to_string()),
            // Lowercase only, as written: any other spelling of the digits is damage.
            "2" if sum.len() == 32
                && sum.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
            {
                Sum::Segmented(u128::from_str_radix(sum, 16).map_err(|_| "unreadable checksum")?)
            }
            "2" => return Err("unreadable checksum".into()),
            other => {
                return Err(format!(
                    "entry format version {other}; this runner reads versions 1 and \
                     {FORMAT_VERSION}"
                ));
            }
        };
        if parts.next().is_some() {
            return Err("unreadable header".into());
        }
        Ok(Frame {
            sum,
            first_len: first_end + 1,
        })
    }
}

impl Sum {
    /// Checks the whole of what follows the first line.
    pub fn verify(&self, rest: &[u8]) -> Result<(), String> {
        let ok = match self {
            Sum::Blake3(hex) => blake3::hash(rest).to_hex().as_str() == hex,
            Sum::Segmented(sum) => checksum::of(rest) == *sum,
        };
        if ok {
            Ok(())
        } else {
            Err("checksum mismatch (corrupt or torn entry)".into())
        }
    }
}

/// Parses the JSON header line at the start of `rest`; returns it and its length, newline
/// included (where the payload starts).
pub(crate) fn parse_header(rest: &[u8]) -> Result<(Header, usize), String> {
    let json_end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("header not terminated")?;
    let header: Header =
        serde_json::from_slice(&rest[..json_end]).map_err(|e| format!("bad header: {e}"))?;
    Ok((header, json_end + 1))
}

/// A header for unit tests: key and payload length as given, the rest plain.
#[cfg(test)]
pub(crate) fn test_header(key: &str, payload_len: usize) -> Header {
    Header {
        key: key.into(),
        created_ms: 1,
        ttl_secs: None,
        site: "app::f".into(),
        location: "src/main.rs:1".into(),
        kind: "call".into(),
        value_type: "u8".into(),
        compute_ns: 1,
        payload_len: payload_len as u64,
        args_preview: None,
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
        // 0x20 also turns hex digits into their uppercase spelling.
        for i in 0..good.len() {
            for bit in [0x01, 0x20] {
                let mut bad = good.clone();
                bad[i] ^= bit;
                assert!(Entry::decode(bad).is_err(), "flip {bit:#x} at {i} accepted");
            }
        }
        for n in 0..good.len() {
            assert!(
                Entry::decode(good[..n].to_vec()).is_err(),
                "cut at {n} accepted"
            );
        }
    }

    #[test]
    fn reads_format_1() {
        let (h, p) = sample();
        let json = serde_json::to_vec(&h).unwrap();
        let mut rest = json.clone();
        rest.push(b'\n');
        rest.extend_from_slice(&p);
        let mut v1 = format!("devstash-entry 1 {}\n", blake3::hash(&rest).to_hex()).into_bytes();
        v1.extend_from_slice(&rest);
        let e = Entry::decode(v1.clone()).unwrap();
        assert_eq!((&e.header, e.payload()), (&h, &p[..]));
        let last = v1.len() - 1;
        v1[last] ^= 1;
        assert!(Entry::decode(v1).is_err());
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
