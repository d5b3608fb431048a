//! The quickstart: one slow call, marked with `stash!`. The first `devstash run` computes it,
//! every later run returns the stored value at once.

use devstash::stash;
use std::time::Duration;

fn slow_function(x: u64) -> u64 {
    println!("Running slow_function...");
    std::thread::sleep(Duration::from_secs(2));
    x * 2
}

fn main() {
    let val = stash!(slow_function(10));
    println!("{val}");
}
