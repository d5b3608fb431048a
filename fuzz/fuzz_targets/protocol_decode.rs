//! The structs a guest hands the host, decoded from arbitrary bytes: never a panic, never an
//! unbounded allocation.
#![no_main]

use devstash_protocol::{HttpRequest, SiteDesc, codec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = codec::decode::<SiteDesc>(data);
    let _ = codec::decode::<HttpRequest>(data);
});
