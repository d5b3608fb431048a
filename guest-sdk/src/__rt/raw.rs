//! Values restored straight into their own buffer: bytes, strings, and vectors of plain numbers
//! (and of fixed arrays of them).
//!
//! Every value here is stored exactly as postcard writes it, so an entry written by either the
//! generic path or this one reads back through the other, and the value type in the key (see
//! [`crate::shape`]) still decides which bytes a call may get. Postcard writes a sequence as a
//! varint element count followed by its elements, and an element either as fixed
//! little-endian bytes (`u8`, `i8`, `f32`, `f64`) or as a varint (zigzag for signed integers):
//!
//! - fixed-width elements are read in one piece into the vector's own allocation, whose
//!   element type gives it the right alignment; the count prefix must agree with the length;
//! - varint elements are decoded as they arrive, a chunk at a time, into the vector's own
//!   allocation, so restoring one needs no second copy of the value.
//!
//! Bytes that do not form a value of the type (cut short, a prefix that disagrees with the
//! length, a bad varint, trailing bytes) are [`Unusable::Shape`]: the call is recomputed.

use core::mem::{MaybeUninit, size_of};

use bytemuck::Pod;

/// Why a stored value cannot be restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// Its bytes are not a value of the type.
    Shape,
    /// It is larger than this program's memory can hold.
    TooLarge,
    /// The source refused a read (the runner found the value damaged, and said so).
    Refused,
}

/// Where a stored value is read from, front to back.
///
/// # Safety
///
/// `read` returns `Ok` only after writing every byte of `dst` (with initialized bytes), and
/// never writes uninitialized bytes into it: readers hand it initialized buffers too.
pub unsafe trait Source {
    /// The value's length in bytes.
    fn total(&self) -> u64;
    /// Writes bytes `offset..offset + dst.len()` of the value into `dst`.
    fn read(&mut self, offset: u64, dst: &mut [MaybeUninit<u8>]) -> Result<(), Unusable>;
}

/// A value held in memory, as a [`Source`] (for tests and benchmarks).
pub struct SliceSource<'a>(pub &'a [u8]);

// SAFETY: `read` copies initialized bytes over the whole of `dst`, or fails without writing.
unsafe impl Source for SliceSource<'_> {
    fn total(&self) -> u64 {
        self.0.len() as u64
    }

    fn read(&mut self, offset: u64, dst: &mut [MaybeUninit<u8>]) -> Result<(), Unusable> {
        let from = usize::try_from(offset)
            .ok()
            .and_then(|o| self.0.get(o..o.checked_add(dst.len())?))
            .ok_or(Unusable::Refused)?;
        for (d, s) in dst.iter_mut().zip(from) {
            d.write(*s);
        }
        Ok(())
    }
}

/// Reads into an initialized buffer.
fn read_init<S: Source>(src: &mut S, offset: u64, dst: &mut [u8]) -> Result<(), Unusable> {
    // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout, and a `Source` writes only
    // initialized bytes, so `dst` stays initialized.
    let dst = unsafe {
        core::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<MaybeUninit<u8>>(), dst.len())
    };
    src.read(offset, dst)
}

/// A value type restored straight into its own buffer.
pub trait RawValue: Sized {
    /// The value's stored bytes (the same postcard writes), in a buffer of exactly their size;
    /// `None` if that buffer cannot be allocated.
    fn encode(&self) -> Option<Vec<u8>>;
    /// The value read from `src`.
    fn decode<S: Source>(src: &mut S) -> Result<Self, Unusable>;
}

mod sealed {
    pub trait Sealed {}
}

/// A number as postcard writes it: fixed little-endian bytes, or a varint.
pub trait Scalar: Pod + sealed::Sealed {
    /// Whether postcard writes it as a varint (else as its little-endian bytes).
    const VARINT: bool;
    /// Most bytes of its varint.
    const MAX_LEN: usize = (size_of::<Self>() * 8).div_ceil(7);
    /// Largest last byte of a varint of `MAX_LEN` bytes (postcard refuses larger ones).
    const LAST_MAX: u8 = (1u8 << ((size_of::<Self>() * 8) % 7)) - 1;
    /// The value with its bytes in little-endian order, or from it (the same swap, if any).
    fn swap_le(self) -> Self;
    /// The unsigned integer its varint holds (zigzag for a signed one).
    fn to_wire(self) -> u64;
    /// The value whose varint holds `w`, already checked to fit by the varint's length rules.
    fn from_wire(w: u64) -> Self;
}

macro_rules! fixed_scalars {
    ($($t:ty => $bits:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Scalar for $t {
            const VARINT: bool = false;
            #[inline(always)]
            fn swap_le(self) -> Self {
                bytemuck::cast(<$bits>::from_le(bytemuck::cast(self)))
            }
            fn to_wire(self) -> u64 {
                0
            }
            fn from_wire(_: u64) -> Self {
                <$t as bytemuck::Zeroable>::zeroed()
            }
        }
    )*};
}

fixed_scalars!(u8 => u8, i8 => u8, f32 => u32, f64 => u64);

macro_rules! unsigned_scalars {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Scalar for $t {
            const VARINT: bool = true;
            #[inline(always)]
            fn swap_le(self) -> Self {
                <$t>::from_le(self)
            }
            #[inline(always)]
            fn to_wire(self) -> u64 {
                self as u64
            }
            #[inline(always)]
            fn from_wire(w: u64) -> Self {
                w as $t
            }
        }
    )*};
}

unsigned_scalars!(u16, u32, u64);

macro_rules! signed_scalars {
    ($($t:ty => $u:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Scalar for $t {
            const VARINT: bool = true;
            #[inline(always)]
            fn swap_le(self) -> Self {
                <$t>::from_le(self)
            }
            #[inline(always)]
            fn to_wire(self) -> u64 {
                // Zigzag, as postcard writes it: 0, -1, 1, -2, … become 0, 1, 2, 3, …
                ((self << 1) ^ (self >> (<$t>::BITS - 1))) as $u as u64
            }
            #[inline(always)]
            fn from_wire(w: u64) -> Self {
                let u = w as $u;
                ((u >> 1) as $t) ^ -((u & 1) as $t)
            }
        }
    )*};
}

signed_scalars!(i16 => u16, i32 => u32, i64 => u64);

/// An element of a vector restored straight into its buffer: a [`Scalar`], or an array of
/// them (postcard writes an array's elements one after another, with no length).
pub trait Element: Pod {
    /// The number it is made of.
    type Scalar: Scalar;
    /// How many of them.
    const LANES: usize;
}

macro_rules! scalar_elements {
    ($($t:ty),*) => {$(
        impl Element for $t {
            type Scalar = $t;
            const LANES: usize = 1;
        }
    )*};
}

scalar_elements!(u8, i8, f32, f64, u16, u32, u64, i16, i32, i64);

macro_rules! array_elements {
    ($($n:literal)*) => {$(
        impl<S: Scalar> Element for [S; $n] {
            type Scalar = S;
            const LANES: usize = $n;
        }
    )*};
}

// The lengths serde implements `Deserialize` for (an empty array has no bytes to tell a
// count from, and is left to the generic path).
array_elements!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);

/// Bytes of the varint of `n`.
pub fn varint_len(n: u64) -> usize {
    ((64 - n.leading_zeros() as usize).div_ceil(7)).max(1)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The varint at the start of `bytes` and its length, by postcard's rules for a number whose
/// varint is at most `max_len` bytes and whose last byte is at most `last_max`: `None` where
/// postcard refuses it.
#[inline(always)]
fn take_varint(bytes: &[u8], max_len: usize, last_max: u8) -> Option<(u64, usize)> {
    let b0 = *bytes.first()?;
    if b0 < 0x80 {
        return Some((u64::from(b0), 1));
    }
    let mut out = u64::from(b0 & 0x7f);
    for i in 1..max_len {
        let b = *bytes.get(i)?;
        out |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i == max_len - 1 && b > last_max {
                return None;
            }
            return Some((out, i + 1));
        }
    }
    None
}

/// Postcard's rules for a sequence's length (a `u64` varint, at most ten bytes).
fn take_count(bytes: &[u8]) -> Option<(u64, usize)> {
    take_varint(bytes, 10, 1)
}

/// An empty vector with room for `n` elements, or `TooLarge`.
fn with_capacity<T>(n: u64) -> Result<Vec<T>, Unusable> {
    let n = usize::try_from(n).map_err(|_| Unusable::TooLarge)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Unusable::TooLarge)?;
    Ok(v)
}

/// The first `n` spare elements of `v` as `U`s, the type `T` is made of.
fn spare_as<T: Element, U>(v: &mut Vec<T>, n: usize) -> &mut [MaybeUninit<U>] {
    debug_assert!(
        size_of::<T>().is_multiple_of(size_of::<U>()) && align_of::<T>() >= align_of::<U>()
    );
    let spare = &mut v.spare_capacity_mut()[..n];
    let len = n * (size_of::<T>() / size_of::<U>());
    // SAFETY: `T` is `U` repeated (`u8` for any `T`, or `T::Scalar` for an array of them), so
    // the memory of `n` uninitialized `T`s is that of `len` uninitialized `U`s, aligned for them;
    // `MaybeUninit` asks nothing of its contents.
    unsafe { core::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<MaybeUninit<U>>(), len) }
}

/// Puts the vector's numbers in this machine's byte order (a no-op on a little-endian one).
fn from_le<T: Element>(v: &mut [T]) {
    if cfg!(target_endian = "big") {
        for s in bytemuck::cast_slice_mut::<T, T::Scalar>(v) {
            *s = s.swap_le();
        }
    }
}

/// Reads a vector of fixed-width elements: a count prefix, then the elements' bytes straight
/// into the vector's buffer.
fn decode_fixed<T: Element, S: Source>(src: &mut S) -> Result<Vec<T>, Unusable> {
    let total = src.total();
    let size = size_of::<T>() as u64;
    // The prefix is the varint of the count, so its length follows from the total: the one `p`
    // with `varint_len((total - p) / size) == p` (a longer prefix has a smaller count, whose
    // varint is no longer).
    let (p, n) = (1..=10u64)
        .find_map(|p| {
            let rest = total.checked_sub(p)?;
            (rest.is_multiple_of(size) && varint_len(rest / size) as u64 == p)
                .then_some((p, rest / size))
        })
        .ok_or(Unusable::Shape)?;
    let mut prefix = [0u8; 10];
    read_init(src, 0, &mut prefix[..p as usize])?;
    match take_count(&prefix[..p as usize]) {
        Some((count, used)) if count == n && used as u64 == p => {}
        _ => return Err(Unusable::Shape),
    }
    let mut v = with_capacity::<T>(n)?;
    let n = n as usize;
    src.read(p, spare_as::<T, u8>(&mut v, n))?;
    // SAFETY: the source wrote all `n * size_of::<T>()` bytes, and any bytes are a valid `T`
    // (`T: Pod`).
    unsafe { v.set_len(n) };
    from_le(&mut v);
    Ok(v)
}

/// Bytes read from a source at a time when decoding varints.
const CHUNK: usize = 64 << 10;

/// A source read a chunk at a time.
struct Chunks<'s, S> {
    src: &'s mut S,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    next: u64,
    total: u64,
}

impl<S: Source> Chunks<'_, S> {
    fn new(src: &mut S) -> Chunks<'_, S> {
        let total = src.total();
        Chunks {
            buf: vec![0; CHUNK.min(usize::try_from(total).unwrap_or(CHUNK))],
            src,
            pos: 0,
            end: 0,
            next: 0,
            total,
        }
    }

    /// Makes at least `want` (at most the buffer's length) bytes available, or all that are left.
    fn fill(&mut self, want: usize) -> Result<(), Unusable> {
        if self.end - self.pos >= want || self.next == self.total {
            return Ok(());
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        let left = usize::try_from(self.total - self.next).unwrap_or(usize::MAX);
        let k = (self.buf.len() - self.end).min(left);
        read_init(self.src, self.next, &mut self.buf[self.end..self.end + k])?;
        self.end += k;
        self.next += k as u64;
        Ok(())
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Whether every byte of the source has been read.
    fn read_all(&self) -> bool {
        self.next == self.total
    }
}

/// Reads a vector of varint elements, decoding them a chunk at a time into the vector's buffer.
fn decode_varints<T: Element, S: Source>(src: &mut S) -> Result<Vec<T>, Unusable> {
    let total = src.total();
    let mut r = Chunks::new(src);
    r.fill(10)?;
    let (n, used) = take_count(r.available()).ok_or(Unusable::Shape)?;
    r.pos += used;
    // Every number takes at least a byte: a count larger than that is not this type's value
    // (and is refused before anything is allocated for it).
    let count = n
        .checked_mul(T::LANES as u64)
        .filter(|&c| c <= total - used as u64)
        .ok_or(Unusable::Shape)? as usize;
    let mut v = with_capacity::<T>(n)?;
    let out = spare_as::<T, T::Scalar>(&mut v, n as usize);
    let (max_len, last_max) = (T::Scalar::MAX_LEN, T::Scalar::LAST_MAX);
    let mut i = 0;
    while i < count {
        r.fill(max_len)?;
        let avail = r.available();
        if avail.is_empty() {
            return Err(Unusable::Shape);
        }
        // Decode while a whole varint is surely in the buffer (or nothing more will come).
        let limit = if r.read_all() {
            avail.len()
        } else {
            avail.len() + 1 - max_len
        };
        let mut at = 0;
        while i < count && at < limit {
            let (w, len) = take_varint(&avail[at..], max_len, last_max).ok_or(Unusable::Shape)?;
            out[i].write(T::Scalar::from_wire(w));
            i += 1;
            at += len;
        }
        r.pos += at;
    }
    if r.pos != r.end || !r.read_all() {
        return Err(Unusable::Shape);
    }
    // SAFETY: all `count` numbers of the `n` elements were written.
    unsafe { v.set_len(n as usize) };
    Ok(v)
}

/// The stored bytes of a vector of fixed-width elements.
fn encode_fixed<T: Element>(v: &[T]) -> Option<Vec<u8>> {
    let payload: &[u8] = bytemuck::cast_slice(v);
    let mut out = Vec::new();
    out.try_reserve_exact(varint_len(v.len() as u64) + payload.len())
        .ok()?;
    put_varint(&mut out, v.len() as u64);
    if cfg!(target_endian = "little") {
        out.extend_from_slice(payload);
    } else {
        for s in bytemuck::cast_slice::<T, T::Scalar>(v) {
            out.extend_from_slice(bytemuck::bytes_of(&s.swap_le()));
        }
    }
    Some(out)
}

/// The stored bytes of a vector of varint elements, in a buffer sized in a first pass.
fn encode_varints<T: Element>(v: &[T]) -> Option<Vec<u8>> {
    let scalars = bytemuck::cast_slice::<T, T::Scalar>(v);
    let len = scalars.iter().fold(varint_len(v.len() as u64), |l, s| {
        l + varint_len(s.to_wire())
    });
    let mut out = Vec::new();
    out.try_reserve_exact(len).ok()?;
    put_varint(&mut out, v.len() as u64);
    for s in scalars {
        put_varint(&mut out, s.to_wire());
    }
    Some(out)
}

impl<T: Element> RawValue for Vec<T> {
    fn encode(&self) -> Option<Vec<u8>> {
        if T::Scalar::VARINT {
            encode_varints(self)
        } else {
            encode_fixed(self)
        }
    }

    fn decode<S: Source>(src: &mut S) -> Result<Self, Unusable> {
        if T::Scalar::VARINT {
            decode_varints(src)
        } else {
            decode_fixed(src)
        }
    }
}

impl RawValue for String {
    fn encode(&self) -> Option<Vec<u8>> {
        encode_fixed(self.as_bytes())
    }

    fn decode<S: Source>(src: &mut S) -> Result<Self, Unusable> {
        String::from_utf8(decode_fixed(src)?).map_err(|_| Unusable::Shape)
    }
}

impl RawValue for serde_bytes::ByteBuf {
    fn encode(&self) -> Option<Vec<u8>> {
        encode_fixed(self.as_slice())
    }

    fn decode<S: Source>(src: &mut S) -> Result<Self, Unusable> {
        decode_fixed(src).map(serde_bytes::ByteBuf::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    fn decode<V: RawValue>(bytes: &[u8]) -> Result<V, Unusable> {
        V::decode(&mut SliceSource(bytes))
    }

    /// Postcard's bytes of `v`, and that the straight path writes and reads exactly them.
    fn same_as_postcard<V>(v: &V) -> Vec<u8>
    where
        V: RawValue + Serialize + DeserializeOwned + core::fmt::Debug,
    {
        let want = postcard::to_allocvec(v).unwrap();
        let got = v.encode().unwrap();
        assert_eq!(got, want, "{v:?}");
        assert_eq!(
            got.capacity(),
            got.len(),
            "one buffer of exactly the value's size"
        );
        let back: V = decode(&want).unwrap();
        assert_eq!(postcard::to_allocvec(&back).unwrap(), want, "{v:?}");
        want
    }

    macro_rules! ints {
        ($t:ty) => {{
            let mut v: Vec<$t> = vec![<$t>::MIN, <$t>::MAX, 0, 1];
            for s in 0..<$t>::BITS {
                let x = (1 as $t) << s;
                v.extend([
                    x,
                    x.wrapping_sub(1),
                    x.wrapping_add(1),
                    (0 as $t).wrapping_sub(x),
                ]);
            }
            v
        }};
    }

    #[test]
    fn every_type_is_stored_as_postcard_writes_it_and_read_back() {
        same_as_postcard(&vec![
            0.0f64,
            -0.0,
            f64::from_bits(0x7ff8_dead_beef_0001),
            f64::MAX,
        ]);
        same_as_postcard(&vec![0.0f32, -0.0, f32::from_bits(0x7fc0_beef), f32::MIN]);
        same_as_postcard(&ints!(u8));
        same_as_postcard(&ints!(i8));
        same_as_postcard(&ints!(u16));
        same_as_postcard(&ints!(i16));
        same_as_postcard(&ints!(u32));
        same_as_postcard(&ints!(i32));
        same_as_postcard(&ints!(u64));
        same_as_postcard(&ints!(i64));
        same_as_postcard(&Vec::<f64>::new());
        same_as_postcard(&Vec::<u64>::new());
        same_as_postcard(&vec![[1.5f64, -2.0, f64::NAN]; 300]);
        same_as_postcard(&vec![[i32::MIN, 0], [7, i32::MAX]]);
        same_as_postcard(&vec![[u8::MAX; 32]; 5]);
        same_as_postcard(&"héllo".to_string());
        same_as_postcard(&serde_bytes::ByteBuf::from(vec![1u8, 2, 3]));
        // Counts whose varint is longer than a byte, and varints across the reader's chunks.
        same_as_postcard(&(0..200_000u64).map(|i| i << (i % 64)).collect::<Vec<_>>());
        same_as_postcard(&(0..70_000i32).map(|i| i as i16).collect::<Vec<_>>());
        same_as_postcard(&(0..20_000).map(|i| i as f64).collect::<Vec<_>>());
    }

    #[test]
    fn nan_payloads_and_signed_zeros_keep_their_bits() {
        let v = vec![
            f64::from_bits(0xfff0_0000_0000_0001),
            -0.0,
            f64::from_bits(1),
        ];
        let back: Vec<f64> = decode(&v.encode().unwrap()).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&v));
    }

    #[test]
    fn restored_vectors_are_aligned_for_their_elements() {
        let v: Vec<[f64; 3]> = decode(&vec![[1.0f64; 3]; 9].encode().unwrap()).unwrap();
        assert_eq!(v.as_ptr() as usize % align_of::<f64>(), 0);
        assert_eq!(v, vec![[1.0; 3]; 9]);
    }

    #[test]
    fn lengths_that_disagree_are_refused() {
        let good = vec![1.0f64, 2.0, 3.0].encode().unwrap();
        // Cut short, one byte too many, a count that is not the length.
        assert_eq!(
            decode::<Vec<f64>>(&good[..good.len() - 1]),
            Err(Unusable::Shape)
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode::<Vec<f64>>(&long), Err(Unusable::Shape));
        let mut count = good.clone();
        count[0] = 2;
        assert_eq!(decode::<Vec<f64>>(&count), Err(Unusable::Shape));
        assert_eq!(decode::<Vec<f64>>(&[]), Err(Unusable::Shape));
        // A count of more numbers than there are bytes is refused before allocating.
        assert_eq!(
            decode::<Vec<u64>>(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1]),
            Err(Unusable::Shape)
        );
        assert_eq!(decode::<Vec<u64>>(&[1, 1, 0]), Err(Unusable::Shape));
        assert_eq!(decode::<Vec<u64>>(&[2, 0x80]), Err(Unusable::Shape));
        // A `u16` varint postcard refuses (more than 16 bits).
        assert_eq!(
            decode::<Vec<u16>>(&[1, 0xff, 0xff, 0x04]),
            Err(Unusable::Shape)
        );
        assert!(postcard::from_bytes::<Vec<u16>>(&[1, 0xff, 0xff, 0x04]).is_err());
        assert_eq!(decode::<String>(&[2, 0xc3, 0x28]), Err(Unusable::Shape));
    }

    /// Whatever the bytes, the straight path never panics, and a value it accepts is the one
    /// postcard decodes from the same bytes.
    fn never_other_than_postcard<V>(seed: &[u8])
    where
        V: RawValue + Serialize + DeserializeOwned + core::fmt::Debug,
    {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for trial in 0..4000 {
            let mut bytes = seed.to_vec();
            match trial % 3 {
                0 => {
                    let i = next() as usize % bytes.len();
                    bytes[i] ^= 1 << (next() % 8);
                }
                1 => bytes.truncate(next() as usize % bytes.len()),
                _ => bytes.extend((0..next() % 4).map(|_| next() as u8)),
            }
            if let Ok(v) = decode::<V>(&bytes) {
                let (theirs, rest) = postcard::take_from_bytes::<V>(&bytes).unwrap();
                assert!(rest.is_empty());
                assert_eq!(
                    postcard::to_allocvec(&v).unwrap(),
                    postcard::to_allocvec(&theirs).unwrap()
                );
            }
        }
    }

    #[test]
    fn damaged_bytes_never_decode_to_another_value() {
        never_other_than_postcard::<Vec<f64>>(&vec![1.0f64, -2.5, 3.0].encode().unwrap());
        never_other_than_postcard::<Vec<[f32; 2]>>(&vec![[1.0f32, 2.0]; 3].encode().unwrap());
        never_other_than_postcard::<Vec<i64>>(&ints!(i64).encode().unwrap());
        never_other_than_postcard::<Vec<u16>>(&ints!(u16).encode().unwrap());
        never_other_than_postcard::<Vec<[i32; 3]>>(&vec![[-1, 300, i32::MAX]; 4].encode().unwrap());
        never_other_than_postcard::<String>(&"héllo wörld".to_string().encode().unwrap());
    }

    #[test]
    fn a_refused_read_is_told_apart_from_damage() {
        struct Refusing;
        // SAFETY: never writes anything.
        unsafe impl Source for Refusing {
            fn total(&self) -> u64 {
                9
            }
            fn read(&mut self, _: u64, _: &mut [MaybeUninit<u8>]) -> Result<(), Unusable> {
                Err(Unusable::Refused)
            }
        }
        assert_eq!(Vec::<f64>::decode(&mut Refusing), Err(Unusable::Refused));
        assert_eq!(Vec::<u32>::decode(&mut Refusing), Err(Unusable::Refused));
    }
}
