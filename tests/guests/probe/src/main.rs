//! A guest for the end-to-end tests. `probe MODE ARGS…` exercises one behaviour; every marked
//! function prints `computed …` when its body really runs, so a test can tell a hit from a miss.

use devstash::{stash, stashed};
use serde::{Deserialize, Serialize};

fn double(x: u64) -> u64 {
    println!("computed double({x})");
    x * 2
}

#[stashed(ttl = "1s")]
fn short_lived(x: u64) -> u64 {
    println!("computed short_lived({x})");
    x + 1
}

#[stashed]
fn checked(x: i64) -> Result<i64, String> {
    println!("computed checked({x})");
    if x < 0 {
        Err(format!("{x} is negative"))
    } else {
        Ok(x * 10)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stats {
    count: usize,
    mean: f64,
    label: String,
}

#[derive(Serialize)]
struct Scaler {
    factor: f64,
}

impl Scaler {
    fn scale(&self, xs: &[f64]) -> Vec<f64> {
        println!("computed scale(factor={})", self.factor);
        xs.iter().map(|x| x * self.factor).collect()
    }
}

#[stashed]
fn summarize(label: String, xs: Vec<f64>) -> Stats {
    println!("computed summarize({label})");
    let mean = xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    Stats {
        count: xs.len(),
        mean,
        label,
    }
}

fn blob(n: usize) -> serde_bytes::ByteBuf {
    println!("computed blob({n})");
    serde_bytes::ByteBuf::from((0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

fn text(n: usize) -> String {
    println!("computed text({n})");
    (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect()
}

fn bytes(n: usize) -> Vec<u8> {
    println!("computed bytes({n})");
    (0..n).map(|i| (i % 241) as u8).collect()
}

#[stashed]
fn outer(n: u64) -> u64 {
    println!("computed outer({n})");
    stash!(double(n)) + 1
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> String { args.get(i).cloned().unwrap_or_default() };
    let num = |i: usize| -> i64 { arg(i).parse().expect("a number") };
    match arg(0).as_str() {
        "double" => println!("result {}", stash!(double(num(1) as u64))),
        "short" => println!("result {}", short_lived(num(1) as u64)),
        "checked" => match checked(num(1)) {
            Ok(v) => println!("ok {v}"),
            Err(e) => println!("err {e}"),
        },
        "struct" => {
            let s = summarize(arg(1), vec![1.0, 2.0, 3.0, 4.0]);
            println!("stats {} {} {}", s.count, s.mean, s.label);
        }
        "method" => {
            let scaler = Scaler {
                factor: num(1) as f64,
            };
            let v = stash!(scaler.scale(&[1.0, 2.0]));
            println!("scaled {v:?}");
        }
        "nested" => println!("result {}", outer(num(1) as u64)),
        "many" => {
            let n = num(1) as u64;
            let total: u64 = (0..n).map(|i| stash!(double(i))).sum();
            println!("total {total}");
        }
        "big" => {
            let b = stash!(blob(num(1) as usize));
            let ok = b.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8);
            println!(
                "blob {} bytes, {}",
                b.len(),
                if ok { "intact" } else { "WRONG" }
            );
        }
        "text" => {
            let t = stash!(text(num(1) as usize));
            let ok = t
                .bytes()
                .enumerate()
                .all(|(i, c)| c == b'a' + (i % 26) as u8);
            println!(
                "text {} bytes, {}",
                t.len(),
                if ok { "intact" } else { "WRONG" }
            );
        }
        "bytes" => {
            let b = stash!(bytes(num(1) as usize));
            let ok = b.iter().enumerate().all(|(i, &x)| x == (i % 241) as u8);
            println!(
                "bytes {} bytes, {}",
                b.len(),
                if ok { "intact" } else { "WRONG" }
            );
        }
        "read" => match std::fs::read_to_string(arg(1)) {
            Ok(text) => println!("read {} bytes", text.len()),
            Err(e) => println!("read failed: {e}"),
        },
        "write" => match std::fs::write(arg(1), b"written by the guest") {
            Ok(()) => println!("write ok"),
            Err(e) => println!("write failed: {e}"),
        },
        "spin" => {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(num(1) as u64));
            println!("slept");
        }
        "alloc" => {
            let v = vec![7u8; num(1) as usize];
            println!("allocated {}", std::hint::black_box(v).len());
        }
        "exit" => std::process::exit(num(1) as i32),
        "panic" => panic!("probe was told to panic"),
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}
