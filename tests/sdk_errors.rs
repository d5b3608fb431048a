//! End-to-end tests of what the Rust guest SDK tells its users: HTTP errors that show what the
//! server answered, calls keyed by a file (`devstash::FileKey`), and a readable compile error
//! for a value type that cannot be stored. Each test builds a small guest crate for
//! wasm32-wasip1 and runs it through the real `devstash` binary (or, for compile errors, builds
//! it and reads the compiler's output).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use common::{Run, Sandbox};

/// Writes the guest crate `name` (the SDK and serde as dependencies, `main_rs` as its only
/// source) into `sb`'s directory, builds it and returns its module.
fn build(sb: &Sandbox, name: &str, main_rs: &str) -> PathBuf {
    let dir = sb.path().join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), common::guest_manifest(name)).unwrap();
    std::fs::write(dir.join("src/main.rs"), main_rs).unwrap();
    common::build_crate(&dir, name)
}

/// `devstash run OPTIONS MODULE ARGS`.
fn run(sb: &Sandbox, options: &[&str], module: &Path, args: &[&str]) -> Run {
    let mut all = vec!["run"];
    all.extend_from_slice(options);
    all.push(module.to_str().unwrap());
    all.extend_from_slice(args);
    sb.devstash(&all)
}

/// Whether `s` holds a list of decimal numbers such as `[123, 34, 101`: a body shown byte by
/// byte.
fn has_byte_list(s: &str) -> bool {
    s.match_indices('[').any(|(at, _)| {
        let rest = &s[at + 1..];
        let mut numbers = 0;
        for part in rest.split(", ") {
            let digits = part.len() - part.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                break;
            }
            numbers += 1;
            if numbers >= 3 {
                return true;
            }
            // Only a whole number may be followed by another element.
            if digits != part.len() {
                break;
            }
        }
        false
    })
}

// ---------------------------------------------------------------------------------------------
// 1. HTTP errors that say something.

/// A server on 127.0.0.1 with the answers these tests need (tests/common/server.rs has no 401).
struct ErrorServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const UNAUTHORIZED_BODY: &str = r#"{"error":"bad_credentials","message":"Requires authentication","documentation_url":"https://docs.example.com/auth"}"#;

/// `/long`'s body: control characters near the start, then `x` up to byte 199, then `é` (two
/// bytes, so that one straddles byte 200) up to about 5000 bytes.
fn long_body() -> String {
    let mut body = String::from("line one\n\tindented \u{1b}[31mred\u{1b}[0m ");
    while body.len() < 199 {
        body.push('x');
    }
    while body.len() < 5000 {
        body.push('é');
    }
    body
}

/// `/binary`'s body: 300 bytes that are not UTF-8.
fn binary_body() -> Vec<u8> {
    (0..300u32).map(|i| (0x80 + i % 0x7f) as u8).collect()
}

impl ErrorServer {
    fn start() -> ErrorServer {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("a loopback port");
        let port = server.server_addr().to_ip().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok(Some(mut req)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let mut sink = Vec::new();
                let _ = req.as_reader().read_to_end(&mut sink);
                let json =
                    tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
                let response = match req.url() {
                    "/private" => tiny_http::Response::from_string(UNAUTHORIZED_BODY)
                        .with_status_code(401)
                        .with_header(json),
                    "/long" => tiny_http::Response::from_string(long_body()).with_status_code(500),
                    "/binary" => {
                        tiny_http::Response::from_data(binary_body()).with_status_code(502)
                    }
                    "/empty" => tiny_http::Response::from_string("").with_status_code(503),
                    "/ok" => tiny_http::Response::from_string("héllo"),
                    _ => tiny_http::Response::from_string("nope").with_status_code(404),
                };
                let _ = req.respond(response);
            }
        });
        ErrorServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn allow(&self) -> String {
        format!("--allow-net=127.0.0.1:{}", self.port)
    }
}

impl Drop for ErrorServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Requests every URL given and prints, for each, `display: {e}` and `debug: {e:?}` (or
/// `ok: {response:?}`), one line each.
const HTTP_GUEST: &str = r#"use devstash::http;

fn main() {
    for url in std::env::args().skip(1) {
        match http::get(&url) {
            Ok(r) => println!("ok: {r:?}"),
            Err(e) => {
                println!("display: {e}");
                println!("debug: {e:?}");
            }
        }
    }
}
"#;

/// The line of `r`'s output that starts with `prefix`, the `n`th such line (from 0).
fn line<'a>(r: &'a Run, prefix: &str, n: usize) -> &'a str {
    r.stdout
        .lines()
        .filter(|l| l.starts_with(prefix))
        .nth(n)
        .unwrap_or_else(|| panic!("no {n}th {prefix:?} line: {r:?}"))
}

#[test]
fn http_status_errors_show_the_start_of_the_body_and_never_a_list_of_bytes() {
    let sb = Sandbox::new();
    let server = ErrorServer::start();
    let m = build(&sb, "sdkerr_http", HTTP_GUEST);
    let urls = ["/private", "/long", "/binary", "/empty", "/ok"].map(|p| server.url(p));
    let args: Vec<&str> = urls.iter().map(String::as_str).collect();
    let r = run(&sb, &[&server.allow()], &m, &args);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!has_byte_list(&r.stdout), "a body shown as numbers: {r:?}");

    // 401 with a JSON reason: the reason is in the one-line message.
    let display = line(&r, "display: ", 0);
    assert_eq!(
        display,
        format!(
            "display: GET {} answered 401 Unauthorized: {UNAUTHORIZED_BODY}",
            urls[0]
        ),
        "{r:?}"
    );
    let debug = line(&r, "debug: ", 0);
    assert!(debug.contains("kind: Status(401)"), "{debug}");
    assert!(
        debug.contains(
            r#"body: "{\"error\":\"bad_credentials\",\"message\":\"Requires authentication\""#
        ),
        "the body is not shown as a string: {debug}"
    );

    // A long body with control characters: 200 bytes at most, escaped, cut at a character.
    let display = line(&r, "display: ", 1);
    let prefix = format!(
        "display: GET {} answered 500 Internal Server Error: ",
        urls[1]
    );
    let excerpt = display
        .strip_prefix(prefix.as_str())
        .unwrap_or_else(|| panic!("{display}"));
    assert!(
        excerpt.starts_with(r"line one\n\tindented \u{1b}[31mred\u{1b}[0m xxx"),
        "{excerpt}"
    );
    assert!(
        excerpt.ends_with("xx…"),
        "not cut before the `é` at byte 199: {excerpt}"
    );
    assert!(
        !excerpt.contains('\u{1b}') && !excerpt.contains('\t'),
        "{excerpt:?}"
    );
    assert!(excerpt.len() < 220, "{} bytes: {excerpt}", excerpt.len());
    let debug = line(&r, "debug: ", 1);
    assert!(debug.contains("kind: Status(500)"), "{debug}");
    assert!(
        debug.contains(r#"body: "line one\n\tindented \u{1b}[31mred"#),
        "{debug}"
    );
    let size = format!("\"… ({} bytes)", long_body().len());
    assert!(debug.contains(&size), "no {size}: {debug}");
    assert!(
        debug.len() < 2000,
        "the whole body in Debug: {} bytes",
        debug.len()
    );

    // A body that is not text: its size.
    let display = line(&r, "display: ", 2);
    assert_eq!(
        display,
        format!(
            "display: GET {} answered 502 Bad Gateway: <300 bytes, not UTF-8>",
            urls[2]
        )
    );
    assert!(
        line(&r, "debug: ", 2).contains("body: <300 bytes, not UTF-8>"),
        "{r:?}"
    );

    // No body.
    assert_eq!(
        line(&r, "display: ", 3),
        format!(
            "display: GET {} answered 503 Service Unavailable: <empty body>",
            urls[3]
        )
    );

    // A good response's Debug: its body as a string.
    let ok = line(&r, "ok: ", 0);
    assert!(
        ok.starts_with("ok: Response { status: 200, headers: [")
            && ok.ends_with(r#"body: "héllo" }"#),
        "{ok}"
    );
}

#[test]
fn the_byte_list_check_sees_a_byte_list() {
    // The derived `Debug` of a `Vec<u8>` body, as the SDK printed it before.
    assert!(has_byte_list(
        r#"Response { status: 401, body: [123, 34, 101] }"#
    ));
    assert!(!has_byte_list(r#"headers: [("a", "b")], body: "[1, 2]" "#));
    assert!(!has_byte_list("Status(401) [1, 2x, 3]"));
}

// ---------------------------------------------------------------------------------------------
// 3. Calls keyed by a file.

/// `MODE PATH`: counts the lines of the file at PATH, keyed by `FileKey::identity` or
/// `FileKey::content` (MODE), and prints `MODE: VALUE`; `computed ...` when the body runs.
const FILE_GUEST: &str = r#"use devstash::{FileKey, stashed};

#[stashed]
fn lines(file: FileKey) -> String {
    println!("computed lines({})", file.path().display());
    let text = std::fs::read_to_string(&file).unwrap();
    format!("{} lines, first {:?}", text.lines().count(), text.lines().next().unwrap_or(""))
}

fn main() {
    let mode = std::env::args().nth(1).unwrap();
    let path = std::env::args().nth(2).unwrap();
    let key = match mode.as_str() {
        "identity" => FileKey::identity(&path),
        "content" => FileKey::content(&path),
        other => panic!("mode {other}"),
    };
    match key {
        Ok(key) => println!("{mode}: {}", lines(key)),
        Err(e) => {
            println!("error: {e}");
            std::process::exit(3);
        }
    }
}
"#;

/// Writes `text` to `path` and sets its modification time to `mtime`.
fn write_at(path: &Path, text: &str, mtime: SystemTime) {
    std::fs::write(path, text).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), mtime);
}

#[test]
fn a_call_keyed_by_a_file_is_computed_again_when_the_file_changes() {
    let sb = Sandbox::new();
    let m = build(&sb, "sdkerr_filekey", FILE_GUEST);
    let data = sb.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let notes = data.join("notes.txt");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let t1 = t0 + Duration::from_secs(60);
    write_at(&notes, "alpha\nbeta\n", t0);

    // Returns the value printed and whether the body ran.
    let go = |mode: &str| -> (String, bool) {
        let r = run(
            &sb,
            &["--dir", "data::/data:ro"],
            &m,
            &[mode, "/data/notes.txt"],
        );
        assert_eq!(r.code, 0, "{r:?}");
        let computed = r.stdout.contains("computed lines(/data/notes.txt)");
        let prefix = format!("{mode}: ");
        let value = r
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no value: {r:?}"))
            .to_string();
        (value, computed)
    };
    let alpha = r#"2 lines, first "alpha""#;
    let gamma = r#"2 lines, first "gamma""#;
    let three = r#"3 lines, first "alpha""#;

    // First run computes, second hits.
    for mode in ["identity", "content"] {
        assert_eq!(go(mode), (alpha.into(), true), "{mode}, first run");
        assert_eq!(go(mode), (alpha.into(), false), "{mode}, second run");
    }

    // Same size, same modification time, other bytes: the identity does not see it (which
    // shows that the time really was restored), the content does.
    write_at(&notes, "gamma\nbeta\n", t0);
    assert_eq!(
        go("identity"),
        (alpha.into(), false),
        "identity, same-size edit"
    );
    assert_eq!(
        go("content"),
        (gamma.into(), true),
        "content, same-size edit"
    );
    assert_eq!(go("content"), (gamma.into(), false), "content, after it");

    // Only the modification time: the identity recomputes, the content hits.
    write_at(&notes, "gamma\nbeta\n", t1);
    assert_eq!(go("identity"), (gamma.into(), true), "identity, touched");
    assert_eq!(go("identity"), (gamma.into(), false), "identity, after it");
    assert_eq!(go("content"), (gamma.into(), false), "content, touched");

    // Another size at the same modification time: both recompute.
    write_at(&notes, "alpha\nbeta\ngamma\n", t1);
    assert_eq!(go("identity"), (three.into(), true), "identity, resized");
    assert_eq!(go("content"), (three.into(), true), "content, resized");
    assert_eq!(go("identity"), (three.into(), false), "identity, after it");
    assert_eq!(go("content"), (three.into(), false), "content, after it");

    // Restored to an earlier state: both earlier entries answer again.
    write_at(&notes, "alpha\nbeta\n", t0);
    assert_eq!(go("identity"), (alpha.into(), false), "identity, restored");
    assert_eq!(go("content"), (alpha.into(), false), "content, restored");

    // No such file, or a directory: an error to handle, not a key.
    for (mode, path, want) in [
        ("identity", "/data/missing.txt", "error: "),
        ("content", "/data/missing.txt", "error: "),
        ("identity", "/data", "error: /data is not a file"),
        ("content", "/data", "error: /data is not a file"),
    ] {
        let r = run(&sb, &["--dir", "data::/data:ro"], &m, &[mode, path]);
        assert_eq!(r.code, 3, "{mode} {path}: {r:?}");
        assert!(r.stdout.starts_with(want), "{mode} {path}: {r:?}");
        assert!(!r.stdout.contains("computed"), "{mode} {path}: {r:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. A value type that cannot be stored: a compile error that says why.

const WANT: &str = "error[E0277]: the value type `Report` of a stashed call must implement \
                    `Serialize` and `Deserialize`";

/// Asserts that the errors are exactly the readable ones, at `locations` (`line:column` in
/// src/main.rs, in order), and that nothing names the dispatch's internals first.
fn assert_readable(stderr: &str, errors: &[(String, String)], locations: &[&str]) {
    assert!(!errors.is_empty(), "no errors found in:\n{stderr}");
    assert!(
        !stderr.contains("E0599"),
        "an E0599 about the dispatch:\n{stderr}"
    );
    for (message, _) in errors {
        assert_eq!(
            message, WANT,
            "an error that is not the readable one:\n{stderr}"
        );
        for internal in ["__devstash", "Probed", "RawBytes"] {
            assert!(!message.contains(internal), "{message}");
        }
    }
    let at: Vec<&str> = errors.iter().map(|(_, loc)| loc.as_str()).collect();
    let want: Vec<String> = locations
        .iter()
        .map(|l| format!("src/main.rs:{l}"))
        .collect();
    assert_eq!(at, want, "{stderr}");
    // The compiler's own help names the trait that is missing.
    assert!(
        stderr.contains("the trait `for<'de> Deserialize<'de>` is not implemented for `Report`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("#[derive(serde::Serialize, serde::Deserialize)]"),
        "{stderr}"
    );
}

#[test]
fn stash_of_a_call_whose_value_is_not_deserialize_says_so() {
    let (stderr, errors) = common::compile_errors(
        "sdkerr_value_stash",
        r#"#[derive(serde::Serialize, Debug)]
struct Report { rows: u32 }

fn summarize(rows: u32) -> Report { Report { rows } }

fn checked(rows: u32) -> Result<Report, String> { Ok(Report { rows }) }

#[derive(serde::Serialize)]
struct Source;
impl Source {
    fn load(&self, rows: u32) -> Report { Report { rows } }
}

fn main() {
    let a = devstash::stash!(summarize(3));
    let b = devstash::stash!(checked(4));
    let c = devstash::stash!(ttl = "1h", Source.load(5));
    println!("{a:?} {b:?} {c:?}");
}
"#,
    );
    // At the callee of each marked call.
    assert_readable(&stderr, &errors, &["15:30", "16:30", "17:42"]);
}

#[test]
fn stashed_on_a_function_whose_value_is_not_deserialize_says_so() {
    let (stderr, errors) = common::compile_errors(
        "sdkerr_value_stashed",
        r#"#[derive(serde::Serialize, Debug)]
struct Report { rows: u32 }

#[devstash::stashed]
fn summarize(rows: u32) -> Report { Report { rows } }

#[devstash::stashed(ttl = "1d")]
fn checked(rows: u32) -> Result<Report, std::io::Error> { Ok(Report { rows }) }

fn main() {
    println!("{:?} {:?}", summarize(3), checked(4).ok());
}
"#,
    );
    // At the return type: `Report` itself, and `Report` inside the `Result`.
    assert_readable(&stderr, &errors, &["5:28", "8:33"]);
}
