//! The tape decoder on arbitrary bytes: never a panic; a corrupt, cut or foreign tape is an
//! error.
#![no_main]

use devstash_runner::tape::format::Tape;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Tape::decode(data);
});
