//! The entry decoder on arbitrary bytes: never a panic; whatever it accepts re-encodes to the
//! same bytes (so nothing but an intact entry is ever accepted).
#![no_main]

use devstash_runner::store::Entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Entry::decode(data.to_vec()) {
        assert_eq!(Entry::encode(&entry.header, entry.payload()), data);
    }
});
