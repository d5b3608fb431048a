//! The wasmtime engine and the compiled-module cache.
//!
//! Compiling a guest with Cranelift costs ~100 ms; loading a precompiled module costs well under
//! one. Compiled modules are native code, so they are kept only in the per-user directory
//! (`DEVSTASH_HOME/modules/`, see [`crate::home`]), never in a project's cache directory, which
//! a guest with a write grant or a cloned repository could fill. Each is named by a hash of the
//! module's bytes and the engine's compatibility hash (wasmtime version, target, settings), and
//! signed with the user's key over its name and bytes: bytes that do not verify are never handed
//! to wasmtime, whoever wrote them. The signature lives in a seal file beside the module, with
//! the module file's identity when it last verified, so that a module is hashed once rather than
//! on every run (the Python runtime's is 240 MB), and is mapped rather than read.
//!
//! A warm run reads nothing of the module but its hash, and guest modules are large (a release
//! build with line tables is megabytes), so the module is mapped rather than copied, and hashed
//! with XXH3-128 rather than blake3: together about 2 ms less per run. The Python runtime's
//! `python.wasm` (99 MB) is not even hashed on a warm run: its hash is remembered by the file's
//! identity, signed like a seal (see [`ModuleCache::read_module_remembered`]).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cap_std::fs::Dir;
use wasmtime::{Config, Engine, Module};

use crate::home::Home;
use crate::store::disk::write_atomic;

/// Most compiled modules kept; the oldest go first. Every rebuild of a guest makes a new one.
const KEEP_MODULES: usize = 64;

/// Most bytes of compiled modules kept: the Python runtime's takes 240 MB, and each engine
/// setting (`--timeout`, `--fuel`) and devstash version compiles its own.
const KEEP_BYTES: u64 = 2 << 30;

/// Length of a compiled module's signature (kept in its seal file).
const SIGNATURE_LEN: usize = 32;

/// Builds the engine every command uses. Fuel and epoch checks cost time in every loop, so they
/// are compiled in only when a limit needs them (and name their own compiled modules).
pub fn engine(interruptible: bool, fuel: bool) -> Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(interruptible);
    config.consume_fuel(fuel);
    // One linear memory, as wasm32-wasip1 programs have: `--max-memory` counts one memory.
    config.wasm_multi_memory(false);
    // The CPython WASI runtime (`devstash run app.py`) is built with the exception-handling
    // proposal, whose `exnref` needs the GC types.
    config.wasm_exceptions(true);
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot set up the WebAssembly engine")
}

/// Where compiled modules are kept, and the key that signs them.
pub struct ModuleCache {
    dir: Dir,
    path: PathBuf,
    key: [u8; 32],
}

impl ModuleCache {
    /// The compiled-module folder of the per-user directory.
    pub fn new(home: &Home) -> Result<ModuleCache> {
        Ok(ModuleCache {
            dir: home.modules()?,
            path: home.path().join(crate::home::MODULES_DIR),
            key: home.keys().modules,
        })
    }

    /// Whether a compilation of the module with this hash is kept (it may still fail to verify).
    pub fn has(&self, engine: &Engine, module: u128) -> bool {
        self.dir.exists(compiled_name(engine, module))
    }

    /// [`read_module`], for a large module loaded on every run (the Python runtime's
    /// `python.wasm`, 99 MB, whose hash alone costs more than the rest of loading it): its hash
    /// is remembered by the file's identity (device, inode, size, modification and change
    /// time), under a MAC of the user's key, so that while the file is unchanged a run does not
    /// read it at all. Any write to the file, or another file put in its place, changes its
    /// identity, and the file is then hashed (and checked) again; a memo written by anyone
    /// without the key, or edited, vouches for nothing. Should the module still need compiling,
    /// [`ModuleFile::read_whole`] checks the bytes it compiles against the remembered hash.
    pub fn read_module_remembered(&self, path: &Path) -> Result<ModuleFile> {
        let name = hash_memo_name(path);
        if let Ok(meta) = std::fs::metadata(path)
            && meta.is_file()
            && let Ok(memo) = self.dir.read_to_string(&name)
            && let Some(hash) = self.remembered_hash(path, &identity(&meta), &memo)
        {
            return Ok(ModuleFile {
                path: path.to_path_buf(),
                bytes: Bytes::Unread,
                hash,
            });
        }
        let file = std::fs::File::open(path).with_context(|| {
            format!(
                "cannot read module {}: pass the path of a .wasm file",
                path.display()
            )
        })?;
        // The identity of the file opened, taken before its bytes are hashed: a write during
        // the hash moves its change time, so the memo then names an identity no run sees again.
        let meta = file.metadata()?;
        let module = map_module(path, &file, &meta)?;
        let memo = self.hash_memo(path, &identity(&meta), module.hash);
        if let Err(e) = write_atomic(&self.dir, &name, memo.as_bytes()) {
            tracing::debug!("cannot remember the hash of {}: {e}", path.display());
        }
        Ok(module)
    }

    /// A memo of a module file's hash: `<identity> <hash> <MAC>` on one line, the MAC (keyed
    /// with the user's key) over the path, the identity and the hash.
    fn hash_memo(&self, path: &Path, identity: &str, hash: u128) -> String {
        let text = format!("{identity} {hash:032x}");
        let mac = blake3::keyed_hash(
            &self.key,
            format!("module-hash {} {text}", path.display()).as_bytes(),
        );
        format!("{text} {}\n", mac.to_hex())
    }

    /// The hash a memo remembers for the file at `path` with this identity, if the memo is
    /// this user's, for this path, and for this identity.
    fn remembered_hash(&self, path: &Path, identity: &str, memo: &str) -> Option<u128> {
        let rest = memo.strip_prefix(identity)?.strip_prefix(' ')?;
        let hash = u128::from_str_radix(rest.get(..32)?, 16).ok()?;
        (self.hash_memo(path, identity, hash) == memo).then_some(hash)
    }

    /// The signature of a compiled module: over its file name (which names the module and the
    /// engine) and its bytes, so that a signed compilation of one module cannot stand in for
    /// another's.
    fn sign(&self, name: &str, code: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(code);
        *h.finalize().as_bytes()
    }

    /// The seal of a compiled module file whose bytes verified: its signature and the file's
    /// identity then, under a MAC of the user's key.
    fn seal(&self, name: &str, sig: &[u8; SIGNATURE_LEN], identity: &str) -> String {
        let text = format!("{} {identity}", hex::encode(sig));
        let mac = blake3::keyed_hash(&self.key, format!("seal {name} {text}").as_bytes());
        format!("{text} {}\n", mac.to_hex())
    }

    /// Opens `name` if its bytes are those its seal signs. A file whose identity (device,
    /// inode, size, change time) is the one sealed is not read again: any write to it moves its
    /// change time, which no user program can set back. Otherwise the bytes are hashed, and a
    /// file that verifies is sealed anew.
    fn open_verified(&self, name: &str) -> Option<std::fs::File> {
        let seal = match self.dir.read_to_string(seal_name(name)) {
            Ok(s) => s,
            // Not compiled yet, or a run was killed before it sealed the module: recompiled.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::debug!("cannot read the seal of {name}: {e}");
                return None;
            }
        };
        let sig: [u8; SIGNATURE_LEN] =
            hex::decode(seal.split(' ').next()?).ok()?.try_into().ok()?;
        let file = match crate::store::disk::open_regular(&self.dir, name) {
            Ok(f) => f.into_std(),
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::debug!("cannot open compiled module {name}: {e}");
                }
                return None;
            }
        };
        let identity = identity(&file.metadata().ok()?);
        if seal == self.seal(name, &sig, &identity) {
            return Some(file);
        }
        // Changed, copied or restored since it was sealed: judged by its bytes.
        // SAFETY: the file is in the user's private directory; a change under the map is
        // caught by the hash or, after it, by the next run's identity check.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        if blake3::Hash::from_bytes(self.sign(name, &map)) != blake3::Hash::from_bytes(sig) {
            self.tampered(name);
            return None;
        }
        drop(map);
        let _ = write_atomic(
            &self.dir,
            &seal_name(name),
            self.seal(name, &sig, &identity).as_bytes(),
        );
        Some(file)
    }

    fn tampered(&self, name: &str) {
        tracing::warn!(
            "compiled module {} does not verify (changed or written by someone else); ignoring \
             it and recompiling",
            self.path.join(name).display()
        );
    }

    fn save(&self, name: &str, module: &Module) -> Result<()> {
        let bytes = module.serialize()?;
        let sig = self.sign(name, &bytes);
        // The seal is written after the module, so that a run killed between the two leaves a
        // module without a seal: recompiled, never trusted.
        let ino = write_atomic(&self.dir, name, &bytes)?;
        let meta = crate::store::disk::open_regular(&self.dir, name)?
            .into_std()
            .metadata()?;
        // Another run replaced the file since: its seal is that run's to write.
        #[cfg(unix)]
        if std::os::unix::fs::MetadataExt::ino(&meta) != ino {
            return Ok(());
        }
        #[cfg(not(unix))]
        let _ = ino;
        let identity = identity(&meta);
        write_atomic(
            &self.dir,
            &seal_name(name),
            self.seal(name, &sig, &identity).as_bytes(),
        )?;
        self.prune();
        Ok(())
    }

    /// Removes the oldest compiled modules past [`KEEP_MODULES`], or past [`KEEP_BYTES`] in
    /// all (the newest is always kept).
    fn prune(&self) {
        let Ok(entries) = self.dir.entries() else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, u64, String)> = entries
            .filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name().into_string().ok()?;
                let meta = e.metadata().ok()?;
                (meta.is_file() && name.ends_with(".cwasm"))
                    .then(|| Some((meta.modified().ok()?.into_std(), meta.len(), name)))?
            })
            .collect();
        // Newest first: keep while both limits allow.
        files.sort_by(|a, b| b.cmp(a));
        let mut total = 0u64;
        for (i, (_, len, name)) in files.iter().enumerate() {
            total = total.saturating_add(*len);
            if i > 0 && (i >= KEEP_MODULES || total > KEEP_BYTES) {
                let _ = self.dir.remove_file(name);
                let _ = self.dir.remove_file(seal_name(name));
            }
        }
    }
}

/// A module file, checked, and mapped unless its hash was remembered.
pub struct ModuleFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its bytes (WAT text is accepted and kept as text).
    bytes: Bytes,
    /// XXH3-128 of the bytes, computed once (or remembered, see
    /// [`ModuleCache::read_module_remembered`]): it names the compilation and identifies the
    /// module on a tape.
    pub hash: u128,
}

/// Where a [`ModuleFile`]'s bytes are.
enum Bytes {
    /// Mapped from the file.
    Mapped(memmap2::Mmap),
    /// An empty file, which cannot be mapped.
    Empty,
    /// Not read: the hash was remembered. Read from the file only if it must be compiled.
    Unread,
}

impl ModuleFile {
    /// A private copy of the bytes, checked against the hash taken when the file was mapped
    /// (or remembered), for compiling: a file rewritten in between must not be compiled under
    /// the old hash.
    pub fn read_whole(&self) -> Result<Vec<u8>> {
        let bytes = match &self.bytes {
            Bytes::Mapped(map) => map.to_vec(),
            Bytes::Empty => Vec::new(),
            Bytes::Unread => std::fs::read(&self.path).with_context(|| {
                format!(
                    "cannot read module {}: pass the path of a .wasm file",
                    self.path.display()
                )
            })?,
        };
        if module_hash(&bytes) != self.hash {
            bail!(
                "{} changed while devstash was reading it: run again once it is written",
                self.path.display()
            );
        }
        Ok(bytes)
    }
}

/// The hash that names a module: XXH3-128 of its bytes.
pub fn module_hash(bytes: &[u8]) -> u128 {
    twox_hash::XxHash3_128::oneshot(bytes)
}

/// Maps a module and rejects what is not a core wasm module, with a line that says what to do.
pub fn read_module(path: &Path) -> Result<ModuleFile> {
    let cannot = || {
        format!(
            "cannot read module {}: pass the path of a .wasm file",
            path.display()
        )
    };
    let file = std::fs::File::open(path).with_context(cannot)?;
    let meta = file.metadata().with_context(cannot)?;
    map_module(path, &file, &meta)
}

/// [`read_module`] of a file already opened, whose metadata is `meta`.
fn map_module(path: &Path, file: &std::fs::File, meta: &std::fs::Metadata) -> Result<ModuleFile> {
    let cannot = || {
        format!(
            "cannot read module {}: pass the path of a .wasm file",
            path.display()
        )
    };
    let map = if meta.len() == 0 {
        None
    } else {
        // SAFETY: the mapping is read-only and private. Another process may still rewrite the
        // file under it; the hash is then of mixed bytes, which at worst names a compilation that
        // no run looks up, and `read_whole` checks the bytes it compiles against that hash.
        Some(unsafe { memmap2::Mmap::map(file) }.with_context(cannot)?)
    };
    let bytes: &[u8] = map.as_deref().unwrap_or_default();
    let shown = path.display();
    if bytes.starts_with(b"\0asm") {
        if bytes.len() < 8 {
            bail!("{shown} is cut short: rebuild it");
        }
        match bytes[4..8] {
            [1, 0, 0, 0] => {}
            [_, _, 1, 0] => bail!(
                "{shown} is a WebAssembly component; devstash runs core modules: build with \
                 `--target wasm32-wasip1`"
            ),
            _ => bail!("{shown} is a WebAssembly binary of an unknown version"),
        }
    } else if !looks_like_wat(path, bytes) {
        bail!(
            "{shown} is not a WebAssembly module: build your program with `cargo build \
             --target wasm32-wasip1` and pass target/wasm32-wasip1/<profile>/<name>.wasm"
        );
    }
    let hash = module_hash(bytes);
    Ok(ModuleFile {
        path: path.to_path_buf(),
        bytes: map.map_or(Bytes::Empty, Bytes::Mapped),
        hash,
    })
}

fn looks_like_wat(path: &Path, bytes: &[u8]) -> bool {
    path.extension().is_some_and(|e| e == "wat")
        || bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'(')
}

/// blake3 of the module's hash and the engine's compatibility hash: the compiled module's name.
fn compiled_name(engine: &Engine, module: u128) -> String {
    struct Feed(blake3::Hasher);
    impl Hasher for Feed {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut feed = Feed(blake3::Hasher::new());
    feed.0.update(b"devstash-module-4");
    feed.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    engine.precompile_compatibility_hash().hash(&mut feed);
    feed.0.update(&module.to_le_bytes());
    format!("{}.cwasm", &feed.0.finalize().to_hex()[..32])
}

/// Compiles a module, or loads its compilation from `cache` when one is kept there and its
/// signature verifies. Failing to use the cache is never an error: the module is compiled
/// instead (and a compilation that does not verify is reported and replaced).
pub fn load(engine: &Engine, file: &ModuleFile, cache: Option<&ModuleCache>) -> Result<Module> {
    load_with(engine, file.hash, cache, || compile(engine, file))
}

/// [`load`] for a module of devstash's own, given as text (the shim tapes call WASI through).
pub fn load_text(engine: &Engine, text: &str, cache: Option<&ModuleCache>) -> Result<Module> {
    load_with(engine, module_hash(text.as_bytes()), cache, || {
        Module::new(engine, text).map_err(anyhow::Error::from)
    })
}

fn load_with(
    engine: &Engine,
    hash: u128,
    cache: Option<&ModuleCache>,
    compile: impl FnOnce() -> Result<Module>,
) -> Result<Module> {
    let Some(cache) = cache else {
        return compile();
    };
    let name = compiled_name(engine, hash);
    if let Some(file) = cache.open_verified(&name) {
        // Mapped, not read: a large module (the Python runtime's is 240 MB) loads in
        // milliseconds and shares the page cache between runs.
        match unsafe { Module::deserialize_open_file(engine, file) } {
            Ok(m) => return Ok(m),
            Err(e) => tracing::debug!("compiled module {name} unusable: {e:#}"),
        }
    }
    let module = compile()?;
    if let Err(e) = cache.save(&name, &module) {
        tracing::debug!("could not keep the compiled module: {e:#}");
    }
    Ok(module)
}

/// The seal file of a compiled module.
fn seal_name(name: &str) -> String {
    format!("{name}.seal")
}

/// The file that remembers the hash of the module file at `path` (see
/// [`ModuleCache::read_module_remembered`]): one per path, rewritten when the file changes.
fn hash_memo_name(path: &Path) -> String {
    let path = blake3::hash(path.as_os_str().as_encoded_bytes());
    format!("{}.xxh3", &path.to_hex()[..32])
}

/// What identifies a file's current contents without reading them: any write to the file moves
/// its change time, which no user program can set back.
#[cfg(unix)]
pub(crate) fn identity(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{} {} {} {}.{} {}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

#[cfg(not(unix))]
pub(crate) fn identity(meta: &std::fs::Metadata) -> String {
    // No change time: every load hashes the file.
    format!("{} {:?} unsealed", meta.len(), std::time::SystemTime::now())
}

fn compile(engine: &Engine, file: &ModuleFile) -> Result<Module> {
    Module::new(engine, file.read_whole()?)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} is not a valid WebAssembly module", file.path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compiled_module_loads_only_with_its_own_signature() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::open_at(&tmp.path().join("home")).unwrap();
        let cache = ModuleCache::new(&home).unwrap();
        let engine = engine(false, false).unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("a.wat"), "(module (func (export \"_start\")))").unwrap();
        std::fs::write(dir.join("b.wat"), "(module (func (export \"_start\") nop))").unwrap();
        let a = read_module(&dir.join("a.wat")).unwrap();
        let b = read_module(&dir.join("b.wat")).unwrap();
        load(&engine, &a, Some(&cache)).unwrap();
        load(&engine, &b, Some(&cache)).unwrap();
        let (na, nb) = (
            compiled_name(&engine, a.hash),
            compiled_name(&engine, b.hash),
        );
        assert!(cache.open_verified(&na).is_some());
        let bytes_a = cache.dir.read(&na).unwrap();
        let bytes_b = cache.dir.read(&nb).unwrap();
        // Another module's compilation under this name, with or without its seal: refused.
        cache.dir.write(&na, &bytes_b).unwrap();
        assert!(cache.open_verified(&na).is_none());
        let seal_b = cache.dir.read(seal_name(&nb)).unwrap();
        cache.dir.write(seal_name(&na), &seal_b).unwrap();
        assert!(cache.open_verified(&na).is_none());
        // A flipped byte, in place: refused although its seal is the right one.
        load(&engine, &a, Some(&cache)).unwrap();
        assert!(cache.open_verified(&na).is_some());
        let mut flipped = bytes_a.clone();
        flipped[bytes_a.len() / 2] ^= 1;
        std::fs::write(dir.join("home/modules").join(&na), &flipped).unwrap();
        assert!(cache.open_verified(&na).is_none());
        // The right bytes restored (a new identity): verified by hashing, and sealed again.
        std::fs::write(dir.join("home/modules").join(&na), &bytes_a).unwrap();
        let seal_before = cache.dir.read(seal_name(&na)).unwrap();
        assert!(cache.open_verified(&na).is_some());
        assert_ne!(cache.dir.read(seal_name(&na)).unwrap(), seal_before);
        // Another user's key verifies nothing of this user's.
        let other = Home::open_at(&tmp.path().join("other")).unwrap();
        let other = ModuleCache::new(&other).unwrap();
        other.dir.write(&na, &bytes_a).unwrap();
        other
            .dir
            .write(seal_name(&na), cache.dir.read(seal_name(&na)).unwrap())
            .unwrap();
        assert!(other.open_verified(&na).is_none());
        // A module without a seal (a run killed after writing it) is recompiled.
        cache.dir.remove_file(seal_name(&na)).unwrap();
        assert!(cache.open_verified(&na).is_none());
        load(&engine, &a, Some(&cache)).unwrap();
        assert!(cache.open_verified(&na).is_some());
    }

    /// The memo of `path`'s hash in `cache`, if one was written.
    fn hash_memo_of(cache: &ModuleCache, path: &Path) -> Option<String> {
        cache.dir.read_to_string(hash_memo_name(path)).ok()
    }

    #[test]
    fn a_remembered_module_hash_stands_only_for_the_same_file_under_the_same_key() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::open_at(&tmp.path().join("home")).unwrap();
        let cache = ModuleCache::new(&home).unwrap();
        let path = tmp.path().join("m.wat");
        let text = "(module (func (export \"_start\") nop))";
        std::fs::write(&path, text).unwrap();
        let hash = module_hash(text.as_bytes());

        // First read: hashed, and remembered.
        let first = cache.read_module_remembered(&path).unwrap();
        assert_eq!(first.hash, hash);
        assert!(matches!(first.bytes, Bytes::Mapped(_)));
        assert!(hash_memo_of(&cache, &path).is_some());
        // Unchanged: not read at all, and still compiles from the file's bytes.
        let warm = cache.read_module_remembered(&path).unwrap();
        assert_eq!(warm.hash, hash);
        assert!(matches!(warm.bytes, Bytes::Unread));
        assert_eq!(warm.read_whole().unwrap(), text.as_bytes());

        // Other bytes of the same size written in place, the modification time set back: the
        // change time moved, so the file is hashed again.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let other = "(module (func (export \"_start\") ret))";
        assert_eq!(other.len(), text.len());
        std::fs::write(&path, other).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let changed = cache.read_module_remembered(&path).unwrap();
        assert_eq!(changed.hash, module_hash(other.as_bytes()));
        assert!(matches!(changed.bytes, Bytes::Mapped(_)));
        assert!(matches!(
            cache.read_module_remembered(&path).unwrap().bytes,
            Bytes::Unread
        ));

        // Another file renamed into place, its modification time forged: a new inode.
        let copy = tmp.path().join("copy.wat");
        std::fs::write(&copy, text).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::rename(&copy, &path).unwrap();
        let swapped = cache.read_module_remembered(&path).unwrap();
        assert_eq!(swapped.hash, hash);
        assert!(matches!(swapped.bytes, Bytes::Mapped(_)));

        // A memo whose hash was edited is not trusted, and is replaced by a true one.
        let memo = hash_memo_of(&cache, &path).unwrap();
        let edited = memo.replacen(&format!("{hash:032x}"), &format!("{:032x}", hash ^ 1), 1);
        assert_ne!(edited, memo);
        cache.dir.write(hash_memo_name(&path), &edited).unwrap();
        let read = cache.read_module_remembered(&path).unwrap();
        assert_eq!(read.hash, hash);
        assert!(matches!(read.bytes, Bytes::Mapped(_)));
        assert_eq!(hash_memo_of(&cache, &path).unwrap(), memo);

        // A memo made with another user's key (for this very file) vouches for nothing.
        let other_home = Home::open_at(&tmp.path().join("other")).unwrap();
        let other_cache = ModuleCache::new(&other_home).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let forged = other_cache.hash_memo(&path, &identity(&meta), hash ^ 1);
        cache.dir.write(hash_memo_name(&path), &forged).unwrap();
        let read = cache.read_module_remembered(&path).unwrap();
        assert_eq!(read.hash, hash);
        assert!(matches!(read.bytes, Bytes::Mapped(_)));
        // Nor does this user's memo of another path.
        let elsewhere = cache.hash_memo(&copy, &identity(&meta), hash ^ 1);
        cache.dir.write(hash_memo_name(&path), &elsewhere).unwrap();
        assert_eq!(cache.read_module_remembered(&path).unwrap().hash, hash);
    }

    #[test]
    fn an_unread_module_is_compiled_only_if_its_bytes_match_the_remembered_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.wat");
        std::fs::write(&path, "(module)").unwrap();
        let file = ModuleFile {
            path: path.clone(),
            bytes: Bytes::Unread,
            hash: module_hash(b"(module)") ^ 1,
        };
        let err = file.read_whole().unwrap_err().to_string();
        assert!(
            err.contains("changed while devstash was reading it"),
            "{err}"
        );
        let file = ModuleFile {
            hash: module_hash(b"(module)"),
            ..file
        };
        assert_eq!(file.read_whole().unwrap(), b"(module)");
    }

    #[test]
    fn old_compiled_modules_go_past_the_count_or_the_size() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::open_at(&tmp.path().join("home")).unwrap();
        let cache = ModuleCache::new(&home).unwrap();
        let dir = tmp.path().join("home/modules");
        let base = std::time::SystemTime::now() - std::time::Duration::from_secs(10_000);
        // Sparse files: their length counts, and they take no disk.
        let make = |name: &str, len: u64, age: u64| {
            let f = std::fs::File::create(dir.join(name)).unwrap();
            f.set_len(len).unwrap();
            f.set_modified(base - std::time::Duration::from_secs(age))
                .unwrap();
            std::fs::write(dir.join(seal_name(name)), b"seal").unwrap();
        };
        make("newest.cwasm", 1 << 30, 0);
        make("middle.cwasm", 900 << 20, 10);
        make("oldest.cwasm", 300 << 20, 20);
        cache.prune();
        let left = |name: &str| dir.join(name).exists();
        assert!(left("newest.cwasm") && left("middle.cwasm"));
        assert!(!left("oldest.cwasm") && !left("oldest.cwasm.seal"));
        // The newest stays whatever its size.
        make("huge.cwasm", 3 << 30, 0);
        std::fs::File::options()
            .write(true)
            .open(dir.join("huge.cwasm"))
            .unwrap()
            .set_modified(std::time::SystemTime::now())
            .unwrap();
        cache.prune();
        assert!(left("huge.cwasm"));
        assert!(!left("newest.cwasm") && !left("middle.cwasm"));
        // Past the count, small ones go too.
        std::fs::remove_file(dir.join("huge.cwasm")).unwrap();
        for i in 0..KEEP_MODULES + 3 {
            make(&format!("m{i:03}.cwasm"), 1, i as u64 + 100);
        }
        cache.prune();
        let kept = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".cwasm")
            })
            .count();
        assert_eq!(kept, KEEP_MODULES);
        assert!(left("m000.cwasm") && left("m063.cwasm") && !left("m064.cwasm"));
    }
}
