//! The entry decoder on arbitrary bytes: never a panic; whatever it accepts in the current
//! format re-encodes to the same bytes (so nothing but an intact entry is ever accepted).
#![no_main]

use devstash_runner::store::Entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Entry::decode(data.to_vec())
        && data.starts_with(b"devstash-entry 2 ")
    {
        assert_eq!(Entry::encode(&entry.header, entry.payload()), data);
    }
});
