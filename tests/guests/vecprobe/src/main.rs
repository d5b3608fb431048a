//! A guest for the numeric-vector tests. `vecprobe MODE ARGS…`:
//!
//! - `all`, or `one NAME`: returns each numeric vector (or just `NAME`) through a marked call and
//!   prints `same NAME` when the value is bit for bit the expected one, `DIFFERENT NAME` if not.
//!   A marked body prints `computed NAME` when it really runs, so a test tells a hit from a miss.
//! - `postcard NAME`: the postcard bytes of `NAME`'s expected value, in hex (what an entry of the
//!   value holds, as the generic encoding writes it).
//! - `generic TYPE N`: one generic function instantiated with `f64`, `f32` or `u64`.
//! - `big N`: `N` `f64`s through a marked call, timed inside the guest; `bytes N`: as many
//!   bytes as a `Vec<u8>`, for comparison.

use std::time::Instant;

use devstash::{stash, stashed};

/// A NaN with a payload, to check that bit patterns survive.
const NAN_F64: u64 = 0x7ff8_dead_beef_0001;
const NAN_F32: u32 = 0x7fc0_beef;

fn f64s() -> Vec<f64> {
    [
        0.0,
        -0.0,
        f64::from_bits(NAN_F64),
        f64::from_bits(NAN_F64 | 1 << 63),
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        f64::MAX,
        f64::MIN,
        1.5,
        -1.0 / 3.0,
    ]
    .to_vec()
}

fn f32s() -> Vec<f32> {
    [
        0.0,
        -0.0,
        f32::from_bits(NAN_F32),
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(1),
        f32::MAX,
        f32::MIN,
        0.1,
    ]
    .to_vec()
}

/// Edge values of an integer type, and values around each varint length.
macro_rules! ints {
    ($t:ty) => {{
        let mut v: Vec<$t> = vec![<$t>::MIN, <$t>::MAX, 0, 1, <$t>::MAX / 2, <$t>::MIN / 2];
        for shift in [
            6u32, 7, 13, 14, 20, 21, 27, 28, 31, 32, 34, 35, 48, 49, 55, 56, 62, 63,
        ] {
            if shift < <$t>::BITS {
                let x = (1 as $t) << shift;
                v.extend([
                    x,
                    x.wrapping_sub(1),
                    x.wrapping_add(1),
                    (0 as $t).wrapping_sub(x),
                ]);
            }
        }
        v
    }};
}

fn arrays_f64() -> Vec<[f64; 3]> {
    (0..1000)
        .map(|i| [i as f64, -(i as f64) / 7.0, f64::from_bits(NAN_F64 + i)])
        .collect()
}

fn arrays_i32() -> Vec<[i32; 2]> {
    (0..1000).map(|i: i32| [i * 1_000_003, -i]).collect()
}

fn long_u64() -> Vec<u64> {
    // Enough varints to span many of the reader's chunks.
    (0..300_000u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (i % 64))
        .collect()
}

fn long_f32() -> Vec<f32> {
    (0..300_000u32)
        .map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761)))
        .collect()
}

/// The value each name stands for, as stored bytes (bit patterns, not float comparison).
fn expected(name: &str) -> Option<Vec<u8>> {
    Some(match name {
        "f64" => postcard::to_allocvec(&f64s()).ok()?,
        "f32" => postcard::to_allocvec(&f32s()).ok()?,
        "i64" => postcard::to_allocvec(&ints!(i64)).ok()?,
        "u64" => postcard::to_allocvec(&ints!(u64)).ok()?,
        "i32" => postcard::to_allocvec(&ints!(i32)).ok()?,
        "u32" => postcard::to_allocvec(&ints!(u32)).ok()?,
        "i16" => postcard::to_allocvec(&ints!(i16)).ok()?,
        "u16" => postcard::to_allocvec(&ints!(u16)).ok()?,
        "i8" => postcard::to_allocvec(&ints!(i8)).ok()?,
        "u8" => postcard::to_allocvec(&ints!(u8)).ok()?,
        "empty_f64" => postcard::to_allocvec(&Vec::<f64>::new()).ok()?,
        "empty_u32" => postcard::to_allocvec(&Vec::<u32>::new()).ok()?,
        "arrays_f64" => postcard::to_allocvec(&arrays_f64()).ok()?,
        "arrays_i32" => postcard::to_allocvec(&arrays_i32()).ok()?,
        "long_u64" => postcard::to_allocvec(&long_u64()).ok()?,
        "long_f32" => postcard::to_allocvec(&long_f32()).ok()?,
        "result_f64" => postcard::to_allocvec(&f64s()).ok()?,
        "result_i16" => postcard::to_allocvec(&ints!(i16)).ok()?,
        _ => return None,
    })
}

const NAMES: &[&str] = &[
    "f64",
    "f32",
    "i64",
    "u64",
    "i32",
    "u32",
    "i16",
    "u16",
    "i8",
    "u8",
    "empty_f64",
    "empty_u32",
    "arrays_f64",
    "arrays_i32",
    "long_u64",
    "long_f32",
    "result_f64",
    "result_i16",
];

/// Each marked function names its value in `computed …`.
fn made<T>(name: &str, v: T) -> T {
    println!("computed {name}");
    v
}

fn make_f64() -> Vec<f64> {
    made("f64", f64s())
}
fn make_f32() -> Vec<f32> {
    made("f32", f32s())
}
fn make_i64() -> Vec<i64> {
    made("i64", ints!(i64))
}
fn make_u64() -> Vec<u64> {
    made("u64", ints!(u64))
}
fn make_i32() -> Vec<i32> {
    made("i32", ints!(i32))
}
fn make_u32() -> Vec<u32> {
    made("u32", ints!(u32))
}
fn make_i16() -> Vec<i16> {
    made("i16", ints!(i16))
}
fn make_u16() -> Vec<u16> {
    made("u16", ints!(u16))
}
fn make_i8() -> Vec<i8> {
    made("i8", ints!(i8))
}
fn make_u8() -> Vec<u8> {
    made("u8", ints!(u8))
}
#[stashed]
fn empty_f64() -> Vec<f64> {
    made("empty_f64", Vec::new())
}
#[stashed]
fn empty_u32() -> Vec<u32> {
    made("empty_u32", Vec::new())
}
#[stashed]
fn make_arrays_f64() -> Vec<[f64; 3]> {
    made("arrays_f64", arrays_f64())
}
#[stashed]
fn make_arrays_i32() -> Vec<[i32; 2]> {
    made("arrays_i32", arrays_i32())
}
#[stashed]
fn make_long_u64() -> Vec<u64> {
    made("long_u64", long_u64())
}
#[stashed]
fn make_long_f32() -> Vec<f32> {
    made("long_f32", long_f32())
}
#[stashed]
fn result_f64(fail: bool) -> Result<Vec<f64>, String> {
    if fail {
        return Err("asked to fail".into());
    }
    Ok(made("result_f64", f64s()))
}
fn result_i16(fail: bool) -> Result<Vec<i16>, String> {
    if fail {
        return Err("asked to fail".into());
    }
    Ok(made("result_i16", ints!(i16)))
}

/// Runs `name`'s marked call; its value as stored bytes.
fn restore(name: &str) -> Option<Vec<u8>> {
    fn bytes<T: serde::Serialize>(v: &T) -> Option<Vec<u8>> {
        postcard::to_allocvec(v).ok()
    }
    match name {
        "f64" => bytes(&stash!(make_f64())),
        "f32" => bytes(&stash!(make_f32())),
        "i64" => bytes(&stash!(make_i64())),
        "u64" => bytes(&stash!(make_u64())),
        "i32" => bytes(&stash!(make_i32())),
        "u32" => bytes(&stash!(make_u32())),
        "i16" => bytes(&stash!(make_i16())),
        "u16" => bytes(&stash!(make_u16())),
        "i8" => bytes(&stash!(make_i8())),
        "u8" => bytes(&stash!(make_u8())),
        "empty_f64" => bytes(&empty_f64()),
        "empty_u32" => bytes(&empty_u32()),
        "arrays_f64" => bytes(&make_arrays_f64()),
        "arrays_i32" => bytes(&make_arrays_i32()),
        "long_u64" => bytes(&make_long_u64()),
        "long_f32" => bytes(&make_long_f32()),
        "result_f64" => {
            // An `Err` is never stored: the `Ok` after it is computed and stored.
            let _ = result_f64(true);
            bytes(&result_f64(false).ok()?)
        }
        "result_i16" => bytes(&stash!(result_i16(false)).ok()?),
        _ => None,
    }
}

fn check(name: &str) {
    match (restore(name), expected(name)) {
        (Some(got), Some(want)) if got == want => println!("same {name}"),
        _ => println!("DIFFERENT {name}"),
    }
}

/// A value for each number type the generic function is tried with.
trait Series: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug {
    fn nth(i: u64) -> Self;
}
impl Series for f64 {
    fn nth(i: u64) -> Self {
        i as f64 + 0.25
    }
}
impl Series for f32 {
    fn nth(i: u64) -> Self {
        i as f32 + 0.5
    }
}
impl Series for u64 {
    fn nth(i: u64) -> Self {
        i * 3
    }
}

#[stashed]
fn series<T: Series>(n: u64) -> Vec<T> {
    println!("computed series::<{}>({n})", std::any::type_name::<T>());
    (0..n).map(T::nth).collect()
}

fn big(n: u64) {
    let start = Instant::now();
    let v: Vec<f64> = stash!(ramp(n));
    let secs = start.elapsed().as_secs_f64();
    let bytes = v.len() as f64 * 8.0;
    let digest = v
        .iter()
        .enumerate()
        .fold(0u64, |d, (i, x)| d.rotate_left(5) ^ x.to_bits() ^ i as u64);
    println!(
        "{} f64 ({:.0} MiB) in {secs:.3} s: {:.2} GB/s (digest {digest:016x})",
        v.len(),
        bytes / (1 << 20) as f64,
        bytes / secs / 1e9
    );
}

/// The same number of bytes as `big N`, as a `Vec<u8>`: what the runner itself costs a hit.
fn big_bytes(n: u64) {
    let start = Instant::now();
    let v: Vec<u8> = stash!(ramp_bytes(n * 8));
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} bytes in {secs:.3} s: {:.2} GB/s",
        v.len(),
        v.len() as f64 / secs / 1e9
    );
}

fn ramp_bytes(n: u64) -> Vec<u8> {
    println!("computed ramp_bytes({n})");
    (0..n).map(|i| i as u8).collect()
}

fn ramp(n: u64) -> Vec<f64> {
    println!("computed ramp({n})");
    (0..n).map(|i| i as f64 * 0.5).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["all"] => NAMES.iter().for_each(|n| check(n)),
        ["one", name] => check(name),
        ["postcard", name] => {
            let hex: String = expected(name)
                .unwrap_or_default()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            println!("{hex}");
        }
        ["generic", ty, n] => {
            let n: u64 = n.parse().expect("a count");
            match *ty {
                "f64" => println!("{:?}", series::<f64>(n)),
                "f32" => println!("{:?}", series::<f32>(n)),
                "u64" => println!("{:?}", series::<u64>(n)),
                other => panic!("no type {other}"),
            }
        }
        ["big", n] => big(n.parse().expect("a count")),
        ["bytes", n] => big_bytes(n.parse().expect("a count")),
        _ => {
            eprintln!(
                "usage: vecprobe all | one NAME | postcard NAME | generic TYPE N | big N | bytes N"
            );
            std::process::exit(2);
        }
    }
}
