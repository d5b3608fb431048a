//! End-to-end tests of what `devstash inspect ENTRY` and a replay's divergence report show of
//! values and arguments, with the real binary and real guests: stored HTTP responses (status,
//! headers, the body as JSON, text or hex), Python values (a Python-like `repr` of the pickle),
//! Rust values (decoded where the type says how; a struct of the program said to be one), and
//! the arguments of a marked call a replay cannot answer (as Python for a Python guest, as the
//! text they hold for a guest of no SDK). Whatever came from a guest or a server is escaped: no
//! raw terminal control byte ever reaches the output.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::python::Py;
use common::{Sandbox, guest, rewrite_tape, workspace};
use devstash_protocol::{ABI_VERSION, SiteDesc, SiteKind, codec};
use devstash_runner::tape::format::Event;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts that nothing a terminal would act on is in `text`, other than line breaks.
#[track_caller]
fn assert_no_control(what: &str, text: &str) {
    assert!(
        !text
            .chars()
            .any(|c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c)),
        "{what} holds a raw control character:\n{text:?}"
    );
}

/// The one entry file of a sandbox whose name starts with `prefix`.
fn entry_named(entries: &[PathBuf], prefix: &str) -> PathBuf {
    let found: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "one entry named {prefix}… in {entries:?}");
    found[0].clone()
}

/// `devstash inspect ARGS` in `sb`, which must succeed.
fn inspect(sb: &Sandbox, args: &[&str]) -> String {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    let r = sb.devstash(&all);
    assert_eq!(r.code, 0, "{r:?}");
    assert_no_control("inspect's output", &r.stdout);
    r.stdout
}

// =============================================================================================
// 1. Stored HTTP responses
// =============================================================================================

/// A JSON document of 60 items, keys out of alphabetical order, a terminal escape and a
/// bidirectional override in its strings (as JSON escapes, and raw).
fn long_json() -> String {
    let items: Vec<String> = (0..60)
        .map(|i| format!(r#"{{"zeta": {i}, "alpha": "item {i}"}}"#))
        .collect();
    format!(
        r#"{{"full_name": "octo/x", "note": "red \u001b[31m and {}", "items": [{}]}}"#,
        '\u{202e}',
        items.join(", ")
    )
}

/// A text with a terminal escape (an OSC 52 clipboard write) and a tab.
const TEXT_BODY: &[u8] = b"first line\nsecond \x1b]52;c;SGVsbG8=\x07 line\n\tthird\n";

/// A server on 127.0.0.1 answering `/json`, `/text` and `/png`; it stops when dropped, and
/// after 60 s at most.
struct BodyServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BodyServer {
    fn start() -> BodyServer {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("a loopback port");
        let port = server.server_addr().to_ip().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stopping.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let (body, ct): (Vec<u8>, &str) = match req.url() {
                    "/json" => (long_json().into_bytes(), "application/json"),
                    "/text" => (TEXT_BODY.to_vec(), "text/plain; charset=utf-8"),
                    "/png" => {
                        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
                        png.extend((0..200u32).map(|i| (i * 7 % 256) as u8));
                        (png, "image/png")
                    }
                    _ => (b"nope".to_vec(), "text/plain"),
                };
                let header = tiny_http::Header::from_bytes("Content-Type", ct).unwrap();
                let extra = tiny_http::Header::from_bytes("X-Served-By", "body-server").unwrap();
                let _ = req.respond(
                    tiny_http::Response::from_data(body)
                        .with_header(header)
                        .with_header(extra),
                );
            }
        });
        BodyServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for BodyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Fetches `path` with the `api` example (which stores every 2xx response for 24 h) in a
/// sandbox of its own, and returns the sandbox and the stored response's entry.
fn stored_response(server: &BodyServer, path: &str) -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    let allow = format!("--allow-net=127.0.0.1:{}", server.port);
    let r = sb.devstash(&["run", &allow, s(&guest("api")), &server.url(path)]);
    assert_eq!(r.code, 0, "{r:?}");
    let entries = sb.entries();
    let entry = entry_named(&entries, "http__127.0.0.1__");
    (sb, entry)
}

/// `inspect` of a stored response shows its status, its headers, and its body: JSON
/// re-indented in its own key order and cut after 40 lines, text line by line, binary as a byte
/// count and the hex of its start; escapes from the server are shown escaped.
#[test]
fn stored_http_responses_show_status_headers_and_body() {
    let server = BodyServer::start();

    let (sb, entry) = stored_response(&server, "/json");
    let out = inspect(&sb, &[s(&entry)]);
    let size = long_json().len();
    for want in [
        "kind       http",
        "value type devstash::http::Response",
        "status     200",
        "content-type: application/json",
        "x-served-by: body-server",
        &format!("body       {size} bytes ("),
        "), JSON:",
        "           {",
        "             \"full_name\": \"octo/x\",",
        // The escape as JSON wrote it; the raw override escaped.
        "             \"note\": \"red \\u001b[31m and \\u{202e}\",",
        "             \"items\": [",
        "                 \"zeta\": 0,",
        "                 \"alpha\": \"item 0\"",
        "more lines",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    let body_lines = out
        .lines()
        .skip_while(|l| !l.starts_with("body "))
        .skip(1)
        .take_while(|l| l.starts_with("           "))
        .count();
    assert_eq!(body_lines, 41, "40 lines and what follows:\n{out}");
    assert!(
        out.find("\"zeta\": 0").unwrap() < out.find("\"alpha\": \"item 0\"").unwrap(),
        "keys keep the document's order:\n{out}"
    );
    assert!(!out.contains("item 59"), "cut:\n{out}");
    // The same, for scripts.
    let json: serde_json::Value =
        serde_json::from_str(&inspect(&sb, &["--json", s(&entry)])).unwrap();
    assert_eq!(json["http"]["status"], 200, "{json}");
    assert_eq!(json["http"]["body_kind"], "json", "{json}");
    assert_eq!(json["http"]["body_len"], size, "{json}");
    assert_eq!(
        json["http"]["body_preview"][1],
        "  \"full_name\": \"octo/x\","
    );

    let (sb, entry) = stored_response(&server, "/text");
    let out = inspect(&sb, &[s(&entry)]);
    for want in [
        "status     200",
        "content-type: text/plain; charset=utf-8",
        &format!("body       {0} bytes ({0} B), text:", TEXT_BODY.len()),
        "           first line\n",
        "           second \\x1b]52;c;SGVsbG8=\\x07 line\n",
        "           \\tthird\n",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }

    let (sb, entry) = stored_response(&server, "/png");
    let out = inspect(&sb, &[s(&entry)]);
    for want in [
        "body       216 bytes (216 B), binary (image/png); the first 64 B in hex:",
        "           00000000  89 50 4e 47 0d 0a 1a 0a 00 00 00 0d 49 48 44 52",
        "|.PNG........IHDR|",
        "           … 152 B more",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
}

// =============================================================================================
// 2. Python values
// =============================================================================================

/// `devstash inspect ARGS` in a Python scratch directory: it succeeds, and prints no raw
/// control character.
fn py_inspect(py: &Py, args: &[&str]) -> String {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    let r = py.devstash(&all);
    assert_eq!(r.code, 0, "{r:?}");
    assert_no_control("inspect's output", &r.stdout);
    r.stdout
}

const VALUES_PY: &str = r#"import dataclasses
import devstash


@dataclasses.dataclass
class Point:
    x: int
    y: float


@devstash.stash
def number(n):
    return n * 2


@devstash.stash
def items(n):
    return list(range(1, n + 1))


@devstash.stash
def table(name):
    return {"a": 1, "name": name, "nested": (None, True, 2.5), "esc": "\x1b[31mred\u202e"}


@devstash.stash
def point(x):
    return Point(x, x / 2)


@devstash.stash
def many(n):
    return list(range(n))


print(number(10), items(3), table("x"), point(3), len(many(100)))
"#;

/// `inspect` of a Python entry unpickles nothing: it reads the pickle (protocol 5, as the SDK
/// stores it) into a `repr` as Python would show it, cut, with every escape kept.
#[test]
fn python_values_show_as_python_reprs() {
    let py = Py::new();
    py.write("vals.py", VALUES_PY);
    let r = py.devstash(&["run", "vals.py"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("20 [1, 2, 3] {'a': 1"), "{r:?}");

    for (site, want) in [
        ("vals.number", "value      20\n".to_string()),
        ("vals.items", "value      [1, 2, 3]\n".to_string()),
        (
            "vals.table",
            "value      {'a': 1, 'name': 'x', 'nested': (None, True, 2.5), \
             'esc': '\\x1b[31mred\\u202e'}\n"
                .to_string(),
        ),
        ("vals.point", "value      Point(x=3, y=1.5)\n".to_string()),
        (
            "vals.many",
            format!(
                "value      [{}, … (100 items)]\n",
                (0..16)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    ] {
        let out = py_inspect(&py, &[&format!("{site}__")]);
        assert!(out.contains(&want), "{want:?} missing from:\n{out}");
        assert!(out.contains("value type python-pickle"), "{out}");
        assert!(out.contains("(pickle)"), "{out}");
        // The value is shown, so the text found in its bytes is not repeated.
        assert!(!out.contains("\ntext "), "{out}");
        assert!(out.contains("bytes      00000000  80 05"), "{out}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&py_inspect(&py, &["--json", "vals.items__"])).unwrap();
    assert_eq!(json["decoded"], "[1, 2, 3]", "{json}");
}

// =============================================================================================
// 3. Rust values
// =============================================================================================

const VALUES_RS: &str = r#"use devstash::stashed;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Totals {
    count: u32,
    label: String,
}

#[stashed]
fn greeting(name: String) -> String {
    format!("hello {name}\x1b[31m")
}

#[stashed]
fn words(n: u32) -> Vec<String> {
    (0..n).map(|i| format!("word{i}")).collect()
}

#[stashed]
fn pair(n: u32) -> (u32, String) {
    (n, format!("n={n}"))
}

#[stashed]
fn maybe(n: u32) -> Option<String> {
    (n > 0).then(|| "some".to_string())
}

#[stashed]
fn totals(n: u32) -> Totals {
    Totals { count: n, label: "a label".into() }
}

fn main() {
    println!("{}", greeting("world".into()));
    println!("{:?}", words(3));
    println!("{:?}", pair(7));
    println!("{:?}", maybe(1));
    println!("{:?}", totals(5));
}
"#;

/// Builds the `inspectvals` guest: a marked function for each kind of value.
fn build_values_guest() -> (tempfile::TempDir, PathBuf) {
    let ws = workspace();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/main.rs"), VALUES_RS).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"inspectvals\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
             publish = false\n\n[dependencies]\ndevstash = {{ path = {:?} }}\n\
             serde = {{ version = \"1\", features = [\"derive\"] }}\n\n[workspace]\n",
            ws.join("guest-sdk")
        ),
    )
    .unwrap();
    // The workspace's lock file keeps the crate on the same dependency versions.
    std::fs::copy(ws.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let built = common::build_crate(dir, "inspectvals");
    let module = dir.join("inspectvals.wasm");
    std::fs::copy(built, &module).unwrap();
    (tmp, module)
}

/// Strings, `Vec<String>`, tuples and `Option`s decode from their type name alone (escaped as
/// Rust writes them); a struct of the program cannot, and `inspect` says why in one line, then
/// shows the text in its bytes and the bytes.
#[test]
fn rust_values_decode_by_type_and_structs_say_why_not() {
    let (_dir, module) = build_values_guest();
    let sb = Sandbox::new();
    let r = sb.run(&module, &[]);
    assert_eq!(r.code, 0, "{r:?}");

    for (fn_name, want) in [
        ("greeting", "value      \"hello world\\u{1b}[31m\"\n"),
        ("words", "value      [\"word0\", \"word1\", \"word2\"]\n"),
        ("pair", "value      (7, \"n=7\")\n"),
        ("maybe", "value      Some(\"some\")\n"),
    ] {
        let out = inspect(&sb, &[&format!("inspectvals__{fn_name}__")]);
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
        assert!(out.contains("(postcard)"), "{out}");
    }
    let out = inspect(&sb, &["inspectvals__totals__"]);
    for want in [
        "value type inspectvals::Totals",
        "value      (not decoded: inspectvals::Totals is a struct or enum of the program, and \
         an entry does not record its fields, so its bytes are shown)\n",
        "text       \"a label\"",
        "bytes      00000000  05 07 61 20 6c 61 62 65 6c",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
}

// =============================================================================================
// 4. Divergence reports
// =============================================================================================

const CONVERT_PY: &str = r#"import devstash

devstash.activate()


def convert(currency, n=1):
    print(f"computing convert({currency})")
    return n * 2


v = convert("EUR\x1b[2J", n=3)  # @devstash
print("value", v)
"#;

/// The Python SDK's key bytes of `convert('USD', n=2)`.
const USD_N2: &[u8] = b"A\x01\x06\x03USD\x01\x01n\x03\x01\x02";

/// A replay of a Python script that makes a marked call the tape cannot answer shows the call's
/// arguments as Python (`('EUR', n=3)`), and those of the calls the tape holds. The script and
/// every input come from the tape, so the recording is made to have been of other arguments:
/// its call's key and arguments are rewritten (to `convert('USD', n=2)`).
#[test]
fn a_python_divergence_shows_the_arguments_as_python() {
    let py = Py::new();
    py.write("conv.py", CONVERT_PY);
    let recorded = py.devstash(&["record", "-q", "conv.py"]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    assert!(recorded.stdout.ends_with("value 6\n"), "{recorded:?}");

    let tape = py.path().join(".devstash_cache/tapes/conv.tape");
    let mut rewritten = 0;
    rewrite_tape(&tape, |event| {
        if let Event::Call(c) = event {
            c.key[0] ^= 0xff;
            c.args = USD_N2.to_vec();
            rewritten += 1;
        }
    });
    assert_eq!(rewritten, 1, "the recording holds one marked call");

    let replayed = py.devstash(&["replay", "conv.py"]);
    assert_eq!(replayed.code, 123, "{replayed:?}");
    for want in [
        "replay diverged: the program made a marked call that the tape cannot answer",
        "site:      conv.convert (",
        "arguments: ('EUR\\x1b[2J', n=3)",
        "holds 1 call of this site:",
        "[arguments ('USD', n=2)]",
    ] {
        assert!(replayed.stderr.contains(want), "{want:?} in {replayed:?}");
    }
    assert_no_control("the report", &replayed.stderr);
    assert!(!replayed.stdout.contains("computing"), "{replayed:?}");
}

/// Bytes as a WAT string literal (every byte escaped).
fn wat_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// A guest of no SDK (hand-written WebAssembly) with one marked site, called with the argument
/// bytes `args`: on a miss it stores `ok`, on a hit it takes the value; it prints `done`.
fn raw_args_guest(dir: &Path, name: &str, args: &[u8]) -> PathBuf {
    let desc = codec::encode(&SiteDesc {
        abi_version: ABI_VERSION,
        module_path: "hand".into(),
        callee: "hand::lookup".into(),
        file: "src/main.c".into(),
        line: 12,
        ttl_secs: None,
        fingerprint: "0123456789abcdef".into(),
        value_type: "alloc::string::String".into(),
        kind: SiteKind::Call,
        types: "hand::lookup(bytes) -> alloc::string::String".into(),
    })
    .unwrap();
    let wat = format!(
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
            (import "devstash" "site_register" (func $reg (param i32 i32) (result i32)))
            (import "devstash" "stash_get" (func $get (param i32 i32 i32 i32 i32) (result i32)))
            (import "devstash" "stash_take" (func $take (param i32 i32) (result i32)))
            (import "devstash" "stash_put" (func $put (param i64 i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 2)
            (data (i32.const 16) "done\n")
            (data (i32.const 32) "\02ok")
            (data (i32.const 1024) "{args}")
            (data (i32.const 4096) "{desc}")
            (func (export "_start") (local $h i32)
                (local.set $h (call $reg (i32.const 4096) (i32.const {desc_len})))
                (if (i32.eqz (call $get (local.get $h) (i32.const 1024) (i32.const {args_len}) (i32.const 0) (i32.const 40)))
                    (then (drop (call $take (i32.const 8192) (i32.wrap_i64 (i64.load (i32.const 40))))))
                    (else (drop (call $put (i64.load (i32.const 40)) (i32.const 32) (i32.const 3) (i32.const 0) (i32.const 0)))))
                (i32.store (i32.const 0) (i32.const 16))
                (i32.store (i32.const 4) (i32.const 5))
                (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        args = wat_string(args),
        desc = wat_string(&desc),
        desc_len = desc.len(),
        args_len = args.len(),
    );
    let path = dir.join(format!("{name}.wat"));
    std::fs::write(&path, wat).unwrap();
    path
}

/// A replay of a changed build of a guest of no SDK, whose marked call now has other argument
/// bytes, shows the new and the recorded arguments as their start in hex and the text in them:
/// length-prefixed strings (as postcard writes them) and other printable runs (a C string), with
/// the terminal escape between them never printed raw.
#[test]
fn a_divergence_shows_the_text_in_arguments_of_no_sdk() {
    let sb = Sandbox::new();
    let mut old = b"\x0bhello world".to_vec();
    old.extend(b"\x2a\x00\x00\x00/data/input.csv\x00");
    let mut new = b"\x0bhello there".to_vec();
    new.extend(b"\x2a\x00\x00\x00/data/other.csv\x00\x1b[2Jmore text here");
    let recorded_guest = raw_args_guest(sb.path(), "lookup", &old);
    let changed_guest = raw_args_guest(sb.path(), "lookup-changed", &new);

    let recorded = sb.devstash(&["record", "-q", "-o", "t.tape", s(&recorded_guest)]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    assert_eq!(recorded.stdout, "done\n");
    let replayed = sb.devstash(&["replay", s(&recorded_guest), "t.tape"]);
    assert_eq!(replayed.code, 0, "the recorded build replays: {replayed:?}");

    let diverged = sb.devstash(&["replay", s(&changed_guest), "t.tape"]);
    assert_eq!(diverged.code, 123, "{diverged:?}");
    for want in [
        "the program made a marked call that the tape cannot answer",
        "site:      hand::lookup (src/main.c:12)",
        &format!(
            "arguments: {} bytes: 0b 68 65 6c 6c 6f 20 74 68 65 72 65 2a 00 00 00 2f 64 61 74 61 \
             2f 6f 74 … \"hello there\" \"/data/other.csv\" \"[2Jmore text here\"",
            new.len()
        ),
        "[arguments 32 bytes: 0b 68 65 6c 6c 6f 20 77",
        "\"hello world\" \"/data/input.csv\"]",
    ] {
        assert!(diverged.stderr.contains(want), "{want:?} in {diverged:?}");
    }
    assert_no_control("the report", &diverged.stderr);
    assert!(!diverged.stdout.contains("done"), "{diverged:?}");
}

// =============================================================================================
// 5. Large values
// =============================================================================================

/// Items of each large value: 80 MiB of `f64`s, more than `inspect` may hold.
const LARGE_ITEMS: u64 = 10 << 20;

/// Most memory `inspect` of a large entry may take, whatever the entry's size.
const INSPECT_PEAK_MIB: u64 = 64;

const LARGE_RS: &str = r#"use devstash::stashed;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Series {
    name: String,
    samples: Vec<f64>,
}

#[stashed]
fn floats(n: u64) -> Vec<f64> {
    (0..n).map(|i| i as f64 * 0.5).collect()
}

#[stashed]
fn counts(n: u64) -> Vec<u64> {
    (0..n).map(|i| i * 1_000_003).collect()
}

#[stashed]
fn text(n: u64) -> String {
    "ab\x1b[2Jc".repeat(n as usize)
}

#[stashed]
fn blob(n: u64) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from((0..n * 8).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

#[stashed]
fn series(n: u64) -> Series {
    Series { name: "load".into(), samples: (0..n).map(|i| i as f64).collect() }
}

fn main() {
    let n: u64 = std::env::args().nth(1).unwrap().parse().unwrap();
    println!(
        "{} {} {} {} {}",
        floats(n).len(),
        counts(n).len(),
        text(n).len(),
        blob(n).len(),
        series(n).samples.len()
    );
}
"#;

/// Builds the `largevals` guest: marked functions returning large values of several kinds.
fn build_large_guest() -> (tempfile::TempDir, PathBuf) {
    let ws = workspace();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/main.rs"), LARGE_RS).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"largevals\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
             publish = false\n\n[dependencies]\ndevstash = {{ path = {:?} }}\n\
             serde = {{ version = \"1\", features = [\"derive\"] }}\nserde_bytes = \"0.11\"\n\n\
             [workspace]\n",
            ws.join("guest-sdk")
        ),
    )
    .unwrap();
    std::fs::copy(ws.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let built = common::build_crate(dir, "largevals");
    let module = dir.join("largevals.wasm");
    std::fs::copy(built, &module).unwrap();
    (tmp, module)
}

/// Runs `cmd` to its end; what it printed, and its peak resident memory in MiB (`ru_maxrss`
/// from `wait4`).
fn run_measured(mut cmd: std::process::Command) -> (common::Run, u64) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("devstash runs");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let mut stderr = String::new();
    err.read_to_string(&mut stderr).unwrap();
    let pid = child.id() as libc::pid_t;
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: wait4 on our own child, with valid out-pointers.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        assert_eq!(
            std::io::Error::last_os_error().kind(),
            std::io::ErrorKind::Interrupted,
            "wait4 failed"
        );
    };
    // The child is reaped: dropping `child` does not wait for it again.
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let run = common::Run {
        code,
        stdout: reader.join().unwrap(),
        stderr,
    };
    (run, usage.ru_maxrss as u64 >> 10)
}

/// `devstash inspect ARGS` in `sb`, with its peak memory checked against [`INSPECT_PEAK_MIB`].
fn inspect_bounded(cmd: std::process::Command, args: &[&str], code: i32) -> String {
    let mut cmd = cmd;
    cmd.arg("inspect").args(args);
    let (r, peak) = run_measured(cmd);
    assert_eq!(r.code, code, "{r:?}");
    assert_no_control("inspect's output", &r.stdout);
    assert!(
        peak < INSPECT_PEAK_MIB,
        "inspect {args:?} took {peak} MiB (at most {INSPECT_PEAK_MIB}):\n{}",
        r.stdout
    );
    r.stdout
}

/// `inspect` of values far larger than it may hold (vectors of numbers, a string, bytes, a
/// struct holding a vector) verifies each whole, keeps its memory bounded, and shows the start of
/// each value with its full length; a byte flipped in the middle of one is reported as a failed
/// verification (exit 1), its start shown only as unverified.
#[test]
fn large_values_show_their_start_in_bounded_memory() {
    let (_dir, module) = build_large_guest();
    let sb = Sandbox::new();
    let r = sb.run(&module, &[&LARGE_ITEMS.to_string()]);
    assert_eq!(r.code, 0, "{r:?}");
    let n = LARGE_ITEMS;
    let size = |name: &str| {
        let entry = entry_named(&sb.entries(), &format!("largevals__{name}__"));
        std::fs::metadata(entry).unwrap().len()
    };
    // Each is larger than the memory inspect may take, so that a reader of whole values fails.
    for name in ["floats", "counts", "text", "blob", "series"] {
        assert!(
            size(name) > INSPECT_PEAK_MIB << 20,
            "{name}: {}",
            size(name)
        );
    }

    let floats: Vec<String> = (0..16).map(|i| format!("{:?}", i as f64 * 0.5)).collect();
    for (name, want) in [
        (
            "floats",
            format!("value      [{}, … ({n} items)]\n", floats.join(", ")),
        ),
        (
            "counts",
            format!(
                "value      [{}, … ({n} items)]\n",
                (0..16u64)
                    .map(|i| (i * 1_000_003).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (
            "text",
            // The escape in the string, escaped; its first 200 characters and its length.
            format!(
                "value      \"{}ab\\u{{1b}}[\"… ({} bytes)\n",
                "ab\\u{1b}[2Jc".repeat(28),
                n * 7
            ),
        ),
        (
            "blob",
            format!(
                "value      [{}, … ({} items)]\n",
                (0..16)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                n * 8
            ),
        ),
    ] {
        let out = inspect_bounded(sb.cmd(), &[&format!("largevals__{name}__")], 0);
        assert!(out.contains(&want), "{want:?} missing from:\n{out}");
        for want in [
            "signature  ok",
            "(its start, decoded from the first 1.0 MiB of ",
            " MiB more\n",
        ] {
            assert!(out.contains(want), "{want:?} missing from:\n{out}");
        }
    }
    // A struct's fields are not recorded: its bytes are shown, and the reason.
    let out = inspect_bounded(sb.cmd(), &["largevals__series__"], 0);
    for want in [
        "signature  ok",
        "value      (not decoded: largevals::Series is a struct or enum of the program",
        "text       \"load\"",
        "bytes      00000000  04 6c 6f 61 64 80 80 80 05",
        " MiB more\n",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    // For scripts.
    let json: serde_json::Value = serde_json::from_str(&inspect_bounded(
        sb.cmd(),
        &["--json", "largevals__floats__"],
        0,
    ))
    .unwrap();
    assert_eq!(json["verified"], true, "{json}");
    assert_eq!(json["decoded_partial"], true, "{json}");
    assert_eq!(json["payload_len"], n * 8 + 4, "{json}");
    assert_eq!(
        json["decoded"],
        format!("[{}, … ({n} items)]", floats.join(", ")),
        "{json}"
    );

    // A flipped byte halfway through: verification fails, in bounded memory too.
    let entry = entry_named(&sb.entries(), "largevals__floats__");
    // In place, a byte at a time: a child's peak memory counts the test process's at its start.
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&entry)
            .unwrap();
        let middle = file.metadata().unwrap().len() / 2;
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, middle).unwrap();
        file.write_all_at(&[byte[0] ^ 0x10], middle).unwrap();
    }
    let out = inspect_bounded(sb.cmd(), &[s(&entry)], 1);
    for want in [
        "signature  CORRUPT: signature does not verify",
        "the header as written (unverified: it may be wrong)",
        &format!(
            "value      [{}, … ({n} items)] (unverified)\n",
            floats.join(", ")
        ),
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    assert!(!out.contains("signature  ok"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&inspect_bounded(sb.cmd(), &["--json", s(&entry)], 1)).unwrap();
    assert_eq!(json["verified"], false, "{json}");
    assert_eq!(json["decoded"], serde_json::Value::Null, "{json}");
    assert_eq!(json["decoded_partial"], false, "{json}");
}

const LARGE_PY: &str = r#"import devstash
import numpy


@devstash.stash
def blob(n):
    return bytes(range(256)) * (n // 32)


@devstash.stash
def arr(n):
    return numpy.arange(n, dtype="f8") / 4


print(len(blob(N)), arr(N).shape)
"#;

/// `inspect` of a large Python value (a numpy array, bytes) shows what the pickle holds from
/// its two ends: the array's first items, dtype and shape, the bytes' start and length, in
/// bounded memory.
#[test]
fn large_python_values_show_their_start_in_bounded_memory() {
    let py = Py::new();
    py.write(
        "large.py",
        LARGE_PY.replace("(N)", &format!("({LARGE_ITEMS})")),
    );
    let r = py.devstash(&["run", "large.py"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, format!("{} ({LARGE_ITEMS},)\n", LARGE_ITEMS * 8));

    let out = inspect_bounded(py.cmd(), &["large.arr__"], 0);
    let quarters: Vec<String> = (0..16)
        .map(|i| {
            let s = format!("{:?}", i as f64 / 4.0);
            s
        })
        .collect();
    for want in [
        "signature  ok",
        "value type python-pickle",
        &format!(
            "value      array([{}, … ({LARGE_ITEMS} items)], dtype=float64, shape=({LARGE_ITEMS},))\n",
            quarters.join(", ")
        ),
        "(its start, decoded from the first 1.0 MiB of 80.0 MiB)",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    let out = inspect_bounded(py.cmd(), &["large.blob__"], 0);
    let want = format!(
        "value      b'\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\t\\n\\x0b\\x0c\\r\\x0e\\x0f\\x10\\x11\\x12\\x13\\x14\\x15\\x16\\x17\\x18\\x19\\x1a\\x1b\\x1c\\x1d\\x1e\\x1f !\"#$%&\\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNO'… ({} bytes)\n",
        LARGE_ITEMS * 8
    );
    assert!(out.contains(&want), "{want:?} missing from:\n{out}");
}
