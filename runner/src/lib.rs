//! The devstash runner as a library: the `devstash` binary is a thin shell over it, and the
//! benchmarks and fuzz targets call its parts directly.
//!
//! Data flows one way, and each layer imports only from its own layer and those below it:
//!
//! | layer | modules |
//! |---|---|
//! | command line | [`cli`], and [`flags`] (the flags, read by the command line and the commands only) |
//! | commands | [`run`], [`tape`] (`record`, `replay`), [`manage`] (`list`, `clear`), [`inspect`] |
//! | running a module | [`runtime`], [`engine`], [`sandbox`], [`home`], the tape machinery ([`tape::format`], [`tape::record`], [`tape::replay`], …) |
//! | host imports | [`host`], [`net`] |
//! | store | [`store`] |
//! | shared by all | [`output`] (formatting, escaping, printing), [`exit`] (exit codes) |

pub mod cli;
pub mod engine;
pub mod exit;
pub mod flags;
pub mod home;
pub mod host;
pub mod inspect;
pub mod manage;
pub mod net;
pub mod output;
pub mod run;
pub mod runtime;
pub mod sandbox;
pub mod store;
pub mod tape;

#[cfg(test)]
mod layering {
    //! Checks the table in the crate's documentation against every `crate::` path in the source.

    use std::path::Path;

    /// The layer of a module (by its path under `src/`, without `.rs`); higher layers may import
    /// lower ones, never the reverse.
    fn layer(module: &str) -> u8 {
        let top = module.split('/').next().unwrap_or(module);
        match (top, module) {
            ("main" | "cli", _) => 6,
            ("flags", _) => 5,
            ("run" | "manage" | "inspect", _) | (_, "tape/mod") => 4,
            ("runtime" | "engine" | "sandbox" | "home" | "tape", _) => 3,
            ("host" | "net", _) => 2,
            ("store", _) => 1,
            ("output" | "exit" | "lib", _) => 0,
            _ => panic!("module {module} is missing from the layer table"),
        }
    }

    /// The module a `crate::x::y` path names, as a path under `src/`.
    fn target(path: &str) -> String {
        let mut parts = path.split("::");
        let first = parts.next().unwrap_or_default();
        match (first, parts.next()) {
            ("tape", Some(sub))
                if !sub.is_empty() && sub.chars().all(|c| c.is_ascii_lowercase() || c == '_') =>
            {
                format!("tape/{sub}")
            }
            ("tape", _) => "tape/mod".into(),
            (first, _) => first.to_string(),
        }
    }

    #[test]
    fn no_module_imports_one_above_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut problems = Vec::new();
        let mut files = Vec::new();
        let mut dirs = vec![src.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
        for file in files {
            let module = file
                .strip_prefix(&src)
                .unwrap()
                .with_extension("")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&file).unwrap();
            // Code only: comments may name any module.
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let mut rest = code.as_str();
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let path: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let path = if path.is_empty() && rest.starts_with('{') {
                    // `use crate::{a, b}`: the names up to the closing brace.
                    let end = rest.find('}').unwrap_or(0);
                    rest[..end].trim_start_matches('{').to_string()
                } else {
                    path
                };
                for one in path.split(',') {
                    let one = one.trim();
                    if one.is_empty() || one == "self" {
                        continue;
                    }
                    let to = target(one);
                    if to == "flags" {
                        // The flags are read by the command line and the commands only.
                        if !matches!(layer(&module), 4..=6) {
                            problems.push(format!("{module} imports the flags ({one})"));
                        }
                    } else if layer(&to) > layer(&module) {
                        problems.push(format!("{module} imports {one}, a layer above it"));
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
