//! The per-user devstash directory: `DEVSTASH_HOME`, by default the user's local data folder
//! (`$XDG_DATA_HOME/devstash`, usually `~/.local/share/devstash`, on Linux).
//!
//! It holds what must never come from a project folder, a guest or another user:
//!
//! - `key`: 32 random bytes (hex), made on first use and readable by the user only. Every entry
//!   and pack record devstash writes is signed with a key derived from it, and so is every
//!   compiled module; a file that does not verify under it is never used. Guests never see it:
//!   a `--dir` grant that would reach this directory is refused.
//! - `modules/`: compiled modules (native code), named by a hash of the module and the engine,
//!   each with a signature over its name and bytes.
//!
//! The directory must belong to the user and be writable by nobody else, as `ssh` asks of
//! `~/.ssh`: devstash refuses to start otherwise.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::store::sign::Signer;

/// The environment variable that names the per-user directory.
pub const HOME_VAR: &str = "DEVSTASH_HOME";

/// File name of the master key inside the directory.
const KEY_FILE: &str = "key";

/// Folder of compiled modules inside the directory.
pub const MODULES_DIR: &str = "modules";

/// The folder of `DEVSTASH_HOME` that holds what Python guests are given (see `python`).
pub const PYTHON_DIR: &str = "python";

/// Keys derived from the user's master key, one per use, so that no signature made for one
/// purpose is ever valid for another.
#[derive(Clone)]
pub struct Keys {
    /// Signs entry files and pack records.
    pub entries: [u8; 32],
    /// Signs compiled modules.
    pub modules: [u8; 32],
    /// Hashes secrets a guest puts in its keys (`secret_hash`).
    pub secrets: [u8; 32],
    /// Hashes secret header values in stored responses' keys. Apart from [`Keys::secrets`]: a
    /// guest can have any bytes hashed with that one, and must not be able to test guesses of a
    /// header against a stored response's key.
    pub headers: [u8; 32],
    /// Hashes the values of environment variables a tape keeps redacted, so that a replay can
    /// check a value it is given against the recorded one.
    pub env: [u8; 32],
    /// Names the key without revealing it (16 hex digits), so that an entry signed by another
    /// user or machine can be told apart from a damaged one.
    pub id: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({})", self.id)
    }
}

impl Keys {
    /// The keys derived from a master key.
    pub fn derive(master: &[u8; 32]) -> Keys {
        let id = blake3::derive_key("devstash 2026-11 key id", master);
        Keys {
            entries: blake3::derive_key("devstash 2026-11 entry signatures", master),
            modules: blake3::derive_key("devstash 2026-11 compiled module signatures", master),
            secrets: blake3::derive_key("devstash 2026-11 secret hashes", master),
            headers: blake3::derive_key("devstash 2026-11 secret header hashes", master),
            env: blake3::derive_key("devstash 2026-11 tape environment hashes", master),
            id: crate::host::hex(&id[..8]),
        }
    }
}

/// The per-user directory, opened and checked.
pub struct Home {
    path: PathBuf,
    dir: Dir,
    keys: Keys,
}

impl Home {
    /// Where the directory is: `DEVSTASH_HOME`, else the user's local data folder.
    pub fn locate() -> Result<PathBuf> {
        match std::env::var_os(HOME_VAR) {
            Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
            _ => dirs::data_local_dir().map(|d| d.join("devstash")).context(
                "cannot tell where your per-user devstash directory goes (no home \
                     directory): set DEVSTASH_HOME to a directory only you can write",
            ),
        }
    }

    /// Opens the directory (creating it, readable by the user only, when missing), checks that
    /// nobody else can write it, and loads (or makes) the key.
    pub fn open() -> Result<Home> {
        let path = Home::locate()?;
        Home::open_at(&path)
    }

    /// [`Home::open`] at a given path.
    pub fn open_at(path: &Path) -> Result<Home> {
        create_private_dir(path)?;
        let dir = Dir::open_ambient_dir(path, ambient_authority())
            .with_context(|| format!("cannot open {HOME_VAR} {}", path.display()))?;
        check_private(path)?;
        let master = load_or_make_key(&dir, path)?;
        Ok(Home {
            path: path.to_path_buf(),
            dir,
            keys: Keys::derive(&master),
        })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keys derived from the user's master key.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// What signs and verifies this user's entries.
    pub fn signer(&self) -> Signer {
        Signer::new(self.keys.entries, &self.keys.id)
    }

    /// The compiled-module folder, created when missing.
    pub fn modules(&self) -> Result<Dir> {
        self.subdir(MODULES_DIR)
    }

    /// The folder of the Python runtime's checks and of the folders laid out for Python guests
    /// (see `python`), created when missing, with its path.
    pub fn python(&self) -> Result<(Dir, PathBuf)> {
        Ok((self.subdir(PYTHON_DIR)?, self.path.join(PYTHON_DIR)))
    }

    /// A folder of this directory, created when missing; never a link.
    fn subdir(&self, name: &str) -> Result<Dir> {
        match self.dir.create_dir(name) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create {}", self.path.join(name).display()));
            }
        }
        let meta = self.dir.symlink_metadata(name)?;
        if !meta.is_dir() {
            bail!(
                "{} is not a directory: remove it, devstash makes it again",
                self.path.join(name).display()
            );
        }
        self.dir
            .open_dir(name)
            .with_context(|| format!("cannot open {}", self.path.join(name).display()))
    }

    /// An error if a directory granted to a guest (`--dir`) would reach this directory: the
    /// grant covers it, or lies inside it. Read-only grants too, since the key must stay
    /// secret.
    pub fn check_grant(&self, grant: &Path) -> Result<()> {
        let home = canonical(&self.path);
        let granted = canonical(grant);
        if home.starts_with(&granted) || granted.starts_with(&home) {
            bail!(
                "--dir {}: this grant would give the guest devstash's per-user directory \
                 ({HOME_VAR}, {}), which holds your signing key and compiled native code; grant a \
                 narrower directory, or set {HOME_VAR} elsewhere",
                grant.display(),
                self.path.display()
            );
        }
        Ok(())
    }
}

/// The path with symlinks and `..` resolved, as far as it exists (a grant of a missing
/// directory fails later, when it is opened).
fn canonical(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Creates `path` (and its parents) if missing; the directory itself readable by the user only.
fn create_private_dir(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .with_context(|| format!("cannot create {HOME_VAR} {}", path.display()))
}

/// An error unless the directory belongs to the user and nobody else may write it.
fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot read {HOME_VAR} {}", path.display()))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            bail!(
                "{HOME_VAR} {} belongs to another user (uid {}): devstash keeps your signing key \
                 there; set {HOME_VAR} to a directory of your own",
                path.display(),
                meta.uid()
            );
        }
        if meta.mode() & 0o022 != 0 {
            bail!(
                "{HOME_VAR} {} can be written by other users (mode {:o}): devstash keeps your \
                 signing key and compiled native code there; run `chmod go-w {}`",
                path.display(),
                meta.mode() & 0o777,
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Reads the master key, or makes one. Two runs that start at once agree on one key: each writes
/// its own candidate to a temporary file and links it into place, and the loser reads the
/// winner's.
fn load_or_make_key(dir: &Dir, path: &Path) -> Result<[u8; 32]> {
    let shown = path.join(KEY_FILE);
    if let Some(key) = read_key(dir, &shown)? {
        return Ok(key);
    }
    let mut master = [0u8; 32];
    getrandom::fill(&mut master)
        .map_err(|e| anyhow::anyhow!("cannot make a signing key: no randomness ({e})"))?;
    let temp = format!(".key-{}", std::process::id());
    let mut opts = cap_std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    cap_std::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let written = (|| -> std::io::Result<()> {
        let mut f = dir.open_with(&temp, &opts)?;
        f.write_all(format!("{}\n", crate::host::hex(&master)).as_bytes())?;
        f.sync_all()?;
        drop(f);
        dir.hard_link(&temp, dir, KEY_FILE)
    })();
    let _ = dir.remove_file(&temp);
    match written {
        Ok(()) => Ok(master),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read_key(dir, &shown)?
            .with_context(|| format!("{} appeared but cannot be read", shown.display())),
        Err(e) => Err(e).with_context(|| format!("cannot write {}", shown.display())),
    }
}

/// The key in `key`, if the file exists; an error if it is not one.
fn read_key(dir: &Dir, shown: &Path) -> Result<Option<[u8; 32]>> {
    let file = match dir.open(KEY_FILE) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", shown.display())),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        bail!("{} is not a file", shown.display());
    }
    #[cfg(unix)]
    {
        use cap_std::fs::{MetadataExt, PermissionsExt};
        // SAFETY: geteuid has no preconditions and cannot fail.
        if meta.uid() != unsafe { libc::geteuid() } {
            bail!(
                "{} belongs to another user: devstash uses only a key of yours; remove it",
                shown.display()
            );
        }
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "{} can be read by other users: run `chmod 600 {}`",
                shown.display(),
                shown.display()
            );
        }
    }
    let mut text = String::new();
    file.take(200)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", shown.display()))?;
    match blake3::Hash::from_hex(text.trim()) {
        Ok(key) => Ok(Some(*key.as_bytes())),
        Err(_) => bail!(
            "{} is not a devstash key (64 hex digits): remove it to make a new one (entries \
             signed with the old one are then recomputed)",
            shown.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_private_key_once_and_reads_it_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("home");
        let a = Home::open_at(&path).unwrap();
        let b = Home::open_at(&path).unwrap();
        assert_eq!(a.keys().entries, b.keys().entries);
        assert_ne!(a.keys().entries, a.keys().modules);
        assert_eq!(a.keys().id.len(), 16);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        // Another directory is another user: another key.
        let c = Home::open_at(&tmp.path().join("other")).unwrap();
        assert_ne!(a.keys().entries, c.keys().entries);
        assert_ne!(a.keys().id, c.keys().id);
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_directory_others_can_write_and_a_bad_key() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("home");
        Home::open_at(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Home::open_at(&path).err().unwrap().to_string();
        assert!(e.contains("written by other users"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(path.join(KEY_FILE), "not a key").unwrap();
        std::fs::set_permissions(path.join(KEY_FILE), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let e = Home::open_at(&path).err().unwrap().to_string();
        assert!(e.contains("is not a devstash key"), "{e}");
    }

    #[test]
    fn a_guests_secret_hashes_never_equal_a_secret_headers_hash() {
        use crate::host::{Policy, StashHost};
        use crate::net::NetPolicy;
        use crate::store::disk::DiskTier;
        use crate::store::entry::test_signer;
        // A guest may ask for the keyed hash of any bytes; if that were the hash a stored
        // response's key holds for a secret header, a guest that can read the cache could test
        // guesses of a weak token against it offline.
        let tmp = tempfile::tempdir().unwrap();
        let keys = Keys::derive(&[7; 32]);
        let mut host = StashHost::new(
            Box::new(DiskTier::new(tmp.path(), test_signer())),
            Policy::default(),
        )
        .with_secret_keys(keys.secrets, keys.headers)
        .with_net(NetPolicy::default());
        let guest = host.secret_hash(b"Bearer hunter2").unwrap();
        let header = *blake3::keyed_hash(&host.net_secret_key(), b"Bearer hunter2").as_bytes();
        assert_ne!(guest, header);
        // The header key survives a later policy, and is the user's, not a default.
        assert_eq!(host.net_secret_key(), keys.headers);
    }

    #[test]
    fn grants_that_reach_the_directory_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("data").join("devstash");
        let home = Home::open_at(&path).unwrap();
        for bad in [
            path.clone(),
            tmp.path().join("data"),
            tmp.path().to_path_buf(),
            path.join("modules"),
            path.join("modules/../.."),
            tmp.path().join("data/./devstash/"),
        ] {
            assert!(home.check_grant(&bad).is_err(), "{}", bad.display());
        }
        std::fs::create_dir(tmp.path().join("project")).unwrap();
        for good in [tmp.path().join("project"), tmp.path().join("data2")] {
            home.check_grant(&good).unwrap();
        }
        #[cfg(unix)]
        {
            // A symlink to the directory is the directory.
            let link = tmp.path().join("project/link");
            std::os::unix::fs::symlink(&path, &link).unwrap();
            assert!(home.check_grant(&link).is_err());
        }
    }
}
