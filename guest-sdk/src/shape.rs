//! The shape of a value type: a digest of what its `Deserialize` implementation expects, taken
//! once per site and run and folded into the site's keys. Values are stored with postcard, which
//! writes no names: if a struct's fields were swapped, renamed or retyped since a value was
//! stored, the old bytes could decode into a wrong value. With the shape in the key, they are
//! never looked up.
//!
//! The tracer is a `Deserializer` that hands the type made-up values (zeros, empty strings, one
//! element per sequence) and writes down what it is asked for: every struct with its name and
//! field names in order, every enum with all its variant names, and each field's type as far as
//! the tracer gets. It runs once per enum variant, so that every variant's contents are seen.
//!
//! What it cannot see: a type whose `Deserialize` checks its input (a URL, a date, a `NonZero`)
//! rejects the made-up value; the names of the enclosing structs and enums are still written
//! down, but the types of the fields after it in the same struct are not. Types that need a
//! self-describing format (`deserialize_any`) cannot be stored with postcard at all.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

/// Most passes over the type (one per enum variant still unseen).
const MAX_PASSES: usize = 256;
/// Deepest nesting followed.
const MAX_DEPTH: usize = 64;

/// The shape digest of `T` (32 hex digits).
pub fn of<T: DeserializeOwned>() -> String {
    let mut t = Tracer::default();
    let mut root = String::new();
    for _ in 0..MAX_PASSES {
        t.discovered = false;
        t.stack.clear();
        let _ = T::deserialize(&mut t);
        if root.is_empty() {
            root = std::mem::take(&mut t.last);
        }
        if !t.next_choices() && !t.discovered {
            break;
        }
    }
    let mut h = blake3::Hasher::new();
    h.update(b"devstash-shape-1\n");
    h.update(root.as_bytes());
    for r in &t.records {
        h.update(b"\n");
        h.update(r.as_bytes());
    }
    h.finalize().to_hex()[..32].to_string()
}

/// An enum, by its name and its variants' names.
type EnumId = (&'static str, &'static [&'static str]);

/// What the tracer has found so far.
#[derive(Default)]
struct Tracer {
    /// One line per container (struct, enum, variant), as found.
    records: BTreeSet<String>,
    /// The format of what the last `deserialize_*` call produced.
    last: String,
    /// Containers being traced, outermost first (to stop at recursion).
    stack: Vec<&'static str>,
    /// Variant counts of the enums met.
    /// Enums are told apart by name and variant names together: two enums of one name (in two
    /// modules) are explored each in full.
    variants: BTreeMap<EnumId, usize>,
    /// The variant each enum takes in this pass.
    choice: BTreeMap<EnumId, usize>,
    /// Variants already taken.
    taken: BTreeSet<(EnumId, usize)>,
    /// Whether this pass found a record not seen before.
    discovered: bool,
}

#[derive(Debug)]
struct Untraceable(String);

impl std::fmt::Display for Untraceable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Untraceable {}

impl de::Error for Untraceable {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Untraceable(msg.to_string())
    }
}

type R<T> = Result<T, Untraceable>;

impl Tracer {
    fn record(&mut self, line: String) {
        if self.records.insert(line) {
            self.discovered = true;
        }
    }

    /// Whether following more would recurse or go too deep: sequences, maps and options are then
    /// left empty, which every finite value allows.
    fn cut(&self) -> bool {
        self.stack.len() >= MAX_DEPTH
            || self
                .stack
                .iter()
                .enumerate()
                .any(|(i, n)| self.stack[..i].contains(n))
    }

    /// Picks, for each enum, a variant not taken yet. Whether there was one.
    fn next_choices(&mut self) -> bool {
        let mut more = false;
        for (&id, &count) in &self.variants {
            let next = (0..count).find(|i| !self.taken.contains(&(id, *i)));
            more |= next.is_some();
            self.choice.insert(id, next.unwrap_or(0));
        }
        more
    }

    fn leaf<V>(&mut self, format: &str, value: R<V>) -> R<V> {
        self.last = format.to_string();
        value
    }

    /// Whether `name` is already being traced (a recursive type) or the nesting is too deep: the
    /// pass then stops there, having written down the name.
    fn recursing(&mut self, name: &'static str) -> bool {
        if self.stack.contains(&name) || self.stack.len() >= MAX_DEPTH {
            self.last = name.to_string();
            return true;
        }
        false
    }

    /// Runs `visit` inside container `name`; records `line(children formats, complete)`.
    fn container<V>(
        &mut self,
        name: &'static str,
        detail: &str,
        visit: impl FnOnce(&mut Self) -> (R<V>, Vec<String>),
        line: impl FnOnce(&[String], bool) -> String,
    ) -> R<V> {
        if self.recursing(name) {
            return Err(Untraceable(format!("{name} contains itself")));
        }
        self.stack.push(name);
        let (value, children) = visit(self);
        self.stack.pop();
        let text = line(&children, value.is_ok());
        self.record(text);
        // Where it is used, a container is named with what tells it from another of its name.
        self.last = format!("{name}{}", detail);
        value
    }
}

/// Formats of a struct's fields: `name: format`, and `name: ?` for those not reached.
fn fields_line(kind: &str, name: &str, fields: &[&str], formats: &[String]) -> String {
    let mut s = format!("{kind} {name} {{");
    for (i, f) in fields.iter().enumerate() {
        let _ = write!(
            s,
            "{}{f}: {}",
            if i > 0 { ", " } else { "" },
            formats.get(i).map_or("?", String::as_str)
        );
    }
    s.push('}');
    s
}

fn tuple_line(kind: &str, name: &str, len: usize, formats: &[String]) -> String {
    let mut s = format!("{kind} {name} (");
    for i in 0..len {
        let _ = write!(
            s,
            "{}{}",
            if i > 0 { ", " } else { "" },
            formats.get(i).map_or("?", String::as_str)
        );
    }
    s.push(')');
    s
}

/// Hands a visitor `len` elements, each traced; keeps their formats.
struct Elements<'a> {
    t: &'a mut Tracer,
    left: usize,
    formats: Vec<String>,
}

impl<'de> de::SeqAccess<'de> for Elements<'_> {
    type Error = Untraceable;
    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> R<Option<S::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let v = seed.deserialize(&mut *self.t);
        self.formats.push(std::mem::take(&mut self.t.last));
        v.map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// Hands a visitor at most one map entry, traced.
struct Entries<'a> {
    t: &'a mut Tracer,
    left: usize,
    formats: Vec<String>,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = Untraceable;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> R<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let k = seed.deserialize(&mut *self.t);
        self.formats.push(std::mem::take(&mut self.t.last));
        k.map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> R<V::Value> {
        let v = seed.deserialize(&mut *self.t);
        self.formats.push(std::mem::take(&mut self.t.last));
        v
    }
}

/// The enum variant chosen for this pass.
struct Variant<'a> {
    t: &'a mut Tracer,
    name: &'static str,
    variants: &'static [&'static str],
    index: usize,
}

impl<'de, 'a> de::EnumAccess<'de> for Variant<'a> {
    type Error = Untraceable;
    type Variant = Variant<'a>;
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> R<(S::Value, Variant<'a>)> {
        let id: de::value::U32Deserializer<Untraceable> = (self.index as u32).into_deserializer();
        let v = seed.deserialize(id)?;
        Ok((v, self))
    }
}

impl Variant<'_> {
    fn label(&self) -> String {
        format!(
            "{}::{}",
            self.name,
            self.variants.get(self.index).copied().unwrap_or("?")
        )
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_> {
    type Error = Untraceable;
    fn unit_variant(self) -> R<()> {
        let line = format!("variant {} unit", self.label());
        self.t.record(line);
        Ok(())
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> R<S::Value> {
        let label = self.label();
        let v = seed.deserialize(&mut *self.t);
        let line = format!("variant {label} ({})", self.t.last);
        self.t.record(line);
        v
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> R<V::Value> {
        let label = self.label();
        let mut e = Elements {
            t: &mut *self.t,
            left: len,
            formats: Vec::new(),
        };
        let v = visitor.visit_seq(&mut e);
        let line = tuple_line("variant", &label, len, &e.formats);
        self.t.record(line);
        v
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> R<V::Value> {
        let label = self.label();
        let mut e = Elements {
            t: &mut *self.t,
            left: fields.len(),
            formats: Vec::new(),
        };
        let v = visitor.visit_seq(&mut e);
        let line = fields_line("variant", &label, fields, &e.formats);
        self.t.record(line);
        v
    }
}

macro_rules! scalar {
    ($($method:ident => $visit:ident($($value:expr)?), $format:literal;)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
            let v = visitor.$visit($($value)?);
            self.leaf($format, v)
        })*
    };
}

impl<'de> de::Deserializer<'de> for &mut Tracer {
    type Error = Untraceable;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> R<V::Value> {
        self.last = "any".into();
        Err(Untraceable("needs a self-describing format".into()))
    }

    scalar! {
        deserialize_bool => visit_bool(false), "bool";
        deserialize_i8 => visit_i8(0), "i8";
        deserialize_i16 => visit_i16(0), "i16";
        deserialize_i32 => visit_i32(0), "i32";
        deserialize_i64 => visit_i64(0), "i64";
        deserialize_i128 => visit_i128(0), "i128";
        deserialize_u8 => visit_u8(0), "u8";
        deserialize_u16 => visit_u16(0), "u16";
        deserialize_u32 => visit_u32(0), "u32";
        deserialize_u64 => visit_u64(0), "u64";
        deserialize_u128 => visit_u128(0), "u128";
        deserialize_f32 => visit_f32(0.0), "f32";
        deserialize_f64 => visit_f64(0.0), "f64";
        deserialize_char => visit_char('\0'), "char";
        deserialize_str => visit_str(""), "str";
        deserialize_string => visit_string(String::new()), "str";
        deserialize_bytes => visit_bytes(&[]), "bytes";
        deserialize_byte_buf => visit_byte_buf(Vec::new()), "bytes";
        deserialize_unit => visit_unit(), "unit";
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        if self.cut() {
            let v = visitor.visit_none();
            return self.leaf("option<…>", v);
        }
        let v = visitor.visit_some(&mut *self);
        let format = format!("option<{}>", self.last);
        self.leaf(&format, v)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> R<V::Value> {
        self.record(format!("unit struct {name}"));
        let v = visitor.visit_unit();
        self.leaf(name, v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> R<V::Value> {
        self.container(
            name,
            "()",
            |t| {
                let v = visitor.visit_newtype_struct(&mut *t);
                let inner = std::mem::take(&mut t.last);
                (v, vec![inner])
            },
            |f, _| tuple_line("newtype", name, 1, f),
        )
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        let left = usize::from(!self.cut());
        let mut e = Elements {
            t: &mut *self,
            left,
            formats: Vec::new(),
        };
        let v = visitor.visit_seq(&mut e);
        let format = format!("seq<{}>", e.formats.first().map_or("…", String::as_str));
        self.leaf(&format, v)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> R<V::Value> {
        let mut e = Elements {
            t: &mut *self,
            left: len,
            formats: Vec::new(),
        };
        let v = visitor.visit_seq(&mut e);
        let format = tuple_line("tuple", "", len, &e.formats);
        self.leaf(&format, v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> R<V::Value> {
        self.container(
            name,
            &format!("({len})"),
            |t| {
                let mut e = Elements {
                    t,
                    left: len,
                    formats: Vec::new(),
                };
                let v = visitor.visit_seq(&mut e);
                (v, e.formats)
            },
            |f, _| tuple_line("tuple struct", name, len, f),
        )
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        let left = usize::from(!self.cut());
        let mut e = Entries {
            t: &mut *self,
            left,
            formats: Vec::new(),
        };
        let v = visitor.visit_map(&mut e);
        let format = match e.formats.as_slice() {
            [k, v, ..] => format!("map<{k}, {v}>"),
            _ => "map<…>".into(),
        };
        self.leaf(&format, v)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> R<V::Value> {
        self.container(
            name,
            &format!("{{{}}}", fields.join(",")),
            |t| {
                let mut e = Elements {
                    t,
                    left: fields.len(),
                    formats: Vec::new(),
                };
                let v = visitor.visit_seq(&mut e);
                (v, e.formats)
            },
            |f, _| fields_line("struct", name, fields, f),
        )
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> R<V::Value> {
        self.record(format!("enum {name} [{}]", variants.join(", ")));
        // An enum that contains itself (a tree of boxes) would be followed for ever.
        if self.recursing(name) {
            return Err(Untraceable(format!("{name} contains itself")));
        }
        if variants.is_empty() {
            self.last = name.to_string();
            return Err(Untraceable(format!("enum {name} has no variants")));
        }
        let id = (name, variants);
        self.variants.insert(id, variants.len());
        let index = self
            .choice
            .get(&id)
            .copied()
            .unwrap_or(0)
            .min(variants.len() - 1);
        self.taken.insert((id, index));
        self.stack.push(name);
        let v = visitor.visit_enum(Variant {
            t: &mut *self,
            name,
            variants,
            index,
        });
        self.stack.pop();
        self.last = format!("{name}[{}]", variants.join(","));
        v
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        self.deserialize_u32(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        self.deserialize_unit(visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Stats {
        mean: f64,
        max: f64,
    }
    mod swapped {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Stats {
            pub max: f64,
            pub mean: f64,
        }
    }
    mod retyped {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Stats {
            pub mean: f32,
            pub max: f64,
        }
    }

    #[test]
    fn fields_order_names_and_types_change_the_shape() {
        let a = of::<Stats>();
        assert_eq!(a.len(), 32);
        assert_eq!(a, of::<Stats>());
        assert_ne!(a, of::<swapped::Stats>());
        assert_ne!(a, of::<retyped::Stats>());
        assert_ne!(of::<Vec<u8>>(), of::<Vec<u16>>());
        assert_ne!(of::<Option<Stats>>(), of::<Option<swapped::Stats>>());
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Shape {
        Circle(f64),
        Rect { w: f64, h: f64 },
        Empty,
    }
    mod shape2 {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub enum Shape {
            Circle(f64),
            Rect { w: f64, h: u32 },
            Empty,
        }
    }
    mod shape3 {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub enum Shape {
            Empty,
            Circle(f64),
            Rect { w: f64, h: f64 },
        }
    }

    #[test]
    fn every_variant_is_traced() {
        let a = of::<Vec<Shape>>();
        // A change in the last variant's contents, and a reorder, are both seen.
        assert_ne!(a, of::<Vec<shape2::Shape>>());
        assert_ne!(a, of::<Vec<shape3::Shape>>());
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Tree {
        label: String,
        children: Vec<Tree>,
        next: Option<Box<Tree>>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Expr {
        Add(Box<Expr>, Box<Expr>),
        Neg(Box<Expr>),
        Lit(i64),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Chain {
        value: u8,
        rest: (u8, Box<Option<Chain>>),
    }

    #[test]
    fn recursive_types_end() {
        assert_eq!(of::<Tree>(), of::<Tree>());
        // Recursion through boxes and tuples, with no sequence or option to cut it short.
        assert_eq!(of::<Expr>(), of::<Expr>());
        assert_eq!(of::<Vec<Expr>>(), of::<Vec<Expr>>());
        assert_eq!(of::<Chain>(), of::<Chain>());
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Checked {
        id: std::num::NonZeroU32,
        after: u8,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(rename = "Checked")]
    struct CheckedRenamed {
        id: std::num::NonZeroU32,
        later: u8,
    }

    mod x {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub enum Kind {
            A,
            B,
        }
    }
    mod y {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub enum Kind {
            C(u64),
            D,
        }
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        a: x::Kind,
        b: y::Kind,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(rename = "Outer")]
    struct Swapped {
        a: y::Kind,
        b: x::Kind,
    }

    #[test]
    fn types_of_one_name_are_told_apart() {
        assert_ne!(of::<Outer>(), of::<Swapped>());
    }

    #[test]
    fn names_are_seen_even_past_a_type_that_checks_its_input() {
        assert_ne!(of::<Checked>(), of::<CheckedRenamed>());
    }
}
