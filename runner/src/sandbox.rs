//! The guest's WASI preview 1 context: arguments, environment, granted directories and stdio.
//! Nothing is granted by default: no directory, no environment variable, no network.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::home::Home;

/// A directory granted with `--dir HOST[::GUEST][:ro]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// Directory on the host.
    pub host: PathBuf,
    /// Path the guest sees it at.
    pub guest: String,
    /// Read-only grant.
    pub read_only: bool,
}

impl FromStr for DirGrant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        // A trailing `:ro` marks a read-only grant, unless it is the guest path of `HOST::ro`.
        let (spec, read_only) = match s.strip_suffix(":ro") {
            Some(rest) if !rest.ends_with(':') && !rest.is_empty() => (rest, true),
            _ => (s, false),
        };
        let (host, guest) = match spec.split_once("::") {
            Some((h, g)) => (h, g),
            None => (spec, spec),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(format!(
                "invalid --dir {s:?}: use HOST, HOST::GUEST, or either with :ro for read-only"
            ));
        }
        Ok(DirGrant {
            host: PathBuf::from(host),
            guest: guest.to_string(),
            read_only,
        })
    }
}

/// An environment variable passed with `--env NAME[=VALUE]`; without a value, the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Explicit value, or `None` to pass the host's value through.
    pub value: Option<String>,
}

impl FromStr for EnvVar {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (s, None),
        };
        if name.is_empty() {
            return Err(format!(
                "invalid --env {s:?}: use NAME=VALUE, or NAME to pass the host's value"
            ));
        }
        Ok(EnvVar {
            name: name.to_string(),
            value,
        })
    }
}

/// What the guest may see of the outside world.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    /// `argv`, starting with the program name.
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<EnvVar>,
    /// Granted directories.
    pub dirs: Vec<DirGrant>,
    /// Folders devstash itself grants (the Python runtime's library), read-only, preopened
    /// before the user's. They may lie in `DEVSTASH_HOME`, which no user grant may reach.
    pub internal: Vec<DirGrant>,
}

impl Sandbox {
    /// The environment as the guest will see it (host values resolved; unset ones left out).
    pub fn resolved_env(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .filter_map(|v| match &v.value {
                Some(val) => Some((v.name.clone(), val.clone())),
                None => std::env::var(&v.name).ok().map(|val| (v.name.clone(), val)),
            })
            .collect()
    }

    /// A WASI builder with args, env and preopens set and stdio inherited. Callers (run,
    /// record, replay) adjust clocks, randomness and stdio before building. A grant that would
    /// reach the per-user directory (`home`) is refused.
    /// Every granted folder, in the order they are preopened (descriptors 3, 4, …).
    pub fn grants(&self) -> impl Iterator<Item = &DirGrant> {
        self.internal.iter().chain(&self.dirs)
    }

    pub fn builder(&self, home: &Home) -> Result<WasiCtxBuilder> {
        for d in &self.dirs {
            home.check_grant(&d.host)?;
        }
        let mut b = WasiCtxBuilder::new();
        // The guest runs synchronously: its file calls are done on its own thread rather than
        // handed to a pool thread and waited for (CPython's start-up makes ~300 of them).
        b.allow_blocking_current_thread(true);
        b.inherit_stdio();
        b.args(&self.args);
        for v in &self.env {
            if v.value.is_none() && std::env::var_os(&v.name).is_none() {
                tracing::warn!(
                    "--env {0}: {0} is not set here, so the program does not get it (pass \
                     --env {0}=VALUE to give it a value)",
                    crate::output::escape(&v.name)
                );
            }
        }
        for (k, v) in self.resolved_env() {
            b.env(k, v);
        }
        for d in self.grants() {
            tracing::info!(
                "granting {} as {}{}",
                d.host.display(),
                d.guest,
                if d.read_only { " (read-only)" } else { "" }
            );
            let perms = if d.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            b.preopened_dir(&d.host, &d.guest, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot grant directory {}", d.host.display()))?;
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_grants() {
        let g: DirGrant = "data".parse().unwrap();
        assert_eq!(
            (g.host.to_str().unwrap(), g.guest.as_str(), g.read_only),
            ("data", "data", false)
        );
        let g: DirGrant = "data::/in:ro".parse().unwrap();
        assert_eq!(
            (g.host.to_str().unwrap(), g.guest.as_str(), g.read_only),
            ("data", "/in", true)
        );
        let g: DirGrant = "data:ro".parse().unwrap();
        assert_eq!(
            (g.host.to_str().unwrap(), g.guest.as_str(), g.read_only),
            ("data", "data", true)
        );
        let g: DirGrant = "data::ro".parse().unwrap();
        assert_eq!(
            (g.host.to_str().unwrap(), g.guest.as_str(), g.read_only),
            ("data", "ro", false)
        );
        assert!("::x".parse::<DirGrant>().is_err());
    }

    #[test]
    fn env_vars() {
        assert_eq!("A=1".parse::<EnvVar>().unwrap().value.as_deref(), Some("1"));
        assert_eq!("A".parse::<EnvVar>().unwrap().value, None);
        assert!("=1".parse::<EnvVar>().is_err());
    }
}
