//! End-to-end tests of `devstash record` and `devstash replay`: real guests built for
//! wasm32-wasip1, the real binary, a scratch directory each.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Run, Sandbox, assert_same, guest};

/// `devstash ARGS` with `input` on stdin.
fn with_stdin(sb: &Sandbox, args: &[&str], input: &[u8]) -> Run {
    let mut child = sb
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("devstash starts");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().expect("devstash runs").into()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assert_no_panic(r: &Run) {
    assert!(
        !r.stderr.contains("panicked at") || r.stderr.contains("guest trapped"),
        "devstash itself panicked:\n{}",
        r.stderr
    );
}

fn remove_entries(sb: &Sandbox) {
    for e in sb.entries() {
        std::fs::remove_file(e).unwrap();
    }
}

#[test]
fn example_replays_byte_for_byte_twenty_times() {
    let module = guest("replay");
    let sb = Sandbox::new();
    let m = s(&module);

    // Without a tape the program differs from run to run: a new seed each time.
    let seed = |r: &Run| r.stdout.lines().next().unwrap_or_default().to_string();
    let (a, b) = (
        sb.devstash(&["run", "-q", m]),
        sb.devstash(&["run", "-q", m]),
    );
    assert_eq!((a.code, b.code), (0, 0), "{a:?}\n{b:?}");
    assert_ne!(seed(&a), seed(&b), "two runs drew the same seed");

    let recorded = sb.devstash(&["record", "-q", m, "--", "ACME", "GLOBEX"]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    assert!(
        recorded.stdout.contains("market report for "),
        "{recorded:?}"
    );
    assert!(recorded.stdout.contains("value at risk"), "{recorded:?}");
    let tape = sb.cache().join("tapes/replay.tape");
    assert!(
        tape.exists(),
        "the tape goes to .devstash_cache/tapes/ by default"
    );

    let inspected = sb.devstash(&["inspect", s(&tape)]);
    assert_eq!(inspected.code, 0, "{inspected:?}");
    for needle in [
        "module     replay.wasm (xxh3 ",
        "run        replay.wasm ACME GLOBEX",
        "exit code  0",
        "events by kind:",
        "monotonic clock",
        "replay::fetch_prices (examples/replay/src/main.rs:",
        // The runs above stored the prices; the simulation depends on the seed, so it ran.
        "): 0 computed, 2 hit; value alloc::vec::Vec<f64>, ttl 1day",
        "): 1 computed, 0 hit; value f64",
    ] {
        assert!(
            inspected.stdout.contains(needle),
            "{needle:?} in {inspected:?}"
        );
    }

    // The answers must come from the tape, not from the cache.
    remove_entries(&sb);
    for i in 0..20 {
        let replayed = sb.devstash(&["replay", "-q", m]);
        assert_same(&format!("replay {i}"), &recorded, &replayed);
    }
    assert!(sb.entries().is_empty(), "a replay stores nothing");

    let verified = sb.devstash(&["replay", "--verify", m]);
    assert_eq!(verified.code, 0, "{verified:?}");
    assert!(
        verified.stderr.contains(
            "verified: stdout, stderr, no file written and exit code match the recording"
        ),
        "{verified:?}"
    );
    assert!(
        verified
            .stderr
            .contains("3 marked calls answered from the tape"),
        "{verified:?}"
    );
}

#[test]
fn a_replay_never_runs_the_slow_call() {
    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);
    std::fs::create_dir(sb.path().join("data")).unwrap();
    std::fs::write(sb.path().join("data/in.txt"), "secret\n").unwrap();

    let recorded = sb.devstash(&["record", "-q", "--dir", "data", m, "load", "data/in.txt"]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    assert!(recorded.stdout.contains("loaded SECRET"), "{recorded:?}");

    // Now the call cannot succeed: its file is gone, nothing is granted, nothing is cached.
    std::fs::remove_dir_all(sb.path().join("data")).unwrap();
    remove_entries(&sb);
    let ran = sb.run(&module, &["load", "data/in.txt"]);
    assert_eq!(ran.code, 134, "running it for real fails: {ran:?}");
    assert!(ran.stderr.contains("could not read the file"), "{ran:?}");

    let replayed = sb.devstash(&["replay", "-q", m]);
    assert_same("replay", &recorded, &replayed);
    assert!(sb.entries().is_empty());
    assert_eq!(sb.devstash(&["replay", "-q", "--verify", m]).code, 0);
}

#[test]
fn sleeps_do_not_wait_during_a_replay() {
    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);
    let t = Instant::now();
    let recorded = sb.devstash(&["record", "-q", m, "sleep", "1500"]);
    assert!(t.elapsed() >= Duration::from_millis(1500));
    assert_eq!(recorded.code, 0, "{recorded:?}");
    assert!(recorded.stdout.starts_with("slept 1.5"), "{recorded:?}");

    let t = Instant::now();
    let replayed = sb.devstash(&["replay", "-q", m]);
    let took = t.elapsed();
    assert_same("replay", &recorded, &replayed);
    assert!(
        took < Duration::from_millis(1000),
        "the replay waited: {took:?}"
    );
}

#[test]
fn other_polls_go_to_wasi_during_a_replay() {
    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);
    // Two timers in one poll: not a plain sleep, so the replay hands it to wasmtime-wasi.
    let recorded = sb.devstash(&["record", "-q", m, "poll", "30"]);
    assert_eq!(recorded.stdout, "fired [11]\n", "{recorded:?}");
    let replayed = sb.devstash(&["replay", "-q", "--verify", m]);
    assert_eq!(replayed.code, 0, "{replayed:?}");
    assert_eq!(replayed.stdout, recorded.stdout);
}

#[test]
fn nested_calls_repeat_their_output_and_keep_clocks_in_step() {
    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);

    // Cold: `double(3)` runs once then hits; `outer(4)` runs `double(4)` inside it; the calls
    // read clocks and randomness while they run.
    let cold = sb.devstash(&["record", "-q", "-o", "cold.tape", m, "calls"]);
    assert_eq!(cold.code, 0, "{cold:?}");
    assert_eq!(
        cold.stdout.matches("computed double(3)").count(),
        1,
        "{cold:?}"
    );
    assert!(cold.stdout.contains("computed outer(4)"), "{cold:?}");
    assert_eq!(cold.stderr.matches("double(4) ran").count(), 1, "{cold:?}");

    // Warm: everything hits, nothing is printed by the calls.
    let warm = sb.devstash(&["record", "-q", "-o", "warm.tape", m, "calls"]);
    assert_eq!(warm.code, 0, "{warm:?}");
    assert!(!warm.stdout.contains("computed"), "{warm:?}");

    remove_entries(&sb);
    for (tape, recorded) in [("cold.tape", &cold), ("warm.tape", &warm)] {
        let replayed = sb.devstash(&["replay", "-q", m, tape]);
        assert_same(tape, recorded, &replayed);
        let verified = sb.devstash(&["replay", "--verify", m, tape]);
        assert_eq!(verified.code, 0, "{tape}: {verified:?}");
    }
}

#[test]
fn stdin_environment_arguments_and_clocks_come_from_the_tape() {
    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);
    let recorded = with_stdin(
        &sb,
        &[
            "record",
            "-q",
            "--env",
            "GREETING=hello",
            m,
            "io",
            "x",
            "y z",
        ],
        b"some input\n",
    );
    assert_eq!(recorded.code, 0, "{recorded:?}");
    assert!(
        recorded.stdout.contains("stdin \"SOME INPUT\\n\""),
        "{recorded:?}"
    );
    assert!(
        recorded.stdout.contains("GREETING=Some(\"hello\")"),
        "{recorded:?}"
    );
    assert!(
        recorded.stdout.contains("args [\"x\", \"y z\"]"),
        "{recorded:?}"
    );

    std::thread::sleep(Duration::from_millis(20));
    let replayed = with_stdin(&sb, &["replay", "-q", m], b"other input\n");
    assert_same("replay", &recorded, &replayed);
}

#[test]
fn exit_codes_and_traps_are_replayed() {
    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);
    for (args, code) in [(&["exit", "3"][..], 3), (&["panic"][..], 134)] {
        let mut record = vec!["record", "-q", "-o", "t.tape", m];
        record.extend_from_slice(args);
        let recorded = sb.devstash(&record);
        assert_eq!(recorded.code, code, "{recorded:?}");
        let replayed = sb.devstash(&["replay", "-q", m, "t.tape"]);
        assert_same("replay", &recorded, &replayed);
        let verified = sb.devstash(&["replay", "-q", "--verify", m, "t.tape"]);
        assert_eq!(verified.code, 0, "a matching replay verifies: {verified:?}");
    }
}

#[test]
fn asking_for_more_than_the_tape_holds_is_a_divergence() {
    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);
    for kind in ["clock", "random", "call"] {
        let tape = format!("{kind}.tape");
        let r = sb.devstash(&["record", "-q", "-o", &tape, m, "more", kind]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    // Every input comes from the tape, so only a changed build asks for more than was recorded.
    let changed = common::patched_variant(&module, sb.path());
    let c = s(&changed);

    let clock = sb.devstash(&["replay", c, "clock.tape"]);
    assert_eq!(clock.code, 123, "{clock:?}");
    assert!(
        clock
            .stderr
            .contains("replay diverged: the program read the monotonic clock more often"),
        "{clock:?}"
    );
    assert!(
        clock
            .stderr
            .contains("the tape holds 1 monotonic clock reading; this is read 2"),
        "{clock:?}"
    );
    assert!(
        !clock.stdout.contains("again"),
        "stopped at the read: {clock:?}"
    );

    let random = sb.devstash(&["replay", c, "random.tape"]);
    assert_eq!(random.code, 123, "{random:?}");
    assert!(
        random
            .stderr
            .contains("it asked for 8 bytes; the tape recorded 8, of which 0 are left"),
        "{random:?}"
    );
    assert_eq!(
        random.stdout.lines().count(),
        1,
        "stopped at the read: {random:?}"
    );

    let call = sb.devstash(&["replay", c, "call.tape"]);
    assert_eq!(call.code, 123, "{call:?}");
    for needle in [
        "the program made a marked call that the tape cannot answer",
        "site:      tapeprobe::double (",
        "arguments: (21,)",
        "holds 1 call of this site:",
        "(20,)  [arguments (20,)]",
    ] {
        assert!(call.stderr.contains(needle), "{needle:?} in {call:?}");
    }
    assert!(
        !call.stderr.contains("double(21) ran"),
        "the call did not run"
    );
    assert!(!call.stdout.contains("done"), "{call:?}");

    // Reading past the recorded stdin is a divergence, not an end of file.
    let r = with_stdin(
        &sb,
        &["record", "-q", "-o", "stdin.tape", m, "more", "stdin"],
        b"abc",
    );
    assert_eq!(r.stdout, "stdin 3 bytes\ndone\n", "{r:?}");
    let same = with_stdin(
        &sb,
        &["replay", "-q", "--verify", m, "stdin.tape"],
        b"other input",
    );
    assert_eq!(same.code, 0, "{same:?}");
    assert_eq!(same.stdout, r.stdout, "stdin comes from the tape");
    let more = sb.devstash(&["replay", c, "stdin.tape"]);
    assert_eq!(more.code, 123, "{more:?}");
    for needle in [
        "replay diverged: the program read past the stdin of the recording",
        "call:      fd_read(fd 0 (stdin))",
    ] {
        assert!(more.stderr.contains(needle), "{needle:?} in {more:?}");
    }
    assert!(!more.stdout.contains("then"), "{more:?}");
}

#[test]
fn a_call_that_failed_when_recorded_is_a_divergence() {
    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);
    let recorded = sb.devstash(&["record", "-q", m, "--", "checked", "-5"]);
    assert!(
        recorded.stdout.contains("err -5 is negative"),
        "{recorded:?}"
    );
    let replayed = sb.devstash(&["replay", m]);
    assert_eq!(replayed.code, 123, "{replayed:?}");
    assert!(
        replayed.stderr.contains(
            "tapeprobe::checked returned an error when recorded, and errors are never stored"
        ),
        "{replayed:?}"
    );
    assert!(!replayed.stdout.contains("computed"), "{replayed:?}");
}

#[test]
fn a_call_the_recorded_run_never_finished_is_a_divergence() {
    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);
    let recorded = sb.devstash(&["record", "-q", m, "explode"]);
    assert_eq!(recorded.code, 134, "{recorded:?}");
    let replayed = sb.devstash(&["replay", m]);
    assert_eq!(replayed.code, 123, "{replayed:?}");
    assert!(
        replayed.stderr.contains(
            "the recorded run ended inside tapeprobe::explode (it trapped or exited there)"
        ),
        "{replayed:?}"
    );
    assert!(
        replayed.stderr.contains("-> never finished"),
        "{replayed:?}"
    );
    assert!(!replayed.stdout.contains("computed"), "{replayed:?}");
}

#[test]
fn files_come_from_the_tape_and_nothing_is_granted_writable() {
    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);
    std::fs::create_dir(sb.path().join("data")).unwrap();
    std::fs::write(sb.path().join("data/f.txt"), "inside\n").unwrap();
    std::fs::write(sb.path().join("outside.txt"), "outside\n").unwrap();

    let read = sb.devstash(&[
        "record",
        "-q",
        "--dir",
        "data",
        "-o",
        "read.tape",
        m,
        "open",
        "data/f.txt",
    ]);
    assert_eq!(read.stdout, "read \"inside\"\n", "{read:?}");
    // The file is on the tape: changed or gone, the replay reads what the recording read.
    std::fs::write(sb.path().join("data/f.txt"), "changed\n").unwrap();
    let replayed = sb.devstash(&["replay", "-q", "--verify", m, "read.tape"]);
    assert_eq!(replayed.code, 0, "{replayed:?}");
    assert_eq!(replayed.stdout, read.stdout);
    std::fs::remove_dir_all(sb.path().join("data")).unwrap();
    let replayed = sb.devstash(&["replay", "-q", "--verify", m, "read.tape"]);
    assert_eq!(replayed.code, 0, "{replayed:?}");

    std::fs::create_dir(sb.path().join("data")).unwrap();
    let writable = sb.devstash(&["replay", "--dir", "data", m, "read.tape"]);
    assert_eq!(writable.code, 125, "{writable:?}");
    assert!(
        writable.stderr.contains("write `--dir data:ro`"),
        "{writable:?}"
    );

    // A write replays without touching the host: the recorded one made the file.
    let write = sb.devstash(&[
        "record",
        "-q",
        "--dir",
        "data",
        "-o",
        "write.tape",
        m,
        "write",
        "data/new.txt",
    ]);
    assert_eq!(write.stdout, "wrote data/new.txt\n", "{write:?}");
    std::fs::remove_file(sb.path().join("data/new.txt")).unwrap();
    let replayed = sb.devstash(&["replay", "-q", "--verify", m, "write.tape"]);
    assert_eq!(replayed.code, 0, "{replayed:?}");
    assert_eq!(replayed.stdout, write.stdout);
    assert!(!sb.path().join("data/new.txt").exists());

    // What the recording could not reach, the replay cannot either: the same errors.
    for path in ["data/../outside.txt", "../outside.txt", "/etc/passwd"] {
        let tape = "escape.tape";
        let recorded = sb.devstash(&["record", "-q", "--dir", "data", "-o", tape, m, "open", path]);
        assert!(
            recorded.stdout.starts_with(&format!("cannot read {path}")),
            "{path}: {recorded:?}"
        );
        let r = sb.devstash(&["replay", "-q", "--verify", m, tape]);
        assert_eq!(r.code, 0, "{path}: {r:?}");
        assert_eq!(r.stdout, recorded.stdout, "{path}");
    }
}

#[test]
fn no_socket_is_opened_during_a_replay() {
    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let recorded = sb.devstash(&["record", "-q", m, "connect", &addr]);
    let replayed = sb.devstash(&["replay", "-q", m]);
    assert_same("replay", &recorded, &replayed);
    assert!(
        replayed.stdout.starts_with("cannot connect"),
        "{replayed:?}"
    );
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("something connected: {other:?}"),
    }
}

#[test]
fn http_requests_stay_offline_during_a_replay() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);
    let server = tiny_http::Server::http("127.0.0.1:0").expect("a loopback port");
    let port = server.server_addr().to_ip().unwrap().port();
    let (requests, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (r, st) = (requests.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        // Bounded: ends when the test says so, and after 60 s at most.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !st.load(Ordering::SeqCst) && Instant::now() < deadline {
            if let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) {
                r.fetch_add(1, Ordering::SeqCst);
                let _ = req.respond(tiny_http::Response::from_string("pong"));
            }
        }
    });
    let url = format!("http://127.0.0.1:{port}/ping");
    let allow = format!("--allow-net=127.0.0.1:{port}");
    let recorded = sb.devstash(&["record", "-q", &allow, m, "http", &url]);
    assert_eq!(recorded.stdout, "http 200 pong\n", "{recorded:?}");
    assert_eq!(requests.load(Ordering::SeqCst), 1);

    // The exchange is on the tape: the replay answers it from there, and makes no request.
    let replayed = sb.devstash(&["replay", "-q", m]);
    assert_same("replay", &recorded, &replayed);
    stop.store(true, Ordering::SeqCst);
    thread.join().unwrap();
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "the replay reached the server"
    );
}

#[test]
fn corrupt_cut_and_foreign_tapes_are_clear_errors() {
    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);
    let r = sb.devstash(&["record", "-q", "-o", "good.tape", m, "calls"]);
    assert_eq!(r.code, 0, "{r:?}");
    let good = std::fs::read(sb.path().join("good.tape")).unwrap();

    let mut cases: Vec<(String, Vec<u8>, &str)> = Vec::new();
    for at in [20, 100, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        cases.push((format!("flip{at}.tape"), bad, "corrupt"));
    }
    for len in [good.len() - 1, good.len() / 2, 80, 10] {
        cases.push((format!("cut{len}.tape"), good[..len].to_vec(), "corrupt"));
    }
    cases.push(("empty.tape".into(), Vec::new(), "the file is empty"));
    cases.push((
        "module.tape".into(),
        std::fs::read(&module).unwrap(),
        "not a devstash tape",
    ));
    let mut future = good.clone();
    future[14] = b'9';
    cases.push(("future.tape".into(), future, "tape format 9"));

    for (name, bytes, expected) in cases {
        std::fs::write(sb.path().join(&name), bytes).unwrap();
        let r = sb.devstash(&["replay", m, &name]);
        assert_eq!(r.code, 125, "{name}: {r:?}");
        assert!(r.stderr.contains(expected), "{name}: {r:?}");
        assert!(r.stderr.contains(&name), "{name}: names the file: {r:?}");
        assert!(r.stdout.is_empty(), "{name}: nothing ran: {r:?}");
        assert_no_panic(&r);
    }

    let inspected = sb.devstash(&["inspect", "flip100.tape"]);
    assert_eq!(inspected.code, 1, "{inspected:?}");
    assert!(inspected.stderr.contains("corrupt"), "{inspected:?}");

    let missing = sb.devstash(&["replay", m]);
    assert_eq!(missing.code, 125, "{missing:?}");
    assert!(
        missing.stderr.contains("record one with `devstash record"),
        "{missing:?}"
    );
}

/// A module built from a copy of the replay example (removed with the value).
struct Variant {
    _dir: tempfile::TempDir,
    module: PathBuf,
}

/// Builds the replay example from a copy of its sources, with `edit` applied to `main.rs`.
fn build_example_variant(name: &str, edit: impl Fn(String) -> String) -> Variant {
    let ws = common::workspace();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("src")).unwrap();
    let main = std::fs::read_to_string(ws.join("examples/replay/src/main.rs")).unwrap();
    std::fs::write(dir.join("src/main.rs"), edit(main)).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"replay\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
             [dependencies]\ndevstash = {{ path = {:?} }}\n\
             serde = {{ version = \"1\", features = [\"derive\"] }}\ngetrandom = \"0.4\"\n\n\
             [workspace]\n",
            ws.join("guest-sdk")
        ),
    )
    .unwrap();
    // The workspace's lock file keeps the copy on the same dependency versions.
    std::fs::copy(ws.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let built = common::build_crate(dir, "replay");
    // Every variant is the package `replay` and lands on the same path: keep this one.
    let module = dir.join(format!("{name}.wasm"));
    std::fs::copy(built, &module).unwrap();
    Variant { _dir: tmp, module }
}

#[test]
fn changed_modules_replay_by_key() {
    let original = build_example_variant("original", |src| src);
    let reformatted = build_example_variant("reformatted", |src| {
        let old = r#"println!("{symbol:>8}: last {last:8.2}, 30-day mean {mean:8.2}");"#;
        assert!(
            src.contains(old),
            "the example's output line changed; update this test"
        );
        src.replace(
            old,
            r#"println!("{symbol}: last={last:.3} mean={mean:.3}");"#,
        )
    });
    let extra_call = build_example_variant("extra_call", |src| {
        let old = "    println!(\"done in";
        assert!(
            src.contains(old),
            "the example's last line changed; update this test"
        );
        let src = src.replace(
            old,
            "    let spread = stash!(spread_of(&series));\n    println!(\"spread {spread:.2}\");\n    println!(\"done in",
        );
        src + "\nfn spread_of(series: &[Vec<f64>]) -> f64 {\n    \
               series.iter().flatten().fold(0.0, |m: f64, x| m.max(*x))\n}\n"
    });

    let sb = Sandbox::new();
    let recorded = sb.devstash(&["record", "-q", s(&original.module), "--", "ACME"]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    remove_entries(&sb);
    let tape = s(&sb.cache().join("tapes/original.tape")).to_string();

    // Only the output's format changed: the recorded results still answer every call.
    let replayed = sb.devstash(&["replay", s(&reformatted.module), &tape]);
    assert_eq!(replayed.code, 0, "{replayed:?}");
    assert!(replayed.stdout.contains("ACME: last="), "{replayed:?}");
    let first = |r: &str| r.lines().next().unwrap_or_default().to_string();
    assert_eq!(
        first(&replayed.stdout),
        first(&recorded.stdout),
        "same date and seed"
    );
    assert!(
        replayed.stderr.contains("replayed") && replayed.stderr.contains("with a changed module"),
        "{replayed:?}"
    );
    let verified = sb.devstash(&["replay", "--verify", s(&reformatted.module), &tape]);
    assert_eq!(verified.code, 122, "{verified:?}");
    for needle in [
        "verify failed: the replay's output differs from the recording",
        "--- recorded stdout",
        "+++ replayed stdout",
        "-    ACME: last",
        "+ACME: last=",
    ] {
        assert!(
            verified.stderr.contains(needle),
            "{needle:?} in {verified:?}"
        );
    }
    assert!(!verified.stderr.contains("recorded stderr"), "{verified:?}");

    // A marked call the recording never made: the replay stops before it could run.
    let diverged = sb.devstash(&["replay", s(&extra_call.module), &tape]);
    assert_eq!(diverged.code, 123, "{diverged:?}");
    for needle in [
        "replay diverged: the program made a marked call that the tape cannot answer",
        "site:      replay::spread_of (",
        "arguments: ",
        "holds no call of this site",
        "hint: ",
    ] {
        assert!(
            diverged.stderr.contains(needle),
            "{needle:?} in {diverged:?}"
        );
    }
    assert!(!diverged.stdout.contains("spread"), "{diverged:?}");
    assert!(sb.entries().is_empty(), "nothing ran, nothing was stored");
}

/// Tapes recorded before modules were named by XXH3 carry a blake3 of their module: they still
/// replay, and a different module is still noticed.
#[test]
fn tapes_that_name_their_module_by_blake3_still_replay() {
    use devstash_runner::tape::format::{TapeHeader, encode};
    let sb = Sandbox::new();
    let replay = guest("replay");
    let tape = sb.path().join("old.tape");
    let recorded = sb.devstash(&["record", "-q", "-o", s(&tape), s(&replay), "--", "ACME"]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    let bytes = std::fs::read(&tape).unwrap();
    let first_end = bytes.iter().position(|&b| b == b'\n').unwrap();
    let header_end = first_end
        + 1
        + bytes[first_end + 1..]
            .iter()
            .position(|&b| b == b'\n')
            .unwrap();
    let mut header: TapeHeader = serde_json::from_slice(&bytes[first_end + 1..header_end]).unwrap();
    assert_eq!(header.module_xxh3.len(), 32, "{header:?}");
    let module = std::fs::read(&replay).unwrap();
    let right = blake3::hash(&module).to_hex().to_string();
    for (blake, changed) in [(right, false), ("00".repeat(32), true)] {
        header.module_xxh3 = String::new();
        header.module_blake3 = blake;
        std::fs::write(&tape, encode(&header, &bytes[header_end + 1..])).unwrap();
        let r = sb.devstash(&["replay", s(&replay), s(&tape)]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.stdout, recorded.stdout);
        assert_eq!(r.stderr.contains("with a changed module"), changed, "{r:?}");
    }
}

#[test]
fn large_inputs_can_stay_off_the_tape_and_are_checked_by_hash() {
    // `probe read PATH` prints only the size it read.
    let module = guest("probe");
    let sb = Sandbox::new();
    let m = s(&module);
    let data = sb.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let text: String = (0..20_000).map(|i| format!("row {i}\n")).collect();
    std::fs::write(data.join("big.csv"), &text).unwrap();

    let writable = sb.devstash(&[
        "record",
        "--dir",
        "data::/data",
        "--by-hash",
        "/data",
        "-o",
        "t.tape",
        m,
        "read",
        "/data/big.csv",
    ]);
    assert_eq!(writable.code, 125, "{writable:?}");
    assert!(
        writable.stderr.contains("--dir data::/data:ro"),
        "{writable:?}"
    );

    let recorded = sb.devstash(&[
        "record",
        "-q",
        "--dir",
        "data::/data:ro",
        "--by-hash",
        "/data",
        "-o",
        "t.tape",
        m,
        "read",
        "/data/big.csv",
    ]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    assert_eq!(
        recorded.stdout,
        format!("read {} bytes\n", text.len()),
        "{recorded:?}"
    );
    let tape = sb.path().join("t.tape");
    let size = std::fs::metadata(&tape).unwrap().len();
    assert!(
        size < text.len() as u64 / 10,
        "the file is on the tape: {size} bytes for {}",
        text.len()
    );
    let inspected = sb.devstash(&["inspect", "t.tape"]);
    assert!(
        inspected.stdout.contains("/data/big.csv: ") && inspected.stdout.contains("by hash"),
        "{inspected:?}"
    );

    // Not granted: the replay says what to grant, before the program runs.
    let ungranted = sb.devstash(&["replay", m, "t.tape"]);
    assert_eq!(ungranted.code, 125, "{ungranted:?}");
    assert!(
        ungranted.stderr.contains("/data/big.csv")
            && ungranted.stderr.contains("--dir HOST::/data:ro"),
        "{ungranted:?}"
    );
    assert!(ungranted.stdout.is_empty());

    // The same file in another folder replays; a changed one is refused.
    let elsewhere = sb.path().join("copy");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::copy(data.join("big.csv"), elsewhere.join("big.csv")).unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    let replayed = sb.devstash(&[
        "replay",
        "-q",
        "--verify",
        "--dir",
        "copy::/data:ro",
        m,
        "t.tape",
    ]);
    assert_eq!(replayed.code, 0, "{replayed:?}");
    assert_eq!(replayed.stdout, recorded.stdout);
    std::fs::write(
        elsewhere.join("big.csv"),
        text.replace("row 7\n", "row 8\n"),
    )
    .unwrap();
    let changed = sb.devstash(&["replay", "--dir", "copy::/data:ro", m, "t.tape"]);
    assert_eq!(changed.code, 125, "{changed:?}");
    assert!(
        changed
            .stderr
            .contains("is not the file the recording read as /data/big.csv"),
        "{changed:?}"
    );
    assert!(changed.stdout.is_empty());
}

#[test]
fn inspect_lists_the_calls_the_files_and_the_environment() {
    let module = guest("tapeprobe");
    let sb = Sandbox::new();
    let m = s(&module);
    std::fs::create_dir(sb.path().join("data")).unwrap();
    let r = sb.devstash(&[
        "record",
        "-q",
        "--dir",
        "data::/work",
        "--env",
        "LANG=C",
        "--env",
        "API_TOKEN=t0k3n",
        "-o",
        "t.tape",
        m,
        "write",
        "/work/new.txt",
    ]);
    assert_eq!(r.stdout, "wrote /work/new.txt\n", "{r:?}");

    let json = sb.devstash(&["inspect", "--json", "t.tape"]);
    assert_eq!(json.code, 0, "{json:?}");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        v["argv"],
        serde_json::json!(["tapeprobe.wasm", "write", "/work/new.txt"])
    );
    assert_eq!(
        v["env"],
        serde_json::json!([
            {"name": "LANG", "redacted": false},
            {"name": "API_TOKEN", "redacted": true}
        ])
    );
    let calls: Vec<String> = v["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} -> {}",
                c["call"].as_str().unwrap(),
                c["result"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("path_open(fd 3 (/work), ")
                && c.contains("\"new.txt\"")
                && c.ends_with("-> ok")),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c == "fd_write(fd 4 (/work/new.txt)) -> ok"),
        "{calls:?}"
    );
    let files = v["files"].as_array().unwrap();
    let new = files
        .iter()
        .find(|f| f["path"] == "/work/new.txt")
        .unwrap_or_else(|| panic!("{files:?}"));
    assert_eq!(new["written"], 7, "{new}");
    assert!(!json.stdout.contains("t0k3n"));

    let text = sb.devstash(&["inspect", "t.tape"]);
    for needle in [
        "env        LANG, API_TOKEN (redacted)",
        "/work/new.txt: path_open fd_write fd_close; wrote 7 B",
        "wasi calls: ",
        "calls (in order):",
    ] {
        assert!(text.stdout.contains(needle), "{needle:?} in {text:?}");
    }
}
