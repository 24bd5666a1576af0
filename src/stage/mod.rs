//! Verification stages: format-aware checks of captured files.
//!
//! Owns: the [`Stage`] trait, layout detection ([`Layout`]), the capture order and the
//! never-captured names a layout defines, and the stage registry ([`StageSet`]).
//!
//! A stage says which files it applies to and checks one file through a local path; it
//! returns problems as data. Stages run (a) at snapshot time on the bytes that were captured
//! (only for files that were read, so an unchanged file is checked once), (b) in
//! `verify --read-data` on files materialized from the repository, and (c) after `restore`
//! on the restored files. The built-in `files` stage (size + CRC32 against the manifest) is
//! not a trait object: the pipeline computes it while reading and writing.
//!
//! Must not: modify the files it checks, or fail with `Err` for a damaged file.

#[cfg(feature = "alopex")]
mod alopex;

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

/// A format-aware check.
pub trait Stage: Send + Sync {
    /// Short name (`alopex`).
    fn name(&self) -> &'static str;
    /// Whether the file at root-relative path `rel` (`/`-separated) is checked by this stage.
    fn applies_to(&self, rel: &str) -> bool;
    /// Checks one file readable at `path`; returns the problems found (empty when sound).
    fn check(&self, rel: &str, path: &Path) -> Vec<String>;
}

/// A known data-directory layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Any directory: walk order, no format stage.
    Generic,
    /// An Alopex DB data directory: `lsm.wal`, `sst/`, `checkpoint.meta`.
    Alopex,
}

/// Names an Alopex data directory never contributes to a snapshot (globs on the name).
pub const ALOPEX_NEVER: &[&str] = &[
    "*.alopex.lock",
    ".lifecycle",
    "checkpoint.tmp",
    "lsm.wal.bad.*",
    "lsm.wal.migrate",
    "lsm.wal.bak",
];

impl Layout {
    /// Detects the layout of a source directory.
    #[must_use]
    pub fn detect(root: &Path) -> Layout {
        let wal = root.join("lsm.wal").is_file();
        let meta = root.join("checkpoint.meta").is_file();
        let sst = root.join("sst").is_dir();
        if wal && (meta || sst) {
            Layout::Alopex
        } else {
            Layout::Generic
        }
    }

    /// Detects the layout from the names at the root of a snapshot.
    #[must_use]
    pub fn detect_names(names: &[(&[u8], bool)]) -> Layout {
        let has = |n: &[u8], dir: bool| names.iter().any(|(m, d)| *m == n && *d == dir);
        if has(b"lsm.wal", false) && (has(b"checkpoint.meta", false) || has(b"sst", true)) {
            Layout::Alopex
        } else {
            Layout::Generic
        }
    }

    /// Excludes the layout adds to the user's.
    #[must_use]
    pub fn never_captured(self) -> &'static [&'static str] {
        match self {
            Layout::Generic => &[],
            Layout::Alopex => ALOPEX_NEVER,
        }
    }

    /// Capture phase of a root-relative path: phase 0 first, 2 last. Alopex: `lsm.wal`, then
    /// `sst/` (and everything else), then `checkpoint.meta` last.
    #[must_use]
    pub fn phase(self, rel: &str) -> u8 {
        match (self, rel) {
            (Layout::Alopex, "lsm.wal") => 0,
            (Layout::Alopex, "checkpoint.meta") => 2,
            _ => 1,
        }
    }

    /// Whether `rel` must never be deleted or replaced by an in-place restore.
    #[must_use]
    pub fn is_protected(self, rel: &str) -> bool {
        let first = rel.split('/').next().unwrap_or(rel);
        first.ends_with(".alopex.lock") || first == ".lifecycle"
    }

    /// The default stages of this layout.
    #[must_use]
    pub fn default_stages(self) -> Vec<&'static str> {
        match self {
            Layout::Generic => vec!["files"],
            Layout::Alopex => vec!["files", "alopex"],
        }
    }
}

/// Which stages to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StageSelection {
    /// The detected layout's default stages.
    #[default]
    Auto,
    /// Exactly these (names from [`available`]).
    Explicit(Vec<String>),
}

impl std::str::FromStr for StageSelection {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "auto" {
            return Ok(StageSelection::Auto);
        }
        let names: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty() && *n != "none")
            .map(str::to_owned)
            .collect();
        for n in &names {
            if !available().contains(&n.as_str()) {
                return Err(Error::InvalidInput(format!(
                    "stage '{n}' is not known; choose from {} (comma-separated), 'auto' or 'none'",
                    available().join(", ")
                )));
            }
        }
        Ok(StageSelection::Explicit(names))
    }
}

/// Names of the stages this build has.
#[must_use]
pub fn available() -> Vec<&'static str> {
    let mut v = vec!["files"];
    if cfg!(feature = "alopex") {
        v.push("alopex");
    }
    v
}

/// The stages chosen for one run.
#[derive(Clone, Default)]
pub struct StageSet {
    /// Names of every stage that runs, `files` included.
    pub names: Vec<String>,
    stages: Vec<Arc<dyn Stage>>,
}

impl std::fmt::Debug for StageSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageSet")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl StageSet {
    /// Resolves a selection against a layout.
    pub fn resolve(sel: &StageSelection, layout: Layout) -> Result<Self> {
        let names: Vec<String> = match sel {
            StageSelection::Auto => layout
                .default_stages()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            StageSelection::Explicit(n) => n.clone(),
        };
        #[cfg_attr(
            not(feature = "alopex"),
            expect(unused_mut, reason = "without the alopex feature no stage is pushed")
        )]
        let mut stages: Vec<Arc<dyn Stage>> = Vec::new();
        for n in &names {
            match n.as_str() {
                "files" => {}
                #[cfg(feature = "alopex")]
                "alopex" => stages.push(Arc::new(alopex::AlopexStage)),
                other => {
                    return Err(Error::InvalidInput(format!(
                        "stage '{other}' is not in this build; choose from {}",
                        available().join(", ")
                    )));
                }
            }
        }
        Ok(StageSet { names, stages })
    }

    /// Whether any trait stage applies to `rel`.
    #[must_use]
    pub fn applies_to(&self, rel: &str) -> bool {
        self.stages.iter().any(|s| s.applies_to(rel))
    }

    /// Runs every applicable stage on `path`; problems are prefixed with the stage name.
    #[must_use]
    pub fn check(&self, rel: &str, path: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.stages {
            if s.applies_to(rel) {
                out.extend(
                    s.check(rel, path)
                        .into_iter()
                        .map(|p| format!("{}: {p}", s.name())),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_parses_and_rejects_unknown() {
        assert_eq!(
            "auto".parse::<StageSelection>().expect("auto"),
            StageSelection::Auto
        );
        assert_eq!(
            "none".parse::<StageSelection>().expect("none"),
            StageSelection::Explicit(vec![])
        );
        assert!("bogus".parse::<StageSelection>().is_err());
    }

    #[test]
    fn alopex_phases_and_protection() {
        let l = Layout::Alopex;
        assert!(l.phase("lsm.wal") < l.phase("sst/1.sst"));
        assert!(l.phase("sst/1.sst") < l.phase("checkpoint.meta"));
        assert!(l.is_protected(".alopex.lock"));
        assert!(l.is_protected(".lifecycle/x"));
        assert!(!l.is_protected("sst/1.sst"));
        assert_eq!(
            Layout::detect_names(&[(b"lsm.wal", false), (b"sst", true)]),
            Layout::Alopex
        );
        assert_eq!(
            Layout::detect_names(&[(b"lsm.wal", false)]),
            Layout::Generic
        );
    }
}
