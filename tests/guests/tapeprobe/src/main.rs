//! A guest for the record/replay tests. `tapeprobe MODE ARGS…` exercises one behaviour. Marked
//! functions print `computed …` when their body really runs, and read a clock and randomness
//! while they run, so a test can tell that a replay neither runs them nor loses its place in the
//! recorded clock and random streams.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use devstash::{stash, stashed};

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("randomness");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn wall_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos()
}

/// Reads `variant:0` in the module as built; the tests patch a copy to `variant:1` to get a
/// changed build of the program (see `common::patched_variant`): a replay answers every input
/// from its tape, so only a changed program can ask for more than was recorded.
static VARIANT: [u8; 24] = *b"devstash-test-variant:0.";

fn variant() -> bool {
    std::hint::black_box(&VARIANT)[22] == b'1'
}

fn double(x: u64) -> u64 {
    // Reads made inside a marked call belong to it: a replay never makes them.
    let t = Instant::now();
    let noise = random_hex(4);
    println!(
        "computed double({x}) [{noise}, {:?}]",
        t.elapsed() > Duration::ZERO
    );
    eprintln!("double({x}) ran");
    x * 2
}

#[stashed]
fn outer(n: u64) -> u64 {
    println!("computed outer({n})");
    stash!(double(n)) + 1
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

/// Never returns: the program traps inside a marked call.
#[stashed]
fn explode(x: u64) -> u64 {
    println!("computed explode({x})");
    panic!("explode({x}) went off");
}

/// Reads a file that only exists while recording: if a replay ran this, it would panic.
#[stashed]
fn load(path: String) -> String {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("load({path}) ran and could not read the file: {e}"));
    println!("computed load({path})");
    text.trim().to_uppercase()
}

/// Polls two relative monotonic timers (`ms` and `2 * ms`) at once, straight through WASI's
/// `poll_oneoff` (std only ever polls one timer); returns the userdata of the events that fired.
#[cfg(target_arch = "wasm32")]
fn poll_two_timers(ms: u64) -> Vec<u64> {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        fn poll_oneoff(subs: *const u64, events: *mut u64, n: u32, nevents: *mut u32) -> u16;
    }
    // Two `subscription`s of 48 bytes (6 u64 words): userdata, tag 0 (clock), then at byte 16
    // the clock id (1, monotonic), at 24 the timeout in ns, at 32 the precision, at 40 the flags.
    let mut subs = [0u64; 12];
    for (i, userdata) in [(0, 11u64), (6, 22u64)] {
        subs[i] = userdata;
        subs[i + 2] = 1;
        subs[i + 3] = ms * 1_000_000 * (userdata / 11);
    }
    let mut events = [0u64; 8];
    let mut n = 0u32;
    // SAFETY: the buffers are aligned and as long as two subscriptions and two events.
    let errno = unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), 2, &mut n) };
    assert_eq!(errno, 0, "poll_oneoff failed");
    (0..n as usize).map(|e| events[e * 4]).collect()
}

#[cfg(not(target_arch = "wasm32"))]
fn poll_two_timers(_ms: u64) -> Vec<u64> {
    unimplemented!("a wasm32-wasip1 guest")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> String { args.get(i).cloned().unwrap_or_default() };
    let num = |i: usize| -> i64 { arg(i).parse().expect("a number") };
    match arg(0).as_str() {
        // Every input at once: clocks, randomness, stdin, environment, arguments.
        "io" => {
            let t0 = Instant::now();
            let wall = wall_nanos();
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).expect("stdin");
            println!("wall {wall}");
            println!("random {}", random_hex(16));
            println!("stdin {:?}", input.to_uppercase());
            println!("env GREETING={:?}", std::env::var("GREETING").ok());
            println!("args {:?}", &args[1..]);
            eprintln!("elapsed {:?}", t0.elapsed());
        }
        "sleep" => {
            let t0 = Instant::now();
            std::thread::sleep(Duration::from_millis(num(1) as u64));
            println!("slept {:?}", t0.elapsed());
        }
        "calls" => {
            let t0 = Instant::now();
            println!("a {}", stash!(double(3)));
            println!("b {}", stash!(double(3)));
            println!("c {}", outer(4));
            println!("d {}", stash!(double(4)));
            println!("random {}", random_hex(8));
            println!("elapsed {:?}", t0.elapsed());
        }
        // N clock readings and N/100 lines of output: a worst case for recording overhead.
        "busy" => {
            let t0 = Instant::now();
            let mut acc = 0u128;
            for i in 0..num(1) {
                acc = acc.wrapping_add(t0.elapsed().as_nanos());
                if i % 100 == 0 {
                    println!("{i} {acc}");
                }
            }
        }
        "poll" => println!("fired {:?}", poll_two_timers(num(1) as u64)),
        "checked" => match checked(num(1)) {
            Ok(v) => println!("ok {v}"),
            Err(e) => println!("err {e}"),
        },
        "explode" => println!("{}", explode(7)),
        "load" => println!("loaded {}", load(arg(1))),
        // Reads PATH; prints what it got.
        "open" => match std::fs::read_to_string(arg(1)) {
            Ok(text) => println!("read {:?}", text.trim()),
            Err(e) => println!("cannot read {}: {e}", arg(1)),
        },
        "write" => match std::fs::write(arg(1), "written") {
            Ok(()) => println!("wrote {}", arg(1)),
            Err(e) => println!("cannot write {}: {e}", arg(1)),
        },
        // `more KIND [URL]`: a changed build (see `variant`) asks for one more input.
        "more" => {
            let extra = variant();
            match arg(1).as_str() {
                "clock" => {
                    let t = Instant::now();
                    if extra {
                        println!("again {:?}", t.elapsed());
                    }
                }
                "random" => {
                    println!("{}", random_hex(8));
                    if extra {
                        println!("{}", random_hex(8));
                    }
                }
                "call" => println!("{}", stash!(double(if extra { 21 } else { 20 }))),
                // Reads stdin to its end; the changed build reads once more.
                "stdin" => {
                    let mut input = Vec::new();
                    let n = std::io::stdin().read_to_end(&mut input).expect("stdin");
                    println!("stdin {n} bytes");
                    if extra {
                        let more = std::io::stdin().read(&mut [0; 16]).expect("stdin");
                        println!("then {more} more");
                    }
                }
                // GET URL, or URL?extra in the changed build.
                "http" => {
                    let url = if extra {
                        format!("{}?extra", arg(2))
                    } else {
                        arg(2)
                    };
                    match devstash::http::get(&url) {
                        Ok(r) => println!("http {} {}", r.status, r.text()),
                        Err(e) => println!("http error: {e}"),
                    }
                }
                other => panic!("unknown kind {other}"),
            }
            println!("done");
        }
        // Tries to open a TCP connection to ADDR.
        "connect" => match std::net::TcpStream::connect(arg(1)) {
            Ok(_) => println!("connected to {}", arg(1)),
            Err(e) => println!("cannot connect to {}: {e}", arg(1)),
        },
        // GET each URL through the host, uncached.
        "http" => {
            for url in &args[1..] {
                match devstash::http::get(url) {
                    Ok(r) => println!("http {} {}", r.status, r.text()),
                    Err(e) => println!("http error: {e}"),
                }
            }
        }
        // `token VAR URL`: GET URL with `X-Team-Token: $VAR`, after printing the value's length.
        "token" => {
            let token = std::env::var(arg(1)).unwrap_or_default();
            println!("token of {} bytes", token.len());
            let r = devstash::http::Request::get(&arg(2))
                .header("X-Team-Token", &token)
                .send();
            match r {
                Ok(r) => println!("http {} {}", r.status, r.text()),
                Err(e) => println!("http error: {e}"),
            }
        }
        "exit" => {
            println!("exiting with {}", num(1));
            std::process::exit(num(1) as i32)
        }
        "panic" => panic!("tapeprobe was told to panic"),
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}
