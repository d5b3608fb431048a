//! Workloads for `make bench`, timed inside the guest so process start-up is left out.
//!
//! - `calls N`: N marked calls with distinct small arguments (first run: misses and stores;
//!   second run: hits). Prints `per_call_ns=…`.
//! - `big BYTES`: one marked call returning BYTES bytes (first run stores, second restores).
//!   Prints `bytes=… secs=…`.

use std::time::Instant;

use devstash::stash;
use serde_bytes::ByteBuf;

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
        _ => {
            eprintln!("usage: bench_guest calls N | big BYTES");
            std::process::exit(2);
        }
    }
}
