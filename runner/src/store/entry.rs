//! The entry file format.
//!
//! ```text
//! devstash-entry 3 <key id, 16 hex digits> <signature of everything after this line, 64 hex>\n
//! {"key":"…","created_ms":…,"ttl_secs":…,"site":"…",…}\n      <- Header, JSON, one line
//! <payload bytes>                                               <- postcard-encoded value
//! ```
//!
//! The first two lines are readable with `head -2`. The signature (see `store::sign`) covers the
//! header and the payload, under the user's key: a flipped byte anywhere (even in the created
//! time, which decides expiry), a file cut short, and a file written by anyone without the key (a
//! guest with a write grant over the cache, a cloned repository, another user) all fail
//! verification and are recomputed, never returned. The key id says whose key signed it, so that
//! another user's entry is reported as such rather than as damage. Entries of formats 1 and 2
//! (unsigned checksums) are treated as unverifiable and recomputed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::sign::{SIG_LEN, Signer};

/// Version of the entry format written by this runner.
pub const FORMAT_VERSION: u32 = 3;

/// Length of format 3's first line, newline included.
pub(crate) const FIRST_LINE_LEN: usize = MAGIC.len() + 3 + 16 + 1 + 2 * SIG_LEN + 1;

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
    /// Site identity: the callee as the compiler resolved it (`app::load`, `app::Client::fetch`),
    /// or `http::<host>` for a stored response.
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
    /// XXH3-128 (hex) of the module that stored the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
}

impl Header {
    /// When the value was stored (the latest time the clock can show, for a time past it).
    pub fn created(&self) -> SystemTime {
        UNIX_EPOCH
            .checked_add(Duration::from_millis(self.created_ms))
            .or_else(|| UNIX_EPOCH.checked_add(Duration::from_secs(253_402_300_799)))
            .unwrap_or(UNIX_EPOCH)
    }

    /// Whether the value is past the given TTL at `now` (no TTL: never).
    pub fn is_expired(&self, ttl_secs: Option<u64>, now: SystemTime) -> bool {
        is_expired(self.created_ms, ttl_secs, now)
    }
}

/// Whether a value stored at `created_ms` is past the given TTL at `now` (no TTL: never). Times
/// past what the clock can show (a TTL of `u64::MAX` seconds) never expire.
pub fn is_expired(created_ms: u64, ttl_secs: Option<u64>, now: SystemTime) -> bool {
    match ttl_secs {
        None => false,
        Some(ttl) => {
            let Some(created) = UNIX_EPOCH.checked_add(Duration::from_millis(created_ms)) else {
                return false;
            };
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

    /// Encodes an entry file, signed by `signer`.
    pub fn encode(header: &Header, payload: &[u8], signer: &Signer) -> Vec<u8> {
        let json = serde_json::to_vec(header).expect("a header always serializes");
        let mut out = Vec::with_capacity(FIRST_LINE_LEN + json.len() + 1 + payload.len());
        // The first line has a fixed length: reserve it, then fill it in once the rest is signed.
        out.resize(FIRST_LINE_LEN, b' ');
        out.extend_from_slice(&json);
        out.push(b'\n');
        out.extend_from_slice(payload);
        let sig = signer.sign(&out[FIRST_LINE_LEN..]);
        let first = format!(
            "{MAGIC} {FORMAT_VERSION} {} {}\n",
            signer.id(),
            blake3::Hash::from_bytes(sig).to_hex()
        );
        out[..FIRST_LINE_LEN].copy_from_slice(first.as_bytes());
        out
    }

    /// Decodes and verifies an entry file. The error says what is wrong, for the warning.
    pub fn decode(bytes: Vec<u8>, signer: &Signer) -> Result<Entry, String> {
        let frame = Frame::parse(&bytes, signer)?;
        let rest = &bytes[frame.first_len..];
        if !signer.verify(rest, &frame.sig) {
            return Err(BAD_SIGNATURE.into());
        }
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

/// Why an entry whose signature does not match failed.
pub const BAD_SIGNATURE: &str =
    "signature does not verify (changed, cut short, or written without this user's key)";

/// The first line of an entry: its format and signature.
pub(crate) struct Frame {
    /// The signature of everything after the first line.
    pub sig: [u8; SIG_LEN],
    /// Length of the first line, newline included.
    pub first_len: usize,
}

impl Frame {
    /// Parses the first line of `bytes` (which may hold only the start of the file), checking
    /// that it was signed by `signer`'s key.
    pub fn parse(bytes: &[u8], signer: &Signer) -> Result<Frame, String> {
        let first_end = bytes
            .iter()
            .take(160)
            .position(|&b| b == b'\n')
            .ok_or("no header line (not an entry file, or cut short)")?;
        let first = std::str::from_utf8(&bytes[..first_end]).map_err(|_| "unreadable header")?;
        let mut parts = first.split(' ');
        if parts.next() != Some(MAGIC) {
            return Err("not a devstash entry (bad magic)".into());
        }
        match parts.next().ok_or("no format version")? {
            "3" => {}
            "1" | "2" => {
                return Err(
                    "not signed: written by an older devstash, whose entries cannot be told \
                     from forged ones"
                        .into(),
                );
            }
            other => {
                let shown: String = other.chars().take(8).collect();
                return Err(format!(
                    "entry format version {shown}; this runner reads version {FORMAT_VERSION}"
                ));
            }
        }
        let id = parts.next().ok_or("no key id")?;
        let hex = parts.next().ok_or("no signature")?;
        if parts.next().is_some() || id.len() != 16 || !is_lower_hex(id) {
            return Err("unreadable header".into());
        }
        if id != signer.id() {
            return Err(format!(
                "signed with another devstash key ({id}, not this user's {}): written by \
                 another user or on another machine",
                signer.id()
            ));
        }
        // Lowercase only, as written: any other spelling of the digits is damage.
        if hex.len() != 2 * SIG_LEN || !is_lower_hex(hex) {
            return Err("unreadable signature".into());
        }
        let sig = blake3::Hash::from_hex(hex).map_err(|_| "unreadable signature")?;
        Ok(Frame {
            sig: *sig.as_bytes(),
            first_len: first_end + 1,
        })
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
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

/// The JSON header on the second line of an entry file's first bytes, parsed without checking
/// anything: what a report of a damaged entry shows as written (it may be wrong).
pub fn unverified_header(bytes: &[u8]) -> Option<Header> {
    let first_end = bytes.iter().position(|&b| b == b'\n')?;
    let rest = &bytes[first_end + 1..];
    let json_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    serde_json::from_slice(&rest[..json_end]).ok()
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
        writer: None,
    }
}

/// A signer for unit tests.
#[cfg(test)]
pub(crate) fn test_signer() -> Signer {
    Signer::new([9; 32], "0123456789abcdef")
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
            writer: Some("cd".repeat(16)),
        };
        (header, payload)
    }

    #[test]
    fn round_trip() {
        let (h, p) = sample();
        let s = test_signer();
        let e = Entry::decode(Entry::encode(&h, &p, &s), &s).unwrap();
        assert_eq!(e.header, h);
        assert_eq!(e.payload(), &p[..]);
    }

    #[test]
    fn every_flip_and_truncation_is_rejected() {
        let (h, p) = sample();
        let s = test_signer();
        let good = Entry::encode(&h, &p, &s);
        // 0x20 also turns hex digits into their uppercase spelling.
        for i in 0..good.len() {
            for bit in [0x01, 0x20] {
                let mut bad = good.clone();
                bad[i] ^= bit;
                assert!(
                    Entry::decode(bad, &s).is_err(),
                    "flip {bit:#x} at {i} accepted"
                );
            }
        }
        for n in 0..good.len() {
            assert!(
                Entry::decode(good[..n].to_vec(), &s).is_err(),
                "cut at {n} accepted"
            );
        }
    }

    #[test]
    fn another_users_entries_and_unsigned_formats_are_refused() {
        let (h, p) = sample();
        let mine = test_signer();
        let theirs = Signer::new([1; 32], "fedcba9876543210");
        let e = Entry::decode(Entry::encode(&h, &p, &theirs), &mine).unwrap_err();
        assert!(e.contains("another devstash key"), "{e}");
        // Their id on my key's signature: still refused, by the signature.
        let forged = Signer::new([1; 32], mine.id());
        let e = Entry::decode(Entry::encode(&h, &p, &forged), &mine).unwrap_err();
        assert_eq!(e, BAD_SIGNATURE);
        // Format 2, with a checksum anyone can compute.
        let json = serde_json::to_vec(&h).unwrap();
        let mut rest = json.clone();
        rest.push(b'\n');
        rest.extend_from_slice(&p);
        let mut v2 = format!("devstash-entry 2 {:032x}\n", 7u128).into_bytes();
        v2.extend_from_slice(&rest);
        let e = Entry::decode(v2, &mine).unwrap_err();
        assert!(e.contains("not signed"), "{e}");
    }

    #[test]
    fn expiry_is_judged_from_created_time() {
        let (h, _) = sample();
        let created = h.created();
        assert!(!h.is_expired(Some(60), created + Duration::from_secs(60)));
        assert!(h.is_expired(Some(60), created + Duration::from_secs(61)));
        assert!(!h.is_expired(None, created + Duration::from_secs(1 << 40)));
        // Extremes a guest or a file can declare: no overflow.
        let far = Header {
            created_ms: u64::MAX,
            ..h.clone()
        };
        assert!(!far.is_expired(Some(u64::MAX), SystemTime::now()));
        let _ = far.created();
        assert!(!h.is_expired(Some(u64::MAX), SystemTime::now()));
    }
}
