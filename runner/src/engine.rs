//! The wasmtime engine and the compiled-module cache.
//!
//! Compiling a guest with Cranelift costs ~100 ms; loading a precompiled module costs well under
//! one. Compiled modules are kept under `<cache dir>/modules/`, named by a hash of the module's
//! bytes and the engine's compatibility hash (wasmtime version, target, settings), so a changed
//! module or runner never loads a stale compilation.
//!
//! A warm run reads nothing of the module but its hash, and guest modules are large (a release
//! build with line tables is megabytes), so the module is mapped rather than copied, and hashed
//! with XXH3-128 rather than blake3: together about 2 ms less per run.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use wasmtime::{Config, Engine, Module};

use crate::cli::LimitArgs;
use crate::store::disk::{create_cache_dir, write_atomic};

/// Folder of the cache directory that holds compiled modules.
pub const MODULES_DIR: &str = "modules";

/// Builds the engine every command uses. Fuel and epoch checks cost time in every loop, so they
/// are compiled in only when a limit needs them (and name their own compiled modules).
pub fn engine(limits: &LimitArgs) -> Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(limits.timeout.is_some());
    config.consume_fuel(limits.fuel.is_some());
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot set up the WebAssembly engine")
}

/// A module file, mapped and checked.
pub struct ModuleFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its bytes (WAT text is accepted and kept as text), mapped from the file; `None` for an
    /// empty file, which cannot be mapped.
    map: Option<memmap2::Mmap>,
    /// XXH3-128 of the bytes, computed once: it names the compilation and identifies the module
    /// on a tape.
    pub hash: u128,
}

impl ModuleFile {
    /// The module's bytes, as mapped. Only their hash may be trusted: the file can change
    /// under the mapping (see [`ModuleFile::read_whole`]).
    fn mapped(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }

    /// A private copy of the bytes, checked against the hash taken when the file was mapped,
    /// for compiling: a file rewritten in between must not be compiled under the old hash.
    pub fn read_whole(&self) -> Result<Vec<u8>> {
        let bytes = self.mapped().to_vec();
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
    let len = file.metadata().with_context(cannot)?.len();
    let map = if len == 0 {
        None
    } else {
        // SAFETY: the mapping is read-only and private. Another process may still rewrite the
        // file under it; the hash is then of mixed bytes, which at worst names a compilation that
        // no run looks up, and `read_whole` checks the bytes it compiles against that hash.
        Some(unsafe { memmap2::Mmap::map(&file) }.with_context(cannot)?)
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
        map,
        hash,
    })
}

fn looks_like_wat(path: &Path, bytes: &[u8]) -> bool {
    path.extension().is_some_and(|e| e == "wat")
        || bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'(')
}

/// blake3 of the module's hash and the engine's compatibility hash: the compiled module's name.
fn compiled_key(engine: &Engine, module: u128) -> String {
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
    feed.0.update(b"devstash-module-2");
    feed.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    engine.precompile_compatibility_hash().hash(&mut feed);
    feed.0.update(&module.to_le_bytes());
    feed.0.finalize().to_hex()[..32].to_string()
}

/// Compiles a module, or loads its compilation from `<cache_dir>/modules/` when present and
/// intact. Failing to use the cache is never an error: the module is compiled instead.
pub fn load(engine: &Engine, file: &ModuleFile, cache_dir: Option<&Path>) -> Result<Module> {
    let Some(cache_dir) = cache_dir else {
        return compile(engine, file);
    };
    let name = format!("{}.cwasm", compiled_key(engine, file.hash));
    let modules = cache_dir.join(MODULES_DIR);
    if let Ok(dir) = Dir::open_ambient_dir(&modules, ambient_authority())
        && let Ok(bytes) = dir.read(&name)
    {
        match verified(&bytes) {
            // SAFETY: the bytes are a compilation this runner wrote (checksum verified) for
            // this exact engine configuration (part of the name).
            Some(code) => match unsafe { Module::deserialize(engine, code) } {
                Ok(m) => return Ok(m),
                Err(e) => tracing::debug!("compiled module {name} unusable: {e:#}"),
            },
            None => tracing::warn!(
                "{}: checksum mismatch; recompiling",
                modules.join(&name).display()
            ),
        }
    }
    let module = compile(engine, file)?;
    if let Err(e) = save(&modules, cache_dir, &name, &module) {
        tracing::debug!("could not keep the compiled module: {e:#}");
    }
    Ok(module)
}

fn compile(engine: &Engine, file: &ModuleFile) -> Result<Module> {
    Module::new(engine, file.read_whole()?)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} is not a valid WebAssembly module", file.path.display()))
}

/// The compiled code if its trailing checksum (XXH3-128, little endian) matches.
fn verified(bytes: &[u8]) -> Option<&[u8]> {
    let split = bytes.len().checked_sub(16)?;
    let (code, sum) = bytes.split_at(split);
    (module_hash(code).to_le_bytes() == sum).then_some(code)
}

fn save(modules: &Path, cache_dir: &Path, name: &str, module: &Module) -> Result<()> {
    if !cache_dir.exists() {
        create_cache_dir(cache_dir)?;
    }
    std::fs::create_dir_all(modules)?;
    let dir = Dir::open_ambient_dir(modules, ambient_authority())?;
    let mut bytes = module.serialize()?;
    let sum = module_hash(&bytes).to_le_bytes();
    bytes.extend_from_slice(&sum);
    write_atomic(&dir, name, &bytes)?;
    Ok(())
}
