//! Every `devstash` import called by a guest with arbitrary arguments over memory filled with
//! arbitrary bytes: the host traps or answers, and never panics.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use devstash_protocol::{ABI_VERSION, SiteDesc, SiteKind, codec};
use devstash_runner::host::{self, HasStash, Policy, StashHost};
use devstash_runner::store::disk::DiskTier;
use devstash_runner::store::sign::Signer;
use libfuzzer_sys::fuzz_target;
use wasmtime::{Engine, Linker, Module, Store};

struct Ctx {
    stash: StashHost,
}

impl HasStash for Ctx {
    fn stash(&mut self) -> &mut StashHost {
        &mut self.stash
    }
}

const DRIVER: &str = r#"(module
  (import "devstash" "site_register" (func $reg (param i32 i32) (result i32)))
  (import "devstash" "stash_get" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "devstash" "stash_take" (func $take (param i32 i32) (result i32)))
  (import "devstash" "stash_read" (func $read (param i64 i32 i32) (result i32)))
  (import "devstash" "stash_put" (func $put (param i64 i32 i32 i32 i32) (result i32)))
  (import "devstash" "stash_forget" (func $forget (param i64) (result i32)))
  (import "devstash" "log" (func $log (param i32 i32 i32) (result i32)))
  (import "devstash" "http_request" (func $http (param i32 i32 i32) (result i32)))
  (import "devstash" "stash_begin" (func $begin (param i64) (result i32)))
  (import "devstash" "stash_end" (func $end (param i64) (result i32)))
  (import "devstash" "secret_hash" (func $secret (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "call") (param $which i32) (param $a i32) (param $b i32) (param $c i32)
                        (param $d i32) (param $e i32) (result i32)
    (block $out (result i32)
      (if (i32.eq (local.get $which) (i32.const 0)) (then (br $out (call $reg (local.get $a) (local.get $b)))))
      (if (i32.eq (local.get $which) (i32.const 1)) (then (br $out (call $get (local.get $a) (local.get $b) (local.get $c) (local.get $d) (local.get $e)))))
      (if (i32.eq (local.get $which) (i32.const 2)) (then (br $out (call $take (local.get $a) (local.get $b)))))
      (if (i32.eq (local.get $which) (i32.const 3)) (then (br $out (call $put (i64.extend_i32_s (local.get $a)) (local.get $b) (local.get $c) (local.get $d) (local.get $e)))))
      (if (i32.eq (local.get $which) (i32.const 4)) (then (br $out (call $forget (i64.extend_i32_s (local.get $a))))))
      (if (i32.eq (local.get $which) (i32.const 5)) (then (br $out (call $log (local.get $a) (local.get $b) (local.get $c)))))
      (if (i32.eq (local.get $which) (i32.const 6)) (then (br $out (call $read (i64.extend_i32_s (local.get $a)) (local.get $b) (local.get $c)))))
      (if (i32.eq (local.get $which) (i32.const 7)) (then (br $out (call $begin (i64.extend_i32_s (local.get $a))))))
      (if (i32.eq (local.get $which) (i32.const 8)) (then (br $out (call $end (i64.extend_i32_s (local.get $a))))))
      (if (i32.eq (local.get $which) (i32.const 9)) (then (br $out (call $secret (local.get $a) (local.get $b) (local.get $c)))))
      (call $http (local.get $a) (local.get $b) (local.get $c)))))"#;

/// Where the valid site descriptor is placed in guest memory.
const PLANTED: usize = 8192;

/// A valid site descriptor, encoded.
fn planted() -> &'static [u8] {
    static D: OnceLock<Vec<u8>> = OnceLock::new();
    D.get_or_init(|| {
        codec::encode(&SiteDesc {
            abi_version: ABI_VERSION,
            module_path: "fuzz".into(),
            callee: "f".into(),
            file: "fuzz.rs".into(),
            line: 1,
            ttl_secs: None,
            fingerprint: "0".repeat(32),
            value_type: "u64".into(),
            kind: SiteKind::Call,
            types: "callee=fuzz::f".into(),
        })
        .expect("a descriptor encodes")
    })
}

/// The engine, the driver module, and a scratch cache directory (the fuzzer may store entries).
fn setup() -> &'static (Engine, Module, PathBuf) {
    static S: OnceLock<(Engine, Module, PathBuf)> = OnceLock::new();
    S.get_or_init(|| {
        let engine = Engine::default();
        let module = Module::new(&engine, DRIVER).expect("driver compiles");
        let dir = std::env::temp_dir().join(format!("devstash-fuzz-{}", std::process::id()));
        (engine, module, dir)
    })
}

fuzz_target!(|data: &[u8]| {
    let (engine, module, dir) = setup();
    let mut linker: Linker<Ctx> = Linker::new(engine);
    host::add_to_linker(&mut linker).unwrap();
    let signer = Signer::new([7; 32], "0123456789abcdef");
    let stash = StashHost::new(Box::new(DiskTier::new(dir, signer)), Policy::default());
    let mut store = Store::new(engine, Ctx { stash });
    let instance = linker.instantiate(&mut store, module).unwrap();
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    let call = instance
        .get_typed_func::<(i32, i32, i32, i32, i32, i32), i32>(&mut store, "call")
        .unwrap();
    // The first byte says how many calls follow (24 bytes each, at most 64); the bytes after the
    // calls seed memory (at most 4 KiB). Calls come first so that short inputs make calls. A
    // valid site descriptor sits at PLANTED, so that call 8 registers a site and the calls after
    // it reach lookups, stores, hits and reads (random bytes almost never form a descriptor).
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let (calls, seed) = rest.split_at(rest.len().min(usize::from(count % 65) * 24));
    let seed = &seed[..seed.len().min(4096)];
    memory.data_mut(&mut store)[..seed.len()].copy_from_slice(seed);
    let desc = planted();
    memory.data_mut(&mut store)[PLANTED..PLANTED + desc.len()].copy_from_slice(desc);
    for chunk in calls.chunks_exact(24).take(64) {
        let word = |i: usize| i32::from_le_bytes(chunk[i * 4..i * 4 + 4].try_into().unwrap());
        // Small values are far likelier to reach the interesting paths.
        let arg = |i: usize| {
            if word(i) & 0x100 != 0 {
                word(i)
            } else {
                word(i) & 0x3ff
            }
        };
        let args = match word(0).rem_euclid(12) {
            11 => (0, PLANTED as i32, desc.len() as i32, 0, 0, 0),
            which => (which, arg(1), arg(2), arg(3), arg(4), arg(5)),
        };
        if call.call(&mut store, args).is_err() {
            break; // A trap ends the instance, as it would a guest.
        }
    }
});
