//! The team cache's settings, from `--remote` / `DEVSTASH_REMOTE`, `--remote-mode` /
//! `DEVSTASH_REMOTE_MODE`, and the project's `devstash.toml`:
//!
//! ```toml
//! [remote]
//! url = "s3://team-cache/devstash?endpoint=https://s3.example.com&region=eu-west-1"
//! mode = "read"                   # read (default) | read-write | off
//! public_keys = ["9f1c…"]         # Ed25519 public keys of the trusted writers (hex)
//! namespace = "v1"                # change it to disown everything written before
//! timeout = "5s"                  # each operation; connect_timeout = "1s"
//! ```
//!
//! The file holds nothing secret, and is refused if it tries: credentials come only from the
//! environment (the standard `AWS_*` chain for S3, `GOOGLE_APPLICATION_CREDENTIALS`, Azure's
//! variables, `DEVSTASH_REDIS_PASSWORD`), and a writer's signing key from
//! `DEVSTASH_REMOTE_SIGNING_KEY`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Deserialize;

use crate::output::say;
use crate::store::Tier;
use crate::store::disk::DiskTier;
use crate::store::remote::{Mode, Remote, RemoteTier, Settings};

/// The project's settings file, in the directory devstash runs in.
pub const CONFIG_FILE: &str = "devstash.toml";
/// The writer's signing key (64 hex digits: the Ed25519 seed).
pub const SIGNING_KEY_ENV: &str = "DEVSTASH_REMOTE_SIGNING_KEY";
/// A Redis password.
pub const REDIS_PASSWORD_ENV: &str = "DEVSTASH_REDIS_PASSWORD";
/// Largest settings file read.
const MAX_CONFIG: u64 = 64 << 10;
/// URL schemes the remote speaks.
const SCHEMES: &[&str] = &["s3", "redis", "gs", "gcs", "azblob", "webdav", "fs"];
/// Query options of a URL that would put a credential in it.
const SECRET_OPTIONS: &[&str] = &[
    "access_key_id",
    "secret_access_key",
    "session_token",
    "password",
    "username",
    "account_key",
    "sas_token",
    "credential",
    "token",
];

/// What the command line (and its environment variables) chose.
#[derive(Debug, Default, Clone)]
pub struct Choice {
    /// `--remote` / `DEVSTASH_REMOTE`.
    pub url: Option<String>,
    /// `--remote-mode` / `DEVSTASH_REMOTE_MODE`.
    pub mode: Option<Mode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    remote: Option<RemoteTable>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteTable {
    url: Option<String>,
    mode: Option<String>,
    #[serde(default)]
    public_keys: Vec<String>,
    namespace: Option<String>,
    timeout: Option<String>,
    connect_timeout: Option<String>,
}

/// Reads `dir/devstash.toml`, if there is one.
fn read_config(dir: &Path) -> Result<ConfigFile> {
    let path = dir.join(CONFIG_FILE);
    let file = match crate::store::disk::open_regular_path(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_CONFIG), &mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if text.contains("signing_key") || text.contains("SIGNING_KEY") {
        bail!(
            "{}: a signing key never goes in the project's settings (anyone who can read the \
             repository could sign entries); set {SIGNING_KEY_ENV} in the writer's environment",
            path.display()
        );
    }
    toml::from_str(&text).map_err(|e| anyhow!("{}: {}", path.display(), e.message()))
}

fn duration(text: Option<&str>, default: Duration, what: &str) -> Result<Duration> {
    let Some(t) = text else { return Ok(default) };
    let d = humantime::parse_duration(t)
        .map_err(|e| anyhow!("[remote] {what} = {t:?}: {e} (e.g. \"1s\", \"500ms\")"))?;
    if d.is_zero() || d > Duration::from_secs(120) {
        bail!("[remote] {what} = {t:?}: give a duration above 0 and at most 2m");
    }
    Ok(d)
}

/// Checks a remote URL: a scheme devstash speaks, and no credential in it.
fn check_url(text: &str) -> Result<()> {
    let url = url::Url::parse(text).map_err(|e| {
        anyhow!(
            "remote {text:?} is not a URL ({e}): use s3://BUCKET/PREFIX?endpoint=…&region=…, \
             redis://HOST:PORT/DB/PREFIX, or fs:///shared/folder"
        )
    })?;
    if !SCHEMES.contains(&url.scheme()) {
        bail!(
            "remote {text:?}: devstash speaks {} (not {:?})",
            SCHEMES.join(", "),
            url.scheme()
        );
    }
    if url.password().is_some() || !url.username().is_empty() {
        bail!(
            "remote {text:?}: credentials never go in the URL (it is shown in messages and may \
             be in devstash.toml); give them in the environment (AWS_* for S3, \
             {REDIS_PASSWORD_ENV} for Redis)"
        );
    }
    if let Some((k, _)) = url.query_pairs().find(|(k, _)| {
        let k = k.to_ascii_lowercase();
        SECRET_OPTIONS.iter().any(|s| k.contains(s))
    }) {
        bail!(
            "remote {text:?}: the option {k} is a credential, which never goes in the URL; give \
             it in the environment"
        );
    }
    Ok(())
}

fn public_key(hex_text: &str) -> Result<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_text.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| {
            anyhow!(
                "[remote] public_keys: {hex_text:?} is not a public key (64 hex digits, as \
                 `devstash remote keygen` prints)"
            )
        })?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| anyhow!("[remote] public_keys: {hex_text:?} is not a valid Ed25519 key"))
}

/// The signing key in the environment, if any.
fn signing_key() -> Result<Option<SigningKey>> {
    let Ok(text) = std::env::var(SIGNING_KEY_ENV) else {
        return Ok(None);
    };
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| {
            anyhow!(
                "{SIGNING_KEY_ENV} is not a signing key (64 hex digits, as `devstash remote \
                 keygen` prints)"
            )
        })?;
    Ok(Some(SigningKey::from_bytes(&seed)))
}

/// The remote's settings, if one is chosen and not off. `dir` holds `devstash.toml`.
pub fn settings(choice: &Choice, dir: &Path) -> Result<Option<Settings>> {
    let file = read_config(dir)?.remote.unwrap_or_default();
    let Some(url) = choice.url.clone().or(file.url) else {
        return Ok(None);
    };
    let mode = match (choice.mode, file.mode.as_deref()) {
        (Some(m), _) => m,
        (None, Some(m)) => m
            .parse::<Mode>()
            .map_err(|e| anyhow!("[remote] mode: {e}"))?,
        (None, None) => Mode::Read,
    };
    if mode == Mode::Off {
        return Ok(None);
    }
    check_url(&url)?;
    let trusted = file
        .public_keys
        .iter()
        .map(|k| public_key(k))
        .collect::<Result<Vec<_>>>()?;
    let namespace = file.namespace.unwrap_or_else(|| "default".into());
    if namespace.is_empty()
        || namespace.len() > 64
        || !namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        bail!("[remote] namespace = {namespace:?}: use 1 to 64 letters, digits, `.`, `_` or `-`");
    }
    let mut options = Vec::new();
    if let Ok(pw) = std::env::var(REDIS_PASSWORD_ENV) {
        options.push(("password".to_string(), pw));
    }
    Ok(Some(Settings {
        url,
        options,
        mode,
        trusted,
        namespace,
        signing: signing_key()?,
        connect_timeout: duration(
            file.connect_timeout.as_deref(),
            Duration::from_secs(1),
            "connect_timeout",
        )?,
        timeout: duration(file.timeout.as_deref(), Duration::from_secs(5), "timeout")?,
    }))
}

/// Opens the remote `settings` describe, saying once what it will not do.
pub fn open(settings: Settings) -> Result<Remote> {
    if settings.trusted.is_empty() {
        say(&format!(
            "devstash: warning: remote {}: no public_keys in {CONFIG_FILE}, so no object read \
             from it can be trusted; add the writers' keys (`devstash remote keygen` makes a pair)",
            settings.url
        ));
    }
    if settings.mode == Mode::ReadWrite && settings.signing.is_none() {
        say(&format!(
            "devstash: warning: remote {}: mode read-write without {SIGNING_KEY_ENV}: nothing \
             is uploaded",
            settings.url
        ));
    }
    Ok(Remote::open(settings)?)
}

/// The store of a run: the local cache, with the remote behind it when one is chosen.
pub fn tier(local: DiskTier, choice: &Choice) -> Result<Box<dyn Tier>> {
    match settings(choice, Path::new("."))? {
        Some(s) => Ok(Box::new(RemoteTier::new(local, open(s)?))),
        None => Ok(Box::new(local)),
    }
}

/// A new writer key pair, as `remote keygen` prints it.
pub fn keygen() -> Result<(String, String)> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow!("cannot draw a key: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    Ok((
        hex::encode(seed),
        hex::encode(key.verifying_key().as_bytes()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) {
        std::fs::write(dir.join(CONFIG_FILE), text).unwrap();
    }

    #[test]
    fn settings_come_from_the_flags_then_the_file_and_secrets_never_from_it() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        assert!(settings(&Choice::default(), d).unwrap().is_none());
        let (_, public) = keygen().unwrap();
        write(
            d,
            &format!(
                "[remote]\nurl = \"redis://127.0.0.1:1/0/p\"\npublic_keys = [\"{public}\"]\n\
                 namespace = \"v2\"\ntimeout = \"2s\"\n"
            ),
        );
        let s = settings(&Choice::default(), d).unwrap().unwrap();
        assert_eq!((s.mode, s.namespace.as_str()), (Mode::Read, "v2"));
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert_eq!(s.trusted.len(), 1);
        let flag = Choice {
            url: Some("s3://b/p?endpoint=http://127.0.0.1:1&region=x".into()),
            mode: Some(Mode::Off),
        };
        assert!(settings(&flag, d).unwrap().is_none(), "off wins");

        for (text, needle) in [
            (
                "[remote]\nurl = \"redis://:pw@h:1/0\"\n",
                "credentials never go in the URL",
            ),
            (
                "[remote]\nurl = \"s3://b/p?secret_access_key=x\"\n",
                "secret_access_key is a credential",
            ),
            ("[remote]\nurl = \"ftp://h/x\"\n", "devstash speaks"),
            (
                "[remote]\nurl = \"redis://h:1/0\"\npublic_keys = [\"zz\"]\n",
                "not a public key",
            ),
            (
                "[remote]\nurl = \"redis://h:1/0\"\nsigning_key = \"ab\"\n",
                "never goes in",
            ),
            (
                "[remote]\nurl = \"redis://h:1/0\"\nmode = \"write\"\n",
                "use read, read-write",
            ),
            (
                "[remote]\nurl = \"redis://h:1/0\"\nnamespace = \"a/b\"\n",
                "namespace",
            ),
            (
                "[remote]\nurl = \"redis://h:1/0\"\ntimeout = \"1h\"\n",
                "at most 2m",
            ),
            (
                "[remote]\nurl = \"redis://h:1/0\"\ncolour = 1\n",
                "unknown field",
            ),
        ] {
            write(d, text);
            let e = format!("{:#}", settings(&Choice::default(), d).unwrap_err());
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
