//! The entry decoder on arbitrary bytes: never a panic; whatever it accepts in the current
//! format re-encodes to the same bytes (so nothing but an intact, signed entry is accepted).
#![no_main]

use devstash_runner::store::Entry;
use devstash_runner::store::sign::Signer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let signer = Signer::new([7; 32], "0123456789abcdef");
    if let Ok(entry) = Entry::decode(data.to_vec(), &signer) {
        assert_eq!(Entry::encode(&entry.header, entry.payload(), &signer), data);
    }
});
