//! Built for a non-wasm target, the markers are plain calls: the same code builds and runs
//! natively, computing every time.

use std::cell::Cell;

use devstash::{stash, stashed};

thread_local! {
    static CALLS: Cell<u32> = const { Cell::new(0) };
}

fn double(x: u64) -> u64 {
    CALLS.with(|c| c.set(c.get() + 1));
    x * 2
}

#[stashed(ttl = "1d")]
fn checked(x: i64) -> Result<i64, String> {
    CALLS.with(|c| c.set(c.get() + 1));
    if x < 0 { Err("negative".into()) } else { Ok(x) }
}

struct Counter {
    base: u64,
}

impl Counter {
    fn add(&self, x: u64) -> u64 {
        CALLS.with(|c| c.set(c.get() + 1));
        self.base + x
    }
}

impl serde::Serialize for Counter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.base)
    }
}

#[test]
fn markers_are_plain_calls_natively() {
    assert_eq!(stash!(double(21)), 42);
    assert_eq!(stash!(ttl = "2h", double(21)), 42);
    assert_eq!(checked(5), Ok(5));
    assert_eq!(checked(-1), Err("negative".to_string()));
    let c = Counter { base: 10 };
    assert_eq!(stash!(c.add(5)), 15);
    // Every call ran: nothing is cached natively.
    assert_eq!(CALLS.with(Cell::get), 5);
}
