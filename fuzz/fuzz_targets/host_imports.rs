//! Every `devstash` import called by a guest with arbitrary arguments over memory filled with
//! arbitrary bytes: the host traps or answers, and never panics.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use devstash_runner::host::{self, HasStash, Policy, StashHost};
use devstash_runner::store::disk::DiskTier;
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
      (call $http (local.get $a) (local.get $b) (local.get $c)))))"#;

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
    let stash = StashHost::new(Box::new(DiskTier::new(dir)), Policy::default());
    let mut store = Store::new(engine, Ctx { stash });
    let instance = linker.instantiate(&mut store, module).unwrap();
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    let call = instance
        .get_typed_func::<(i32, i32, i32, i32, i32, i32), i32>(&mut store, "call")
        .unwrap();
    // The first 4 KiB of input seed memory; the rest is a list of calls, 24 bytes each.
    let (seed, calls) = data.split_at(data.len().min(4096));
    memory.data_mut(&mut store)[..seed.len()].copy_from_slice(seed);
    for chunk in calls.chunks_exact(24).take(64) {
        let word = |i: usize| i32::from_le_bytes(chunk[i * 4..i * 4 + 4].try_into().unwrap());
        let which = word(0).rem_euclid(8);
        // Small values are far likelier to reach the interesting paths.
        let arg = |i: usize| if word(i) & 0x100 != 0 { word(i) } else { word(i) & 0x3ff };
        if call.call(&mut store, (which, arg(1), arg(2), arg(3), arg(4), arg(5))).is_err() {
            break; // A trap ends the instance, as it would a guest.
        }
    }
});
