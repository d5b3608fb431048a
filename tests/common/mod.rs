//! Shared by the end-to-end tests: builds guests for wasm32-wasip1 and drives the real
//! `devstash` binary in a scratch directory.

#![allow(dead_code)]

pub mod python;
pub mod server;
pub mod servers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Target directory for guests built by the tests. It is separate from the one `cargo test`
/// holds locked while it runs.
pub fn guest_target_dir() -> PathBuf {
    workspace().join("target").join("guests")
}

/// Builds (once per test binary) every guest package of the workspace for wasm32-wasip1 and
/// returns the path of `name`'s module.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cmd = wasm_build(&workspace(), &guest_target_dir());
        for pkg in [
            "quickstart",
            "parse",
            "numeric",
            "api",
            "llm",
            "probe",
            "replay",
            "tapeprobe",
            "fsprobe",
        ] {
            cmd.args(["-p", pkg]);
        }
        let out = cmd.output().expect("cargo runs");
        assert!(
            out.status.success(),
            "building the guests failed (is the wasm32-wasip1 target installed? \
             `rustup target add wasm32-wasip1`):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let path = guest_target_dir()
        .join("wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    assert!(path.exists(), "no guest module at {}", path.display());
    path
}

/// Builds a standalone guest crate (outside the workspace) and returns its module. Give every
/// crate its own package name: the module's path is derived from it.
pub fn build_crate(dir: &Path, name: &str) -> PathBuf {
    let out = try_build_crate(dir);
    assert!(
        out.status.success(),
        "building {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    guest_target_dir()
        .join("standalone/wasm32-wasip1/release")
        .join(format!("{name}.wasm"))
}

/// Builds a standalone crate for wasm32-wasip1 and returns cargo's output, success or not.
pub fn try_build_crate(dir: &Path) -> Output {
    // Builds share one target directory (so dependencies compile once); one at a time.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    wasm_build(dir, &guest_target_dir().join("standalone"))
        .output()
        .expect("cargo runs")
}

/// `cargo build --release --target wasm32-wasip1` in `dir`, into `target_dir`.
fn wasm_build(dir: &Path, target_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip1",
            "--target-dir",
        ])
        .arg(target_dir);
    cmd
}

/// Every `devstash` import, declared for hand-written WAT guests: `$reg`, `$get`, `$take`,
/// `$read`, `$put`, `$forget`, `$log`, `$http`, `$begin`, `$end`, `$secret`.
pub const DEVSTASH_IMPORTS_WAT: &str = r#"
    (import "devstash" "site_register" (func $reg (param i32 i32) (result i32)))
    (import "devstash" "stash_get" (func $get (param i32 i32 i32 i32 i32) (result i32)))
    (import "devstash" "stash_take" (func $take (param i32 i32) (result i32)))
    (import "devstash" "stash_read" (func $read (param i64 i32 i32) (result i32)))
    (import "devstash" "stash_put" (func $put (param i64 i32 i32 i32 i32) (result i32)))
    (import "devstash" "stash_forget" (func $forget (param i64) (result i32)))
    (import "devstash" "log" (func $log (param i32 i32 i32) (result i32)))
    (import "devstash" "http_request" (func $http (param i32 i32 i32) (result i32)))
    (import "devstash" "stash_begin" (func $begin (param i64) (result i32)))
    (import "devstash" "stash_end" (func $end (param i64) (result i32)))
    (import "devstash" "secret_hash" (func $secret (param i32 i32 i32) (result i32)))"#;

/// A scratch directory in which `devstash` runs (so `./.devstash_cache` lands inside it), with
/// its own per-user devstash directory (`DEVSTASH_HOME`: the signing key and compiled modules)
/// outside it, so that tests never touch the real one and a grant of the scratch directory does
/// not cover it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub home: tempfile::TempDir,
}

/// What one `devstash` invocation produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Asserts that two runs are the same, byte for byte: exit code, stdout and stderr.
pub fn assert_same(what: &str, a: &Run, b: &Run) {
    assert_eq!(a.code, b.code, "{what}: exit code\n{a:?}\n{b:?}");
    assert_eq!(a.stdout, b.stdout, "{what}: stdout");
    assert_eq!(a.stderr, b.stderr, "{what}: stderr");
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// The per-user devstash directory of runs made here (`DEVSTASH_HOME`).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The default cache directory of runs made here.
    pub fn cache(&self) -> PathBuf {
        self.path().join(".devstash_cache")
    }

    /// A `devstash` command running in this directory, with a clean environment for the
    /// variables devstash reads.
    pub fn cmd(&self) -> Command {
        devstash_in(self.path(), self.home.path())
    }

    /// Runs `devstash ARGS` and collects its output.
    pub fn devstash(&self, args: &[&str]) -> Run {
        self.cmd()
            .args(args)
            .output()
            .expect("devstash runs")
            .into()
    }

    /// Runs `devstash run MODULE ARGS`.
    pub fn run(&self, module: &Path, args: &[&str]) -> Run {
        let mut all = vec!["run", module.to_str().unwrap()];
        all.extend_from_slice(args);
        self.devstash(&all)
    }

    /// Removes the pack of entry copies beside the files (see `store::pack`), so that the files
    /// are the only copies.
    pub fn drop_pack(&self) {
        match std::fs::remove_file(self.cache().join("index.pack")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot remove the pack: {e}"),
        }
    }

    /// Entry files in the cache directory.
    pub fn entries(&self) -> Vec<PathBuf> {
        entry_files(&self.cache())
    }
}

/// Entry files in the cache directory `cache`, sorted (none if it does not exist).
pub fn entry_files(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "stash"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Decodes the tape at `path`, lets `edit` change its events, and writes it back re-encoded (the
/// header, and its event count, kept).
pub fn rewrite_tape(path: &Path, mut edit: impl FnMut(&mut devstash_runner::tape::format::Event)) {
    use devstash_runner::tape::format::{Tape, encode};
    let bytes = std::fs::read(path).unwrap();
    let mut tape = Tape::decode(&bytes).expect("a tape devstash wrote decodes");
    let mut body = Vec::new();
    let mut scratch = Vec::new();
    for event in &mut tape.events {
        edit(event);
        event.encode_into(&mut body, &mut scratch);
    }
    std::fs::write(path, encode(&tape.header, &body)).unwrap();
}

/// A copy of a test guest (one with the `devstash-test-variant:0.` marker, such as tapeprobe) in
/// `dir`, patched into its changed build: what a rebuild after an edit is to a replay.
pub fn patched_variant(module: &Path, dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(module).expect("the guest is built");
    let marker = b"devstash-test-variant:0.";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the guest carries the variant marker");
    bytes[at + marker.len() - 2] = b'1';
    let name = module.file_stem().unwrap().to_string_lossy();
    let out = dir.join(format!("{name}-variant.wasm"));
    std::fs::write(&out, bytes).unwrap();
    out
}

/// The manifest of a standalone guest crate `name`: the SDK (by path) and serde as dependencies.
pub fn guest_manifest(name: &str) -> String {
    let sdk = workspace().join("guest-sdk");
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dependencies]\ndevstash = {{ path = {:?} }}\n\
         serde = {{ version = \"1\", features = [\"derive\"] }}\n\n[workspace]\n",
        sdk.to_str().unwrap()
    )
}

/// Builds a guest crate whose main.rs is `src`, which must fail to compile; returns the
/// compiler's stderr and its errors, each as its message (the `error[...]: ...` line and any
/// line it runs on to) and the location under it (`src/main.rs:4:5`).
pub fn compile_errors(name: &str, src: &str) -> (String, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), guest_manifest(name)).unwrap();
    std::fs::write(dir.path().join("src/main.rs"), src).unwrap();
    let out = try_build_crate(dir.path());
    assert!(
        !out.status.success(),
        "{name} compiled but must not:\n{src}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().collect();
    let mut errors = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with("error") || line.starts_with("error: could not compile") {
            continue;
        }
        let mut message = line.to_string();
        for next in &lines[i + 1..] {
            if let Some(loc) = next.trim_start().strip_prefix("--> ") {
                errors.push((message, loc.to_string()));
                break;
            }
            if next.starts_with("error") || next.trim_start().starts_with('|') {
                break;
            }
            message.push('\n');
            message.push_str(next);
        }
    }
    (stderr, errors)
}

/// A `devstash` command running in `dir` with the per-user directory `home`, and a clean
/// environment for the other variables devstash reads (a tester's own `DEVSTASH_*` settings do
/// not leak in; `DEVSTASH_PYTHON` is kept, since CI may point it at the runtime).
pub fn devstash_in(dir: &Path, home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_devstash"));
    c.current_dir(dir)
        .env_remove("DEVSTASH_CACHE_DIR")
        .env_remove("DEVSTASH_SKIP")
        .env_remove("DEVSTASH_LOG")
        .env_remove("DEVSTASH_REMOTE")
        .env_remove("DEVSTASH_REMOTE_MODE")
        .env("DEVSTASH_HOME", home)
        .env("NO_COLOR", "1");
    c
}
