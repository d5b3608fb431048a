//! End-to-end tests of HTTP exchanges on tapes: `devstash record` writes every exchange of
//! `devstash::http` to the tape (secrets redacted), and `devstash replay` answers the requests
//! from it without a socket. Each test starts a real HTTP server on 127.0.0.1 that counts the
//! requests it receives.

mod common;

use std::path::{Path, PathBuf};

use common::{Run, Sandbox, assert_same, guest};

use common::server::Server;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Replays `module` from `tape` (quietly, to compare its output with the recording's), then
/// again with `--verify`, which must pass.
fn replay_matches(sb: &Sandbox, module: &str, tape: &str, recorded: &Run) {
    let replayed = sb.devstash(&["replay", "-q", module, tape]);
    assert_same("replay", recorded, &replayed);
    let verified = sb.devstash(&["replay", "--verify", module, tape]);
    assert_eq!(verified.code, 0, "{verified:?}");
    assert!(
        verified
            .stderr
            .contains("verified: stdout, stderr, no file written and exit code match"),
        "{verified:?}"
    );
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_cached_request_replays_from_the_tape_with_the_server_gone() {
    let module = guest("api");
    let m = s(&module);
    let sb = Sandbox::new();
    let server = Server::start();
    let url = server.url("/repos/x");
    let recorded = sb.devstash(&["record", "-q", "-o", "api.tape", &server.allow(), m, &url]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    assert_eq!(recorded.stdout, "octo/x: 42 stars; a test repo\n");
    assert_eq!(server.count(), 1);

    // While the server still runs, a replay does not reach it.
    replay_matches(&sb, m, "api.tape", &recorded);
    assert_eq!(server.count(), 1, "a replay reached the server");

    // Then with the server gone (a request would be refused and the output would differ).
    drop(server);
    replay_matches(&sb, m, "api.tape", &recorded);
    let summary = sb.devstash(&["replay", m, "api.tape"]);
    assert!(
        summary
            .stderr
            .contains("0 marked calls and 1 HTTP request answered from the tape"),
        "{summary:?}"
    );

    // A second recording is answered by the cache: that exchange is on its tape too.
    let server = Server::start();
    let url2 = server.url("/repos/x");
    let first = sb.devstash(&["record", "-q", "-o", "a.tape", &server.allow(), m, &url2]);
    let second = sb.devstash(&["record", "-o", "b.tape", &server.allow(), m, &url2]);
    assert_eq!(server.count(), 1, "the second recording is a cache hit");
    assert!(
        second.stderr.contains("1 HTTP exchange,"),
        "the recording counts it: {second:?}"
    );
    drop(server);
    replay_matches(&sb, m, "a.tape", &first);
    let hit = Run {
        code: second.code,
        stdout: second.stdout.clone(),
        stderr: String::new(),
    };
    let replayed = sb.devstash(&["replay", "-q", m, "b.tape"]);
    assert_same("replay of a hit", &hit, &replayed);

    let inspect = sb.devstash(&["inspect", "b.tape"]);
    assert_eq!(inspect.code, 0, "{inspect:?}");
    assert!(
        inspect
            .stdout
            .contains(&format!("http exchanges:\n  GET {url2}")),
        "{inspect:?}"
    );
}

#[test]
fn uncached_requests_replay_in_recorded_order() {
    let module = guest("tapeprobe");
    let m = s(&module);
    let sb = Sandbox::new();
    let server = Server::start();
    let (count, other) = (server.url("/count"), server.url("/nothing"));
    // The same uncached request three times (each answer differs), and a 404.
    let recorded = sb.devstash(&[
        "record",
        "-q",
        "-o",
        "t.tape",
        &server.allow(),
        m,
        "http",
        &count,
        &other,
        &count,
        &count,
    ]);
    assert_eq!(
        recorded.stdout,
        format!(
            "http 200 request 1\nhttp error: GET {other} answered 404 Not Found: nope\nhttp 200 request 3\n\
             http 200 request 4\n"
        ),
        "{recorded:?}"
    );
    assert_eq!(server.count(), 4);
    drop(server);
    replay_matches(&sb, m, "t.tape", &recorded);
    assert!(sb.entries().is_empty(), "uncached: nothing in the store");
}

#[test]
fn secrets_stay_off_tapes_and_the_replay_still_matches() {
    const SECRET: &str = "sk-test-TOPSECRET-7f3a91";
    let module = guest("llm");
    let m = s(&module);
    let sb = Sandbox::new();
    let server = Server::start();
    let key = format!("OPENAI_API_KEY={SECRET}");
    let base = format!("OPENAI_BASE_URL={}", server.url("/v1"));
    let recorded = sb.devstash(&[
        "record",
        "-q",
        "--env",
        &key,
        "--env",
        &base,
        &server.allow(),
        m,
        "Say",
        "hello",
    ]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    assert_eq!(recorded.stdout, "Hello from the local model.\n");
    assert_eq!(server.count(), 1);
    assert_eq!(
        *server.authorizations.lock().unwrap(),
        vec![format!("Bearer {SECRET}")],
        "the recorded run sent the real key"
    );

    let files = files_under(&sb.cache());
    let tape = sb.cache().join("tapes/llm.tape");
    assert!(files.contains(&tape), "{files:?}");
    assert!(
        files.len() >= 2,
        "the tape and the stored response: {files:?}"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !contains(&bytes, SECRET.as_bytes()),
            "{} holds the secret",
            f.display()
        );
        assert!(
            !contains(&bytes, b"SESSIONSECRET"),
            "{} holds a cookie",
            f.display()
        );
    }
    let tape_bytes = std::fs::read(&tape).unwrap();
    assert!(contains(&tape_bytes, b"<redacted by devstash>"));
    assert!(contains(&tape_bytes, b"(Authorization: <redacted>)"));

    drop(server);
    replay_matches(&sb, m, s(&tape), &recorded);
}

#[test]
fn a_request_the_tape_does_not_hold_is_a_divergence() {
    let module = guest("tapeprobe");
    let m = s(&module);
    let sb = Sandbox::new();
    let server = Server::start();
    let url = server.url("/count");
    let recorded = sb.devstash(&[
        "record",
        "-q",
        "-o",
        "t.tape",
        &server.allow(),
        m,
        "more",
        "http",
        &url,
    ]);
    assert_eq!(
        recorded.stdout, "http 200 request 1\ndone\n",
        "{recorded:?}"
    );
    // The changed build asks for `URL?extra` instead.
    let changed = common::patched_variant(&module, sb.path());
    let replayed = sb.devstash(&["replay", s(&changed), "t.tape"]);
    assert_eq!(replayed.code, 123, "{replayed:?}");
    for needle in [
        "replay diverged: the program made an HTTP request that the tape holds no exchange for",
        &format!("request:   GET {url}?extra"),
        "the tape:  holds 1 HTTP exchange:",
        &format!("GET {url}  -> status 200"),
        "record the run again with `devstash record",
    ] {
        assert!(
            replayed.stderr.contains(needle),
            "{needle:?} in {replayed:?}"
        );
    }
    assert!(
        !replayed.stderr.contains("without --offline"),
        "{replayed:?}"
    );
    assert!(!replayed.stdout.contains("done"), "stopped at the request");
    assert_eq!(server.count(), 1, "the replay reached the server");
}

#[test]
fn redacted_variables_and_headers_replay_and_their_values_are_checked() {
    let module = guest("tapeprobe");
    let m = s(&module);
    let sb = Sandbox::new();
    let server = Server::start();
    let url = server.url("/count");
    const TOKEN: &str = "TEAMTOKEN-4711";
    let recorded = sb.devstash(&[
        "record",
        "-q",
        "-o",
        "t.tape",
        &server.allow(),
        "--redact-header",
        "X-Team-Token",
        "--redact-env",
        "TEAM_NOTE",
        "--env",
        &format!("TEAM_NOTE={TOKEN}"),
        m,
        "token",
        "TEAM_NOTE",
        &url,
    ]);
    assert_eq!(
        recorded.stdout, "token of 14 bytes\nhttp 200 request 1\n",
        "{recorded:?}"
    );
    let tape = std::fs::read(sb.path().join("t.tape")).unwrap();
    assert!(
        !contains(&tape, TOKEN.as_bytes()),
        "the value is on the tape"
    );

    // Given its value, the replay is the recording, byte for byte, and the server is not asked.
    let given = sb.devstash(&[
        "replay",
        "--verify",
        "--env",
        &format!("TEAM_NOTE={TOKEN}"),
        m,
        "t.tape",
    ]);
    assert_eq!(given.code, 0, "{given:?}");
    assert_eq!(given.stdout, recorded.stdout);
    let from_host = sb
        .cmd()
        .env("TEAM_NOTE", TOKEN)
        .args([
            "replay",
            "-q",
            "--verify",
            "--env",
            "TEAM_NOTE",
            m,
            "t.tape",
        ])
        .output()
        .unwrap();
    assert!(from_host.status.success(), "{from_host:?}");

    // A wrong value is refused before the program runs.
    let wrong = sb.devstash(&["replay", "--env", "TEAM_NOTE=guess", m, "t.tape"]);
    assert_eq!(wrong.code, 125, "{wrong:?}");
    assert!(
        wrong
            .stderr
            .contains("--env TEAM_NOTE: this is not the value the recording had"),
        "{wrong:?}"
    );
    assert!(wrong.stdout.is_empty(), "{wrong:?}");
    // Only redacted variables take a value.
    let other = sb.devstash(&["replay", "--env", "PATH=/x", m, "t.tape"]);
    assert_eq!(other.code, 125, "{other:?}");
    assert!(
        other.stderr.contains("takes values only for the variables"),
        "{other:?}"
    );

    // Not given: the request still replays (the header is secret by the tape's own list), the
    // program sees a placeholder, and the replay says which variable it needs.
    let without = sb.devstash(&["replay", "--verify", m, "t.tape"]);
    assert_eq!(without.code, 122, "{without:?}");
    assert!(
        without.stdout.ends_with("http 200 request 1\n"),
        "{without:?}"
    );
    assert!(
        without.stderr.contains("the tape keeps TEAM_NOTE redacted")
            && without.stderr.contains("--env TEAM_NOTE"),
        "{without:?}"
    );
    assert!(without.stderr.contains("-token of 14 bytes"), "{without:?}");
    assert_eq!(server.count(), 1, "a replay reached the server");
}
