//! End-to-end tests of host-side HTTP (`devstash::http`), against a real HTTP server on
//! 127.0.0.1 started by each test, which counts the requests it receives.

mod common;

use std::time::Duration;

use common::{Run, Sandbox, guest};

use common::server::Server;

fn api(sb: &Sandbox, flags: &[&str], url: &str) -> Run {
    let m = guest("api");
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.push(m.to_str().unwrap());
    args.push(url);
    sb.devstash(&args)
}

#[test]
fn first_run_requests_second_run_does_not() {
    let server = Server::start();
    let sb = Sandbox::new();
    let url = server.url("/repos/x");
    let first = api(&sb, &[&server.allow()], &url);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(first.stdout, "octo/x: 42 stars; a test repo\n");
    assert_eq!(server.count(), 1);
    assert!(
        first.stderr.contains("0 hits, 1 miss, 1 stored"),
        "{first:?}"
    );

    let second = api(&sb, &[&server.allow()], &url);
    assert_eq!(second.stdout, first.stdout, "{second:?}");
    assert_eq!(server.count(), 1, "the second run reached the server");
    assert!(second.stderr.contains("1 hit"), "{second:?}");

    // The stored response is an ordinary entry named after the host, without the cookie the
    // server set.
    let entries = sb.entries();
    assert_eq!(entries.len(), 1);
    assert!(
        entries[0]
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("http__127.0.0.1__")
    );
    let bytes = std::fs::read(&entries[0]).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("SESSIONSECRET"));
}

#[test]
fn offline_serves_expired_entries_with_a_warning_and_never_connects() {
    let server = Server::start();
    let sb = Sandbox::new();
    let url = server.url("/repos/x");
    let ttl = ["--env", "API_TTL=1s"];
    let allow = server.allow();
    let mut flags = vec![allow.as_str()];
    flags.extend_from_slice(&ttl);
    assert_eq!(api(&sb, &flags, &url).code, 0);
    assert_eq!(server.count(), 1);
    std::thread::sleep(Duration::from_millis(2100));

    let mut offline = flags.clone();
    offline.push("--offline");
    let r = api(&sb, &offline, &url);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "octo/x: 42 stars; a test repo\n");
    assert!(
        r.stderr.contains("expired, served anyway (--offline)"),
        "{r:?}"
    );
    assert_eq!(server.count(), 1, "--offline reached the server");

    // Nothing stored for this URL: --offline refuses instead of connecting.
    let r = api(&sb, &offline, &server.url("/repos/other"));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("error (Offline)") && r.stderr.contains("--offline"),
        "{r:?}"
    );
    assert_eq!(server.count(), 1);

    // Online, the expired entry is fetched again.
    let r = api(&sb, &flags, &url);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(server.count(), 2);
    assert!(r.stderr.contains("1 expired"), "{r:?}");
}

#[test]
fn hosts_not_allowed_are_refused_before_any_request() {
    let server = Server::start();
    let sb = Sandbox::new();
    let url = server.url("/repos/x");
    for flags in [
        vec![],
        vec!["--allow-net=example.com"],
        vec!["--allow-net=127.0.0.1:1"],
    ] {
        let r = api(&sb, &flags, &url);
        assert_eq!(r.code, 1, "{flags:?}: {r:?}");
        assert!(r.stderr.contains("error (NotAllowed)"), "{r:?}");
        assert!(
            r.stderr.contains("--allow-net=127.0.0.1"),
            "the flag is not named: {r:?}"
        );
    }
    assert_eq!(server.count(), 0, "a refused request reached the server");
    // Wildcards and the bare flag allow it.
    assert_eq!(api(&sb, &["--allow-net=127.0.0.1"], &url).code, 0);
    assert_eq!(api(&sb, &["--no-cache", "--allow-net"], &url).code, 0);
    assert_eq!(server.count(), 2);
    let bad = api(&sb, &["--allow-net=a/b"], &url);
    assert_eq!(bad.code, 125, "{bad:?}");
    assert!(bad.stderr.contains("invalid --allow-net entry"), "{bad:?}");
}

#[test]
fn secrets_never_reach_the_disk() {
    let server = Server::start();
    let sb = Sandbox::new();
    let llm = guest("llm");
    let secret = "sk-test-SECRET-4f9a1c";
    let run = || -> Run {
        sb.cmd()
            .env("OPENAI_API_KEY", secret)
            .env("OPENAI_BASE_URL", server.url("/v1"))
            .args([
                "run",
                "--env",
                "OPENAI_API_KEY",
                "--env",
                "OPENAI_BASE_URL",
                &server.allow(),
                llm.to_str().unwrap(),
                "Say",
                "hello",
            ])
            .output()
            .unwrap()
            .into()
    };
    let first = run();
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(first.stdout, "Hello from the local model.\n");
    // The server did get the key: it is sent, just never stored.
    assert_eq!(
        *server.authorizations.lock().unwrap(),
        vec![format!("Bearer {secret}")]
    );
    let second = run();
    assert_eq!(second.stdout, first.stdout);
    assert_eq!(server.count(), 1);

    let mut files = 0;
    let mut stack = vec![sb.cache()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                let bytes = std::fs::read(&p).unwrap();
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains("SECRET-4f9a1c"),
                    "{} holds the secret",
                    p.display()
                );
            }
        }
    }
    assert!(files >= 2, "nothing was stored");
    // The answer is stored by the marked method, whose key holds the client (and its API key,
    // by a keyed hash only).
    let entry = String::from_utf8_lossy(&std::fs::read(&sb.entries()[0]).unwrap()).into_owned();
    assert!(entry.contains("\"site\":\"llm::Client::ask\""), "{entry}");
}

#[test]
fn failures_reach_the_guest_as_errors() {
    let server = Server::start();
    let sb = Sandbox::new();
    let allow = server.allow();

    let r = api(&sb, &[&allow], &server.url("/fail"));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("error (Status(500))"), "{r:?}");
    // A failed response is not stored: the next run asks again.
    api(&sb, &[&allow], &server.url("/fail"));
    assert_eq!(server.count(), 2);
    assert!(sb.entries().is_empty());

    let r = api(
        &sb,
        &[&allow, "--env", "API_TIMEOUT_MS=300"],
        &server.url("/slow"),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("error (Timeout)"), "{r:?}");

    // A port with nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let r = api(
        &sb,
        &[&format!("--allow-net=127.0.0.1:{port}")],
        &format!("http://127.0.0.1:{port}/repos/x"),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("error (Connect)"), "{r:?}");

    let r = api(&sb, &[&allow], "ftp://127.0.0.1/x");
    assert!(r.stderr.contains("error (InvalidRequest)"), "{r:?}");
}
