//! Micro-benchmarks of the functions on a hit's path: key hashing, entry decoding (with its
//! signature) and encoding, a lookup through the pack, and the signature of a large value's
//! segment, and loading a large pack with and without its listing stamp.
//! `cargo bench -p devstash-runner`.

use std::hint::black_box;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use criterion::{Criterion, criterion_group, criterion_main};
use devstash_protocol::KeyHasher;
use devstash_runner::store::disk::DiskTier;
use devstash_runner::store::names::entry_file_name;
use devstash_runner::store::pack::Pack;
use devstash_runner::store::sign::{SEGMENT, Signer};
use devstash_runner::store::{Entry, EntryRef, Header, Lookup, Tier};

fn header(key: &str, len: usize) -> Header {
    Header {
        key: key.into(),
        created_ms: 1_700_000_000_000,
        ttl_secs: Some(86_400),
        site: "bench::f".into(),
        location: "src/main.rs:12".into(),
        kind: "call".into(),
        value_type: "u64".into(),
        compute_ns: 1_000,
        payload_len: len as u64,
        args_preview: Some("(42,)".into()),
        writer: None,
    }
}

fn hot_paths(c: &mut Criterion) {
    let hasher = KeyHasher::for_site(
        "bench::f",
        "0123456789abcdef0123456789abcdef",
        "callee=bench::f\nargs=(u32,)\nvalue=u64",
    );
    let signer = Signer::new([7; 32], "0123456789abcdef");
    let args = [42u8, 0, 0, 0];
    c.bench_function("key: blake3 of a small call", |b| {
        b.iter(|| hasher.key(black_box(&args)))
    });

    let key = hex(&hasher.key(&args));
    let payload = [84u8];
    let encoded = Entry::encode(&header(&key, 1), &payload, &signer);
    c.bench_function("entry: encode a small value", |b| {
        b.iter(|| Entry::encode(black_box(&header(&key, 1)), black_box(&payload), &signer))
    });
    c.bench_function("entry: decode and verify a small value", |b| {
        b.iter(|| Entry::decode(black_box(encoded.clone()), &signer).unwrap())
    });

    let dir = tempfile::tempdir().unwrap();
    let tier = DiskTier::new(dir.path().join("cache"), signer.clone());
    let at = EntryRef {
        name: entry_file_name("bench::f", &key),
        key_hex: key.clone(),
    };
    tier.put(&at, &header(&key, 1), &payload).unwrap();
    // A fresh tier, as a new run has; past its first lookups it answers from the pack.
    let reader = DiskTier::new(dir.path().join("cache"), signer.clone());
    for _ in 0..32 {
        reader.get(&at);
    }
    c.bench_function("store: hit through the pack", |b| {
        b.iter(|| match reader.get(black_box(&at)) {
            Lookup::Found(e) => e,
            other => panic!("{other:?}"),
        })
    });

    // Loading the pack of a cache of 10,000 small entries: from its stamp (the directory is
    // unchanged since a run listed it) and with a listing (the directory just changed).
    let many = tempfile::tempdir().unwrap();
    let writer = DiskTier::new(many.path(), signer.clone());
    for i in 0..10_000u32 {
        let key = hex(&hasher.key(&i.to_le_bytes()));
        let at = EntryRef {
            name: entry_file_name("bench::f", &key),
            key_hex: key.clone(),
        };
        writer.put(&at, &header(&key, 1), &payload).unwrap();
    }
    drop(writer);
    let cache = Dir::open_ambient_dir(many.path(), ambient_authority()).unwrap();
    // A stamp is written only once the directory's last change is safely in the past.
    std::thread::sleep(std::time::Duration::from_millis(150));
    assert!(Pack::load(&cache, &signer).listed());
    c.bench_function("pack: load 10,000 records, stamp trusted", |b| {
        b.iter(|| {
            let pack = Pack::load(black_box(&cache), &signer);
            assert!(!pack.listed());
            pack
        })
    });
    c.bench_function("pack: load 10,000 records, directory listed", |b| {
        b.iter(|| {
            // A change of the directory voids the stamp (and is too recent for a new one).
            let _ = cache.remove_file("touched");
            cache.write("touched", b"").unwrap();
            let pack = Pack::load(black_box(&cache), &signer);
            assert!(pack.listed());
            pack
        })
    });

    let segment = vec![7u8; SEGMENT];
    c.bench_function("signature: one 1 MiB segment", |b| {
        b.iter(|| signer.segment(1, black_box(&segment)))
    });
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
