//! Exclude patterns, as restic reads them: a pattern that starts with `/` is anchored at the
//! source's top level (`/cache` leaves out SOURCE/cache, not SOURCE/a/cache); any other pattern
//! matches the entry's name or a trailing part of its path relative to the source (`*.tmp`,
//! `cache/x`). `*` and `?` stay within one name, `**` crosses directories. `--iexclude`
//! patterns match ignoring case.
//!
//! Invariant: one match per entry (its source-relative path), whatever the number of patterns.
//! Must not: read the file system.

use std::path::Path;

use crate::error::{Error, Result};

/// The compiled patterns of one source.
pub(crate) struct Excludes {
    set: globset::GlobSet,
}

impl Excludes {
    /// Compiles `patterns` (case-sensitive) and `ipatterns` (case-insensitive).
    pub(crate) fn new(patterns: &[String], ipatterns: &[String]) -> Result<Self> {
        let mut b = globset::GlobSetBuilder::new();
        for (list, fold) in [(patterns, false), (ipatterns, true)] {
            for p in list {
                b.add(compile(p, fold)?);
            }
        }
        let set = b.build().map_err(|e| {
            Error::InvalidInput(format!("exclude patterns cannot be combined: {e}"))
        })?;
        Ok(Excludes { set })
    }

    /// Whether the entry at `rel` (relative to the source) is left out.
    pub(crate) fn matches(&self, rel: &Path) -> bool {
        !self.set.is_empty() && self.set.is_match(rel)
    }
}

/// The glob that matches what `pattern` means against a source-relative path.
fn compile(pattern: &str, fold: bool) -> Result<globset::Glob> {
    if pattern.starts_with('!') {
        return Err(Error::InvalidInput(format!(
            "exclude pattern '{pattern}' starts with '!', and negated patterns (re-including \
             what another pattern left out) are not supported; narrow the other patterns \
             instead (a literal '!' at the start is written '\\!')"
        )));
    }
    let body = pattern.trim_end_matches('/');
    let glob = match body.strip_prefix('/') {
        Some(anchored) => anchored.trim_start_matches('/').to_owned(),
        None if body.starts_with("**/") => body.to_owned(),
        None => format!("**/{body}"),
    };
    if glob.is_empty() || glob == "**/" {
        return Err(Error::InvalidInput(format!(
            "exclude pattern '{pattern}' matches nothing; give a name, a path or a glob"
        )));
    }
    globset::GlobBuilder::new(&glob)
        .literal_separator(true)
        .case_insensitive(fold)
        .build()
        .map_err(|e| Error::InvalidInput(format!("exclude pattern '{pattern}' is not valid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Excludes {
        Excludes::new(&p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(), &[])
            .expect("valid patterns")
    }

    #[test]
    fn anchored_pattern_matches_only_the_top_level() {
        let e = ex(&["/sub"]);
        assert!(e.matches(Path::new("sub")));
        assert!(!e.matches(Path::new("a/sub")));
        assert!(!e.matches(Path::new("subway")));
    }

    #[test]
    fn unanchored_pattern_matches_a_name_or_trailing_path_at_any_depth() {
        let e = ex(&["*.tmp", "cache/x"]);
        assert!(e.matches(Path::new("a.tmp")));
        assert!(e.matches(Path::new("d/e/a.tmp")));
        assert!(!e.matches(Path::new("a.tmpl")));
        assert!(e.matches(Path::new("cache/x")));
        assert!(e.matches(Path::new("deep/cache/x")));
        assert!(!e.matches(Path::new("mycache/x")));
        assert!(
            !e.matches(Path::new("cache/x/y")),
            "x itself is matched, not below it"
        );
    }

    #[test]
    fn star_stays_in_one_name_and_double_star_crosses() {
        assert!(!ex(&["/a*c"]).matches(Path::new("ab/c")));
        assert!(ex(&["/a/**/z"]).matches(Path::new("a/b/c/z")));
        assert!(ex(&["/a/**"]).matches(Path::new("a/b")));
    }

    #[test]
    fn case_folding_only_for_iexclude() {
        assert!(!ex(&["*.TMP"]).matches(Path::new("x.tmp")));
        let i = Excludes::new(&[], &["*.TMP".to_owned()]).expect("valid");
        assert!(i.matches(Path::new("d/X.tmp")));
    }

    #[test]
    fn negated_patterns_are_refused_and_an_escaped_bang_is_literal() {
        let e = Excludes::new(&["!keep.log".to_owned()], &[])
            .err()
            .expect("refused");
        assert!(e.to_string().contains("'!keep.log'"), "{e}");
        let x = Excludes::new(&["\\!x".to_owned()], &[]).expect("escaped");
        assert!(x.matches(Path::new("a/!x")));
        assert!(!x.matches(Path::new("a/x")));
    }

    #[test]
    fn empty_and_invalid_patterns_are_refused_by_name() {
        for p in ["", "/", "//"] {
            let e = Excludes::new(&[p.to_owned()], &[]).err().expect("refused");
            assert!(e.to_string().contains(&format!("'{p}'")), "{e}");
        }
        let e = Excludes::new(&["a[".to_owned()], &[])
            .err()
            .expect("refused");
        assert!(e.to_string().contains("'a['"), "{e}");
    }
}
