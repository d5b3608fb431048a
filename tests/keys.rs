//! End-to-end tests of keys: a stored value is returned only for the computation that stored it.
//! Each test builds a small guest crate for wasm32-wasip1 and runs it through the real
//! `devstash` binary at least twice in one sandbox, so that later runs answer from the cache.
//! Every marked body prints `computed ...` when it really runs, so hits and misses show.

mod common;

use std::path::PathBuf;

use common::{Run, Sandbox};

/// Writes the guest crate `name` (the SDK and serde as dependencies, `main_rs` as its only
/// source) into `sb`'s directory, rewriting it when it is there already, builds it and returns a
/// copy of its module named `<name>-<label>.wasm`, which a later rebuild leaves alone.
fn build(sb: &Sandbox, name: &str, label: &str, main_rs: &str) -> PathBuf {
    let dir = sb.path().join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), common::guest_manifest(name)).unwrap();
    std::fs::write(dir.join("src/main.rs"), main_rs).unwrap();
    let module = sb.path().join(format!("{name}-{label}.wasm"));
    std::fs::copy(common::build_crate(&dir, name), &module).unwrap();
    module
}

/// `devstash run OPTIONS MODULE ARGS`, which must exit with 0.
fn run(sb: &Sandbox, options: &[&str], module: &std::path::Path, args: &[&str]) -> Run {
    let mut all = vec!["run"];
    all.extend_from_slice(options);
    all.push(module.to_str().unwrap());
    all.extend_from_slice(args);
    let r = sb.devstash(&all);
    assert_eq!(r.code, 0, "{r:?}");
    r
}

/// The lines the guest printed, except the `computed ...` lines of bodies that ran.
fn values(r: &Run) -> Vec<&str> {
    r.stdout
        .lines()
        .filter(|l| !l.starts_with("computed"))
        .collect()
}

/// The `computed ...` lines: the marked bodies that really ran.
fn computed(r: &Run) -> Vec<&str> {
    r.stdout
        .lines()
        .filter(|l| l.starts_with("computed"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Generic functions: one entry per instantiation.

const GENERICS: &str = r#"use devstash::stashed;

#[stashed]
fn parse_as<T: std::str::FromStr + serde::Serialize + serde::de::DeserializeOwned>(
    s: &str,
) -> Option<T> {
    println!("computed parse_as::<{}>({s:?})", std::any::type_name::<T>());
    s.parse().ok()
}

#[stashed]
fn describe<T: serde::Serialize + std::fmt::Debug>(x: T) -> String {
    println!("computed describe({x:?})");
    format!("{x:?} as {}", std::any::type_name::<T>())
}

#[stashed]
fn name_of<T>() -> String {
    println!("computed name_of");
    std::any::type_name::<T>().to_string()
}

fn main() {
    println!("u8 300: {:?}", parse_as::<u8>("300"));
    println!("u32 300: {:?}", parse_as::<u32>("300"));
    println!("{}", describe(1u8));
    println!("{}", describe(1u16));
    println!("{}", describe(true));
    println!("{}", describe("hi"));
    println!("{}", describe(vec![104u8, 105]));
    println!("{}", name_of::<u8>());
    println!("{}", name_of::<String>());
}
"#;

/// The same arguments (and the same postcard bytes: `1u8`, `1u16` and `true` are all `[1]`,
/// `"hi"` and `[104u8, 105]` both `[2, 104, 105]`, `()` is empty) given to different
/// instantiations of a generic function are different calls.
#[test]
fn generic_functions_get_an_entry_per_instantiation() {
    let sb = Sandbox::new();
    let m = build(&sb, "keys_generics", "v1", GENERICS);
    let want = [
        "u8 300: None",
        "u32 300: Some(300)",
        "1 as u8",
        "1 as u16",
        "true as bool",
        "\"hi\" as &str",
        "[104, 105] as alloc::vec::Vec<u8>",
        "u8",
        "alloc::string::String",
    ];
    let first = run(&sb, &[], &m, &[]);
    assert_eq!(values(&first), want, "first run: {first:?}");
    assert_eq!(computed(&first).len(), 9, "first run: {first:?}");
    let second = run(&sb, &[], &m, &[]);
    assert_eq!(values(&second), want, "second run: {second:?}");
    assert!(computed(&second).is_empty(), "second run: {second:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. Callees with the same spelling: functions imported from different modules, closures.

const SAME_SPELLING: &str = r#"mod csv_src {
    pub fn load(p: &str) -> String {
        println!("computed csv_src::load({p})");
        format!("csv rows of {p}")
    }
}

mod json_src {
    pub fn load(p: &str) -> String {
        println!("computed json_src::load({p})");
        format!("json document of {p}")
    }
}

fn via_csv() -> String {
    use csv_src::load;
    devstash::stash!(load("data.txt"))
}

fn via_json() -> String {
    use json_src::load;
    devstash::stash!(load("data.txt"))
}

fn main() {
    println!("csv: {}", via_csv());
    println!("json: {}", via_json());
}
"#;

#[test]
fn callees_spelled_alike_keep_their_own_values() {
    let sb = Sandbox::new();
    let m = build(&sb, "keys_same_spelling", "v1", SAME_SPELLING);
    let want = [
        "csv: csv rows of data.txt",
        "json: json document of data.txt",
    ];
    let first = run(&sb, &[], &m, &[]);
    assert_eq!(values(&first), want, "first run: {first:?}");
    let second = run(&sb, &[], &m, &[]);
    assert_eq!(values(&second), want, "second run: {second:?}");
    assert!(computed(&second).is_empty(), "second run: {second:?}");
}

const CLOSURES: &str = r#"fn triple(x: u64) -> u64 {
    let score = |x: u64| {
        println!("computed triple's score({x})");
        x * 3
    };
    devstash::stash!(score(x))
}

fn offset(x: u64) -> u64 {
    let score = |x: u64| {
        println!("computed offset's score({x})");
        x + 1000
    };
    devstash::stash!(score(x))
}

fn main() {
    println!("triple(5) = {}", triple(5));
    println!("offset(5) = {}", offset(5));
}
"#;

/// Two closures named alike in different functions are different callees, and editing one's
/// body invalidates its entries only.
#[test]
fn closures_are_keyed_by_their_own_code() {
    let sb = Sandbox::new();
    let v1 = build(&sb, "keys_closures", "v1", CLOSURES);
    let want = ["triple(5) = 15", "offset(5) = 1005"];
    let first = run(&sb, &[], &v1, &[]);
    assert_eq!(values(&first), want, "first run: {first:?}");
    let second = run(&sb, &[], &v1, &[]);
    assert_eq!(values(&second), want, "second run: {second:?}");
    assert!(computed(&second).is_empty(), "second run: {second:?}");

    // The same crate rebuilt with one closure's body edited.
    let edited = CLOSURES.replace("x * 3", "x * 4");
    let v2 = build(&sb, "keys_closures", "v2", &edited);
    let third = run(&sb, &[], &v2, &[]);
    assert_eq!(
        values(&third),
        ["triple(5) = 20", "offset(5) = 1005"],
        "after the edit: {third:?}"
    );
    assert_eq!(
        computed(&third),
        ["computed triple's score(5)"],
        "after the edit: {third:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. A changed type never decodes into wrong values, nor matches another call.

/// A crate whose `Stats` value type has its two fields in `fields` order.
fn stats_guest(fields: &str) -> String {
    format!(
        r#"use serde::{{Deserialize, Serialize}};

#[derive(Serialize, Deserialize, Debug)]
struct Stats {{ {fields} }}

#[devstash::stashed]
fn stats(xs: Vec<f64>) -> Stats {{
    println!("computed stats({{xs:?}})");
    let max = xs.iter().cloned().fold(f64::MIN, f64::max);
    Stats {{ mean: xs.iter().sum::<f64>() / xs.len() as f64, max }}
}}

fn main() {{
    let s = stats(vec![1.0, 4.0, 7.0, 9.0]);
    println!("mean {{}} max {{}}", s.mean, s.max);
}}
"#
    )
}

#[test]
fn a_value_type_with_reordered_fields_never_decodes_into_wrong_fields() {
    let sb = Sandbox::new();
    let v1 = build(
        &sb,
        "keys_value_struct",
        "v1",
        &stats_guest("mean: f64, max: f64"),
    );
    let want = ["mean 5.25 max 9"];
    for n in 1..=2 {
        let r = run(&sb, &[], &v1, &[]);
        assert_eq!(values(&r), want, "v1 run {n}: {r:?}");
    }
    let v2 = build(
        &sb,
        "keys_value_struct",
        "v2",
        &stats_guest("max: f64, mean: f64"),
    );
    for n in 1..=2 {
        let r = run(&sb, &[], &v2, &[]);
        assert_eq!(values(&r), want, "v2 (fields swapped) run {n}: {r:?}");
    }
}

/// A crate whose `Query` argument type has its fields in `fields` order, calling `span` on `q`.
fn span_guest(fields: &str, q: &str) -> String {
    format!(
        r#"use serde::Serialize;

#[derive(Serialize, Debug)]
struct Query {{ {fields} }}

#[devstash::stashed]
fn span(q: Query) -> i64 {{
    println!("computed span({{q:?}})");
    q.hi - q.lo
}}

fn main() {{
    println!("span {{}}", span({q}));
}}
"#
    )
}

/// v2 swaps `Query`'s fields and calls `span(Query { lo: 9, hi: 2 })`, whose postcard bytes are
/// those of v1's `span(Query { lo: 2, hi: 9 })`.
#[test]
fn an_argument_type_with_reordered_fields_is_another_call() {
    let sb = Sandbox::new();
    let v1 = build(
        &sb,
        "keys_arg_struct",
        "v1",
        &span_guest("lo: i64, hi: i64", "Query { lo: 2, hi: 9 }"),
    );
    for n in 1..=2 {
        let r = run(&sb, &[], &v1, &[]);
        assert_eq!(values(&r), ["span 7"], "v1 run {n}: {r:?}");
    }
    let v2 = build(
        &sb,
        "keys_arg_struct",
        "v2",
        &span_guest("hi: i64, lo: i64", "Query { lo: 9, hi: 2 }"),
    );
    for n in 1..=2 {
        let r = run(&sb, &[], &v2, &[]);
        assert_eq!(values(&r), ["span -7"], "v2 run {n}: {r:?}");
    }
}

/// A crate whose `Grade` value type has its variants in `variants` order.
fn grade_guest(variants: &str) -> String {
    format!(
        r#"use serde::{{Deserialize, Serialize}};

#[derive(Serialize, Deserialize, Debug)]
enum Grade {{ {variants} }}

#[devstash::stashed]
fn grade(score: u32) -> Grade {{
    println!("computed grade({{score}})");
    if score >= 50 {{ Grade::High }} else {{ Grade::Low }}
}}

fn main() {{
    println!("grade(80) = {{:?}}", grade(80));
    println!("grade(10) = {{:?}}", grade(10));
}}
"#
    )
}

#[test]
fn a_value_enum_with_reordered_variants_never_decodes_into_another_variant() {
    let sb = Sandbox::new();
    let want = ["grade(80) = High", "grade(10) = Low"];
    let v1 = build(&sb, "keys_value_enum", "v1", &grade_guest("Low, High"));
    for n in 1..=2 {
        let r = run(&sb, &[], &v1, &[]);
        assert_eq!(values(&r), want, "v1 run {n}: {r:?}");
    }
    let v2 = build(&sb, "keys_value_enum", "v2", &grade_guest("High, Low"));
    for n in 1..=2 {
        let r = run(&sb, &[], &v2, &[]);
        assert_eq!(values(&r), want, "v2 (variants swapped) run {n}: {r:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Hash collections: the same contents are the same call, whatever their iteration order.

const HASHED: &str = r#"use std::collections::{HashMap, HashSet};

#[devstash::stashed]
fn map_total(m: HashMap<String, u32>) -> u64 {
    println!("computed map_total");
    m.values().map(|&v| u64::from(v)).sum()
}

#[devstash::stashed]
fn set_letters(s: HashSet<String>) -> usize {
    println!("computed set_letters");
    s.iter().map(|k| k.len()).sum()
}

fn main() {
    let m: HashMap<String, u32> = (0..20).map(|i| (format!("key{i}"), i)).collect();
    let s: HashSet<String> = (0..20).map(|i| format!("item{i}")).collect();
    println!("map total {}", map_total(m));
    println!("set letters {}", set_letters(s));
}
"#;

#[test]
fn hash_map_and_set_arguments_hit_whatever_their_order() {
    let sb = Sandbox::new();
    let m = build(&sb, "keys_hashed", "v1", HASHED);
    let want = ["map total 190", "set letters 110"];
    let first = run(&sb, &[], &m, &[]);
    assert_eq!(values(&first), want, "first run: {first:?}");
    assert_eq!(
        computed(&first),
        ["computed map_total", "computed set_letters"],
        "first run: {first:?}"
    );
    for n in 2..=3 {
        let r = run(&sb, &[], &m, &[]);
        assert_eq!(values(&r), want, "run {n}: {r:?}");
        assert!(computed(&r).is_empty(), "run {n} missed: {r:?}");
        assert!(r.stderr.contains("2 hits, 0 misses"), "run {n}: {r:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. `&mut` parameters: a compile error at the marker.

/// Asserts that one of `errors` names `&mut` in its message and points at line `attr_line` (the
/// `#[stashed]` marker) or the signature under it.
fn assert_mut_error_at(errors: &[(String, String)], attr_line: u32) {
    let lines = [
        format!("src/main.rs:{attr_line}:"),
        format!("src/main.rs:{}:", attr_line + 1),
    ];
    assert!(
        errors.iter().any(|(message, loc)| message.contains("&mut")
            && lines.iter().any(|l| loc.starts_with(l.as_str()))),
        "no error about `&mut` at the marker (line {attr_line}): {errors:#?}"
    );
}

#[test]
fn stashed_on_a_mut_self_method_is_a_compile_error() {
    let (_, errors) = common::compile_errors(
        "keys_mut_self",
        r#"#[derive(serde::Serialize)]
struct Counter { n: u32 }
impl Counter {
    #[devstash::stashed]
    fn bump(&mut self) -> u32 {
        self.n += 1;
        self.n
    }
}
fn main() {
    let mut c = Counter { n: 0 };
    println!("{}", c.bump());
}
"#,
    );
    assert_mut_error_at(&errors, 4);
}

#[test]
fn stashed_with_a_mut_reference_parameter_is_a_compile_error() {
    let (_, errors) = common::compile_errors(
        "keys_mut_param",
        r#"fn main() {
    let mut v = vec![1, 2];
    println!("{}", push_sum(&mut v));
}

#[devstash::stashed]
fn push_sum(v: &mut Vec<u32>) -> u32 {
    v.push(3);
    v.iter().sum()
}
"#,
    );
    assert_mut_error_at(&errors, 6);
}

// ---------------------------------------------------------------------------------------------
// 6. The pack never answers for an entry whose file changed.

/// 20 distinct marked calls (so that the run loads the pack: it does after 16 lookups), then
/// `blob()`, whose size comes from `SIZE` (not part of the key: the stored value is what counts).
const PACKED: &str = r#"#[devstash::stashed]
fn square(i: u32) -> u32 {
    println!("computed square({i})");
    i * i
}

#[devstash::stashed]
fn blob() -> Vec<u8> {
    let size: usize = std::env::var("SIZE").unwrap().parse().unwrap();
    println!("computed blob({size})");
    vec![b'b'; size]
}

fn main() {
    let squares: u32 = (0..20).map(square).sum();
    println!("squares {squares}");
    let b = blob();
    assert!(b.iter().all(|&x| x == b'b'));
    println!("blob {} bytes", b.len());
}
"#;

/// Run 1 stores `blob()` small (so it is packed); run 2 refreshes it with `refreshed` bytes;
/// runs 3 and 4, asked for a small blob again, must be answered with the refreshed value.
fn refreshed_blob_is_served(name: &str, refreshed: &str) {
    let sb = Sandbox::new();
    let m = build(&sb, name, "v1", PACKED);
    let size = |n: &str| format!("SIZE={n}");
    let first = run(&sb, &["--env", &size("10")], &m, &[]);
    assert_eq!(
        values(&first),
        ["squares 2470", "blob 10 bytes"],
        "{first:?}"
    );
    let second = run(&sb, &["--refresh=blob", "--env", &size(refreshed)], &m, &[]);
    let want = format!("blob {refreshed} bytes");
    assert_eq!(
        values(&second),
        ["squares 2470", want.as_str()],
        "refresh: {second:?}"
    );
    assert_eq!(
        computed(&second),
        [format!("computed blob({refreshed})")],
        "refresh: {second:?}"
    );
    for n in 3..=4 {
        let r = run(&sb, &["--env", &size("10")], &m, &[]);
        assert_eq!(
            values(&r),
            ["squares 2470", want.as_str()],
            "run {n} after a refresh to {refreshed} bytes: {r:?}"
        );
        assert!(computed(&r).is_empty(), "run {n}: {r:?}");
    }
}

/// The refreshed value is too large for the pack (over 64 KiB): only its file holds it.
#[test]
fn the_pack_never_answers_for_an_entry_refreshed_too_large_for_it() {
    refreshed_blob_is_served("keys_packed_large", "100000");
}

/// The refreshed value is small: the pack holds both the old and the new record.
#[test]
fn the_pack_never_answers_for_an_entry_refreshed_small() {
    refreshed_blob_is_served("keys_packed_small", "20");
}

// ---------------------------------------------------------------------------------------------
// 7. The cost of a miss.

const COUNTED: &str = r#"use std::sync::atomic::{AtomicUsize, Ordering};

static COUNT: AtomicUsize = AtomicUsize::new(0);

#[derive(serde::Serialize)]
struct Counted(u64);

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        COUNT.fetch_add(1, Ordering::Relaxed);
        write!(f, "C{}", self.0)
    }
}

#[devstash::stashed]
fn total(xs: &[Counted]) -> u64 {
    println!("computed total({} items)", xs.len());
    xs.iter().map(|c| c.0).sum()
}

fn main() {
    let xs: Vec<Counted> = (0..1_000_000u64).map(Counted).collect();
    println!("total {}", total(&xs));
    println!("formatted {} times", COUNT.load(Ordering::Relaxed));
}
"#;

/// A miss previews its arguments for the entry's header; the preview must not format the whole
/// of a large argument.
#[test]
fn the_arguments_preview_is_bounded() {
    let sb = Sandbox::new();
    let m = build(&sb, "keys_preview", "v1", COUNTED);
    let first = run(&sb, &[], &m, &[]);
    assert_eq!(
        computed(&first),
        ["computed total(1000000 items)"],
        "{first:?}"
    );
    let lines = values(&first);
    assert_eq!(lines.first(), Some(&"total 499999500000"), "{first:?}");
    let formatted: usize = lines
        .get(1)
        .and_then(|l| l.strip_prefix("formatted "))
        .and_then(|l| l.strip_suffix(" times"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count: {first:?}"));
    assert!(
        formatted <= 10_000,
        "the preview formatted {formatted} elements of the argument"
    );
    let second = run(&sb, &[], &m, &[]);
    assert_eq!(
        values(&second),
        ["total 499999500000", "formatted 0 times"],
        "{second:?}"
    );
}

const SLOW_DEBUG: &str = r#"use std::time::Duration;

#[derive(serde::Serialize)]
struct Sluggish(u32);

impl std::fmt::Debug for Sluggish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::thread::sleep(Duration::from_millis(1500));
        write!(f, "Sluggish({})", self.0)
    }
}

#[devstash::stashed]
fn nap(s: Sluggish) -> u32 {
    println!("computed nap");
    std::thread::sleep(Duration::from_millis(100));
    s.0 + 1
}

fn main() {
    println!("nap {}", nap(Sluggish(41)));
}
"#;

/// The compute time stored with an entry is the call's own, not the time spent previewing its
/// arguments.
#[test]
fn the_recorded_compute_time_is_the_calls_own() {
    let sb = Sandbox::new();
    let m = build(&sb, "keys_compute_time", "v1", SLOW_DEBUG);
    let first = run(&sb, &[], &m, &[]);
    assert_eq!(values(&first), ["nap 42"], "{first:?}");
    assert_eq!(computed(&first), ["computed nap"], "{first:?}");
    let list = sb.devstash(&["list", "--json"]);
    assert_eq!(list.code, 0, "{list:?}");
    let json: serde_json::Value = serde_json::from_str(&list.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", list.stdout));
    let entries = json["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{json:#}");
    let ns = entries[0]["compute_ns"].as_u64().expect("compute_ns");
    assert!(
        (100_000_000..1_000_000_000).contains(&ns),
        "compute_ns {ns}: the call sleeps 100 ms, formatting its argument 1500 ms"
    );
}

const BIG_ARGUMENT: &str = r#"#[devstash::stashed]
fn digest(data: Vec<u8>) -> u64 {
    println!("computed digest({} bytes)", data.len());
    data.iter().map(|&b| u64::from(b)).sum()
}

fn main() {
    let data = vec![7u8; 10 << 20];
    println!("digest {}", digest(data));
}
"#;

/// A tape keys its calls without holding their arguments: a call with a 10 MiB argument and a
/// small value makes a small tape, which still replays.
#[test]
fn a_tape_never_holds_a_whole_argument() {
    let sb = Sandbox::new();
    let m = build(&sb, "keys_tape_args", "v1", BIG_ARGUMENT);
    let rec = sb.devstash(&["record", "-o", "t.tape", m.to_str().unwrap()]);
    assert_eq!(rec.code, 0, "{rec:?}");
    assert_eq!(values(&rec), ["digest 73400320"], "{rec:?}");
    let size = std::fs::metadata(sb.path().join("t.tape")).unwrap().len();
    assert!(size < 1 << 20, "the tape holds {size} bytes");
    let replay = sb.devstash(&["replay", "--verify", m.to_str().unwrap(), "t.tape"]);
    assert_eq!(replay.code, 0, "{replay:?}");
}

// ---------------------------------------------------------------------------------------------
// Found in review: recursive value types, closures as type arguments, trait methods.

const RECURSIVE: &str = r#"use devstash::stashed;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
enum Expr {
    Add(Box<Expr>, Box<Expr>),
    Lit(i64),
}

#[stashed]
fn parse(n: i64) -> Expr {
    println!("computed parse({n})");
    Expr::Add(Box::new(Expr::Lit(n)), Box::new(Expr::Add(Box::new(Expr::Lit(1)), Box::new(Expr::Lit(2)))))
}

fn main() {
    println!("{:?}", parse(5));
}
"#;

#[test]
fn a_recursive_value_type_is_stored_and_restored() {
    let sb = Sandbox::new();
    let m = build(&sb, "keys_recursive", "v1", RECURSIVE);
    let want = "Add(Lit(5), Add(Lit(1), Lit(2)))";
    let first = run(&sb, &[], &m, &[]);
    assert_eq!(values(&first), [want], "{first:?}");
    assert_eq!(computed(&first), ["computed parse(5)"]);
    let second = run(&sb, &[], &m, &[]);
    assert_eq!(values(&second), [want], "{second:?}");
    assert!(computed(&second).is_empty(), "{second:?}");
}

const CLOSURE_ARGUMENTS: &str = r#"use devstash::stash;

fn run<G: Fn(u64) -> u64>(g: G) -> u64 {
    let score = move |x: u64| {
        println!("computed score({x})");
        g(x) + 1
    };
    stash!(score(3))
}

fn main() {
    println!("double {}", run(|x| x * 2));
    println!("times300 {}", run(|x| x * 300));
}
"#;

#[test]
fn closures_as_type_arguments_never_share_a_value() {
    let sb = Sandbox::new();
    let m = build(&sb, "keys_closure_args", "v1", CLOSURE_ARGUMENTS);
    for _ in 0..2 {
        let r = run(&sb, &[], &m, &[]);
        assert_eq!(values(&r), ["double 7", "times300 901"], "{r:?}");
        // Every closure has the same type name: such calls run uncached, with a warning.
        assert_eq!(computed(&r).len(), 2, "{r:?}");
        assert!(r.stderr.contains("runs uncached"), "{r:?}");
    }
}

const TRAIT_METHODS: &str = r#"use devstash::stash;
use serde::Serialize;

#[derive(Serialize)]
struct W(u64);

mod fast {
    pub trait Score {
        fn score(&self, x: u64) -> u64;
    }
    impl Score for super::W {
        fn score(&self, x: u64) -> u64 {
            println!("computed fast {x}");
            self.0 + x
        }
    }
}

mod slow {
    pub trait Score {
        fn score(&self, x: u64) -> u64;
    }
    impl Score for super::W {
        fn score(&self, x: u64) -> u64 {
            println!("computed slow {x}");
            self.0 * x
        }
    }
}

fn with_fast(w: &W) -> u64 {
    use fast::Score;
    stash!(w.score(3))
}

fn with_slow(w: &W) -> u64 {
    use slow::Score;
    stash!(w.score(3))
}

fn main() {
    let w = W(10);
    println!("fast {}", with_fast(&w));
    println!("slow {}", with_slow(&w));
}
"#;

#[test]
fn methods_of_different_traits_keep_their_own_values() {
    let sb = Sandbox::new();
    let m = build(&sb, "keys_traits", "v1", TRAIT_METHODS);
    let first = run(&sb, &[], &m, &[]);
    assert_eq!(values(&first), ["fast 13", "slow 30"], "{first:?}");
    let second = run(&sb, &[], &m, &[]);
    assert_eq!(values(&second), ["fast 13", "slow 30"], "{second:?}");
    assert!(computed(&second).is_empty(), "{second:?}");
}
