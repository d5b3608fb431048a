//! End-to-end tests of what a newcomer meets first: mistakes on the command line get an error
//! that says what to write, and the summary line, `-v` and warnings say what happened.

mod common;

use common::server::Server;
use common::{Sandbox, guest};

/// `--refresh square` (a space instead of `=`) took `square` for the module and said "cannot
/// read module square"; now the error says how to write it. A pattern that matches no lookup
/// says so, rather than silently recomputing nothing.
#[test]
fn refresh_with_a_space_or_matching_nothing_says_so() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    let p = probe.to_str().unwrap();
    let r = sb.devstash(&["run", "--refresh", "square", p, "double", "4"]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(
        r.stderr.contains("`--refresh` takes its pattern after `=`")
            && r.stderr.contains("--refresh=square"),
        "{r:?}"
    );
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");

    assert_eq!(sb.run(&probe, &["double", "4"]).code, 0);
    let r = sb.devstash(&["run", "--refresh=nomatch", p, "double", "4"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("1 hit"), "{r:?}");
    assert!(
        r.stderr
            .contains("--refresh=nomatch matched no marked call of this run"),
        "{r:?}"
    );
    // A pattern that matches recomputes, and says nothing more.
    let r = sb.devstash(&["run", "--refresh=double", p, "double", "4"]);
    assert!(r.stderr.contains("1 miss"), "{r:?}");
    assert!(!r.stderr.contains("matched no"), "{r:?}");
}

/// A request refused by `--allow-net`, and one with nothing stored under `--offline`, are
/// counted in the summary line (they were missing from it).
#[test]
fn refused_and_offline_requests_show_in_the_summary() {
    let server = Server::start();
    let sb = Sandbox::new();
    let probe = guest("probe");
    let p = probe.to_str().unwrap();
    let url = server.url("/repos/x");
    let r = sb.devstash(&["run", p, "http-get", &url]);
    assert!(
        r.stderr.contains("1 request refused (not in --allow-net)"),
        "{r:?}"
    );
    let r = sb.devstash(&["run", "--offline", p, "http-stash", &url, "1h"]);
    assert!(
        r.stderr
            .contains("1 request with nothing stored (--offline)"),
        "{r:?}"
    );
    assert_eq!(server.count(), 0);
}

/// `--env NAME` for a variable the host does not have passed nothing, silently: now it warns.
#[test]
fn env_without_a_host_value_warns() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    let r = sb
        .cmd()
        .env_remove("DEVSTASH_TEST_UNSET")
        .args([
            "run",
            "--env",
            "DEVSTASH_TEST_UNSET",
            probe.to_str().unwrap(),
            "exit",
            "0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("--env DEVSTASH_TEST_UNSET: DEVSTASH_TEST_UNSET is not set here"),
        "{stderr}"
    );
    // Set on the host, it passes without a word.
    let r = sb
        .cmd()
        .env("DEVSTASH_TEST_UNSET", "1")
        .args([
            "run",
            "--env",
            "DEVSTASH_TEST_UNSET",
            probe.to_str().unwrap(),
            "exit",
            "0",
        ])
        .output()
        .unwrap();
    assert!(
        r.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

/// `-v` says where the cache and the per-user directory are, what is granted, and how the
/// module was made ready; without it, none of that.
#[test]
fn verbose_says_where_things_are() {
    let sb = Sandbox::new();
    let probe = guest("probe");
    std::fs::create_dir(sb.path().join("data")).unwrap();
    let p = probe.to_str().unwrap();
    let quiet = sb.devstash(&["run", "--dir", "data:ro", p, "exit", "0"]);
    assert!(quiet.stderr.is_empty(), "{quiet:?}");
    let r = sb.devstash(&["run", "-v", "--dir", "data:ro", p, "exit", "0"]);
    for needle in [
        "devstash: cache: .devstash_cache; per-user directory: ",
        "granting data as data (read-only)",
        "probe.wasm: ready to run in ",
    ] {
        assert!(r.stderr.contains(needle), "no {needle:?}: {r:?}");
    }
    // -vv adds the runner's debug lines, not the compiler's or the object reader's noise.
    let home = tempfile::tempdir().unwrap();
    let r: common::Run = sb
        .cmd()
        .env("DEVSTASH_HOME", home.path())
        .args(["run", "-vv", p, "exit", "0"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("ignoring section"), "{r:?}");
    assert!(
        r.stderr.lines().all(|l| l.starts_with("devstash: ")),
        "{r:?}"
    );
}

/// A module that stores nothing (here, one without the SDK) leaves no `.devstash_cache/`
/// behind in the folder it ran in.
#[test]
fn a_module_without_the_sdk_creates_no_cache_folder() {
    let sb = Sandbox::new();
    let wat = sb.path().join("plain.wat");
    std::fs::write(&wat, r#"(module (func (export "_start")))"#).unwrap();
    let r = sb.run(&wat, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!sb.cache().exists(), "{r:?}");
}

/// The README's `.cargo/config.toml`: with `[build] target` and the array form of `runner`, a
/// plain `cargo run` builds for WASI and runs through devstash, flags included: the first run
/// computes, the second hits, and the `--env` flag reaches the program.
#[test]
fn cargo_run_goes_through_devstash_with_the_readme_config() {
    let sb = Sandbox::new();
    let dir = sb.path().join("app");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join(".cargo")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        common::guest_manifest("cargo_run_app"),
    )
    .unwrap();
    std::fs::write(
        dir.join("src/main.rs"),
        r#"use devstash::stash;
fn slow(x: u64) -> u64 {
    println!("computing");
    x * 2
}
fn main() {
    println!("{} {}", std::env::var("GREETING").unwrap_or_default(), stash!(slow(21)));
}
"#,
    )
    .unwrap();
    // As the README writes it, with `devstash` found on PATH.
    std::fs::write(
        dir.join(".cargo/config.toml"),
        "[build]\ntarget = \"wasm32-wasip1\"\n\n[target.wasm32-wasip1]\nrunner = [\"devstash\", \
         \"run\", \"--env\", \"GREETING\"]\n",
    )
    .unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_devstash"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let cargo_run = || {
        let out = std::process::Command::new(env!("CARGO"))
            .current_dir(&dir)
            .args(["run", "--release", "--target-dir"])
            .arg(common::guest_target_dir().join("standalone"))
            .env("PATH", &path)
            .env("GREETING", "hello")
            .env("DEVSTASH_HOME", sb.home())
            .env_remove("DEVSTASH_CACHE_DIR")
            .output()
            .expect("cargo runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = cargo_run();
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, "computing\nhello 42\n", "{stderr}");
    assert!(stderr.contains("0 hits, 1 miss, 1 stored"), "{stderr}");
    let (code, stdout, stderr) = cargo_run();
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, "hello 42\n", "{stderr}");
    assert!(stderr.contains("1 hit, 0 misses"), "{stderr}");
    assert!(dir.join(".devstash_cache").is_dir());
}

/// `clear --stale MODULE.wasm` removes the entries of a site the module no longer has (here a
/// function renamed from `alpha` to `beta`), and keeps those of its live sites: a function
/// still there, and a method, whose identity (`app::Scaler::scale`) is resolved only when the
/// program runs. Entries of other programs in the same cache are not judged.
#[test]
fn clear_stale_removes_the_entries_of_sites_a_module_no_longer_has() {
    let sb = Sandbox::new();
    let dir = sb.path().join("stale_app");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), common::guest_manifest("stale_app")).unwrap();
    let source = |name: &str| {
        format!(
            r#"use devstash::stash;
#[derive(serde::Serialize)]
struct Scaler(u64);
impl Scaler {{
    fn scale(&self, x: u64) -> u64 {{ x * self.0 }}
}}
fn {name}(x: u64) -> u64 {{ x + 1 }}
fn kept(x: u64) -> u64 {{ x + 2 }}
fn main() {{
    let s = Scaler(3);
    println!("{{}} {{}} {{}}", stash!({name}(1)), stash!(kept(1)), stash!(s.scale(2)));
}}
"#
        )
    };
    let build = |name: &str| {
        std::fs::write(dir.join("src/main.rs"), source(name)).unwrap();
        let module = sb.path().join(format!("stale_app-{name}.wasm"));
        std::fs::copy(common::build_crate(&dir, "stale_app"), &module).unwrap();
        module
    };
    let old = build("alpha");
    let r = sb.run(&old, &[]);
    assert!(r.stderr.contains("3 stored"), "{r:?}");
    // Another program's entry in the same cache.
    let probe = guest("probe");
    assert_eq!(sb.run(&probe, &["double", "4"]).code, 0);
    let new = build("beta");
    assert_eq!(sb.run(&new, &[]).code, 0);
    let names = |sb: &Sandbox| -> Vec<String> {
        sb.entries()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names(&sb).len(), 5, "{:?}", names(&sb));

    let dry = sb.devstash(&["clear", "--stale", new.to_str().unwrap(), "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert_eq!(
        dry.stdout.matches("would remove stale_app").count(),
        1,
        "{dry:?}"
    );
    assert!(dry.stdout.contains("stale_app__alpha__"), "{dry:?}");
    assert_eq!(names(&sb).len(), 5);

    let r = sb.devstash(&["clear", "--stale", new.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let left = names(&sb);
    assert_eq!(left.len(), 4, "{left:?}");
    for kept in [
        "stale_app__beta__",
        "stale_app__kept__",
        "stale_app__Scaler__scale__",
        "probe__double__",
    ] {
        assert!(
            left.iter().any(|n| n.starts_with(kept)),
            "{kept} removed: {left:?}"
        );
    }
    // The kept entries still answer.
    let r = sb.run(&new, &[]);
    assert!(r.stderr.contains("3 hits, 0 misses"), "{r:?}");
}
