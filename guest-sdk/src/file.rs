//! Keying a call by a file it reads: [`FileKey`].

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::ser::{Serialize, SerializeStruct, Serializer};

/// A file, as an argument of a marked call: its path, and what decides whether a value computed
/// from it still holds, either its identity (size and modification time) or its content (size
/// and blake3 hash of its bytes).
///
/// A call that reads a file by its path is keyed by the path only: edit the file and the stored
/// value is still returned. Pass a `FileKey` instead, and read the file through
/// [`FileKey::path`] (or the key itself, which is `AsRef<Path>`): the stored value is returned
/// for that file as it was, and a changed file is a new call, computed again.
///
/// ```no_run
/// use devstash::{FileKey, stashed};
///
/// #[stashed(ttl = "7d")]
/// fn count_rows(file: FileKey) -> Result<usize, String> {
///     let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
///     Ok(text.lines().count())
/// }
///
/// fn main() -> std::io::Result<()> {
///     // Cheap: one `stat`. Computed again when the size or the modification time changes.
///     let rows = count_rows(FileKey::identity("/data/weather.csv")?);
///     // Reads and hashes the file: computed again when, and only when, its bytes change.
///     let same = count_rows(FileKey::content("/data/weather.csv")?);
///     println!("{rows:?} {same:?}");
///     Ok(())
/// }
/// ```
///
/// Run it with the file's directory granted: `devstash run --dir data::/data:ro app.wasm`.
/// The same works with `stash!(count_rows(FileKey::identity(path)?))`.
///
/// Which one:
///
/// - [`FileKey::identity`] costs one metadata call, whatever the file's size. It misses an edit
///   that keeps both the size and the modification time (a tool that restores modification
///   times, or two same-size writes within the file system's timestamp resolution), and
///   recomputes after a `touch` that changed nothing.
/// - [`FileKey::content`] reads the whole file every time it is made: worth it when the call
///   costs far more than a read, or when modification times are not to be trusted (files
///   copied, checked out or extracted again with new times).
///
/// Both hold the path as given: the same file under another path, or its directory granted
/// under another guest path, is another call. And both describe the file when the key is made:
/// make it right before the call, not long before.
///
/// What goes into the call's key (see [`crate::key`]): a struct `FileIdentity { path, size,
/// modified }` (`modified` in nanoseconds since the Unix epoch) or `FileContent { path, size,
/// blake3 }`, so the two kinds of key never match each other.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FileKey {
    path: PathBuf,
    size: u64,
    by: By,
}

/// What a [`FileKey`] stands for besides the path and size.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum By {
    /// The modification time, in nanoseconds since the Unix epoch (negative before it), or
    /// `None` where the platform gives none.
    Modified(Option<i128>),
    /// blake3 of the bytes.
    Content([u8; 32]),
}

impl FileKey {
    /// The file at `path` by its identity: the path, the size and the modification time, from
    /// one metadata call (the file itself is not read). Fails when there is no such file (or
    /// the program may not see it: grant its directory with `--dir`) or it is a directory.
    ///
    /// ```no_run
    /// let key = devstash::FileKey::identity("/data/weather.csv")?;
    /// println!("{} ({} bytes)", key.path().display(), key.size());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn identity(path: impl AsRef<Path>) -> io::Result<FileKey> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Err(not_a_file(path));
        }
        let modified = meta
            .modified()
            .ok()
            .map(|t| match t.duration_since(UNIX_EPOCH) {
                Ok(after) => after.as_nanos() as i128,
                Err(before) => -(before.duration().as_nanos() as i128),
            });
        Ok(FileKey {
            path: path.to_path_buf(),
            size: meta.len(),
            by: By::Modified(modified),
        })
    }

    /// The file at `path` by its content: the path, the size and the blake3 hash of its bytes,
    /// read once, now. Fails when the file cannot be read (or the program may not see it: grant
    /// its directory with `--dir`) or it is a directory.
    ///
    /// ```no_run
    /// let key = devstash::FileKey::content("/data/model.bin")?;
    /// assert_eq!(key.size(), std::fs::metadata("/data/model.bin")?.len());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn content(path: impl AsRef<Path>) -> io::Result<FileKey> {
        let path = path.as_ref();
        let mut file = std::fs::File::open(path)?;
        if !file.metadata()?.is_file() {
            return Err(not_a_file(path));
        }
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut size = 0u64;
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    size += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(FileKey {
            path: path.to_path_buf(),
            size,
            by: By::Content(*hasher.finalize().as_bytes()),
        })
    }

    /// The path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size in bytes when the key was made.
    pub fn size(&self) -> u64 {
        self.size
    }
}

fn not_a_file(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is not a file: a FileKey keys a call by one file",
            path.display()
        ),
    )
}

impl AsRef<Path> for FileKey {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// A path as key material: a string when it is UTF-8, else its bytes.
struct PathKey<'a>(&'a Path);

impl Serialize for PathKey<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.to_str() {
            Some(text) => s.serialize_str(text),
            None => s.serialize_bytes(self.0.as_os_str().as_encoded_bytes()),
        }
    }
}

/// The key material: `FileIdentity { path, size, modified }` or `FileContent { path, size,
/// blake3 }`.
impl Serialize for FileKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.by {
            By::Modified(modified) => {
                let mut st = s.serialize_struct("FileIdentity", 3)?;
                st.serialize_field("path", &PathKey(&self.path))?;
                st.serialize_field("size", &self.size)?;
                st.serialize_field("modified", modified)?;
                st.end()
            }
            By::Content(hash) => {
                let mut st = s.serialize_struct("FileContent", 3)?;
                st.serialize_field("path", &PathKey(&self.path))?;
                st.serialize_field("size", &self.size)?;
                st.serialize_field("blake3", serde_bytes::Bytes::new(hash))?;
                st.end()
            }
        }
    }
}

/// `FileKey::identity("/data/a.csv", 1234 bytes, modified 1700000000.000000001)` or
/// `FileKey::content("/data/a.csv", 1234 bytes, blake3 af1349b9…)`: what a stored entry's
/// arguments preview shows.
impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.by {
            By::Modified(Some(ns)) => write!(
                f,
                "FileKey::identity({:?}, {} bytes, modified {}.{:09})",
                self.path,
                self.size,
                ns.div_euclid(1_000_000_000),
                ns.rem_euclid(1_000_000_000)
            ),
            By::Modified(None) => {
                write!(f, "FileKey::identity({:?}, {} bytes)", self.path, self.size)
            }
            By::Content(hash) => {
                write!(
                    f,
                    "FileKey::content({:?}, {} bytes, blake3 ",
                    self.path, self.size
                )?;
                for b in &hash[..8] {
                    write!(f, "{b:02x}")?;
                }
                f.write_str("…)")
            }
        }
    }
}
