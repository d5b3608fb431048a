//! Entry patterns, as taken by `--refresh=PATTERN` and `clear --pattern`: a glob (`*`, `?`,
//! `[..]`) matched against the whole site identity or entry file name, or, without glob
//! characters, a substring of either.

use globset::{Glob, GlobMatcher};

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    glob: Option<GlobMatcher>,
}

impl Pattern {
    /// Compiles a pattern; an invalid glob is an error that says so.
    pub fn new(text: &str) -> anyhow::Result<Pattern> {
        let glob = if text.contains(['*', '?', '[', '{']) {
            Some(
                Glob::new(text)
                    .map_err(|e| anyhow::anyhow!("invalid pattern {text:?}: {e}"))?
                    .compile_matcher(),
            )
        } else {
            None
        };
        Ok(Pattern {
            text: text.to_string(),
            glob,
        })
    }

    /// Whether the pattern matches an entry with this site identity and file name.
    /// The pattern as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, site: &str, file_name: &str) -> bool {
        match &self.glob {
            Some(g) => g.is_match(site) || g.is_match(file_name),
            None => site.contains(&self.text) || file_name.contains(&self.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substring_and_glob() {
        let site = "quickstart::slow_function";
        let file = "quickstart__slow_function__0123456789abcdef.stash";
        assert!(Pattern::new("slow").unwrap().matches(site, file));
        assert!(!Pattern::new("fast").unwrap().matches(site, file));
        assert!(Pattern::new("quickstart::*").unwrap().matches(site, file));
        assert!(Pattern::new("*__0123*").unwrap().matches(site, file));
        assert!(!Pattern::new("numeric::*").unwrap().matches(site, file));
        assert!(Pattern::new("[").is_err());
    }
}
