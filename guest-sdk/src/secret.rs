//! [`Secret`]: a value that decides a call's result but must never be written down (an API key
//! held by a client struct, a password in a connection string).

use serde::{Serialize, Serializer};

/// A secret value. In a marked call's key it counts by a keyed hash that the runner computes
/// under a key of its user (which no guest can read), never by its value; its `Debug` output is
/// `Secret(<redacted>)`, so it reaches no arguments preview, entry, tape or divergence report.
///
/// ```ignore
/// #[derive(serde::Serialize)]
/// struct Client { base: String, key: devstash::Secret<String> }
///
/// impl Client {
///     #[devstash::stashed(ttl = "1w")]
///     fn ask(&self, question: &str) -> Result<String, devstash::http::Error> {
///         // ... self.key.expose() goes into the Authorization header ...
///     }
/// }
/// ```
///
/// Two runs with the same secret give the same key (a second run hits); another secret gives
/// another key. A recording keeps the hashes (not the secret) and a replay hands them back, so a
/// tape replays without the secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The secret itself, to use it (never to print it).
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The secret, unwrapped.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Secret<T> {
        Secret(value)
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Serialized as the runner's keyed hash of the value's canonical encoding (32 bytes).
impl<T: Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = crate::key::encode(&self.0).map_err(serde::ser::Error::custom)?;
        let hash = hash(&bytes).map_err(serde::ser::Error::custom)?;
        serializer.serialize_newtype_struct("devstash::Secret", serde_bytes::Bytes::new(&hash))
    }
}

#[cfg(target_arch = "wasm32")]
fn hash(bytes: &[u8]) -> Result<[u8; 32], &'static str> {
    let mut out = [0u8; 32];
    // SAFETY: both buffers are alive for the call, and `out` has room for 32 bytes.
    let status = unsafe { crate::abi::secret_hash(bytes.as_ptr(), bytes.len(), out.as_mut_ptr()) };
    // The runner answers or traps; should it ever refuse, the key cannot be made (the call runs
    // uncached) rather than different secrets sharing one.
    if status < 0 {
        return Err("the runner gave no hash for a devstash::Secret");
    }
    Ok(out)
}

/// Natively the markers are plain calls and nothing is stored: any hash will do.
#[cfg(not(target_arch = "wasm32"))]
fn hash(bytes: &[u8]) -> Result<[u8; 32], &'static str> {
    Ok(blake3::derive_key("devstash native secret", bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_its_value() {
        let s = Secret::new(String::from("sk-live-123"));
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", (1, &s)), "(1, Secret(<redacted>))");
        let bytes = crate::key::encode(&s).unwrap();
        assert!(!bytes.windows(3).any(|w| w == b"sk-"));
        assert_ne!(bytes, crate::key::encode(&Secret::new("other")).unwrap());
        assert_eq!(s.expose(), "sk-live-123");
    }
}
