//! End-to-end tests of the core loop (`devstash run`, the SDK markers, the store): real guests
//! built for wasm32-wasip1, driven through the real `devstash` binary.

mod common;

use std::path::{Path, PathBuf};

use common::{Sandbox, guest};

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn first_run_computes_second_run_hits() {
    let sb = Sandbox::new();
    let probe = guest("probe");

    let first = sb.run(&probe, &["double", "21"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.stdout.contains("computed double(21)"), "{first:?}");
    assert!(first.stdout.contains("result 42"));
    assert!(
        first.stderr.contains("devstash: 0 hits, 1 miss, 1 stored"),
        "{first:?}"
    );

    let second = sb.run(&probe, &["double", "21"]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(
        !second.stdout.contains("computed"),
        "the call ran again: {second:?}"
    );
    assert!(second.stdout.contains("result 42"));
    assert!(
        second
            .stderr
            .contains("devstash: 1 hit, 0 misses, 0 stored; saved"),
        "{second:?}"
    );

    let entries = sb.entries();
    assert_eq!(entries.len(), 1);
    let name = entries[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        name.starts_with("probe__double__") && name.ends_with(".stash"),
        "{name}"
    );
    assert_eq!(name.len(), "probe__double__".len() + 16 + ".stash".len());
}

#[test]
fn quickstart_computes_then_hits() {
    let sb = Sandbox::new();
    let qs = guest("quickstart");
    let first = sb.run(&qs, &[]);
    assert_eq!(first.stdout, "Running slow_function...\n20\n", "{first:?}");
    let second = sb.run(&qs, &[]);
    assert_eq!(second.stdout, "20\n", "{second:?}");
    // The hit reports the two seconds the first run spent.
    assert!(second.stderr.contains("saved 2."), "{second:?}");
}

#[test]
fn arguments_are_part_of_the_key() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    assert!(
        sb.run(&probe, &["double", "4"])
            .stdout
            .contains("computed double(4)")
    );
    let five = sb.run(&probe, &["double", "5"]);
    assert!(five.stdout.contains("computed double(5)") && five.stdout.contains("result 10"));
    assert_eq!(sb.entries().len(), 2);
    let again = sb.run(&probe, &["double", "4"]);
    assert!(!again.stdout.contains("computed") && again.stdout.contains("result 8"));

    // Several calls in one run: each distinct argument is its own entry.
    let many = sb.run(&probe, &["many", "6"]);
    assert_eq!(count(&many.stdout, "computed double("), 4, "{many:?}"); // 4 and 5 were stored
    assert!(many.stdout.contains("total 30"));
    assert!(
        many.stderr.contains("2 hits, 4 misses, 4 stored"),
        "{many:?}"
    );
}

#[test]
fn structs_methods_and_nested_calls() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    for (args, computed, out) in [
        (["struct", "a"], "computed summarize(a)", "stats 4 2.5 a"),
        (
            ["method", "3"],
            "computed scale(factor=3)",
            "scaled [3.0, 6.0]",
        ),
        (["nested", "5"], "computed outer(5)", "result 11"),
    ] {
        let first = sb.run(&probe, &args);
        assert!(
            first.stdout.contains(computed) && first.stdout.contains(out),
            "{first:?}"
        );
        let second = sb.run(&probe, &args);
        assert!(!second.stdout.contains("computed"), "{second:?}");
        assert!(second.stdout.contains(out), "{second:?}");
    }
    // A method call's receiver is part of the key.
    let other = sb.run(&probe, &["method", "4"]);
    assert!(
        other.stdout.contains("computed scale(factor=4)") && other.stdout.contains("[4.0, 8.0]")
    );
}

#[test]
fn only_ok_results_are_stored() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    for _ in 0..2 {
        let r = sb.run(&probe, &["checked", "-1"]);
        assert!(
            r.stdout.contains("computed checked(-1)") && r.stdout.contains("err -1 is negative")
        );
    }
    assert!(sb.entries().is_empty(), "an Err was stored");
    assert!(
        sb.run(&probe, &["checked", "3"])
            .stdout
            .contains("computed checked(3)")
    );
    let hit = sb.run(&probe, &["checked", "3"]);
    assert!(
        !hit.stdout.contains("computed") && hit.stdout.contains("ok 30"),
        "{hit:?}"
    );
}

#[test]
fn ttl_expires() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    assert!(
        sb.run(&probe, &["short", "1"])
            .stdout
            .contains("computed short_lived(1)")
    );
    let fresh = sb.run(&probe, &["short", "1"]);
    assert!(!fresh.stdout.contains("computed"), "{fresh:?}");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let expired = sb.run(&probe, &["short", "1"]);
    assert!(
        expired.stdout.contains("computed short_lived(1)"),
        "{expired:?}"
    );
    assert!(expired.stderr.contains("1 expired"), "{expired:?}");
    assert!(expired.stdout.contains("result 2"));
    // The recomputed value was stored again and is fresh.
    assert!(!sb.run(&probe, &["short", "1"]).stdout.contains("computed"));
}

#[test]
fn no_cache_runs_everything_and_stores_nothing() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    let r = sb.run(&probe, &["--no-cache"]);
    // Options go before the module: after it they are the guest's.
    assert_ne!(r.code, 0);

    let mut cmd = sb.cmd();
    let off = cmd
        .args(["run", "--no-cache", probe.to_str().unwrap(), "double", "3"])
        .output()
        .unwrap();
    let off: common::Run = off.into();
    assert!(off.stdout.contains("computed double(3)"), "{off:?}");
    assert!(
        off.stderr.contains("caching off; 1 marked call ran"),
        "{off:?}"
    );
    assert!(sb.entries().is_empty());

    // With an entry present, the switch still runs the call; so does DEVSTASH_SKIP=1.
    sb.run(&probe, &["double", "3"]);
    assert_eq!(sb.entries().len(), 1);
    let skip: common::Run = sb
        .cmd()
        .env("DEVSTASH_SKIP", "1")
        .args(["run", probe.to_str().unwrap(), "double", "3"])
        .output()
        .unwrap()
        .into();
    assert!(skip.stdout.contains("computed double(3)"), "{skip:?}");
}

#[test]
fn refresh_recomputes_matching_entries() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    let p = probe.to_str().unwrap();
    sb.run(&probe, &["double", "3"]);
    sb.run(&probe, &["struct", "x"]);
    let before = std::fs::read(&sb.entries()[0]).unwrap();

    let r = sb.devstash(&["run", "--refresh=double", p, "double", "3"]);
    assert!(r.stdout.contains("computed double(3)"), "{r:?}");
    let r = sb.devstash(&["run", "--refresh=double", p, "struct", "x"]);
    assert!(
        !r.stdout.contains("computed"),
        "a non-matching entry was recomputed: {r:?}"
    );
    let r = sb.devstash(&["run", "--refresh=probe::summ*", p, "struct", "x"]);
    assert!(r.stdout.contains("computed summarize(x)"), "{r:?}");
    let r = sb.devstash(&["run", "--refresh", p, "double", "3"]);
    assert!(r.stdout.contains("computed double(3)"), "{r:?}");
    // The refreshed entry was rewritten (new created time and compute time).
    let after = std::fs::read(&sb.entries()[0]).unwrap();
    assert_ne!(before, after);
    assert!(!sb.run(&probe, &["double", "3"]).stdout.contains("computed"));

    let bad = sb.devstash(&["run", "--refresh=[", p, "double", "3"]);
    assert_eq!(bad.code, 125);
    assert!(bad.stderr.contains("invalid pattern"), "{bad:?}");
}

#[test]
fn corrupt_or_truncated_entries_are_misses_with_a_warning() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    sb.run(&probe, &["double", "8"]);
    let entry = sb.entries().remove(0);
    let good = std::fs::read(&entry).unwrap();

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40; // the payload: the stored value itself
    let damaged: [(&str, Vec<u8>); 3] = [
        ("flipped", flipped),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in damaged {
        std::fs::write(&entry, &bytes).unwrap();
        // The pack beside the files holds a second copy; the entry is lost only when both are.
        sb.drop_pack();
        let r = sb.run(&probe, &["double", "8"]);
        assert_eq!(r.code, 0, "{what}: {r:?}");
        assert!(r.stdout.contains("computed double(8)"), "{what}: {r:?}");
        assert!(r.stdout.contains("result 16"), "{what}: wrong value {r:?}");
        assert!(
            r.stderr.contains("warning:") && r.stderr.contains("recomputing"),
            "{what}: {r:?}"
        );
        assert!(
            r.stderr
                .contains(entry.file_name().unwrap().to_str().unwrap())
        );
        // It was rewritten: the next run hits, with no warning.
        let next = sb.run(&probe, &["double", "8"]);
        assert!(
            !next.stdout.contains("computed") && !next.stderr.contains("warning"),
            "{next:?}"
        );
    }
}

/// The pack of entry copies never answers for an entry whose file was removed by hand, whether
/// the run loads it on demand (a small cache) or ahead, on another thread (a large one).
#[test]
fn entries_removed_by_hand_are_recomputed_despite_the_pack() {
    for calls in ["40", "400"] {
        let sb = Sandbox::new();
        let probe = guest("probe");
        let first = sb.run(&probe, &["many", calls]);
        let total = first.stdout.lines().last().unwrap().to_string();
        let pack = std::fs::metadata(sb.cache().join("index.pack"))
            .unwrap()
            .len();
        // 400 small entries make a pack large enough to be loaded ahead (16 KiB and more).
        assert_eq!(pack >= 16 << 10, calls == "400", "pack of {pack} bytes");
        let mut entries = sb.entries();
        entries.sort();
        for e in entries.iter().step_by(entries.len() / 3).take(3) {
            std::fs::remove_file(e).unwrap();
        }
        let again = sb.run(&probe, &["many", calls]);
        assert_eq!(
            again.stdout.lines().last(),
            Some(total.as_str()),
            "{again:?}"
        );
        assert_eq!(again.stdout.matches("computed").count(), 3, "{again:?}");
        let hits = format!(
            "{} hits, 3 misses, 3 stored",
            calls.parse::<u32>().unwrap() - 3
        );
        assert!(again.stderr.contains(&hits), "{again:?}");
        let third = sb.run(&probe, &["many", calls]);
        assert!(!third.stdout.contains("computed"), "{third:?}");
    }
}

/// A run that lists a settled cache directory leaves a stamp in the pack, and the next runs
/// trust it instead of listing, until the directory changes: entries removed by hand after the
/// stamp are still recomputed, and the directory is listed again.
#[test]
fn a_stamp_stands_in_for_the_listing_until_the_directory_changes() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    let run = || -> common::Run {
        sb.cmd()
            .env("DEVSTASH_LOG", "debug")
            .args(["run", probe.to_str().unwrap(), "many", "400"])
            .output()
            .expect("devstash runs")
            .into()
    };
    let settle = || std::thread::sleep(std::time::Duration::from_millis(250));
    let first = run();
    assert!(first.stderr.contains("400 stored"), "{first:?}");
    let total = first.stdout.lines().last().unwrap().to_string();
    settle();
    let listed = run();
    assert!(listed.stderr.contains("directory listed"), "{listed:?}");
    let trusted = run();
    assert!(trusted.stderr.contains("its stamp trusted"), "{trusted:?}");
    assert!(trusted.stderr.contains("400 hits, 0 misses"), "{trusted:?}");
    assert_eq!(trusted.stdout.lines().last(), Some(total.as_str()));
    // Entries removed by hand: the directory changed, so it is listed again and they are
    // recomputed, never served from the pack.
    let entries = sb.entries();
    for e in entries.iter().step_by(100) {
        std::fs::remove_file(e).unwrap();
    }
    let again = run();
    assert!(again.stderr.contains("directory listed"), "{again:?}");
    assert!(
        again.stderr.contains("396 hits, 4 misses, 4 stored"),
        "{again:?}"
    );
    assert_eq!(again.stdout.lines().last(), Some(total.as_str()));
    settle();
    run();
    let trusted = run();
    assert!(trusted.stderr.contains("its stamp trusted"), "{trusted:?}");
    assert!(trusted.stderr.contains("400 hits, 0 misses"), "{trusted:?}");
}

/// Values of every restore path, small and large: bytes, text and byte buffers (read straight
/// into their buffer) and a struct (decoded), each stored once and then restored intact.
#[test]
fn values_of_every_size_restore_intact() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    // 9 MiB spans enough checksum segments to be read by several threads.
    for size in ["0", "1", "127", "128", "70000", "3000000", "9437184"] {
        for cmd in ["big", "text", "bytes"] {
            let first = sb.run(&probe, &[cmd, size]);
            let label = if cmd == "big" { "blob" } else { cmd };
            let want = format!("{label} {size} bytes, intact");
            assert!(first.stdout.contains(&want), "{cmd} {size}: {first:?}");
            assert!(first.stdout.contains("computed"), "{cmd} {size}: {first:?}");
            let again = sb.run(&probe, &[cmd, size]);
            assert!(again.stdout.contains(&want), "{cmd} {size}: {again:?}");
            assert!(
                !again.stdout.contains("computed"),
                "{cmd} {size}: {again:?}"
            );
            assert!(again.stderr.contains("1 hit"), "{cmd} {size}: {again:?}");
        }
    }
}

/// A large entry is verified as it is read into the guest: damage anywhere in it (header,
/// middle, last byte) is caught, reported, recomputed and rewritten.
#[test]
fn damage_in_a_large_entry_is_caught_as_it_is_read() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    let size = (9 << 20).to_string();
    sb.run(&probe, &["bytes", &size]);
    let entry = sb.entries().remove(0);
    let good = std::fs::read(&entry).unwrap();
    let header_end = good.iter().position(|&b| b == b'\n').unwrap() + 20;
    for at in [header_end, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(&entry, &bad).unwrap();
        let r = sb.run(&probe, &["bytes", &size]);
        assert_eq!(r.code, 0, "flip at {at}: {r:?}");
        assert!(
            r.stdout.contains("computed") && r.stdout.contains("intact"),
            "flip at {at}: {r:?}"
        );
        assert!(
            r.stderr.contains("warning:") && r.stderr.contains("recomputing"),
            "flip at {at}: {r:?}"
        );
        assert!(
            r.stderr.contains("0 hits, 1 miss, 1 stored"),
            "flip at {at}: {r:?}"
        );
        let next = sb.run(&probe, &["bytes", &size]);
        assert!(
            !next.stdout.contains("computed") && next.stdout.contains("intact"),
            "flip at {at}: {next:?}"
        );
        assert!(!next.stderr.contains("warning"), "flip at {at}: {next:?}");
    }
}

#[test]
fn exit_codes_and_traps() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    assert_eq!(sb.run(&probe, &["exit", "7"]).code, 7);
    assert_eq!(sb.run(&probe, &["exit", "0"]).code, 0);
    let trap = sb.run(&probe, &["panic"]);
    assert_eq!(trap.code, 134, "{trap:?}");
    assert!(trap.stderr.contains("probe was told to panic"), "{trap:?}");
    // A panic leads with its message (the guest's) and the program's own frame, not std's
    // panic machinery; `-v` shows the whole backtrace.
    assert!(
        trap.stderr
            .contains("error: the guest panicked (its message is above), in probe::"),
        "{trap:?}"
    );
    assert!(!trap.stderr.contains("rust_panic"), "{trap:?}");
    let verbose = sb.devstash(&["run", "-v", probe.to_str().unwrap(), "panic"]);
    assert_eq!(verbose.code, 134, "{verbose:?}");
    assert!(
        verbose.stderr.contains("guest backtrace:") && verbose.stderr.contains("rust_panic"),
        "{verbose:?}"
    );
    // A trap that is not a panic keeps its backtrace.
    let wat = write(
        sb.path(),
        "div.wat",
        br#"(module (func $crash (drop (i32.div_u (i32.const 1) (i32.const 0)))) (func (export "_start") (call $crash)))"#,
    );
    let div = sb.run(&wat, &[]);
    assert_eq!(div.code, 134, "{div:?}");
    assert!(
        div.stderr.contains("error: the guest trapped") && div.stderr.contains("guest backtrace:"),
        "{div:?}"
    );
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn bad_modules_get_one_clear_line() {
    let sb = Sandbox::new();
    let cases: Vec<(PathBuf, &str)> = vec![
        (write(sb.path(), "notes.wasm", b"hello, not wasm"), "is not a WebAssembly module"),
        (
            write(sb.path(), "comp.wasm", b"\0asm\x0d\0\x01\0"),
            "is a WebAssembly component; devstash runs core modules",
        ),
        (sb.path().join("missing.wasm"), "cannot read module"),
        (
            write(sb.path(), "env.wat", br#"(module (import "env" "foo" (func)) (func (export "_start")))"#),
            "imports `env::foo`, which devstash does not provide",
        ),
        (
            // The Python runtime's bridge is linked for the runtime only.
            write(
                sb.path(),
                "bridge.wat",
                br#"(module (import "host" "call" (func (param i32 i32 i32 i32) (result i32))) (memory (export "memory") 1) (func (export "_start")))"#,
            ),
            "imports `host::call`, which devstash does not provide",
        ),
        (
            write(
                sb.path(),
                "newer.wat",
                br#"(module (import "devstash" "teleport" (func)) (memory (export "memory") 1) (func (export "_start")))"#,
            ),
            "built with a newer devstash SDK",
        ),
        (
            write(sb.path(), "lib.wat", br#"(module (memory (export "memory") 1))"#),
            "has no `_start` function",
        ),
        (write(sb.path(), "broken.wasm", b"\0asm\x01\0\0\0\x01\xff"), "is not a valid WebAssembly module"),
    ];
    for (path, expected) in cases {
        let r = sb.run(&path, &[]);
        assert_eq!(r.code, 125, "{}: {r:?}", path.display());
        assert!(r.stderr.contains(expected), "{}: {r:?}", path.display());
        assert!(!r.stderr.contains("panicked"), "{r:?}");
    }
}

#[test]
fn hostile_import_calls_trap_cleanly() {
    let sb = Sandbox::new();
    let cases = [
        // A site descriptor that lies outside memory.
        (
            r#"(call $reg (i32.const 65530) (i32.const 100)) drop"#,
            "lies outside the guest's memory",
        ),
        // Bytes that are not a site descriptor.
        (
            r#"(call $reg (i32.const 0) (i32.const 3)) drop"#,
            "does not decode",
        ),
        // A handle that was never registered.
        (
            r#"(call $get (i32.const 9) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 64)) drop"#,
            "unknown site handle 9",
        ),
        // A take with nothing pending, a put with an unknown ticket.
        (
            r#"(call $take (i32.const 0) (i32.const 4)) drop"#,
            "no pending value",
        ),
        (
            r#"(call $put (i64.const 77) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0)) drop"#,
            "unknown ticket 77",
        ),
    ];
    for (body, expected) in cases {
        let wat = format!(
            r#"(module {imports}
                (memory (export "memory") 1)
                (func (export "_start") {body}))"#,
            imports = common::DEVSTASH_IMPORTS_WAT
        );
        let m = write(sb.path(), "hostile.wat", wat.as_bytes());
        let r = sb.run(&m, &[]);
        assert_eq!(r.code, 134, "{body}: {r:?}");
        assert!(r.stderr.contains(expected), "{body}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{r:?}");
    }
}

#[test]
fn cache_dir_flag_and_environment() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    let p = probe.to_str().unwrap();
    let r = sb.devstash(&["run", "--cache-dir", "elsewhere", p, "double", "2"]);
    assert!(r.stdout.contains("computed"), "{r:?}");
    assert!(sb.path().join("elsewhere/CACHEDIR.TAG").exists());
    assert!(!sb.cache().exists());
    let via_env: common::Run = sb
        .cmd()
        .env("DEVSTASH_CACHE_DIR", "elsewhere")
        .args(["run", p, "double", "2"])
        .output()
        .unwrap()
        .into();
    assert!(!via_env.stdout.contains("computed"), "{via_env:?}");
}

/// A guest crate outside the workspace, built twice with one edit, to show which edits
/// invalidate entries.
fn editable_guest(dir: &Path, name: &str, helper_body: &str, banner: &str) -> PathBuf {
    let sdk = common::workspace().join("guest-sdk");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dependencies]\ndevstash = {{ path = {:?} }}\n\n[workspace]\n",
            sdk.to_str().unwrap(),
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("src/main.rs"),
        format!(
            r#"use devstash::{{stash, stashed}};

fn helper(x: u64) -> u64 {{ {helper_body} }}

fn slow(x: u64) -> u64 {{
    println!("computed slow({{x}})");
    helper(x)
}}

#[stashed]
fn attr(x: u64) -> u64 {{
    println!("computed attr({{x}})");
    x + 1
}}

fn main() {{
    println!("{banner}");
    println!("slow {{}}", stash!(slow(3)));
    println!("attr {{}}", attr(3));
}}
"#
        ),
    )
    .unwrap();
    common::build_crate(dir, name)
}

#[test]
fn editing_a_marked_function_invalidates_its_entries_and_nothing_else() {
    let sb = Sandbox::new();
    let src = tempfile::tempdir().unwrap();
    let keep = |m: &Path, name: &str| -> PathBuf {
        let p = sb.path().join(name);
        std::fs::copy(m, &p).unwrap();
        p
    };
    let v1 = keep(
        &editable_guest(src.path(), "edit_helper", "x * 2", "v1"),
        "v1.wasm",
    );
    let r = sb.run(&v1, &[]);
    assert!(
        r.stdout.contains("computed slow(3)") && r.stdout.contains("slow 6"),
        "{r:?}"
    );
    assert!(r.stdout.contains("computed attr(3)"));

    // Editing code the marked functions do not reach (here, main's output) keeps every entry.
    let v2 = keep(
        &editable_guest(src.path(), "edit_helper", "x * 2", "v2 with a new banner"),
        "v2.wasm",
    );
    let r = sb.run(&v2, &[]);
    assert!(
        !r.stdout.contains("computed"),
        "an unrelated edit invalidated entries: {r:?}"
    );
    assert!(r.stdout.contains("slow 6"));

    // Editing a function the marked call reaches invalidates that call's entry only.
    let v3 = keep(
        &editable_guest(src.path(), "edit_helper", "x * 3", "v2 with a new banner"),
        "v3.wasm",
    );
    let r = sb.run(&v3, &[]);
    assert!(
        r.stdout.contains("computed slow(3)") && r.stdout.contains("slow 9"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("computed attr"), "{r:?}");
}

#[test]
fn editing_a_stashed_function_body_invalidates_it() {
    let sb = Sandbox::new();
    let src = tempfile::tempdir().unwrap();
    let m = editable_guest(src.path(), "edit_attr", "x * 2", "v1");
    sb.run(&m, &[]);
    let main_rs = src.path().join("src/main.rs");
    let text = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(&main_rs, text.replace("x + 1\n", "x + 100\n")).unwrap();
    let m = common::build_crate(src.path(), "edit_attr");
    let r = sb.run(&m, &[]);
    assert!(
        r.stdout.contains("computed attr(3)") && r.stdout.contains("attr 103"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("computed slow"), "{r:?}");
}

#[test]
fn guest_arguments_environment_and_directories() {
    let sb = Sandbox::new();
    let parse = guest("parse");
    let data = sb.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut csv = String::from("city,temp\n");
    for i in 0..1000 {
        csv.push_str(&format!("c{},{}\n", i % 7, i % 40));
    }
    std::fs::write(data.join("weather.csv"), &csv).unwrap();

    // Nothing is granted by default: the guest cannot see the file.
    let denied = sb.run(&parse, &["/data/weather.csv"]);
    assert_ne!(denied.code, 0, "{denied:?}");

    let run = |extra: &[&str]| -> common::Run {
        let mut args = vec![
            "run",
            "--dir",
            "data::/data:ro",
            "--env",
            "PARSE_LABEL=weather",
        ];
        args.extend_from_slice(extra);
        args.push(parse.to_str().unwrap());
        args.push("/data/weather.csv");
        sb.devstash(&args)
    };
    let first = run(&[]);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first.stdout.contains("parsing /data/weather.csv"),
        "{first:?}"
    );
    assert!(first.stdout.contains("weather: 1000 rows"), "{first:?}");
    let second = run(&[]);
    assert!(!second.stdout.contains("parsing"), "{second:?}");
    assert!(second.stdout.contains("weather: 1000 rows"), "{second:?}");
}

/// Builds a standalone crate whose main.rs is `src`, expecting the build to fail; returns the
/// compiler's output.
fn compile_error(name: &str, src: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let sdk = common::workspace().join("guest-sdk");
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dependencies]\ndevstash = {{ path = {:?} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\n[workspace]\n",
            sdk.to_str().unwrap()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("src/main.rs"), src).unwrap();
    let out = common::try_build_crate(dir.path());
    assert!(!out.status.success(), "{name} compiled but must not");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn mistakes_in_markers_are_compile_errors_at_the_marker() {
    let err = compile_error(
        "bad_ttl",
        "fn f(x: u32) -> u32 { x }\nfn main() {\n    let _ = devstash::stash!(ttl = \"1x\", f(1));\n}\n",
    );
    assert!(err.contains("invalid ttl \"1x\""), "{err}");
    assert!(
        err.contains("src/main.rs:3:"),
        "not pointing at the marker: {err}"
    );

    let err = compile_error(
        "bad_attr_ttl",
        "#[devstash::stashed(ttl = \"soon\")]\nfn f(x: u32) -> u32 { x }\nfn main() { f(1); }\n",
    );
    assert!(err.contains("invalid ttl \"soon\""), "{err}");

    // An argument that cannot be encoded: never a silent shared key.
    let err = compile_error(
        "bad_arg",
        "struct Opaque;\nfn f(_o: Opaque) -> u32 { 1 }\nfn main() {\n    let _ = devstash::stash!(f(Opaque));\n}\n",
    );
    assert!(err.contains("Serialize") && err.contains("Opaque"), "{err}");
    assert!(err.contains("src/main.rs:4:"), "{err}");

    // A value that cannot be stored.
    let err = compile_error(
        "bad_value",
        "struct Opaque;\nfn f(_x: u32) -> Opaque { Opaque }\nfn main() {\n    let _ = devstash::stash!(f(1));\n}\n",
    );
    assert!(err.contains("Opaque"), "{err}");
    assert!(err.contains("src/main.rs:4:"), "{err}");

    let err = compile_error(
        "bad_form",
        "fn main() {\n    let x = 1;\n    let _ = devstash::stash!(x + 1);\n}\n",
    );
    assert!(err.contains("stash! marks a call"), "{err}");

    let err = compile_error(
        "bad_option",
        "fn f(x: u32) -> u32 { x }\nfn main() { let _ = devstash::stash!(ttl = \"1h\", retries = \"3\", f(1)); }\n",
    );
    assert!(err.contains("unknown devstash option `retries`"), "{err}");
}
