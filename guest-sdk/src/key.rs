//! The canonical encoding of a call's key material (its arguments, and a method call's receiver).
//!
//! The runner hashes these bytes into the entry's key, so they must be canonical: equal
//! arguments give equal bytes on every run and build, and different arguments give different
//! bytes. Postcard, which stores values, is not enough for that: it writes `1u8`, `1u16`, `true`
//! and `'\u{1}'` the same way, writes a struct's fields without their names (so swapping two
//! fields' declarations, or renaming one, keeps old keys), and writes a `HashMap` in its random
//! iteration order (so it never hits twice). This encoding writes, for every value, a tag for its
//! serde type, and the names of every struct, field, enum and variant it meets:
//!
//! ```text
//! value   = tag payload
//! unit 00 | bool 01 b | i8..i128 02..06 zigzag-varint | u8..u128 07..0b varint
//! f32 0c 4 bytes | f64 0d 8 bytes (the bits: -0.0 and 0.0 differ, NaNs by payload)
//! char 0e varint | str 0f len bytes | bytes 10 len bytes | none 11 | some 12 value
//! unit struct 13 name | unit variant 14 name index variant
//! newtype struct 15 name value | newtype variant 16 name index variant value
//! seq 17 value* ff | tuple 18 len value* | tuple struct 19 name len value*
//! tuple variant 1a name index variant len value* | map 1b (value value)* ff
//! struct 1c name (field value)* ff | struct variant 1d name index variant (field value)* ff
//! set 1e len value* | unordered map 1f len (value value)*
//! name    = 01 len bytes (first use; numbered from 0) | 02 varint (a number given before)
//! ```
//!
//! The elements of a `HashSet` and the entries of a `HashMap` (std's and hashbrown's, whatever
//! their hasher) are each encoded on their own (with their own names) and sorted by their bytes,
//! so their random order does not reach the key. Sequences of any other type keep their order.
//! A type with a hand-written `Serialize` that emits an unordered collection any other way keys
//! by that order.

use core::fmt::Display;

use serde::ser::{self, Serialize};

/// Encodes `value` canonically (see the module documentation).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut enc = Encoder::default();
    value.serialize(&mut enc)?;
    Ok(enc.out)
}

/// Why a value could not be encoded (its `Serialize` impl reported an error).
#[derive(Debug)]
pub struct Error(String);

impl Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

mod tag {
    pub const UNIT: u8 = 0x00;
    pub const BOOL: u8 = 0x01;
    pub const I8: u8 = 0x02;
    pub const I16: u8 = 0x03;
    pub const I32: u8 = 0x04;
    pub const I64: u8 = 0x05;
    pub const I128: u8 = 0x06;
    pub const U8: u8 = 0x07;
    pub const U16: u8 = 0x08;
    pub const U32: u8 = 0x09;
    pub const U64: u8 = 0x0a;
    pub const U128: u8 = 0x0b;
    pub const F32: u8 = 0x0c;
    pub const F64: u8 = 0x0d;
    pub const CHAR: u8 = 0x0e;
    pub const STR: u8 = 0x0f;
    pub const BYTES: u8 = 0x10;
    pub const NONE: u8 = 0x11;
    pub const SOME: u8 = 0x12;
    pub const UNIT_STRUCT: u8 = 0x13;
    pub const UNIT_VARIANT: u8 = 0x14;
    pub const NEWTYPE_STRUCT: u8 = 0x15;
    pub const NEWTYPE_VARIANT: u8 = 0x16;
    pub const SEQ: u8 = 0x17;
    pub const TUPLE: u8 = 0x18;
    pub const TUPLE_STRUCT: u8 = 0x19;
    pub const TUPLE_VARIANT: u8 = 0x1a;
    pub const MAP: u8 = 0x1b;
    pub const STRUCT: u8 = 0x1c;
    pub const STRUCT_VARIANT: u8 = 0x1d;
    pub const SET: u8 = 0x1e;
    pub const UNORDERED_MAP: u8 = 0x1f;
    pub const END: u8 = 0xff;
    pub const NAME_NEW: u8 = 0x01;
    pub const NAME_SEEN: u8 = 0x02;
}

/// The collections whose iteration order means nothing, by type path.
const UNORDERED: &[&str] = &[
    "std::collections::hash::set::HashSet<",
    "std::collections::hash::map::HashMap<",
    "hashbrown::set::HashSet<",
    "hashbrown::map::HashMap<",
];

/// Slots of the cache that maps a name's address to its number (see [`Encoder::name`]).
const NAME_SLOTS: usize = 64;

/// The encoder: the output, and the names given so far.
#[derive(Default)]
struct Encoder {
    out: Vec<u8>,
    /// Names given so far, by content, with their numbers.
    names: Vec<&'static str>,
    /// Address and length of a name -> its number, for the names met most (the same struct's
    /// fields, element after element). Only a shortcut: a slot that misses is looked up by
    /// content, so the bytes never depend on where a name lies in memory.
    slots: Option<Box<[(usize, usize, u32); NAME_SLOTS]>>,
    /// The last iterator type asked whether it is unordered (its name's address and length),
    /// and the answer.
    last_unordered: Option<(usize, usize, bool)>,
}

impl Encoder {
    fn byte(&mut self, b: u8) {
        self.out.push(b);
    }

    fn varint(&mut self, mut v: u128) {
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.out.push(low);
                return;
            }
            self.out.push(low | 0x80);
        }
    }

    fn zigzag(&mut self, v: i128) {
        self.varint(((v << 1) ^ (v >> 127)) as u128);
    }

    fn len_bytes(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u128);
        self.out.extend_from_slice(bytes);
    }

    /// A struct, field, enum or variant name: in full the first time, then by number.
    fn name(&mut self, name: &'static str) {
        let addr = name.as_ptr() as usize;
        let slot = (addr.wrapping_mul(0x9e37_79b9) >> 7) % NAME_SLOTS;
        let slots = self
            .slots
            .get_or_insert_with(|| Box::new([(0, usize::MAX, 0); NAME_SLOTS]));
        let (a, l, id) = slots[slot];
        if a == addr && l == name.len() {
            self.byte(tag::NAME_SEEN);
            self.varint(u128::from(id));
            return;
        }
        let known = self.names.iter().position(|n| *n == name);
        let id = match known {
            Some(id) => {
                self.byte(tag::NAME_SEEN);
                self.varint(id as u128);
                id as u32
            }
            None => {
                let id = self.names.len() as u32;
                self.names.push(name);
                self.byte(tag::NAME_NEW);
                self.len_bytes(name.as_bytes());
                id
            }
        };
        if let Some(slots) = self.slots.as_mut() {
            slots[slot] = (addr, name.len(), id);
        }
    }

    fn variant(&mut self, t: u8, name: &'static str, index: u32, variant: &'static str) {
        self.byte(t);
        self.name(name);
        self.varint(u128::from(index));
        self.name(variant);
    }

    /// Whether the collection type `I` iterates in an order that means nothing (std's and
    /// hashbrown's hash sets and maps, whatever their hasher).
    fn unordered<I>(&mut self) -> bool {
        let name = core::any::type_name::<I>();
        let addr = name.as_ptr() as usize;
        if let Some((a, l, answer)) = self.last_unordered
            && a == addr
            && l == name.len()
        {
            return answer;
        }
        let answer = UNORDERED
            .iter()
            .any(|t| name.trim_start_matches('&').starts_with(t));
        self.last_unordered = Some((addr, name.len(), answer));
        answer
    }

    /// Encodes each item on its own (with its own names), sorted by bytes, after a count.
    fn sorted(&mut self, t: u8, mut items: Vec<Vec<u8>>) {
        items.sort_unstable();
        self.byte(t);
        self.varint(items.len() as u128);
        for item in items {
            self.out.extend_from_slice(&item);
        }
    }
}

/// An integer: its tag, then its value as a (zigzag, for signed types) varint.
macro_rules! integers {
    ($($method:ident($ty:ty) => $tag:ident, $write:ident;)*) => {
        $(fn $method(self, v: $ty) -> Result<(), Error> {
            self.byte(tag::$tag);
            self.$write(v.into());
            Ok(())
        })*
    };
}

impl<'a> ser::Serializer for &'a mut Encoder {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.byte(tag::BOOL);
        self.byte(u8::from(v));
        Ok(())
    }
    integers! {
        serialize_i8(i8) => I8, zigzag;
        serialize_i16(i16) => I16, zigzag;
        serialize_i32(i32) => I32, zigzag;
        serialize_i64(i64) => I64, zigzag;
        serialize_i128(i128) => I128, zigzag;
        serialize_u8(u8) => U8, varint;
        serialize_u16(u16) => U16, varint;
        serialize_u32(u32) => U32, varint;
        serialize_u64(u64) => U64, varint;
        serialize_u128(u128) => U128, varint;
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.byte(tag::F32);
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.byte(tag::F64);
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.byte(tag::CHAR);
        self.varint(u128::from(u32::from(v)));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.byte(tag::STR);
        self.len_bytes(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.byte(tag::BYTES);
        self.len_bytes(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.byte(tag::NONE);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.byte(tag::SOME);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.byte(tag::UNIT);
        Ok(())
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<(), Error> {
        self.byte(tag::UNIT_STRUCT);
        self.name(name);
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.variant(tag::UNIT_VARIANT, name, index, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.byte(tag::NEWTYPE_STRUCT);
        self.name(name);
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.variant(tag::NEWTYPE_VARIANT, name, index, variant);
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        self.byte(tag::SEQ);
        Ok(Compound {
            enc: self,
            end: true,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Error> {
        self.byte(tag::TUPLE);
        self.varint(len as u128);
        Ok(Compound {
            enc: self,
            end: false,
        })
    }
    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Compound<'a>, Error> {
        self.byte(tag::TUPLE_STRUCT);
        self.name(name);
        self.varint(len as u128);
        Ok(Compound {
            enc: self,
            end: false,
        })
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.variant(tag::TUPLE_VARIANT, name, index, variant);
        self.varint(len as u128);
        Ok(Compound {
            enc: self,
            end: false,
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        self.byte(tag::MAP);
        Ok(Compound {
            enc: self,
            end: true,
        })
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Compound<'a>, Error> {
        self.byte(tag::STRUCT);
        self.name(name);
        Ok(Compound {
            enc: self,
            end: true,
        })
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.variant(tag::STRUCT_VARIANT, name, index, variant);
        Ok(Compound {
            enc: self,
            end: true,
        })
    }

    fn collect_seq<I>(self, iter: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        if !self.unordered::<I>() {
            let mut seq = ser::Serializer::serialize_seq(&mut *self, None)?;
            for item in iter {
                ser::SerializeSeq::serialize_element(&mut seq, &item)?;
            }
            return ser::SerializeSeq::end(seq);
        }
        let items = iter
            .into_iter()
            .map(|item| encode(&item))
            .collect::<Result<Vec<_>, _>>()?;
        self.sorted(tag::SET, items);
        Ok(())
    }

    fn collect_map<K, V, I>(self, iter: I) -> Result<(), Error>
    where
        K: Serialize,
        V: Serialize,
        I: IntoIterator<Item = (K, V)>,
    {
        if !self.unordered::<I>() {
            let mut map = ser::Serializer::serialize_map(&mut *self, None)?;
            for (k, v) in iter {
                ser::SerializeMap::serialize_entry(&mut map, &k, &v)?;
            }
            return ser::SerializeMap::end(map);
        }
        let items = iter
            .into_iter()
            .map(|(k, v)| encode(&(&k, &v)))
            .collect::<Result<Vec<_>, _>>()?;
        self.sorted(tag::UNORDERED_MAP, items);
        Ok(())
    }
}

/// A sequence, tuple, map or struct being written; `end` when it closes with [`tag::END`].
struct Compound<'a> {
    enc: &'a mut Encoder,
    end: bool,
}

impl Compound<'_> {
    fn finish(self) -> Result<(), Error> {
        if self.end {
            self.enc.byte(tag::END);
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.enc)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.enc)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.enc)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.enc)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        key.serialize(&mut *self.enc)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.enc)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.enc.name(key);
        value.serialize(&mut *self.enc)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.enc.name(key);
        value.serialize(&mut *self.enc)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::{BTreeMap, HashMap, HashSet};

    fn enc<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
        encode(v).unwrap()
    }

    #[test]
    fn scalars_of_different_types_differ() {
        let all = [
            enc(&1u8),
            enc(&1u16),
            enc(&1u32),
            enc(&1u64),
            enc(&1i8),
            enc(&1i64),
            enc(&true),
            enc(&'\u{1}'),
            enc(&1.0f32),
            enc(&1.0f64),
            enc("\u{1}"),
            enc(&Some(1u8)),
            enc(&[1u8][..]),
            enc(&serde_bytes::Bytes::new(&[1])),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_ne!(enc(&0.0f64), enc(&-0.0f64));
        assert_eq!(enc("x"), enc(&String::from("x")));
    }

    #[derive(Serialize)]
    struct Ab {
        a: i64,
        b: i64,
    }
    #[derive(Serialize)]
    struct Ba {
        b: i64,
        a: i64,
    }
    #[derive(Serialize)]
    #[serde(rename = "Ab")]
    struct AbRenamedField {
        a: i64,
        c: i64,
    }

    #[test]
    fn field_names_and_order_are_part_of_the_bytes() {
        // The same postcard bytes, three different values.
        let ab = enc(&Ab { a: 2, b: 9 });
        let ba = enc(&Ba { b: 2, a: 9 });
        let ac = enc(&AbRenamedField { a: 2, c: 9 });
        assert_ne!(ab, ba);
        assert_ne!(ab, ac);
        assert_ne!(ba, ac);
    }

    #[derive(Serialize)]
    enum E1 {
        Red,
        Green,
    }
    #[derive(Serialize)]
    #[serde(rename = "E1")]
    enum E2 {
        Green,
        Red,
    }

    #[test]
    fn variant_names_are_part_of_the_bytes() {
        assert_ne!(enc(&E1::Green), enc(&E2::Red));
        assert_ne!(enc(&E1::Red), enc(&E2::Green));
        let _ = (E1::Red, E2::Green);
    }

    #[test]
    fn names_repeat_by_number_and_equal_values_encode_equally() {
        let v: Vec<Ab> = (0..100).map(|i| Ab { a: i, b: -i }).collect();
        let bytes = enc(&v);
        // "Ab", "a" and "b" are written once each.
        assert_eq!(bytes.windows(3).filter(|w| w == b"\x02Ab").count(), 1);
        assert_eq!(bytes, enc(&v));
        // A name at another address (a leaked copy) encodes the same.
        struct Named(&'static str);
        impl Serialize for Named {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use ser::SerializeStruct;
                let mut st = s.serialize_struct(self.0, 1)?;
                st.serialize_field(self.0, &1u8)?;
                st.end()
            }
        }
        let copy: &'static str = String::from("Ab").leak();
        assert_eq!(
            enc(&(Named("Ab"), Named("Ab"))),
            enc(&(Named("Ab"), Named(copy)))
        );
    }

    #[test]
    fn hash_sets_and_maps_encode_in_one_order() {
        let items: Vec<String> = (0..50).map(|i| format!("item-{i}")).collect();
        let a: HashSet<String> = items.iter().cloned().collect();
        let b: HashSet<String> = items.iter().rev().cloned().collect();
        assert_eq!(enc(&a), enc(&b));
        let ma: HashMap<String, u32> = items.iter().cloned().zip(0..).collect();
        let mb: HashMap<String, u32> = items.iter().rev().cloned().zip((0..50).rev()).collect();
        assert_eq!(ma, mb);
        assert_eq!(enc(&ma), enc(&mb));
        // Different contents still differ, and ordered collections keep their order.
        let mut mc = ma.clone();
        mc.insert("item-0".into(), 7);
        assert_ne!(enc(&ma), enc(&mc));
        assert_ne!(enc(&vec![1, 2]), enc(&vec![2, 1]));
        let bt: BTreeMap<String, u32> = ma.clone().into_iter().collect();
        assert_ne!(enc(&bt), enc(&ma), "a BTreeMap is not a HashMap");
        // Nested in other values too.
        assert_eq!(enc(&(1u8, vec![a.clone()])), enc(&(1u8, vec![b.clone()])));
    }
}
