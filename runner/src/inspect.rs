//! `devstash inspect`: an entry, a module's marked sites, or a tape.
//!
//! What is inspected is decided by the file's first bytes (entry magic, tape magic, wasm magic),
//! not by its name; something that is not a file is looked up as an entry name in the cache.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The value type the Python SDK gives its sites: a pickle.
const PYTHON_VALUE_TYPE: &str = "python-pickle";

use anstyle::{AnsiColor, Style};
use anyhow::{Context, Result, anyhow, bail};
use comfy_table::Cell;
use devstash_protocol::{ABI_VERSION, IMPORT_MODULE, SITES_SECTION, SiteRecord, import};
use serde::Serialize;

use crate::engine::read_module;
use crate::flags::{GlobalArgs, InspectArgs};
use crate::home::Home;
use crate::output::{self, count, escape, human_age, human_duration, human_size, table, ttl_text};
use crate::store::Header;
use crate::store::disk::open_regular_path;
use crate::store::listing::{CacheDir, Damage, ENTRY_MAGIC, verify_file};
use crate::store::names::ENTRY_SUFFIX;
use crate::store::sign::Signer;

/// Exit code of `inspect` on an entry that fails verification: the report is printed, and a
/// script can tell the entry is bad without parsing it.
pub const CORRUPT_ENTRY: i32 = 1;

/// How many payload bytes the hex preview shows.
const PREVIEW_BYTES: usize = 256;
/// How many items of a decoded sequence are shown.
const PREVIEW_ITEMS: usize = 16;

/// Runs `devstash inspect`.
pub fn inspect(global: &GlobalArgs, args: &InspectArgs) -> Result<i32> {
    let target = &args.target;
    match std::fs::metadata(target) {
        Ok(meta) if meta.is_dir() => bail!(
            "{} is a directory: pass an entry, a module (.wasm) or a tape",
            target.display()
        ),
        Ok(_) => return inspect_file(global, args, target),
        Err(_) => {}
    }
    let text = target.to_string_lossy();
    if text.contains(['/', std::path::MAIN_SEPARATOR]) {
        bail!(
            "cannot find {}: pass an existing file, or an entry name from `devstash list`",
            target.display()
        );
    }
    let home = Home::open()?;
    let signer = home.signer();
    let (cache, name) = resolve_entry(global, &text, &signer)?;
    cache.entry_file(&name)?;
    report_entry(&name, &cache.path().join(&name), &signer, args.json)
}

/// Opens a file given on the command line for reading, without blocking on a FIFO or a device:
/// only regular files are inspected.
fn open_regular(path: &Path) -> Result<std::fs::File> {
    open_regular_path(path).with_context(|| {
        format!(
            "cannot read {} (pass an entry, a module (.wasm) or a tape)",
            path.display()
        )
    })
}

/// A file given by path: an entry, a tape or a module, told apart by its first bytes.
fn inspect_file(global: &GlobalArgs, args: &InspectArgs, path: &Path) -> Result<i32> {
    let mut head = Vec::new();
    open_regular(path)?
        .take(64)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if head.starts_with(crate::tape::TAPE_MAGIC) {
        return crate::tape::inspect(global, path, args.json);
    }
    let is_module =
        head.starts_with(b"\0asm") || path.extension().is_some_and(|e| e == "wasm" || e == "wat");
    if head.starts_with(ENTRY_MAGIC) || (!is_module && name.ends_with(ENTRY_SUFFIX)) {
        let signer = Home::open()?.signer();
        return report_entry(&name, path, &signer, args.json);
    }
    if is_module || head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'(') {
        return report_module(path, args.json);
    }
    bail!(
        "{} is not a devstash entry, a tape or a WebAssembly module: pass one of those, or an \
         entry name from `devstash list`",
        path.display()
    )
}

/// Finds the entry named `text` (exactly, without its `.stash` suffix, or by a unique prefix)
/// in the cache directory.
fn resolve_entry(global: &GlobalArgs, text: &str, signer: &Signer) -> Result<(CacheDir, String)> {
    let shown = global.cache_dir.display();
    let cache = CacheDir::open(&global.cache_dir, signer)?.ok_or_else(|| {
        anyhow!("no entry {text:?}: there is no cache at {shown} (pass a path, or --cache-dir DIR)")
    })?;
    let names = cache.entry_names()?;
    let exact = [text.to_string(), format!("{text}{ENTRY_SUFFIX}")];
    if let Some(name) = names.iter().find(|n| exact.contains(n)) {
        let name = name.clone();
        return Ok((cache, name));
    }
    let matching: Vec<&String> = names.iter().filter(|n| n.starts_with(text)).collect();
    match matching.as_slice() {
        [one] => {
            let name = (*one).clone();
            Ok((cache, name))
        }
        [] => bail!(
            "no entry in {shown} is named {text:?} or starts with it: `devstash list` shows the \
             entries"
        ),
        many => {
            let shown_names: Vec<&str> = many.iter().take(5).map(|n| n.as_str()).collect();
            let more = if many.len() > 5 { ", …" } else { "" };
            bail!(
                "{text:?} matches {} ({}{more}): give more of the name",
                count(many.len() as u64, "entry", "entries"),
                shown_names.join(", ")
            )
        }
    }
}

/// Prints `label   value` with the label in bold (on a terminal without `NO_COLOR`). Callers
/// escape what came from a guest or a file ([`escape`]).
fn field(label: &str, value: impl std::fmt::Display) -> Result<()> {
    let bold = Style::new().bold();
    output::line(format_args!("{bold}{label:<11}{bold:#}{value}"))
}

/// `text` in `colour` (on a terminal without `NO_COLOR`).
fn painted(text: &str, colour: AnsiColor) -> String {
    let style = Style::new().fg_color(Some(colour.into())).bold();
    format!("{style}{text}{style:#}")
}

/// `devstash inspect ENTRY --json`.
#[derive(Debug, Serialize)]
struct JsonEntry<'a> {
    name: &'a str,
    file: String,
    size: u64,
    verified: bool,
    problem: Option<&'a str>,
    /// The verified header.
    header: Option<&'a Header>,
    /// For an entry that fails verification: its header as written, which may be wrong.
    unverified_header: Option<&'a Header>,
    /// `valid`, `expired` or `no ttl`, judged from the entry's own TTL.
    ttl_status: Option<&'static str>,
    payload_len: u64,
    /// The first bytes of the payload, hex.
    payload_hex: String,
    /// The value, when its type is a simple one that can be decoded without the program.
    decoded: Option<String>,
}

/// Payload bytes read for a preview: the whole value of a small entry (so that a simple type can
/// be decoded), only the start of a large one, whose signature is checked by streaming.
const INSPECT_KEEP: usize = 1 << 20;

/// Reports one entry file; exit code 0, or [`CORRUPT_ENTRY`] when it fails verification. Memory
/// stays bounded whatever the file's size.
fn report_entry(name: &str, path: &Path, signer: &Signer, json: bool) -> Result<i32> {
    let file = open_regular(path)?;
    let size = file.metadata()?.len();
    let mut raw = Vec::new();
    (&file)
        .take(64 << 10)
        .read_to_end(&mut raw)
        .with_context(|| format!("cannot read {}", path.display()))?;
    std::io::Seek::rewind(&mut &file)?;
    let now = SystemTime::now();
    let verified = verify_file(file, size, signer, INSPECT_KEEP);
    let (header, damage, payload): (Option<&Header>, Option<&Damage>, &[u8]) = match &verified {
        Ok(c) => (Some(&c.header), None, &c.head),
        Err(d) => (None, Some(d), unverified_payload(&raw)),
    };
    let shown_header = header.or(damage.and_then(|d| d.unverified.as_deref()));
    // Only a whole value decodes.
    let decoded = shown_header
        .filter(|h| h.payload_len == payload.len() as u64)
        .and_then(|h| decode_value(&h.value_type, payload));
    let code = if damage.is_some() { CORRUPT_ENTRY } else { 0 };

    if json {
        output::json(&JsonEntry {
            name,
            file: path.display().to_string(),
            size,
            verified: header.is_some(),
            problem: damage.map(|d| d.problem.as_str()),
            header,
            unverified_header: damage.and_then(|d| d.unverified.as_deref()),
            ttl_status: header.map(|h| ttl_status(h, now).0),
            payload_len: shown_header.map_or(payload.len() as u64, |h| h.payload_len),
            payload_hex: payload[..payload.len().min(PREVIEW_BYTES)]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            decoded: if header.is_some() { decoded } else { None },
        })?;
        return Ok(code);
    }

    field("entry", name)?;
    field("file", format!("{} ({})", path.display(), human_size(size)))?;
    match damage {
        None => field(
            "signature",
            format!(
                "{} (keyed blake3 over header and payload, by this user's key)",
                painted("ok", AnsiColor::Green)
            ),
        )?,
        Some(d) => {
            field(
                "signature",
                format!(
                    "{}: {}",
                    painted("CORRUPT", AnsiColor::Red),
                    escape(&d.problem)
                ),
            )?;
            field(
                "",
                "a run treats this entry as missing and recomputes it; `devstash clear \
                 --corrupt` removes it",
            )?;
            match &d.unverified {
                Some(_) => output::line(format_args!(
                    "\nthe header as written (unverified: it may be wrong):"
                ))?,
                None if d.has_magic => output::line(format_args!("\nthe header cannot be read"))?,
                None => output::line(format_args!(
                    "\nthis file does not start like a devstash entry"
                ))?,
            }
        }
    }
    if let Some(h) = shown_header {
        field("site", escape(&h.site))?;
        field("location", escape(&h.location))?;
        // The Python SDK's values are pickles; the Rust SDK's, postcard.
        let python = h.value_type == PYTHON_VALUE_TYPE;
        let marker = match (h.kind.as_str(), python) {
            ("call", false) => " (stash!)",
            ("fn", false) => " (#[stashed])",
            ("call", true) => " (# @devstash)",
            ("fn", true) => " (@devstash.stash)",
            _ => "",
        };
        field("kind", format!("{}{marker}", escape(&h.kind)))?;
        field("value type", escape(&h.value_type))?;
        field("key", escape(&h.key))?;
        let created = h.created();
        let ago = now.duration_since(created).unwrap_or_default();
        field(
            "created",
            format!(
                "{} ({} ago)",
                humantime::format_rfc3339_seconds(created),
                human_age(ago)
            ),
        )?;
        field("ttl", ttl_status(h, now).1)?;
        field(
            "compute",
            human_duration(Duration::from_nanos(h.compute_ns)),
        )?;
        field(
            "args",
            escape(h.args_preview.as_deref().unwrap_or("(no preview stored)")),
        )?;
        field(
            "written by",
            match &h.writer {
                Some(w) => format!("module {} (XXH3-128 of the .wasm file)", escape(w)),
                None => "(not recorded)".into(),
            },
        )?;
        field(
            "payload",
            format!(
                "{} ({})",
                human_size(h.payload_len),
                if python { "pickle" } else { "postcard" }
            ),
        )?;
    }
    if let Some(value) = &decoded {
        let note = if header.is_some() {
            ""
        } else {
            " (unverified)"
        };
        field("value", format!("{}{note}", escape(value)))?;
    }
    if damage.is_some() && payload.is_empty() {
        return Ok(code);
    }
    let runs = text_runs(payload);
    if !runs.is_empty() {
        field("text", runs.join("  "))?;
    }
    let mut lines = hex_dump(payload).into_iter();
    field("bytes", lines.next().unwrap_or_else(|| "(empty)".into()))?;
    for line in lines {
        field("", line)?;
    }
    Ok(code)
}

/// The bytes after the header line of a damaged entry (the whole file when there is no header
/// line to skip).
fn unverified_payload(raw: &[u8]) -> &[u8] {
    let mut rest = raw;
    for _ in 0..2 {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => rest = &rest[i + 1..],
            None => return raw,
        }
    }
    rest
}

/// The entry's standing under its own TTL: a word for scripts and a line for people.
fn ttl_status(h: &Header, now: SystemTime) -> (&'static str, String) {
    let Some(secs) = h.ttl_secs else {
        return ("no ttl", "none: kept until cleared".into());
    };
    // A TTL so long that it ends past what the clock can show never ends.
    let Some(expires) = h.created().checked_add(Duration::from_secs(secs)) else {
        return ("valid", format!("{}: valid for ever", ttl_text(secs)));
    };
    match expires.duration_since(now) {
        Ok(left) if !h.is_expired(Some(secs), now) => (
            "valid",
            format!("{}: valid for {} more", ttl_text(secs), human_age(left)),
        ),
        _ => {
            let past = now.duration_since(expires).unwrap_or_default();
            (
                "expired",
                format!(
                    "{}: {} {} ago (a run recomputes it)",
                    ttl_text(secs),
                    painted("expired", AnsiColor::Yellow),
                    human_age(past)
                ),
            )
        }
    }
}

/// `hexdump -C`-style lines of the first [`PREVIEW_BYTES`] bytes.
fn hex_dump(bytes: &[u8]) -> Vec<String> {
    let shown = &bytes[..bytes.len().min(PREVIEW_BYTES)];
    let mut lines: Vec<String> = shown
        .chunks(16)
        .enumerate()
        .map(|(i, row)| {
            let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
            let ascii: String = row
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:08x}  {:<47}  |{ascii}|", i * 16, hex.join(" "))
        })
        .collect();
    if bytes.len() > shown.len() {
        lines.push(format!(
            "… {} more",
            human_size((bytes.len() - shown.len()) as u64)
        ));
    }
    lines
}

/// Readable UTF-8 runs of at least three characters in the payload (like `strings`), quoted;
/// at most five, each cut at 60 characters.
fn text_runs(bytes: &[u8]) -> Vec<String> {
    let mut runs = Vec::new();
    for chunk in bytes.utf8_chunks() {
        for run in chunk.valid().split(|c: char| c.is_control()) {
            if run.chars().count() >= 3 && run.chars().any(|c| c.is_alphanumeric()) {
                let cut: String = run.chars().take(60).collect();
                let more = if cut.len() < run.len() { "…" } else { "" };
                runs.push(format!("{cut:?}{more}"));
            }
        }
    }
    runs.truncate(5);
    runs
}

/// Decodes a payload whose type is a simple one (numbers, bool, char, strings, and `Vec`,
/// `Option`, arrays and tuples of those), which postcard lays out without a schema. Anything
/// else, or bytes that do not decode exactly, give `None`.
fn decode_value(type_name: &str, payload: &[u8]) -> Option<String> {
    let ty = simplify_type(type_name);
    let mut input = payload;
    let value = take_value(&ty, &mut input, 0)?;
    input.is_empty().then_some(value)
}

/// `alloc::vec::Vec<alloc::string::String>` -> `Vec<String>`.
fn simplify_type(type_name: &str) -> String {
    let mut ty = type_name.replace(' ', "");
    for prefix in [
        "alloc::vec::",
        "alloc::string::",
        "core::option::",
        "std::vec::",
        "std::string::",
        "std::option::",
    ] {
        ty = ty.replace(prefix, "");
    }
    ty
}

/// Decodes one value of type `ty` from the front of `input`.
fn take_value(ty: &str, input: &mut &[u8], depth: usize) -> Option<String> {
    fn take<T: serde::de::DeserializeOwned + std::fmt::Debug>(input: &mut &[u8]) -> Option<String> {
        let (value, rest) = postcard::take_from_bytes::<T>(input).ok()?;
        *input = rest;
        Some(format!("{value:?}"))
    }
    if depth > 8 {
        return None;
    }
    Some(match ty {
        "()" => "()".into(),
        "bool" => take::<bool>(input)?,
        "u8" => take::<u8>(input)?,
        "u16" => take::<u16>(input)?,
        "u32" => take::<u32>(input)?,
        // usize is a varint like u64 whatever the guest's pointer width.
        "u64" | "usize" => take::<u64>(input)?,
        "u128" => take::<u128>(input)?,
        "i8" => take::<i8>(input)?,
        "i16" => take::<i16>(input)?,
        "i32" => take::<i32>(input)?,
        "i64" | "isize" => take::<i64>(input)?,
        "i128" => take::<i128>(input)?,
        "f32" => take::<f32>(input)?,
        "f64" => take::<f64>(input)?,
        "char" => take::<char>(input)?,
        "String" | "&str" => take::<String>(input)?,
        _ => {
            if let Some(inner) = ty.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>')) {
                let (len, rest) = postcard::take_from_bytes::<u64>(input).ok()?;
                *input = rest;
                // Each item takes at least a byte: a length beyond the input is not a Vec.
                if len > input.len() as u64 {
                    return None;
                }
                return seq(inner, len as usize, input, depth, "[", "]");
            }
            if let Some(inner) = ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
                let (&tag, rest) = input.split_first()?;
                *input = rest;
                return match tag {
                    0 => Some("None".into()),
                    1 => Some(format!("Some({})", take_value(inner, input, depth + 1)?)),
                    _ => None,
                };
            }
            if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                let (item, n) = inner.rsplit_once(';')?;
                let n: usize = n.parse().ok()?;
                if n > input.len() {
                    return None;
                }
                return seq(item, n, input, depth, "[", "]");
            }
            if let Some(inner) = ty.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
                let parts = split_top_level(inner);
                let mut items = Vec::with_capacity(parts.len());
                for part in parts {
                    items.push(take_value(part, input, depth + 1)?);
                }
                let trailing = if items.len() == 1 { "," } else { "" };
                return Some(format!("({}{trailing})", items.join(", ")));
            }
            return None;
        }
    })
}

/// `n` values of `item`, shown as a list cut after [`PREVIEW_ITEMS`] (all are decoded, so that
/// leftover bytes are still noticed).
fn seq(
    item: &str,
    n: usize,
    input: &mut &[u8],
    depth: usize,
    open: &str,
    close: &str,
) -> Option<String> {
    let mut shown = Vec::new();
    for i in 0..n {
        let v = take_value(item, input, depth + 1)?;
        if i < PREVIEW_ITEMS {
            shown.push(v);
        }
    }
    let more = if n > PREVIEW_ITEMS {
        format!(", … ({n} items)")
    } else {
        String::new()
    };
    Some(format!("{open}{}{more}{close}", shown.join(", ")))
}

/// Splits `A,Vec<B>,(C,D)` at its top-level commas.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() {
        parts.push(&s[start..]);
    }
    parts
}

/// One marked site of a module, as `inspect --json` shows it.
#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct JsonSite {
    site: String,
    file: String,
    line: u32,
    ttl: Option<String>,
    kind: String,
    abi: u32,
    fingerprint: String,
}

/// `devstash inspect MODULE --json`.
#[derive(Debug, Serialize)]
struct JsonModule {
    module: String,
    /// XXH3-128 of the module file: what entries name as their writer, and tapes as their
    /// module.
    hash: String,
    size: u64,
    /// ABI versions of the SDKs that marked the sites.
    abi_versions: Vec<u32>,
    /// Whether this runner speaks every one of them.
    abi_supported: bool,
    sites: Vec<JsonSite>,
    /// Lines of the sites section that could not be read.
    unreadable_site_records: usize,
    /// Imported functions by import module, then by capability.
    imports: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// `devstash` imports this runner does not provide.
    unknown_devstash_imports: Vec<String>,
}

/// What the sites section of a module holds.
#[derive(Debug, Default, PartialEq, Eq)]
struct Sites {
    records: Vec<SiteRecord>,
    /// Lines that are not site records; their ABI versions, when they name one.
    unreadable: usize,
    abi_versions: Vec<u32>,
}

/// Parses the [`SITES_SECTION`] custom sections: one JSON [`SiteRecord`] per line; the NUL bytes
/// and blank lines the linker may leave between records are skipped.
fn parse_sites(sections: &[Vec<u8>]) -> Sites {
    let mut sites = Sites::default();
    for data in sections {
        for line in data.split(|&b| b == b'\n') {
            let line = line
                .iter()
                .position(|&b| b != 0 && !b.is_ascii_whitespace())
                .map_or(&[][..], |start| &line[start..]);
            let line = line.trim_ascii_end();
            let line = line
                .iter()
                .rposition(|&b| b != 0)
                .map_or(&[][..], |end| &line[..=end]);
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<SiteRecord>(line) {
                Ok(r) => {
                    sites.abi_versions.push(r.abi);
                    if !sites.records.contains(&r) {
                        sites.records.push(r);
                    }
                }
                Err(_) => {
                    sites.unreadable += 1;
                    // A newer SDK may write records of another shape; its version still tells
                    // the user why.
                    if let Some(abi) = serde_json::from_slice::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v.get("abi")?.as_u64())
                    {
                        sites.abi_versions.push(abi as u32);
                    }
                }
            }
        }
    }
    sites.abi_versions.sort_unstable();
    sites.abi_versions.dedup();
    sites
        .records
        .sort_by(|a, b| (&a.file, a.line, &a.callee).cmp(&(&b.file, b.line, &b.callee)));
    sites
}

/// What a WASI preview 1 function gives the guest, for grouping imports by capability.
fn wasi_capability(name: &str) -> &'static str {
    match name {
        n if n.starts_with("args_") => "arguments",
        n if n.starts_with("environ_") => "environment",
        n if n.starts_with("clock_") => "clocks",
        "random_get" => "randomness",
        n if n.starts_with("fd_prestat") => "granted directories",
        n if n.starts_with("path_") => "files in granted directories",
        n if n.starts_with("fd_") => "open files and stdio",
        "poll_oneoff" => "waiting (sleep, poll)",
        "proc_exit" | "proc_raise" => "process exit",
        "sched_yield" => "scheduling",
        n if n.starts_with("sock_") => "sockets",
        _ => "other",
    }
}

/// Reports the marked sites compiled into a module and the capabilities it imports.
fn report_module(path: &Path, json: bool) -> Result<i32> {
    let file = read_module(path)?;
    let shown = path.display();
    let bytes = file.read_whole()?;
    let binary = if bytes.starts_with(b"\0asm") {
        bytes
    } else {
        wat::parse_bytes(&bytes)
            .map_err(|e| anyhow!("{shown} is not valid WebAssembly text: {e}"))?
            .into_owned()
    };
    let size = binary.len() as u64;
    let mut module = walrus::ModuleConfig::new()
        .generate_producers_section(false)
        .parse(&binary)
        .map_err(|e| anyhow!("{shown} is not a valid WebAssembly module: {e:#}"))?;
    let mut sections = Vec::new();
    while let Some(section) = module.customs.remove_raw(SITES_SECTION) {
        sections.push(section.data);
    }
    let sites = parse_sites(&sections);

    let mut imports: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut unknown_devstash = Vec::new();
    for imp in module.imports.iter() {
        let group = match imp.module.as_str() {
            "wasi_snapshot_preview1" => wasi_capability(&imp.name),
            m if m == IMPORT_MODULE => {
                if !import::ALL.contains(&imp.name.as_str()) {
                    unknown_devstash.push(imp.name.clone());
                }
                "devstash"
            }
            _ => "not provided by devstash",
        };
        imports
            .entry(imp.module.clone())
            .or_default()
            .entry(group.to_string())
            .or_default()
            .push(imp.name.clone());
    }
    let abi_supported = sites.abi_versions.iter().all(|&v| v == ABI_VERSION);

    if json {
        let mut site_rows: Vec<JsonSite> = sites
            .records
            .iter()
            .map(|r| JsonSite {
                site: format!("{}::{}", r.module, r.callee),
                file: r.file.clone(),
                line: r.line,
                ttl: r.ttl.clone(),
                kind: r.kind.clone(),
                abi: r.abi,
                fingerprint: r.fingerprint.clone(),
            })
            .collect();
        site_rows.sort();
        output::json(&JsonModule {
            module: shown.to_string(),
            hash: format!("{:032x}", file.hash),
            size,
            abi_versions: sites.abi_versions.clone(),
            abi_supported,
            sites: site_rows,
            unreadable_site_records: sites.unreadable,
            imports,
            unknown_devstash_imports: unknown_devstash,
        })?;
        return Ok(0);
    }

    field("module", format!("{shown} ({})", human_size(size)))?;
    field("hash", format!("{:032x} (XXH3-128 of the file)", file.hash))?;
    if sites.records.is_empty() && sites.unreadable == 0 {
        field(
            "sites",
            format!(
                "no marked sites: the module has no `{SITES_SECTION}` records (mark calls with \
                 `devstash::stash!` or `#[devstash::stashed]`)"
            ),
        )?;
    } else {
        field(
            "sites",
            format!(
                "{} (devstash ABI {})",
                count(sites.records.len() as u64, "marked site", "marked sites"),
                sites
                    .abi_versions
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )?;
    }
    if !abi_supported {
        let theirs: Vec<String> = sites
            .abi_versions
            .iter()
            .filter(|&&v| v != ABI_VERSION)
            .map(u32::to_string)
            .collect();
        output::line(format_args!(
            "{}: this module was built with a devstash SDK that speaks ABI version {}, and this \
             runner speaks version {ABI_VERSION}: `devstash run` will refuse it. Rebuild it \
             against a matching `devstash` crate, or use a matching runner.",
            painted("warning", AnsiColor::Yellow),
            theirs.join(", ")
        ))?;
    }
    if sites.unreadable > 0 {
        output::line(format_args!(
            "{}: {} of the sites section could not be read",
            painted("warning", AnsiColor::Yellow),
            count(sites.unreadable as u64, "record", "records")
        ))?;
    }
    if !sites.records.is_empty() {
        let mut t = table(&["SITE", "LOCATION", "TTL", "KIND", "FINGERPRINT"]);
        for r in &sites.records {
            t.add_row(vec![
                Cell::new(escape(&format!("{}::{}", r.module, r.callee))),
                Cell::new(escape(&format!("{}:{}", r.file, r.line))),
                Cell::new(escape(r.ttl.as_deref().unwrap_or("-"))),
                Cell::new(escape(&r.kind)),
                Cell::new(escape(r.fingerprint.get(..12).unwrap_or(&r.fingerprint))),
            ]);
        }
        output::line(format_args!("{t}"))?;
    }

    if imports.is_empty() {
        field("imports", "none")?;
    } else {
        field("imports", "what the module asks of its host")?;
    }
    for (module_name, groups) in &imports {
        let names = |group: &Vec<String>| {
            let mut sorted = group.clone();
            sorted.sort();
            escape(&sorted.join(", ")).into_owned()
        };
        if module_name == "wasi_snapshot_preview1" {
            let total: usize = groups.values().map(Vec::len).sum();
            output::line(format_args!(
                "  WASI preview 1 ({}), by capability:",
                count(total as u64, "function", "functions")
            ))?;
            for (group, group_names) in groups {
                output::line(format_args!("    {group:<30}{}", names(group_names)))?;
            }
        } else {
            // devstash's own imports, or a module devstash does not provide: one line each.
            for (group, group_names) in groups {
                let note = if group == module_name {
                    String::new()
                } else {
                    format!(" ({group})")
                };
                output::line(format_args!(
                    "  {}{}: {}",
                    escape(module_name),
                    escape(&note),
                    names(group_names)
                ))?;
            }
        }
    }
    if !unknown_devstash.is_empty() {
        output::line(format_args!(
            "{}: imports devstash::{}, which this runner does not know: it was built with a newer \
             devstash SDK; update devstash",
            painted("warning", AnsiColor::Yellow),
            escape(&unknown_devstash.join(", devstash::"))
        ))?;
    }
    if imports
        .keys()
        .any(|m| m != "wasi_snapshot_preview1" && m != IMPORT_MODULE)
    {
        output::line(format_args!(
            "{}: the module imports functions devstash does not provide; `devstash run` will \
             refuse it",
            painted("warning", AnsiColor::Yellow)
        ))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc<T: serde::Serialize>(v: &T) -> Vec<u8> {
        postcard::to_allocvec(v).unwrap()
    }

    #[test]
    fn decodes_simple_values_exactly() {
        assert_eq!(decode_value("u64", &enc(&8u64)).as_deref(), Some("8"));
        assert_eq!(decode_value("i64", &enc(&-30i64)).as_deref(), Some("-30"));
        assert_eq!(
            decode_value("alloc::string::String", &enc(&"hi")).as_deref(),
            Some("\"hi\"")
        );
        assert_eq!(
            decode_value("alloc::vec::Vec<f64>", &enc(&vec![3.0f64, 6.0])).as_deref(),
            Some("[3.0, 6.0]")
        );
        assert_eq!(
            decode_value("core::option::Option<u8>", &enc(&Some(7u8))).as_deref(),
            Some("Some(7)")
        );
        assert_eq!(
            decode_value("(u8, alloc::string::String)", &enc(&(1u8, "a"))).as_deref(),
            Some("(1, \"a\")")
        );
        assert_eq!(
            decode_value("[u8; 3]", &enc(&[1u8, 2, 3])).as_deref(),
            Some("[1, 2, 3]")
        );
        let long: Vec<u32> = (0..40).collect();
        let shown = decode_value("Vec<u32>", &enc(&long)).unwrap();
        assert!(shown.ends_with(", … (40 items)]"), "{shown}");
        // Leftover bytes, a struct, or a length past the end decode to nothing.
        assert_eq!(decode_value("u8", &[1, 2]), None);
        assert_eq!(decode_value("probe::Stats", &[1]), None);
        assert_eq!(decode_value("Vec<u8>", &[200, 1]), None);
        assert_eq!(decode_value("bool", &[]), None);
    }

    #[test]
    fn site_records_skip_padding_and_count_the_unreadable() {
        let good = br#"{"abi":1,"module":"app","callee":"f","file":"src/main.rs","line":3,"ttl":"60s","kind":"call","fingerprint":"ab"}"#;
        let newer = br#"{"abi":2,"shape":"different"}"#;
        let mut section = Vec::new();
        section.extend_from_slice(good);
        section.extend_from_slice(b"\n\0\0\0\n\n");
        section.extend_from_slice(good);
        section.extend_from_slice(b"\n");
        section.extend_from_slice(newer);
        section.extend_from_slice(b"\n\0");
        let sites = parse_sites(&[section]);
        assert_eq!(sites.records.len(), 1, "duplicates are shown once");
        assert_eq!(sites.records[0].ttl.as_deref(), Some("60s"));
        assert_eq!(sites.unreadable, 1);
        assert_eq!(sites.abi_versions, [1, 2]);
        assert_eq!(parse_sites(&[]), Sites::default());
    }

    #[test]
    fn previews() {
        let dump = hex_dump(b"\x02hi");
        assert_eq!(dump.len(), 1);
        assert!(dump[0].starts_with("00000000  02 68 69"), "{}", dump[0]);
        assert!(dump[0].ends_with("|.hi|"), "{}", dump[0]);
        assert_eq!(hex_dump(&[0; 300]).last().unwrap(), "… 44 B more");
        assert_eq!(
            text_runs(b"\x05hello\x00ab\x01label"),
            ["\"hello\"", "\"label\""]
        );
        assert_eq!(wasi_capability("fd_write"), "open files and stdio");
        assert_eq!(wasi_capability("fd_prestat_get"), "granted directories");
        assert_eq!(wasi_capability("path_open"), "files in granted directories");
    }
}
