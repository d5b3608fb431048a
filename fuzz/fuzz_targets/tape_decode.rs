//! The tape decoder on arbitrary bytes: never a panic; a corrupt, cut or foreign tape is an
//! error. The bytes are also taken as a tape's events under a valid checksum, and what decodes
//! is summarized (`inspect`) and loaded for a replay, which must not panic either.
#![no_main]

use std::path::Path;

use devstash_runner::tape::format::{Tape, TapeHeader, encode};
use devstash_runner::tape::replay::Player;
use devstash_runner::tape::report;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Tape::decode(data);
    let header = TapeHeader {
        module: "m.wasm".into(),
        module_xxh3: String::new(),
        module_blake3: String::new(),
        devstash: "0".into(),
        created: String::new(),
        created_ms: 0,
        events: 0,
    };
    // The event count must match: try the count the bytes hold, found by decoding once.
    let count = match Tape::decode(&encode(&header, data)) {
        Err(devstash_runner::tape::format::TapeError::Corrupt(m)) => m
            .split("it holds ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok()),
        _ => Some(0),
    };
    let Some(events) = count else { return };
    if let Ok(tape) = Tape::decode(&encode(&TapeHeader { events, ..header }, data)) {
        let _ = report::summary(Path::new("t.tape"), &tape);
        let _ = Player::new(tape);
    }
});
