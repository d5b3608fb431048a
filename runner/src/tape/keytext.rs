//! Reads the argument bytes of a marked call back into text, for divergence reports.
//!
//! The Rust SDK encodes a call's arguments canonically with a tag for every value and the names
//! of every struct, field, enum and variant (see the guest SDK's `key` module for the format), so
//! the runner can show `("EUR", 3)` or `Query { lo: 2, hi: 9 }` without knowing the types.
//! Bytes in any other encoding (a guest built with another SDK), or cut short (a tape keeps only
//! the start of a call's arguments), give `None` or end in `…`.

use std::fmt::Write as _;

/// Longest text made.
const MAX_TEXT: usize = 160;
/// Deepest nesting followed.
const MAX_DEPTH: usize = 32;

/// The arguments as text, if the bytes are in the Rust SDK's encoding. `…` marks text cut at
/// [`MAX_TEXT`], or bytes that end early.
pub fn text(bytes: &[u8]) -> Option<String> {
    let mut r = Reader {
        bytes,
        at: 0,
        names: Vec::new(),
        out: String::new(),
    };
    match r.value(0) {
        Ok(()) if r.at == bytes.len() => {}
        Ok(()) => return None,
        // Cut short (a tape keeps the start of the arguments) or cut at the text limit: what was
        // read so far is still right.
        Err(Stop::Short | Stop::Full) if !r.out.is_empty() => r.out.push('…'),
        Err(_) => return None,
    }
    Some(r.out)
}

enum Stop {
    /// The bytes end before the value does.
    Short,
    /// The text is long enough.
    Full,
    /// The bytes are not in this encoding.
    Foreign,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    names: Vec<String>,
    out: String,
}

type R = Result<(), Stop>;

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Stop> {
        let b = *self.bytes.get(self.at).ok_or(Stop::Short)?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u128, Stop> {
        let mut v = 0u128;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            v |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Stop::Foreign)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Stop> {
        let end = self.at.checked_add(n).ok_or(Stop::Foreign)?;
        if end > self.bytes.len() {
            self.at = self.bytes.len();
            return Err(Stop::Short);
        }
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn push(&mut self, s: &str) -> R {
        self.out.push_str(s);
        if self.out.len() > MAX_TEXT {
            let mut end = MAX_TEXT;
            while !self.out.is_char_boundary(end) {
                end -= 1;
            }
            self.out.truncate(end);
            return Err(Stop::Full);
        }
        Ok(())
    }

    fn name(&mut self) -> Result<String, Stop> {
        match self.byte()? {
            1 => {
                let n = usize::try_from(self.varint()?).map_err(|_| Stop::Foreign)?;
                let bytes = self.take(n)?;
                let name = std::str::from_utf8(bytes)
                    .map_err(|_| Stop::Foreign)?
                    .to_string();
                self.names.push(name.clone());
                Ok(name)
            }
            2 => {
                let id = usize::try_from(self.varint()?).map_err(|_| Stop::Foreign)?;
                self.names.get(id).cloned().ok_or(Stop::Foreign)
            }
            _ => Err(Stop::Foreign),
        }
    }

    fn list(&mut self, depth: usize, open: &str, close: &str, n: Option<u128>) -> R {
        self.push(open)?;
        let mut i = 0u128;
        loop {
            match n {
                Some(n) if i == n => break,
                None if self.bytes.get(self.at) == Some(&0xff) => {
                    self.at += 1;
                    break;
                }
                _ => {}
            }
            if i > 0 {
                self.push(", ")?;
            }
            self.value(depth + 1)?;
            i += 1;
        }
        if n == Some(1) && open == "(" {
            self.push(",")?;
        }
        self.push(close)
    }

    fn fields(&mut self, depth: usize) -> R {
        self.push(" { ")?;
        let mut first = true;
        while self.bytes.get(self.at) != Some(&0xff) {
            if !first {
                self.push(", ")?;
            }
            first = false;
            let field = self.name()?;
            self.push(&field)?;
            self.push(": ")?;
            self.value(depth + 1)?;
        }
        self.at += 1;
        self.push(" }")
    }

    fn variant(&mut self) -> R {
        let name = self.name()?;
        self.varint()?;
        let variant = self.name()?;
        self.push(&format!("{name}::{variant}"))
    }

    fn value(&mut self, depth: usize) -> R {
        if depth > MAX_DEPTH {
            return Err(Stop::Foreign);
        }
        let tag = self.byte()?;
        match tag {
            0x00 => self.push("()"),
            0x01 => match self.byte()? {
                0 => self.push("false"),
                1 => self.push("true"),
                _ => Err(Stop::Foreign),
            },
            0x02..=0x06 => {
                let z = self.varint()?;
                let v = (z >> 1) as i128 ^ -((z & 1) as i128);
                self.push(&v.to_string())
            }
            0x07..=0x0b => {
                let v = self.varint()?;
                self.push(&v.to_string())
            }
            0x0c => {
                let b = self.take(4)?;
                let v = f32::from_le_bytes(b.try_into().map_err(|_| Stop::Foreign)?);
                self.push(&format!("{v:?}"))
            }
            0x0d => {
                let b = self.take(8)?;
                let v = f64::from_le_bytes(b.try_into().map_err(|_| Stop::Foreign)?);
                self.push(&format!("{v:?}"))
            }
            0x0e => {
                let c = u32::try_from(self.varint()?).ok().and_then(char::from_u32);
                self.push(&format!("{:?}", c.ok_or(Stop::Foreign)?))
            }
            0x0f => {
                let n = usize::try_from(self.varint()?).map_err(|_| Stop::Foreign)?;
                let short = n > self.bytes.len() - self.at;
                let end = self.at.saturating_add(n).min(self.bytes.len());
                let b = &self.bytes[self.at..end];
                self.at += b.len();
                let text = String::from_utf8_lossy(b);
                let quoted = format!("{text:?}");
                if short {
                    self.push(&quoted[..quoted.len() - 1])?;
                    return Err(Stop::Short);
                }
                self.push(&quoted)
            }
            0x10 => {
                let n = usize::try_from(self.varint()?).map_err(|_| Stop::Foreign)?;
                let b = self.take(n)?;
                let mut s = String::from("b\"");
                for byte in b.iter().take(32) {
                    let _ = write!(s, "\\x{byte:02x}");
                }
                if b.len() > 32 {
                    s.push('…');
                }
                s.push('"');
                self.push(&s)
            }
            0x11 => self.push("None"),
            0x12 => {
                self.push("Some(")?;
                self.value(depth + 1)?;
                self.push(")")
            }
            0x13 => {
                let name = self.name()?;
                self.push(&name)
            }
            0x14 => self.variant(),
            0x15 => {
                let name = self.name()?;
                self.push(&name)?;
                self.push("(")?;
                self.value(depth + 1)?;
                self.push(")")
            }
            0x16 => {
                self.variant()?;
                self.push("(")?;
                self.value(depth + 1)?;
                self.push(")")
            }
            0x17 => self.list(depth, "[", "]", None),
            0x18 => {
                let n = self.varint()?;
                self.list(depth, "(", ")", Some(n))
            }
            0x19 => {
                let name = self.name()?;
                self.push(&name)?;
                let n = self.varint()?;
                self.list(depth, "(", ")", Some(n))
            }
            0x1a => {
                self.variant()?;
                let n = self.varint()?;
                self.list(depth, "(", ")", Some(n))
            }
            0x1b => self.map(depth, None),
            0x1c => {
                let name = self.name()?;
                self.push(&name)?;
                self.fields(depth)
            }
            0x1d => {
                self.variant()?;
                self.fields(depth)
            }
            // A set or an unordered map: each item was encoded on its own, with its own names.
            0x1e | 0x1f => {
                let n = self.varint()?;
                self.push("{")?;
                for i in 0..n {
                    if i > 0 {
                        self.push(", ")?;
                    }
                    let outer = std::mem::take(&mut self.names);
                    let r = if tag == 0x1e {
                        self.value(depth + 1)
                    } else {
                        self.pair(depth)
                    };
                    self.names = outer;
                    r?;
                }
                self.push("}")
            }
            _ => Err(Stop::Foreign),
        }
    }

    /// An unordered map's entry: a 2-tuple of key and value.
    fn pair(&mut self, depth: usize) -> R {
        if self.byte()? != 0x18 || self.varint()? != 2 {
            return Err(Stop::Foreign);
        }
        self.value(depth + 1)?;
        self.push(": ")?;
        self.value(depth + 1)
    }

    fn map(&mut self, depth: usize, _n: Option<u128>) -> R {
        self.push("{")?;
        let mut first = true;
        while self.bytes.get(self.at) != Some(&0xff) {
            if !first {
                self.push(", ")?;
            }
            first = false;
            self.value(depth + 1)?;
            self.push(": ")?;
            self.value(depth + 1)?;
        }
        self.at += 1;
        self.push("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sdk_encoding() {
        // (21u64,)
        assert_eq!(text(&[0x18, 1, 0x0a, 21]).as_deref(), Some("(21,)"));
        // ("EUR", -3i32)
        assert_eq!(
            text(&[0x18, 2, 0x0f, 3, b'E', b'U', b'R', 0x04, 5]).as_deref(),
            Some("(\"EUR\", -3)")
        );
        // Query { lo: 2, hi: 9 } as one argument, then the same struct again by name numbers.
        let q = [
            0x18, 2, 0x1c, 1, 5, b'Q', b'u', b'e', b'r', b'y', 1, 2, b'l', b'o', 0x05, 4, 1, 2,
            b'h', b'i', 0x05, 18, 0xff, 0x1c, 2, 0, 2, 1, 0x05, 2, 2, 2, 0x05, 0, 0xff,
        ];
        assert_eq!(
            text(&q).as_deref(),
            Some("(Query { lo: 2, hi: 9 }, Query { lo: 1, hi: 0 })")
        );
        // Cut short: what was read, then an ellipsis.
        assert_eq!(text(&[0x18, 2, 0x0a, 1]).as_deref(), Some("(1, …"));
        // A length that overflows: cut short, never a panic.
        let mut huge = vec![0x18, 1, 0x0f];
        huge.extend([0xff; 9]);
        huge.push(0x01);
        assert!(text(&huge).is_none_or(|t| t.ends_with('…')));
        // Not this encoding.
        assert_eq!(text(&[0x99]), None);
        assert_eq!(text(&[]), None);
    }
}
