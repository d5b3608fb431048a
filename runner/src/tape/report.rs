//! What record, replay and inspect print: divergence reports, `--verify` diffs and tape
//! summaries.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use similar::TextDiff;

use super::format::{CallOutcome, Event, HttpRecord, SiteRecord, Stream, Tape};
use super::replay::Divergence;
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
    /// Exit code.
    pub code: i32,
}

/// `None` when the replay's output is the recording's, byte for byte; otherwise a unified diff of
/// each stream that differs, and the exit codes if they differ.
pub fn verify_diff(recorded: &RunOutput<'_>, replayed: &RunOutput<'_>) -> Option<String> {
    let mut out = String::new();
    for (name, old, new) in [
        ("stdout", recorded.stdout, replayed.stdout),
        ("stderr", recorded.stderr, replayed.stderr),
    ] {
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

/// The summary `devstash inspect TAPE` prints.
pub fn summary(path: &Path, tape: &Tape) -> String {
    let h = &tape.header;
    let mut s = String::new();
    let _ = writeln!(s, "tape {}", path.display());
    let _ = writeln!(
        s,
        "  recorded   {} by devstash {} (tape format {})",
        h.created,
        h.devstash,
        super::format::FORMAT_VERSION
    );
    let _ = writeln!(
        s,
        "  module     {} ({})",
        h.module,
        if h.module_xxh3.is_empty() {
            format!(
                "blake3 {}",
                &h.module_blake3[..h.module_blake3.len().min(16)]
            )
        } else {
            format!("xxh3 {}", &h.module_xxh3[..h.module_xxh3.len().min(16)])
        }
    );
    let _ = writeln!(
        s,
        "  size       {}, {} events",
        human_size(tape.file_len as u64),
        tape.events.len()
    );

    // Events by kind: count and encoded size.
    let mut by_kind: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
    let mut sites: Vec<&SiteRecord> = Vec::new();
    let mut exchanges: Vec<&HttpRecord> = Vec::new();
    let mut per_site: BTreeMap<u32, (u64, u64, u64, u64)> = BTreeMap::new();
    let (mut stdout, mut stderr, mut stdin, mut random) = (0u64, 0u64, 0u64, 0u64);
    let mut exit = None;
    let mut argv = Vec::new();
    let mut env_count = 0;
    for (event, size) in tape.events.iter().zip(&tape.frame_sizes) {
        let e = by_kind.entry(event.kind()).or_default();
        e.0 += 1;
        e.1 += *size as u64;
        match event {
            Event::Invocation(i) => {
                argv = i.argv.clone();
                env_count = i.env.len();
            }
            Event::Site(site) => sites.push(site),
            Event::Call(c) => {
                let p = per_site.entry(c.site).or_default();
                match c.outcome {
                    CallOutcome::Hit { .. } => p.0 += 1,
                    CallOutcome::Computed { .. } => p.1 += 1,
                    CallOutcome::Failed | CallOutcome::Unfinished => p.2 += 1,
                }
                if c.depth > 0 {
                    p.3 += 1;
                }
            }
            Event::Output(o) => match o.stream {
                Stream::Stdout => stdout += o.bytes.len() as u64,
                Stream::Stderr => stderr += o.bytes.len() as u64,
            },
            Event::Stdin(b) => stdin += b.len() as u64,
            Event::Random(b) => random += b.len() as u64,
            Event::Exit(x) => exit = Some(x.clone()),
            Event::Http(h) => exchanges.push(h),
            _ => {}
        }
    }
    let _ = writeln!(
        s,
        "  run        {}{}",
        shell_words(&argv),
        match env_count {
            0 => String::new(),
            1 => " (1 environment variable)".into(),
            n => format!(" ({n} environment variables)"),
        }
    );
    if let Some(x) = &exit {
        let _ = write!(s, "  exit code  {}", x.code);
        if let Some(trap) = &x.trap {
            let first = trap.lines().next().unwrap_or_default();
            let _ = write!(s, " ({first})");
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "  io         stdin {}, stdout {}, stderr {}, random {}",
        human_size(stdin),
        human_size(stdout),
        human_size(stderr),
        human_size(random)
    );
    let _ = writeln!(s, "events by kind:");
    for (kind, (count, size)) in &by_kind {
        let name = match Event::kind_name(*kind) {
            "unknown" => format!("kind {kind} (unknown)"),
            n => n.to_string(),
        };
        let _ = writeln!(s, "  {name:<18} {count:>7}  {:>10}", human_size(*size));
    }
    if !sites.is_empty() {
        let _ = writeln!(s, "sites:");
        for site in sites {
            let (hits, computed, failed, nested) =
                per_site.get(&site.id).copied().unwrap_or_default();
            let mut counts = vec![format!("{computed} computed"), format!("{hits} hit")];
            if failed > 0 {
                counts.push(format!("{failed} without a value"));
            }
            if nested > 0 {
                counts.push(format!("{nested} inside other calls"));
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
    if !exchanges.is_empty() {
        const SHOWN: usize = 16;
        let _ = writeln!(s, "http exchanges:");
        for h in exchanges.iter().take(SHOWN) {
            let inside = if h.depth > 0 {
                " (inside a marked call)"
            } else {
                ""
            };
            let _ = writeln!(s, "  {}{inside}", h.preview);
        }
        if exchanges.len() > SHOWN {
            let _ = writeln!(s, "  … and {} more", exchanges.len() - SHOWN);
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
        let a = RunOutput {
            stdout: b"total: 3\nok\n",
            stderr: b"",
            code: 0,
        };
        assert!(verify_diff(&a, &a).is_none());
        let b = RunOutput {
            stdout: b"total = 3\nok\n",
            stderr: b"",
            code: 1,
        };
        let d = verify_diff(&a, &b).unwrap();
        assert!(d.contains("--- recorded stdout"), "{d}");
        assert!(d.contains("+++ replayed stdout"), "{d}");
        assert!(d.contains("-total: 3") && d.contains("+total = 3"), "{d}");
        assert!(d.contains("exit code: recorded 0, replayed 1"), "{d}");
        assert!(!d.contains("stderr"), "{d}");
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
