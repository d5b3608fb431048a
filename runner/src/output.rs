//! Everything devstash shows people and scripts, in one place: human formatting (durations,
//! sizes, ages, counts), tables and colour, JSON, escaping of text that came from a guest or a
//! file, and writing to standard output and standard error.
//!
//! Writes to standard output go through [`line`] and friends, which turn a closed pipe
//! (`devstash list | head -1`) into [`Closed`]: the binary then ends quietly with exit code 0,
//! as other command-line tools do, instead of panicking. Standard error is written with [`say`],
//! which never fails the program.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use comfy_table::{Cell, ContentArrangement, LineStyle, Table, TableStyle};
use serde::Serialize;

/// Standard output was closed by its reader: stop writing and end quietly.
#[derive(Debug)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for Closed {}

/// Whether `e` is (or was caused by) a closed standard output.
pub fn is_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<Closed>()
            || c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(Closed)
    } else {
        anyhow::Error::new(e).context("cannot write to standard output")
    }
}

/// Writes `text` and a newline to standard output.
pub fn line(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut out = anstream::stdout().lock();
    writeln!(out, "{text}").map_err(stdout_error)
}

/// Writes `text` to standard output as it is (no newline added).
pub fn raw(text: &str) -> anyhow::Result<()> {
    let mut out = anstream::stdout().lock();
    out.write_all(text.as_bytes()).map_err(stdout_error)
}

/// Writes a value as pretty JSON (and a newline) to standard output.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").map_err(stdout_error)
}

/// Writes one line to standard error in a single `write` (stderr is unbuffered, and
/// `eprintln!` with arguments writes piece by piece: a dozen system calls for a summary line).
/// A closed standard error is ignored: there is nobody left to tell.
pub fn say(line: &str) {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&bytes);
}

/// Text that came from outside devstash (a guest, a cache file, a tape), made safe to print on a
/// terminal: control characters (which could move the cursor, recolour the terminal or write to
/// the clipboard) and the invisible characters that reorder text are shown escaped, as `\x1b`,
/// `\u{9b}`, `\n`. Printable text is returned as it is, without a copy.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x80 => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape`] for text of several lines: each line escaped, the line breaks kept.
pub fn escape_lines(text: &str) -> String {
    text.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

/// Control characters (C0, DEL, C1) and the bidirectional formatting characters that can make
/// text read differently from what it is.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `2.00s`, `340ms`, `0.4ms`, `3m 20s`: short and readable.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 120.0 {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    } else if secs >= 1.0 {
        format!("{secs:.2}s")
    } else if secs >= 0.01 {
        format!("{:.0}ms", secs * 1e3)
    } else {
        format!("{:.1}ms", secs * 1e3)
    }
}

/// A size for people: `361 B`, `1.2 KiB`, `3.4 MiB`.
pub fn human_size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

/// An age for people, to the two units that matter: `45s`, `17m`, `5h 3m`, `3days 4h`.
pub fn human_age(age: Duration) -> String {
    let secs = age.as_secs();
    // Finer units stop mattering as an entry gets older; humantime writes what is left.
    let unit = match secs {
        0..120 => 1,
        120..86_400 => 60,
        86_400..5_184_000 => 3_600,
        _ => 86_400,
    };
    humantime::format_duration(Duration::from_secs(secs / unit * unit)).to_string()
}

/// A TTL in seconds as humantime writes it (`1s`, `30m`, `1day`).
pub fn ttl_text(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// `1 entry`, `3 entries`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `""` for one, `"s"` otherwise.
pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Whether to colour standard output: only on a terminal, and never with `NO_COLOR` set
/// (anstream also honours `CLICOLOR` and `CLICOLOR_FORCE`).
pub fn colour() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// A table in devstash's plain style: a header, one rule under it, no borders; it wraps to the
/// terminal's width on a terminal and never when piped.
pub fn table(header: &[&str]) -> Table {
    const STYLE: TableStyle =
        TableStyle::new().header_separator(LineStyle::none().fill('─').junction(' '));
    let mut t = Table::new();
    t.load_style(STYLE)
        .set_content_arrangement(ContentArrangement::Dynamic);
    let colour = colour();
    if colour && !std::io::stdout().is_terminal() {
        // CLICOLOR_FORCE asked for colour in a pipe; comfy-table styles terminals only.
        t.enforce_styling();
    }
    t.set_header(header.iter().map(|h| {
        let cell = Cell::new(h);
        if colour {
            cell.add_attribute(comfy_table::Attribute::Bold)
        } else {
            cell
        }
    }));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert!(matches!(escape("app::fetch é"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\x1b]52;c;SGVsbG8=\x07b\x1b[31m\u{9b}\n\u{202e}"),
            "a\\x1b]52;c;SGVsbG8=\\x07b\\x1b[31m\\u{9b}\\n\\u{202e}"
        );
        assert_eq!(escape_lines("a\x1b\nb\u{9b}\n"), "a\\x1b\nb\\u{9b}\n");
        for c in (0u32..0x20).chain(0x7f..0xa0) {
            let s = char::from_u32(c).unwrap().to_string();
            assert!(!escape(&s).chars().any(|c| c.is_control()), "{c:#x}");
        }
    }

    #[test]
    fn durations_sizes_and_ages_read_well() {
        assert_eq!(human_duration(Duration::from_micros(400)), "0.4ms");
        assert_eq!(human_duration(Duration::from_secs(200)), "3m 20s");
        assert_eq!(human_duration(Duration::from_secs(2)), "2.00s");
        assert_eq!(human_age(Duration::from_secs(45)), "45s");
        assert_eq!(human_age(Duration::from_secs(17 * 60 + 5)), "17m");
        assert_eq!(
            human_age(Duration::from_secs(5 * 3600 + 3 * 60 + 9)),
            "5h 3m"
        );
        assert_eq!(
            human_age(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5)),
            "3days 4h"
        );
        assert_eq!(human_size(361), "361 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(count(1, "entry", "entries"), "1 entry");
        assert_eq!(count(2, "entry", "entries"), "2 entries");
        // The largest TTL a guest can declare formats without overflowing.
        assert!(!ttl_text(u64::MAX).is_empty());
        assert!(!human_age(Duration::MAX).is_empty());
    }

    #[test]
    fn a_broken_pipe_is_recognized_through_context() {
        let e = anyhow::Error::new(Closed).context("listing");
        assert!(is_closed(&e));
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_closed(&anyhow::Error::new(io)));
        assert!(!is_closed(&anyhow::anyhow!("other")));
    }
}
