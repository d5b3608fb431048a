//! Hardening: end-to-end attacks on the runner by a hostile guest, a hostile repository (a
//! checked-out `.devstash_cache`), another user's files, and hostile inputs (flags, tapes, FIFOs,
//! giant sparse files, closed pipes). Each test is named after the attack it makes.
//!
//! Every `devstash` here runs through [`bounded`]: with a deadline, a watchdog on its resident
//! memory, and its peak RSS taken from `wait4`, so that a hang, a panic, an abort or a memory
//! blow-up fails the test instead of stalling or sinking the machine.
//!
//! Hand-written guests describe their sites with [`SiteSpec::encode`]: the postcard bytes of a
//! `devstash_protocol::SiteDesc`, placed in a WAT data segment.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, guest, rewrite_tape};
use devstash_protocol::{ABI_VERSION, SiteDesc, SiteKind, codec};
use devstash_runner::tape::format::{Event, SysData, Tape, WallReading};

// ---------------------------------------------------------------------------------------------
// Running devstash with a deadline, a memory watchdog and its peak RSS
// ---------------------------------------------------------------------------------------------

/// How long any one `devstash` invocation may take before the test kills it and fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// A child whose resident memory passes this is killed at once (and the test fails): a safety
/// net for the machine, far above every bound the tests assert.
const WATCHDOG_RSS_KIB: u64 = 2 << 20;

/// Keep at most this much of a child's stdout and of its stderr (the rest is read and dropped).
const KEEP_OUTPUT: usize = 8 << 20;

/// Secrets the tests plant. Every byte a child writes is searched for them (not only the part
/// kept): a `-vvv` run writes hundreds of megabytes of logs.
const WATCHED: &[&str] = &[
    "PASS1234",
    "dXNlcjpQQVNTMTIzNA", // base64 of `user:PASS1234`, as basic auth sends it
    "SECRET-A",
    "SECRET-B",
    "SECRET-C",
    "SECRET-K",
    "SECRET-L",
];

/// What one bounded `devstash` invocation did.
struct Bounded {
    /// What it ran, for messages.
    what: String,
    /// Its exit code, when it exited.
    code: Option<i32>,
    /// The signal that ended it, when one did.
    signal: Option<i32>,
    /// Why the test killed it, when it did.
    killed: Option<String>,
    stdout: Vec<u8>,
    stderr: String,
    /// The [`WATCHED`] secrets found anywhere in stdout, and in stderr.
    seen_in_stdout: Vec<&'static str>,
    seen_in_stderr: Vec<&'static str>,
    /// Peak resident set size (`ru_maxrss`), in KiB.
    peak_rss_kib: u64,
    elapsed: Duration,
}

impl std::fmt::Debug for Bounded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let out = self.out();
        let shown: String = out.chars().take(2000).collect();
        let err: String = self.stderr.chars().take(4000).collect();
        write!(
            f,
            "`{}`: code {:?}, signal {:?}, killed {:?}, peak RSS {} MiB, {:.1?}\n--- stdout ({} \
             bytes) ---\n{shown}\n--- stderr ---\n{err}",
            self.what,
            self.code,
            self.signal,
            self.killed,
            self.peak_rss_kib >> 10,
            self.elapsed,
            self.stdout.len(),
        )
    }
}

impl Bounded {
    /// Stdout as text (invalid UTF-8 replaced).
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn peak_rss_mib(&self) -> u64 {
        self.peak_rss_kib >> 10
    }

    /// Asserts that the watched `secret` appears nowhere in its stdout or stderr.
    fn assert_never_printed(&self, secret: &'static str) {
        assert!(WATCHED.contains(&secret), "{secret} is not watched");
        for (stream, text, seen) in [
            ("stdout", self.out(), &self.seen_in_stdout),
            ("stderr", self.stderr.clone(), &self.seen_in_stderr),
        ] {
            assert_not_in(&text, secret, &format!("{stream} of `{}`", self.what));
            assert!(
                !seen.contains(&secret),
                "{stream} of `{}` holds {secret} (past the part kept)",
                self.what
            );
        }
    }

    /// What is wrong, if anything, with how it ended: killed by the test (deadline or memory
    /// watchdog), ended by a signal, or a panic (exit 101, or `panicked` on stderr: devstash's
    /// own, or the guest's when it trapped with 134).
    fn insanity(&self) -> Option<String> {
        if let Some(why) = &self.killed {
            return Some(format!("killed by the test ({why})"));
        }
        if let Some(sig) = self.signal {
            return Some(format!("ended by signal {sig}"));
        }
        if self.code == Some(101) {
            return Some("devstash panicked (exit 101)".into());
        }
        if self.stderr.contains("panicked") {
            return Some(if self.code == Some(134) {
                "the guest panicked (a trap, exit 134)".into()
            } else {
                "`panicked` on stderr (devstash's own panic, or a guest's it reports)".into()
            });
        }
        None
    }

    /// It ended by itself, by exiting, without a panic (see [`Bounded::insanity`]).
    fn assert_sane(&self) {
        if let Some(why) = self.insanity() {
            panic!("{why}: {self:?}");
        }
    }

    /// Sane, and exited with `code`.
    fn assert_code(&self, code: i32) {
        self.assert_sane();
        assert_eq!(self.code, Some(code), "exit code: {self:?}");
    }
}

/// Reads a pipe to its end, keeping the first [`KEEP_OUTPUT`] bytes; returns them and the
/// [`WATCHED`] secrets found anywhere in the stream.
fn drain(mut pipe: impl Read) -> (Vec<u8>, Vec<&'static str>) {
    let overlap = WATCHED.iter().map(|w| w.len()).max().unwrap() - 1;
    let mut kept = Vec::new();
    let mut seen = Vec::new();
    // The end of the previous read, then this one: a secret split across reads is found too.
    let mut window: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => return (kept, seen),
            Ok(n) => {
                let room = KEEP_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                window.extend_from_slice(&buf[..n]);
                // (std's optimized substring search: a debug build's own loop would crawl.)
                let text = String::from_utf8_lossy(&window);
                for w in WATCHED {
                    if !seen.contains(w) && text.contains(w) {
                        seen.push(*w);
                    }
                }
                window.drain(..window.len().saturating_sub(overlap));
            }
        }
    }
}

/// The resident set of a live process, in KiB (from /proc).
fn current_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd` (stdin empty, stdout and stderr captured) until it ends, `deadline` passes, or its
/// memory passes the watchdog; reaps it with `wait4` for its peak RSS.
fn bounded(cmd: Command, deadline: Duration) -> Bounded {
    bounded_to(cmd, deadline, None)
}

/// [`bounded`], with stdout sent to `stdout` instead of captured.
fn bounded_to(mut cmd: Command, deadline: Duration, stdout: Option<Stdio>) -> Bounded {
    let what = format!(
        "devstash {}",
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let captured = stdout.is_none();
    cmd.stdin(Stdio::null())
        .stdout(stdout.unwrap_or_else(Stdio::piped))
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("devstash starts");
    let pid = child.id() as libc::pid_t;
    let out_reader = captured.then(|| {
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || drain(pipe))
    });
    let err_pipe = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || drain(err_pipe));
    // The command holds our copy of a pipe handed to the child (e.g. a closed-stdout pipe's
    // write end): drop it, so that the child's end is the only one.
    drop(cmd);
    let start = Instant::now();
    let mut killed = None;
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: plain syscalls on our own child, with valid out-pointers.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        assert!(
            r == 0 || std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted,
            "wait4 failed: {}",
            std::io::Error::last_os_error()
        );
        if killed.is_none() {
            let rss = current_rss_kib(pid).unwrap_or(0);
            if start.elapsed() > deadline {
                killed = Some(format!("still running after {deadline:?}"));
            } else if rss > WATCHDOG_RSS_KIB {
                killed = Some(format!("resident memory passed {} MiB", rss >> 10));
            }
            if killed.is_some() {
                // SAFETY: our own, not yet reaped, child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    // The child is reaped: `child` must not wait for it again (dropping a Child does not).
    drop(child);
    let (stdout, seen_in_stdout) = out_reader.map(|t| t.join().unwrap()).unwrap_or_default();
    let (stderr, seen_in_stderr) = err_reader.join().unwrap();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else {
        (None, Some(libc::WTERMSIG(status)))
    };
    Bounded {
        what,
        code,
        signal,
        killed,
        stdout,
        stderr,
        seen_in_stdout,
        seen_in_stderr,
        peak_rss_kib: usage.ru_maxrss as u64,
        elapsed,
    }
}

/// `devstash ARGS` in the sandbox, bounded by [`DEADLINE`].
fn ds(sb: &Sandbox, args: &[&str]) -> Bounded {
    let mut cmd = sb.cmd();
    cmd.args(args);
    bounded(cmd, DEADLINE)
}

/// `devstash run MODULE ARGS` in the sandbox, bounded by [`DEADLINE`].
fn run(sb: &Sandbox, module: &Path, args: &[&str]) -> Bounded {
    let mut all = vec!["run", s(module)];
    all.extend_from_slice(args);
    ds(sb, &all)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts that `text` (what `what` printed) does not hold `secret`; shows where it does.
fn assert_not_in(text: &str, secret: &str, what: &str) {
    if let Some(at) = text.find(secret) {
        let around: String = text[..at]
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<char>>()
            .into_iter()
            .rev()
            .chain(text[at..].chars().take(secret.len() + 100))
            .collect();
        panic!("{what} holds {secret}:\n…{around}…");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file under `dir`, recursively (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                files.push(e.path());
            }
        }
    }
    files.sort();
    files
}

/// Asserts that none of `secrets` appears in any file under `dir`.
fn assert_no_file_holds(dir: &Path, secrets: &[&[u8]]) -> usize {
    let files = files_under(dir);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for secret in secrets {
            assert!(
                !contains(&bytes, secret),
                "{} holds {:?}",
                f.display(),
                String::from_utf8_lossy(secret)
            );
        }
    }
    files.len()
}

/// The file names of the entries in the sandbox's cache.
fn entry_names(sb: &Sandbox) -> Vec<String> {
    sb.entries()
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect()
}

/// The compiled modules (`*.cwasm`) directly in `dir`.
fn cwasm_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Words of exactly 32 hex digits in `text` (module hashes; keys are 64 digits long).
fn hex32_tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .map(|w| w.to_ascii_lowercase())
        .collect()
}

/// Creates a FIFO at `path` (replacing what is there).
fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let st = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(st.success(), "mkfifo {}", path.display());
}

// ---------------------------------------------------------------------------------------------
// Entry files, as an attacker edits them
// ---------------------------------------------------------------------------------------------

/// An entry file cut into its first line (`devstash-entry VERSION CHECKSUM`), its JSON header
/// line and its payload (`payload_len` bytes after the header line; anything a newer format
/// keeps after the payload is left as it is).
struct EntryParts {
    first_line: Vec<u8>,
    header: serde_json::Value,
    payload_start: usize,
    payload: Vec<u8>,
}

impl EntryParts {
    fn parse(bytes: &[u8]) -> EntryParts {
        let first_end = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        let rest = &bytes[first_end..];
        let header_end = rest.iter().position(|&b| b == b'\n').unwrap() + 1;
        let header: serde_json::Value = serde_json::from_slice(&rest[..header_end - 1]).unwrap();
        let payload_start = first_end + header_end;
        let payload_len = header["payload_len"]
            .as_u64()
            .map_or(bytes.len() - payload_start, |n| n as usize);
        EntryParts {
            first_line: bytes[..first_end].to_vec(),
            header,
            payload_start,
            payload: bytes[payload_start..payload_start + payload_len].to_vec(),
        }
    }

    /// Everything after the first line, with `payload` in place of the payload.
    fn rest_with(&self, original: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut rest = original[self.first_line.len()..self.payload_start].to_vec();
        rest.extend_from_slice(payload);
        rest.extend_from_slice(&original[self.payload_start + self.payload.len()..]);
        rest
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-written guests
// ---------------------------------------------------------------------------------------------

/// A site descriptor for a hand-written guest.
#[derive(Clone)]
struct SiteSpec {
    module_path: String,
    callee: String,
    file: String,
    line: u32,
    ttl_secs: Option<u64>,
    fingerprint: String,
    value_type: String,
    /// `SiteKind::Fn` rather than `SiteKind::Call`.
    kind_fn: bool,
    types: String,
}

impl SiteSpec {
    fn plain(callee: &str) -> SiteSpec {
        SiteSpec {
            module_path: "hand".into(),
            callee: callee.into(),
            file: "src/main.rs".into(),
            line: 7,
            ttl_secs: None,
            fingerprint: "0123456789abcdef".into(),
            value_type: "alloc::string::String".into(),
            kind_fn: false,
            types: format!("hand::{callee}() -> alloc::string::String"),
        }
    }

    /// The postcard bytes of the `SiteDesc`.
    fn encode(&self) -> Vec<u8> {
        codec::encode(&SiteDesc {
            abi_version: ABI_VERSION,
            module_path: self.module_path.clone(),
            callee: self.callee.clone(),
            file: self.file.clone(),
            line: self.line,
            ttl_secs: self.ttl_secs,
            fingerprint: self.fingerprint.clone(),
            value_type: self.value_type.clone(),
            kind: if self.kind_fn {
                SiteKind::Fn
            } else {
                SiteKind::Call
            },
            types: self.types.clone(),
        })
        .expect("a descriptor encodes")
    }
}

/// Bytes as a WAT string literal (every byte escaped).
fn wat_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// The imports the hand-written guests use.
const WAT_IMPORTS: &str = r#"
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (import "devstash" "site_register" (func $reg (param i32 i32) (result i32)))
    (import "devstash" "stash_get" (func $get (param i32 i32 i32 i32 i32) (result i32)))
    (import "devstash" "stash_take" (func $take (param i32 i32) (result i32)))
    (import "devstash" "stash_put" (func $put (param i64 i32 i32 i32 i32) (result i32)))"#;

/// `$print(ptr, len)`: writes guest memory to stdout (iovec at 0, count at 8).
const WAT_PRINT: &str = r#"
    (func $print (param $ptr i32) (param $len i32)
        (i32.store (i32.const 0) (local.get $ptr))
        (i32.store (i32.const 4) (local.get $len))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))"#;

/// Writes a WAT module to `dir/name.wat`.
fn write_wat(dir: &Path, name: &str, pages: u32, data: &str, funcs: &str) -> PathBuf {
    let wat = format!(
        r#"(module {WAT_IMPORTS}
            (memory (export "memory") {pages})
            (data (i32.const 16) "hit\n")
            (data (i32.const 24) "miss\n")
            {data}
            {WAT_PRINT}
            {funcs})"#
    );
    let path = dir.join(format!("{name}.wat"));
    std::fs::write(&path, wat).unwrap();
    path
}

/// A guest with one site: looks up the call with one argument byte (7); on a miss stores
/// `value` with the arguments preview `preview` and prints `miss`, on a hit takes the value and
/// prints `hit`.
fn one_site_guest(dir: &Path, name: &str, site: &SiteSpec, value: &[u8], preview: &str) -> PathBuf {
    let desc = site.encode();
    assert!(value.len() <= 4096 && preview.len() <= 4096);
    let data = format!(
        r#"(data (i32.const 32) "\07")
           (data (i32.const 64) "{}")
           (data (i32.const 4096) "{}")
           (data (i32.const 65536) "{}")"#,
        wat_string(value),
        wat_string(preview.as_bytes()),
        wat_string(&desc)
    );
    let funcs = format!(
        r#"(func (export "_start") (local $h i32)
            (local.set $h (call $reg (i32.const 65536) (i32.const {desc_len})))
            (if (i32.eqz (call $get (local.get $h) (i32.const 32) (i32.const 1) (i32.const 0) (i32.const 40)))
                (then
                    (drop (call $take (i32.const 8192) (i32.wrap_i64 (i64.load (i32.const 40)))))
                    (call $print (i32.const 16) (i32.const 4)))
                (else
                    (drop (call $put (i64.load (i32.const 40)) (i32.const 64) (i32.const {value_len})
                        (i32.const 4096) (i32.const {preview_len})))
                    (call $print (i32.const 24) (i32.const 5)))))"#,
        desc_len = desc.len(),
        value_len = value.len(),
        preview_len = preview.len()
    );
    let pages = 2 + (desc.len() as u32).div_ceil(65536);
    write_wat(dir, name, pages, &data, &funcs)
}

/// A guest that looks up 20 calls of one site (arguments: the index as 4 bytes). A miss stores
/// 16 random lowercase letters; a hit takes the stored 16 bytes. Either way it prints the value
/// on a line: a run's output shows exactly which values it was served.
fn random_values_guest(dir: &Path) -> PathBuf {
    let desc = SiteSpec::plain("random_value").encode();
    let data = format!(r#"(data (i32.const 65536) "{}")"#, wat_string(&desc));
    let funcs = format!(
        r#"(func (export "_start") (local $h i32) (local $i i32) (local $j i32)
            (local.set $h (call $reg (i32.const 65536) (i32.const {desc_len})))
            (loop $next
                (i32.store (i32.const 32) (local.get $i))
                (if (i32.eqz (call $get (local.get $h) (i32.const 32) (i32.const 4) (i32.const 0) (i32.const 40)))
                    (then (drop (call $take (i32.const 8192) (i32.const 16))))
                    (else
                        (drop (call $random (i32.const 8192) (i32.const 16)))
                        (local.set $j (i32.const 0))
                        (loop $letters
                            (i32.store8 (i32.add (i32.const 8192) (local.get $j))
                                (i32.add (i32.const 97)
                                    (i32.and (i32.load8_u (i32.add (i32.const 8192) (local.get $j))) (i32.const 15))))
                            (local.set $j (i32.add (local.get $j) (i32.const 1)))
                            (br_if $letters (i32.lt_u (local.get $j) (i32.const 16))))
                        (drop (call $put (i64.load (i32.const 40)) (i32.const 8192) (i32.const 16) (i32.const 0) (i32.const 0)))))
                (i32.store8 (i32.const 8208) (i32.const 10))
                (call $print (i32.const 8192) (i32.const 17))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $next (i32.lt_u (local.get $i) (i32.const 20)))))"#,
        desc_len = desc.len()
    );
    write_wat(dir, "random_values", 3, &data, &funcs)
}

/// A guest that only prints `text`.
fn printing_guest(dir: &Path, name: &str, text: &str) -> PathBuf {
    let data = format!(r#"(data (i32.const 64) "{}")"#, wat_string(text.as_bytes()));
    let funcs = format!(
        r#"(func (export "_start") (call $print (i32.const 64) (i32.const {})))"#,
        text.len()
    );
    write_wat(dir, name, 1, &data, &funcs)
}

// ---------------------------------------------------------------------------------------------
// Tapes
// ---------------------------------------------------------------------------------------------

/// The tape's events.
fn tape_events(path: &Path) -> Vec<Event> {
    let bytes = std::fs::read(path).unwrap();
    Tape::decode(&bytes)
        .expect("a tape devstash wrote decodes")
        .events
}

// =============================================================================================
// 1. No path from bytes a guest or a repository can write to native code
// =============================================================================================

#[test]
fn tampered_compiled_module_in_devstash_home_is_not_loaded() {
    let sb = Sandbox::new();
    let a = printing_guest(sb.path(), "module_a", "module A\n");
    let b = printing_guest(sb.path(), "module_b", "module B\n");
    let modules = sb.home().join("modules");

    let first = run(&sb, &a, &[]);
    first.assert_code(0);
    assert_eq!(first.out(), "module A\n");
    let compiled = cwasm_files(&modules);
    assert_eq!(
        compiled.len(),
        1,
        "after one run, $DEVSTASH_HOME/modules holds the compiled module (found there: \
         {compiled:?}; in the project cache: {:?})",
        cwasm_files(&sb.cache().join("modules"))
    );
    let a_file = compiled[0].clone();
    // The user's secret key was created on first use, readable by its owner only.
    let key = std::fs::metadata(sb.home().join("key")).expect("$DEVSTASH_HOME/key exists");
    assert_eq!(key.permissions().mode() & 0o777, 0o600, "mode of the key");
    assert!(
        cwasm_files(&sb.cache().join("modules")).is_empty(),
        "nothing is compiled into .devstash_cache/modules"
    );

    // Flipped bytes in the middle of the compiled code.
    let good = std::fs::read(&a_file).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    for b in &mut flipped[mid..mid + 16] {
        *b ^= 0xff;
    }
    std::fs::write(&a_file, &flipped).unwrap();
    let r = run(&sb, &a, &[]);
    r.assert_code(0);
    assert_eq!(r.out(), "module A\n", "{r:?}");
    assert!(r.stderr.contains("compiled module"), "no warning: {r:?}");
    assert_ne!(
        std::fs::read(&a_file).unwrap(),
        flipped,
        "the file was not rewritten"
    );

    // Another module's compilation (whole, with a valid old-style trailer) in A's place.
    run(&sb, &b, &[]).assert_code(0);
    let b_file = cwasm_files(&modules)
        .into_iter()
        .find(|p| *p != a_file)
        .expect("module B's compilation");
    let b_bytes = std::fs::read(&b_file).unwrap();
    std::fs::write(&a_file, &b_bytes).unwrap();
    let r = run(&sb, &a, &[]);
    r.assert_code(0);
    assert_eq!(
        r.out(),
        "module A\n",
        "module B's code ran for module A: {r:?}"
    );
    assert!(r.stderr.contains("compiled module"), "no warning: {r:?}");
    assert_ne!(
        std::fs::read(&a_file).unwrap(),
        b_bytes,
        "the file was not rewritten"
    );
    // And B still runs as B.
    assert_eq!(run(&sb, &b, &[]).out(), "module B\n");
}

#[test]
fn compiled_module_planted_in_the_project_cache_is_never_read() {
    // Learn the names compilations get, and B's compiled bytes, in a scratch sandbox.
    let scratch = Sandbox::new();
    let a = printing_guest(scratch.path(), "module_a", "module A\n");
    let b = printing_guest(scratch.path(), "module_b", "module B\n");
    run(&scratch, &a, &[]).assert_code(0);
    let mut a_names: Vec<String> = Vec::new();
    for dir in [
        scratch.home().join("modules"),
        scratch.cache().join("modules"),
    ] {
        for f in cwasm_files(&dir) {
            a_names.push(f.file_name().unwrap().to_str().unwrap().to_string());
        }
    }
    // A name in the old style too (32 hex digits), whatever this runner uses.
    a_names.push(format!("{}.cwasm", "ab".repeat(16)));
    let before: Vec<PathBuf> = [
        scratch.home().join("modules"),
        scratch.cache().join("modules"),
    ]
    .iter()
    .flat_map(|d| cwasm_files(d))
    .collect();
    run(&scratch, &b, &[]).assert_code(0);
    let b_compiled = [
        scratch.home().join("modules"),
        scratch.cache().join("modules"),
    ]
    .iter()
    .flat_map(|d| cwasm_files(d))
    .find(|p| !before.contains(p))
    .expect("module B's compilation");
    let b_bytes = std::fs::read(&b_compiled).unwrap();

    for (what, planted) in [
        ("another module's compilation", b_bytes),
        ("garbage", vec![0x5au8; 4096]),
    ] {
        let sb = Sandbox::new();
        let a = printing_guest(sb.path(), "module_a", "module A\n");
        let dir = sb.cache().join("modules");
        std::fs::create_dir_all(&dir).unwrap();
        for name in &a_names {
            std::fs::write(dir.join(name), &planted).unwrap();
        }
        let r = run(&sb, &a, &[]);
        r.assert_code(0);
        assert_eq!(r.out(), "module A\n", "{what}: {r:?}");
        assert!(
            !cwasm_files(&sb.home().join("modules")).is_empty(),
            "{what}: $DEVSTASH_HOME/modules got no compilation of its own"
        );
        for name in &a_names {
            assert_eq!(
                std::fs::read(dir.join(name)).unwrap(),
                planted,
                "{what}: the planted {name} was touched"
            );
        }
    }
}

#[test]
fn dir_grants_reaching_devstash_home_are_refused() {
    let probe = guest("probe");
    let p = s(&probe);
    let sb = Sandbox::new();
    run(&sb, &probe, &["double", "1"]).assert_code(0);
    let home = sb.home().to_path_buf();
    std::fs::create_dir_all(home.join("modules")).unwrap();
    std::os::unix::fs::symlink(&home, sb.path().join("link-to-home")).unwrap();
    let grants = [
        format!("{}", home.display()),
        format!("{}::/h", home.display()),
        format!("{}::/h:ro", home.display()),
        format!("{}:ro", home.display()),
        format!("{}", home.parent().unwrap().display()),
        format!("{}:ro", home.parent().unwrap().display()),
        "/".to_string(),
        format!("{}", home.join("modules").display()),
        format!("{}::/m:ro", home.join("modules").display()),
        "link-to-home::/h".to_string(),
    ];
    for grant in &grants {
        let r = ds(&sb, &["run", "--dir", grant, p, "double", "1"]);
        r.assert_code(125);
        assert!(r.stderr.contains("DEVSTASH_HOME"), "--dir {grant}: {r:?}");
        assert!(r.stdout.is_empty(), "--dir {grant}: the guest ran: {r:?}");
    }
    let r = ds(
        &sb,
        &[
            "record", "-o", "t.tape", "--dir", &grants[0], p, "double", "1",
        ],
    );
    r.assert_code(125);
    assert!(r.stderr.contains("DEVSTASH_HOME"), "record: {r:?}");

    // The project folder is not the home: granting it is fine.
    let r = ds(
        &sb,
        &["run", "--dir", ".::/project", p, "write", "/project/ok.txt"],
    );
    r.assert_code(0);
    assert_eq!(r.out(), "write ok\n", "{r:?}");
    let r = ds(&sb, &["run", "--dir", ".::/project:ro", p, "double", "1"]);
    r.assert_code(0);
    assert!(r.out().contains("result 2"), "{r:?}");
}

#[test]
fn replay_reads_and_writes_nothing_in_the_cache_dir() {
    let tapeprobe = guest("tapeprobe");
    let m = s(&tapeprobe);
    let sb = Sandbox::new();
    let tape = sb.path().join("outside.tape");
    let recorded = ds(&sb, &["record", "-q", "-o", s(&tape), m, "calls"]);
    recorded.assert_code(0);
    std::fs::remove_dir_all(sb.cache()).unwrap();

    let replayed = ds(&sb, &["replay", "-q", m, s(&tape)]);
    replayed.assert_code(0);
    assert_eq!(replayed.stdout, recorded.stdout, "{replayed:?}");
    assert!(
        !sb.cache().exists(),
        "the replay created {}: {:?}",
        sb.cache().display(),
        files_under(&sb.cache())
    );
}

// =============================================================================================
// 2. Forged entries
// =============================================================================================

/// The guest copies `bytes` (dropped in a read-only grant) over the entry `name`, through a
/// write grant of the cache.
fn guest_writes_entry(sb: &Sandbox, name: &str, bytes: &[u8]) {
    let probe = guest("probe");
    let drop_dir = sb.path().join("drop");
    std::fs::create_dir_all(&drop_dir).unwrap();
    std::fs::write(drop_dir.join("forged"), bytes).unwrap();
    let r = ds(
        sb,
        &[
            "run",
            "--dir",
            ".devstash_cache::/cache",
            "--dir",
            "drop::/drop:ro",
            s(&probe),
            "copy",
            "/drop/forged",
            &format!("/cache/{name}"),
        ],
    );
    r.assert_code(0);
    assert_eq!(r.out(), format!("copied {} bytes\n", bytes.len()), "{r:?}");
    assert_eq!(std::fs::read(sb.cache().join(name)).unwrap(), bytes);
}

#[test]
fn entries_forged_by_a_guest_with_a_cache_grant_are_not_served() {
    let probe = guest("probe");
    let sb = Sandbox::new();
    let first = run(&sb, &probe, &["double", "3"]);
    first.assert_code(0);
    assert!(first.out().contains("result 6"));
    let names = entry_names(&sb);
    assert_eq!(names.len(), 1, "{names:?}");
    let name = names[0].clone();
    let genuine = std::fs::read(sb.cache().join(&name)).unwrap();
    let parts = EntryParts::parse(&genuine);
    assert_eq!(parts.payload, [6u8], "postcard of 6u64");
    // The value an attacker wants served: 42.
    let forged_rest = parts.rest_with(&genuine, &[42]);

    // Another user (another DEVSTASH_HOME) ran the same program: their entry, genuinely written
    // under their key.
    let other = Sandbox::new();
    run(&other, &probe, &["double", "3"]).assert_code(0);
    let foreign = std::fs::read(&other.entries()[0]).unwrap();

    let mut format1 =
        format!("devstash-entry 1 {}\n", blake3::hash(&forged_rest).to_hex()).into_bytes();
    format1.extend_from_slice(&forged_rest);
    let mut line_kept = parts.first_line.clone();
    line_kept.extend_from_slice(&forged_rest);

    for (what, forged) in [
        ("format 1 with a fresh blake3 checksum", format1),
        ("payload edited, first line kept", line_kept),
        ("an entry written under another DEVSTASH_HOME", foreign),
    ] {
        guest_writes_entry(&sb, &name, &forged);
        // The attacker can delete the pack as well; the forged file is then the only copy.
        sb.drop_pack();
        let r = run(&sb, &probe, &["double", "3"]);
        r.assert_code(0);
        assert!(
            !r.out().contains("result 42"),
            "{what}: the forged value was served: {r:?}"
        );
        assert!(
            r.out().contains("computed double(3)") && r.out().contains("result 6"),
            "{what}: accepted: {r:?}"
        );
        assert!(r.stderr.contains("warning"), "{what}: no warning: {r:?}");
        // The next run is served the recomputed entry.
        let again = run(&sb, &probe, &["double", "3"]);
        assert!(!again.out().contains("computed"), "{what}: {again:?}");
    }
}

#[test]
fn inspect_entry_names_the_module_that_wrote_it() {
    let probe = guest("probe");
    let tapeprobe = guest("tapeprobe");
    let sb = Sandbox::new();
    run(&sb, &probe, &["double", "3"]).assert_code(0);
    let name = entry_names(&sb).remove(0);
    let entry = ds(&sb, &["inspect", &name]);
    entry.assert_code(0);
    let module = ds(&sb, &["inspect", s(&probe)]);
    module.assert_code(0);
    let other = ds(&sb, &["inspect", s(&tapeprobe)]);
    other.assert_code(0);

    let module_tokens = hex32_tokens(&module.out());
    assert!(
        !module_tokens.is_empty(),
        "`inspect MODULE` prints no 32-hex-digit hash: {module:?}"
    );
    let writer_line = entry
        .out()
        .lines()
        .find(|l| hex32_tokens(l).iter().any(|t| module_tokens.contains(t)))
        .map(str::to_string);
    let Some(line) = writer_line else {
        panic!(
            "`inspect ENTRY` names no module hash that `inspect MODULE` prints:\n{entry:?}\n{module:?}"
        )
    };
    let lower = line.to_lowercase();
    assert!(
        lower.contains("writ") || lower.contains("module"),
        "the line with the hash does not say it is the writer: {line}"
    );
    let other_tokens = hex32_tokens(&other.out());
    assert!(
        !hex32_tokens(&line).iter().any(|t| other_tokens.contains(t)),
        "the writer hash is also another module's: {line}\n{other:?}"
    );
}

#[test]
fn tampered_or_foreign_pack_never_serves_a_foreign_value() {
    // Flipped bytes in the pack's records: never a wrong value.
    let probe = guest("probe");
    let sb = Sandbox::new();
    run(&sb, &probe, &["many", "20"]).assert_code(0);
    let pack = sb.cache().join("index.pack");
    let good = std::fs::read(&pack).expect("a pack");
    for trial in 0..12usize {
        let mut bad = good.clone();
        let at = (trial * 7919 + 13) % bad.len();
        bad[at] ^= 1 << (trial % 8);
        std::fs::write(&pack, &bad).unwrap();
        let r = run(&sb, &probe, &["many", "20"]);
        r.assert_code(0);
        assert_eq!(
            r.out().lines().last(),
            Some("total 380"),
            "flip at {at}: {r:?}"
        );
    }

    // Two users run the same program, whose calls store random values: same entry names,
    // different values. Each user's own files are then handed the other user's pack or files.
    let (a, b) = (Sandbox::new(), Sandbox::new());
    let ga = random_values_guest(a.path());
    let gb = random_values_guest(b.path());
    let out_a = run(&a, &ga, &[]);
    out_a.assert_code(0);
    let out_b = run(&b, &gb, &[]);
    out_b.assert_code(0);
    let lines = |r: &Bounded| -> Vec<String> { r.out().lines().map(str::to_string).collect() };
    let (va, vb) = (lines(&out_a), lines(&out_b));
    assert_eq!(va.len(), 20, "{out_a:?}");
    assert_ne!(va, vb, "two users drew the same random values");
    assert_eq!(entry_names(&a).len(), 20);
    assert_eq!(entry_names(&b).len(), 20);
    // B again, untouched: its own values.
    assert_eq!(lines(&run(&b, &gb, &[])), vb);

    std::fs::copy(a.cache().join("index.pack"), b.cache().join("index.pack")).unwrap();
    let r = run(&b, &gb, &[]);
    r.assert_code(0);
    for line in lines(&r) {
        assert!(
            !va.contains(&line),
            "B was served A's value {line} from A's pack: {r:?}"
        );
    }

    // (The names are the same: the keys are; each of A's files replaces B's.)
    for (from, to) in a.entries().iter().zip(b.entries()) {
        std::fs::copy(from, to).unwrap();
    }
    b.drop_pack();
    let r = run(&b, &gb, &[]);
    r.assert_code(0);
    for line in lines(&r) {
        assert!(
            !va.contains(&line),
            "B was served A's value {line} from A's files: {r:?}"
        );
    }
    assert!(
        r.stderr.contains("warning"),
        "A's files went unnoticed: {r:?}"
    );
}

// =============================================================================================
// 3. Options after the module are the guest's
// =============================================================================================

#[test]
fn options_after_the_module_are_the_guests_not_grants() {
    let tapeprobe = guest("tapeprobe");
    let probe = guest("probe");
    let (t, p) = (s(&tapeprobe), s(&probe));
    let sb = Sandbox::new();

    let r = ds(&sb, &["run", t, "io", "--dir", "/", "a"]);
    r.assert_code(0);
    assert!(r.out().contains(r#"args ["--dir", "/", "a"]"#), "{r:?}");

    let r = ds(&sb, &["run", p, "read", "/etc/hostname", "--dir", "/"]);
    r.assert_code(0);
    assert!(
        r.out().starts_with("read failed"),
        "`--dir /` after the module granted it: {r:?}"
    );

    let r = ds(&sb, &["run", t, "--", "io", "x"]);
    r.assert_code(0);
    assert!(r.out().contains(r#"args ["x"]"#), "{r:?}");

    // Right after the module as well: there, `--dir /` is the guest's first argument (its mode),
    // not a grant, and `--env` is no environment.
    for command in [&["run"][..], &["record", "-o", "w.tape"][..]] {
        let mut args = command.to_vec();
        args.extend([p, "--dir", "/", "read", "/etc/hostname"]);
        let r = ds(&sb, &args);
        r.assert_code(2);
        assert!(
            r.stderr.contains(r#"unknown mode "--dir""#),
            "`--dir /` right after the module was taken as a grant: {r:?}"
        );
        assert!(r.stdout.is_empty(), "{r:?}");
    }
    let r = ds(&sb, &["run", t, "--env", "GREETING=hi", "io"]);
    r.assert_code(2);
    assert!(r.stderr.contains(r#"unknown mode "--env""#), "{r:?}");

    let r = ds(&sb, &["record", "-o", "t.tape", t, "io", "--dir", "/", "a"]);
    r.assert_code(0);
    assert!(r.out().contains(r#"args ["--dir", "/", "a"]"#), "{r:?}");
    let argv = tape_events(&sb.path().join("t.tape"))
        .into_iter()
        .find_map(|e| match e {
            Event::Invocation(inv) => Some(inv.argv),
            _ => None,
        })
        .unwrap();
    assert_eq!(argv[1..], ["io", "--dir", "/", "a"], "{argv:?}");

    let r = ds(
        &sb,
        &[
            "record",
            "-o",
            "u.tape",
            p,
            "read",
            "/etc/hostname",
            "--dir",
            "/",
        ],
    );
    r.assert_code(0);
    assert!(r.out().starts_with("read failed"), "{r:?}");
    let r = ds(&sb, &["record", "-o", "v.tape", t, "--", "io", "x"]);
    r.assert_code(0);
    assert!(r.out().contains(r#"args ["x"]"#), "{r:?}");
}

// =============================================================================================
// 4. Empty host lists
// =============================================================================================

#[test]
fn empty_allow_net_lists_are_errors_not_allow_all() {
    let server = common::server::Server::start();
    let probe = guest("probe");
    let p = s(&probe);
    let sb = Sandbox::new();
    let url = server.url("/repos/x");
    for flag in [
        "--allow-net=",
        "--allow-net=,",
        "--allow-net= ",
        "--allow-net=, ",
    ] {
        let r = ds(&sb, &["run", flag, p, "http-get", &url]);
        r.assert_code(125);
        assert!(r.stderr.to_lowercase().contains("host"), "{flag:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{flag:?}: the guest ran: {r:?}");
    }
    assert_eq!(server.count(), 0, "an empty list let a request through");
    // The bare flag still allows every host.
    let r = ds(&sb, &["run", "--allow-net", p, "http-get", &url]);
    r.assert_code(0);
    assert!(r.out().starts_with("http ok 200"), "{r:?}");
    assert_eq!(server.count(), 1);
}

// =============================================================================================
// 5. No panic, abort or hang on any input
// =============================================================================================

#[test]
fn site_ttl_of_u64_max_does_not_panic() {
    let sb = Sandbox::new();
    let site = SiteSpec {
        ttl_secs: Some(u64::MAX),
        ..SiteSpec::plain("forever")
    };
    let g = one_site_guest(sb.path(), "ttl_max", &site, b"\x09forty-two", "(7,)");
    let first = run(&sb, &g, &[]);
    first.assert_code(0);
    assert_eq!(first.out(), "miss\n", "{first:?}");
    let name = entry_names(&sb).pop().expect("an entry");
    for args in [
        vec!["list"],
        vec!["list", "--json"],
        vec!["list", "--sort", "age"],
        vec!["inspect", name.as_str()],
        vec!["inspect", name.as_str(), "--json"],
        vec!["clear", "--expired", "--dry-run"],
    ] {
        ds(&sb, &args).assert_code(0);
    }
    let second = run(&sb, &g, &[]);
    second.assert_code(0);
    assert_eq!(second.out(), "hit\n", "{second:?}");
    assert!(second.stderr.contains("1 hit"), "{second:?}");
}

#[test]
fn tape_clock_readings_at_their_extremes_do_not_panic() {
    let tapeprobe = guest("tapeprobe");
    let m = s(&tapeprobe);
    let sb = Sandbox::new();
    let tape = sb.path().join("clock.tape");
    ds(&sb, &["record", "-q", "-o", s(&tape), m, "io"]).assert_code(0);
    let mut wall = 0;
    let mut mono = 0;
    rewrite_tape(&tape, |e| match e {
        Event::WallClock(w) => {
            *w = WallReading {
                secs: u64::MAX,
                nanos: 999_999_999,
            };
            wall += 1;
        }
        Event::MonotonicClock(t) => {
            *t = u64::MAX;
            mono += 1;
        }
        _ => {}
    });
    assert!(wall >= 1 && mono >= 1, "the recording read no clock");
    let mut problems = Vec::new();
    for args in [
        vec!["replay", m, s(&tape)],
        vec!["replay", "--verify", m, s(&tape)],
        vec!["inspect", s(&tape)],
    ] {
        let r = ds(&sb, &args);
        // A verify may find different output (122); inspect reports a bad tape with 1.
        let ok: &[i32] = match (args[0], args[1]) {
            ("inspect", _) => &[0, 1],
            (_, "--verify") => &[0, 122, 123, 125],
            _ => &[0, 123, 125],
        };
        let wrong = r.insanity().or_else(|| {
            (!ok.contains(&r.code.unwrap())).then(|| format!("exit code {:?}", r.code))
        });
        if let Some(why) = wrong {
            problems.push(format!("{why}: {r:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// Records (once per sandbox) a cache of `probe many 20`, then plants: one real entry grown to
/// 64 GiB (sparse), one whose header claims a 64 GiB payload (and whose file is that long), and
/// a 64 GiB pack.
struct GiantCache {
    sb: Sandbox,
    /// The cache after `many 20`: file name and bytes (entries and the pack).
    pristine: Vec<(String, Vec<u8>)>,
    grown: String,
    claimed: String,
}

const GIANT: u64 = 64 << 30;

impl GiantCache {
    fn new() -> GiantCache {
        let probe = guest("probe");
        let sb = Sandbox::new();
        run(&sb, &probe, &["many", "20"]).assert_code(0);
        let mut pristine = Vec::new();
        for name in entry_names(&sb)
            .into_iter()
            .chain(["index.pack".to_string()])
        {
            pristine.push((name.clone(), std::fs::read(sb.cache().join(&name)).unwrap()));
        }
        let names = entry_names(&sb);
        GiantCache {
            grown: names[0].clone(),
            claimed: names[1].clone(),
            sb,
            pristine,
        }
    }

    /// Restores the cache and plants the giant files again.
    fn plant(&self) {
        let cache = self.sb.cache();
        for (name, bytes) in &self.pristine {
            std::fs::write(cache.join(name), bytes).unwrap();
        }
        let grown = std::fs::OpenOptions::new()
            .write(true)
            .open(cache.join(&self.grown))
            .unwrap();
        grown.set_len(GIANT).unwrap();

        let original = &self
            .pristine
            .iter()
            .find(|(n, _)| *n == self.claimed)
            .unwrap()
            .1;
        let parts = EntryParts::parse(original);
        let mut header = parts.header.clone();
        header["payload_len"] = serde_json::json!(GIANT);
        let mut bytes = parts.first_line.clone();
        bytes.extend_from_slice(&serde_json::to_vec(&header).unwrap());
        bytes.push(b'\n');
        let start = bytes.len() as u64;
        bytes.extend_from_slice(&parts.payload);
        std::fs::write(cache.join(&self.claimed), &bytes).unwrap();
        let claimed = std::fs::OpenOptions::new()
            .write(true)
            .open(cache.join(&self.claimed))
            .unwrap();
        claimed.set_len(start + GIANT).unwrap();

        let pack = std::fs::OpenOptions::new()
            .write(true)
            .open(cache.join("index.pack"))
            .unwrap();
        pack.set_len(GIANT).unwrap();
    }
}

#[test]
fn entries_and_pack_of_64_gib_take_seconds_and_little_memory() {
    let probe = guest("probe");
    let p = s(&probe);
    let giant = GiantCache::new();
    let sb = &giant.sb;
    let patience = Duration::from_secs(30);
    let check = |args: &[&str]| -> Bounded {
        giant.plant();
        let mut cmd = sb.cmd();
        cmd.args(args);
        let r = bounded(cmd, patience);
        r.assert_code(0);
        assert!(
            r.peak_rss_mib() < 512,
            "peak RSS {} MiB: {r:?}",
            r.peak_rss_mib()
        );
        r
    };
    let r = check(&["run", p, "many", "20"]);
    assert_eq!(r.out().lines().last(), Some("total 380"), "{r:?}");
    let r = check(&["record", "-o", "giant.tape", p, "many", "20"]);
    assert_eq!(r.out().lines().last(), Some("total 380"), "{r:?}");
    check(&["list"]);
    check(&["list", "--json"]);
    check(&["clear", "--corrupt"]);
    for name in [&giant.grown, &giant.claimed] {
        assert!(
            !sb.cache().join(name).exists(),
            "`clear --corrupt` kept the 64 GiB entry {name}"
        );
    }
    check(&["clear", "--all"]);
    assert!(
        sb.entries().is_empty(),
        "`clear --all` left {:?}",
        sb.entries()
    );
}

#[test]
fn fifos_named_like_cache_files_do_not_hang() {
    let probe = guest("probe");
    let p = s(&probe);
    let sb = Sandbox::new();
    run(&sb, &probe, &["many", "40"]).assert_code(0);
    let victim = entry_names(&sb)[7].clone();
    let plant = || {
        mkfifo(&sb.cache().join(&victim));
        mkfifo(&sb.cache().join("index.pack"));
    };
    let patience = Duration::from_secs(20);
    let bounded_ds = |args: &[&str]| -> Bounded {
        plant();
        let mut cmd = sb.cmd();
        cmd.args(args);
        let r = bounded(cmd, patience);
        r.assert_sane();
        r
    };
    let r = bounded_ds(&["run", p, "many", "40"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.out().lines().last(), Some("total 1560"), "{r:?}");
    let r = bounded_ds(&["list"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    bounded_ds(&["list", "--json"]);
    bounded_ds(&["inspect", &victim]);
    bounded_ds(&["clear", "--corrupt"]);
    let r = bounded_ds(&["clear", "--all"]);
    assert_eq!(r.code, Some(0), "{r:?}");
}

#[test]
fn closed_stdout_is_not_a_panic() {
    let probe = guest("probe");
    let p = s(&probe);
    let sb = Sandbox::new();
    run(&sb, &probe, &["double", "3"]).assert_code(0);
    ds(&sb, &["record", "-q", "-o", "t.tape", p, "double", "3"]).assert_code(0);
    let name = entry_names(&sb).remove(0);
    for args in [
        vec!["list"],
        vec!["list", "--json"],
        vec!["inspect", name.as_str()],
        vec!["inspect", name.as_str(), "--json"],
        vec!["inspect", p],
        vec!["inspect", "t.tape"],
        vec!["clear", "--all", "--dry-run"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = sb.cmd();
        cmd.args(&args);
        let r = bounded_to(cmd, DEADLINE, Some(writer.into()));
        r.assert_code(0);
    }
}

#[test]
fn bad_flag_values_exit_125_with_one_line() {
    let probe = guest("probe");
    let p = s(&probe);
    let sb = Sandbox::new();
    for (flag, value) in [
        ("--timeout", "5parsecs"),
        ("--max-memory", "lots"),
        ("--fuel", "x"),
    ] {
        for cmd in ["run", "record"] {
            let r = ds(&sb, &[cmd, flag, value, p, "double", "1"]);
            r.assert_code(125);
            let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            assert_eq!(lines.len(), 1, "{cmd} {flag} {value}: not one line: {r:?}");
            assert!(lines[0].contains(flag), "{cmd} {flag} {value}: {r:?}");
            assert!(r.stdout.is_empty(), "{r:?}");
        }
    }
    for args in [
        &["--help"][..],
        &["run", "--help"][..],
        &["record", "--help"][..],
    ] {
        let r = ds(&sb, args);
        r.assert_code(0);
        assert!(!r.stdout.is_empty(), "{r:?}");
    }
}

// =============================================================================================
// 6. Host memory bounded against the guest
// =============================================================================================

/// A guest that registers 16,384 sites, each with its own 64 KiB descriptor (the fingerprint
/// carries the index), then prints `registered`.
fn many_sites_guest(dir: &Path) -> PathBuf {
    let mut site = SiteSpec::plain("many");
    let mut pad = 65000usize;
    let desc = loop {
        site.fingerprint = format!("AAAA{}", "f".repeat(pad));
        let desc = site.encode();
        match desc.len() {
            65536 => break desc,
            n if n < 65536 => pad += 65536 - n,
            n => pad -= n - 65536,
        }
    };
    assert_eq!(desc.len(), 65536);
    let index_at = 65536 + desc.windows(4).position(|w| w == b"AAAA").unwrap();
    let data = format!(
        r#"(data (i32.const 65536) "{}")
           (data (i32.const 48) "registered\n")"#,
        wat_string(&desc)
    );
    // The index as four letters A..P, one per nibble.
    let funcs = format!(
        r#"(func (export "_start") (local $i i32) (local $n i32)
            (loop $next
                (local.set $n (i32.const 0))
                (loop $nibble
                    (i32.store8 (i32.add (i32.const {index_at}) (local.get $n))
                        (i32.add (i32.const 65)
                            (i32.and (i32.shr_u (local.get $i) (i32.mul (local.get $n) (i32.const 4))) (i32.const 15))))
                    (local.set $n (i32.add (local.get $n) (i32.const 1)))
                    (br_if $nibble (i32.lt_u (local.get $n) (i32.const 4))))
                (drop (call $reg (i32.const 65536) (i32.const 65536)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $next (i32.lt_u (local.get $i) (i32.const 16384))))
            (call $print (i32.const 48) (i32.const 11)))"#
    );
    write_wat(dir, "many_sites", 3, &data, &funcs)
}

#[test]
fn sixteen_thousand_64kib_site_descriptors_are_refused_in_bounded_memory() {
    let sb = Sandbox::new();
    let g = many_sites_guest(sb.path());
    let r = run(&sb, &g, &[]);
    r.assert_sane();
    assert!(
        r.peak_rss_mib() < 512,
        "peak RSS {} MiB: {r:?}",
        r.peak_rss_mib()
    );
    assert_ne!(
        r.code,
        Some(0),
        "all 1 GiB of descriptors were taken: {r:?}"
    );
    assert!(
        [124, 125, 134].contains(&r.code.unwrap()),
        "neither a trap nor a refusal: {r:?}"
    );
    let err = r.stderr.to_lowercase();
    assert!(err.contains("site") || err.contains("descriptor"), "{r:?}");

    let r = ds(&sb, &["run", "--max-memory", "16MiB", s(&g)]);
    r.assert_sane();
    assert!(
        r.peak_rss_mib() < 512,
        "peak RSS {} MiB: {r:?}",
        r.peak_rss_mib()
    );
    assert!([124, 134].contains(&r.code.unwrap()), "{r:?}");
    assert!(
        r.stderr.contains("--max-memory"),
        "the limit is not named: {r:?}"
    );
}

#[test]
fn recording_1024_nested_pending_calls_printing_1mib_each_is_bounded() {
    let probe = guest("probe");
    let sb = Sandbox::new();
    let tape = sb.path().join("deep.tape");
    let mut cmd = sb.cmd();
    cmd.args([
        "record",
        "--max-memory",
        "64MiB",
        "-o",
        s(&tape),
        s(&probe),
        "deep",
        "1024",
    ])
    .arg((1u32 << 20).to_string());
    let r = bounded(cmd, DEADLINE);
    r.assert_sane();
    assert!(
        [124, 125].contains(&r.code.unwrap()),
        "not stopped at the limit: {r:?}"
    );
    assert!(
        r.stderr.contains("--max-memory"),
        "the limit is not named: {r:?}"
    );
    assert!(
        r.peak_rss_mib() < 512,
        "peak RSS {} MiB: {r:?}",
        r.peak_rss_mib()
    );
    for f in files_under(sb.path()) {
        let len = std::fs::metadata(&f).unwrap().len();
        assert!(len <= 256 << 20, "{} is {} MiB", f.display(), len >> 20);
    }
}

#[test]
fn a_recording_stopped_by_max_memory_exits_124_and_writes_no_tape() {
    // The value is taken whole by the recorder, which has no room for it under the limit: the
    // guest stops as at any other limit, with the flag named, and no tape is left.
    let probe = guest("probe");
    let sb = Sandbox::new();
    let tape = sb.path().join("big.tape");
    let mut cmd = sb.cmd();
    cmd.args([
        "record",
        "--max-memory",
        "48MiB",
        "-o",
        s(&tape),
        s(&probe),
        "big",
        "16000000",
    ]);
    let r = bounded(cmd, DEADLINE);
    r.assert_sane();
    r.assert_code(124);
    assert!(r.stderr.contains("--max-memory"), "{r:?}");
    assert!(r.stderr.contains("no tape was written"), "{r:?}");
    assert!(!tape.exists());
}

#[test]
fn table_grow_of_200_million_elements_counts_against_max_memory() {
    let sb = Sandbox::new();
    let wat = r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (table $t 0 funcref)
        (func (export "_start")
            (if (i32.eq (table.grow $t (ref.null func) (i32.const 200000000)) (i32.const -1))
                (then (call $exit (i32.const 7))))
            (table.fill $t (i32.const 0) (ref.null func) (i32.const 200000000))))"#;
    let g = sb.path().join("table_grow.wat");
    std::fs::write(&g, wat).unwrap();
    let r = ds(&sb, &["run", "--max-memory", "1MiB", s(&g)]);
    r.assert_code(124);
    assert!(
        r.stderr.contains("--max-memory"),
        "the limit is not named: {r:?}"
    );
    assert!(
        r.peak_rss_mib() < 256,
        "peak RSS {} MiB: {r:?}",
        r.peak_rss_mib()
    );
}

/// A server on 127.0.0.1 that answers every request with `len` bytes of `x`, streamed.
fn huge_response_server(len: u64) -> (u16, std::thread::JoinHandle<()>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("a loopback port");
    let port = server.server_addr().to_ip().unwrap().port();
    let thread = std::thread::spawn(move || {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) {
                let body = std::io::repeat(b'x').take(len);
                let response = tiny_http::Response::new(
                    tiny_http::StatusCode(200),
                    Vec::new(),
                    body,
                    Some(len as usize),
                    None,
                );
                let _ = req.respond(response);
                return;
            }
        }
    });
    (port, thread)
}

#[test]
fn a_256_mib_http_response_is_an_error_for_the_guest_not_host_memory() {
    let probe = guest("probe");
    let sb = Sandbox::new();
    let (port, _server) = huge_response_server(256 << 20);
    let url = format!("http://127.0.0.1:{port}/huge");
    let r = ds(
        &sb,
        &[
            "run",
            "--max-memory",
            "16MiB",
            "--allow-net=127.0.0.1",
            s(&probe),
            "http-get",
            &url,
        ],
    );
    r.assert_code(0);
    assert!(
        r.out().starts_with("http error"),
        "the guest got no error: {r:?}"
    );
    assert!(
        r.peak_rss_mib() < 256,
        "peak RSS {} MiB: {r:?}",
        r.peak_rss_mib()
    );
}

// =============================================================================================
// 7. Secrets
// =============================================================================================

#[test]
fn password_in_a_url_reaches_no_file_listing_tape_or_log() {
    let server = common::server::Server::start();
    let probe = guest("probe");
    let p = s(&probe);
    let sb = Sandbox::new();
    let url = server
        .url("/repos/x")
        .replacen("http://", "http://user:PASS1234@", 1);
    let allow = server.allow();
    // Also its basic-auth form, base64 of `user:PASS1234`.
    let secrets: [&[u8]; 2] = [b"PASS1234", b"dXNlcjpQQVNTMTIzNA"];

    let r = ds(&sb, &["-vv", "run", &allow, p, "http-stash", &url]);
    r.assert_code(0);
    assert!(r.out().starts_with("http "), "{r:?}");
    let r2 = ds(&sb, &["record", "-vv", &allow, p, "http-stash", &url]);
    r2.assert_code(0);
    let mut shown = vec![r, r2, ds(&sb, &["list", "--json"]), ds(&sb, &["list"])];
    for name in entry_names(&sb) {
        shown.push(ds(&sb, &["inspect", &name]));
        shown.push(ds(&sb, &["inspect", &name, "--json"]));
    }
    let tape = sb.cache().join("tapes/probe.tape");
    assert!(tape.exists(), "no tape at {}", tape.display());
    shown.push(ds(&sb, &["inspect", s(&tape)]));
    for r in &shown {
        r.assert_sane();
        r.assert_never_printed("PASS1234");
        r.assert_never_printed("dXNlcjpQQVNTMTIzNA");
    }
    let files = assert_no_file_holds(&sb.cache(), &secrets);
    assert!(files >= 2, "nothing was stored");
}

#[test]
fn secret_request_headers_stay_out_of_trace_logs() {
    let server = common::server::Server::start();
    let probe = guest("probe");
    let p = s(&probe);
    let sb = Sandbox::new();
    let url = server.url("/repos/x");
    let allow = server.allow();
    let mut runs = vec![ds(&sb, &["-vvv", "run", &allow, p, "secret-headers", &url])];
    let mut cmd = sb.cmd();
    cmd.env("DEVSTASH_LOG", "trace")
        .args(["run", &allow, p, "secret-headers", &url]);
    runs.push(bounded(cmd, DEADLINE));
    let mut cmd = sb.cmd();
    cmd.env("DEVSTASH_LOG", "trace").args([
        "record",
        "-o",
        "h.tape",
        &allow,
        p,
        "secret-headers",
        &url,
    ]);
    runs.push(bounded(cmd, DEADLINE));
    for r in &runs {
        r.assert_code(0);
        assert!(r.out().starts_with("http ok 200"), "{r:?}");
        for secret in ["SECRET-A", "SECRET-B", "SECRET-C"] {
            r.assert_never_printed(secret);
        }
    }
    assert_eq!(server.count(), 3, "each run made its request");
    let tape = std::fs::read(sb.path().join("h.tape")).unwrap();
    for secret in [&b"SECRET-A"[..], b"SECRET-B", b"SECRET-C"] {
        assert!(
            !contains(&tape, secret),
            "the tape holds a secret header value"
        );
    }
}

/// The environment a tape holds.
fn tape_env(path: &Path) -> Vec<(String, String)> {
    tape_events(path)
        .into_iter()
        .find_map(|e| match e {
            Event::Invocation(inv) => Some(inv.env),
            _ => None,
        })
        .expect("an invocation")
}

#[test]
fn secret_looking_environment_values_stay_off_tapes() {
    let probe = guest("probe");
    let p = s(&probe);
    let sb = Sandbox::new();
    let r = ds(
        &sb,
        &[
            "record",
            "-o",
            "env.tape",
            "--env",
            "DATABASE_URL=postgres://u:PW-DB@h/db",
            "--env",
            "GITHUB_PAT=PW-PAT",
            "--env",
            "MY_PASS=PW-PASS",
            "--env",
            "SENTRY_DSN=https://PW-DSN@sentry.io/1",
            "--env",
            "PLAIN=ok",
            p,
            "double",
            "1",
        ],
    );
    r.assert_code(0);
    let tape = sb.path().join("env.tape");
    let bytes = std::fs::read(&tape).unwrap();
    for secret in ["PW-DB", "PW-PAT", "PW-PASS", "PW-DSN"] {
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "the tape holds {secret}"
        );
    }
    let env = tape_env(&tape);
    assert!(env.contains(&("PLAIN".into(), "ok".into())), "{env:?}");

    let r = ds(
        &sb,
        &[
            "record",
            "-o",
            "custom.tape",
            "--redact-env",
            "INTERNAL_NOTE",
            "--redact-env",
            "OTHER",
            "--env",
            "INTERNAL_NOTE=PW-CUSTOM",
            "--env",
            "OTHER=PW-OTHER",
            "--env",
            "PLAIN=ok",
            p,
            "double",
            "1",
        ],
    );
    r.assert_code(0);
    let tape = sb.path().join("custom.tape");
    let bytes = std::fs::read(&tape).unwrap();
    assert!(!contains(&bytes, b"PW-CUSTOM") && !contains(&bytes, b"PW-OTHER"));
    assert!(tape_env(&tape).contains(&("PLAIN".into(), "ok".into())));
}

/// A guest whose `#[stashed]` method takes a `devstash::Secret<String>` (from `API_KEY`) in
/// its receiver, and asks `question`.
fn secret_guest(name: &str, question: &str) -> (tempfile::TempDir, PathBuf) {
    let ws = common::workspace();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("src")).unwrap();
    let main = format!(
        r#"use devstash::stashed;
use serde::Serialize;

const QUESTION: &str = {question:?};

#[derive(Serialize)]
struct Oracle {{
    key: devstash::Secret<String>,
}}

impl Oracle {{
    #[stashed]
    fn ask(&self, q: &str) -> String {{
        println!("computed ask({{q}})");
        format!("an answer to {{q:?}} from a key of {{}} bytes", self.key.expose().len())
    }}
}}

fn main() {{
    let key = std::env::var("API_KEY").unwrap_or_default();
    let oracle = Oracle {{ key: devstash::Secret::new(key) }};
    println!("debug {{:?}}", oracle.key);
    println!("{{}}", oracle.ask(QUESTION));
}}
"#
    );
    std::fs::write(dir.join("src/main.rs"), main).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"secretask\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
             [dependencies]\ndevstash = {{ path = {:?} }}\n\
             serde = {{ version = \"1\", features = [\"derive\"] }}\n\n[workspace]\n",
            ws.join("guest-sdk")
        ),
    )
    .unwrap();
    std::fs::copy(ws.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let built = common::build_crate(dir, "secretask");
    let module = dir.join(format!("{name}.wasm"));
    std::fs::copy(built, &module).unwrap();
    (tmp, module)
}

#[test]
fn secret_values_in_keys_stay_off_disk_tapes_and_reports() {
    let (_v1, asks) = secret_guest("asks", "What is the capital of France?");
    let (_v2, asks_more) = secret_guest("asks_more", "Which river runs through Paris?");
    let sb = Sandbox::new();
    let with_key = |key: &str, args: &[&str]| -> Bounded {
        let mut all = vec![args[0], "--env"];
        let env = format!("API_KEY={key}");
        all.push(&env);
        all.extend_from_slice(&args[1..]);
        ds(&sb, &all)
    };
    let first = with_key("SECRET-K", &["run", s(&asks)]);
    first.assert_code(0);
    assert!(
        first.out().contains("debug Secret(<redacted>)"),
        "{first:?}"
    );
    assert!(first.out().contains("computed ask("), "{first:?}");
    let second = with_key("SECRET-K", &["run", s(&asks)]);
    second.assert_code(0);
    assert!(
        !second.out().contains("computed"),
        "the call did not hit: {second:?}"
    );
    let other = with_key("SECRET-L", &["run", s(&asks)]);
    other.assert_code(0);
    assert!(
        other.out().contains("computed ask("),
        "another secret value gave the same key: {other:?}"
    );
    let recorded = with_key("SECRET-K", &["record", "-o", "ask.tape", s(&asks)]);
    recorded.assert_code(0);

    let mut shown = vec![first, second, other, recorded, ds(&sb, &["list", "--json"])];
    for name in entry_names(&sb) {
        shown.push(ds(&sb, &["inspect", &name]));
        shown.push(ds(&sb, &["inspect", &name, "--json"]));
    }
    shown.push(ds(&sb, &["inspect", "ask.tape"]));
    let diverged = ds(&sb, &["replay", s(&asks_more), "ask.tape"]);
    diverged.assert_code(123);
    shown.push(diverged);
    for r in &shown {
        r.assert_sane();
        for secret in ["SECRET-K", "SECRET-L"] {
            r.assert_never_printed(secret);
        }
    }
    // Neither the secret nor an unkeyed hash of it (which a dictionary would reverse).
    let plain_hash = blake3::hash(b"SECRET-K");
    let plain_hex = plain_hash.to_hex();
    let secrets: [&[u8]; 4] = [
        b"SECRET-K",
        b"SECRET-L",
        plain_hash.as_bytes(),
        plain_hex.as_bytes(),
    ];
    assert_no_file_holds(&sb.cache(), &secrets);
    let tape = std::fs::read(sb.path().join("ask.tape")).unwrap();
    for secret in secrets {
        assert!(
            !contains(&tape, secret),
            "the tape holds the secret or its plain hash"
        );
    }
}

// =============================================================================================
// 8. Terminal injection
// =============================================================================================

#[test]
fn terminal_escapes_in_guest_strings_are_neutralized() {
    let sb = Sandbox::new();
    let evil = "\x1b]52;c;SGVsbG8=\x07\x1b[31m\u{9b}2J";
    let site = SiteSpec {
        callee: format!("callee{evil}"),
        file: format!("src/{evil}main.rs"),
        value_type: format!("Type{evil}"),
        types: format!("types{evil}"),
        ..SiteSpec::plain("x")
    };
    let g = one_site_guest(
        sb.path(),
        "escapes",
        &site,
        b"\x05plain",
        &format!("({evil},)"),
    );
    run(&sb, &g, &[]).assert_code(0);
    let name = entry_names(&sb).pop().expect("an entry");
    let bad: [&[u8]; 3] = [b"\x1b", b"\x07", "\u{9b}".as_bytes()];
    for args in [
        vec!["list"],
        vec!["list", "--sort", "size"],
        vec!["inspect", name.as_str()],
    ] {
        let r = ds(&sb, &args);
        r.assert_code(0);
        for b in bad {
            assert!(
                !contains(&r.stdout, b),
                "`{}` printed the raw byte(s) {b:02x?}: {r:?}",
                args.join(" ")
            );
        }
    }
    // Shown escaped, not dropped.
    let r = ds(&sb, &["inspect", &name]);
    assert!(r.out().contains("52;c;SGVsbG8="), "{r:?}");
}

// =============================================================================================
// 9. Leftovers
// =============================================================================================

#[test]
fn temp_tapes_of_dead_processes_are_removed_and_live_ones_kept() {
    let probe = guest("probe");
    let p = s(&probe);
    let sb = Sandbox::new();
    ds(&sb, &["record", "-q", p, "double", "1"]).assert_code(0);
    let tapes = sb.cache().join("tapes");
    assert!(
        !std::path::Path::new("/proc/999999").exists(),
        "pid 999999 is running here"
    );
    let stale = tapes.join(".tmp-999999-app.tape");
    let live = tapes.join(format!(".tmp-{}-app.tape", std::process::id()));
    // What a recording killed while writing leaves: the start of a tape.
    let plant = || {
        std::fs::write(&stale, b"devstash-tape 1 half a tape").unwrap();
        std::fs::write(&live, b"devstash-tape 1 a tape being written").unwrap();
    };

    plant();
    ds(&sb, &["record", "-q", p, "double", "1"]).assert_code(0);
    assert!(
        !stale.exists(),
        "`record` left the dead process's temp tape"
    );
    assert!(live.exists(), "`record` removed a live process's temp tape");

    plant();
    ds(&sb, &["clear", "--all"]).assert_code(0);
    assert!(
        !stale.exists(),
        "`clear --all` left the dead process's temp tape"
    );
    assert!(
        live.exists(),
        "`clear --all` removed a live process's temp tape"
    );
    assert!(tapes.join("probe.tape").exists(), "tapes are kept");
}

#[test]
fn replay_of_an_absolute_deadline_poll_does_not_wait_for_it() {
    let probe = guest("probe");
    let p = s(&probe);
    let sb = Sandbox::new();
    let tape = sb.path().join("poll.tape");
    let recorded = ds(&sb, &["record", "-q", "-o", s(&tape), p, "poll-abs", "1"]);
    recorded.assert_code(0);
    assert_eq!(recorded.out(), "polled 1\n", "{recorded:?}");
    let mut rewritten = false;
    rewrite_tape(&tape, |e| {
        if let Event::Invocation(inv) = e {
            assert_eq!(inv.argv[1..], ["poll-abs", "1"]);
            inv.argv[2] = "600000".into(); // ten minutes after the recorded reading
            rewritten = true;
        }
    });
    assert!(rewritten);
    let mut cmd = sb.cmd();
    cmd.args(["replay", "-q", p, s(&tape)]);
    let r = bounded(cmd, Duration::from_secs(30));
    r.assert_sane();
    assert!([0, 123].contains(&r.code.unwrap()), "{r:?}");
}

// =============================================================================================
// Found in review
// =============================================================================================

#[test]
fn fifo_and_giant_tapes_neither_hang_nor_flood_replay_or_inspect() {
    let probe = guest("probe");
    let p = s(&probe);
    let sb = Sandbox::new();
    let fifo = sb.path().join("fifo.tape");
    mkfifo(&fifo);
    let giant = sb.path().join("giant.tape");
    {
        let f = std::fs::File::create(&giant).unwrap();
        std::io::Write::write_all(&mut &f, b"devstash-tape 1 ").unwrap();
        f.set_len(8 << 30).unwrap();
    }
    for tape in [&fifo, &giant] {
        for args in [vec!["replay", p, s(tape)], vec!["inspect", s(tape)]] {
            let mut cmd = sb.cmd();
            cmd.args(&args);
            let r = bounded(cmd, Duration::from_secs(20));
            r.assert_sane();
            assert_ne!(r.code, Some(0), "{r:?}");
            assert!(
                r.peak_rss_mib() < 256,
                "peak RSS {} MiB: {r:?}",
                r.peak_rss_mib()
            );
        }
    }
}

#[test]
fn several_memories_cannot_pass_max_memory_together() {
    let sb = Sandbox::new();
    // Four memories of 200 MiB each, each under the limit, together far over it.
    let wat = r#"(module
        (memory (export "memory") 1)
        (memory $b 3200)
        (memory $c 3200)
        (memory $d 3200)
        (func (export "_start")))"#;
    let g = sb.path().join("memories.wat");
    std::fs::write(&g, wat).unwrap();
    let r = ds(&sb, &["run", "--max-memory", "256MiB", s(&g)]);
    r.assert_sane();
    assert_ne!(r.code, Some(0), "{r:?}");
    assert!(
        r.peak_rss_mib() < 256,
        "peak RSS {} MiB: {r:?}",
        r.peak_rss_mib()
    );
}

#[test]
fn a_guest_cannot_store_under_the_hosts_http_sites() {
    let sb = Sandbox::new();
    let site = SiteSpec::plain("http::api.github.com");
    let g = one_site_guest(sb.path(), "forged_http", &site, b"forged", "");
    let r = run(&sb, &g, &[]);
    r.assert_code(134);
    assert!(r.stderr.contains("may not be named `http::"), "{r:?}");
    assert!(entry_names(&sb).is_empty(), "{:?}", entry_names(&sb));
}

#[test]
fn a_guest_cannot_point_the_cache_or_its_tapes_at_another_folder() {
    // A guest granted the project may replace `.devstash_cache` (or its `tapes/`) with a link
    // to any folder of the user's; devstash must not then write there.
    let probe = guest("probe");
    let sb = Sandbox::new();
    let outside = tempfile::tempdir().unwrap();
    assert_eq!(sb.path().parent(), outside.path().parent());
    let name = outside.path().file_name().unwrap().to_str().unwrap();
    let symlink = |target: &str, link: &str| {
        let r = ds(
            &sb,
            &["run", "--dir", ".", s(&probe), "symlink", target, link],
        );
        r.assert_code(0);
        assert!(r.out().contains("symlink ok"), "{r:?}");
    };
    let nothing_outside = || {
        let files = files_under(outside.path());
        assert!(files.is_empty(), "written outside the grant: {files:?}");
    };

    symlink(&format!("../{name}"), ".devstash_cache");
    let r = run(&sb, &probe, &["double", "3"]);
    r.assert_sane();
    assert!(r.out().contains("result 6"), "{r:?}");
    assert!(r.stderr.contains("symbolic link"), "{r:?}");
    nothing_outside();
    for args in [vec!["list"], vec!["clear", "--all"]] {
        let r = ds(&sb, &args);
        r.assert_code(125);
        assert!(r.stderr.contains("symbolic link"), "{r:?}");
    }
    let r = ds(&sb, &["record", s(&probe), "double", "3"]);
    assert_ne!(r.code, Some(0), "{r:?}");
    nothing_outside();

    // A real cache, whose `tapes/` the guest turns into a link.
    std::fs::remove_file(sb.cache()).unwrap();
    run(&sb, &probe, &["double", "3"]).assert_code(0);
    symlink(&format!("../../{name}"), ".devstash_cache/tapes");
    let r = ds(&sb, &["record", s(&probe), "double", "3"]);
    r.assert_sane();
    assert_ne!(r.code, Some(0), "{r:?}");
    nothing_outside();
}

/// A tape names the files it reads by hash: a forged one that points out of the granted folder,
/// at a FIFO, or at another file than it claims, reads nothing and never hangs; one whose reads
/// disagree with the file is a divergence, never other bytes.
#[test]
fn forged_by_hash_tapes_read_nothing_outside_the_grant() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    let data = sb.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("in.txt"), "public\n").unwrap();
    // Outside the grant, with the very contents the tape will claim.
    std::fs::write(sb.path().join("secret.txt"), "public\n").unwrap();
    let r = ds(
        &sb,
        &[
            "record",
            "-q",
            "--dir",
            "data::/data:ro",
            "--by-hash",
            "/data",
            "-o",
            "t.tape",
            s(&probe),
            "read",
            "/data/in.txt",
        ],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let tape = sb.path().join("t.tape");
    let replay = |sb: &Sandbox| {
        ds(
            sb,
            &[
                "replay",
                "-q",
                "--dir",
                "data::/data:ro",
                s(&probe),
                "t.tape",
            ],
        )
    };
    assert_eq!(replay(&sb).code, Some(0));

    for forged in ["../secret.txt", "/etc/passwd", "fifo"] {
        let original = std::fs::read(&tape).unwrap();
        rewrite_tape(&tape, |e| {
            if let Event::RefFile(f) = e {
                f.path = forged.to_string();
            }
        });
        if forged == "fifo" {
            mkfifo(&data.join("fifo"));
        }
        let r = replay(&sb);
        assert_eq!(r.code, Some(125), "{forged}: {r:?}");
        assert!(r.stderr.contains("cannot read"), "{forged}: {r:?}");
        assert!(r.stdout.is_empty(), "{forged}: {r:?}");
        std::fs::write(&tape, original).unwrap();
    }

    // A read whose recorded bytes are not the file's: a divergence, not the file's bytes.
    rewrite_tape(&tape, |e| {
        if let Event::Sys(c) = e
            && let SysData::Ref { hash, .. } = &mut c.data
        {
            hash[0] ^= 1;
        }
    });
    let r = replay(&sb);
    assert_eq!(r.code, Some(123), "{r:?}");
    assert!(r.stderr.contains("changed during the replay"), "{r:?}");
    assert!(!r.out().contains("read 7 bytes"), "{r:?}");
}
