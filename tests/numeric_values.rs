//! Vectors of plain numbers are restored straight into their own buffer: through the real
//! `devstash` binary and the `vecprobe` guest, every element type comes back bit for bit, is
//! stored as the same bytes postcard writes (so entries stored before read, and readers from
//! before read these), a damaged entry is recomputed, and a changed value type never gets the
//! old bytes.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::Sandbox;
use devstash_runner::home::Home;
use devstash_runner::store::Entry;

/// Builds the `vecprobe` guest (once per test binary) and returns its module.
fn vecprobe() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = common::guest_target_dir();
            let out = std::process::Command::new(env!("CARGO"))
                .current_dir(common::workspace())
                .args([
                    "build",
                    "--release",
                    "--target",
                    "wasm32-wasip1",
                    "-p",
                    "vecprobe",
                ])
                .arg("--target-dir")
                .arg(&target)
                .output()
                .expect("cargo runs");
            assert!(
                out.status.success(),
                "building vecprobe failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            target.join("wasm32-wasip1/release/vecprobe.wasm")
        })
        .clone()
}

const NAMES: &[&str] = &[
    "f64",
    "f32",
    "i64",
    "u64",
    "i32",
    "u32",
    "i16",
    "u16",
    "i8",
    "u8",
    "empty_f64",
    "empty_u32",
    "arrays_f64",
    "arrays_i32",
    "long_u64",
    "long_f32",
    "result_f64",
    "result_i16",
];

/// The entry file of the value `name` (its site is `make_NAME` or `NAME`).
fn entry_of(sb: &Sandbox, name: &str) -> PathBuf {
    let found: Vec<PathBuf> = sb
        .entries()
        .into_iter()
        .filter(|p| {
            let f = p.file_name().unwrap().to_str().unwrap();
            [
                format!("vecprobe__make_{name}__"),
                format!("vecprobe__{name}__"),
            ]
            .iter()
            .any(|prefix| f.starts_with(prefix.as_str()))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name}: {found:?}");
    found.into_iter().next().unwrap()
}

/// The stored value of an entry, and the entry.
fn payload(sb: &Sandbox, entry: &Path) -> (Entry, Vec<u8>) {
    let signer = Home::open_at(sb.home()).unwrap().signer();
    let e = Entry::decode(std::fs::read(entry).unwrap(), &signer).unwrap();
    let p = e.payload().to_vec();
    (e, p)
}

/// Replaces an entry's value with `value`, signed with the user's key as the runner signs:
/// bytes that pass every check of the runner and reach the guest as they are.
fn rewrite(sb: &Sandbox, entry: &Path, value: &[u8]) {
    let signer = Home::open_at(sb.home()).unwrap().signer();
    let (e, _) = payload(sb, entry);
    let mut header = e.header.clone();
    header.payload_len = value.len() as u64;
    std::fs::write(entry, Entry::encode(&header, value, &signer)).unwrap();
    // The pack beside the files holds a second copy; the entry is lost only when both are.
    sb.drop_pack();
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn every_numeric_type_comes_back_bit_for_bit() {
    let m = vecprobe();
    let sb = Sandbox::new();
    let first = sb.run(&m, &["all"]);
    assert_eq!(first.code, 0, "{first:?}");
    for name in NAMES {
        assert!(
            first.stdout.contains(&format!("computed {name}\n")),
            "{name}: {first:?}"
        );
        assert!(
            first.stdout.contains(&format!("same {name}\n")),
            "{name}: {first:?}"
        );
    }
    assert!(!first.stdout.contains("DIFFERENT"), "{first:?}");

    let hit = sb.run(&m, &["all"]);
    assert_eq!(hit.code, 0, "{hit:?}");
    assert!(!hit.stdout.contains("computed"), "{hit:?}");
    assert!(!hit.stderr.contains("warning"), "{hit:?}");
    for name in NAMES {
        assert!(
            hit.stdout.contains(&format!("same {name}\n")),
            "{name}: {hit:?}"
        );
    }

    // Every entry holds exactly the bytes postcard writes for the value: what entries stored by
    // the generic path (before vectors of numbers took the straight one) hold, so those read
    // here, and these read there.
    for name in NAMES {
        let want = unhex(sb.run(&m, &["postcard", name]).stdout.trim());
        assert!(!want.is_empty(), "{name}");
        let (_, got) = payload(&sb, &entry_of(&sb, name));
        assert_eq!(got, want, "{name}: the stored bytes are not postcard's");
    }
}

#[test]
fn an_entry_in_the_generic_encoding_still_reads() {
    let m = vecprobe();
    let sb = Sandbox::new();
    sb.run(&m, &["all"]);
    // Each value replaced by postcard's own encoding of another value of its type, signed as a
    // runner would sign an entry stored through the generic path: the guest returns that value.
    for (name, other) in [
        ("f64", "empty_f64"),
        ("u64", "long_u64"),
        ("f32", "long_f32"),
    ] {
        let entry = entry_of(&sb, name);
        // Written by the postcard crate in the guest, as the generic path writes a value.
        let theirs = unhex(sb.run(&m, &["postcard", other]).stdout.trim());
        rewrite(&sb, &entry, &theirs);
        let r = sb.run(&m, &["one", name]);
        assert!(!r.stdout.contains("computed"), "{name}: {r:?}");
        assert!(
            r.stdout.contains(&format!("DIFFERENT {name}")),
            "{name}: {r:?}"
        );
    }
}

#[test]
fn a_damaged_entry_is_recomputed_never_returned() {
    let m = vecprobe();
    let sb = Sandbox::new();
    sb.run(&m, &["all"]);
    for name in [
        "f64",
        "f32",
        "i8",
        "u64",
        "i16",
        "arrays_f64",
        "arrays_i32",
        "long_u64",
        "result_f64",
    ] {
        let entry = entry_of(&sb, name);
        let (_, good) = payload(&sb, &entry);
        let mut count = good.clone();
        count[0] ^= 1;
        let mut extra = good.clone();
        extra.push(0);
        let mut damaged: Vec<(&str, Vec<u8>)> = vec![
            ("one byte short", good[..good.len() - 1].to_vec()),
            ("half", good[..good.len() / 2].to_vec()),
            ("a byte too many", extra),
            ("a count that disagrees", count),
            ("empty", Vec::new()),
        ];
        // Integers wider than a byte are varints: one whose last byte says more follows.
        if !["f64", "f32", "i8", "arrays_f64", "result_f64"].contains(&name) {
            let mut open = good.clone();
            *open.last_mut().unwrap() |= 0x80;
            damaged.push(("an unfinished last number", open));
        }
        for (what, bytes) in damaged {
            rewrite(&sb, &entry, &bytes);
            let r = sb.run(&m, &["one", name]);
            assert_eq!(r.code, 0, "{name}, {what}: {r:?}");
            assert!(
                r.stdout.contains(&format!("same {name}\n")),
                "{name}, {what}: {r:?}"
            );
            assert!(
                r.stdout.contains(&format!("computed {name}\n")),
                "{name}, {what}: {r:?}"
            );
            assert!(
                r.stderr.contains("no longer decodes"),
                "{name}, {what}: {r:?}"
            );
            // Recomputed and stored again: the next run hits.
            let next = sb.run(&m, &["one", name]);
            assert!(
                !next.stdout.contains("computed"),
                "{name}, {what}: {next:?}"
            );
            assert!(
                next.stdout.contains(&format!("same {name}\n")),
                "{name}, {what}: {next:?}"
            );
        }
        // A flipped byte without the key's signature: refused by the runner.
        let mut bytes = std::fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        std::fs::write(&entry, bytes).unwrap();
        sb.drop_pack();
        let r = sb.run(&m, &["one", name]);
        assert!(
            r.stdout.contains(&format!("computed {name}\n")),
            "{name}: {r:?}"
        );
        assert!(
            r.stdout.contains(&format!("same {name}\n")),
            "{name}: {r:?}"
        );
    }
}

#[test]
fn a_changed_value_type_never_gets_the_old_bytes() {
    let m = vecprobe();
    let sb = Sandbox::new();
    let want = [
        ("f64", "[0.25, 1.25, 2.25, 3.25, 4.25]"),
        ("f32", "[0.5, 1.5, 2.5, 3.5, 4.5]"),
        ("u64", "[0, 3, 6, 9, 12]"),
    ];
    for (ty, values) in want {
        let r = sb.run(&m, &["generic", ty, "5"]);
        assert!(r.stdout.contains("computed series::<"), "{ty}: {r:?}");
        assert!(r.stdout.ends_with(&format!("{values}\n")), "{ty}: {r:?}");
    }
    assert_eq!(sb.entries().len(), 3, "one entry per value type");
    for (ty, values) in want {
        let r = sb.run(&m, &["generic", ty, "5"]);
        assert!(!r.stdout.contains("computed"), "{ty}: {r:?}");
        assert_eq!(r.stdout, format!("{values}\n"), "{ty}");
    }
    // Even the `f64` bytes planted, signed, in the entries of the other types are refused by
    // their shape (a count of 5 with 40 bytes is neither 5 `f32`s nor 5 varints).
    let entries = sb.entries();
    let of = |ty: &str| {
        entries
            .iter()
            .find(|e| {
                payload(&sb, e)
                    .0
                    .header
                    .value_type
                    .contains(&format!("<{ty}>"))
            })
            .unwrap_or_else(|| panic!("no entry of {ty}"))
            .clone()
    };
    let (_, f64_bytes) = payload(&sb, &of("f64"));
    for (ty, values) in &want[1..] {
        rewrite(&sb, &of(ty), &f64_bytes);
        let r = sb.run(&m, &["generic", ty, "5"]);
        assert!(r.stdout.contains("computed series::<"), "{ty}: {r:?}");
        assert!(r.stdout.ends_with(&format!("{values}\n")), "{ty}: {r:?}");
        assert!(r.stderr.contains("no longer decodes"), "{ty}: {r:?}");
    }
}
