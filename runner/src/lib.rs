//! The devstash runner as a library: the `devstash` binary is a thin shell over it, and the
//! benchmarks and fuzz targets call its parts directly.
//!
//! Data flows one way, and each layer imports only from its own layer and those below it:
//!
//! | layer | modules |
//! |---|---|
//! | command line | [`cli`], and [`flags`] (the flags, read by the command line and the commands only) |
//! | commands | [`run`], [`tape`] (`record`, `replay`), [`manage`] (`list`, `clear`, `remote`), [`inspect`] |
//! | running a module | [`runtime`], [`engine`], [`sandbox`], [`home`], [`python`] (the Python runtime), [`team`] (the team cache's settings), the tape machinery ([`tape::format`], [`tape::record`], [`tape::replay`], …) |
//! | host imports | [`host`], [`net`] |
//! | store | [`store`] (the local cache and a team's remote) |
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
pub mod python;
pub mod run;
pub mod runtime;
pub mod sandbox;
pub mod store;
pub mod tape;
pub mod team;

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
            ("runtime" | "engine" | "sandbox" | "home" | "python" | "team" | "tape", _) => 3,
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

    /// The first segment of every path in `use` text after `crate::` or `super::`: `a::b` gives
    /// `a`; `{a::{b, c}, d}` gives `a` and `d`.
    fn heads(rest: &str) -> Vec<String> {
        if let Some(inner) = rest.strip_prefix('{') {
            let mut depth = 1usize;
            let mut end = inner.len();
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let mut out = Vec::new();
            let mut depth = 0usize;
            let mut start = 0;
            let body = &inner[..end];
            for (i, c) in body.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth = depth.saturating_sub(1),
                    ',' if depth == 0 => {
                        out.extend(heads(body[start..i].trim()));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            out.extend(heads(body[start..].trim()));
            return out;
        }
        let head: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = &rest[head.len()..];
        match after.strip_prefix("::") {
            // `tape::format`: the submodule is what is imported.
            Some(sub) if head == "tape" => heads(sub)
                .into_iter()
                .map(|s| format!("tape::{s}"))
                .collect(),
            // `self`, and `super::super` (a test module reaching past its own module).
            _ if head.is_empty() || head == "self" || head == "super" => Vec::new(),
            _ => vec![head],
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
        let modules: Vec<String> = files
            .iter()
            .map(|f| {
                f.strip_prefix(&src)
                    .unwrap()
                    .with_extension("")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        for (file, module) in files.iter().zip(&modules) {
            let text = std::fs::read_to_string(file).unwrap();
            // Code only: comments may name any module.
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let parent = module.rsplit_once('/').map(|(p, _)| p);
            for (prefix, relative) in [("crate::", false), ("super::", true)] {
                let mut rest = code.as_str();
                while let Some(at) = rest.find(prefix) {
                    rest = &rest[at + prefix.len()..];
                    for head in heads(rest) {
                        let to = if relative {
                            // `super::x` in `dir/m` is `dir/x` if that is a module, else `dir/mod`.
                            let Some(dir) = parent else { continue };
                            let head = head.trim_start_matches("tape::");
                            let sibling = format!("{dir}/{head}");
                            if modules.contains(&sibling) {
                                sibling
                            } else {
                                format!("{dir}/mod")
                            }
                        } else {
                            target(&head)
                        };
                        if to == "flags" {
                            // The flags are read by the command line and the commands only.
                            if !matches!(layer(module), 4..=6) {
                                problems.push(format!("{module} imports the flags ({head})"));
                            }
                        } else if layer(&to) > layer(module) {
                            problems
                                .push(format!("{module} imports {to} ({head}), a layer above it"));
                        }
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
