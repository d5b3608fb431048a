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

/// One level of a deep chain of pending marked calls: prints `bytes` bytes, then calls the next
/// level before returning, so that every level is still running (pending) when the innermost one
/// prints.
#[stashed]
fn deep(n: u32, bytes: u32) -> u32 {
    use std::io::Write;
    let chunk = vec![b'.'; bytes as usize];
    let mut out = std::io::stdout().lock();
    out.write_all(&chunk).expect("stdout");
    out.flush().expect("stdout");
    drop(out);
    drop(chunk);
    if n == 0 { 0 } else { deep(n - 1, bytes) + 1 }
}

/// `http ok STATUS LEN`, or `http error KIND: MESSAGE` (never the URL of a good response).
fn show_http(result: Result<devstash::http::Response, devstash::http::Error>, with_message: bool) {
    match result {
        Ok(r) => println!("http ok {} {}", r.status, r.body.len()),
        Err(e) if with_message => println!("http error {:?}: {}", e.kind, e.message),
        Err(e) => println!("http error {:?}", e.kind),
    }
}

/// Reads the monotonic clock, then polls one timer whose deadline is ABSOLUTE: that reading plus
/// `ms` milliseconds (straight through WASI's `poll_oneoff`; std only polls relative timers).
/// Returns the number of events.
#[cfg(target_arch = "wasm32")]
fn poll_absolute(ms: u64) -> u32 {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        fn clock_time_get(id: u32, precision: u64, time: *mut u64) -> u16;
        fn poll_oneoff(subs: *const u64, events: *mut u64, n: u32, nevents: *mut u32) -> u16;
    }
    let mut now = 0u64;
    // SAFETY: `now` is a valid, aligned u64.
    let errno = unsafe { clock_time_get(1, 1, &mut now) };
    assert_eq!(errno, 0, "clock_time_get failed");
    // One `subscription` of 48 bytes: userdata, tag 0 (clock), then at byte 16 the clock id (1,
    // monotonic), at 24 the timeout, at 32 the precision, at 40 the flags (1: absolute time).
    let subs = [7u64, 0, 1, now.saturating_add(ms * 1_000_000), 0, 1];
    let mut events = [0u64; 4];
    let mut n = 0u32;
    // SAFETY: the buffers are aligned and as long as one subscription and one event.
    let errno = unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), 1, &mut n) };
    assert_eq!(errno, 0, "poll_oneoff failed");
    n
}

#[cfg(not(target_arch = "wasm32"))]
fn poll_absolute(_ms: u64) -> u32 {
    unimplemented!("a wasm32-wasip1 guest")
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
        // `symlink TARGET LINK`: replaces LINK (a file or a folder) by a link to TARGET.
        "symlink" => {
            let link = arg(2);
            let _ = std::fs::remove_dir_all(&link).or_else(|_| std::fs::remove_file(&link));
            // `std::os::wasi::fs::symlink_path` is unstable: the WASI call itself, in the first
            // granted folder (file descriptor 3), where LINK is taken relative to it.
            #[link(wasm_import_module = "wasi_snapshot_preview1")]
            unsafe extern "C" {
                fn path_symlink(
                    old: *const u8,
                    old_len: usize,
                    fd: i32,
                    new: *const u8,
                    new_len: usize,
                ) -> u16;
            }
            let target = arg(1);
            // SAFETY: both strings are alive for the call.
            let errno = unsafe {
                path_symlink(target.as_ptr(), target.len(), 3, link.as_ptr(), link.len())
            };
            match errno {
                0 => println!("symlink ok"),
                e => println!("symlink failed: errno {e}"),
            }
        }
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
        // Copies the file SRC to DST (both guest paths), byte for byte.
        "copy" => {
            match std::fs::read(arg(1)).and_then(|b| std::fs::write(arg(2), &b).map(|()| b.len())) {
                Ok(n) => println!("copied {n} bytes"),
                Err(e) => println!("copy failed: {e}"),
            }
        }
        // DEPTH nested pending marked calls, each printing BYTES bytes before the next starts.
        "deep" => println!("depth {}", deep(num(1) as u32, num(2) as u32)),
        // GET URL through the host, uncached; an error's kind and message.
        "http-get" => show_http(devstash::http::get(&arg(1)), true),
        // GET URL, stored for an hour; an error's kind only (the message may hold the URL).
        "http-stash" => show_http(
            devstash::http::Request::get(&arg(1)).stash("1h").send(),
            false,
        ),
        // GET URL with secret headers whose values are fixed here (never on the command line).
        "secret-headers" => show_http(
            devstash::http::Request::get(&arg(1))
                .header("Authorization", "Bearer SECRET-A")
                .header("Cookie", "session=SECRET-B")
                .header("x-api-key", "SECRET-C")
                .send(),
            false,
        ),
        // Polls a timer with an absolute deadline MS milliseconds after a clock reading.
        "poll-abs" => println!("polled {}", poll_absolute(num(1) as u64)),
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}
