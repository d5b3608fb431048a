//! What record, replay and inspect print: divergence reports, `--verify` diffs and tape
//! summaries.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use similar::TextDiff;

use serde::Serialize;

use super::format::{CallOutcome, Event, Stream, SysData, SysRecord, SysResult, Tape};
use super::replay::Divergence;
use super::syscall::{self, Arg, FUNCS, FdTable, Inputs, Open};
use crate::host::hex;
use crate::output::human_size;

/// Most argument bytes shown in hex.
const PREVIEW_BYTES: usize = 24;
/// Most strings quoted from the arguments.
const PREVIEW_STRINGS: usize = 4;

/// A preview of a call's canonical argument bytes: read back into text when they are in the Rust
/// SDK's encoding (`("EUR", 3)`, see [`super::keytext`]), else their length, the first bytes in
/// hex, and the strings found in them (a string is usually its length, a varint, then its UTF-8
/// bytes, so `("EUR",)` reads `4 bytes: 03 45 55 52 "EUR"`).
pub fn args_preview(args: &[u8]) -> String {
    if args.is_empty() {
        return "none (0 bytes)".into();
    }
    if let Some(text) = super::keytext::text(args) {
        return text;
    }
    let mut s = format!(
        "{} byte{}:",
        args.len(),
        if args.len() == 1 { "" } else { "s" }
    );
    for b in args.iter().take(PREVIEW_BYTES) {
        let _ = write!(s, " {b:02x}");
    }
    if args.len() > PREVIEW_BYTES {
        s.push_str(" …");
    }
    for text in strings_in(args).iter().take(PREVIEW_STRINGS) {
        let shown: String = text.chars().take(40).collect();
        let _ = write!(s, " {shown:?}");
        if shown.len() < text.len() {
            s.push('…');
        }
    }
    s
}

/// The length-prefixed strings of two or more printable characters in postcard bytes. A
/// number's bytes can look like one by chance; requiring the exact length and printable text
/// keeps that rare.
fn strings_in(bytes: &[u8]) -> Vec<&str> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        // A one- or two-byte varint length.
        let (len, width) = match (bytes[i], bytes.get(i + 1)) {
            (b, _) if b < 0x80 => (usize::from(b), 1),
            (b, Some(&c)) if c < 0x80 => (usize::from(b & 0x7f) | usize::from(c) << 7, 2),
            _ => (0, 1),
        };
        let start = i + width;
        if len >= 2
            && let Some(text) = bytes
                .get(start..start + len)
                .and_then(|t| std::str::from_utf8(t).ok())
            && text.chars().all(|c| !c.is_control())
        {
            found.push(text);
            i = start + len;
            continue;
        }
        i += 1;
    }
    found
}

/// The first 8 bytes of a key, hex.
pub fn short_hex(bytes: &[u8]) -> String {
    hex(&bytes[..bytes.len().min(8)])
}

/// The divergence report printed when a replay stops.
pub fn divergence(d: &Divergence, tape: &Path, module: &Path) -> String {
    format!(
        "devstash: replay diverged: {}\n{}\n  tape:      {}\n\
         hint: the program asked for something the recorded run did not, and a replay never \
         runs a marked call, makes an HTTP request, or reads a real clock or RNG; record the run \
         again with `devstash record {}` (add your arguments after `--`)",
        d.summary,
        d.details,
        tape.display(),
        module.display()
    )
}

/// What `--verify` compares.
pub struct RunOutput<'a> {
    /// stdout bytes.
    pub stdout: &'a [u8],
    /// stderr bytes.
    pub stderr: &'a [u8],
    /// What was written to each file, in order.
    pub files: &'a BTreeMap<String, Vec<u8>>,
    /// Exit code.
    pub code: i32,
}

/// `None` when the replay's output is the recording's, byte for byte; otherwise a unified diff of
/// each stream that differs, and the exit codes if they differ.
pub fn verify_diff(recorded: &RunOutput<'_>, replayed: &RunOutput<'_>) -> Option<String> {
    let mut out = String::new();
    let mut streams = vec![
        ("stdout".to_string(), recorded.stdout, replayed.stdout),
        ("stderr".to_string(), recorded.stderr, replayed.stderr),
    ];
    // Files: what was written to each, in order; a file only one side wrote to is compared with
    // nothing.
    let names: std::collections::BTreeSet<&String> =
        recorded.files.keys().chain(replayed.files.keys()).collect();
    for name in names {
        let old = recorded.files.get(name).map_or(&[][..], Vec::as_slice);
        let new = replayed.files.get(name).map_or(&[][..], Vec::as_slice);
        streams.push((format!("writes to {name}"), old, new));
    }
    for (name, old, new) in streams {
        if old == new {
            continue;
        }
        let (old, new) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
        let diff = TextDiff::from_lines(old.as_ref(), new.as_ref());
        let mut unified = diff.unified_diff();
        unified
            .context_radius(3)
            .header(&format!("recorded {name}"), &format!("replayed {name}"));
        let text = unified.to_string();
        if text.is_empty() {
            // Same text after lossy decoding: the bytes differ in invalid UTF-8 only.
            let _ = writeln!(out, "{name} differs in bytes that are not UTF-8 text");
        } else {
            out.push_str(&text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    if recorded.code != replayed.code {
        let _ = writeln!(
            out,
            "exit code: recorded {}, replayed {}",
            recorded.code, replayed.code
        );
    }
    (!out.is_empty()).then_some(out)
}

/// What `devstash inspect TAPE` shows, as its `--json` prints it.
#[derive(Debug, Serialize)]
pub struct TapeInfo {
    /// The tape's path.
    pub tape: String,
    /// Tape format version.
    pub format: u32,
    /// When it was recorded (RFC 3339).
    pub created: String,
    /// The devstash that recorded it.
    pub devstash: String,
    /// The recorded module's file name.
    pub module: String,
    /// Its hash (`xxh3 …` or `blake3 …`).
    pub module_hash: String,
    /// File size in bytes.
    pub bytes: u64,
    /// Number of events.
    pub events: u64,
    /// The guest's `argv`.
    pub argv: Vec<String>,
    /// The environment's names, and whether the tape keeps each value redacted.
    pub env: Vec<EnvName>,
    /// Exit code of the recorded run.
    pub exit_code: Option<i32>,
    /// Its trap message, if it trapped.
    pub trap: Option<String>,
    /// Bytes read from stdin, written to stdout and stderr, random bytes.
    pub io: Io,
    /// Events by kind: count and encoded bytes.
    pub kinds: Vec<KindCount>,
    /// The marked sites.
    pub sites: Vec<SiteInfo>,
    /// The HTTP exchanges, as one-line previews.
    pub http: Vec<String>,
    /// WASI calls on descriptors by function.
    pub wasi: Vec<FuncCount>,
    /// Every WASI call on a descriptor, in order.
    pub calls: Vec<CallInfo>,
    /// The files the run touched.
    pub files: Vec<FileInfo>,
}

/// An environment variable of a tape.
#[derive(Debug, Serialize)]
pub struct EnvName {
    /// Its name.
    pub name: String,
    /// Whether the tape keeps its value redacted (a replay takes it with `--env NAME`).
    pub redacted: bool,
}

/// Bytes through the standard streams and `random_get`.
#[derive(Debug, Default, Serialize)]
pub struct Io {
    /// Read from stdin.
    pub stdin: u64,
    /// Written to stdout.
    pub stdout: u64,
    /// Written to stderr.
    pub stderr: u64,
    /// Random bytes.
    pub random: u64,
}

/// Events of one kind.
#[derive(Debug, Serialize)]
pub struct KindCount {
    /// The kind's name.
    pub kind: String,
    /// How many.
    pub count: u64,
    /// Their encoded size.
    pub bytes: u64,
}

/// A marked site of a tape.
#[derive(Debug, Serialize)]
pub struct SiteInfo {
    /// `module::callee`.
    pub identity: String,
    /// `file:line`.
    pub location: String,
    /// Calls that ran.
    pub computed: u64,
    /// Calls answered by the store.
    pub hit: u64,
    /// Calls that returned no value (an error, or the run ended inside them).
    pub without_value: u64,
    /// Calls made inside other marked calls.
    pub nested: u64,
    /// The value's type.
    pub value_type: String,
    /// TTL in seconds.
    pub ttl_secs: Option<u64>,
}

/// Calls of one WASI function.
#[derive(Debug, Serialize)]
pub struct FuncCount {
    /// Its name.
    pub function: String,
    /// How many calls.
    pub calls: u64,
    /// Of which returned an error.
    pub errors: u64,
}

/// One WASI call on a descriptor.
#[derive(Debug, Serialize)]
pub struct CallInfo {
    /// The call, with its descriptors named: `path_open(fd 3 (/work), "a.txt", …)`.
    pub call: String,
    /// `ok`, `errno N (name)` or `trap`.
    pub result: String,
    /// Bytes it read or wrote.
    pub bytes: u64,
}

/// A file (or folder) a run touched.
#[derive(Debug, Default, Serialize)]
pub struct FileInfo {
    /// Its guest path.
    pub path: String,
    /// The functions called on it.
    pub functions: Vec<String>,
    /// Bytes read from it.
    pub read: u64,
    /// Bytes written to it.
    pub written: u64,
    /// Whether its contents are kept off the tape (read by hash).
    pub by_hash: bool,
}

/// Everything `inspect` shows of a tape.
pub fn info(path: &Path, tape: &Tape) -> TapeInfo {
    let h = &tape.header;
    let mut by_kind: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
    let mut sites: Vec<SiteInfo> = Vec::new();
    let mut site_index: BTreeMap<u32, usize> = BTreeMap::new();
    let mut http = Vec::new();
    let mut io = Io::default();
    let (mut exit_code, mut trap) = (None, None);
    let (mut argv, mut env) = (Vec::new(), Vec::new());
    let mut funcs: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    let mut calls = Vec::new();
    let mut files: BTreeMap<String, FileInfo> = BTreeMap::new();
    let mut fds = FdTable::default();
    let mut chunk_sizes: Vec<u64> = Vec::new();
    let mut refs: Vec<String> = Vec::new();
    for (event, size) in tape.events.iter().zip(&tape.frame_sizes) {
        let e = by_kind.entry(event.kind()).or_default();
        e.0 += 1;
        e.1 += *size as u64;
        match event {
            Event::Invocation(i) => {
                fds = FdTable::new(&i.preopens);
                argv = i.argv.clone();
                env = i
                    .env
                    .iter()
                    .map(|(name, _)| EnvName {
                        name: name.clone(),
                        redacted: i.secret_env.iter().any(|(n, _)| n == name),
                    })
                    .collect();
            }
            Event::Site(site) => {
                site_index.insert(site.id, sites.len());
                sites.push(SiteInfo {
                    identity: site.identity.clone(),
                    location: site.location.clone(),
                    computed: 0,
                    hit: 0,
                    without_value: 0,
                    nested: 0,
                    value_type: site.value_type.clone(),
                    ttl_secs: site.ttl_secs,
                });
            }
            Event::Call(c) => {
                if let Some(site) = site_index.get(&c.site).and_then(|&i| sites.get_mut(i)) {
                    match c.outcome {
                        CallOutcome::Hit { .. } => site.hit += 1,
                        CallOutcome::Computed { .. } => site.computed += 1,
                        CallOutcome::Failed | CallOutcome::Unfinished => site.without_value += 1,
                    }
                    if c.depth > 0 {
                        site.nested += 1;
                    }
                }
            }
            Event::Output(o) => match o.stream {
                Stream::Stdout => io.stdout += o.bytes.len() as u64,
                Stream::Stderr => io.stderr += o.bytes.len() as u64,
            },
            Event::Random(b) => io.random += b.len() as u64,
            Event::Exit(x) => {
                exit_code = Some(x.code);
                trap = x.trap.clone();
            }
            Event::Http(h) => http.push(format!(
                "{}{}",
                h.preview,
                if h.depth > 0 {
                    " (inside a marked call)"
                } else {
                    ""
                }
            )),
            Event::Chunk(c) => chunk_sizes.push(c.len() as u64),
            Event::RefFile(r) => refs.push(format!("{}/{}", r.dir.trim_end_matches('/'), r.path)),
            Event::Sys(c) => {
                let spec = &FUNCS[usize::from(c.func)];
                let ok = c.result == SysResult::Errno(0);
                let f = funcs.entry(spec.name).or_default();
                f.0 += 1;
                f.1 += u64::from(!ok);
                let inputs = Inputs {
                    scalars: c.scalars.clone(),
                    paths: c.paths.clone(),
                };
                let bytes = match &c.data {
                    SysData::Chunks(ids) => ids
                        .iter()
                        .map(|&i| chunk_sizes.get(i as usize).copied().unwrap_or(0))
                        .sum(),
                    SysData::Ref { .. } | SysData::None => {
                        u64::from(syscall::count(spec, &c.out).unwrap_or(0))
                    }
                };
                calls.push(CallInfo {
                    call: syscall::describe(c.func, &inputs, &fds),
                    result: syscall::result_text(&c.result),
                    bytes,
                });
                // The files it names: by path (relative to the descriptor before it), else by
                // descriptor. `path_symlink`'s first path is the link's target, not a file.
                let mut named: Vec<String> = Vec::new();
                if spec.args.contains(&Arg::Path) {
                    for (pi, path) in c.paths.iter().enumerate() {
                        if spec.name == "path_symlink" && pi == 0 {
                            continue;
                        }
                        let fd = last_fd_before(spec, c, pi).unwrap_or(0) as u32;
                        named.push(fds.join(fd, &path.0));
                    }
                } else {
                    let mut si = 0;
                    for a in spec.args {
                        match a {
                            Arg::Fd => {
                                let fd = c.scalars.get(si).copied().unwrap_or(0) as u32;
                                if let Some(Open::Named(p)) = fds.get(fd)
                                    && !p.is_empty()
                                {
                                    named.push(p.clone());
                                }
                                si += 1;
                            }
                            Arg::Int | Arg::Long => si += 1,
                            _ => {}
                        }
                    }
                }
                for name in named {
                    let file = files.entry(name.clone()).or_insert_with(|| FileInfo {
                        path: name.clone(),
                        ..FileInfo::default()
                    });
                    if !file.functions.iter().any(|f| f == spec.name) {
                        file.functions.push(spec.name.to_string());
                    }
                    if ok && syscall::is_read(c.func) {
                        file.read += bytes;
                    }
                    if ok && spec.args.contains(&Arg::Write) {
                        file.written += bytes;
                    }
                    if matches!(c.data, SysData::Ref { .. }) {
                        file.by_hash = true;
                    }
                }
                if ok {
                    let filled = match &c.data {
                        SysData::Chunks(ids) if !spec.args.contains(&Arg::Write) => {
                            Some(join(&tape.events, ids))
                        }
                        _ => None,
                    };
                    if syscall::is_read(c.func)
                        && matches!(
                            fds.get(c.scalars.first().copied().unwrap_or(0) as u32),
                            Some(Open::Stdin)
                        )
                    {
                        io.stdin += bytes;
                    }
                    fds.apply(c.func, &inputs, &c.out, filled.as_deref());
                }
            }
            _ => {}
        }
    }
    for r in refs {
        files
            .entry(r.clone())
            .or_insert_with(|| FileInfo {
                path: r,
                ..FileInfo::default()
            })
            .by_hash = true;
    }
    TapeInfo {
        tape: path.display().to_string(),
        format: super::format::FORMAT_VERSION,
        created: h.created.clone(),
        devstash: h.devstash.clone(),
        module: h.module.clone(),
        module_hash: if h.module_xxh3.is_empty() {
            format!("blake3 {}", h.module_blake3)
        } else {
            format!("xxh3 {}", h.module_xxh3)
        },
        bytes: tape.file_len as u64,
        events: tape.events.len() as u64,
        argv,
        env,
        exit_code,
        trap,
        io,
        kinds: by_kind
            .into_iter()
            .map(|(kind, (count, bytes))| KindCount {
                kind: match Event::kind_name(kind) {
                    "unknown" => format!("kind {kind} (unknown)"),
                    n => n.to_string(),
                },
                count,
                bytes,
            })
            .collect(),
        sites,
        http,
        wasi: funcs
            .into_iter()
            .map(|(f, (calls, errors))| FuncCount {
                function: f.to_string(),
                calls,
                errors,
            })
            .collect(),
        calls,
        files: files.into_values().collect(),
    }
}

/// The descriptor a call's `path_index`-th path is relative to: the last descriptor before it.
fn last_fd_before(spec: &syscall::Spec, c: &SysRecord, path_index: usize) -> Option<u64> {
    let (mut si, mut pi, mut last) = (0, 0, None);
    for a in spec.args {
        match a {
            Arg::Fd => {
                last = c.scalars.get(si).copied();
                si += 1;
            }
            Arg::Int | Arg::Long => si += 1,
            Arg::Path => {
                if pi == path_index {
                    return last;
                }
                pi += 1;
            }
            _ => {}
        }
    }
    last
}

/// The bytes of chunks `ids` of a tape.
fn join(events: &[Event], ids: &[u32]) -> Vec<u8> {
    let chunks: Vec<&Vec<u8>> = events
        .iter()
        .filter_map(|e| match e {
            Event::Chunk(c) => Some(c),
            _ => None,
        })
        .collect();
    ids.iter()
        .filter_map(|&i| chunks.get(i as usize))
        .flat_map(|c| c.iter().copied())
        .collect()
}

/// Most WASI calls and files the text summary lists.
const SHOWN_CALLS: usize = 40;

/// The summary `devstash inspect TAPE` prints.
pub fn summary(path: &Path, tape: &Tape) -> String {
    let i = info(path, tape);
    let mut s = String::new();
    let _ = writeln!(s, "tape {}", i.tape);
    let _ = writeln!(
        s,
        "  recorded   {} by devstash {} (tape format {})",
        i.created, i.devstash, i.format
    );
    let hash = &i.module_hash[..i.module_hash.len().min(23)];
    let _ = writeln!(s, "  module     {} ({hash})", i.module);
    let _ = writeln!(
        s,
        "  size       {}, {} events",
        human_size(i.bytes),
        i.events
    );
    let _ = writeln!(
        s,
        "  run        {}{}",
        shell_words(&i.argv),
        match i.env.len() {
            0 => String::new(),
            1 => " (1 environment variable)".into(),
            n => format!(" ({n} environment variables)"),
        }
    );
    if !i.env.is_empty() {
        let names: Vec<String> = i
            .env
            .iter()
            .map(|e| {
                if e.redacted {
                    format!("{} (redacted)", e.name)
                } else {
                    e.name.clone()
                }
            })
            .collect();
        let _ = writeln!(s, "  env        {}", names.join(", "));
    }
    if let Some(code) = i.exit_code {
        let _ = write!(s, "  exit code  {code}");
        if let Some(trap) = &i.trap {
            let first = trap.lines().next().unwrap_or_default();
            let _ = write!(s, " ({first})");
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "  io         stdin {}, stdout {}, stderr {}, random {}",
        human_size(i.io.stdin),
        human_size(i.io.stdout),
        human_size(i.io.stderr),
        human_size(i.io.random)
    );
    let _ = writeln!(s, "events by kind:");
    for k in &i.kinds {
        let _ = writeln!(
            s,
            "  {:<18} {:>7}  {:>10}",
            k.kind,
            k.count,
            human_size(k.bytes)
        );
    }
    if !i.sites.is_empty() {
        let _ = writeln!(s, "sites:");
        for site in &i.sites {
            let mut counts = vec![
                format!("{} computed", site.computed),
                format!("{} hit", site.hit),
            ];
            if site.without_value > 0 {
                counts.push(format!("{} without a value", site.without_value));
            }
            if site.nested > 0 {
                counts.push(format!("{} inside other calls", site.nested));
            }
            let ttl = site
                .ttl_secs
                .map(|t| {
                    format!(
                        ", ttl {}",
                        humantime::format_duration(std::time::Duration::from_secs(t))
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {} ({}): {}; value {}{ttl}",
                site.identity,
                site.location,
                counts.join(", "),
                site.value_type
            );
        }
    }
    if !i.http.is_empty() {
        const SHOWN: usize = 16;
        let _ = writeln!(s, "http exchanges:");
        for h in i.http.iter().take(SHOWN) {
            let _ = writeln!(s, "  {h}");
        }
        if i.http.len() > SHOWN {
            let _ = writeln!(s, "  … and {} more", i.http.len() - SHOWN);
        }
    }
    if !i.wasi.is_empty() {
        let list: Vec<String> = i
            .wasi
            .iter()
            .map(|f| match f.errors {
                0 => format!("{} {}", f.function, f.calls),
                e => format!("{} {} ({e} failed)", f.function, f.calls),
            })
            .collect();
        let _ = writeln!(s, "wasi calls: {}", list.join(", "));
    }
    if !i.files.is_empty() {
        let _ = writeln!(s, "files:");
        for f in i.files.iter().take(SHOWN_CALLS) {
            let mut what = vec![f.functions.join(" ")];
            if f.read > 0 {
                what.push(format!("read {}", human_size(f.read)));
            }
            if f.written > 0 {
                what.push(format!("wrote {}", human_size(f.written)));
            }
            if f.by_hash {
                what.push("by hash, not on the tape".into());
            }
            let _ = writeln!(s, "  {}: {}", f.path, what.join("; "));
        }
        if i.files.len() > SHOWN_CALLS {
            let _ = writeln!(
                s,
                "  … and {} more (`--json` lists all)",
                i.files.len() - SHOWN_CALLS
            );
        }
    }
    if !i.calls.is_empty() {
        let _ = writeln!(s, "calls (in order):");
        for c in i.calls.iter().take(SHOWN_CALLS) {
            let _ = writeln!(s, "  {} -> {}", c.call, c.result);
        }
        if i.calls.len() > SHOWN_CALLS {
            let _ = writeln!(
                s,
                "  … and {} more (`--json` lists all)",
                i.calls.len() - SHOWN_CALLS
            );
        }
    }
    s.truncate(s.trim_end().len());
    s
}

/// Arguments joined for display, quoted where they need it.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("{a:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_previews() {
        assert_eq!(args_preview(&[]), "none (0 bytes)");
        assert_eq!(args_preview(&[7]), "1 byte: 07");
        // The Rust SDK's encoding reads back into text.
        assert_eq!(args_preview(&[0x18, 1, 0x0a, 21]), "(21,)");
        assert_eq!(
            args_preview(&[3, b'E', b'U', b'R']),
            "4 bytes: 03 45 55 52 \"EUR\""
        );
        let long = vec![0u8; 40];
        assert!(args_preview(&long).ends_with(" …"));
        // ("EUR", 2.5f64, "a long name"): both strings, not the float's bytes.
        let mut enc = vec![3, b'E', b'U', b'R'];
        enc.extend(2.5f64.to_le_bytes());
        enc.push(11);
        enc.extend(b"a long name");
        let p = args_preview(&enc);
        assert!(p.ends_with(" \"EUR\" \"a long name\""), "{p}");
    }

    #[test]
    fn verify_diffs() {
        let none = BTreeMap::new();
        let a = RunOutput {
            stdout: b"total: 3\nok\n",
            stderr: b"",
            files: &none,
            code: 0,
        };
        assert!(verify_diff(&a, &a).is_none());
        let b = RunOutput {
            stdout: b"total = 3\nok\n",
            stderr: b"",
            files: &none,
            code: 1,
        };
        let d = verify_diff(&a, &b).unwrap();
        assert!(d.contains("--- recorded stdout"), "{d}");
        assert!(d.contains("+++ replayed stdout"), "{d}");
        assert!(d.contains("-total: 3") && d.contains("+total = 3"), "{d}");
        assert!(d.contains("exit code: recorded 0, replayed 1"), "{d}");
        assert!(!d.contains("stderr"), "{d}");

        // Files: what was written to each, by name; one only a side wrote to, against nothing.
        let recorded = BTreeMap::from([("/work/out.txt".to_string(), b"hello\n".to_vec())]);
        let replayed = BTreeMap::from([
            ("/work/out.txt".to_string(), b"HELLO\n".to_vec()),
            ("/work/new.txt".to_string(), b"new\n".to_vec()),
        ]);
        let d = verify_diff(
            &RunOutput {
                stdout: a.stdout,
                stderr: a.stderr,
                files: &recorded,
                code: 0,
            },
            &RunOutput {
                stdout: a.stdout,
                stderr: a.stderr,
                files: &replayed,
                code: 0,
            },
        )
        .unwrap();
        assert!(d.contains("--- recorded writes to /work/out.txt"), "{d}");
        assert!(d.contains("-hello") && d.contains("+HELLO"), "{d}");
        assert!(
            d.contains("+++ replayed writes to /work/new.txt") && d.contains("+new"),
            "{d}"
        );
        assert!(!d.contains("stdout"), "{d}");
    }

    #[test]
    fn inspect_summary() {
        let tape = Tape::decode(&super::super::format::tests::sample_file()).unwrap();
        let s = summary(Path::new("t.tape"), &tape);
        assert!(s.starts_with("tape t.tape\n"), "{s}");
        assert!(
            s.contains("  run        app.wasm --n 3 (1 environment variable)"),
            "{s}"
        );
        assert!(s.contains("exit code  0"), "{s}");
        assert!(s.contains("marked call"), "{s}");
        assert!(s.contains("monotonic clock"), "{s}");
        assert!(
            s.contains("app::fetch (src/main.rs:9): 1 computed, 0 hit; value u64, ttl 1day"),
            "{s}"
        );
        assert!(
            s.contains("stdin 6 B, stdout 0 B, stderr 5 B, random 4 B"),
            "{s}"
        );
        assert!(
            s.contains(
                "http exchanges:\n  GET http://127.0.0.1:8080/x (authorization: <redacted>)"
            ),
            "{s}"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(5), "5 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }
}
