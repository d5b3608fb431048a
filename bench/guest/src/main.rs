//! Workloads for `make bench`, timed inside the guest so process start-up is left out.
//!
//! - `calls N`: N marked calls with distinct small arguments (first run: misses and stores;
//!   second run: hits). Prints `per_call_ns=…`.
//! - `big BYTES`: one marked call returning BYTES bytes (first run stores, second restores).
//!   Prints `bytes=… secs=…`.
//! - `vecf64 N`: one marked call returning a `Vec<f64>` of N elements (first run stores, second
//!   restores). Prints `bytes=… secs=…`, the call timed alone.
//! - `arg N debug|plain`: one marked call (a miss on a fresh cache) over an argument of N
//!   small structs, whose type implements `Debug` or not: what the arguments preview costs.
//!   Prints `secs=…`.
//! - `files N DIR`: file-system traffic in DIR, a guest directory that must start empty (run it
//!   with `--dir HOST::/work` and `files N /work`): creates N files of 1–4 KiB (deterministic,
//!   incompressible contents), reads each back, stats each, lists DIR, reads every file a second
//!   time (the same contents again, which a deduplicating tape stores once), then rewrites a
//!   tenth of them (and reads those back), renames a tenth, removes a tenth and lists DIR again.
//!   Every read is checked against what was written. Prints `files=N read_bytes=… unique_bytes=…
//!   checksum=… secs=…`: all bytes of file contents read, those bytes counting each distinct
//!   content once, and a checksum of everything read (contents, sizes, names) to compare runs.

use std::fmt::Display;
use std::path::Path;
use std::time::Instant;

use devstash::{stash, stashed};
use serde::Serialize;
use serde_bytes::ByteBuf;

/// A record of the argument, with `Debug` (so the miss makes an arguments preview).
#[derive(Serialize, Debug)]
struct Trip {
    id: u32,
    fare: f64,
}

/// The same record without `Debug` (no preview).
#[derive(Serialize)]
struct PlainTrip {
    id: u32,
    fare: f64,
}

#[stashed]
fn total(trips: &[Trip]) -> f64 {
    trips.iter().map(|t| t.fare).sum()
}

#[stashed]
fn plain_total(trips: &[PlainTrip]) -> f64 {
    trips.iter().map(|t| t.fare).sum()
}

/// N floats, each distinct, so the stored value cannot be told from its length alone.
#[stashed]
fn floats(n: u64) -> Vec<f64> {
    (0..n).map(|i| i as f64 * 0.5).collect()
}

fn f(x: u64) -> u64 {
    x * 2
}

fn make(n: usize) -> ByteBuf {
    let pattern: Vec<u8> = (0..=255u8).collect();
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let take = (n - v.len()).min(256);
        v.extend_from_slice(&pattern[..take]);
    }
    ByteBuf::from(v)
}

/// A 64-bit hash of bytes, eight at a time (FNV-1a is too slow per byte to leave out of the
/// timing); not cryptographic, only to compare what runs read.
fn hash(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap());
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }
    for &b in chunks.remainder() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h ^ (h >> 32)
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The contents of file `i` at `version`: 1024 to 4096 pseudo-random bytes.
fn contents(i: usize, version: u64) -> Vec<u8> {
    let mut state = (i as u64) << 8 | version;
    let len = 1024 + (splitmix(&mut state) % 3073) as usize;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&splitmix(&mut state).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// The value, or a one-line error on stderr and exit code 1.
fn check<T>(r: std::io::Result<T>, what: impl Display) -> T {
    r.unwrap_or_else(|e| {
        eprintln!("bench_guest files: {what}: {e}");
        std::process::exit(1);
    })
}

/// What `files` read.
#[derive(Default)]
struct Read {
    bytes: u64,
    unique: u64,
    sum: u64,
}

impl Read {
    fn mix(&mut self, h: u64) {
        self.sum = (self.sum.rotate_left(5) ^ h).wrapping_mul(0x100_0000_01b3);
    }

    /// Reads `path`, checks it holds what was written (its hash `expect`) and counts it.
    fn file(&mut self, path: &Path, expect: u64, first: bool) {
        let data = check(std::fs::read(path), format_args!("read {}", path.display()));
        let h = hash(&data);
        if h != expect {
            eprintln!(
                "bench_guest files: {} does not hold what was written",
                path.display()
            );
            std::process::exit(1);
        }
        self.bytes += data.len() as u64;
        if first {
            self.unique += data.len() as u64;
        }
        self.mix(h);
    }

    /// Lists `dir` (names sorted, with their sizes) and counts it; returns how many entries.
    fn list(&mut self, dir: &Path) -> usize {
        let mut names = Vec::new();
        for e in check(
            std::fs::read_dir(dir),
            format_args!("list {}", dir.display()),
        ) {
            let e = check(e, format_args!("list {}", dir.display()));
            let len = check(e.metadata(), format_args!("stat {:?}", e.file_name())).len();
            names.push((e.file_name().to_string_lossy().into_owned(), len));
        }
        names.sort();
        for (name, len) in &names {
            self.mix(hash(name.as_bytes()) ^ len);
        }
        names.len()
    }
}

fn files(n: usize, dir: &Path) -> Read {
    let mut read = Read::default();
    if read.list(dir) != 0 {
        eprintln!("bench_guest files: {} is not empty", dir.display());
        std::process::exit(1);
    }
    let path = |i: usize| dir.join(format!("f{i:05}.dat"));
    let mut written = Vec::with_capacity(n);
    for i in 0..n {
        let data = contents(i, 0);
        check(
            std::fs::write(path(i), &data),
            format_args!("write {}", path(i).display()),
        );
        written.push((hash(&data), data.len() as u64));
    }
    for (i, &(h, _)) in written.iter().enumerate() {
        read.file(&path(i), h, true);
    }
    for (i, &(_, len)) in written.iter().enumerate() {
        let meta = check(
            std::fs::metadata(path(i)),
            format_args!("stat {}", path(i).display()),
        );
        assert!(meta.is_file() && meta.len() == len, "{}", path(i).display());
        read.mix(meta.len());
    }
    assert_eq!(read.list(dir), n);
    for (i, &(h, _)) in written.iter().enumerate() {
        read.file(&path(i), h, false);
    }
    // A tenth rewritten (new contents, read back), a tenth renamed, a tenth removed.
    for i in (3..n).step_by(10) {
        let data = contents(i, 1);
        check(
            std::fs::write(path(i), &data),
            format_args!("rewrite {}", path(i).display()),
        );
        read.file(&path(i), hash(&data), true);
    }
    for i in (5..n).step_by(10) {
        let to = dir.join(format!("r{i:05}.dat"));
        check(
            std::fs::rename(path(i), &to),
            format_args!("rename {}", path(i).display()),
        );
    }
    for i in (7..n).step_by(10) {
        check(
            std::fs::remove_file(path(i)),
            format_args!("remove {}", path(i).display()),
        );
    }
    assert_eq!(read.list(dir), n - (7..n).step_by(10).count());
    read
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    match args.first().map(String::as_str) {
        Some("calls") => {
            let t = Instant::now();
            let mut sum = 0u64;
            for i in 0..n {
                sum = sum.wrapping_add(stash!(f(i)));
            }
            let dt = t.elapsed();
            println!(
                "calls={n} sum={sum} per_call_ns={:.0}",
                dt.as_nanos() as f64 / n as f64
            );
        }
        Some("big") => {
            let t = Instant::now();
            let b = stash!(make(n as usize));
            let dt = t.elapsed();
            assert_eq!(b.len(), n as usize);
            assert_eq!(b[b.len() - 1], ((n - 1) % 256) as u8);
            println!("bytes={} secs={:.6}", b.len(), dt.as_secs_f64());
        }
        Some("vecf64") => {
            let t = Instant::now();
            let v = floats(n);
            let dt = t.elapsed();
            assert_eq!(v.len(), n as usize);
            assert_eq!(v.last().copied(), n.checked_sub(1).map(|i| i as f64 * 0.5));
            println!(
                "bytes={} secs={:.6}",
                std::mem::size_of_val(v.as_slice()),
                dt.as_secs_f64()
            );
        }
        Some("arg") => {
            let with_debug = args.get(2).map(String::as_str) == Some("debug");
            let fare = |i: u64| (i % 97) as f64 * 0.5;
            let (dt, sum) = if with_debug {
                let trips: Vec<Trip> = (0..n)
                    .map(|i| Trip {
                        id: i as u32,
                        fare: fare(i),
                    })
                    .collect();
                let t = Instant::now();
                let sum = total(&trips);
                (t.elapsed(), sum)
            } else {
                let trips: Vec<PlainTrip> = (0..n)
                    .map(|i| PlainTrip {
                        id: i as u32,
                        fare: fare(i),
                    })
                    .collect();
                let t = Instant::now();
                let sum = plain_total(&trips);
                (t.elapsed(), sum)
            };
            println!("sum={sum} secs={:.6}", dt.as_secs_f64());
        }
        Some("files") => {
            let dir = Path::new(args.get(2).map(String::as_str).unwrap_or("/work"));
            let t = Instant::now();
            let read = files(n as usize, dir);
            let dt = t.elapsed();
            println!(
                "files={n} read_bytes={} unique_bytes={} checksum={:016x} secs={:.6}",
                read.bytes,
                read.unique,
                read.sum,
                dt.as_secs_f64()
            );
        }
        _ => {
            eprintln!(
                "usage: bench_guest calls N | big BYTES | vecf64 N | arg N debug|plain | files N DIR"
            );
            std::process::exit(2);
        }
    }
}
