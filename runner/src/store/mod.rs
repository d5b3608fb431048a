//! The cache store: entry format, file names, and the tiers that hold entries.
//!
//! A [`Tier`] is anything that can look up and store entries by name and key: the local
//! directory ([`disk::DiskTier`]), the same with a team's remote behind it
//! ([`remote::RemoteTier`]), or a tape's sealed tier, behind the same trait, without touching the
//! host imports that call it.

pub mod disk;
pub mod entry;
pub mod listing;
pub mod names;
pub mod pack;
pub mod pattern;
pub mod remote;
pub mod sign;
pub mod stream;

pub use entry::{Entry, Header};

/// Where an entry lives: its file name and full key (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRef {
    /// File name, see [`names::entry_file_name`].
    pub name: String,
    /// Full key, hex.
    pub key_hex: String,
}

/// A stored value and what a run needs of its header.
#[derive(Debug)]
pub struct Found {
    /// When the value was stored, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// How long the call took when it ran, in nanoseconds.
    pub compute_ns: u64,
    /// The stored arguments preview.
    pub args_preview: Option<String>,
    /// The value.
    pub value: Value,
}

impl Found {
    /// A found entry file.
    pub fn entry(entry: Entry) -> Found {
        Found {
            created_ms: entry.header.created_ms,
            compute_ns: entry.header.compute_ns,
            args_preview: entry.header.args_preview.clone(),
            value: Value::Entry(Box::new(entry)),
        }
    }

    /// Whether the value is past the given TTL at `now` (no TTL: never).
    pub fn is_expired(&self, ttl_secs: Option<u64>, now: std::time::SystemTime) -> bool {
        entry::is_expired(self.created_ms, ttl_secs, now)
    }
}

/// A stored value's bytes: verified, or still in a large entry file and verified as they are
/// read (so that a restore reads them once, straight into their destination).
#[derive(Debug)]
pub enum Value {
    /// A verified entry, its payload in place (boxed: its header is large).
    Entry(Box<Entry>),
    /// Verified bytes.
    Bytes(Vec<u8>),
    /// A large payload, read and verified on demand (boxed: its checksum state is large).
    Stream(Box<stream::Stream>),
}

impl Value {
    /// The payload's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Value::Entry(e) => e.payload().len() as u64,
            Value::Bytes(b) => b.len() as u64,
            Value::Stream(s) => s.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole payload, verified. A stream is read into memory first (for the uses that need
    /// all of it at once: a recording, a stored HTTP response).
    pub fn verified(&mut self) -> Result<&[u8], String> {
        if let Value::Stream(s) = self {
            let len = usize::try_from(s.len()).map_err(|_| "too large for this machine")?;
            let mut all = Vec::new();
            all.try_reserve_exact(len)
                .map_err(|_| format!("a value of {len} bytes does not fit in memory"))?;
            all.resize(len, 0);
            s.read(0, &mut all).map_err(|e| match e {
                ReadError::Corrupt(why) => why,
                ReadError::OutOfRange => "read out of order".into(),
            })?;
            *self = Value::Bytes(all);
        }
        Ok(match self {
            Value::Entry(e) => e.payload(),
            Value::Bytes(b) => b,
            Value::Stream(_) => unreachable!("read above"),
        })
    }

    /// Copies bytes `offset..offset + dst.len()` of the payload into `dst`. A stream checks its
    /// checksum when its last byte is read: a corrupt value fails that read, and the bytes of
    /// earlier reads must then be thrown away.
    pub fn read(&mut self, offset: u64, dst: &mut [u8]) -> Result<(), ReadError> {
        let end = offset
            .checked_add(dst.len() as u64)
            .filter(|&e| e <= self.len())
            .ok_or(ReadError::OutOfRange)?;
        match self {
            Value::Entry(e) => dst.copy_from_slice(&e.payload()[offset as usize..end as usize]),
            Value::Bytes(b) => dst.copy_from_slice(&b[offset as usize..end as usize]),
            Value::Stream(s) => s.read(offset, dst)?,
        }
        Ok(())
    }
}

/// Why [`Value::read`] failed.
#[derive(Debug)]
pub enum ReadError {
    /// The range lies outside the value, or before what a stream has already read.
    OutOfRange,
    /// The entry failed verification, or could not be read; the reason is for the warning.
    Corrupt(String),
}

/// The outcome of a lookup.
#[derive(Debug)]
pub enum Lookup {
    /// A value (whether it has expired is for the caller to judge). A small one is verified; a
    /// large one is verified as it is read.
    Found(Found),
    /// No entry under that name.
    Missing,
    /// An entry exists but failed verification; the reason is for the warning.
    Corrupt(String),
}

/// A place entries are kept.
pub trait Tier: Send {
    /// Looks up and verifies an entry.
    fn get(&self, at: &EntryRef) -> Lookup;
    /// Stores an entry atomically: a reader sees the old entry, the new one, or none, never a
    /// part of one.
    fn put(&self, at: &EntryRef, header: &Header, payload: &[u8]) -> anyhow::Result<()>;
    /// Where the tier keeps its entries, for messages.
    fn location(&self) -> String;
    /// Ends the run's use of the tier (a remote's uploads are waited for) and returns the
    /// remote's counts, for a tier that has a remote.
    fn finish(&self) -> Option<remote::RemoteStats> {
        None
    }
}
