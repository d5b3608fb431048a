//! End-to-end tests of cache management (`devstash list`, `clear`, `inspect`) over caches made by
//! real runs of the probe guest.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{Run, Sandbox, guest};
use serde_json::Value;

/// Runs `devstash ARGS` and requires success.
fn ok(sb: &Sandbox, args: &[&str]) -> Run {
    let r = sb.devstash(args);
    assert_eq!(r.code, 0, "devstash {args:?} failed: {r:?}");
    r
}

/// Runs the probe guest with `args` and requires success.
fn probe(sb: &Sandbox, args: &[&str]) {
    let r = sb.run(&guest("probe"), args);
    assert_eq!(r.code, 0, "probe {args:?} failed: {r:?}");
}

/// `devstash list --json ARGS`, parsed.
fn list_json(sb: &Sandbox, args: &[&str]) -> Value {
    let mut all = vec!["list", "--json"];
    all.extend_from_slice(args);
    let r = ok(sb, &all);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", r.stdout))
}

/// `site -> status` of every entry in `list --json`, sorted.
fn statuses(json: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["site"].as_str().unwrap_or("?").to_string(),
                e["status_text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// File names of the entries in the cache, sorted.
fn entry_names(sb: &Sandbox) -> Vec<String> {
    sb.entries()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The single entry file whose name starts with `prefix`.
fn entry_file(sb: &Sandbox, prefix: &str) -> PathBuf {
    let found: Vec<PathBuf> = sb
        .entries()
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "entries starting with {prefix}: {found:?}");
    found.into_iter().next().unwrap()
}

/// Flips one bit of the last byte (the payload) of a file.
fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(path, bytes).unwrap();
}

/// Sets a file's modification time into the past.
fn age_file(path: &Path, by: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - by).unwrap();
}

/// Waits until an entry stored with a TTL of one second has expired.
fn outlive_one_second() {
    std::thread::sleep(Duration::from_millis(2100));
}

#[test]
fn list_judges_each_entry_by_its_own_ttl_or_by_ttl_flag() {
    let sb = Sandbox::new();
    probe(&sb, &["double", "4"]);
    probe(&sb, &["short", "1"]);
    probe(&sb, &["struct", "a"]);
    outlive_one_second();

    let table = ok(&sb, &["list"]).stdout;
    for name in entry_names(&sb) {
        assert!(table.contains(&name), "{name} missing from:\n{table}");
    }
    let row = |site: &str| {
        table
            .lines()
            .find(|l| l.contains(site))
            .unwrap_or_else(|| panic!("no row for {site}:\n{table}"))
            .to_string()
    };
    assert!(
        row("probe::short_lived").contains("expired (>1s)"),
        "{table}"
    );
    assert!(row("probe::double").contains("valid (no ttl)"), "{table}");
    assert!(
        row("probe::summarize").contains("valid (no ttl)"),
        "{table}"
    );
    assert!(
        !table.contains('\x1b'),
        "no colour under NO_COLOR:\n{table}"
    );
    let total: u64 = sb
        .entries()
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(
        table.lines().any(|l| l.starts_with("3 entries, ")),
        "total line missing:\n{table}"
    );
    // Compiled modules live in the per-user directory, never in the cache.
    assert!(!table.contains("compiled module"), "{table}");
    assert!(!sb.cache().join("modules").exists());

    // --ttl overrides every entry's own TTL, as in the Python devstash.
    let table = ok(&sb, &["list", "--ttl", "1m"]).stdout;
    assert_eq!(table.matches("valid (<=1m)").count(), 3, "{table}");
    let table = ok(&sb, &["list", "--ttl", "1s"]).stdout;
    assert_eq!(table.matches("expired (>1s)").count(), 3, "{table}");

    let json = list_json(&sb, &[]);
    assert_eq!(
        statuses(&json),
        [
            ("probe::double".into(), "valid (no ttl)".into()),
            ("probe::short_lived".into(), "expired (>1s)".into()),
            ("probe::summarize".into(), "valid (no ttl)".into()),
        ]
    );
    assert_eq!(json["total"]["count"], 3);
    assert_eq!(json["total"]["bytes"], total);
    let short = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["site"] == "probe::short_lived")
        .unwrap();
    assert_eq!(short["status"], "expired");
    assert_eq!(short["ttl_secs"], 1);
    assert_eq!(short["args_preview"], "(1,)");
    assert_eq!(short["kind"], "fn");
    assert!(short["age_secs"].as_u64().unwrap() >= 2);

    let json = list_json(&sb, &["--ttl", "1h"]);
    assert!(
        statuses(&json).iter().all(|(_, s)| s == "valid (<=1h)"),
        "{json}"
    );
    assert_eq!(json["ttl"], "1h");
}

#[test]
fn list_sorts_by_size_and_age() {
    let sb = Sandbox::new();
    probe(&sb, &["double", "4"]);
    probe(&sb, &["struct", "a"]);
    probe(&sb, &["method", "3"]);
    let sizes: Vec<u64> = list_json(&sb, &["--sort", "size"])["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["size"].as_u64().unwrap())
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
    assert!(sizes[0] > sizes[2], "entries differ in size: {sizes:?}");
    let sites: Vec<String> = list_json(&sb, &["--sort", "age"])["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["site"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        sites,
        ["probe::Scaler::scale", "probe::summarize", "probe::double"]
    );
    let bad = sb.devstash(&["list", "--sort", "colour"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("possible values"), "{bad:?}");
}

#[test]
fn list_of_a_missing_or_empty_cache_says_so_in_one_line() {
    let sb = Sandbox::new();
    let r = ok(&sb, &["list"]);
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
    assert!(r.stdout.contains("no cache at .devstash_cache"), "{r:?}");
    let json = list_json(&sb, &[]);
    assert_eq!(json["exists"], false);
    assert_eq!(json["entries"].as_array().unwrap().len(), 0);

    probe(&sb, &["double", "1"]);
    ok(&sb, &["clear", "--all"]);
    let r = ok(&sb, &["list"]);
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
    assert!(r.stdout.contains("the cache is empty"), "{r:?}");
}

#[test]
fn corrupt_entries_are_listed_flagged_and_inspected() {
    let sb = Sandbox::new();
    probe(&sb, &["double", "4"]);
    probe(&sb, &["checked", "3"]);
    let bad = entry_file(&sb, "probe__checked__");
    corrupt(&bad);
    let bad_name = bad.file_name().unwrap().to_str().unwrap().to_string();

    let table = ok(&sb, &["list"]).stdout;
    let row = table.lines().find(|l| l.contains(&bad_name)).unwrap();
    assert!(
        row.contains("corrupt: signature does not verify"),
        "{table}"
    );
    assert!(table.contains("1 entry failed verification"), "{table}");
    let json = list_json(&sb, &[]);
    let entry = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == bad_name.as_str())
        .unwrap();
    assert_eq!(entry["status"], "corrupt");
    assert!(entry["problem"].as_str().unwrap().contains("signature"));
    assert_eq!(json["corrupt"], 1);

    let r = sb.devstash(&["inspect", &bad_name]);
    assert_eq!(r.code, 1, "a corrupt entry exits 1: {r:?}");
    assert!(
        r.stdout.contains("CORRUPT: signature does not verify"),
        "{r:?}"
    );
    assert!(r.stdout.contains("unverified"), "{r:?}");
    assert!(r.stdout.contains("probe::checked"), "{r:?}");
    let json: Value = serde_json::from_str(
        &sb.devstash(&["inspect", "--json", bad.to_str().unwrap()])
            .stdout,
    )
    .unwrap();
    assert_eq!(json["verified"], false);
    assert_eq!(json["header"], Value::Null);
    assert_eq!(json["unverified_header"]["site"], "probe::checked");

    // Cut short: a different failure, still reported and not a panic.
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..20]).unwrap();
    let r = sb.devstash(&["inspect", bad.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("CORRUPT: "), "{r:?}");
    assert!(r.stderr.is_empty(), "{r:?}");

    // --corrupt removes it and only it.
    let r = ok(&sb, &["clear", "--corrupt"]);
    assert!(r.stdout.contains("removed 1 entry"), "{r:?}");
    assert!(!bad.exists());
    assert_eq!(sb.entries().len(), 1);
}

#[test]
fn clear_by_pattern_with_and_without_dry_run() {
    let sb = Sandbox::new();
    probe(&sb, &["double", "4"]);
    probe(&sb, &["struct", "a"]);
    probe(&sb, &["method", "3"]);
    let before = entry_names(&sb);
    assert_eq!(before.len(), 3);

    let r = ok(&sb, &["clear", "--pattern", "double", "--dry-run"]);
    let double = entry_file(&sb, "probe__double__");
    let double_name = double.file_name().unwrap().to_str().unwrap();
    assert!(
        r.stdout.contains(&format!("would remove {double_name}")),
        "{r:?}"
    );
    assert!(r.stdout.contains("would remove 1 entry"), "{r:?}");
    assert_eq!(entry_names(&sb), before, "a dry run removes nothing");

    // A glob over the site identity.
    let r = ok(&sb, &["clear", "--pattern", "probe::[Ss]*"]);
    assert!(r.stdout.contains("removed 2 entries"), "{r:?}");
    assert_eq!(entry_names(&sb), [double_name]);

    let r = ok(&sb, &["clear", "--pattern", "nothing-like-this"]);
    assert!(r.stdout.contains("nothing to remove"), "{r:?}");
    assert_eq!(entry_names(&sb), [double_name]);

    let r = sb.devstash(&["clear", "--pattern", "["]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.starts_with("error: invalid pattern"), "{r:?}");
    assert_eq!(entry_names(&sb), [double_name]);
}

#[test]
fn clear_expired_and_older_than() {
    let sb = Sandbox::new();
    probe(&sb, &["short", "1"]);
    probe(&sb, &["double", "4"]);
    outlive_one_second();

    // Nothing is older than an hour; --dry-run of the override removes nothing either.
    let r = ok(&sb, &["clear", "--older-than", "1h"]);
    assert!(r.stdout.contains("nothing to remove"), "{r:?}");
    let r = ok(&sb, &["clear", "--expired", "--ttl", "1s", "--dry-run"]);
    assert!(r.stdout.contains("would remove 2 entries"), "{r:?}");
    assert_eq!(sb.entries().len(), 2);

    // Own TTL: only the entry stored with `ttl = "1s"` has expired.
    let r = ok(&sb, &["clear", "--expired"]);
    assert!(r.stdout.contains("removed 1 entry"), "{r:?}");
    let left = entry_names(&sb);
    assert_eq!(left.len(), 1);
    assert!(left[0].starts_with("probe__double__"), "{left:?}");

    // No TTL of its own: it never expires, unless --ttl says so.
    let r = ok(&sb, &["clear", "--expired"]);
    assert!(r.stdout.contains("nothing to remove"), "{r:?}");
    let r = ok(&sb, &["clear", "--expired", "--ttl", "1h"]);
    assert!(r.stdout.contains("nothing to remove"), "{r:?}");
    let r = ok(&sb, &["clear", "--older-than", "1s", "--pattern", "double"]);
    assert!(r.stdout.contains("removed 1 entry"), "{r:?}");
    assert!(sb.entries().is_empty());

    let r = sb.devstash(&["clear", "--older-than", "soon"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("30s, 10m, 2h, 1d or 1w"), "{r:?}");
    let r = sb.devstash(&["clear"]);
    assert_ne!(r.code, 0, "clear needs to be told what: {r:?}");
    assert!(r.stderr.contains("--all"), "{r:?}");
}

#[test]
fn clear_all_removes_only_what_devstash_wrote_and_never_follows_links() {
    let sb = Sandbox::new();
    probe(&sb, &["double", "4"]);
    probe(&sb, &["struct", "a"]);
    let cache = sb.cache();
    // Compiled modules an older devstash kept in the cache are leftovers `--all` removes.
    let modules = cache.join("modules");
    assert!(!modules.exists(), "compiled modules are kept per user now");
    std::fs::create_dir(&modules).unwrap();
    std::fs::write(
        modules.join(format!("{}.cwasm", "0a".repeat(16))),
        b"\x7fELF old compilation",
    )
    .unwrap();
    assert!(cache.join("index.pack").exists());

    // Outside the cache: a file that looks exactly like an entry, and a folder.
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim__0123456789abcdef.stash");
    std::fs::copy(entry_file(&sb, "probe__double__"), &victim).unwrap();
    std::fs::write(outside.path().join("precious.txt"), b"keep me").unwrap();
    // Links in the cache pointing out: one with an entry name, one to the outside folder.
    let link = cache.join("evil__0123456789abcdef.stash");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let dir_link = cache.join("elsewhere");
    std::os::unix::fs::symlink(outside.path(), &dir_link).unwrap();
    // Tapes are never touched; nor is an entry-named file devstash did not write.
    std::fs::create_dir(cache.join("tapes")).unwrap();
    let tape = cache.join("tapes").join("run.tape");
    std::fs::write(&tape, b"devstash-tape 1\n").unwrap();
    let notes = cache.join("notes.stash");
    std::fs::write(&notes, b"my own notes").unwrap();
    // Temporary files: one left by a crash long ago, one a run may be writing right now.
    let stale = cache.join("0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b");
    std::fs::write(&stale, b"devstash-entry 1 0000").unwrap();
    age_file(&stale, Duration::from_secs(2 * 3600));
    let fresh = cache.join("1f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b");
    std::fs::write(&fresh, b"devstash-entry 1 0000").unwrap();

    // A pattern that names the link removes nothing through it.
    let r = ok(&sb, &["clear", "--pattern", "evil"]);
    assert!(r.stdout.contains("nothing to remove"), "{r:?}");
    assert!(
        r.stderr
            .contains("skipped symlink evil__0123456789abcdef.stash"),
        "{r:?}"
    );

    let r = ok(&sb, &["clear", "--all", "--dry-run"]);
    assert!(
        r.stdout.contains("would remove 2 entries (") && r.stdout.contains("1 compiled module ("),
        "{r:?}"
    );
    assert!(r.stdout.contains("1 leftover temporary file"), "{r:?}");
    assert_eq!(
        sb.entries().len(),
        4,
        "dry run: 2 entries, the link and notes.stash"
    );
    assert!(stale.exists());

    let r = ok(&sb, &["clear", "--all"]);
    assert!(r.stdout.contains("removed 2 entries ("), "{r:?}");
    assert!(r.stdout.contains("1 compiled module ("), "{r:?}");
    assert!(r.stdout.contains("1 leftover temporary file"), "{r:?}");
    assert!(
        r.stdout
            .contains("kept 1 file that devstash did not write: notes.stash"),
        "{r:?}"
    );

    // Nothing outside was touched, and the links themselves are still there.
    assert!(victim.exists(), "the link's target must survive");
    assert_eq!(
        std::fs::read(outside.path().join("precious.txt")).unwrap(),
        b"keep me"
    );
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(
        dir_link
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Tapes, foreign files, young temp files and the tag stay; entries and modules go.
    assert!(tape.exists() && notes.exists() && fresh.exists());
    assert!(!stale.exists());
    assert!(
        !cache.join("index.pack").exists(),
        "the pack of copies outlived every entry"
    );
    assert!(cache.join("CACHEDIR.TAG").exists());
    assert_eq!(std::fs::read_dir(&modules).unwrap().count(), 0);
    let left: Vec<String> = entry_names(&sb);
    assert_eq!(left, ["evil__0123456789abcdef.stash", "notes.stash"]);

    // The cache still works: the next run recomputes and stores again.
    let r = sb.run(&guest("probe"), &["double", "4"]);
    assert!(r.stdout.contains("computed double(4)"), "{r:?}");
}

#[test]
fn clear_refuses_a_directory_that_is_not_a_devstash_cache() {
    let sb = Sandbox::new();
    let dir = sb.path().join("project");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("main.rs"), b"fn main() {}").unwrap();
    let dir_arg = dir.to_str().unwrap();
    let r = sb.devstash(&["--cache-dir", dir_arg, "clear", "--all"]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(
        r.stderr.contains("does not look like a devstash cache"),
        "{r:?}"
    );
    assert!(dir.join("main.rs").exists());

    // Another tool's tag is not ours.
    std::fs::write(
        dir.join("CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n# created by cargo\n",
    )
    .unwrap();
    let r = sb.devstash(&["clear", "--all", "--cache-dir", dir_arg]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(dir.join("main.rs").exists() && dir.join("CACHEDIR.TAG").exists());

    // A missing cache is simply nothing to clear.
    let r = ok(&sb, &["clear", "--all"]);
    assert!(r.stdout.contains("nothing to remove"), "{r:?}");
}

#[test]
fn inspect_a_healthy_entry_by_prefix_path_and_json() {
    let sb = Sandbox::new();
    probe(&sb, &["method", "3"]);
    probe(&sb, &["double", "4"]);
    let path = entry_file(&sb, "probe__Scaler__scale__");
    let name = path.file_name().unwrap().to_str().unwrap();

    let r = ok(&sb, &["inspect", "probe__Scaler__scale"]);
    let out = &r.stdout;
    // The marker's line, found in the probe's source so edits elsewhere do not break this.
    let source =
        std::fs::read_to_string(common::workspace().join("tests/guests/probe/src/main.rs"))
            .unwrap();
    let line = 1 + source
        .lines()
        .position(|l| l.contains("stash!(scaler.scale"))
        .unwrap();
    let location = format!("tests/guests/probe/src/main.rs:{line}");
    for want in [
        name,
        "ok (keyed blake3",
        "probe::Scaler::scale",
        location.as_str(),
        "call (stash!)",
        "alloc::vec::Vec<f64>",
        "none: kept until cleared",
        "([1.0, 2.0],)",
        "17 B (postcard)",
        "[3.0, 6.0]",
        "00000000  02 00 00 00 00 00 00 08 40",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    let header: Value = serde_json::from_str(
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap(),
    )
    .unwrap();
    assert!(
        out.contains(header["key"].as_str().unwrap()),
        "full key shown:\n{out}"
    );

    // The same entry by path, and as JSON.
    let by_path = ok(&sb, &["inspect", path.to_str().unwrap()]).stdout;
    assert!(by_path.contains("[3.0, 6.0]"), "{by_path}");
    let json: Value = serde_json::from_str(&ok(&sb, &["inspect", "--json", name]).stdout).unwrap();
    assert_eq!(json["verified"], true);
    assert_eq!(json["header"], header);
    assert_eq!(json["decoded"], "[3.0, 6.0]");
    assert_eq!(json["payload_len"], 17);

    let r = ok(&sb, &["inspect", "probe__double__"]);
    assert!(r.stdout.contains("value      8"), "{r:?}");

    // Unknown and ambiguous names are one-line errors that say what to do.
    let r = sb.devstash(&["inspect", "probe__nope"]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(
        r.stderr.contains("`devstash list` shows the entries"),
        "{r:?}"
    );
    let r = sb.devstash(&["inspect", "probe__"]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("matches 2 entries"), "{r:?}");
    let junk = sb.path().join("junk.bin");
    std::fs::write(&junk, b"hello").unwrap();
    let r = sb.devstash(&["inspect", junk.to_str().unwrap()]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(
        r.stderr
            .contains("is not a devstash entry, a tape or a WebAssembly module")
    );
}

/// The sites marked in the probe guest's source: `stash!(` lines, and the `fn` line after each
/// `#[stashed…]` attribute.
fn marked_lines_in_probe_source() -> Vec<u32> {
    let src = std::fs::read_to_string(common::workspace().join("tests/guests/probe/src/main.rs"))
        .unwrap();
    let lines: Vec<&str> = src.lines().collect();
    let mut marked = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.contains("stash!(") && !line.trim_start().starts_with("//") {
            marked.push(i as u32 + 1);
        }
        if line.trim_start().starts_with("#[stashed") {
            marked.push(i as u32 + 2);
        }
    }
    marked.sort_unstable();
    marked
}

#[test]
fn inspect_a_module_lists_its_marked_sites_and_imports() {
    let sb = Sandbox::new();
    let module = guest("probe");
    let expected = marked_lines_in_probe_source();
    assert!(expected.len() >= 6, "{expected:?}");

    let json: Value =
        serde_json::from_str(&ok(&sb, &["inspect", "--json", module.to_str().unwrap()]).stdout)
            .unwrap();
    let sites = json["sites"].as_array().unwrap();
    let mut lines: Vec<u32> = sites
        .iter()
        .map(|s| s["line"].as_u64().unwrap() as u32)
        .collect();
    lines.sort_unstable();
    assert_eq!(lines, expected, "{json}");
    assert_eq!(json["abi_supported"], true);
    let short = sites
        .iter()
        .find(|s| s["site"] == "probe::short_lived")
        .unwrap();
    assert_eq!(short["ttl"], "1s");
    assert_eq!(short["kind"], "fn");
    let devstash_imports = &json["imports"]["devstash"]["devstash"];
    assert!(
        devstash_imports
            .as_array()
            .unwrap()
            .contains(&Value::from("stash_get")),
        "{json}"
    );
    assert!(json["imports"]["wasi_snapshot_preview1"]["open files and stdio"].is_array());

    let out = ok(&sb, &["inspect", module.to_str().unwrap()]).stdout;
    assert!(
        out.contains(&format!("{} marked sites (devstash ABI 2)", expected.len())),
        "{out}"
    );
    for want in [
        "probe::short_lived",
        "tests/guests/probe/src/main.rs:13",
        "probe::scale",
        "probe::summarize",
        "WASI preview 1",
        "open files and stdio",
        "stash_get",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    let short_row = out
        .lines()
        .find(|l| l.contains("probe::short_lived"))
        .unwrap();
    assert!(
        short_row.contains(" 1s ") && short_row.contains(" fn "),
        "{short_row}"
    );
}

#[test]
fn inspect_a_module_without_sites_or_from_another_abi() {
    let sb = Sandbox::new();
    let plain = sb.path().join("plain.wat");
    std::fs::write(
        &plain,
        r#"(module
             (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
             (import "env" "mystery" (func))
             (memory (export "memory") 1))"#,
    )
    .unwrap();
    let out = ok(&sb, &["inspect", plain.to_str().unwrap()]).stdout;
    assert!(out.contains("no marked sites"), "{out}");
    assert!(
        out.contains("randomness") && out.contains("random_get"),
        "{out}"
    );
    assert!(
        out.contains("env (not provided by devstash): mystery"),
        "{out}"
    );
    assert!(out.contains("`devstash run` will refuse it"), "{out}");

    let newer = sb.path().join("newer.wat");
    std::fs::write(
        &newer,
        r#"(module
             (@custom "devstash.sites" "{\"abi\":3,\"module\":\"app\",\"callee\":\"f\",\"file\":\"src/main.rs\",\"line\":3,\"ttl\":null,\"kind\":\"call\",\"fingerprint\":\"ab\"}\n\00\00"))"#,
    )
    .unwrap();
    let out = ok(&sb, &["inspect", newer.to_str().unwrap()]).stdout;
    assert!(out.contains("1 marked site (devstash ABI 3)"), "{out}");
    assert!(
        out.contains("speaks ABI version 3, and this runner speaks version 2"),
        "{out}"
    );
    assert!(
        out.contains("app::f") && out.contains("src/main.rs:3"),
        "{out}"
    );
}

#[test]
fn inspect_hands_tapes_to_the_tape_reader() {
    let sb = Sandbox::new();
    let tape = sb.path().join("run.tape");
    std::fs::write(&tape, b"devstash-tape 1\n").unwrap();
    let r = sb.devstash(&["inspect", tape.to_str().unwrap()]);
    // Whatever the tape reader makes of this tape, it is not judged as an entry or a module.
    assert!(!r.stderr.contains("not a devstash entry"), "{r:?}");
    assert!(
        !r.stdout.contains("CORRUPT") && !r.stdout.contains("marked site"),
        "{r:?}"
    );
    assert_ne!(r.code, 101, "no panic: {r:?}");
    // `--json` too; a tape of an older format says to record it again.
    let r = sb.devstash(&["inspect", "--json", tape.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("it is in tape format 1") && r.stderr.contains("record it again"),
        "{r:?}"
    );
    assert!(r.stdout.is_empty(), "{r:?}");
}
