//! The cache store: entry format, file names, and the tiers that hold entries.
//!
//! A [`Tier`] is anything that can look up and store entries by name and key: the local
//! directory ([`disk::DiskTier`]) today; a remote tier or a tape plugs in behind the same trait
//! without touching the host imports that call it.

pub mod disk;
pub mod entry;
pub mod listing;
pub mod names;
pub mod pack;
pub mod pattern;

pub use entry::{Entry, Header};

/// Where an entry lives: its file name and full key (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRef {
    /// File name, see [`names::entry_file_name`].
    pub name: String,
    /// Full key, hex.
    pub key_hex: String,
}

/// The outcome of a lookup.
#[derive(Debug)]
pub enum Lookup {
    /// A verified entry (whether it has expired is for the caller to judge).
    Found(Entry),
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
}
