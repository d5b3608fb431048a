//! Workloads for `make bench`, timed inside the guest so process start-up is left out.
//!
//! - `calls N`: N marked calls with distinct small arguments (first run: misses and stores;
//!   second run: hits). Prints `per_call_ns=…`.
//! - `big BYTES`: one marked call returning BYTES bytes (first run stores, second restores).
//!   Prints `bytes=… secs=…`.
//! - `arg N debug|plain`: one marked call (a miss on a fresh cache) over an argument of N
//!   small structs, whose type implements `Debug` or not: what the arguments preview costs.
//!   Prints `secs=…`.

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
        _ => {
            eprintln!("usage: bench_guest calls N | big BYTES | arg N debug|plain");
            std::process::exit(2);
        }
    }
}
