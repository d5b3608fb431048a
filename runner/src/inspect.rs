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
use crate::store::disk::{STREAM_OVER, open_regular_path};
use crate::store::entry::unverified_header;
use crate::store::listing::{CacheDir, Damage, ENTRY_MAGIC, verify_file};
use crate::store::names::ENTRY_SUFFIX;
use crate::store::sign::Signer;
use crate::store::stream::Stream;
use crate::store::{Header, ReadError};

/// Exit code of `inspect` on an entry that fails verification: the report is printed, and a
/// script can tell the entry is bad without parsing it.
pub const CORRUPT_ENTRY: i32 = 1;

/// How many payload bytes the hex preview shows.
const PREVIEW_BYTES: usize = 256;
/// How many it shows under a value shown readably.
const READABLE_PREVIEW_BYTES: usize = 64;
/// How many items of a decoded sequence are shown.
const PREVIEW_ITEMS: usize = 16;
/// How many characters of a decoded string are shown.
const SHOWN_CHARS: usize = 200;
/// Longest decoded value shown.
const SHOWN_VALUE: usize = 1000;

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
    /// The value, when its type is a simple one that can be decoded without the program (a
    /// Python value: as Python's `repr` would show it).
    decoded: Option<String>,
    /// Whether `decoded` shows only the value's start: a value larger than inspect keeps
    /// (1 MiB), decoded from its first bytes (a sequence with its first items and its full
    /// count). The signature (`verified`) covers the whole value all the same.
    decoded_partial: bool,
    /// A stored HTTP response: its status, headers and body.
    http: Option<JsonHttp>,
}

/// Payload bytes kept from the start of a value verified by streaming (a file larger than
/// [`STREAM_OVER`]): its start is decoded from them. A smaller entry's value is kept whole.
const KEEP_HEAD: usize = 1 << 20;
/// Payload bytes kept from the end of such a value: what a pickle writes after its one large
/// buffer (a numpy array's dtype and shape).
const KEEP_TAIL: usize = 64 << 10;

/// What `inspect` read of an entry's payload: all of it, or its two ends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Payload {
    /// The payload's first bytes (all of it, when `len` says so).
    head: Vec<u8>,
    /// Its last bytes, after `head` (empty when `head` is all of it).
    tail: Vec<u8>,
    /// The payload's length, as the header says.
    len: u64,
}

impl Payload {
    /// A payload read whole.
    fn whole_of(bytes: Vec<u8>) -> Payload {
        let len = bytes.len() as u64;
        Payload {
            head: bytes,
            tail: Vec::new(),
            len,
        }
    }

    fn whole(&self) -> bool {
        self.head.len() as u64 == self.len
    }
}

/// Verifies the entry in `file` (`size` bytes, starting with `raw`) with bounded memory,
/// whatever its size: every byte goes through the signature, and only the payload's two ends
/// are kept (all of it for a small entry).
fn check_entry(
    file: std::fs::File,
    size: u64,
    raw: &[u8],
    signer: &Signer,
) -> Result<(Header, Payload), Damage> {
    if size <= STREAM_OVER {
        let c = verify_file(file, size, signer, usize::MAX)?;
        return Ok((c.header, Payload::whole_of(c.head)));
    }
    let damage = |problem: String| Damage {
        problem,
        has_magic: raw.starts_with(ENTRY_MAGIC),
        unverified: unverified_header(raw).map(Box::new),
    };
    let (header, mut stream) = Stream::open(file, size, signer).map_err(damage)?;
    let w = stream
        .read_windows(KEEP_HEAD, KEEP_TAIL)
        .map_err(|e| match e {
            ReadError::Corrupt(why) => damage(why),
            ReadError::OutOfRange => damage("cannot read the payload in order".into()),
        })?;
    Ok((
        header,
        Payload {
            head: w.head,
            tail: w.tail,
            len: w.len,
        },
    ))
}

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
    let verified = check_entry(file, size, &raw, signer);
    let unverified: Payload;
    let (header, damage, payload): (Option<&Header>, Option<&Damage>, &Payload) = match &verified {
        Ok((h, p)) => (Some(h), None, p),
        Err(d) => {
            let head = unverified_payload(&raw).to_vec();
            let len = d
                .unverified
                .as_ref()
                .map_or(head.len() as u64, |h| h.payload_len);
            unverified = Payload {
                head,
                tail: Vec::new(),
                len,
            };
            (None, Some(d), &unverified)
        }
    };
    let shown_header = header.or(damage.and_then(|d| d.unverified.as_deref()));
    let whole = payload.whole();
    // A value read in part decodes as far as its start allows; a response shows as much of its
    // body as was read.
    let decoded = shown_header.and_then(|h| decode_value(&h.value_type, payload));
    let http = shown_header
        .filter(|h| h.value_type == HTTP_VALUE_TYPE && h.site.starts_with(crate::net::SITE_PREFIX))
        .and_then(|_| http_view(&payload.head, whole));
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
            payload_len: payload.len,
            payload_hex: payload.head[..payload.head.len().min(PREVIEW_BYTES)]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            decoded_partial: header.is_some() && decoded.as_ref().is_some_and(|d| d.partial),
            decoded: if header.is_some() {
                decoded.map(|d| d.text)
            } else {
                None
            },
            http: http.as_ref().filter(|_| header.is_some()).map(|v| {
                let kind = v.kind();
                JsonHttp {
                    status: v.status,
                    headers: v.headers.clone(),
                    body_len: v.body_len,
                    body_kind: kind,
                    body_preview: v.body_lines(kind),
                }
            }),
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
    let note = if header.is_some() {
        ""
    } else {
        " (unverified)"
    };
    if let Some(value) = &decoded {
        field("value", format!("{}{note}", escape(&value.text)))?;
        if value.partial {
            field(
                "",
                format!(
                    "(its start, decoded from the first {} of {})",
                    human_size(payload.head.len() as u64),
                    human_size(payload.len)
                ),
            )?;
        }
    } else if let Some(v) = &http {
        report_http(v, note)?;
    } else if let Some(why) = shown_header
        // A damaged entry's payload may be cut short: its report says so already.
        .filter(|_| whole || damage.is_none())
        .and_then(|h| undecoded_note(&h.value_type, whole))
    {
        field("value", why)?;
    }
    if damage.is_some() && payload.head.is_empty() {
        return Ok(code);
    }
    let runs = text_runs(&payload.head);
    // The text of a value shown above would only repeat it.
    if !runs.is_empty() && decoded.is_none() && http.is_none() {
        field("text", runs.join("  "))?;
    }
    // Under a value shown readably, the first bytes are enough.
    let shown_bytes = if decoded.is_some() || http.is_some() {
        READABLE_PREVIEW_BYTES
    } else {
        PREVIEW_BYTES
    };
    let mut lines = hex_dump(&payload.head, shown_bytes, payload.len).into_iter();
    field("bytes", lines.next().unwrap_or_else(|| "(empty)".into()))?;
    for line in lines {
        field("", line)?;
    }
    Ok(code)
}

/// The status, headers and body of a stored response.
fn report_http(v: &HttpView<'_>, note: &str) -> Result<()> {
    field("status", format!("{}{note}", v.status))?;
    if v.headers.is_empty() {
        field("headers", "none")?;
    }
    for (i, (name, value)) in v.headers.iter().take(SHOWN_HEADERS).enumerate() {
        let label = if i == 0 { "headers" } else { "" };
        field(
            label,
            format!("{}: {}", shown_line(name), shown_line(value)),
        )?;
    }
    if v.headers.len() > SHOWN_HEADERS {
        field("", format!("… {} more", v.headers.len() - SHOWN_HEADERS))?;
    }
    let kind = v.kind();
    let what = match kind {
        BodyKind::Json => "JSON".to_string(),
        BodyKind::Text => "text".to_string(),
        BodyKind::Binary => format!(
            "binary{}; the first {} in hex",
            v.content_type()
                .map(|t| format!(" ({})", shown_line(t)))
                .unwrap_or_default(),
            human_size(v.body_len.min(SHOWN_BINARY_BYTES as u64))
        ),
    };
    if v.body_len == 0 {
        return field("body", "empty");
    }
    field(
        "body",
        format!(
            "{} ({}), {what}:",
            count(v.body_len, "byte", "bytes"),
            human_size(v.body_len)
        ),
    )?;
    for line in v.body_lines(kind) {
        field("", line)?;
    }
    Ok(())
}

/// Why a value is shown as bytes only, when there is something to say: a type of the program's
/// own (whose fields an entry does not record), a pickle that does not read back, a value read
/// only in part whose start does not decode.
fn undecoded_note(value_type: &str, whole: bool) -> Option<String> {
    if value_type == PYTHON_VALUE_TYPE && whole {
        return Some(
            "(not decoded: a pickle inspect does not follow (out-of-band buffers, or opcodes \
             CPython does not write); its bytes are shown)"
                .into(),
        );
    }
    if value_type == HTTP_VALUE_TYPE {
        return Some("(not decoded: not a stored response this devstash reads)".into());
    }
    if let Some(ty) = program_type(value_type) {
        return Some(format!(
            "(not decoded: {} is a struct or enum of the program, and an entry does not record \
             its fields, so its bytes are shown)",
            escape(&ty)
        ));
    }
    if !whole {
        return Some(
            "(not decoded: the value is larger than inspect reads, and its start alone does not \
             decode; its first bytes are shown)"
                .into(),
        );
    }
    None
}

/// The first type in a Rust type name that is not the standard library's: `probe::Stats` in
/// `alloc::vec::Vec<probe::Stats>`.
fn program_type(value_type: &str) -> Option<String> {
    value_type
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .find(|part| {
            part.contains("::")
                && !["core::", "alloc::", "std::"]
                    .iter()
                    .any(|p| part.starts_with(p))
        })
        .map(str::to_string)
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

/// `hexdump -C`-style lines of the first `limit` bytes of `bytes`, the start of `total` bytes.
fn hex_dump(bytes: &[u8], limit: usize, total: u64) -> Vec<String> {
    let shown = &bytes[..bytes.len().min(limit)];
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
    let total = total.max(bytes.len() as u64);
    if total > shown.len() as u64 {
        lines.push(format!("… {} more", human_size(total - shown.len() as u64)));
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

/// A value decoded for showing.
#[derive(Debug, Clone, PartialEq)]
struct Decoded {
    text: String,
    /// Only the value's start was read: `text` shows as much as it holds (a sequence with its
    /// first items and its full count, a string with its length).
    partial: bool,
}

/// What a decoded value shows where its input ran out.
const CUT: &str = "…";

/// Decodes a payload whose type is a simple one (numbers, bool, char, strings, and `Vec`,
/// `Option`, arrays and tuples of those), which postcard lays out without a schema, or a
/// pickle. A whole payload must decode exactly; one read in part decodes as far as its start
/// allows. Anything else, or bytes that do not decode, give `None`.
fn decode_value(type_name: &str, payload: &Payload) -> Option<Decoded> {
    let partial = !payload.whole();
    if payload.head.len() as u64 > payload.len {
        return None;
    }
    let mut text = if type_name == PYTHON_VALUE_TYPE {
        let (text, cut) = pickle::repr(&payload.head, &payload.tail, payload.len)?;
        // A pickle read in part shows only when its one large buffer was what was left out.
        if partial && !cut {
            return None;
        }
        text
    } else {
        let ty = simplify_type(type_name);
        let mut d = Postcard {
            input: &payload.head,
            partial,
            ended: false,
        };
        let value = take_value(&ty, &mut d, 0)?;
        if (!partial && !d.input.is_empty()) || value == CUT {
            return None;
        }
        value
    };
    if let Some((cut, _)) = text.char_indices().nth(SHOWN_VALUE) {
        text.truncate(cut);
        text.push('…');
    }
    Some(Decoded { text, partial })
}

/// `alloc::vec::Vec<alloc::string::String>` -> `Vec<String>`.
fn simplify_type(type_name: &str) -> String {
    let mut ty = type_name.replace(' ', "");
    for prefix in [
        "alloc::vec::",
        "alloc::string::",
        "alloc::boxed::",
        "alloc::rc::",
        "alloc::sync::",
        "alloc::borrow::",
        "alloc::collections::btree::map::",
        "alloc::collections::btree::set::",
        "alloc::collections::vec_deque::",
        "core::option::",
        "std::vec::",
        "std::string::",
        "std::option::",
        "std::collections::hash::map::",
        "std::collections::hash::set::",
        "std::hash::random::",
        "std::path::",
        "serde_bytes::bytebuf::",
    ] {
        ty = ty.replace(prefix, "");
    }
    ty
}

/// Postcard input being decoded: all of a value, or only its start.
struct Postcard<'a> {
    input: &'a [u8],
    /// The input is only the value's start: running out of it ends what is shown instead of
    /// failing, and a long sequence shows its first items and its count without reading on.
    partial: bool,
    /// What is shown has ended (the input ran out, or a sequence was left unread): every value
    /// after this shows as [`CUT`].
    ended: bool,
}

impl Postcard<'_> {
    /// Takes a `T` from the front. `None`: bytes that do not decode; `Some(None)`: a partial
    /// input ran out (and what is shown has ended).
    fn take<T: serde::de::DeserializeOwned>(&mut self) -> Option<Option<T>> {
        match postcard::take_from_bytes::<T>(self.input) {
            Ok((value, rest)) => {
                self.input = rest;
                Some(Some(value))
            }
            Err(postcard::Error::DeserializeUnexpectedEnd) if self.partial => {
                self.ended = true;
                Some(None)
            }
            Err(_) => None,
        }
    }

    /// A sequence's item count. A whole input must hold at least a byte per item.
    fn count(&mut self) -> Option<Option<u64>> {
        let n = self.take::<u64>()?;
        if n.is_some_and(|n| !self.partial && n > self.input.len() as u64) {
            return None;
        }
        Some(n)
    }
}

/// Decodes one value of type `ty` from the front of `d`'s input.
fn take_value(ty: &str, d: &mut Postcard<'_>, depth: usize) -> Option<String> {
    if depth > 8 {
        return None;
    }
    if d.ended {
        return Some(CUT.into());
    }
    if let Some(num) = numbers::Num::rust(ty) {
        let mut input = d.input;
        return match num.postcard(&mut input) {
            Ok(text) => {
                d.input = input;
                Some(text)
            }
            Err(postcard::Error::DeserializeUnexpectedEnd) if d.partial => {
                d.ended = true;
                Some(CUT.into())
            }
            Err(_) => None,
        };
    }
    Some(match ty {
        "()" => "()".into(),
        "bool" => match d.take::<bool>()? {
            Some(v) => format!("{v:?}"),
            None => CUT.into(),
        },
        "char" => match d.take::<char>()? {
            Some(v) => format!("{v:?}"),
            None => CUT.into(),
        },
        "String" | "&str" | "str" | "Box<str>" | "Cow<str>" | "PathBuf" => {
            let Some(len) = d.take::<u64>()? else {
                return Some(CUT.into());
            };
            if len > d.input.len() as u64 {
                if !d.partial {
                    return None;
                }
                // A string longer than what was read: its first characters and its length.
                d.ended = true;
                // What was read must be UTF-8, but for a character cut at its end.
                let start = match std::str::from_utf8(d.input) {
                    Ok(all) => all,
                    Err(e) if e.error_len().is_none() => {
                        std::str::from_utf8(&d.input[..e.valid_up_to()]).ok()?
                    }
                    Err(_) => return None,
                };
                let cut: String = start.chars().take(SHOWN_CHARS).collect();
                return Some(format!("{cut:?}… ({len} bytes)"));
            }
            let (bytes, rest) = d.input.split_at(len as usize);
            let value = std::str::from_utf8(bytes).ok()?;
            d.input = rest;
            let cut: String = value.chars().take(SHOWN_CHARS).collect();
            if cut.len() < value.len() {
                format!("{cut:?}… ({} chars)", value.chars().count())
            } else {
                format!("{cut:?}")
            }
        }
        "ByteBuf" => return take_value("Vec<u8>", d, depth),
        _ => {
            for wrapper in ["Box<", "Rc<", "Arc<"] {
                if let Some(inner) = ty.strip_prefix(wrapper).and_then(|t| t.strip_suffix('>')) {
                    return take_value(inner, d, depth + 1);
                }
            }
            for (prefix, open, close) in [
                ("Vec<", "[", "]"),
                ("VecDeque<", "[", "]"),
                ("HashSet<", "{", "}"),
                ("BTreeSet<", "{", "}"),
            ] {
                if let Some(inner) = ty.strip_prefix(prefix).and_then(|t| t.strip_suffix('>')) {
                    let item = split_top_level(inner).into_iter().next()?;
                    let Some(len) = d.count()? else {
                        return Some(CUT.into());
                    };
                    return seq(len, d, open, close, |d| take_value(item, d, depth + 1));
                }
            }
            for prefix in ["HashMap<", "BTreeMap<"] {
                if let Some(inner) = ty.strip_prefix(prefix).and_then(|t| t.strip_suffix('>')) {
                    let parts = split_top_level(inner);
                    let [k, v, ..] = parts.as_slice() else {
                        return None;
                    };
                    let Some(len) = d.count()? else {
                        return Some(CUT.into());
                    };
                    return seq(len, d, "{", "}", |d| {
                        let key = take_value(k, d, depth + 1)?;
                        let value = take_value(v, d, depth + 1)?;
                        Some(if d.ended && value == CUT {
                            CUT.into()
                        } else {
                            format!("{key}: {value}")
                        })
                    });
                }
            }
            if let Some(inner) = ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
                let Some(tag) = d.take::<u8>()? else {
                    return Some(CUT.into());
                };
                return match tag {
                    0 => Some("None".into()),
                    1 => Some(format!("Some({})", take_value(inner, d, depth + 1)?)),
                    _ => None,
                };
            }
            if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                let (item, n) = inner.rsplit_once(';')?;
                let n: u64 = n.parse().ok()?;
                if !d.partial && n > d.input.len() as u64 {
                    return None;
                }
                return seq(n, d, "[", "]", |d| take_value(item, d, depth + 1));
            }
            if let Some(inner) = ty.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
                let parts = split_top_level(inner);
                let mut items = Vec::with_capacity(parts.len());
                for part in parts {
                    items.push(take_value(part, d, depth + 1)?);
                }
                let trailing = if items.len() == 1 { "," } else { "" };
                return Some(format!("({}{trailing})", items.join(", ")));
            }
            return None;
        }
    })
}

/// `n` items, each taken by `item`, shown as a list cut after [`PREVIEW_ITEMS`] with the full
/// count. A whole input's items are all decoded, so that leftover bytes are still noticed; a
/// partial input's stop after those shown (what follows them is not shown either).
fn seq(
    n: u64,
    d: &mut Postcard<'_>,
    open: &str,
    close: &str,
    mut item: impl FnMut(&mut Postcard<'_>) -> Option<String>,
) -> Option<String> {
    let mut shown = Vec::new();
    for i in 0..n {
        if d.ended {
            break;
        }
        if d.partial && i == PREVIEW_ITEMS as u64 {
            d.ended = true;
            break;
        }
        let v = item(d)?;
        if i < PREVIEW_ITEMS as u64 && v != CUT {
            shown.push(v);
        }
    }
    let mut text = shown.join(", ");
    if n > shown.len() as u64 {
        if !text.is_empty() {
            text.push_str(", ");
        }
        let items = if n == 1 { "item" } else { "items" };
        text.push_str(&format!("… ({n} {items})"));
    }
    Some(format!("{open}{text}{close}"))
}

/// Numbers as values hold them: decoded in this one place, whether postcard wrote them (a
/// byte, a varint, zigzag for signed, floats as little-endian bytes) or they are stored raw at
/// a fixed width (a numpy array's buffer).
mod numbers {
    use crate::tape::report::py_float;

    /// A primitive number type.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Num {
        U8,
        U16,
        U32,
        U64,
        U128,
        I8,
        I16,
        I32,
        I64,
        I128,
        F32,
        F64,
        Bool,
    }

    impl Num {
        /// The Rust type of that (simplified) name; `bool` is left to the caller, which shows
        /// it as Rust does.
        pub fn rust(ty: &str) -> Option<Num> {
            Some(match ty {
                "u8" => Num::U8,
                "u16" => Num::U16,
                "u32" => Num::U32,
                // usize is a varint like u64 whatever the guest's pointer width.
                "u64" | "usize" => Num::U64,
                "u128" => Num::U128,
                "i8" => Num::I8,
                "i16" => Num::I16,
                "i32" => Num::I32,
                "i64" | "isize" => Num::I64,
                "i128" => Num::I128,
                "f32" => Num::F32,
                "f64" => Num::F64,
                _ => return None,
            })
        }

        /// The number type of a numpy dtype code (`f8`, `<i4`, `u1`, `b1`, `?`), and its name
        /// (`float64`); `None` for other dtypes (complex, strings, objects, records).
        pub fn numpy(code: &str) -> Option<(Num, &'static str)> {
            let code = code.trim_start_matches(['<', '>', '|', '=']);
            Some(match code {
                "?" | "b1" => (Num::Bool, "bool"),
                "u1" | "B" => (Num::U8, "uint8"),
                "u2" | "H" => (Num::U16, "uint16"),
                "u4" | "I" => (Num::U32, "uint32"),
                "u8" | "L" | "Q" => (Num::U64, "uint64"),
                "i1" | "b" => (Num::I8, "int8"),
                "i2" | "h" => (Num::I16, "int16"),
                "i4" | "i" => (Num::I32, "int32"),
                "i8" | "l" | "q" => (Num::I64, "int64"),
                "f4" | "f" => (Num::F32, "float32"),
                "f8" | "d" => (Num::F64, "float64"),
                _ => return None,
            })
        }

        /// Bytes of one number stored raw.
        pub fn width(self) -> usize {
            match self {
                Num::U8 | Num::I8 | Num::Bool => 1,
                Num::U16 | Num::I16 => 2,
                Num::U32 | Num::I32 | Num::F32 => 4,
                Num::U64 | Num::I64 | Num::F64 => 8,
                Num::U128 | Num::I128 => 16,
            }
        }

        /// Takes one number as postcard writes it from the front of `input`, shown as Rust's
        /// `Debug` shows it.
        pub fn postcard(self, input: &mut &[u8]) -> Result<String, postcard::Error> {
            fn take<T: serde::de::DeserializeOwned + std::fmt::Debug>(
                input: &mut &[u8],
            ) -> Result<String, postcard::Error> {
                let (value, rest) = postcard::take_from_bytes::<T>(input)?;
                *input = rest;
                Ok(format!("{value:?}"))
            }
            match self {
                Num::U8 => take::<u8>(input),
                Num::U16 => take::<u16>(input),
                Num::U32 => take::<u32>(input),
                Num::U64 => take::<u64>(input),
                Num::U128 => take::<u128>(input),
                Num::I8 => take::<i8>(input),
                Num::I16 => take::<i16>(input),
                Num::I32 => take::<i32>(input),
                Num::I64 => take::<i64>(input),
                Num::I128 => take::<i128>(input),
                Num::F32 => take::<f32>(input),
                Num::F64 => take::<f64>(input),
                Num::Bool => take::<bool>(input),
            }
        }

        /// One number stored raw in `bytes` (exactly [`Num::width`] of them), shown as Python
        /// shows it.
        pub fn raw_python(self, bytes: &[u8], big_endian: bool) -> Option<String> {
            let mut b = [0u8; 16];
            let n = self.width();
            if bytes.len() != n {
                return None;
            }
            // Little-endian, in the low bytes.
            b[..n].copy_from_slice(bytes);
            if big_endian {
                b[..n].reverse();
            }
            let u = u128::from_le_bytes(b);
            // Sign-extended from the width.
            let i = if n < 16 {
                let shift = 128 - 8 * n as u32;
                ((u << shift) as i128) >> shift
            } else {
                u as i128
            };
            Some(match self {
                Num::Bool => if u != 0 { "True" } else { "False" }.into(),
                Num::U8 | Num::U16 | Num::U32 | Num::U64 | Num::U128 => u.to_string(),
                Num::I8 | Num::I16 | Num::I32 | Num::I64 | Num::I128 => i.to_string(),
                // Shortest text that reads back as the f32, as numpy shows it.
                Num::F32 => format!("{:?}", f32::from_bits(u as u32)),
                Num::F64 => py_float(f64::from_bits(u as u64)),
            })
        }
    }
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

// ---------------------------------------------------------------------------------------------
// Stored HTTP responses

/// The value type of a stored HTTP response (`devstash_protocol::HttpResponse`, postcard).
const HTTP_VALUE_TYPE: &str = "devstash::http::Response";
/// Most headers shown.
const SHOWN_HEADERS: usize = 24;
/// Most lines of a body shown.
const SHOWN_BODY_LINES: usize = 40;
/// Longest line of a body (or header value) shown.
const SHOWN_LINE_CHARS: usize = 160;
/// Bytes of a binary body shown in hex.
const SHOWN_BINARY_BYTES: usize = 64;

/// A stored response, read from as much of the payload as is at hand.
#[derive(Debug, PartialEq, Eq)]
struct HttpView<'a> {
    status: u16,
    headers: Vec<(String, String)>,
    /// The body's length.
    body_len: u64,
    /// Its first bytes (all of it, unless the payload was read only in part).
    body: &'a [u8],
}

/// Reads a stored response; `whole` says the payload is all there (then it must be exactly one
/// response).
fn http_view(payload: &[u8], whole: bool) -> Option<HttpView<'_>> {
    let (status, rest) = postcard::take_from_bytes::<u16>(payload).ok()?;
    let (headers, rest) = postcard::take_from_bytes::<Vec<(String, String)>>(rest).ok()?;
    let (body_len, rest) = postcard::take_from_bytes::<u64>(rest).ok()?;
    if (whole && body_len != rest.len() as u64) || body_len < rest.len() as u64 {
        return None;
    }
    Some(HttpView {
        status,
        headers,
        body_len,
        body: rest,
    })
}

/// What a body is, for showing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum BodyKind {
    Json,
    Text,
    Binary,
}

impl HttpView<'_> {
    fn content_type(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str())
    }

    fn complete(&self) -> bool {
        self.body.len() as u64 == self.body_len
    }

    /// JSON when it parses as JSON; text when it is UTF-8 without NULs (or said to be text),
    /// else binary.
    fn kind(&self) -> BodyKind {
        let ct = self.content_type().unwrap_or_default().to_ascii_lowercase();
        let start = self.body.iter().find(|b| !b.is_ascii_whitespace());
        let looks_json = ct.contains("json") || matches!(start, Some(b'{' | b'['));
        if looks_json
            && self.complete()
            && serde_json::from_slice::<serde::de::IgnoredAny>(self.body).is_ok()
        {
            return BodyKind::Json;
        }
        let utf8 = match std::str::from_utf8(self.body) {
            Ok(_) => true,
            // Cut inside a character at the end of what was read.
            Err(e) => !self.complete() && e.error_len().is_none(),
        };
        let said_text = ct.starts_with("text/")
            || [
                "json",
                "xml",
                "javascript",
                "html",
                "csv",
                "yaml",
                "urlencoded",
            ]
            .iter()
            .any(|t| ct.contains(t));
        if utf8 && (said_text || !self.body.contains(&0)) {
            BodyKind::Text
        } else {
            BodyKind::Binary
        }
    }

    /// The body for people: its lines (JSON pretty-printed), cut, each escaped; the last says
    /// how much more there is.
    fn body_lines(&self, kind: BodyKind) -> Vec<String> {
        let (mut lines, more) = match kind {
            BodyKind::Json => pretty_json(self.body, SHOWN_BODY_LINES),
            BodyKind::Text => text_lines(self.body, SHOWN_BODY_LINES),
            BodyKind::Binary => {
                let shown = &self.body[..self.body.len().min(SHOWN_BINARY_BYTES)];
                let mut lines = hex_dump(shown, SHOWN_BINARY_BYTES, shown.len() as u64);
                if self.body_len > shown.len() as u64 {
                    lines.push(format!(
                        "… {} more",
                        human_size(self.body_len - shown.len() as u64)
                    ));
                }
                return lines;
            }
        };
        if !self.complete() {
            lines.push(format!(
                "… (only the first {} of the body were read)",
                human_size(self.body.len() as u64)
            ));
        } else if more > 0 {
            lines.push(format!("… {more} more line{}", output::plural(more as u64)));
        }
        lines
    }
}

/// A line cut at [`SHOWN_LINE_CHARS`] characters and escaped.
fn shown_line(line: &str) -> String {
    let mut cut: String = line.chars().take(SHOWN_LINE_CHARS).collect();
    if cut.len() < line.len() {
        cut.push('…');
    }
    escape(&cut).into_owned()
}

/// The first `max` lines of a text, cut and escaped, and how many lines follow them.
fn text_lines(body: &[u8], max: usize) -> (Vec<String>, usize) {
    let text = String::from_utf8_lossy(body);
    let mut lines = Vec::new();
    let mut more = 0;
    for line in text.split_inclusive('\n') {
        if lines.len() < max {
            let line = line.strip_suffix('\n').unwrap_or(line);
            lines.push(shown_line(line));
        } else {
            more += 1;
        }
    }
    (lines, more)
}

/// JSON re-indented as `serde_json::to_string_pretty` would (two spaces), keeping its order,
/// without building it in memory: the first `max` lines (cut and escaped), and how many lines
/// follow. The text must be valid JSON.
fn pretty_json(body: &[u8], max: usize) -> (Vec<String>, usize) {
    struct Out {
        lines: Vec<String>,
        line: String,
        /// Characters in `line` (counted even once it is full).
        chars: usize,
        max: usize,
        more: usize,
    }
    impl Out {
        fn put(&mut self, c: char) {
            if self.lines.len() < self.max && self.chars < SHOWN_LINE_CHARS {
                self.line.push(c);
            }
            self.chars += 1;
        }
        fn end_line(&mut self, indent: usize) {
            if self.lines.len() < self.max {
                let mut line = std::mem::take(&mut self.line);
                if self.chars > SHOWN_LINE_CHARS {
                    line.push('…');
                }
                self.lines.push(escape(&line).into_owned());
            } else {
                self.more += 1;
            }
            self.line.clear();
            self.chars = 0;
            for _ in 0..indent * 2 {
                self.put(' ');
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let mut out = Out {
        lines: Vec::new(),
        line: String::new(),
        chars: 0,
        max,
        more: 0,
    };
    let mut indent = 0usize;
    let mut it = text.chars().peekable();
    let mut in_string = false;
    let mut escaped = false;
    while let Some(c) = it.next() {
        if in_string {
            out.put(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            c if c.is_ascii_whitespace() => {}
            '"' => {
                in_string = true;
                out.put(c);
            }
            '{' | '[' => {
                out.put(c);
                while it.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    it.next();
                }
                let close = if c == '{' { '}' } else { ']' };
                if it.peek() == Some(&close) {
                    it.next();
                    out.put(close);
                } else {
                    indent += 1;
                    out.end_line(indent);
                }
            }
            '}' | ']' => {
                indent = indent.saturating_sub(1);
                out.end_line(indent);
                out.put(c);
            }
            ',' => {
                out.put(c);
                out.end_line(indent);
            }
            ':' => {
                out.put(':');
                out.put(' ');
            }
            c => out.put(c),
        }
    }
    if out.chars > 0 {
        out.end_line(0);
    }
    (out.lines, out.more)
}

/// `devstash inspect ENTRY --json`: a stored HTTP response.
#[derive(Debug, Serialize)]
struct JsonHttp {
    status: u16,
    headers: Vec<(String, String)>,
    body_len: u64,
    body_kind: BodyKind,
    /// The body as `inspect` shows it: lines cut, JSON re-indented.
    body_preview: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Pickles: the values of the Python SDK's sites

/// Reads the pickles the Python SDK stores (`pickle.dump(value, protocol=5)`) back into a
/// Python-like `repr`, without running anything: plain data as Python shows it (`[1, 2, 3]`,
/// `{'a': 1}`), objects as their class and state (`Point(x=1, y=2.0)`,
/// `collections.OrderedDict({'a': 1})`).
///
/// Pickles are untrusted input here (an entry may be damaged or forged), so the reader is a
/// small machine of its own rather than a general unpickler: values live in one arena, a memo
/// reference is an index into it and never a copy (a pickle can share a value a million times in
/// a few bytes), lengths are checked against the bytes that are there before anything is taken,
/// and the text is cut at [`pickle::MAX_REPR`] characters, nesting at [`pickle::MAX_DEPTH`].
/// Opcodes CPython does not write for stored values (out-of-band buffers, extension registry,
/// protocol 0 text forms of strings) make it give up: the entry then shows its bytes.
mod pickle {
    use std::collections::HashMap;

    use crate::tape::report::{PY_SHOWN_ITEMS, py_bytes, py_float, py_int, py_name, py_str};

    /// Longest `repr` made.
    pub const MAX_REPR: usize = 400;
    /// Deepest nesting shown.
    pub const MAX_DEPTH: usize = 24;

    #[derive(Debug)]
    enum Node {
        None,
        Bool(bool),
        Int(i64),
        /// Little-endian two's complement, as `LONG1` and `LONG4` hold it.
        Long(Vec<u8>),
        Float(f64),
        Str(String),
        Bytes(Vec<u8>),
        ByteArray(Vec<u8>),
        List(Vec<usize>),
        Tuple(Vec<usize>),
        Dict(Vec<(usize, usize)>),
        Set(Vec<usize>),
        FrozenSet(Vec<usize>),
        /// `module.name`, from `GLOBAL` or `STACK_GLOBAL`: a class or a function.
        Global(String),
        /// What `REDUCE` or `NEWOBJ` makes: a callable (a class), its arguments (a tuple
        /// node), then what `BUILD`, `APPEND(S)` and `SETITEM(S)` give it.
        Object {
            callable: usize,
            args: usize,
            kwargs: Option<usize>,
            state: Option<usize>,
            items: Vec<usize>,
            dict_items: Vec<(usize, usize)>,
        },
        /// A persistent id (`persistent_id` of a custom pickler).
        Persistent(usize),
        /// A buffer read only in part: its first bytes and its length.
        Cut {
            kind: Bulk,
            start: Vec<u8>,
            len: u64,
        },
    }

    /// What a large buffer is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Bulk {
        Bytes,
        ByteArray,
        Str,
    }

    /// Bytes kept of a large `bytes`, `bytearray` or `str` that was not read whole.
    const BULK_START: usize = 4096;

    struct Machine<'a> {
        /// The pickle's first bytes (all of it, for a pickle read whole).
        head: &'a [u8],
        /// Its last bytes, which start at `tail_at`.
        tail: &'a [u8],
        tail_at: u64,
        /// The pickle's length.
        len: u64,
        at: u64,
        /// A large buffer was only partly read (see [`Machine::bulk`]).
        cut: bool,
        nodes: Vec<Node>,
        stack: Vec<usize>,
        marks: Vec<usize>,
        memo: HashMap<u64, usize>,
    }

    /// The value of a pickle as Python would show it, or `None` when the bytes are not a pickle
    /// this reader follows. The pickle is `len` bytes long, of which `head` and `tail` (its
    /// last bytes) were read; it is followed only while its opcodes are in them, and a large
    /// buffer (`bytes`, `bytearray`, `str`) may span the bytes that were not read: then it is
    /// shown by its start and its length, and the flag returned is set.
    pub fn repr(head: &[u8], tail: &[u8], len: u64) -> Option<(String, bool)> {
        let tail = if head.len() as u64 == len {
            &[][..]
        } else {
            tail
        };
        let mut m = Machine {
            head,
            tail,
            tail_at: len.checked_sub(tail.len() as u64)?,
            len,
            at: 0,
            cut: false,
            nodes: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        };
        let root = m.run()?;
        let mut r = Render {
            nodes: &m.nodes,
            out: String::new(),
            open: Vec::new(),
        };
        match r.value(root, 0) {
            Ok(()) | Err(Full) => Some((r.out, m.cut)),
        }
    }

    /// A `bytes`, `bytearray` or `str` taken by [`Machine::bulk`].
    enum Taken<'a> {
        All(&'a [u8]),
        /// Its first bytes (at most [`BULK_START`]) and its length.
        Start(&'a [u8], u64),
    }

    impl<'a> Machine<'a> {
        /// The next `n` bytes, when they were read.
        fn take(&mut self, n: u64) -> Option<&'a [u8]> {
            let end = self.at.checked_add(n)?;
            let s = if end <= self.head.len() as u64 {
                &self.head[self.at as usize..end as usize]
            } else if self.at >= self.tail_at && end <= self.len {
                &self.tail[(self.at - self.tail_at) as usize..(end - self.tail_at) as usize]
            } else {
                return None;
            };
            self.at = end;
            Some(s)
        }

        /// The next `n` bytes of a buffer: all of them when they were read, else (when it starts
        /// in the head) its start, and the pickle goes on after it.
        fn bulk(&mut self, n: u64) -> Option<Taken<'a>> {
            if let Some(s) = self.take(n) {
                return Some(Taken::All(s));
            }
            let end = self.at.checked_add(n)?;
            let from = usize::try_from(self.at).ok()?;
            if end > self.len || from > self.head.len() {
                return None;
            }
            let start = &self.head[from..self.head.len().min(from + BULK_START)];
            self.at = end;
            self.cut = true;
            Some(Taken::Start(start, n))
        }

        /// A `bytes`, `bytearray` or `str` node of `n` bytes.
        fn bulk_node(&mut self, n: u64, kind: Bulk) -> Option<Node> {
            Some(match (self.bulk(n)?, kind) {
                (Taken::All(b), Bulk::Bytes) => Node::Bytes(b.to_vec()),
                (Taken::All(b), Bulk::ByteArray) => Node::ByteArray(b.to_vec()),
                (Taken::All(b), Bulk::Str) => Node::Str(String::from_utf8_lossy(b).into_owned()),
                (Taken::Start(b, len), kind) => Node::Cut {
                    kind,
                    start: b.to_vec(),
                    len,
                },
            })
        }

        fn byte(&mut self) -> Option<u8> {
            Some(self.take(1)?[0])
        }

        fn u16(&mut self) -> Option<u16> {
            Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
        }

        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
        }

        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
        }

        /// A text line (protocol 0 and 1 forms of `GLOBAL`, `PUT`, `GET`, `INT`).
        fn line(&mut self) -> Option<&'a str> {
            let rest = if self.at < self.head.len() as u64 {
                &self.head[self.at as usize..]
            } else if self.at >= self.tail_at {
                self.tail.get((self.at - self.tail_at) as usize..)?
            } else {
                return None;
            };
            let end = rest.iter().position(|&b| b == b'\n')?;
            self.at += end as u64 + 1;
            std::str::from_utf8(&rest[..end]).ok()
        }

        fn push(&mut self, node: Node) {
            self.nodes.push(node);
            self.stack.push(self.nodes.len() - 1);
        }

        fn pop(&mut self) -> Option<usize> {
            // Never across a mark.
            if self.marks.last() == Some(&self.stack.len()) {
                return None;
            }
            self.stack.pop()
        }

        fn top(&self) -> Option<usize> {
            if self.marks.last() == Some(&self.stack.len()) {
                return None;
            }
            self.stack.last().copied()
        }

        /// The items pushed since the last mark, and the mark removed.
        fn pop_mark(&mut self) -> Option<Vec<usize>> {
            let mark = self.marks.pop()?;
            Some(self.stack.split_off(mark))
        }

        fn str(&mut self, n: u64) -> Option<Node> {
            self.bulk_node(n, Bulk::Str)
        }

        fn bytes(&mut self, n: u64) -> Option<Node> {
            self.bulk_node(n, Bulk::Bytes)
        }

        fn long(&mut self, n: u64) -> Option<Node> {
            let b = self.take(n)?;
            Some(if b.len() <= 8 {
                let fill = if b.last().is_some_and(|&l| l & 0x80 != 0) {
                    0xff
                } else {
                    0
                };
                let mut le = [fill; 8];
                le[..b.len()].copy_from_slice(b);
                Node::Int(i64::from_le_bytes(le))
            } else {
                Node::Long(b.to_vec())
            })
        }

        fn tuple(&mut self, n: usize) -> Option<()> {
            let at = self.stack.len().checked_sub(n)?;
            if self.marks.last().is_some_and(|&m| m > at) {
                return None;
            }
            let items = self.stack.split_off(at);
            self.push(Node::Tuple(items));
            Some(())
        }

        fn append(&mut self, items: Vec<usize>) -> Option<()> {
            let target = self.top()?;
            match &mut self.nodes[target] {
                Node::List(v) | Node::Set(v) => v.extend(items),
                Node::Object { items: v, .. } => v.extend(items),
                _ => return None,
            }
            Some(())
        }

        fn set_items(&mut self, flat: Vec<usize>) -> Option<()> {
            if !flat.len().is_multiple_of(2) {
                return None;
            }
            let pairs = flat.chunks(2).map(|p| (p[0], p[1]));
            let target = self.top()?;
            match &mut self.nodes[target] {
                Node::Dict(v) => v.extend(pairs),
                Node::Object { dict_items: v, .. } => v.extend(pairs),
                _ => return None,
            }
            Some(())
        }

        /// Runs the pickle to its `STOP`; the value it leaves.
        fn run(&mut self) -> Option<usize> {
            loop {
                let op = self.byte()?;
                match op {
                    0x80 => {
                        // PROTO: any version up to 5.
                        if self.byte()? > 5 {
                            return None;
                        }
                    }
                    0x95 => {
                        self.u64()?; // FRAME: a length, for buffered readers.
                    }
                    b'.' => return self.pop(),
                    b'(' => self.marks.push(self.stack.len()),
                    b')' => self.push(Node::Tuple(Vec::new())),
                    b']' => self.push(Node::List(Vec::new())),
                    b'}' => self.push(Node::Dict(Vec::new())),
                    0x8f => self.push(Node::Set(Vec::new())),
                    b'N' => self.push(Node::None),
                    0x88 => self.push(Node::Bool(true)),
                    0x89 => self.push(Node::Bool(false)),
                    b'J' => {
                        let v = self.u32()? as i32;
                        self.push(Node::Int(i64::from(v)));
                    }
                    b'K' => {
                        let v = self.byte()?;
                        self.push(Node::Int(i64::from(v)));
                    }
                    b'M' => {
                        let v = self.u16()?;
                        self.push(Node::Int(i64::from(v)));
                    }
                    0x8a => {
                        let n = self.byte()?;
                        let v = self.long(u64::from(n))?;
                        self.push(v);
                    }
                    0x8b => {
                        let n = self.u32()?;
                        let v = self.long(u64::from(n))?;
                        self.push(v);
                    }
                    b'I' | b'L' => {
                        // Protocol 0 integers: `I01\n` is True, `L12L\n` a long.
                        let text = self.line()?.trim_end_matches('L').to_string();
                        let node = match text.as_str() {
                            "01" if op == b'I' => Node::Bool(true),
                            "00" if op == b'I' => Node::Bool(false),
                            t => Node::Int(t.parse().ok()?),
                        };
                        self.push(node);
                    }
                    b'G' => {
                        let b = self.take(8)?;
                        let v = f64::from_be_bytes(b.try_into().ok()?);
                        self.push(Node::Float(v));
                    }
                    b'F' => {
                        let v = self.line()?.parse().ok()?;
                        self.push(Node::Float(v));
                    }
                    0x8c => {
                        let n = self.byte()?;
                        let v = self.str(u64::from(n))?;
                        self.push(v);
                    }
                    b'X' => {
                        let n = self.u32()?;
                        let v = self.str(u64::from(n))?;
                        self.push(v);
                    }
                    0x8d => {
                        let n = self.u64()?;
                        let v = self.str(n)?;
                        self.push(v);
                    }
                    b'C' => {
                        let n = self.byte()?;
                        let v = self.bytes(u64::from(n))?;
                        self.push(v);
                    }
                    b'B' => {
                        let n = self.u32()?;
                        let v = self.bytes(u64::from(n))?;
                        self.push(v);
                    }
                    0x8e => {
                        let n = self.u64()?;
                        let v = self.bytes(n)?;
                        self.push(v);
                    }
                    0x96 => {
                        let n = self.u64()?;
                        let v = self.bulk_node(n, Bulk::ByteArray)?;
                        self.push(v);
                    }
                    // Python 2 strings: text when they are UTF-8.
                    b'U' | b'T' => {
                        let n = if op == b'U' {
                            u64::from(self.byte()?)
                        } else {
                            u64::from(self.u32()?)
                        };
                        let b = self.take(n)?;
                        let node = match std::str::from_utf8(b) {
                            Ok(s) => Node::Str(s.to_string()),
                            Err(_) => Node::Bytes(b.to_vec()),
                        };
                        self.push(node);
                    }
                    0x85 => self.tuple(1)?,
                    0x86 => self.tuple(2)?,
                    0x87 => self.tuple(3)?,
                    b't' => {
                        let items = self.pop_mark()?;
                        self.push(Node::Tuple(items));
                    }
                    b'l' => {
                        let items = self.pop_mark()?;
                        self.push(Node::List(items));
                    }
                    b'd' => {
                        let flat = self.pop_mark()?;
                        if !flat.len().is_multiple_of(2) {
                            return None;
                        }
                        let pairs = flat.chunks(2).map(|p| (p[0], p[1])).collect();
                        self.push(Node::Dict(pairs));
                    }
                    0x91 => {
                        let items = self.pop_mark()?;
                        self.push(Node::FrozenSet(items));
                    }
                    b'a' => {
                        let v = self.pop()?;
                        self.append(vec![v])?;
                    }
                    b'e' | 0x90 => {
                        let items = self.pop_mark()?;
                        self.append(items)?;
                    }
                    b's' => {
                        let v = self.pop()?;
                        let k = self.pop()?;
                        self.set_items(vec![k, v])?;
                    }
                    b'u' => {
                        let flat = self.pop_mark()?;
                        self.set_items(flat)?;
                    }
                    0x94 => {
                        let top = self.top()?;
                        let n = self.memo.len() as u64;
                        self.memo.insert(n, top);
                    }
                    b'q' | b'r' | b'p' => {
                        let id = match op {
                            b'q' => u64::from(self.byte()?),
                            b'r' => u64::from(self.u32()?),
                            _ => self.line()?.parse().ok()?,
                        };
                        let top = self.top()?;
                        self.memo.insert(id, top);
                    }
                    b'h' | b'j' | b'g' => {
                        let id = match op {
                            b'h' => u64::from(self.byte()?),
                            b'j' => u64::from(self.u32()?),
                            _ => self.line()?.parse().ok()?,
                        };
                        let node = *self.memo.get(&id)?;
                        self.stack.push(node);
                    }
                    0x93 => {
                        let name = self.pop()?;
                        let module = self.pop()?;
                        let (Node::Str(module), Node::Str(name)) =
                            (&self.nodes[module], &self.nodes[name])
                        else {
                            return None;
                        };
                        let full = format!("{module}.{name}");
                        self.push(Node::Global(full));
                    }
                    b'c' => {
                        let module = self.line()?.to_string();
                        let name = self.line()?;
                        let full = format!("{module}.{name}");
                        self.push(Node::Global(full));
                    }
                    b'R' | 0x81 => {
                        let args = self.pop()?;
                        let callable = self.pop()?;
                        self.push(Node::Object {
                            callable,
                            args,
                            kwargs: None,
                            state: None,
                            items: Vec::new(),
                            dict_items: Vec::new(),
                        });
                    }
                    0x92 => {
                        let kwargs = self.pop()?;
                        let args = self.pop()?;
                        let callable = self.pop()?;
                        self.push(Node::Object {
                            callable,
                            args,
                            kwargs: Some(kwargs),
                            state: None,
                            items: Vec::new(),
                            dict_items: Vec::new(),
                        });
                    }
                    b'b' => {
                        let state = self.pop()?;
                        let target = self.top()?;
                        if let Node::Object { state: s, .. } = &mut self.nodes[target] {
                            *s = Some(state);
                        }
                    }
                    b'Q' => {
                        let id = self.pop()?;
                        self.push(Node::Persistent(id));
                    }
                    b'0' => {
                        if self.marks.last() == Some(&self.stack.len()) {
                            self.marks.pop();
                        } else {
                            self.stack.pop()?;
                        }
                    }
                    b'1' => {
                        self.pop_mark()?;
                    }
                    b'2' => {
                        let top = self.top()?;
                        self.stack.push(top);
                    }
                    _ => return None,
                }
            }
        }
    }

    /// The text is as long as it may be.
    struct Full;

    struct Render<'a> {
        nodes: &'a [Node],
        out: String,
        /// Containers being shown, to show one that holds itself as Python does (`[[...]]`).
        open: Vec<usize>,
    }

    impl Render<'_> {
        fn push(&mut self, s: &str) -> Result<(), Full> {
            self.out.push_str(s);
            if self.out.len() > MAX_REPR {
                let mut end = MAX_REPR;
                while !self.out.is_char_boundary(end) {
                    end -= 1;
                }
                self.out.truncate(end);
                self.out.push('…');
                return Err(Full);
            }
            Ok(())
        }

        fn list(&mut self, items: &[usize], depth: usize) -> Result<(), Full> {
            for (i, &item) in items.iter().enumerate() {
                if i == PY_SHOWN_ITEMS {
                    return self.push(&format!(", … ({} items)", items.len()));
                }
                if i > 0 {
                    self.push(", ")?;
                }
                self.value(item, depth + 1)?;
            }
            Ok(())
        }

        fn pairs(&mut self, pairs: &[(usize, usize)], depth: usize) -> Result<(), Full> {
            for (i, &(k, v)) in pairs.iter().enumerate() {
                if i == PY_SHOWN_ITEMS {
                    return self.push(&format!(", … ({} items)", pairs.len()));
                }
                if i > 0 {
                    self.push(", ")?;
                }
                self.value(k, depth + 1)?;
                self.push(": ")?;
                self.value(v, depth + 1)?;
            }
            Ok(())
        }

        fn value(&mut self, i: usize, depth: usize) -> Result<(), Full> {
            let node = &self.nodes[i];
            let container = matches!(
                node,
                Node::List(_)
                    | Node::Tuple(_)
                    | Node::Dict(_)
                    | Node::Set(_)
                    | Node::FrozenSet(_)
                    | Node::Object { .. }
            );
            if container && self.open.contains(&i) {
                return self.push(match node {
                    Node::List(_) => "[...]",
                    Node::Dict(_) => "{...}",
                    _ => "(...)",
                });
            }
            if depth > MAX_DEPTH {
                return self.push("…");
            }
            self.open.push(i);
            let r = self.node(node, depth);
            self.open.pop();
            r
        }

        fn node(&mut self, node: &Node, depth: usize) -> Result<(), Full> {
            match node {
                Node::None => self.push("None"),
                Node::Bool(b) => self.push(if *b { "True" } else { "False" }),
                Node::Int(v) => self.push(&v.to_string()),
                Node::Long(le) => self.push(&py_int(le)),
                Node::Float(f) => self.push(&py_float(*f)),
                Node::Str(s) => self.push(&py_str(s)),
                Node::Bytes(b) => self.push(&py_bytes(b)),
                Node::ByteArray(b) => self.push(&format!("bytearray({})", py_bytes(b))),
                Node::Cut { kind, start, len } => {
                    let mut text = match kind {
                        Bulk::Str => py_str(&String::from_utf8_lossy(start)),
                        _ => py_bytes(start),
                    };
                    if !text.ends_with('…') {
                        text.push('…');
                    }
                    let text = format!("{text} ({len} bytes)");
                    if *kind == Bulk::ByteArray {
                        self.push(&format!("bytearray({text})"))
                    } else {
                        self.push(&text)
                    }
                }
                Node::List(items) => {
                    self.push("[")?;
                    self.list(items, depth)?;
                    self.push("]")
                }
                Node::Tuple(items) => {
                    self.push("(")?;
                    self.list(items, depth)?;
                    self.push(if items.len() == 1 { ",)" } else { ")" })
                }
                Node::Dict(pairs) => {
                    self.push("{")?;
                    self.pairs(pairs, depth)?;
                    self.push("}")
                }
                Node::Set(items) | Node::FrozenSet(items) => {
                    let frozen = matches!(node, Node::FrozenSet(_));
                    match (frozen, items.is_empty()) {
                        (false, true) => return self.push("set()"),
                        (true, true) => return self.push("frozenset()"),
                        (true, false) => self.push("frozenset({")?,
                        (false, false) => self.push("{")?,
                    }
                    self.list(items, depth)?;
                    self.push(if frozen { "})" } else { "}" })
                }
                Node::Global(name) => self.push(py_name(name)),
                Node::Persistent(id) => {
                    self.push("persistent(")?;
                    self.value(*id, depth + 1)?;
                    self.push(")")
                }
                Node::Object {
                    callable,
                    args,
                    kwargs,
                    state,
                    items,
                    dict_items,
                } => {
                    let name = match &self.nodes[*callable] {
                        Node::Global(n) => n.as_str(),
                        _ => "",
                    };
                    let args: &[usize] = match &self.nodes[*args] {
                        Node::Tuple(a) => a,
                        _ => &[],
                    };
                    if let Some(text) = known(name, args, self.nodes) {
                        return self.push(&text);
                    }
                    // `copyreg._reconstructor(cls, base, state)`: protocols 0 and 1's objects.
                    let (callable, args) = match (name, args) {
                        ("copyreg._reconstructor", [cls, ..]) => (*cls, &[][..]),
                        _ => (*callable, args),
                    };
                    match &self.nodes[callable] {
                        Node::Global(n) => self.push(py_name(n))?,
                        _ => self.value(callable, depth + 1)?,
                    }
                    self.push("(")?;
                    self.list(args, depth)?;
                    let mut any = !args.is_empty();
                    let mut sep = |r: &mut Self| -> Result<(), Full> {
                        if any {
                            r.push(", ")?;
                        }
                        any = true;
                        Ok(())
                    };
                    if let Some(kw) = kwargs {
                        sep(self)?;
                        self.push("**")?;
                        self.value(*kw, depth + 1)?;
                    }
                    if let Some(state) = state {
                        // A dict of attributes (or `(dict, slots)`) reads as keywords.
                        let parts: Vec<usize> = match &self.nodes[*state] {
                            Node::Tuple(t) if t.len() == 2 => t.clone(),
                            _ => vec![*state],
                        };
                        for part in parts {
                            match &self.nodes[part] {
                                Node::None => {}
                                Node::Dict(attrs)
                                    if attrs
                                        .iter()
                                        .all(|(k, _)| matches!(self.nodes[*k], Node::Str(_))) =>
                                {
                                    for (n, (k, v)) in attrs.iter().enumerate() {
                                        sep(self)?;
                                        if n == PY_SHOWN_ITEMS {
                                            self.push("…")?;
                                            break;
                                        }
                                        if let Node::Str(k) = &self.nodes[*k] {
                                            let key: String = k.chars().take(40).collect();
                                            self.push(&key)?;
                                            self.push("=")?;
                                        }
                                        self.value(*v, depth + 1)?;
                                    }
                                }
                                _ => {
                                    sep(self)?;
                                    self.value(part, depth + 1)?;
                                }
                            }
                        }
                    }
                    if !items.is_empty() {
                        sep(self)?;
                        self.push("[")?;
                        self.list(items, depth)?;
                        self.push("]")?;
                    }
                    if !dict_items.is_empty() {
                        sep(self)?;
                        self.push("{")?;
                        self.pairs(dict_items, depth)?;
                        self.push("}")?;
                    }
                    self.push(")")
                }
            }
        }
    }

    /// Objects Python shows in a way of their own: dates and times (pickled as their packed
    /// bytes), `timedelta` (by keyword).
    fn known(name: &str, args: &[usize], nodes: &[Node]) -> Option<String> {
        let int = |i: usize| match nodes.get(*args.get(i)?)? {
            Node::Int(v) => Some(*v),
            _ => None,
        };
        match name {
            "datetime.datetime" | "datetime.date" | "datetime.time" => {
                let Node::Bytes(b) = nodes.get(*args.first()?)? else {
                    return None;
                };
                let us = |b: &[u8]| u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
                let mut fields: Vec<u32> = match (name, b.len()) {
                    ("datetime.datetime", 10) => vec![
                        u32::from(b[0]) << 8 | u32::from(b[1]),
                        u32::from(b[2] & 0x7f),
                        u32::from(b[3]),
                        u32::from(b[4]),
                        u32::from(b[5]),
                        u32::from(b[6]),
                        us(&b[7..10]),
                    ],
                    ("datetime.date", 4) => vec![
                        u32::from(b[0]) << 8 | u32::from(b[1]),
                        u32::from(b[2]),
                        u32::from(b[3]),
                    ],
                    ("datetime.time", 6) => vec![
                        u32::from(b[0] & 0x7f),
                        u32::from(b[1]),
                        u32::from(b[2]),
                        us(&b[3..6]),
                    ],
                    _ => return None,
                };
                // Python leaves out trailing zeros of the time (never the date's).
                let keep = if name == "datetime.date" { 3 } else { 2 };
                while fields.len() > keep && fields.last() == Some(&0) {
                    fields.pop();
                }
                let mut s = format!(
                    "{name}({})",
                    fields
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if args.len() > 1 {
                    s.insert_str(s.len() - 1, ", tzinfo=…");
                }
                Some(s)
            }
            "builtins.complex" => {
                let float = |i: usize| match nodes.get(*args.get(i)?)? {
                    Node::Float(f) => Some(*f),
                    Node::Int(v) => Some(*v as f64),
                    _ => None,
                };
                let (re, im) = (float(0)?, float(1)?);
                let part = |f: f64| {
                    let s = py_float(f);
                    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
                };
                if re == 0.0 && re.is_sign_positive() {
                    return Some(format!("{}j", part(im)));
                }
                let sign = if im.is_sign_negative() { "" } else { "+" };
                Some(format!("({}{sign}{}j)", part(re), part(im)))
            }
            // What numpy pickles a contiguous array as with protocol 5: its buffer, dtype,
            // shape and order.
            "numpy.core.numeric._frombuffer" | "numpy._core.numeric._frombuffer" => {
                ndarray(args, nodes)
            }
            "datetime.timedelta" => {
                let parts: Vec<String> = ["days", "seconds", "microseconds"]
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| match int(i) {
                        Some(0) => None,
                        Some(v) => Some(Some(format!("{n}={v}"))),
                        None => Some(None),
                    })
                    .collect::<Option<_>>()?;
                if parts.is_empty() {
                    return Some("datetime.timedelta(0)".into());
                }
                Some(format!("datetime.timedelta({})", parts.join(", ")))
            }
            _ => None,
        }
    }

    /// A numpy array (`_frombuffer(buffer, dtype, shape, order)`): its first items, decoded by
    /// its dtype, its dtype and its shape.
    fn ndarray(args: &[usize], nodes: &[Node]) -> Option<String> {
        let [buf, dtype, shape, ..] = args else {
            return None;
        };
        let (data, total): (&[u8], u64) = match nodes.get(*buf)? {
            Node::Bytes(b) | Node::ByteArray(b) => (b, b.len() as u64),
            Node::Cut { start, len, .. } => (start, *len),
            _ => return None,
        };
        let Node::Object {
            callable,
            args: dtype_args,
            state,
            ..
        } = nodes.get(*dtype)?
        else {
            return None;
        };
        if !matches!(nodes.get(*callable)?, Node::Global(n) if n == "numpy.dtype") {
            return None;
        }
        let Node::Tuple(dtype_args) = nodes.get(*dtype_args)? else {
            return None;
        };
        let Node::Str(code) = nodes.get(*dtype_args.first()?)? else {
            return None;
        };
        // The state's second item is the byte order: `<`, `>`, `|` (none) or `=` (native).
        let big_endian = match state.and_then(|s| nodes.get(s)) {
            Some(Node::Tuple(t)) => {
                matches!(t.get(1).and_then(|&i| nodes.get(i)), Some(Node::Str(e)) if e == ">")
            }
            _ => false,
        };
        let Node::Tuple(dims) = nodes.get(*shape)? else {
            return None;
        };
        let dims: Vec<u64> = dims
            .iter()
            .map(|&i| match nodes.get(i)? {
                Node::Int(v) => u64::try_from(*v).ok(),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let shape = match dims.as_slice() {
            [one] => format!("({one},)"),
            _ => format!(
                "({})",
                dims.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let count = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
        let Some((num, name)) = super::numbers::Num::numpy(code) else {
            return Some(format!(
                "array(<{total} bytes>, dtype={}, shape={shape})",
                py_str(code)
            ));
        };
        if count.checked_mul(num.width() as u64) != Some(total) {
            return None;
        }
        let items: Vec<String> = data
            .chunks_exact(num.width())
            .take(PY_SHOWN_ITEMS)
            .map(|c| num.raw_python(c, big_endian))
            .collect::<Option<_>>()?;
        let more = if count > items.len() as u64 {
            format!(", … ({count} items)")
        } else {
            String::new()
        };
        Some(format!(
            "array([{}{more}], dtype={name}, shape={shape})",
            items.join(", ")
        ))
    }

    #[cfg(test)]
    mod tests {
        /// The `repr` of a pickle read whole.
        fn repr(bytes: &[u8]) -> Option<String> {
            let (text, cut) = super::repr(bytes, &[], bytes.len() as u64)?;
            assert!(!cut, "a pickle read whole is never cut");
            Some(text)
        }

        fn unhex(s: &str) -> Vec<u8> {
            hex::decode(s).unwrap()
        }

        /// Pickles CPython 3.11 wrote with `pickle.dumps(value, protocol=5)`.
        #[test]
        fn reads_what_cpython_writes() {
            for (hex, text) in [
                ("80054b142e", "20"),
                ("8005950b000000000000005d94284b014b024b03652e", "[1, 2, 3]"),
                (
                    "80059511000000000000007d94288c0162944b018c0161944b02752e",
                    "{'b': 1, 'a': 2}",
                ),
                (
                    "800595ff000000000000007d94288c0173948c0a69742773201b5b33316d948c0166944740040\
                     000000000008c016e944e8c0174944b0185948c016594298c03736574948f94284b03908c0266\
                     73942891948c016294430400616227948c0262619496010000000000000078948c036e6567944a\
                     d4feffff8c03626967948a0d000000000000000000000000108c046e626967948a09000000000\
                     0000000c08c02743294888986948c03696e6694477ff00000000000008c0365323094474415af1\
                     d78b58c408c05736d616c6c94473ee4f8b588e368f18c0163948c086275696c74696e73948c07\
                     636f6d706c6578949394473ff000000000000047400000000000000086945294752e",
                    "{'s': \"it's \\x1b[31m\", 'f': 2.5, 'n': None, 't': (1,), 'e': (), \
                     'set': {3}, 'fs': frozenset(), 'b': b\"\\x00ab'\", 'ba': bytearray(b'x'), \
                     'neg': -300, 'big': 1267650600228229401496703205376, \
                     'nbig': -1180591620717411303424, 't2': (True, False), 'inf': inf, \
                     'e20': 1e+20, 'small': 1e-05, … (17 items)}",
                ),
                (
                    "80059531000000000000008c085f5f6d61696e5f5f948c05506f696e74949394298194\
                     7d94288c0178944b018c01799447400000000000000075622e",
                    "Point(x=1, y=2.0)",
                ),
                (
                    "8005952a000000000000008c086461746574696d65948c086461746574696d6594939443\
                     0a07e8010203040500000694859452942e",
                    "datetime.datetime(2024, 1, 2, 3, 4, 5, 6)",
                ),
                (
                    "80059520000000000000008c086461746574696d65948c0464617465949394430407e805\
                     0694859452942e",
                    "datetime.date(2024, 5, 6)",
                ),
                (
                    "80059524000000000000008c086461746574696d65948c0974696d6564656c7461949394\
                     4b014b054b00879452942e",
                    "datetime.timedelta(days=1, seconds=5)",
                ),
                (
                    "80059529000000000000008c0b636f6c6c656374696f6e73948c0b4f7264657265644469\
                     63749493942952948c0161944b01732e",
                    "collections.OrderedDict({'a': 1})",
                ),
                (
                    "80059522000000000000008c07646563696d616c948c07446563696d616c9493948c0431\
                     2e353094859452942e",
                    "decimal.Decimal('1.50')",
                ),
                ("80059509000000000000005d94284b016800652e", "[1, [...]]"),
                (
                    "80059511000000000000005d94285d94284b014b026568016801652e",
                    "[[1, 2], [1, 2], [1, 2]]",
                ),
                (
                    "80059528000000000000008c085f5f6d61696e5f5f948c07536c6f74746564949394298194\
                     4e7d948c0161944b01738694622e",
                    "Slotted(a=1)",
                ),
                (
                    "80059541000000000000008c0b636f6c6c656374696f6e73948c0b64656661756c74646963\
                     749493948c086275696c74696e73948c046c697374949394859452948c016b945d944b0161\
                     732e",
                    "collections.defaultdict(list, {'k': [1]})",
                ),
                (
                    "8005952f000000000000008c0b636f6c6c656374696f6e73948c07436f756e7465729493\
                     947d94288c0161944b028c0162944b0175859452942e",
                    "collections.Counter({'a': 2, 'b': 1})",
                ),
                (
                    "80059522000000000000008c096672616374696f6e73948c084672616374696f6e949394\
                     4b014b03869452942e",
                    "fractions.Fraction(1, 3)",
                ),
            ] {
                assert_eq!(repr(&unhex(hex)).as_deref(), Some(text), "{hex}");
            }
            // complex(1.0, -2.5), complex(0.0, 1.0)
            for (re, im, text) in [(1.0f64, -2.5f64, "(1-2.5j)"), (0.0, 1.0, "1j")] {
                let mut p = b"\x80\x05\x8c\x08builtins\x8c\x07complex\x93G".to_vec();
                p.extend(re.to_be_bytes());
                p.push(b'G');
                p.extend(im.to_be_bytes());
                p.extend(b"\x86R.");
                assert_eq!(repr(&p).as_deref(), Some(text));
            }
        }

        #[test]
        fn bounded_whatever_the_pickle() {
            // A long string is cut.
            let mut p = vec![0x80, 5, b'X'];
            p.extend(300u32.to_le_bytes());
            p.extend([b'x'; 300]);
            p.push(b'.');
            let text = repr(&p).unwrap();
            assert!(text.starts_with("'xxxx") && text.ends_with("'…"), "{text}");
            assert!(text.len() < 100, "{text}");
            // 40 items: 16 shown.
            let mut p = vec![0x80, 5, b']', b'('];
            for i in 0..40 {
                p.extend([b'K', i]);
            }
            p.extend(b"e.");
            assert!(repr(&p).unwrap().ends_with(", 15, … (40 items)]"));
            // A value shared 2^40 times (each list holds the one before it twice) is shown
            // without being copied, and cut.
            let mut p = vec![0x80, 5, b'K', 1];
            for _ in 0..40 {
                p.extend([0x94, b'(', b'h']);
                let last = (p.iter().filter(|&&b| b == 0x94).count() - 1) as u8;
                p.push(last);
                p.extend([b'h', last, b'l']);
            }
            p.push(b'.');
            let text = repr(&p).unwrap();
            assert!(text.len() <= super::MAX_REPR + 3, "{}", text.len());
            // Nesting past the limit.
            let mut p = vec![0x80, 5];
            p.extend(std::iter::repeat_n(b']', 100_000));
            p.extend(std::iter::repeat_n(b'a', 99_999));
            p.push(b'.');
            let text = repr(&p).unwrap();
            assert!(text.contains('…') && text.len() < 200, "{text}");
            // Lengths past the end, unknown opcodes, a stack underflow, no STOP: not a pickle.
            for bad in [
                &b"\x80\x05X\xff\xff\xff\x7fab."[..],
                b"\x80\x05\x97.",
                b"\x80\x05a.",
                b"\x80\x05K\x01",
                b"",
                b"\x80\x05(K\x01\x86.",
            ] {
                assert_eq!(repr(bad), None, "{bad:?}");
            }
        }
    }
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

/// A module (`.wasm` or `.wat`), its size in bytes, and the marked sites compiled into it.
fn parse_module(path: &Path) -> Result<(walrus::Module, u64, Sites, u128)> {
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
    Ok((module, size, parse_sites(&sections), file.hash))
}

/// The marked sites compiled into a module, for `devstash clear --stale`.
pub fn module_sites(path: &Path) -> Result<Vec<SiteRecord>> {
    Ok(parse_module(path)?.2.records)
}

/// Reports the marked sites compiled into a module and the capabilities it imports.
fn report_module(path: &Path, json: bool) -> Result<i32> {
    let (module, size, sites, hash) = parse_module(path)?;
    let shown = path.display();

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
            hash: format!("{hash:032x}"),
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
    field("hash", format!("{hash:032x} (XXH3-128 of the file)"))?;
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

    /// A value decoded from its whole payload.
    fn dv(ty: &str, payload: &[u8]) -> Option<String> {
        let d = decode_value(ty, &Payload::whole_of(payload.to_vec()))?;
        assert!(!d.partial);
        Some(d.text)
    }

    /// A value decoded from the first `keep` bytes of its payload (and its last `tail`).
    fn dv_start(ty: &str, payload: &[u8], keep: usize, tail: usize) -> Option<String> {
        let p = Payload {
            head: payload[..keep].to_vec(),
            tail: payload[payload.len() - tail..].to_vec(),
            len: payload.len() as u64,
        };
        let d = decode_value(ty, &p)?;
        assert!(d.partial);
        Some(d.text)
    }

    #[test]
    fn decodes_simple_values_exactly() {
        assert_eq!(dv("u64", &enc(&8u64)).as_deref(), Some("8"));
        assert_eq!(dv("i64", &enc(&-30i64)).as_deref(), Some("-30"));
        assert_eq!(
            dv("alloc::string::String", &enc(&"hi")).as_deref(),
            Some("\"hi\"")
        );
        assert_eq!(
            dv("alloc::vec::Vec<f64>", &enc(&vec![3.0f64, 6.0])).as_deref(),
            Some("[3.0, 6.0]")
        );
        assert_eq!(
            dv("core::option::Option<u8>", &enc(&Some(7u8))).as_deref(),
            Some("Some(7)")
        );
        assert_eq!(
            dv("(u8, alloc::string::String)", &enc(&(1u8, "a"))).as_deref(),
            Some("(1, \"a\")")
        );
        assert_eq!(
            dv("[u8; 3]", &enc(&[1u8, 2, 3])).as_deref(),
            Some("[1, 2, 3]")
        );
        let long: Vec<u32> = (0..40).collect();
        let shown = dv("Vec<u32>", &enc(&long)).unwrap();
        assert!(shown.ends_with(", … (40 items)]"), "{shown}");
        // Leftover bytes, a struct, or a length past the end decode to nothing.
        assert_eq!(dv("u8", &[1, 2]), None);
        assert_eq!(dv("probe::Stats", &[1]), None);
        assert_eq!(dv("Vec<u8>", &[200, 1]), None);
        assert_eq!(dv("bool", &[]), None);
    }

    #[test]
    fn a_large_value_decodes_from_its_start() {
        let mib = 1 << 20;
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 256) as u8).collect();
        let p = enc(&bytes);
        let want = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, … (3000000 items)]";
        assert_eq!(
            dv_start("serde_bytes::bytebuf::ByteBuf", &p, mib, 0).as_deref(),
            Some(want)
        );
        assert_eq!(
            dv_start("alloc::vec::Vec<u8>", &p, mib, 0).as_deref(),
            Some(want)
        );
        let text = "y".repeat(3_000_000);
        let shown = dv_start("alloc::string::String", &enc(&text), mib, 0).unwrap();
        assert_eq!(
            shown,
            format!("{:?}… (3000000 bytes)", "y".repeat(SHOWN_CHARS))
        );
        let floats: Vec<f64> = (0..1_000_000).map(|i| i as f64 / 4.0).collect();
        let shown = dv_start("alloc::vec::Vec<f64>", &enc(&floats), mib, 0).unwrap();
        assert!(
            shown.starts_with("[0.0, 0.25, 0.5, 0.75, 1.0, 1.25,")
                && shown.ends_with(", 3.75, … (1000000 items)]"),
            "{shown}"
        );
        let ints: Vec<u64> = (0..1_000_000).map(|i| i * 1_000_000_007).collect();
        let shown = dv_start("alloc::vec::Vec<u64>", &enc(&ints), mib, 0).unwrap();
        assert!(
            shown.starts_with("[0, 1000000007, 2000000014,")
                && shown.ends_with(", 15000000105, … (1000000 items)]"),
            "{shown}"
        );
        // Inside other values: what follows a sequence cut short is not shown.
        let nested = enc(&(7u32, Some(floats.clone()), "after".to_string()));
        let shown = dv_start(
            "(u32, core::option::Option<alloc::vec::Vec<f64>>, alloc::string::String)",
            &nested,
            mib,
            0,
        )
        .unwrap();
        assert!(
            shown.starts_with("(7, Some([0.0, 0.25,")
                && shown.ends_with(", … (1000000 items)]), …)"),
            "{shown}"
        );
        let words = enc(&vec!["a".to_string(), "b".repeat(2 * mib), "c".to_string()]);
        let shown = dv_start("alloc::vec::Vec<alloc::string::String>", &words, mib, 0).unwrap();
        assert!(
            shown.starts_with("[\"a\", \"bbb")
                && shown.ends_with("\"… (2097152 bytes), … (3 items)]"),
            "{shown}"
        );
        // A start too short to show anything, or bytes that are not the type: nothing.
        assert_eq!(dv_start("alloc::vec::Vec<u8>", &p, 2, 0), None);
        assert_eq!(dv_start("alloc::string::String", &p, mib, 0), None);
        // The same value read whole still decodes exactly.
        assert_eq!(dv("alloc::vec::Vec<u8>", &p[..mib]), None);
    }

    #[test]
    fn a_large_pickle_shows_its_buffer_start_and_length() {
        let mib = 1 << 20;
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 256) as u8).collect();
        // `pickle.dumps(data, protocol=5)` for bytes this large: BINBYTES8, MEMOIZE, STOP.
        let mut p = vec![0x80, 5, 0x8e];
        p.extend_from_slice(&(data.len() as u64).to_le_bytes());
        p.extend_from_slice(&data);
        p.extend_from_slice(&[0x94, b'.']);
        let shown = dv_start(PYTHON_VALUE_TYPE, &p, mib, 64 << 10).unwrap();
        assert!(
            shown.starts_with("b'\\x00\\x01\\x02") && shown.ends_with("… (3000000 bytes)"),
            "{shown}"
        );
        // Without the end of the pickle, it cannot be told to end there.
        assert_eq!(dv_start(PYTHON_VALUE_TYPE, &p, mib, 0), None);

        // numpy 2.5's `pickle.dumps(numpy.arange(40, dtype='<f8'), protocol=5)`.
        let arange = hex::decode(concat!(
            "800595b4010000000000008c136e756d70792e5f636f72652e6e756d65726963948c0b5f66726f6d",
            "627566666572949394289640010000000000000000000000000000000000000000f03f0000000000",
            "00004000000000000008400000000000001040000000000000144000000000000018400000000000",
            "001c40000000000000204000000000000022400000000000002440000000000000264000000000",
            "000028400000000000002a400000000000002c400000000000002e40000000000000304000000000",
            "00003140000000000000324000000000000033400000000000003440000000000000354000000000",
            "000036400000000000003740000000000000384000000000000039400000000000003a4000000000",
            "00003b400000000000003c400000000000003d400000000000003e400000000000003f4000000000",
            "000040400000000000804040000000000000414000000000008041400000000000004240000000",
            "00008042400000000000004340000000000080434094",
            "8c056e756d7079948c0564747970659493948c02663894898887945294284b038c013c944e4e4e4a",
            "ffffffff4affffffff4b007494624b2885948c014394749452942e"
        ))
        .unwrap();
        let want = "array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, \
                    13.0, 14.0, 15.0, … (40 items)], dtype=float64, shape=(40,))";
        assert_eq!(dv(PYTHON_VALUE_TYPE, &arange).as_deref(), Some(want));
        assert_eq!(
            dv_start(PYTHON_VALUE_TYPE, &arange, 200, 100).as_deref(),
            Some(want)
        );
        // `numpy.arange(6, dtype='>i4').reshape(2, 3)`: big-endian, two dimensions.
        let ints = hex::decode(concat!(
            "8005958e000000000000008c136e756d70792e5f636f72652e6e756d65726963948c0b5f66726f6d",
            "62756666657294939428961800000000000000000000000000000100000002000000030000000400",
            "000005948c056e756d7079948c0564747970659493948c02693494898887945294284b038c013e94",
            "4e4e4e4affffffff4affffffff4b007494624b024b0386948c014394749452942e"
        ))
        .unwrap();
        assert_eq!(
            dv(PYTHON_VALUE_TYPE, &ints).as_deref(),
            Some("array([0, 1, 2, 3, 4, 5], dtype=int32, shape=(2, 3))")
        );
        // A list read in part has no one buffer to skip: not shown.
        let mut list = vec![0x80, 5, b']', 0x94, b'('];
        for i in 0..200u8 {
            list.extend_from_slice(&[b'K', i]);
        }
        list.extend_from_slice(b"e.");
        assert_eq!(dv_start(PYTHON_VALUE_TYPE, &list, 100, 10), None);
    }

    #[test]
    fn decodes_more_standard_types_and_names_the_programs_own() {
        let mut m = std::collections::BTreeMap::new();
        m.insert("a".to_string(), 1u32);
        m.insert("b".to_string(), 2u32);
        assert_eq!(
            dv(
                "alloc::collections::btree::map::BTreeMap<alloc::string::String, u32>",
                &enc(&m)
            )
            .as_deref(),
            Some("{\"a\": 1, \"b\": 2}")
        );
        assert_eq!(
            dv(
                "std::collections::hash::map::HashMap<u8, bool, std::hash::random::RandomState>",
                &enc(&std::collections::HashMap::from([(1u8, true)]))
            )
            .as_deref(),
            Some("{1: true}")
        );
        assert_eq!(
            dv("alloc::boxed::Box<str>", &enc(&"hi")).as_deref(),
            Some("\"hi\"")
        );
        assert_eq!(
            dv(
                "alloc::vec::Vec<alloc::string::String>",
                &enc(&vec!["a\x1b[2J", "b"])
            )
            .as_deref(),
            Some("[\"a\\u{1b}[2J\", \"b\"]")
        );
        assert_eq!(
            dv(
                "core::option::Option<(u32, alloc::string::String)>",
                &enc(&Some((7u32, "x")))
            )
            .as_deref(),
            Some("Some((7, \"x\"))")
        );
        // A long string is cut; so is the whole value.
        let long = "y".repeat(100_000);
        let shown = dv("alloc::string::String", &enc(&long)).unwrap();
        assert!(shown.ends_with("\"… (100000 chars)"), "{}", &shown[190..]);
        let many: Vec<Vec<String>> = vec![vec!["z".repeat(300); 20]; 20];
        let shown = dv(
            "alloc::vec::Vec<alloc::vec::Vec<alloc::string::String>>",
            &enc(&many),
        )
        .unwrap();
        assert!(shown.chars().count() <= SHOWN_VALUE + 1, "{}", shown.len());

        assert_eq!(
            program_type("probe::Stats").as_deref(),
            Some("probe::Stats")
        );
        assert_eq!(
            program_type("alloc::vec::Vec<(u8, app::geo::Point)>").as_deref(),
            Some("app::geo::Point")
        );
        assert_eq!(program_type("alloc::vec::Vec<u8>"), None);
        let note = undecoded_note("probe::Stats", true).unwrap();
        assert!(note.contains("probe::Stats is a struct or enum"), "{note}");
        assert_eq!(undecoded_note("alloc::string::String", true), None);
    }

    #[test]
    fn json_bodies_are_reindented_in_order_and_cut() {
        let body = br#"{"b":[1,2,{}],"a":"x, y: {z} \" [","c":[ ],"d":{"e":null}}"#;
        let (lines, more) = pretty_json(body, 100);
        assert_eq!(
            lines,
            [
                "{",
                "  \"b\": [",
                "    1,",
                "    2,",
                "    {}",
                "  ],",
                "  \"a\": \"x, y: {z} \\\" [\",",
                "  \"c\": [],",
                "  \"d\": {",
                "    \"e\": null",
                "  }",
                "}"
            ]
        );
        assert_eq!(more, 0);
        let (lines, more) = pretty_json(body, 3);
        assert_eq!((lines.len(), more), (3, 9));
        // A long line is cut, and what a terminal would act on is escaped.
        let long = format!("[\"{}\\u001b\u{202e}\"]", "x".repeat(500));
        let (lines, _) = pretty_json(long.as_bytes(), 10);
        assert!(
            lines[1].ends_with('…') && lines[1].len() < 200,
            "{}",
            lines[1]
        );
        let (lines, _) = pretty_json("[\"a\u{202e}b\"]".as_bytes(), 10);
        assert_eq!(lines[1], "  \"a\\u{202e}b\"");
    }

    #[test]
    fn http_responses_read_back() {
        use devstash_protocol::HttpResponse;
        let response = |ct: &str, body: &[u8]| {
            postcard::to_allocvec(&HttpResponse {
                status: 200,
                headers: vec![("Content-Type".into(), ct.into())],
                body: body.to_vec(),
            })
            .unwrap()
        };
        let json = response("application/json", br#"{"a":1}"#);
        let v = http_view(&json, true).unwrap();
        assert_eq!((v.status, v.body_len, v.kind()), (200, 7, BodyKind::Json));
        assert_eq!(v.body_lines(BodyKind::Json), ["{", "  \"a\": 1", "}"]);
        // Trailing bytes, or a body longer than the payload of a whole value: not a response.
        let mut longer = json.clone();
        longer.push(0);
        assert_eq!(http_view(&longer, true), None);
        assert_eq!(http_view(&json[..json.len() - 1], true), None);
        // Read in part: what there is.
        let v = http_view(&json[..json.len() - 2], false).unwrap();
        assert_eq!((v.body_len, v.body.len(), v.kind()), (7, 5, BodyKind::Text));
        assert!(
            v.body_lines(v.kind())
                .last()
                .unwrap()
                .contains("only the first 5 B")
        );

        let text = response("text/plain", b"one\ntwo\x1b[31m\tthree\n");
        let v = http_view(&text, true).unwrap();
        assert_eq!(v.kind(), BodyKind::Text);
        assert_eq!(
            v.body_lines(BodyKind::Text),
            ["one", "two\\x1b[31m\\tthree"]
        );
        let many = response("text/plain", "line\n".repeat(100).as_bytes());
        let lines = http_view(&many, true).unwrap().body_lines(BodyKind::Text);
        assert_eq!(lines.len(), SHOWN_BODY_LINES + 1);
        assert_eq!(lines.last().unwrap(), "… 60 more lines");

        let png = response(
            "image/png",
            &[0x89, b'P', b'N', b'G', 0, 0, 0, 13, 0xff, 0xfe],
        );
        let v = http_view(&png, true).unwrap();
        assert_eq!(v.kind(), BodyKind::Binary);
        let lines = v.body_lines(BodyKind::Binary);
        assert!(
            lines[0].starts_with("00000000  89 50 4e 47 00"),
            "{lines:?}"
        );
        let big = response("application/octet-stream", &[0u8; 1000]);
        let lines = http_view(&big, true).unwrap().body_lines(BodyKind::Binary);
        assert_eq!(lines.len(), 5);
        assert_eq!(lines.last().unwrap(), "… 936 B more");
        // Not JSON after all: text.
        let broken = response("application/json", b"{\"a\":");
        assert_eq!(http_view(&broken, true).unwrap().kind(), BodyKind::Text);
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
        let dump = hex_dump(b"\x02hi", PREVIEW_BYTES, 3);
        assert_eq!(dump.len(), 1);
        assert!(dump[0].starts_with("00000000  02 68 69"), "{}", dump[0]);
        assert!(dump[0].ends_with("|.hi|"), "{}", dump[0]);
        assert_eq!(
            hex_dump(&[0; 300], PREVIEW_BYTES, 300).last().unwrap(),
            "… 44 B more"
        );
        assert_eq!(hex_dump(&[0; 300], 64, 300).last().unwrap(), "… 236 B more");
        assert_eq!(
            text_runs(b"\x05hello\x00ab\x01label"),
            ["\"hello\"", "\"label\""]
        );
        assert_eq!(wasi_capability("fd_write"), "open files and stdio");
        assert_eq!(wasi_capability("fd_prestat_get"), "granted directories");
        assert_eq!(wasi_capability("path_open"), "files in granted directories");
    }
}
