//! Reliability: concurrent runs, crashes, disk trouble, corrupt data, hostile guests and the
//! sandbox. Whatever happens, devstash must never return a wrong value, never lose a good entry
//! and never let a guest out of its sandbox. The figures these tests reach are quoted in the
//! README's Reliability section.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Run, Sandbox, guest};

/// Asserts that a `probe many 60` run ended well with the right total (0 + 2 + … + 2·59).
fn assert_total_3540(out: &Run, round: usize) {
    assert_eq!(out.code, 0, "round {round}: {out:?}");
    assert_eq!(
        out.stdout.lines().last(),
        Some("total 3540"),
        "round {round}: {out:?}"
    );
}

/// Processes racing on one cold cache, and how many rounds.
const RACERS: usize = 8;
const ROUNDS: usize = 5;
/// SIGKILLs injected while a large value is being stored.
const KILLS: usize = 24;

fn run_in(sb: &Sandbox, args: &[&str]) -> Command {
    let mut c = sb.cmd();
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

#[test]
fn concurrent_runs_on_a_cold_cache_agree() {
    let probe = guest("probe");
    let p = probe.to_str().unwrap();
    // 0 + 2 + … + 2·59 = 3540
    for round in 0..ROUNDS {
        let sb = Sandbox::new();
        let children: Vec<_> = (0..RACERS)
            .map(|_| run_in(&sb, &["run", p, "many", "60"]).spawn().unwrap())
            .collect();
        for child in children {
            let out: Run = child.wait_with_output().unwrap().into();
            assert_total_3540(&out, round);
            assert!(!out.stderr.contains("warning"), "round {round}: {out:?}");
        }
        // Every entry the racers left verifies: a later run is all hits.
        let after = sb.run(&probe, &["many", "60"]);
        assert!(
            after.stderr.contains("60 hits, 0 misses"),
            "round {round}: {after:?}"
        );
        assert_eq!(sb.entries().len(), 60);
    }
}

#[test]
fn sigkill_while_storing_leaves_a_verifiable_cache() {
    let probe = guest("probe");
    let p = probe.to_str().unwrap();
    let sb = Sandbox::new();
    // A 48 MiB value takes long enough to encode and write that kills land mid-store.
    let size = (48 << 20).to_string();
    // Kill at a random point inside a run: time one whole run first (its module already
    // compiled, as for the runs that are killed), so the kills land within it however fast this
    // machine is.
    let first = sb.run(&probe, &["big", &size]);
    assert_eq!(first.code, 0, "{first:?}");
    std::fs::remove_dir_all(sb.cache()).unwrap();
    let started = std::time::Instant::now();
    let whole = sb.run(&probe, &["big", &size]);
    assert_eq!(whole.code, 0, "{whole:?}");
    let run_time = started.elapsed();
    std::fs::remove_dir_all(sb.cache()).unwrap();
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut interrupted = 0;
    for trial in 0..KILLS {
        let mut child = run_in(&sb, &["run", p, "big", &size]).spawn().unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(run_time * (5 + (rng % 80) as u32) / 100);
        let _ = child.kill();
        let status = child.wait().unwrap();
        if std::os::unix::process::ExitStatusExt::signal(&status) == Some(9) {
            interrupted += 1;
        }
        // Whatever the kill left, the next run returns the right value: from a verified entry,
        // or recomputed.
        let next = sb.run(&probe, &["big", &size]);
        assert_eq!(next.code, 0, "trial {trial}: {next:?}");
        assert!(
            next.stdout.contains(&format!("blob {size} bytes, intact")),
            "trial {trial}: {next:?}"
        );
        // And then it is stored and verifies.
        let again = sb.run(&probe, &["big", &size]);
        assert!(
            !again.stdout.contains("computed"),
            "trial {trial}: {again:?}"
        );
        for entry in sb.entries() {
            let name = entry.file_name().unwrap().to_str().unwrap();
            assert!(name.starts_with("probe__blob__"), "unexpected file {name}");
        }
        std::fs::remove_dir_all(sb.cache()).unwrap();
    }
    // The kills must really land inside runs for this to prove anything.
    assert!(
        interrupted >= KILLS / 2,
        "only {interrupted} of {KILLS} kills interrupted a run"
    );
    eprintln!("{interrupted} of {KILLS} kills interrupted a run");
}

/// Runs `devstash ARGS` in a private mount namespace where `mount_point` is a tmpfs with the
/// given options (the mount vanishes with the process).
fn with_tmpfs(sb: &Sandbox, mount_point: &Path, options: &str, args: &[&str]) -> Run {
    std::fs::create_dir_all(mount_point).unwrap();
    let bin = env!("CARGO_BIN_EXE_devstash");
    let script = format!(
        "mount -t tmpfs -o {options} tmpfs '{}' && exec \"$@\"",
        mount_point.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script, "sh", bin])
        .args(args)
        .current_dir(sb.path())
        .env_remove("DEVSTASH_CACHE_DIR")
        .output()
        .expect("unshare runs (util-linux)");
    out.into()
}

#[test]
fn a_full_or_read_only_cache_dir_degrades_to_uncached_runs() {
    let probe = guest("probe");
    let p = probe.to_str().unwrap();
    let sb = Sandbox::new();
    let cache = sb.cache();

    // Full: 64 KiB cannot hold a 1 MiB value. One warning, the right output, no partial file.
    let full = with_tmpfs(&sb, &cache, "size=64k", &["run", p, "big", "1048576"]);
    assert_eq!(full.code, 0, "{full:?}");
    assert!(
        full.stdout.contains("blob 1048576 bytes, intact"),
        "{full:?}"
    );
    assert_eq!(full.stderr.matches("warning").count(), 1, "{full:?}");
    assert!(
        full.stderr
            .contains("the run goes on without storing results"),
        "{full:?}"
    );

    // Read-only: the same.
    let ro = with_tmpfs(&sb, &cache, "ro", &["run", p, "many", "5"]);
    assert_eq!(ro.code, 0, "{ro:?}");
    assert!(ro.stdout.contains("total 20"), "{ro:?}");
    assert_eq!(ro.stderr.matches("warning").count(), 1, "{ro:?}");
    // Nothing leaked onto the real directory underneath.
    assert!(sb.entries().is_empty());
}

#[test]
fn the_sandbox_holds() {
    let probe = guest("probe");
    let p = probe.to_str().unwrap();
    let sb = Sandbox::new();
    let data = sb.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("inside.txt"), "inside").unwrap();
    std::fs::write(sb.path().join("outside.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(sb.path().join("outside.txt"), data.join("link-out")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", data.join("link-abs")).unwrap();

    let guest_run = |grant: &str, mode: &str, path: &str| -> String {
        let r = sb.devstash(&["run", "--dir", grant, p, mode, path]);
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout
    };
    assert_eq!(
        guest_run("data::/data:ro", "read", "/data/inside.txt"),
        "read 6 bytes\n"
    );
    for escape in [
        "/data/../outside.txt",
        "/data/../../../etc/hostname",
        "/etc/hostname",
        "/data/link-out",
        "/data/link-abs",
        "outside.txt",
    ] {
        let out = guest_run("data::/data:ro", "read", escape);
        assert!(
            out.starts_with("read failed"),
            "{escape} was readable: {out}"
        );
    }
    // A read-only grant cannot be written; a read-write one can.
    let out = guest_run("data::/data:ro", "write", "/data/new.txt");
    assert!(out.starts_with("write failed"), "{out}");
    assert!(!data.join("new.txt").exists());
    assert_eq!(
        guest_run("data::/data", "write", "/data/new.txt"),
        "write ok\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("new.txt")).unwrap(),
        "written by the guest"
    );
    // Nothing is granted by default.
    let out = sb.run(&probe, &["read", "data/inside.txt"]).stdout;
    assert!(out.starts_with("read failed"), "{out}");
}

#[test]
fn every_flip_and_truncation_of_an_entry_is_a_miss_never_a_wrong_value() {
    let probe = guest("probe");
    let sb = Sandbox::new();
    sb.run(&probe, &["struct", "flip"]);
    let entry = sb.entries().remove(0);
    let good = std::fs::read(&entry).unwrap();
    let mut tried = 0;
    let mut check = |bytes: &[u8], what: &str| {
        std::fs::write(&entry, bytes).unwrap();
        // The pack holds a second copy; the entry is lost only when both copies are.
        sb.drop_pack();
        let r = sb.run(&probe, &["struct", "flip"]);
        assert_eq!(r.code, 0, "{what}: {r:?}");
        assert!(
            r.stdout.ends_with("stats 4 2.5 flip\n"),
            "{what}: wrong value {r:?}"
        );
        assert!(
            r.stdout.contains("computed summarize(flip)"),
            "{what}: accepted {r:?}"
        );
        tried += 1;
    };
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x20;
        check(&bad, &format!("flip at {i}"));
    }
    for n in (0..good.len()).step_by(7) {
        check(&good[..n], &format!("cut at {n}"));
    }
    assert!(tried > good.len());
    eprintln!(
        "{tried} corruptions of a {}-byte entry tried, none accepted",
        good.len()
    );
}

#[test]
fn a_corrupt_or_foreign_pack_never_yields_a_wrong_value() {
    let probe = guest("probe");
    let sb = Sandbox::new();
    sb.run(&probe, &["many", "20"]);
    let pack = sb.cache().join("index.pack");
    let good = std::fs::read(&pack).unwrap();
    let mut rng = 0x2545f4914f6cdd1du64;
    let mut tried = 0;
    for trial in 0..40 {
        let mut bad = good.clone();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        match trial % 4 {
            // Flip bytes anywhere: lengths, names, headers, payloads.
            0 | 1 => {
                for k in 0..(1 + trial % 5) {
                    let i = (rng as usize).wrapping_add(k * 7919) % bad.len();
                    bad[i] ^= 1 << (k % 8);
                }
            }
            2 => bad.truncate(rng as usize % bad.len()),
            _ => bad = (0..bad.len()).map(|i| (i as u64 ^ rng) as u8).collect(),
        }
        std::fs::write(&pack, &bad).unwrap();
        let r = sb.run(&probe, &["many", "20"]);
        assert_eq!(r.code, 0, "trial {trial}: {r:?}");
        assert_eq!(
            r.stdout.lines().last(),
            Some("total 380"),
            "trial {trial}: {r:?}"
        );
        // Every value still comes from a verified copy: the entry files are intact.
        assert!(!r.stdout.contains("computed"), "trial {trial}: {r:?}");
        tried += 1;
    }
    assert_eq!(tried, 40);
}

#[test]
fn hostile_arguments_to_every_import_trap_cleanly() {
    let sb = Sandbox::new();
    // A descriptor of a future ABI version (3) at offset 0 (postcard: abi, module "m", callee
    // "c", file "f", line 1, no ttl, empty fingerprint, empty type, kind Call, empty types).
    let desc = r#"(data (i32.const 0) "\03\01m\01c\01f\01\00\00\00\00\00")"#;
    let cases = [
        (
            "(call $reg (i32.const 0) (i32.const 13)) drop",
            "speaks ABI version 3",
        ),
        (
            "(call $reg (i32.const -1) (i32.const -1)) drop",
            "outside the guest's memory",
        ),
        (
            "(call $reg (i32.const 0) (i32.const 65537)) drop",
            "outside the guest's memory",
        ),
        (
            "(call $get (i32.const -5) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 64)) drop",
            "unknown site handle -5",
        ),
        (
            "(call $take (i32.const -1) (i32.const -1)) drop",
            "no pending value",
        ),
        (
            "(call $read (i64.const 0) (i32.const 0) (i32.const 4)) drop",
            "no pending value",
        ),
        (
            "(call $put (i64.const -1) (i32.const 0) (i32.const -1) (i32.const 0) (i32.const 0)) drop",
            "unknown ticket -1",
        ),
        ("(call $forget (i64.const 3)) drop", "unknown ticket 3"),
        (
            "(call $log (i32.const 2) (i32.const 65000) (i32.const 1000)) drop",
            "outside the guest's memory",
        ),
        (
            "(call $http (i32.const 0) (i32.const 3) (i32.const 64)) drop",
            "does not decode",
        ),
        (
            "(call $http (i32.const 0) (i32.const 4) (i32.const 65535)) drop",
            "outside the guest's memory",
        ),
    ];
    for (body, expected) in cases {
        let r = run_wat(&sb, desc, body);
        assert_eq!(r.code, 134, "{body}: {r:?}");
        assert!(r.stderr.contains(expected), "{body}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{body}: {r:?}");
    }
}

/// Reads of a pending value outside it, or into memory the guest does not have, trap with the
/// import named; the value stays intact for a well-behaved run.
#[test]
fn hostile_reads_of_a_pending_value_trap_cleanly() {
    // Registers a site (ABI 2), stores "abc" under empty arguments, looks it up again (a hit,
    // 3 bytes pending), then makes the read under test.
    let setup = r#"(local $h i32)
        (local.set $h (call $reg (i32.const 200) (i32.const 13)))
        (call $get (local.get $h) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 64)) drop
        (call $put (i64.load (i32.const 64)) (i32.const 300) (i32.const 3) (i32.const 0) (i32.const 0)) drop
        (call $get (local.get $h) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 64)) drop"#;
    let data = r#"(data (i32.const 200) "\02\01m\01c\01f\01\00\00\00\00\00")
        (data (i32.const 300) "abc")"#;
    let cases = [
        (
            "(call $read (i64.const 2) (i32.const 100) (i32.const 5)) drop",
            "are not readable",
        ),
        (
            "(call $read (i64.const -1) (i32.const 100) (i32.const 1)) drop",
            "are not readable",
        ),
        (
            "(call $read (i64.const 0) (i32.const 65534) (i32.const 3)) drop",
            "outside the guest's memory",
        ),
        (
            "(call $take (i32.const 100) (i32.const 2)) drop",
            "asked for 2 bytes",
        ),
    ];
    for (read, expected) in cases {
        let r = run_wat(&Sandbox::new(), data, &format!("{setup} {read}"));
        assert_eq!(r.code, 134, "{read}: {r:?}");
        assert!(r.stderr.contains(expected), "{read}: {r:?}");
        assert!(r.stderr.contains("devstash::stash_"), "{read}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{read}: {r:?}");
    }
    // The same sequence with reads in bounds gets the value back, in parts.
    let polite = format!(
        r#"{setup}
        (call $read (i64.const 0) (i32.const 100) (i32.const 1)) drop
        (call $read (i64.const 1) (i32.const 101) (i32.const 2)) drop
        (if (i32.ne (i32.load8_u (i32.const 102)) (i32.const 99)) (then unreachable))"#
    );
    let r = run_wat(&Sandbox::new(), data, &polite);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("1 hit, 1 miss, 1 stored"), "{r:?}");
}

/// Runs a hand-written module with one page of memory, the given data segments and `_start`
/// body, importing every devstash function.
fn run_wat(sb: &Sandbox, data: &str, body: &str) -> Run {
    let wat = format!(
        r#"(module {imports}
            (memory (export "memory") 1)
            {data}
            (func (export "_start") {body}))"#,
        imports = common::DEVSTASH_IMPORTS_WAT
    );
    let m = sb.path().join("hand-written.wat");
    std::fs::write(&m, wat).unwrap();
    sb.run(&m, &[])
}

/// Runs `devstash ARGS`, failing the test (instead of hanging it) if the process outlives
/// `patience`.
fn run_bounded(sb: &Sandbox, args: &[&str], patience: Duration) -> Run {
    let mut child = run_in(sb, args).spawn().unwrap();
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap().into();
        }
        if start.elapsed() > patience {
            let _ = child.kill();
            panic!("devstash {args:?} was still running after {patience:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn limits_stop_runaway_guests_with_a_clear_message() {
    let probe = guest("probe");
    let p = probe.to_str().unwrap();
    let sb = Sandbox::new();
    let patience = Duration::from_secs(60);
    let cases: [(&[&str], &str); 5] = [
        (
            &["--timeout", "1s", p, "spin"],
            "ran longer than --timeout 1.00s",
        ),
        (
            &["--timeout", "1s", p, "sleep", "600"],
            "ran longer than --timeout 1.00s",
        ),
        (
            &["--fuel", "5000000", p, "spin"],
            "used up its fuel (--fuel 5000000)",
        ),
        (
            &["--max-memory", "32MiB", p, "alloc", "100000000"],
            "--max-memory is 32.0 MiB",
        ),
        (
            &[
                "--max-memory",
                "32MiB",
                "--timeout",
                "30s",
                "--fuel",
                "100000000",
                p,
                "double",
                "2",
            ],
            "",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        let r = run_bounded(&sb, &args, patience);
        if expected.is_empty() {
            // Generous limits do not get in the way.
            assert_eq!(r.code, 0, "{flags:?}: {r:?}");
            assert!(r.stdout.contains("result 4"), "{flags:?}: {r:?}");
            continue;
        }
        assert_eq!(r.code, 124, "{flags:?}: {r:?}");
        assert!(r.stderr.contains(expected), "{flags:?}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{flags:?}: {r:?}");
    }
    for bad in [
        ["--timeout", "soon"],
        ["--max-memory", "lots"],
        ["--timeout", "0s"],
    ] {
        let r = sb.devstash(&["run", bad[0], bad[1], p, "double", "1"]);
        // What devstash exits with when it cannot run the module, never a guest's code.
        assert_eq!(r.code, 125, "{bad:?}: {r:?}");
        assert!(r.stderr.contains("invalid"), "{bad:?}: {r:?}");
    }
}

#[test]
fn a_cache_without_its_pack_heals_it() {
    let probe = guest("probe");
    let sb = Sandbox::new();
    sb.run(&probe, &["many", "60"]);
    sb.drop_pack();
    let r = sb.run(&probe, &["many", "60"]);
    assert!(
        r.stderr.contains("60 hits") && r.stdout.contains("total 3540"),
        "{r:?}"
    );
    // The entries read from their files were copied into a new pack.
    let pack = std::fs::read(sb.cache().join("index.pack")).expect("the pack was rebuilt");
    let names = sb.entries();
    let copied = names
        .iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().as_bytes();
            pack.windows(name.len()).any(|w| w == name)
        })
        .count();
    assert!(
        copied >= 40,
        "only {copied} of {} entries were copied",
        names.len()
    );
    let again = sb.run(&probe, &["many", "60"]);
    assert!(again.stderr.contains("60 hits"), "{again:?}");
}

#[test]
fn clear_racing_runs_never_yields_a_wrong_value() {
    let probe = guest("probe");
    let p = probe.to_str().unwrap();
    let sb = Sandbox::new();
    let mut removals_in_flight = 0;
    for round in 0..ROUNDS {
        sb.run(&probe, &["many", "60"]); // something for the clears to remove
        let mut runs: Vec<_> = (0..4)
            .map(|_| run_in(&sb, &["run", p, "many", "60"]).spawn().unwrap())
            .collect();
        // Clear again and again for as long as any run is alive (bounded).
        for _ in 0..500 {
            let clear: Run = run_in(&sb, &["clear", "--all"]).output().unwrap().into();
            assert_eq!(clear.code, 0, "round {round}: {clear:?}");
            let live = runs
                .iter_mut()
                .map(|c| c.try_wait().unwrap().is_none())
                .filter(|alive| *alive)
                .count();
            if clear.stdout.starts_with("removed")
                && !clear.stdout.starts_with("removed 0 entries")
                && live > 0
            {
                removals_in_flight += 1;
            }
            if live == 0 {
                break;
            }
        }
        for child in runs {
            let out: Run = child.wait_with_output().unwrap().into();
            assert_total_3540(&out, round);
            assert!(!out.stderr.contains("panicked"), "round {round}: {out:?}");
        }
        // Whatever survived verifies: a run now is right, with no warning.
        let after = sb.run(&probe, &["many", "60"]);
        assert_eq!(
            after.stdout.lines().last(),
            Some("total 3540"),
            "round {round}: {after:?}"
        );
        assert!(
            !after.stderr.contains("warning"),
            "round {round}: {after:?}"
        );
    }
    // The clears must really race the runs for this to prove anything.
    assert!(
        removals_in_flight >= 2,
        "clears removed entries under running runs only {removals_in_flight} times"
    );
    eprintln!("{removals_in_flight} clears removed entries while runs were in flight");
}
