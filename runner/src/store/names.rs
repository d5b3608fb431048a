//! Entry file names: `<sanitized site>__<first 16 hex digits of the key>.stash`, at most
//! [`MAX_NAME_LEN`] bytes, made only of `[A-Za-z0-9_.-]` so that a name can never climb out of
//! the cache directory or need quoting in a shell.

/// Longest entry file name, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Suffix of every entry file.
pub const ENTRY_SUFFIX: &str = ".stash";

/// The file name of the entry with this site identity and key.
pub fn entry_file_name(site_identity: &str, key_hex: &str) -> String {
    entry_name(&entry_stem(site_identity), key_hex)
}

/// The first part of every entry name of a site: its sanitized identity, capped so that the
/// whole name fits in [`MAX_NAME_LEN`] bytes. Computed once per site.
pub fn entry_stem(site_identity: &str) -> String {
    let mut stem = sanitize(site_identity);
    // Sanitized names are ASCII, so any byte index is a char boundary.
    stem.truncate(MAX_NAME_LEN - 2 - 16 - ENTRY_SUFFIX.len());
    stem
}

/// `<stem>__<first 16 hex digits of the key>.stash`.
pub fn entry_name(stem: &str, key_hex: &str) -> String {
    // Made on every lookup: pushed rather than `format!`ted, which was a tenth of a hit.
    let key = &key_hex[..16.min(key_hex.len())];
    let mut name = String::with_capacity(stem.len() + 2 + key.len() + ENTRY_SUFFIX.len());
    name.push_str(stem);
    name.push_str("__");
    name.push_str(key);
    name.push_str(ENTRY_SUFFIX);
    name
}

/// `app::net::fetch` -> `app__net__fetch`; anything outside `[A-Za-z0-9_.-]` becomes `_`, and a
/// leading `.` or `-` is replaced so the name is neither hidden nor mistaken for a flag.
pub fn sanitize(identity: &str) -> String {
    let replaced = identity.replace("::", "__");
    let mut out: String = replaced
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(['.', '-']) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

/// Whether a directory entry's name looks like an entry file this runner wrote.
pub fn is_entry_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && name.ends_with(ENTRY_SUFFIX)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_name() {
        let key = "0123456789abcdef".repeat(4);
        assert_eq!(
            entry_file_name("quickstart::slow_function", &key),
            "quickstart__slow_function__0123456789abcdef.stash"
        );
    }

    #[test]
    fn hostile_identity_stays_a_plain_capped_name() {
        let key = "f".repeat(64);
        for id in [
            "../../etc/passwd",
            "/abs/x",
            "a\0b",
            "..",
            "-rf",
            &"é".repeat(300),
        ] {
            let name = entry_file_name(id, &key);
            assert!(name.len() <= MAX_NAME_LEN, "{name}");
            assert!(is_entry_name(&name), "{name}");
            assert!(!name.contains('/') && !name.starts_with('.') && !name.starts_with('-'));
        }
    }
}
