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
/// Argument bytes searched for strings: a call's arguments can be any size.
const SCANNED_BYTES: usize = 4096;
/// Shortest printable run shown when it is not a length-prefixed string.
const MIN_RUN: usize = 4;

/// A preview of a call's canonical argument bytes: read back into text when they are in the Rust
/// SDK's encoding (`("EUR", 3)`, see [`super::keytext`]) or the Python SDK's (`('EUR', n=3)`,
/// see [`python_args`]), else their length, the first bytes in hex, and the text found in them:
/// length-prefixed strings (a string is usually its length, a varint, then its UTF-8 bytes, so
/// `("EUR",)` reads `4 bytes: 03 45 55 52 "EUR"`) and other printable runs.
pub fn args_preview(args: &[u8]) -> String {
    if args.is_empty() {
        return "none (0 bytes)".into();
    }
    if let Some(text) = super::keytext::text(args) {
        return text;
    }
    if let Some(text) = python_args(args) {
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
    for text in strings_in(&args[..args.len().min(SCANNED_BYTES)])
        .iter()
        .take(PREVIEW_STRINGS)
    {
        let shown: String = text.chars().take(40).collect();
        let _ = write!(s, " {shown:?}");
        if shown.len() < text.len() {
            s.push('…');
        }
    }
    s
}

/// The text in argument bytes: length-prefixed strings of two or more printable characters
/// (a number's bytes can look like one by chance; requiring the exact length and printable text
/// keeps that rare), and runs of at least [`MIN_RUN`] printable characters that are not (a C
/// string, text after a fixed-size prefix).
fn strings_in(bytes: &[u8]) -> Vec<&str> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() && found.len() < PREVIEW_STRINGS {
        // A one- or two-byte varint length.
        let (len, width) = match (bytes[i], bytes.get(i + 1)) {
            (b, _) if b < 0x80 => (usize::from(b), 1),
            (b, Some(&c)) if c < 0x80 => (usize::from(b & 0x7f) | usize::from(c) << 7, 2),
            _ => (0, 1),
        };
        let start = i + width;
        let run = printable_run(&bytes[i..]);
        // A length that reads as text cuts a longer run short: `\x04hello world` is a run,
        // whereas `\x03EURA` is "EUR" and a number.
        if len >= 2
            && let Some(text) = bytes
                .get(start..start + len)
                .and_then(|t| std::str::from_utf8(t).ok())
            && text.chars().all(printable)
            && printable_run(&bytes[start..]).len() < len + MIN_RUN - 1
        {
            found.push(text);
            i = start + len;
            continue;
        }
        if run.chars().count() >= MIN_RUN && run.chars().any(char::is_alphanumeric) {
            found.push(run);
        }
        i += run.len().max(1);
    }
    found
}

/// The longest run of printable UTF-8 at the start of `bytes`, within its first 512 bytes (a
/// longer run is found as several).
fn printable_run(bytes: &[u8]) -> &str {
    let bytes = &bytes[..bytes.len().min(512)];
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        // The bytes up to the first invalid one are valid UTF-8.
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
    };
    let end = valid
        .char_indices()
        .find(|&(_, c)| !printable(c))
        .map_or(valid.len(), |(i, _)| i);
    &valid[..end]
}

/// Text a terminal shows as it is: no control characters, nothing that reorders text.
fn printable(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

// ---------------------------------------------------------------------------------------------
// Python values as Python shows them, for the Python SDK's argument bytes here and for its
// pickled values in `inspect`.

/// Most characters of one string (or bytes of one `bytes`) shown.
pub const PY_SHOWN_CHARS: usize = 80;
/// Most items of one container shown.
pub const PY_SHOWN_ITEMS: usize = 16;

/// `s` as Python's `repr` writes it (`'it\'s'`, `"it's"`, `'\x1b[31m'`), cut after
/// [`PY_SHOWN_CHARS`] characters (`'xxx'…`). Every control or reordering character is escaped.
pub fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len().min(PY_SHOWN_CHARS * 2) + 2);
    out.push(quote);
    let mut chars = s.chars();
    for c in chars.by_ref().take(PY_SHOWN_CHARS) {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !printable(c) => {
                let n = c as u32;
                let _ = match n {
                    0..0x100 => write!(out, "\\x{n:02x}"),
                    0x100..0x10000 => write!(out, "\\u{n:04x}"),
                    _ => write!(out, "\\U{n:08x}"),
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// `b` as Python's `repr` writes a `bytes` (`b'ab\x00'`), cut after [`PY_SHOWN_CHARS`] bytes.
pub fn py_bytes(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::from("b");
    out.push(char::from(quote));
    for &c in b.iter().take(PY_SHOWN_CHARS) {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(char::from(c));
            }
            0x20..0x7f => out.push(char::from(c)),
            c => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push(char::from(quote));
    if b.len() > PY_SHOWN_CHARS {
        out.push('…');
    }
    out
}

/// A float as Python's `repr` writes it: `2.5`, `1e+16`, `1e-05`, `inf`, `nan`.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `Debug` switches to an exponent where Python's `repr` does (below 1e-4, from 1e16);
    // Python writes the exponent with a sign and at least two digits.
    let s = format!("{f:?}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// A signed little-endian two's-complement integer (as Python's `int.to_bytes(…, "little",
/// signed=True)` and pickle's `LONG1` write it) in decimal; past 64 bytes, its size.
pub fn py_int(le: &[u8]) -> String {
    let Some(&last) = le.last() else {
        return "0".into();
    };
    let negative = last & 0x80 != 0;
    if le.len() > 64 {
        return format!("<int of {} bits>", le.len() * 8);
    }
    // The magnitude, big-endian.
    let mut mag: Vec<u8> = le.iter().rev().copied().collect();
    if negative {
        for b in &mut mag {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
    }
    // Repeated division by 10^9.
    let mut chunks = Vec::new();
    while mag.iter().any(|&b| b != 0) {
        let mut rem = 0u64;
        for b in &mut mag {
            let cur = (rem << 8) | u64::from(*b);
            *b = (cur / 1_000_000_000) as u8;
            rem = cur % 1_000_000_000;
        }
        chunks.push(rem);
    }
    let mut out = String::from(if negative { "-" } else { "" });
    match chunks.split_last() {
        None => out.push('0'),
        Some((first, rest)) => {
            let _ = write!(out, "{first}");
            for c in rest.iter().rev() {
                let _ = write!(out, "{c:09}");
            }
        }
    }
    out
}

/// A Python name as shown: `Point` for one of the script's (`__main__`) or a builtin,
/// `collections.OrderedDict` for the rest.
pub fn py_name(full: &str) -> &str {
    full.strip_prefix("builtins.")
        .or_else(|| full.strip_prefix("__main__."))
        .unwrap_or(full)
}

/// Longest text made of a Python call's arguments.
const PY_MAX_ARGS_TEXT: usize = 200;
/// Deepest nesting followed in a Python call's arguments.
const PY_MAX_DEPTH: usize = 24;

/// The arguments of a call as text, if the bytes are the Python SDK's canonical encoding (see
/// `guest-sdk/python/devstash/_key.py`): `('EUR', n=3)`, with the defaults the call used and
/// the values its function captures after it. Values the runner cannot read back (a pandas
/// frame, an unknown tag) end the text with `…`, as do bytes that end early (a tape keeps only
/// the start of a call's arguments) and text cut at its limit.
pub fn python_args(bytes: &[u8]) -> Option<String> {
    let mut r = PyKey {
        bytes,
        at: 0,
        out: String::new(),
        muted: false,
    };
    if bytes.first() != Some(&b'A') {
        return None;
    }
    r.at = 1;
    match r.call() {
        Ok(()) if r.at == bytes.len() => Some(r.out),
        Ok(()) => None,
        Err(PyStop::Short | PyStop::Full | PyStop::Opaque) if r.out.len() > 1 => {
            r.out.push('…');
            Some(r.out)
        }
        Err(_) => None,
    }
}

enum PyStop {
    /// The bytes end before the value does.
    Short,
    /// The text is long enough.
    Full,
    /// A value whose bytes this reader cannot step over: what was read is right.
    Opaque,
    /// Not this encoding.
    Foreign,
}

struct PyKey<'a> {
    bytes: &'a [u8],
    at: usize,
    out: String,
    /// Values are being stepped over, not shown.
    muted: bool,
}

type PyR = Result<(), PyStop>;

impl PyKey<'_> {
    fn byte(&mut self) -> Result<u8, PyStop> {
        let b = *self.bytes.get(self.at).ok_or(PyStop::Short)?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, PyStop> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(PyStop::Foreign)
    }

    fn take(&mut self, n: u64) -> Result<&[u8], PyStop> {
        let n = usize::try_from(n).map_err(|_| PyStop::Foreign)?;
        let end = self.at.checked_add(n).ok_or(PyStop::Foreign)?;
        if end > self.bytes.len() {
            self.at = self.bytes.len();
            return Err(PyStop::Short);
        }
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// A `name`: a varint length and UTF-8.
    fn name(&mut self) -> Result<String, PyStop> {
        let n = self.varint()?;
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| PyStop::Foreign)
    }

    fn push(&mut self, s: &str) -> PyR {
        if self.muted {
            return Ok(());
        }
        self.out.push_str(s);
        if self.out.len() > PY_MAX_ARGS_TEXT {
            let mut end = PY_MAX_ARGS_TEXT;
            while !self.out.is_char_boundary(end) {
                end -= 1;
            }
            self.out.truncate(end);
            return Err(PyStop::Full);
        }
        Ok(())
    }

    /// `'A' varint(n) value* varint(k) (name value)*`, then the optional extras:
    /// `'X' varint(n) (name value)* varint(cells) value*`.
    fn call(&mut self) -> PyR {
        let n = self.varint()?;
        self.push("(")?;
        let mut first = true;
        for _ in 0..n {
            if !first {
                self.push(", ")?;
            }
            first = false;
            self.value(1)?;
        }
        let k = self.varint()?;
        for _ in 0..k {
            if !first {
                self.push(", ")?;
            }
            first = false;
            let name = self.name()?;
            self.push(&name)?;
            self.push("=")?;
            self.value(1)?;
        }
        self.push(")")?;
        if self.bytes.get(self.at) != Some(&b'X') {
            return Ok(());
        }
        self.at += 1;
        let used = self.varint()?;
        if used > 0 {
            self.push(" [defaults ")?;
            for i in 0..used {
                if i > 0 {
                    self.push(", ")?;
                }
                let name = self.name()?;
                self.push(&name)?;
                self.push("=")?;
                self.value(1)?;
            }
            self.push("]")?;
        }
        let cells = self.varint()?;
        if cells > 0 {
            self.push(" [captures ")?;
            for i in 0..cells {
                if i > 0 {
                    self.push(", ")?;
                }
                self.value(1)?;
            }
            self.push("]")?;
        }
        Ok(())
    }

    /// `n` values joined by `, `, cut after [`PY_SHOWN_ITEMS`] (the rest are still read, to find
    /// where the container ends, but not shown).
    fn items(&mut self, n: u64, depth: usize, pairs: bool) -> PyR {
        for i in 0..n {
            if i == PY_SHOWN_ITEMS as u64 {
                self.skip(depth, |r, depth| {
                    for _ in i..n {
                        r.value(depth + 1)?;
                        if pairs {
                            r.value(depth + 1)?;
                        }
                    }
                    Ok(())
                })?;
                return self.push(&format!(", … ({n} items)"));
            }
            if i > 0 {
                self.push(", ")?;
            }
            self.value(depth + 1)?;
            if pairs {
                self.push(": ")?;
                self.value(depth + 1)?;
            }
        }
        Ok(())
    }

    /// Reads what `read` reads without showing it.
    fn skip(&mut self, depth: usize, read: impl FnOnce(&mut Self, usize) -> PyR) -> PyR {
        let was = std::mem::replace(&mut self.muted, true);
        let r = read(self, depth);
        self.muted = was;
        r
    }

    fn int(&mut self) -> Result<String, PyStop> {
        let n = self.varint()?;
        if n > 4096 {
            return Err(PyStop::Foreign);
        }
        Ok(py_int(self.take(n)?))
    }

    fn f64(&mut self) -> Result<f64, PyStop> {
        let b = self.take(8)?;
        Ok(f64::from_le_bytes(
            b.try_into().map_err(|_| PyStop::Foreign)?,
        ))
    }

    /// A tuple's values as a call's arguments: `(1, 2)` for `_T_TUPLE 2 1 2`.
    fn tuple_args(&mut self, depth: usize) -> PyR {
        if self.byte()? != 0x0a {
            return Err(PyStop::Foreign);
        }
        let n = self.varint()?;
        self.push("(")?;
        self.items(n, depth, false)?;
        self.push(")")
    }

    fn value(&mut self, depth: usize) -> PyR {
        if depth > PY_MAX_DEPTH {
            return Err(PyStop::Foreign);
        }
        let tag = self.byte()?;
        match tag {
            0x00 => self.push("None"),
            0x01 => self.push("False"),
            0x02 => self.push("True"),
            0x03 => {
                let s = self.int()?;
                self.push(&s)
            }
            0x04 => {
                let f = self.f64()?;
                self.push(&py_float(f))
            }
            0x05 => {
                let (re, im) = (self.f64()?, self.f64()?);
                self.push(&format!("({}+{}j)", py_float(re), py_float(im)))
            }
            0x06 => {
                let n = self.varint()?;
                let short = n > (self.bytes.len() - self.at) as u64;
                let end = self
                    .at
                    .saturating_add(usize::try_from(n).unwrap_or(usize::MAX))
                    .min(self.bytes.len());
                let b = &self.bytes[self.at..end];
                self.at = end;
                // Enough bytes for more characters than are shown (at most 4 bytes each), so
                // a long string is not copied whole to show its start.
                let b = &b[..b.len().min(PY_SHOWN_CHARS * 4 + 4)];
                let text = py_str(&String::from_utf8_lossy(b));
                if short {
                    // Cut short: the string as far as it goes, without its closing quote.
                    let open = text.trim_end_matches('…');
                    self.push(&open[..open.len() - 1])?;
                    return Err(PyStop::Short);
                }
                self.push(&text)
            }
            0x07 | 0x08 => {
                let n = self.varint()?;
                let b = py_bytes(self.take(n)?);
                if tag == 0x08 {
                    self.push(&format!("bytearray({b})"))
                } else {
                    self.push(&b)
                }
            }
            0x09 | 0x0a | 0x0c | 0x0d => {
                let n = self.varint()?;
                let (open, close) = match (tag, n) {
                    (0x09, _) => ("[", "]"),
                    (0x0a, 1) => ("(", ",)"),
                    (0x0a, _) => ("(", ")"),
                    (0x0c, 0) => ("set(", ")"),
                    (0x0c, _) => ("{", "}"),
                    (_, 0) => ("frozenset(", ")"),
                    _ => ("frozenset({", "})"),
                };
                self.push(open)?;
                self.items(n, depth, false)?;
                self.push(close)
            }
            0x0b => {
                let n = self.varint()?;
                self.push("{")?;
                self.items(n, depth, true)?;
                self.push("}")
            }
            0x0e => self.push("Ellipsis"),
            0x0f => self.push("NotImplemented"),
            0x10 | 0x11 => {
                self.push(if tag == 0x10 { "range(" } else { "slice(" })?;
                for i in 0..3 {
                    if i > 0 {
                        self.push(", ")?;
                    }
                    self.value(depth + 1)?;
                }
                self.push(")")
            }
            0x12 => {
                let format = self.name()?;
                self.push(&format!("memoryview(format {}, shape ", py_str(&format)))?;
                self.value(depth + 1)?;
                let n = self.varint()?;
                self.take(n)?;
                self.push(&format!(", {n} bytes)"))
            }
            0x13 => {
                let name = self.name()?;
                self.push(&format!("<class {}>", py_str(&name)))
            }
            0x14 => {
                let name = self.name()?;
                self.push(&format!("<module {}>", py_str(&name)))
            }
            0x15 => {
                let name = self.name()?;
                let _fingerprint = self.name()?;
                self.push(&format!("<function {}>", py_name(&name)))?;
                // Its defaults, keyword defaults and closure cells decide it too, but are not
                // shown: step over them.
                self.skip(depth, |r, depth| {
                    r.value(depth + 1)?;
                    r.value(depth + 1)?;
                    let cells = r.varint()?;
                    for _ in 0..cells {
                        r.value(depth + 1)?;
                    }
                    Ok(())
                })
            }
            0x16 => {
                let name = self.name()?;
                self.push(&format!("<built-in {}", py_name(&name)))?;
                if self.bytes.get(self.at) == Some(&0x00) {
                    self.at += 1;
                } else {
                    self.push(" of ")?;
                    self.value(depth + 1)?;
                }
                self.push(">")
            }
            0x17 => {
                self.push("<bound method ")?;
                self.value(depth + 1)?;
                self.push(" of ")?;
                self.value(depth + 1)?;
                self.push(">")
            }
            0x18 => {
                self.varint()?;
                self.push("<function (itself)>")
            }
            0x19 => {
                let ty = self.name()?;
                let member = self.name()?;
                self.push(&format!("<{}.{member}>", py_name(&ty)))
            }
            0x1a => self.object(depth),
            0x1b => {
                let ty = self.name()?;
                self.push(py_name(&ty))?;
                self.push("(")?;
                self.value(depth + 1)?;
                // Attributes of the instance (None for most).
                if self.bytes.get(self.at) == Some(&0x00) {
                    self.at += 1;
                } else {
                    self.push(", ")?;
                    self.value(depth + 1)?;
                }
                if ty == "collections.defaultdict" && self.at < self.bytes.len() {
                    // Its default factory, which the SDK writes only when there is one.
                    self.push(", default=")?;
                    self.value(depth + 1)?;
                }
                self.push(")")
            }
            0x1c => {
                let n = self.varint()?;
                self.push("OrderedDict({")?;
                self.items(n, depth, true)?;
                self.push("})")
            }
            0x1d => {
                let ty = self.name()?;
                let n = self.varint()?;
                self.take(n)?;
                self.push(&format!("<{} (pickled, {n} bytes)>", py_name(&ty)))
            }
            0x1e..=0x21 => {
                let what = match tag {
                    0x1e => "datetime.datetime",
                    0x1f => "datetime.date",
                    0x20 => "datetime.time",
                    _ => "datetime.timedelta",
                };
                self.push(what)?;
                self.tuple_args(depth + 1)?;
                if matches!(tag, 0x1e | 0x20) {
                    if self.bytes.get(self.at) == Some(&0x00) {
                        self.at += 1;
                    } else {
                        self.push(" tz ")?;
                        self.value(depth + 1)?;
                    }
                }
                Ok(())
            }
            0x22 => {
                self.push("datetime.timezone(")?;
                self.value(depth + 1)?;
                self.push(", ")?;
                self.value(depth + 1)?;
                self.push(")")
            }
            0x23 => {
                let text = self.name()?;
                self.push(&format!("Decimal({})", py_str(&text)))
            }
            0x24 => {
                let (a, b) = (self.int_tagged()?, self.int_tagged()?);
                self.push(&format!("Fraction({a}, {b})"))
            }
            0x25 => {
                let ty = self.name()?;
                let path = self.name()?;
                let short = ty.rsplit('.').next().unwrap_or(&ty).to_string();
                self.push(&format!("{short}({})", py_str(&path)))
            }
            0x26 | 0x27 => {
                if tag == 0x27 && self.byte()? != 0x26 {
                    return Err(PyStop::Foreign);
                }
                let dtype = self.name()?;
                self.push(&format!("<ndarray {}, shape ", py_str(&dtype)))?;
                self.value(depth + 1)?;
                self.push(">")?;
                if tag == 0x27 {
                    return self.skip(depth, |r, depth| r.value(depth + 1));
                }
                match self.byte()? {
                    0 => {
                        let n = self.varint()?;
                        self.take(n).map(drop)
                    }
                    1 => self.take(32).map(drop),
                    _ => Err(PyStop::Foreign),
                }
            }
            0x28 => {
                let dtype = self.name()?;
                self.push(&format!("<numpy {}: ", py_str(&dtype)))?;
                if dtype == "O" {
                    self.value(depth + 1)?;
                } else {
                    let n = self.varint()?;
                    let b = py_bytes(self.take(n)?);
                    self.push(&b)?;
                }
                self.push(">")
            }
            0x29..=0x2c => {
                let what = match tag {
                    0x29 => "pandas.DataFrame",
                    0x2a => "pandas.Series",
                    0x2b => "pandas.Index",
                    _ => "pandas values",
                };
                self.push(&format!("<{what}>"))?;
                Err(PyStop::Opaque)
            }
            0x2d => {
                self.take(32)?;
                self.push("Secret(<redacted>)")
            }
            0x2e => {
                self.push("functools.partial(")?;
                for i in 0..4 {
                    if i > 0 {
                        self.push(", ")?;
                    }
                    self.value(depth + 1)?;
                }
                self.push(")")
            }
            0x2f => self.push("<empty cell>"),
            0x31 => {
                let b = self.take(16)?;
                let hex: String = b.iter().map(|b| format!("{b:02x}")).collect();
                self.push(&format!(
                    "UUID('{}-{}-{}-{}-{}')",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                ))
            }
            _ => Err(PyStop::Foreign),
        }
    }

    /// An int written with its tag.
    fn int_tagged(&mut self) -> Result<String, PyStop> {
        if self.byte()? != 0x03 {
            return Err(PyStop::Foreign);
        }
        self.int()
    }

    /// `_T_OBJECT name (args tuple) state listitems dictitems`, or `_T_OBJECT name name` for a
    /// singleton pickled by name: shown as `Point(1, x=2)`.
    fn object(&mut self, depth: usize) -> PyR {
        let ty = self.name()?;
        if self.bytes.get(self.at) != Some(&0x0a) {
            let name = self.name()?;
            return self.push(&format!("<{} {name}>", py_name(&ty)));
        }
        self.push(py_name(&ty))?;
        self.at += 1;
        let n = self.varint()?;
        self.push("(")?;
        self.items(n, depth, false)?;
        let mut any = n > 0;
        // The state: a dict of attributes is shown as keywords; (dict, slots) as both.
        let parts: usize = match self.bytes.get(self.at) {
            Some(0x0a) if self.bytes.get(self.at + 1) == Some(&2) => {
                self.at += 2;
                2
            }
            _ => 1,
        };
        for _ in 0..parts {
            match self.bytes.get(self.at) {
                Some(0x00) => self.at += 1,
                Some(0x0b) => {
                    self.at += 1;
                    let k = self.varint()?;
                    for i in 0..k {
                        if any {
                            self.push(", ")?;
                        }
                        any = true;
                        if i == PY_SHOWN_ITEMS as u64 {
                            self.skip(depth, |r, depth| {
                                for _ in i..k {
                                    r.value(depth + 1)?;
                                    r.value(depth + 1)?;
                                }
                                Ok(())
                            })?;
                            self.push("…")?;
                            break;
                        }
                        if self.bytes.get(self.at) == Some(&0x06) {
                            self.at += 1;
                            let key = self.name()?;
                            self.push(&key)?;
                            self.push("=")?;
                        } else {
                            self.value(depth + 1)?;
                            self.push(": ")?;
                        }
                        self.value(depth + 1)?;
                    }
                }
                _ => {
                    if any {
                        self.push(", ")?;
                    }
                    any = true;
                    self.value(depth + 1)?;
                }
            }
        }
        // List items and dict items (a list or dict subclass pickled by reduction).
        for _ in 0..2 {
            if self.bytes.get(self.at) == Some(&0x00) {
                self.at += 1;
            } else {
                if any {
                    self.push(", ")?;
                }
                any = true;
                self.value(depth + 1)?;
            }
        }
        self.push(")")
    }
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

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

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
        // Text that is not length-prefixed (a C string, a fixed-size field before it) is found
        // too; a terminal escape in it is quoted, never passed on.
        let p = args_preview(b"\x01\x02\x03\x04hello world\0\x1b[31mred\0");
        assert!(p.ends_with(" \"hello world\" \"[31mred\""), "{p}");
        let p = args_preview(b"\x03EURA");
        assert!(p.ends_with(" \"EUR\""), "{p}");
        let p = args_preview(b"\xffhello\x1b]52;c;evil\x07");
        assert!(p.contains("\"hello\""), "{p}");
        assert!(!p.chars().any(|c| c.is_control()), "{p:?}");
        // Large arguments: bounded work and text.
        let mut big = vec![0xffu8; 10 << 20];
        big[5 << 20..(5 << 20) + 5].copy_from_slice(b"later");
        let p = args_preview(&big);
        assert!(p.len() < 200 && !p.contains("later"), "{p}");
    }

    /// Bytes the Python SDK's `encode_call` wrote (`guest-sdk/python/devstash/_key.py`).
    #[test]
    fn python_arguments_read_back_as_python() {
        for (hex, text) in [
            ("410103011500", "(21)"),
            ("4101060345555201016e030103", "('EUR', n=3)"),
            ("4101090403010103010203010303010400", "([1, 2, 3, 4])"),
            (
                "41040b02060161090200020601620301010400000000000004400302d4fe030b00000000000000000\
                 0000100",
                "({'a': [None, True], 'b': 1}, 2.5, -300, 1208925819614629174706176)",
            ),
            (
                "4107060a69742773201b5b33316d07030061620a010301010a000c000c010301030d0103010400",
                "(\"it's \\x1b[31m\", b'\\x00ab', (1,), (), set(), {3}, frozenset({4}))",
            ),
            (
                "41011a0e5f5f6d61696e5f5f2e506f696e740a000b02060178030101060179040000000000000040\
                 000000",
                "(Point(x=1, y=2.0))",
            ),
            (
                "41031f0a030302e8070301050301062304312e35302515706174686c69622e50757265506f73697\
                 850617468042f612f6200",
                "(datetime.date(2024, 5, 6), Decimal('1.50'), PurePosixPath('/a/b'))",
            ),
            // A function's defaults and captured values, after its arguments.
            (
                "4101030101005801016203010201030105",
                "(1) [defaults b=2] [captures 5]",
            ),
        ] {
            let bytes = unhex(&hex.replace(' ', ""));
            assert_eq!(python_args(&bytes).as_deref(), Some(text), "{hex}");
            assert_eq!(args_preview(&bytes), text);
        }
        // 40 items: 16 shown, and the count.
        let mut list = vec![0x41, 1, 0x09, 40];
        for i in 0..40u8 {
            list.extend([3, 1, i]);
        }
        list.push(0);
        let text = python_args(&list).unwrap();
        assert!(text.starts_with("([0, 1, 2,"), "{text}");
        assert!(text.ends_with(", 15, … (40 items)])"), "{text}");
        // Cut short (a tape keeps the first bytes of the arguments): what was read, then `…`.
        assert_eq!(
            python_args(&unhex("410206054555524f")).as_deref(),
            Some("('EURO…")
        );
        assert_eq!(
            python_args(&unhex("41020301150301")).as_deref(),
            Some("(21, …")
        );
        // A long string: cut, and the text stays short.
        let mut long = vec![0x41, 1, 0x06, 0x90, 0x4e];
        long.extend(std::iter::repeat_n(b'x', 10_000));
        long.push(0);
        let text = python_args(&long).unwrap();
        assert!(text.len() < 120 && text.contains("'xxxx"), "{text}");
        // Not the Python encoding: the generic preview.
        assert_eq!(python_args(b"Ahello"), None);
        assert_eq!(python_args(&[0x41, 1, 0x99, 0]), None);
        assert_eq!(python_args(&[0x41, 0, 0, 7]), None, "trailing bytes");
        assert!(args_preview(b"Ahello").starts_with("6 bytes: 41 68"));
    }

    #[test]
    fn python_reprs() {
        assert_eq!(py_str("plain"), "'plain'");
        assert_eq!(py_str("it's"), "\"it's\"");
        assert_eq!(py_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(
            py_str("\x1b[2J\u{202e}\u{9b}\n"),
            "'\\x1b[2J\\u202e\\x9b\\n'"
        );
        assert_eq!(py_bytes(b"\x00ab'"), "b\"\\x00ab'\"");
        assert_eq!(py_float(2.5), "2.5");
        assert_eq!(py_float(1.0), "1.0");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(1e-5), "1e-05");
        assert_eq!(py_float(f64::NEG_INFINITY), "-inf");
        assert_eq!(py_int(&[]), "0");
        assert_eq!(py_int(&[0xd4, 0xfe]), "-300");
        assert_eq!(py_int(&[0x80]), "-128");
        assert_eq!(
            py_int(&unhex("0000000000000000000001")),
            "1208925819614629174706176"
        );
        assert_eq!(
            py_int(&unhex("0000000000000000c0")),
            "-1180591620717411303424"
        );
        assert_eq!(py_int(&[1; 100]), "<int of 800 bits>");
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
