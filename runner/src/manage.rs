//! `devstash list`, `devstash clear` and `devstash remote`, and the TTL verdicts `devstash
//! inspect` shares.
//!
//! Reading and removing files is left to [`crate::store::listing`], which only ever works through
//! a handle on the cache directory; this module decides what to show and what to select.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use anyhow::{Result, bail};
use comfy_table::{Cell, CellAlignment, Color};
use serde::Serialize;

use crate::flags::{ClearArgs, Dur, GlobalArgs, ListArgs, RemoteAction, RemoteCmdArgs, SortKey};
use crate::home::Home;
use crate::output::{
    self, colour, count, escape, human_age, human_duration, human_size, table, ttl_text,
};
use crate::store::Header;
use crate::store::listing::{
    CacheDir, FileKind, KeptFile, LEGACY_MODULES_DIR, Listed, Place, Scan, TAPES_DIR,
};
use crate::store::pattern::Pattern;
use crate::team;

/// How an entry stands: judged against its own TTL or an override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Within its TTL (shown as text), or it has none.
    Valid(Option<String>),
    /// Past its TTL (shown as text).
    Expired(String),
    /// Failed verification, with the reason.
    Corrupt(String),
}

impl Verdict {
    /// Judges an entry at `now`, against `ttl` when given, else against the TTL it was stored
    /// with.
    pub fn of(entry: &Listed, ttl: Option<&Dur>, now: SystemTime) -> Verdict {
        match &entry.state {
            Err(damage) => Verdict::Corrupt(damage.problem.clone()),
            Ok(header) => verdict_of_header(header, ttl, now),
        }
    }

    /// `valid`, `expired` or `corrupt`, for scripts.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Valid(_) => "valid",
            Verdict::Expired(_) => "expired",
            Verdict::Corrupt(_) => "corrupt",
        }
    }

    /// The colour of the verdict in a table.
    fn colour(&self) -> Color {
        match self {
            Verdict::Valid(_) => Color::Green,
            Verdict::Expired(_) => Color::Yellow,
            Verdict::Corrupt(_) => Color::Red,
        }
    }
}

impl std::fmt::Display for Verdict {
    /// `valid (<=1m)`, `valid (no ttl)`, `expired (>1m)`, `corrupt: checksum mismatch …`: the
    /// Python devstash's wording, kept so that its users read the same thing.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Valid(Some(ttl)) => write!(f, "valid (<={ttl})"),
            Verdict::Valid(None) => write!(f, "valid (no ttl)"),
            Verdict::Expired(ttl) => write!(f, "expired (>{ttl})"),
            Verdict::Corrupt(why) => write!(f, "corrupt: {why}"),
        }
    }
}

/// Judges a verified header at `now` against `ttl`, else against its own TTL.
pub fn verdict_of_header(header: &Header, ttl: Option<&Dur>, now: SystemTime) -> Verdict {
    let (secs, text) = match (ttl, header.ttl_secs) {
        (Some(d), _) => (d.duration.as_secs(), d.text.clone()),
        (None, Some(s)) => (s, ttl_text(s)),
        (None, None) => return Verdict::Valid(None),
    };
    // `Header::is_expired` counts whole seconds; an override below a second (`--ttl 0s`) counts
    // as zero, so everything stored before now has expired.
    if header.is_expired(Some(secs), now) {
        Verdict::Expired(text)
    } else {
        Verdict::Valid(Some(text))
    }
}

/// The age of something stored at `at`, judged at `now` (zero when the clock went back).
fn age(at: Option<SystemTime>, now: SystemTime) -> Option<Duration> {
    at.map(|t| now.duration_since(t).unwrap_or_default())
}

/// One row of `devstash list --json`.
#[derive(Debug, Serialize)]
struct JsonEntry<'a> {
    name: &'a str,
    site: Option<&'a str>,
    location: Option<&'a str>,
    kind: Option<&'a str>,
    value_type: Option<&'a str>,
    /// Size of the file, bytes.
    size: u64,
    payload_len: Option<u64>,
    created_ms: Option<u64>,
    age_secs: Option<u64>,
    /// The TTL the entry was stored with.
    ttl_secs: Option<u64>,
    /// `valid`, `expired` or `corrupt`.
    status: &'static str,
    /// The verdict as the table shows it.
    status_text: String,
    problem: Option<&'a str>,
    compute_ns: Option<u64>,
    args_preview: Option<&'a str>,
}

/// `devstash list --json`.
#[derive(Debug, Serialize)]
struct JsonList<'a> {
    cache_dir: String,
    exists: bool,
    looks_like_cache: bool,
    /// The `--ttl` override, as given.
    ttl: Option<&'a str>,
    entries: Vec<JsonEntry<'a>>,
    total: JsonTotal,
    corrupt: usize,
    compiled_modules: JsonTotal,
}

/// A count of files and their bytes.
#[derive(Debug, Default, Serialize)]
struct JsonTotal {
    count: usize,
    bytes: u64,
}

/// Runs `devstash list`.
pub fn list(global: &GlobalArgs, args: &ListArgs) -> Result<i32> {
    if args.remote {
        return list_remote(args.json);
    }
    let now = SystemTime::now();
    let shown = global.cache_dir.display().to_string();
    let Some(cache) = CacheDir::open(&global.cache_dir, &Home::open()?.signer())? else {
        if args.json {
            output::json(&JsonList {
                cache_dir: shown,
                exists: false,
                looks_like_cache: false,
                ttl: args.ttl.as_ref().map(|d| d.text.as_str()),
                entries: Vec::new(),
                total: JsonTotal::default(),
                corrupt: 0,
                compiled_modules: JsonTotal::default(),
            })?;
        } else {
            output::line(format_args!(
                "no cache at {shown} yet: entries appear once `devstash run` stores a call"
            ))?;
        }
        return Ok(0);
    };
    let scan = cache.scan(now)?;
    warn_symlinks(&scan);
    let mut entries: Vec<&Listed> = scan.entries.iter().collect();
    match args.sort {
        SortKey::Name => entries.sort_by(|a, b| a.name.cmp(&b.name)),
        SortKey::Age => entries.sort_by_key(|e| std::cmp::Reverse(e.stored_at())),
        SortKey::Size => entries.sort_by(|a, b| b.size.cmp(&a.size).then(a.name.cmp(&b.name))),
    }
    let verdicts: Vec<Verdict> = entries
        .iter()
        .map(|e| Verdict::of(e, args.ttl.as_ref(), now))
        .collect();
    let bytes: u64 = entries.iter().map(|e| e.size).sum();
    let corrupt = entries.iter().filter(|e| e.header().is_none()).count();
    let modules = JsonTotal {
        count: scan.modules.len(),
        bytes: scan.modules.iter().map(|m| m.size).sum(),
    };

    if args.json {
        let rows = entries
            .iter()
            .zip(&verdicts)
            .map(|(e, v)| json_entry(e, v, now))
            .collect();
        return output::json(&JsonList {
            cache_dir: shown,
            exists: true,
            looks_like_cache: scan.looks_like_cache(),
            ttl: args.ttl.as_ref().map(|d| d.text.as_str()),
            entries: rows,
            total: JsonTotal {
                count: entries.len(),
                bytes,
            },
            corrupt,
            compiled_modules: modules,
        })
        .map(|()| 0);
    }

    if entries.is_empty() {
        if scan.looks_like_cache() {
            output::line(format_args!("no entries in {shown}: the cache is empty"))?;
        } else {
            output::line(format_args!(
                "no entries in {shown} (it does not look like a devstash cache)"
            ))?;
        }
        return Ok(0);
    }
    let colour = colour();
    let mut t = table(&["NAME", "SITE", "SIZE", "AGE", "TTL", "COMPUTE"]);
    for (e, v) in entries.iter().zip(&verdicts) {
        let h = e.header();
        let status = Cell::new(escape(&v.to_string()));
        t.add_row(vec![
            Cell::new(&e.name),
            Cell::new(h.map_or("?".into(), |h| escape(&h.site))),
            Cell::new(human_size(e.size)),
            Cell::new(age(e.stored_at(), now).map_or("?".into(), human_age)),
            if colour {
                status.fg(v.colour())
            } else {
                status
            },
            Cell::new(h.map_or("?".into(), |h| {
                human_duration(Duration::from_nanos(h.compute_ns))
            })),
        ]);
    }
    for col in [2, 3, 5] {
        if let Some(c) = t.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    output::line(format_args!("{t}"))?;
    let mut total = format!(
        "{}, {} in {shown}",
        count(entries.len() as u64, "entry", "entries"),
        human_size(bytes)
    );
    if modules.count > 0 {
        total.push_str(&format!(
            "; {} ({}) left by an older devstash in {LEGACY_MODULES_DIR}/ (`devstash clear --all` \
             removes them)",
            count(modules.count as u64, "compiled module", "compiled modules"),
            human_size(modules.bytes)
        ));
    }
    output::line(format_args!("{total}"))?;
    if corrupt > 0 {
        output::line(format_args!(
            "{} failed verification: a run recomputes {}; `devstash clear --corrupt` removes {}",
            count(corrupt as u64, "entry", "entries"),
            if corrupt == 1 { "it" } else { "them" },
            if corrupt == 1 { "it" } else { "them" },
        ))?;
    }
    Ok(0)
}

fn json_entry<'a>(e: &'a Listed, v: &Verdict, now: SystemTime) -> JsonEntry<'a> {
    let h = e.header();
    JsonEntry {
        name: &e.name,
        site: h.map(|h| h.site.as_str()),
        location: h.map(|h| h.location.as_str()),
        kind: h.map(|h| h.kind.as_str()),
        value_type: h.map(|h| h.value_type.as_str()),
        size: e.size,
        payload_len: h.map(|h| h.payload_len),
        created_ms: h.map(|h| h.created_ms),
        age_secs: age(e.stored_at(), now).map(|a| a.as_secs()),
        ttl_secs: h.and_then(|h| h.ttl_secs),
        status: v.word(),
        status_text: v.to_string(),
        problem: e.state.as_ref().err().map(|d| d.problem.as_str()),
        compute_ns: h.map(|h| h.compute_ns),
        args_preview: h.and_then(|h| h.args_preview.as_deref()),
    }
}

fn warn_symlinks(scan: &Scan) {
    for link in &scan.symlinks {
        tracing::warn!("skipped symlink {link}: devstash never follows links in its cache");
    }
}

/// Whether `clear` (without `--all`) selects this entry.
/// The marked sites of a module, as `clear --stale` judges entries against them. A site's
/// identity is resolved when the program runs (a method's receiver type, a closure's binding),
/// while the module records the callee as written, so an entry is matched by its function's
/// last name (`scale` for `app::Scaler::scale`), to keep every entry that may still be live.
struct Live {
    /// The crates the module's sites are in: only their entries are judged.
    crates: HashSet<String>,
    /// The last name of each site's callee.
    names: HashSet<String>,
}

impl Live {
    fn new(records: &[devstash_protocol::SiteRecord]) -> Live {
        let first = |p: &str| p.split("::").next().unwrap_or_default().to_string();
        let last = |p: &str| p.rsplit([':', '.']).next().unwrap_or_default().to_string();
        Live {
            crates: records.iter().map(|r| first(&r.module)).collect(),
            names: records.iter().map(|r| last(&r.callee)).collect(),
        }
    }

    /// Whether an entry belongs to the module's crates and matches none of its sites. A damaged
    /// entry's site is unknown: never judged stale.
    fn is_stale(&self, e: &Listed) -> bool {
        let Ok(h) = &e.state else {
            return false;
        };
        let site = h.site.as_str();
        if site.starts_with(crate::net::SITE_PREFIX) || !site.contains("::") {
            return false;
        }
        let krate = site.split("::").next().unwrap_or_default();
        let name = site.rsplit("::").next().unwrap_or_default();
        self.crates.contains(krate) && !self.names.contains(name)
    }
}

fn selects(args: &ClearArgs, pattern: Option<&Pattern>, e: &Listed, now: SystemTime) -> bool {
    if args.all {
        return true;
    }
    // A damaged entry's site cannot be trusted: only its file name is matched.
    if pattern.is_some_and(|p| !p.matches(e.site(), &e.name)) {
        return false;
    }
    match &e.state {
        // Its stored time and TTL are unknown, so only conditions that need neither select it.
        Err(_) => !args.expired && args.older_than.is_none(),
        Ok(h) => {
            if args.corrupt {
                return false;
            }
            if args.expired
                && !matches!(
                    verdict_of_header(h, args.ttl.as_ref(), now),
                    Verdict::Expired(_)
                )
            {
                return false;
            }
            if let Some(d) = &args.older_than
                && age(Some(h.created()), now).unwrap_or_default() <= d.duration
            {
                return false;
            }
            true
        }
    }
}

/// Runs `devstash clear`.
pub fn clear(global: &GlobalArgs, args: &ClearArgs) -> Result<i32> {
    let pattern = args.pattern.as_deref().map(Pattern::new).transpose()?;
    let now = SystemTime::now();
    let shown = global.cache_dir.display().to_string();
    let Some(cache) = CacheDir::open(&global.cache_dir, &Home::open()?.signer())? else {
        if !global.quiet {
            output::line(format_args!(
                "nothing to remove: there is no cache at {shown}"
            ))?;
        }
        return Ok(0);
    };
    let scan = cache.scan(now)?;
    if !scan.looks_like_cache() {
        bail!(
            "{shown} does not look like a devstash cache (no CACHEDIR.TAG written by devstash, no \
             entry files), so nothing was removed: check --cache-dir"
        );
    }
    warn_symlinks(&scan);

    let stale = args
        .stale
        .as_deref()
        .map(|m| -> Result<Live> { Ok(Live::new(&crate::inspect::module_sites(m)?)) })
        .transpose()?;
    let entries: Vec<&Listed> = scan
        .entries
        .iter()
        .filter(|e| e.is_ours() && selects(args, pattern.as_ref(), e, now))
        .filter(|e| stale.as_ref().is_none_or(|live| live.is_stale(e)))
        .collect();
    // Entry-named files devstash did not write are never removed; say so when they would have
    // been, so that `--all` leaving a file behind is not a mystery.
    let foreign: Vec<&Listed> = scan
        .entries
        .iter()
        .filter(|e| {
            !e.is_ours() && (args.all || pattern.as_ref().is_some_and(|p| p.matches("", &e.name)))
        })
        .collect();
    // The pack only copies entries: with every entry gone it goes too (after a partial clear
    // it never answers for a removed file, and compacts itself).
    let kept: Vec<&KeptFile> = if args.all {
        scan.modules
            .iter()
            .chain(&scan.stale_temps)
            .chain(&scan.pack)
            .collect()
    } else {
        Vec::new()
    };

    let mut removed = Tally::default();
    let mut failed = 0usize;
    for e in &entries {
        if args.dry_run {
            output::line(format_args!(
                "would remove {} ({})",
                e.name,
                human_size(e.size)
            ))?;
            removed.entries.add(e.size);
            continue;
        }
        match cache.remove_entry(&e.name) {
            Ok(true) => {
                tracing::info!("removed {}", e.name);
                removed.entries.add(e.size);
            }
            Ok(false) => tracing::debug!("{} changed since it was listed; kept", e.name),
            Err(err) => {
                failed += 1;
                tracing::warn!(
                    "cannot remove {}: {err}",
                    cache.path().join(&e.name).display()
                );
            }
        }
    }
    for f in &kept {
        let slot = match f.kind {
            FileKind::CompiledModule => &mut removed.modules,
            FileKind::StaleTemp => &mut removed.temps,
            FileKind::Pack => &mut removed.entries_copies,
        };
        let rel = match f.place {
            Place::Top => f.name.clone(),
            Place::Modules => format!("{LEGACY_MODULES_DIR}/{}", f.name),
            // Named by whoever wrote the tape: escaped for the terminal.
            Place::Tapes => format!("{TAPES_DIR}/{}", escape(&f.name)),
        };
        if args.dry_run {
            output::line(format_args!("would remove {rel} ({})", human_size(f.size)))?;
            slot.add(f.size);
            continue;
        }
        match cache.remove_kept(f, now) {
            Ok(true) => {
                tracing::info!("removed {rel}");
                slot.add(f.size);
            }
            Ok(false) => tracing::debug!("{rel} changed since it was listed; kept"),
            Err(err) => {
                failed += 1;
                tracing::warn!("cannot remove {}: {err}", cache.path().join(&rel).display());
            }
        }
    }

    if !global.quiet || args.dry_run {
        output::line(format_args!("{}", removed.summary(args.dry_run, &shown)))?;
        if !foreign.is_empty() {
            let names: Vec<&str> = foreign.iter().map(|e| e.name.as_str()).collect();
            output::line(format_args!(
                "kept {} that devstash did not write: {}",
                count(foreign.len() as u64, "file", "files"),
                names.join(", ")
            ))?;
        }
    }
    if failed > 0 {
        bail!(
            "could not remove {} (see the warnings above): check the permissions of {shown}",
            count(failed as u64, "file", "files")
        );
    }
    Ok(0)
}

/// Files and bytes of one kind.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    files: usize,
    bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
    }
}

/// What `clear` removed (or would remove).
#[derive(Debug, Default)]
struct Tally {
    entries: Count,
    /// The pack of entry copies: its bytes count with the entries, not as a file of its own.
    entries_copies: Count,
    modules: Count,
    temps: Count,
}

impl Tally {
    /// `removed 3 entries (1.1 KiB) from .devstash_cache`, with compiled modules and temporary
    /// files when there were any.
    fn summary(&self, dry_run: bool, shown: &str) -> String {
        let verb = if dry_run { "would remove" } else { "removed" };
        if self.entries.files + self.modules.files + self.temps.files == 0 {
            return format!("nothing to remove: no entry in {shown} matches");
        }
        let mut parts = vec![format!(
            "{} ({})",
            count(self.entries.files as u64, "entry", "entries"),
            human_size(self.entries.bytes + self.entries_copies.bytes)
        )];
        if self.modules.files > 0 {
            parts.push(format!(
                "{} ({})",
                count(
                    self.modules.files as u64,
                    "compiled module",
                    "compiled modules"
                ),
                human_size(self.modules.bytes)
            ));
        }
        if self.temps.files > 0 {
            parts.push(format!(
                "{} ({})",
                count(
                    self.temps.files as u64,
                    "leftover temporary file",
                    "leftover temporary files"
                ),
                human_size(self.temps.bytes)
            ));
        }
        format!("{verb} {} from {shown}", parts.join(", "))
    }
}

/// The team cache of `list --remote` and `remote check`: from DEVSTASH_REMOTE (or the flags)
/// and devstash.toml.
fn chosen_remote(choice: &team::Choice) -> Result<crate::store::remote::Remote> {
    match team::settings(choice, std::path::Path::new("."))? {
        Some(s) => team::open(s),
        None => bail!(
            "no team cache is set: pass --remote URL, set DEVSTASH_REMOTE, or add a [remote] \
             table with a url to {} (the README's \"Sharing a cache with a team\" shows how)",
            team::CONFIG_FILE
        ),
    }
}

/// `devstash list --remote`: how many entries the team cache holds in its namespace.
fn list_remote(json: bool) -> Result<i32> {
    let choice = team::Choice {
        url: std::env::var("DEVSTASH_REMOTE").ok(),
        mode: None,
    };
    let remote = chosen_remote(&choice)?;
    let s = remote.settings();
    let (count, bytes) = remote
        .usage()
        .map_err(|e| anyhow::anyhow!("cannot list remote {}: {e}", s.url))?;
    if json {
        #[derive(Serialize)]
        struct JsonRemote<'a> {
            remote: &'a str,
            namespace: &'a str,
            entries: u64,
            bytes: u64,
        }
        output::json(&JsonRemote {
            remote: &s.url,
            namespace: &s.namespace,
            entries: count,
            bytes,
        })?;
    } else {
        output::line(format_args!(
            "remote {} (namespace {}): {}, {}",
            s.url,
            s.namespace,
            output::count(count, "entry", "entries"),
            human_size(bytes)
        ))?;
    }
    Ok(0)
}

/// `devstash remote check` and `devstash remote keygen`.
pub fn remote(_global: &GlobalArgs, args: &RemoteCmdArgs) -> Result<i32> {
    match &args.action {
        RemoteAction::Keygen => {
            let (secret, public) = team::keygen()?;
            output::line(format_args!("{}={secret}", team::SIGNING_KEY_ENV))?;
            output::line(format_args!("public_keys = [\"{public}\"]"))?;
            output::say(&format!(
                "devstash: the first line is the writer's secret: put it in the writer's \
                 environment only (a CI secret of the protected branch), never in a file of the \
                 project. The second goes in {}'s [remote] table, for every reader.",
                team::CONFIG_FILE
            ));
            Ok(0)
        }
        RemoteAction::Check(flags) => {
            let remote = chosen_remote(&flags.choice())?;
            let s = remote.settings();
            output::line(format_args!(
                "remote     {} (mode {}, namespace {})",
                s.url, s.mode, s.namespace
            ))?;
            let (report, ok) = remote.check();
            output::line(output::escape_lines(&report))?;
            Ok(if ok { 0 } else { 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(created: SystemTime, ttl_secs: Option<u64>) -> Header {
        Header {
            key: "ab".repeat(32),
            created_ms: created
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
            ttl_secs,
            site: "app::f".into(),
            location: "src/main.rs:1".into(),
            kind: "call".into(),
            value_type: "u8".into(),
            compute_ns: 1,
            payload_len: 1,
            args_preview: None,
            writer: None,
        }
    }

    #[test]
    fn verdicts_use_own_ttl_or_the_override() {
        let now = SystemTime::now();
        let old = now - Duration::from_secs(120);
        let dur: Dur = "1m".parse().unwrap();
        assert_eq!(
            verdict_of_header(&header(old, None), None, now).to_string(),
            "valid (no ttl)"
        );
        assert_eq!(
            verdict_of_header(&header(old, Some(3600)), None, now).to_string(),
            "valid (<=1h)"
        );
        assert_eq!(
            verdict_of_header(&header(old, Some(60)), None, now).to_string(),
            "expired (>1m)"
        );
        assert_eq!(
            verdict_of_header(&header(old, Some(3600)), Some(&dur), now).to_string(),
            "expired (>1m)"
        );
        assert_eq!(
            verdict_of_header(&header(now, None), Some(&dur), now).to_string(),
            "valid (<=1m)"
        );
    }
}
