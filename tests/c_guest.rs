//! End-to-end tests of C guests: programs written against the single-header C SDK
//! (`guest-sdk/c/devstash.h`), compiled here with clang for wasm32-wasi and run by the real
//! `devstash` binary in a scratch directory each.
//!
//! The compiler is required, not optional: on Debian/Ubuntu it is
//! `apt-get install clang lld wasi-libc libclang-rt-dev-wasm32` (`.ci/run` installs it).
//! `WASI_CC` and `WASI_SYSROOT` point the tests at another clang or sysroot (e.g. wasi-sdk's).
//! Memoized functions print `computing...` / `computed ...` when they really run: a run whose
//! stdout lacks it did not run them, and the runner's summary line says the same.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Sandbox, assert_same, workspace};

const PACKAGES: &str = "clang lld wasi-libc libclang-rt-dev-wasm32";

/// The C compiler the tests use.
fn cc() -> String {
    std::env::var("WASI_CC").unwrap_or_else(|_| "clang".into())
}

/// Runs a compiler command, failing the test with a message that names what to install when
/// the compiler is missing.
fn compile(mut cmd: Command, what: &str) -> std::process::Output {
    match cmd.current_dir(workspace()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{}` was not found: the C guest tests build {what} with clang for wasm32-wasi. \
             Install the toolchain (Debian/Ubuntu: `apt-get install {PACKAGES}`), or set \
             WASI_CC to a clang that can build for wasm32-wasi",
            cc()
        ),
        Err(e) => panic!("cannot run `{}`: {e}", cc()),
    }
}

/// Compiles the C file `src` (relative to the workspace, so that `__FILE__` is too) with
/// `extra` flags into `out_dir/name.wasm`, for wasm32-wasi (clang 14's name of the target; a
/// newer clang and sysroot may know only `wasm32-wasip1`, tried next).
fn build_wasm(src: &str, out_dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = out_dir.join(format!("{name}.wasm"));
    let sysroot = std::env::var("WASI_SYSROOT").unwrap_or_else(|_| "/usr".into());
    let mut errors = Vec::new();
    for target in ["wasm32-wasi", "wasm32-wasip1"] {
        let mut cmd = Command::new(cc());
        cmd.arg(format!("--target={target}"))
            .arg(format!("--sysroot={sysroot}"))
            .args(["-O2", "-Wall", "-Wextra", "-Werror", "-I"])
            .arg(workspace().join("guest-sdk/c"))
            .args(extra)
            .arg("-o")
            .arg(&out)
            .arg(src);
        let result = compile(cmd, src);
        if result.status.success() {
            return out;
        }
        errors.push(format!(
            "--target={target}:\n{}",
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    panic!(
        "building {src} for wasm32-wasi failed. The toolchain needs clang, lld (wasm-ld), \
         wasi-libc (sysroot {sysroot}) and the wasm32 compiler-rt builtins (Debian/Ubuntu: \
         `apt-get install {PACKAGES}`).\n{}",
        errors.join("\n")
    );
}

/// `examples/c/slow.c`, built into `dir`.
fn slow(dir: &Path) -> PathBuf {
    build_wasm("examples/c/slow.c", dir, "slow", &[])
}

/// `guest-sdk/c/tests/probe.c`, built into `dir`.
fn probe(dir: &Path) -> PathBuf {
    build_wasm("guest-sdk/c/tests/probe.c", dir, "probe", &[])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The C quickstart memoizes across runs: the first run computes `slow_square(12)` (2 s,
/// printing `computing...`) and stores it, the second answers from the cache without running
/// it, with the same output, and `devstash list` shows the entry under its site.
#[test]
fn c_example_computes_once_then_hits() {
    let build = tempfile::tempdir().unwrap();
    let module = slow(build.path());
    let sb = Sandbox::new();

    let first = sb.run(&module, &[]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(first.stdout, "computing...\n144\n", "{first:?}");
    assert!(
        first.stderr.contains("devstash: 0 hits, 1 miss, 1 stored"),
        "{first:?}"
    );

    let second = sb.run(&module, &[]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(
        !second.stdout.contains("computing"),
        "the call ran again: {second:?}"
    );
    assert_eq!(second.stdout, "144\n", "{second:?}");
    assert!(
        second
            .stderr
            .contains("devstash: 1 hit, 0 misses, 0 stored; saved 2."),
        "{second:?}"
    );

    let list = sb.devstash(&["list"]);
    assert_eq!(list.code, 0, "{list:?}");
    assert!(list.stdout.contains("slow.c::slow_square"), "{list:?}");
    assert!(list.stdout.contains("slow.c__slow_square__"), "{list:?}");
    assert!(list.stdout.contains("1 entry"), "{list:?}");

    // Another argument is another call.
    let seven = sb.run(&module, &["7"]);
    assert_eq!(seven.stdout, "computing...\n49\n", "{seven:?}");
    assert_eq!(sb.entries().len(), 2);
}

/// A C guest records and replays: a recording in which the call computes (and prints inside
/// it) replays byte for byte without running the call, and `replay --verify` passes. (This
/// needs the SDK to settle stdout's buffering before the first lookup: were libc's terminal
/// check made inside the computed call, the replay would diverge.)
#[test]
fn c_example_records_and_replays() {
    let build = tempfile::tempdir().unwrap();
    let module = slow(build.path());
    let m = s(&module);
    let sb = Sandbox::new();

    let recorded = sb.devstash(&["record", "-q", m]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    assert_eq!(recorded.stdout, "computing...\n144\n", "{recorded:?}");
    assert!(sb.cache().join("tapes/slow.tape").exists());

    let started = std::time::Instant::now();
    let replayed = sb.devstash(&["replay", "-q", m]);
    assert_same("replay", &recorded, &replayed);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the replay ran the 2 s call: {replayed:?}"
    );
    let verified = sb.devstash(&["replay", "--verify", m]);
    assert_eq!(verified.code, 0, "{verified:?}");
    assert!(verified.stderr.contains("verified"), "{verified:?}");

    // A recording that hits replays too.
    let warm = sb.devstash(&["record", "-q", "-o", "warm.tape", m]);
    assert_eq!(warm.stdout, "144\n", "{warm:?}");
    let verified = sb.devstash(&["replay", "--verify", m, "warm.tape"]);
    assert_eq!(verified.code, 0, "{verified:?}");
}

/// `devstash inspect` describes C sites like Rust ones: the module's `devstash.sites` custom
/// section (written by the SDK's macros) lists the site with its location, kind and version,
/// and a stored entry shows the arguments preview and the C value type.
#[test]
fn c_sites_are_described_by_inspect() {
    let build = tempfile::tempdir().unwrap();
    let module = slow(build.path());
    let sb = Sandbox::new();

    let sites = sb.devstash(&["inspect", s(&module)]);
    assert_eq!(sites.code, 0, "{sites:?}");
    for needle in [
        "1 marked site (devstash ABI 2)",
        "slow.c::slow_square",
        "examples/c/slow.c:",
        " fn ",
        "v1",
        "devstash: log, site_register, stash_begin, stash_end, stash_get, stash_put, stash_take",
    ] {
        assert!(sites.stdout.contains(needle), "{needle}: {sites:?}");
    }

    assert_eq!(sb.run(&module, &["3"]).code, 0);
    let entry = sb.entries().remove(0);
    let name = entry.file_name().unwrap().to_str().unwrap();
    let shown = sb.devstash(&["inspect", name]);
    assert_eq!(shown.code, 0, "{shown:?}");
    for needle in [
        "site       slow.c::slow_square",
        "value type int64_t",
        "args       (3)",
        "payload    8 B",
    ] {
        assert!(shown.stdout.contains(needle), "{needle}: {shown:?}");
    }
}

/// A site's key follows its code as the SDK sees it: the same source built from another path
/// still hits (the location is not part of the key), while a new version string, or a
/// file-wide `DEVSTASH_FINGERPRINT`, makes the call compute again.
#[test]
fn c_version_strings_invalidate_entries() {
    let build = tempfile::tempdir().unwrap();
    let sb = Sandbox::new();
    let original = slow(build.path());
    assert!(sb.run(&original, &[]).stdout.contains("computing"));

    let source = std::fs::read_to_string(workspace().join("examples/c/slow.c")).unwrap();
    let elsewhere = build.path().join("slow.c");
    std::fs::write(&elsewhere, &source).unwrap();
    let moved = build_wasm(s(&elsewhere), build.path(), "moved", &[]);
    let hit = sb.run(&moved, &[]);
    assert_eq!(hit.stdout, "144\n", "{hit:?}");

    assert!(source.contains("\"v1\")"));
    let edited_dir = build.path().join("edited");
    std::fs::create_dir(&edited_dir).unwrap();
    let edited = edited_dir.join("slow.c");
    std::fs::write(&edited, source.replace("\"v1\")", "\"v2\")")).unwrap();
    let v2 = build_wasm(s(&edited), build.path(), "v2", &[]);
    let miss = sb.run(&v2, &[]);
    assert_eq!(miss.stdout, "computing...\n144\n", "{miss:?}");
    assert_eq!(
        sb.run(&v2, &[]).stdout,
        "144\n",
        "the new version is stored"
    );

    let fingerprinted = build_wasm(
        "examples/c/slow.c",
        build.path(),
        "fingerprinted",
        &["-DDEVSTASH_FINGERPRINT=\"0123abcd\""],
    );
    let miss = sb.run(&fingerprinted, &[]);
    assert_eq!(miss.stdout, "computing...\n144\n", "{miss:?}");
    assert_eq!(sb.entries().len(), 3);
}

/// The bytes layer of the SDK: arguments built with `devstash_args` are canonical and
/// length-prefixed (`("ab", "c")` and `("a", "bc")` are two entries), `devstash_memoize`
/// returns stored bytes intact, and a call that fails (returns NULL) is never stored.
#[test]
fn c_bytes_api_keys_by_canonical_arguments() {
    let build = tempfile::tempdir().unwrap();
    let module = probe(build.path());
    let sb = Sandbox::new();

    let ab_c = sb.run(&module, &["words", "ab", "c"]);
    assert_eq!(
        ab_c.stdout, "computed shout(ab, c)\nresult ab!c! (5 bytes)\n",
        "{ab_c:?}"
    );
    let a_bc = sb.run(&module, &["words", "a", "bc"]);
    assert_eq!(
        a_bc.stdout, "computed shout(a, bc)\nresult a!bc! (5 bytes)\n",
        "{a_bc:?}"
    );
    let again = sb.run(&module, &["words", "ab", "c"]);
    assert_eq!(again.stdout, "result ab!c! (5 bytes)\n", "{again:?}");
    assert!(again.stderr.contains("1 hit, 0 misses"), "{again:?}");
    assert_eq!(sb.entries().len(), 2);

    // The preview passed to devstash_memoize is kept with the entry.
    let shown: Vec<String> = sb
        .entries()
        .iter()
        .map(|e| sb.devstash(&["inspect", s(e)]).stdout)
        .collect();
    assert!(
        shown
            .iter()
            .any(|out| out.contains(r#"args       ("ab", "c")"#)),
        "{shown:#?}"
    );

    for _ in 0..2 {
        let failed = sb.run(&module, &["fail", "x"]);
        assert_eq!(failed.code, 0, "{failed:?}");
        assert_eq!(
            failed.stdout, "computed always_fails\nfailed\n",
            "{failed:?}"
        );
        assert!(failed.stderr.contains("0 stored"), "{failed:?}");
    }
    assert_eq!(sb.entries().len(), 2, "a failed call was stored");

    // DEVSTASH_STASHED on doubles.
    let half = sb.run(&module, &["half", "3"]);
    assert_eq!(half.stdout, "computed half(3)\nresult 1.5\n", "{half:?}");
    assert_eq!(sb.run(&module, &["half", "3"]).stdout, "result 1.5\n");
}

/// Large values: a 3 MiB value from `DEVSTASH_STASHED_BYTES` is restored intact, and damage to
/// its entry (caught as the value is read into the guest) makes the SDK ask for a fresh ticket
/// and recompute it, never return the damaged bytes.
#[test]
fn c_large_values_restore_intact_and_damage_recomputes() {
    let build = tempfile::tempdir().unwrap();
    let module = probe(build.path());
    let sb = Sandbox::new();

    let first = sb.run(&module, &["big", "3"]);
    assert_eq!(
        first.stdout, "computed blob(3)\nblob 3 MiB, intact\n",
        "{first:?}"
    );
    let hit = sb.run(&module, &["big", "3"]);
    assert_eq!(hit.stdout, "blob 3 MiB, intact\n", "{hit:?}");

    let entry = sb.entries().remove(0);
    let good = std::fs::read(&entry).unwrap();
    for at in [good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(&entry, &bad).unwrap();
        let r = sb.run(&module, &["big", "3"]);
        assert_eq!(r.code, 0, "flip at {at}: {r:?}");
        assert_eq!(
            r.stdout, "computed blob(3)\nblob 3 MiB, intact\n",
            "flip at {at}: {r:?}"
        );
        assert!(
            r.stderr.contains("0 hits, 1 miss, 1 stored"),
            "flip at {at}: {r:?}"
        );
        let next = sb.run(&module, &["big", "3"]);
        assert_eq!(
            next.stdout, "blob 3 MiB, intact\n",
            "flip at {at}: {next:?}"
        );
    }
}

/// A TTL given with `DEVSTASH_SITE_TTL` is honoured: the entry answers within it and is
/// recomputed once it has expired. (This mode uses the low-level get/take/put helpers.)
#[test]
fn c_ttl_expires() {
    let build = tempfile::tempdir().unwrap();
    let module = probe(build.path());
    let sb = Sandbox::new();

    let first = sb.run(&module, &["ttl", "4"]);
    assert_eq!(first.stdout, "computed brief(4)\nresult 5\n", "{first:?}");
    let hit = sb.run(&module, &["ttl", "4"]);
    assert_eq!(hit.stdout, "result 5\n", "{hit:?}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let expired = sb.run(&module, &["ttl", "4"]);
    assert_eq!(
        expired.stdout, "computed brief(4)\nresult 5\n",
        "{expired:?}"
    );
    assert!(expired.stderr.contains("1 expired"), "{expired:?}");
}

/// The header also builds natively (for a program's own tests): with no runner, every site runs
/// uncached and the results are the same.
#[test]
fn c_sdk_builds_natively_and_runs_uncached() {
    let build = tempfile::tempdir().unwrap();
    let exe = build.path().join("probe-native");
    let mut cmd = Command::new(cc());
    cmd.args(["-O2", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(workspace().join("guest-sdk/c"))
        .arg("-o")
        .arg(&exe)
        .arg("guest-sdk/c/tests/probe.c");
    let out = compile(cmd, "guest-sdk/c/tests/probe.c natively");
    assert!(
        out.status.success(),
        "building probe.c natively failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..2 {
        let run = Command::new(&exe)
            .args(["words", "ab", "c"])
            .output()
            .unwrap();
        assert!(run.status.success());
        assert_eq!(
            String::from_utf8_lossy(&run.stdout),
            "computed shout(ab, c)\nresult ab!c! (5 bytes)\n"
        );
    }
}
