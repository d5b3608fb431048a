//! End-to-end tests of the remote cache tier (the team cache): separate machines (sandboxes, each
//! with its own cache directory) sharing entries through a real Redis server and a real S3 API
//! (moto), every object signed with the Ed25519 key of a trusted writer.
//!
//! The servers come from `.ci/run` (see `common::servers`); each test starts its own. The
//! two-machine tests give the reader a `DEVSTASH_HOME` of its own, as two people's would be (so a
//! copy of a remote entry must be signed anew with the reader's key to be used again). Other
//! machines start from a copy of one home in which the probe is compiled already (see
//! [`Machine::warm`]), or share their test's: the debug runner takes seconds to compile it.
//!
//! Not tested: wrong S3 credentials. moto accepts any, and no S3 server that checks them
//! (`s3s-fs`) is installed here.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::servers::{BlackHole, MotoServer, RedisServer};
use common::{Run, Sandbox, guest};

/// No command of these tests may take longer: a hung run fails the test, not the suite.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The timeouts of the outage tests' `devstash.toml`.
const FAST_FAIL: &str = "timeout = \"1s\"\nconnect_timeout = \"1s\"\n";

/// What a run may spend on an unreachable remote beyond a run without one: one timeout (1 s)
/// and slack for a loaded machine, well under one timeout per lookup (the runs make five).
const OUTAGE_SLACK: Duration = Duration::from_secs(3);

/// Variables a test run must not inherit from the host: the remote's and the AWS SDK's (a
/// profile or a token of the user's), and proxies (the servers are on loopback).
const CLEARED_ENV: &[&str] = &[
    "DEVSTASH_REMOTE",
    "DEVSTASH_REMOTE_MODE",
    "DEVSTASH_REMOTE_SIGNING_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

// ------------------------------------------------------------------------------------------
// Stores, seen from outside devstash
// ------------------------------------------------------------------------------------------

/// A remote store, read raw.
trait Store {
    /// Every object name the store holds, sorted.
    fn object_names(&self) -> Vec<String>;
    /// An object's bytes.
    fn object(&self, name: &str) -> Vec<u8>;
    /// The remote URL devstash is given, under `prefix`.
    fn remote_url(&self, prefix: &str) -> String;
    /// The environment a run needs to reach the store.
    fn remote_env(&self) -> Vec<(&'static str, &'static str)>;
    /// Whether `devstash list --remote` must count what the store holds. The contract asks it
    /// of every store, but Redis is documented (README, "Sharing a cache with a team") as unable
    /// to list through devstash: there `list --remote` may instead refuse and say so.
    fn must_list(&self) -> bool;
}

impl Store for RedisServer {
    fn object_names(&self) -> Vec<String> {
        self.keys()
    }
    fn object(&self, name: &str) -> Vec<u8> {
        self.get(name)
            .unwrap_or_else(|| panic!("no key {name} in redis"))
    }
    fn remote_url(&self, prefix: &str) -> String {
        self.url(prefix)
    }
    fn remote_env(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
    fn must_list(&self) -> bool {
        false
    }
}

impl Store for MotoServer {
    fn object_names(&self) -> Vec<String> {
        self.keys()
    }
    fn object(&self, name: &str) -> Vec<u8> {
        self.get(name)
            .unwrap_or_else(|| panic!("no object {name} in the bucket"))
    }
    fn remote_url(&self, prefix: &str) -> String {
        self.url(prefix)
    }
    fn remote_env(&self) -> Vec<(&'static str, &'static str)> {
        self.env()
    }
    fn must_list(&self) -> bool {
        true
    }
}

/// An entry object of the store: its name (`…<namespace>/<key>`) and its key (64 hex, lower
/// case).
#[derive(Debug, Clone)]
struct Object {
    name: String,
    key: String,
}

/// The entry objects of `namespace`: names whose last segment is a 64-hex key, right after the
/// namespace (how the prefix is joined to it is the backend's business).
fn entry_objects(store: &dyn Store, namespace: &str) -> Vec<Object> {
    store
        .object_names()
        .into_iter()
        .filter_map(|name| {
            let (rest, key) = name.rsplit_once('/')?;
            let before = rest.strip_suffix(namespace)?;
            let boundary = before.is_empty()
                || !before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            (boundary && is_hex(key, 64)).then(|| Object {
                key: key.to_ascii_lowercase(),
                name: name.clone(),
            })
        })
        .collect()
}

/// The one entry object of `namespace` that `after` has and `before` had not.
fn new_object(before: &[Object], after: &[Object], what: &str) -> Object {
    let new: Vec<&Object> = after
        .iter()
        .filter(|o| !before.iter().any(|b| b.name == o.name))
        .collect();
    assert_eq!(new.len(), 1, "{what}: expected one new object, got {new:?}");
    new[0].clone()
}

/// Index of the end of an object's first line (its `\n`).
fn first_line_end(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|&b| b == b'\n')
        .expect("an object has a first line")
}

/// Checks an entry object against the format: `devstash-remote 1 <key id> <signature>`, the
/// entry's JSON header line (whose `key` is the object's), then the payload. Returns the key id.
fn check_object(object: &Object, bytes: &[u8]) -> String {
    let name = &object.name;
    let nl = first_line_end(bytes);
    let first = std::str::from_utf8(&bytes[..nl]).expect("the first line is text");
    let fields: Vec<&str> = first.split(' ').collect();
    assert!(
        fields.len() == 4
            && fields[0] == "devstash-remote"
            && fields[1] == "1"
            && is_hex(fields[2], 16)
            && is_hex(fields[3], 128),
        "{name}: the first line is {first:?}"
    );
    let rest = &bytes[nl + 1..];
    let nl2 = rest
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or_else(|| panic!("{name}: no header line"));
    let header: serde_json::Value =
        serde_json::from_slice(&rest[..nl2]).expect("the header line is JSON");
    assert_eq!(
        header["key"].as_str().map(str::to_ascii_lowercase),
        Some(object.key.clone()),
        "{name}: the embedded key is not the object's: {header}"
    );
    assert!(rest.len() > nl2 + 1, "{name}: no payload");
    fields[2].to_string()
}

// ------------------------------------------------------------------------------------------
// Machines
// ------------------------------------------------------------------------------------------

/// One person's (or CI runner's) machine: a project directory with its own cache and
/// `devstash.toml`, a `DEVSTASH_HOME`, and an environment.
struct Machine {
    sb: Sandbox,
    /// Another machine's DEVSTASH_HOME, when this one shares it.
    shared_home: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Machine {
    /// A machine with a home of its own, new: a per-user key of its own, nothing compiled.
    fn new() -> Machine {
        Machine {
            sb: Sandbox::new(),
            shared_home: None,
            env: Vec::new(),
        }
    }

    /// A machine with a home of its own copied from [`warm_home`]: the probe is compiled, and the
    /// per-user key is every warm machine's. For tests in which that key is not the point.
    fn warm() -> Machine {
        let m = Machine::new();
        copy_dir(warm_home(), m.sb.home());
        m
    }

    /// Another project directory (cache, `devstash.toml`) with `other`'s DEVSTASH_HOME (and so
    /// its compiled modules), and none of its environment.
    fn sharing_home(other: &Machine) -> Machine {
        Machine {
            sb: Sandbox::new(),
            shared_home: Some(other.home()),
            env: Vec::new(),
        }
    }

    fn home(&self) -> PathBuf {
        self.shared_home
            .clone()
            .unwrap_or_else(|| self.sb.home().to_path_buf())
    }

    fn env(mut self, name: &str, value: &str) -> Machine {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// With `DEVSTASH_REMOTE_SIGNING_KEY` set.
    fn signing(self, keys: &Keys) -> Machine {
        self.env("DEVSTASH_REMOTE_SIGNING_KEY", &keys.signing)
    }

    /// With what it takes to reach `store` (credentials for S3).
    fn reaching(mut self, store: &dyn Store) -> Machine {
        for (k, v) in store.remote_env() {
            self = self.env(k, v);
        }
        self
    }

    /// Writes the project's `devstash.toml`.
    fn configure(&self, toml: &str) {
        std::fs::write(self.sb.path().join("devstash.toml"), toml).unwrap();
    }

    /// Removes the local cache (the remote is then the only copy).
    fn forget_local(&self) {
        match std::fs::remove_dir_all(self.sb.cache()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot remove the cache: {e}"),
        }
    }

    fn entries(&self) -> Vec<PathBuf> {
        self.sb.entries()
    }

    fn cmd(&self) -> Command {
        let mut c = self.sb.cmd();
        for name in CLEARED_ENV {
            c.env_remove(name);
        }
        c.env("DEVSTASH_HOME", self.home());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// `devstash ARGS`, and how long it took.
    fn timed(&self, args: &[&str]) -> (Run, Duration) {
        let mut c = self.cmd();
        c.args(args);
        output_within(c, COMMAND_LIMIT)
    }

    fn devstash(&self, args: &[&str]) -> Run {
        self.timed(args).0
    }

    /// `devstash run FLAGS MODULE ARGS`, and how long it took.
    fn run_timed(&self, flags: &[&str], module: &Path, args: &[&str]) -> (Run, Duration) {
        let mut all = vec!["run"];
        all.extend_from_slice(flags);
        all.push(module.to_str().unwrap());
        all.extend_from_slice(args);
        self.timed(&all)
    }

    fn run_with(&self, flags: &[&str], module: &Path, args: &[&str]) -> Run {
        self.run_timed(flags, module, args).0
    }

    fn run(&self, module: &Path, args: &[&str]) -> Run {
        self.run_with(&[], module, args)
    }
}

/// A DEVSTASH_HOME with the probe compiled, made once per test binary (and kept between runs,
/// in `target/guests/`) for [`Machine::warm`] to copy.
fn warm_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let home = common::guest_target_dir().join("remote-test-home");
        let probe = guest("probe");
        for attempt in 0..2 {
            std::fs::create_dir_all(&home).unwrap();
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
            let sb = Sandbox::new();
            let mut cmd = sb.cmd();
            for name in CLEARED_ENV {
                cmd.env_remove(name);
            }
            cmd.env("DEVSTASH_HOME", &home).args([
                "run",
                "--no-cache",
                probe.to_str().unwrap(),
                "double",
                "0",
            ]);
            let (r, _) = output_within(cmd, COMMAND_LIMIT);
            if r.code == 0 && !r.stderr.contains("warning") {
                break;
            }
            // A home an older devstash left, or a module it cannot use: start it over.
            assert_eq!(attempt, 0, "warming {}: {r:?}", home.display());
            std::fs::remove_dir_all(&home).unwrap();
        }
        home
    })
}

/// Copies the files and folders of `from` into `to`, permissions included.
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            std::fs::set_permissions(&dst, std::fs::metadata(&src).unwrap().permissions()).unwrap();
            copy_dir(&src, &dst);
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Runs `cmd` to its end (killing it, and failing, after `limit`): its output and how long it
/// took.
fn output_within(mut cmd: Command, limit: Duration) -> (Run, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("devstash starts");
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = pipe.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    }
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let (status, elapsed) = loop {
        if let Some(s) = child.try_wait().expect("waiting for devstash") {
            break (Some(s), start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break (None, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let run = Run {
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(
        status.is_some(),
        "devstash did not finish within {limit:?} and was killed: {run:?}"
    );
    (run, elapsed)
}

/// A writer's key pair, from `devstash remote keygen`.
#[derive(Debug, Clone)]
struct Keys {
    /// The value of `DEVSTASH_REMOTE_SIGNING_KEY`.
    signing: String,
    /// The public key, for `public_keys`.
    public: String,
}

/// Runs `devstash remote keygen` and parses its two lines.
fn keygen(m: &Machine) -> Keys {
    let r = m.devstash(&["remote", "keygen"]);
    assert_eq!(r.code, 0, "devstash remote keygen: {r:?}");
    let signing = r
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("DEVSTASH_REMOTE_SIGNING_KEY="))
        .unwrap_or_else(|| panic!("no DEVSTASH_REMOTE_SIGNING_KEY= line: {r:?}"))
        .to_string();
    let public_line = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("public_keys"))
        .unwrap_or_else(|| panic!("no public_keys line: {r:?}"));
    let public = public_line
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("no quoted key in {public_line:?}"))
        .to_string();
    assert!(is_hex(&signing, 64), "signing key {signing:?}");
    assert!(is_hex(&public, 64), "public key {public:?}");
    Keys { signing, public }
}

/// A `devstash.toml` with a `[remote]` table: `mode` left out when `None`; `extra` lines added
/// as they are (`namespace = "v1"`, timeouts).
fn config(url: &str, mode: Option<&str>, public_keys: &[&str], extra: &str) -> String {
    let mut toml = format!("[remote]\nurl = \"{url}\"\n");
    if let Some(mode) = mode {
        toml.push_str(&format!("mode = \"{mode}\"\n"));
    }
    let keys: Vec<String> = public_keys.iter().map(|k| format!("\"{k}\"")).collect();
    toml.push_str(&format!("public_keys = [{}]\n", keys.join(", ")));
    toml.push_str(extra);
    toml
}

// ------------------------------------------------------------------------------------------
// What a run says
// ------------------------------------------------------------------------------------------

/// The remote counts of a run's closing summary (`remote: 1 hit, 0 misses, 0 uploads, 0
/// errors`); a count the line does not give is `None`.
#[derive(Debug, Default, Clone, Copy)]
struct RemoteCounts {
    hits: Option<u64>,
    misses: Option<u64>,
    uploads: Option<u64>,
    errors: Option<u64>,
}

/// The remote counts of the last stderr line that has `remote:` and counts (not a warning).
fn remote_counts(r: &Run) -> Option<RemoteCounts> {
    let line = r.stderr.lines().rev().find(|l| {
        l.contains("remote:")
            && !l.contains("warning")
            && (l.contains(" hit") || l.contains(" upload"))
    })?;
    let tail = &line[line.rfind("remote:")? + "remote:".len()..];
    let mut c = RemoteCounts::default();
    for part in tail.split([',', ';']) {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        if what.starts_with("hit") {
            c.hits = Some(n);
        } else if what.starts_with("miss") {
            c.misses = Some(n);
        } else if what.starts_with("upload") {
            c.uploads = Some(n);
        } else if what.starts_with("error") {
            c.errors = Some(n);
        }
    }
    Some(c)
}

/// The summary's remote counts, which must be there.
fn summary(r: &Run) -> RemoteCounts {
    remote_counts(r).unwrap_or_else(|| panic!("no `remote:` counts in the summary: {r:?}"))
}

/// The `warning: remote` lines of a run.
fn remote_warnings(r: &Run) -> Vec<&str> {
    r.stderr
        .lines()
        .filter(|l| l.contains("warning: remote"))
        .collect()
}

/// Lines that report an error (neither the summary's `0 errors` nor a warning is one).
fn error_lines(r: &Run) -> Vec<&str> {
    r.stderr
        .lines()
        .filter(|l| {
            let l = l.trim_start().to_ascii_lowercase();
            !l.contains("warning")
                && (l.starts_with("error") || l.contains("error:") || l.contains("panicked"))
        })
        .collect()
}

/// A run that computed `double(n)` locally, printed the right result and warned about the
/// remote.
fn computed_with_warning(r: &Run, n: u64) -> Result<(), String> {
    let mut why = Vec::new();
    if r.code != 0 {
        why.push(format!("exit code {}", r.code));
    }
    if !r.stdout.contains(&format!("computed double({n})")) {
        why.push("the call did not compute".into());
    }
    if !r.stdout.contains(&format!("result {}\n", 2 * n)) {
        why.push(format!("not `result {}`", 2 * n));
    }
    if remote_warnings(r).is_empty() {
        why.push("no `warning: remote` line".into());
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(format!("{}; {r:?}", why.join(", ")))
    }
}

/// Runs `double N` on a writer, which must upload it; returns the new object.
fn upload_double(m: &Machine, store: &dyn Store, ns: &str, n: &str) -> Object {
    let before = entry_objects(store, ns);
    let r = m.run(&guest("probe"), &["double", n]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&format!("computed double({n})")), "{r:?}");
    new_object(
        &before,
        &entry_objects(store, ns),
        &format!("uploading double({n}), {r:?}"),
    )
}

/// The full keys of a machine's local entries (each file's header line).
fn local_keys(m: &Machine) -> Vec<String> {
    let mut keys: Vec<String> = m
        .entries()
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).unwrap();
            let header = bytes.split(|&b| b == b'\n').nth(1).expect("a header line");
            let v: serde_json::Value = serde_json::from_slice(header).expect("JSON header");
            v["key"].as_str().unwrap().to_ascii_lowercase()
        })
        .collect();
    keys.sort();
    keys
}

// ------------------------------------------------------------------------------------------
// Two machines
// ------------------------------------------------------------------------------------------

/// A writes four entries; B, a second machine trusting A's key, gets every one from the remote
/// and keeps a copy it can use on its own.
fn two_machines_share_every_call(store: &dyn Store) {
    let probe = guest("probe");
    let url = store.remote_url("team/proj");
    let a = Machine::warm().reaching(store);
    let keys = keygen(&a);
    let a = a.signing(&keys);
    a.configure(&config(&url, Some("read-write"), &[&keys.public], ""));
    assert!(entry_objects(store, "default").is_empty());

    let first = a.run(&probe, &["many", "4"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(count(&first.stdout, "computed double("), 4, "{first:?}");
    assert!(first.stdout.contains("total 12"), "{first:?}");
    assert!(remote_warnings(&first).is_empty(), "{first:?}");
    assert_eq!(summary(&first).uploads, Some(4), "{first:?}");

    // The objects: under the prefix and the default namespace, named by the entries' full
    // keys, in the remote format, all signed by A's one key.
    let objects = entry_objects(store, "default");
    let mut object_keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
    object_keys.sort();
    assert_eq!(
        object_keys,
        local_keys(&a),
        "objects {:?}",
        store.object_names()
    );
    let mut key_ids = Vec::new();
    for o in &objects {
        assert!(
            o.name.contains("team/proj"),
            "{o:?} is not under the prefix"
        );
        key_ids.push(check_object(o, &store.object(&o.name)));
    }
    key_ids.dedup();
    assert_eq!(key_ids.len(), 1, "one writer, one key id: {key_ids:?}");

    // B: its own home and cache, read mode, A's public key.
    let b = Machine::new().reaching(store);
    b.configure(&config(&url, Some("read"), &[&keys.public], ""));
    let second = b.run(&probe, &["many", "4"]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(
        !second.stdout.contains("computed"),
        "B computed instead of using the remote: {second:?}"
    );
    assert!(second.stdout.contains("total 12"), "{second:?}");
    assert!(remote_warnings(&second).is_empty(), "{second:?}");
    assert!(second.stderr.contains("4 hits"), "{second:?}");
    let counts = summary(&second);
    assert_eq!(counts.hits, Some(4), "{second:?}");
    assert_eq!(counts.uploads.unwrap_or(0), 0, "{second:?}");
    assert_eq!(
        local_keys(&b),
        object_keys,
        "the remote hits are copied into B's cache"
    );

    // B's copies verify under B's own key: the next run hits locally, and none is corrupt.
    let third = b.run(&probe, &["many", "4"]);
    assert_eq!(third.code, 0, "{third:?}");
    assert!(!third.stdout.contains("computed"), "{third:?}");
    assert!(third.stderr.contains("devstash: 4 hits"), "{third:?}");
    assert_eq!(
        remote_counts(&third).and_then(|c| c.hits).unwrap_or(0),
        0,
        "local hits are not remote hits: {third:?}"
    );
    let list = b.devstash(&["list"]);
    assert_eq!(list.code, 0, "{list:?}");
    assert!(!list.stdout.contains("corrupt"), "{list:?}");

    // What the remote holds, and a check of A's setup.
    let listed = b.devstash(&["list", "--remote"]);
    let counted = listed.code == 0 && listed.stdout.contains("4 entr");
    let refused = listed.code != 0 && listed.stderr.contains("cannot list");
    assert!(
        counted || (refused && !store.must_list()),
        "list --remote: {listed:?}"
    );
    let check = a.devstash(&["remote", "check"]);
    assert_eq!(check.code, 0, "{check:?}");
    let said = format!("{}{}", check.stdout, check.stderr).to_ascii_lowercase();
    for word in ["reachable", "readable", "writable", "signing"] {
        assert!(
            said.contains(word),
            "remote check says nothing {word}: {check:?}"
        );
    }
}

#[test]
fn redis_two_machines_the_reader_hits_every_call() {
    let redis = RedisServer::start();
    two_machines_share_every_call(&redis);
}

#[test]
fn s3_two_machines_the_reader_hits_every_call() {
    let moto = MotoServer::start();
    two_machines_share_every_call(&moto);
}

/// The quickstart on a teammate's machine: the two-second call comes from the remote, and a
/// recording made there takes it from the remote too.
#[test]
fn quickstart_from_a_teammate_is_instant_and_records() {
    let redis = RedisServer::start();
    let qs = guest("quickstart");
    let url = redis.url("quickstart");
    let a = Machine::new();
    let keys = keygen(&a);
    let a = a.signing(&keys);
    a.configure(&config(&url, Some("read-write"), &[&keys.public], ""));
    let first = a.run(&qs, &[]);
    assert_eq!(first.stdout, "Running slow_function...\n20\n", "{first:?}");
    assert_eq!(summary(&first).uploads, Some(1), "{first:?}");

    let b = Machine::new();
    b.configure(&config(&url, None, &[&keys.public], ""));
    let second = b.run(&qs, &[]);
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(second.stdout, "20\n", "the slow call ran on B: {second:?}");
    assert_eq!(summary(&second).hits, Some(1), "{second:?}");

    // `record` reads the remote as `run` does; the tape replays.
    let c = Machine::sharing_home(&b);
    c.configure(&config(&url, Some("read"), &[&keys.public], ""));
    let recorded = c.devstash(&["record", qs.to_str().unwrap()]);
    assert_eq!(recorded.code, 0, "{recorded:?}");
    assert_eq!(recorded.stdout, "20\n", "{recorded:?}");
    let replayed = c.devstash(&["replay", "--verify", qs.to_str().unwrap()]);
    assert_eq!(replayed.code, 0, "{replayed:?}");
}

// ------------------------------------------------------------------------------------------
// Who uploads
// ------------------------------------------------------------------------------------------

/// Nothing is written to the store but by a read-write machine with a signing key.
fn only_read_write_with_a_key_uploads(store: &dyn Store) {
    let probe = guest("probe");
    let url = store.remote_url("team/proj");
    let m = Machine::warm().reaching(store);
    let keys = keygen(&m);
    let m = m.signing(&keys);
    let unsigned = Machine::sharing_home(&m).reaching(store);
    let before = store.object_names();
    let cases: [(&Machine, Option<&str>, &str, &str); 4] = [
        (&m, None, "61", "mode left out (read), a signing key set"),
        (&m, Some("read"), "62", "mode read, a signing key set"),
        (&m, Some("off"), "63", "mode off, a signing key set"),
        (
            &unsigned,
            Some("read-write"),
            "64",
            "mode read-write, no key",
        ),
    ];
    for (machine, mode, n, what) in cases {
        machine.configure(&config(&url, mode, &[&keys.public], ""));
        let r = machine.run(&probe, &["double", n]);
        assert_eq!(r.code, 0, "{what}: {r:?}");
        assert!(
            r.stdout.contains(&format!("computed double({n})")),
            "{what}: {r:?}"
        );
        assert_eq!(
            store.object_names(),
            before,
            "{what}: the store changed; {r:?}"
        );
        let uploads = remote_counts(&r).and_then(|c| c.uploads).unwrap_or(0);
        assert_eq!(uploads, 0, "{what}: {r:?}");
    }
    // The control: read-write with the key does upload.
    m.configure(&config(&url, Some("read-write"), &[&keys.public], ""));
    upload_double(&m, store, "default", "65");
}

#[test]
fn redis_a_reader_uploads_nothing() {
    let redis = RedisServer::start();
    only_read_write_with_a_key_uploads(&redis);
}

#[test]
fn s3_a_reader_uploads_nothing() {
    let moto = MotoServer::start();
    only_read_write_with_a_key_uploads(&moto);
}

/// `--remote`, `--remote-mode` and their variables choose the remote without a file, and
/// override the file's mode.
#[test]
fn flags_and_environment_choose_the_remote_and_its_mode() {
    let redis = RedisServer::start();
    let probe = guest("probe");
    let url = redis.url("flags");
    let w = Machine::warm();
    let keys = keygen(&w);
    let w = w.signing(&keys);

    // No devstash.toml: the flags alone, then the variables alone.
    upload_via(&redis, "--remote and --remote-mode read-write", || {
        w.run_with(
            &["--remote", &url, "--remote-mode", "read-write"],
            &probe,
            &["double", "31"],
        )
    });
    let e = Machine::sharing_home(&w)
        .signing(&keys)
        .env("DEVSTASH_REMOTE", &url)
        .env("DEVSTASH_REMOTE_MODE", "read-write");
    upload_via(&redis, "DEVSTASH_REMOTE and DEVSTASH_REMOTE_MODE", || {
        e.run(&probe, &["double", "32"])
    });

    // A file that says read-write, overridden by the flag and by the variable.
    let rw = config(&url, Some("read-write"), &[&keys.public], "");
    let t = Machine::sharing_home(&w).signing(&keys);
    t.configure(&rw);
    let t_off = Machine::sharing_home(&w)
        .signing(&keys)
        .env("DEVSTASH_REMOTE_MODE", "off");
    t_off.configure(&rw);
    let before = redis.keys();
    for (what, r) in [
        (
            "--remote-mode off",
            t.run_with(&["--remote-mode", "off"], &probe, &["double", "33"]),
        ),
        (
            "--remote-mode read",
            t.run_with(&["--remote-mode", "read"], &probe, &["double", "34"]),
        ),
        (
            "DEVSTASH_REMOTE_MODE=off",
            t_off.run(&probe, &["double", "35"]),
        ),
    ] {
        assert_eq!(r.code, 0, "{what}: {r:?}");
        assert!(r.stdout.contains("computed"), "{what}: {r:?}");
        assert_eq!(
            redis.keys(),
            before,
            "{what} over a read-write file uploaded: {r:?}"
        );
    }
    upload_via(&redis, "the file's read-write", || {
        t.run(&probe, &["double", "36"])
    });

    // A reader gets what the flags uploaded, and does not look with the mode off.
    let r = Machine::sharing_home(&w);
    r.configure(&config(&url, Some("read"), &[&keys.public], ""));
    let hit = r.run(&probe, &["double", "31"]);
    assert!(
        hit.code == 0 && !hit.stdout.contains("computed") && hit.stdout.contains("result 62"),
        "{hit:?}"
    );
    let off = r.run_with(&["--remote-mode", "off"], &probe, &["double", "32"]);
    assert!(
        off.code == 0 && off.stdout.contains("computed double(32)"),
        "--remote-mode off still looked: {off:?}"
    );
    let off = Machine::sharing_home(&w).env("DEVSTASH_REMOTE_MODE", "off");
    off.configure(&config(&url, Some("read"), &[&keys.public], ""));
    let r = off.run(&probe, &["double", "36"]);
    assert!(
        r.code == 0 && r.stdout.contains("computed double(36)"),
        "DEVSTASH_REMOTE_MODE=off still looked: {r:?}"
    );
}

/// Runs `f`, which must add exactly one entry object to `redis`.
fn upload_via(redis: &RedisServer, what: &str, f: impl FnOnce() -> Run) {
    let before = entry_objects(redis, "default");
    let r = f();
    assert_eq!(r.code, 0, "{what}: {r:?}");
    new_object(
        &before,
        &entry_objects(redis, "default"),
        &format!("{what}: {r:?}"),
    );
}

/// Two writers storing the same entry at the same moment: both succeed, one object is left and
/// it verifies.
#[test]
fn two_writers_storing_the_same_entry_at_once() {
    let redis = RedisServer::start();
    let qs = guest("quickstart");
    let url = redis.url("race");
    let a = Machine::new();
    let (ka, kb) = (keygen(&a), keygen(&a));
    let a = a.signing(&ka);
    // Compile the module first, so that both runs reach the slow call (and their uploads) together.
    let warm = a.run_with(&["--no-cache"], &qs, &[]);
    assert_eq!(warm.code, 0, "{warm:?}");
    let b = Machine::sharing_home(&a).signing(&kb);
    let both = config(&url, Some("read-write"), &[&ka.public, &kb.public], "");
    a.configure(&both);
    b.configure(&both);
    let (ra, rb) = std::thread::scope(|s| {
        let ra = s.spawn(|| a.run(&qs, &[]));
        let rb = s.spawn(|| b.run(&qs, &[]));
        (ra.join().unwrap(), rb.join().unwrap())
    });
    for (who, r) in [("A", &ra), ("B", &rb)] {
        assert_eq!(r.code, 0, "{who}: {r:?}");
        assert!(r.stdout.ends_with("20\n"), "{who}: {r:?}");
        assert!(remote_warnings(r).is_empty(), "{who}: {r:?}");
        assert!(error_lines(r).is_empty(), "{who}: {r:?}");
        let errors = remote_counts(r).and_then(|c| c.errors).unwrap_or(0);
        assert_eq!(errors, 0, "{who}: {r:?}");
    }
    let objects = entry_objects(&redis, "default");
    assert_eq!(objects.len(), 1, "{:?}", redis.keys());
    check_object(&objects[0], &redis.object(&objects[0].name));

    let c = Machine::sharing_home(&a);
    c.configure(&config(&url, Some("read"), &[&ka.public, &kb.public], ""));
    let hit = c.run(&qs, &[]);
    assert_eq!(hit.stdout, "20\n", "{hit:?}");
    assert!(remote_warnings(&hit).is_empty(), "{hit:?}");
}

// ------------------------------------------------------------------------------------------
// What a reader refuses
// ------------------------------------------------------------------------------------------

/// Every object that is not exactly what a trusted writer stored under that key is a miss, with
/// a warning, and never a wrong value.
#[test]
fn tampered_misnamed_unsigned_and_untrusted_objects_are_misses() {
    let redis = RedisServer::start();
    let probe = guest("probe");
    let url = redis.url("team");
    let w = Machine::warm();
    let (k1, k2) = (keygen(&w), keygen(&w));
    let w = w.signing(&k1);
    w.configure(&config(&url, Some("read-write"), &[&k1.public], ""));
    let o21 = upload_double(&w, &redis, "default", "21");
    let o22 = upload_double(&w, &redis, "default", "22");
    // An outsider with a key of its own writes to the same store.
    let outsider = Machine::sharing_home(&w).signing(&k2);
    outsider.configure(&config(&url, Some("read-write"), &[&k2.public], ""));
    upload_double(&outsider, &redis, "default", "23");

    let r = Machine::sharing_home(&w);
    r.configure(&config(&url, Some("read"), &[&k1.public], ""));
    // The untouched object is a hit: the setup is sound.
    let hit = r.run(&probe, &["double", "21"]);
    assert!(
        hit.code == 0 && !hit.stdout.contains("computed") && hit.stdout.contains("result 42\n"),
        "{hit:?}"
    );

    let good = redis.object(&o21.name);
    let nl = first_line_end(&good);
    let flipped_payload = {
        let mut b = good.clone();
        *b.last_mut().unwrap() ^= 0x01;
        b
    };
    let changed_created = {
        let mut b = good.clone();
        let field = b"\"created_ms\":";
        let at = b
            .windows(field.len())
            .position(|w| w == field)
            .expect("the header has created_ms")
            + field.len();
        let end = at + b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
        b[end - 1] = if b[end - 1] == b'0' { b'1' } else { b'0' };
        b
    };
    let zeroed_signature = {
        let mut b = good.clone();
        let sig_start = nl - 128;
        b[sig_start..nl].fill(b'0');
        b
    };
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("a payload byte flipped", flipped_payload),
        ("the header's created time changed", changed_created),
        ("cut in half", good[..good.len() / 2].to_vec()),
        ("only the first line", good[..=nl].to_vec()),
        ("empty", Vec::new()),
        ("not an object", b"hello, devstash\n".to_vec()),
        ("unsigned: the first line removed", good[nl + 1..].to_vec()),
        ("the signature zeroed", zeroed_signature),
        (
            "double(22)'s object under double(21)'s name",
            redis.object(&o22.name),
        ),
    ];
    let mut failures = Vec::new();
    for (what, bytes) in variants {
        redis.set(&o21.name, &bytes);
        r.forget_local();
        let run = r.run(&probe, &["double", "21"]);
        if let Err(e) = computed_with_warning(&run, 21) {
            failures.push(format!("{what}: {e}"));
        }
        if run.stdout.contains("result 44") {
            failures.push(format!("{what}: the wrong value was returned: {run:?}"));
        }
    }
    // Signed by a key that is not in public_keys.
    r.forget_local();
    let run = r.run(&probe, &["double", "23"]);
    if let Err(e) = computed_with_warning(&run, 23) {
        failures.push(format!("signed by an untrusted key: {e}"));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));

    // With the object put back, it is a hit again.
    redis.set(&o21.name, &good);
    r.forget_local();
    let again = r.run(&probe, &["double", "21"]);
    assert!(!again.stdout.contains("computed"), "{again:?}");
}

/// A namespace is part of where objects live: another one (or none) does not see them.
#[test]
fn a_new_namespace_disowns_what_was_written_before() {
    let redis = RedisServer::start();
    let probe = guest("probe");
    let url = redis.url("ns");
    let w = Machine::warm();
    let keys = keygen(&w);
    let w = w.signing(&keys);
    let v1 = "namespace = \"v1\"\n";
    w.configure(&config(&url, Some("read-write"), &[&keys.public], v1));
    let o = upload_double(&w, &redis, "v1", "41");
    assert!(o.name.ends_with(&format!("v1/{}", o.key)), "{o:?}");
    assert!(entry_objects(&redis, "default").is_empty());

    let r = Machine::sharing_home(&w);
    for (extra, what) in [
        ("namespace = \"v2\"\n", "namespace v2"),
        ("", "no namespace"),
    ] {
        r.configure(&config(&url, Some("read"), &[&keys.public], extra));
        r.forget_local();
        let run = r.run(&probe, &["double", "41"]);
        assert!(
            run.code == 0 && run.stdout.contains("computed double(41)"),
            "{what} saw v1's object: {run:?}"
        );
    }
    r.configure(&config(&url, Some("read"), &[&keys.public], v1));
    r.forget_local();
    let hit = r.run(&probe, &["double", "41"]);
    assert!(
        hit.code == 0 && !hit.stdout.contains("computed") && hit.stdout.contains("result 82"),
        "{hit:?}"
    );

    // The namespace is a salt, not only a folder: v1's object copied into v2 is not v2's.
    let copy = format!("{}v2/{}", &o.name[..o.name.len() - o.key.len() - 3], o.key);
    redis.set(&copy, &redis.object(&o.name));
    r.configure(&config(
        &url,
        Some("read"),
        &[&keys.public],
        "namespace = \"v2\"\n",
    ));
    r.forget_local();
    let copied = r.run(&probe, &["double", "41"]);
    computed_with_warning(&copied, 41)
        .unwrap_or_else(|e| panic!("v1's object copied into v2: {e}"));
}

// ------------------------------------------------------------------------------------------
// Outages
// ------------------------------------------------------------------------------------------

/// Runs `many 5` against an unreachable remote at `url`, in read mode and in read-write mode:
/// each run computes every call locally, exits 0, warns once (and nothing else), and pays at
/// most about one timeout for its five lookups (and uploads).
fn survives_an_outage(m: &Machine, url: &str, keys: &Keys, baseline: Duration, what: &str) {
    let probe = guest("probe");
    for mode in ["read", "read-write"] {
        let what = format!("{what}, mode {mode}");
        m.configure(&config(url, Some(mode), &[&keys.public], FAST_FAIL));
        m.forget_local();
        let (r, took) = m.run_timed(&[], &probe, &["many", "5"]);
        assert_eq!(r.code, 0, "{what}: {r:?}");
        assert_eq!(count(&r.stdout, "computed double("), 5, "{what}: {r:?}");
        assert!(r.stdout.contains("total 20"), "{what}: {r:?}");
        let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.contains("warning")).collect();
        assert!(
            remote_warnings(&r).len() == 1 && warnings.len() == 1,
            "{what}: one warning, a `warning: remote` line: {r:?}"
        );
        assert!(error_lines(&r).is_empty(), "{what}: {r:?}");
        assert!(
            took < baseline + OUTAGE_SLACK,
            "{what}: the run took {took:?}, {baseline:?} without a remote: {r:?}"
        );
    }
}

/// A machine with a compiled module, and how long `many 5` takes it without a remote.
fn warm_machine() -> (Machine, Keys, Duration) {
    let probe = guest("probe");
    let m = Machine::warm();
    let keys = keygen(&m);
    let m = m.signing(&keys);
    let warm = m.run_with(&["--no-cache"], &probe, &["many", "5"]);
    assert_eq!(warm.code, 0, "{warm:?}");
    let (base, baseline) = m.run_timed(&["--no-cache"], &probe, &["many", "5"]);
    assert_eq!(base.code, 0, "{base:?}");
    (m, keys, baseline)
}

#[test]
fn a_stopped_server_costs_one_warning_and_the_run_succeeds() {
    let mut redis = RedisServer::start();
    let url = redis.url("down");
    let (m, keys, baseline) = warm_machine();
    m.configure(&config(
        &url,
        Some("read-write"),
        &[&keys.public],
        FAST_FAIL,
    ));
    let up = m.devstash(&["remote", "check"]);
    assert_eq!(up.code, 0, "{up:?}");

    redis.stop();
    survives_an_outage(&m, &url, &keys, baseline, "redis stopped");
    m.configure(&config(
        &url,
        Some("read-write"),
        &[&keys.public],
        FAST_FAIL,
    ));
    let down = m.devstash(&["remote", "check"]);
    assert_ne!(down.code, 0, "{down:?}");
    // "unreachable", or the check's `reachable` line answering no.
    let said = format!("{}{}", down.stdout, down.stderr).to_ascii_lowercase();
    let unreachable = said.contains("unreachable")
        || said.lines().any(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some("reachable") && words.next() == Some("no")
        });
    assert!(
        unreachable,
        "remote check does not say unreachable: {down:?}"
    );
}

#[test]
fn a_server_that_never_answers_costs_one_timeout() {
    let hole = BlackHole::start();
    let (m, keys, baseline) = warm_machine();

    let redis_url = format!("redis://{}/0/hole", hole.addr());
    survives_an_outage(&m, &redis_url, &keys, baseline, "redis that never answers");
    assert!(hole.accepted() >= 1, "devstash never connected");

    let s3 = Machine::sharing_home(&m)
        .signing(&keys)
        .env("AWS_ACCESS_KEY_ID", "devstash-test")
        .env("AWS_SECRET_ACCESS_KEY", "devstash-test")
        .env("AWS_REGION", "us-east-1");
    let s3_url = format!(
        "s3://bucket/hole?endpoint=http://{}&region=us-east-1",
        hole.addr()
    );
    let accepted = hole.accepted();
    survives_an_outage(&s3, &s3_url, &keys, baseline, "S3 that never answers");
    assert!(hole.accepted() > accepted, "devstash never connected");
}

#[test]
fn wrong_credentials_give_one_clear_warning() {
    let redis = RedisServer::with_password("team-secret");
    let url = redis.url("auth");
    let (m, keys, baseline) = warm_machine();
    m.configure(&config(&url, Some("read"), &[&keys.public], FAST_FAIL));
    let probe = guest("probe");
    for (password, said) in [
        (Some("a-guess"), "refused the credentials"),
        (None, "NOAUTH"),
    ] {
        let m = match password {
            Some(p) => Machine::sharing_home(&m).env("DEVSTASH_REDIS_PASSWORD", p),
            None => Machine::sharing_home(&m),
        };
        m.configure(&config(&url, Some("read"), &[&keys.public], FAST_FAIL));
        let (r, took) = m.run_timed(&[], &probe, &["many", "5"]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(count(&r.stdout, "computed double("), 5, "{r:?}");
        let warnings = remote_warnings(&r);
        assert_eq!(warnings.len(), 1, "{r:?}");
        assert!(
            warnings[0].contains(said) && warnings[0].contains("DEVSTASH_REDIS_PASSWORD"),
            "{r:?}"
        );
        assert!(
            !r.stderr.contains("a-guess"),
            "the password is printed: {r:?}"
        );
        assert!(took < baseline + OUTAGE_SLACK, "{took:?}: {r:?}");
    }
    // The right one works.
    let ok = Machine::sharing_home(&m).env("DEVSTASH_REDIS_PASSWORD", "team-secret");
    ok.configure(&config(&url, Some("read"), &[&keys.public], FAST_FAIL));
    let r = ok.run_with(&[], &probe, &["many", "2"]);
    assert!(remote_warnings(&r).is_empty(), "{r:?}");
    assert_eq!(summary(&r).errors, Some(0), "{r:?}");
}

// ------------------------------------------------------------------------------------------
// Keys
// ------------------------------------------------------------------------------------------

#[test]
fn keygen_prints_a_fresh_key_pair_each_time() {
    let m = Machine::new();
    let (a, b) = (keygen(&m), keygen(&m));
    assert_ne!(a.signing, b.signing);
    assert_ne!(a.public, b.public);
    assert_ne!(a.signing, a.public, "the public key is not the seed");
}

#[test]
fn redis_a_value_recomputed_after_its_ttl_replaces_the_remote_copy() {
    recomputed_after_its_ttl(&RedisServer::start());
}

#[test]
fn s3_a_value_recomputed_after_its_ttl_replaces_the_remote_copy() {
    // S3 uploads are write-once: this is where a refreshed value could be refused.
    recomputed_after_its_ttl(&MotoServer::start());
}

fn recomputed_after_its_ttl(store: &dyn Store) {
    let probe = guest("probe");
    let url = store.remote_url("ttl");
    let writer = Machine::warm().reaching(store);
    let keys = keygen(&writer);
    let writer = writer.signing(&keys);
    writer.configure(&config(&url, Some("read-write"), &[&keys.public], ""));
    // `short N` is marked with a TTL of one second.
    let first = writer.run(&probe, &["short", "5"]);
    assert_eq!(summary(&first).uploads, Some(1), "{first:?}");
    let before = entry_objects(store, "default");
    assert_eq!(before.len(), 1);
    let old = store.object(&before[0].name);

    std::thread::sleep(Duration::from_millis(1200));
    // The writer's own copy has expired: it computes again, and the new value replaces the
    // remote one (else readers would be served the expired copy forever).
    let again = writer.run(&probe, &["short", "5"]);
    assert!(
        again.stdout.contains("computed short_lived(5)"),
        "{again:?}"
    );
    assert_eq!(summary(&again).uploads, Some(1), "{again:?}");
    let after = entry_objects(store, "default");
    assert_eq!(after.len(), 1);
    assert_ne!(
        store.object(&after[0].name),
        old,
        "the remote copy was not replaced"
    );

    // The new object is the value computed now.
    let created = |bytes: &[u8]| -> u64 {
        let text = String::from_utf8_lossy(bytes);
        let header = text.lines().nth(1).expect("a header line");
        let v: serde_json::Value = serde_json::from_str(header).expect("the header is JSON");
        v["created_ms"].as_u64().expect("created_ms")
    };
    assert!(
        created(&store.object(&after[0].name)) >= created(&old) + 1000,
        "the remote copy is not the value computed after the TTL"
    );
}
