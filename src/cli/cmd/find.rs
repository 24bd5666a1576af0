//! `snapkeep find PATTERN...`: which snapshots hold a path. A pattern is a glob (`*` and `?`
//! stay within one name, `**` crosses directories) matched against an entry's path inside the
//! snapshot: a pattern that starts with `/` is anchored at the snapshot's root, any other may
//! start in any directory, so one without a `/` matches an entry's name.
//!
//! Every snapshot the filters select (all by default) is streamed through the tree walker, one
//! at a time, in list order; only the matches are kept.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::Result;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde_json::{Value, json};

use snapkeep::clock::rfc3339;
use snapkeep::format::manifest::Node;
use snapkeep::walk::{Step, TreePath, Visitor, Walker};
use snapkeep::{SnapshotRecord, short_id};

use crate::cli::args::FilterArgs;
use crate::cli::env::{Env, snapshot_filter};
use crate::cli::inspect::{kind_name, name_fields, printable, show_bytes};
use crate::cli::output::{human_bytes, plural};
use crate::cli::usage_error;

/// Prints every entry of the selected snapshots that a pattern matches.
pub fn run(env: &Env, patterns: &[String], filter: &FilterArgs) -> Result<i32> {
    let globs = matcher(patterns)?;
    let filter = snapshot_filter(filter)?;
    let repo = env.open()?;
    let (records, damaged) = repo.snapshots()?;
    for (id, e) in &damaged {
        env.say(&format!(
            "warning: snapshot {id} cannot be read, not searched: {e}"
        ));
    }
    let mut all = Vec::new();
    let (mut searched, mut holding, mut hits) = (0usize, 0usize, 0usize);
    let mut incomplete = 0usize;
    for r in records.iter().filter(|r| filter.matches(r)) {
        let mut found = Found {
            globs: &globs,
            matches: Vec::new(),
        };
        if let Err(e) = Walker::new(&repo).walk(&r.tree, "", &mut found) {
            // A damaged tree ends this snapshot's search, not the others': the matches found
            // so far are printed, and the exit code says the search was incomplete.
            incomplete += 1;
            eprintln!(
                "warning: the search of snapshot {} ({}) stopped at damage, so it may hold more \
                 matches than shown: {e}",
                short_id(&r.id),
                r.id
            );
        }
        searched += 1;
        holding += usize::from(!found.matches.is_empty());
        hits += found.matches.len();
        if env.json {
            all.extend(found.matches.iter().map(|m| hit_json(r, m)));
        } else {
            for m in &found.matches {
                println!("{}", line(r, m));
            }
        }
    }
    if env.json {
        println!("{}", Value::Array(all));
    }
    env.say(&format!(
        "{} in {holding} of {} searched",
        plural(hits, "match"),
        plural(searched, "snapshot")
    ));
    if incomplete > 0 {
        eprintln!(
            "snapkeep: {} could not be searched to the end; 'snapkeep verify' tells what is \
             damaged",
            plural(incomplete, "snapshot")
        );
        return Ok(EXIT_INCOMPLETE);
    }
    Ok(0)
}

/// The exit code of a search that a damaged snapshot cut short (the code of damage).
const EXIT_INCOMPLETE: i32 = 4;

/// One glob set of the patterns, each anchored as the module doc says.
fn matcher(patterns: &[String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let trimmed = p.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(usage_error(format!(
                "find pattern '{p}' matches no entry; give a name or a path such as '*.sst' or '/db/*.sst'"
            )));
        }
        let anchored = if trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("**/{trimmed}")
        };
        let glob = GlobBuilder::new(&anchored)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| usage_error(format!("find pattern '{p}' is not a valid glob: {e}")))?;
        set.add(glob);
    }
    set.build()
        .map_err(|e| usage_error(format!("find patterns cannot be combined: {e}")))
}

/// An entry a pattern matched.
struct Hit {
    /// The path's bytes (`path_hex` in JSON when they are not UTF-8).
    raw: Vec<u8>,
    path: String,
    kind: &'static str,
    size: u64,
    mtime_ns: i64,
}

/// The walk's visitor: keeps every entry of one snapshot that the globs match.
struct Found<'a> {
    globs: &'a GlobSet,
    matches: Vec<Hit>,
}

impl Visitor for Found<'_> {
    fn node(&mut self, path: &TreePath, node: &Node) -> snapkeep::Result<Step> {
        if self
            .globs
            .is_match(Path::new(OsStr::from_bytes(path.as_bytes())))
        {
            self.matches.push(Hit {
                raw: path.as_bytes().to_vec(),
                path: show_bytes(path.as_bytes()),
                kind: kind_name(node),
                size: node.size,
                mtime_ns: node.mtime_ns,
            });
        }
        Ok(Step::Enter)
    }
}

/// A match as the documented JSON object.
fn hit_json(r: &SnapshotRecord, m: &Hit) -> Value {
    let mut v = json!({
        "snapshot": r.id.to_string(),
        "time": rfc3339(r.time_ns),
        "host": r.host,
        "path": m.path,
        "type": m.kind,
        "size": m.size,
        "mtime": rfc3339(m.mtime_ns),
    });
    name_fields(&mut v, "path", &m.raw);
    v
}

/// The human line of a match: short id, snapshot time, type, size, mtime, path.
fn line(r: &SnapshotRecord, m: &Hit) -> String {
    format!(
        "{}  {}  {:<7}  {:>10}  {}  {}",
        short_id(&r.id),
        rfc3339(r.time_ns),
        m.kind,
        human_bytes(m.size),
        rfc3339(m.mtime_ns),
        printable(&m.path),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(patterns: &[&str], path: &str) -> bool {
        let owned: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        matcher(&owned).expect("globs").is_match(path)
    }

    #[test]
    fn patterns_match_names_anywhere_and_anchored_paths_at_the_root() {
        assert!(hits(&["*.sst"], "/db/000001.sst"));
        assert!(hits(&["*.sst"], "/top.sst"));
        assert!(!hits(&["*.sst"], "/db/000001.sst.tmp"));
        assert!(hits(&["db/*.sst"], "/x/db/1.sst"));
        assert!(hits(&["/db/*.sst"], "/db/1.sst"));
        assert!(!hits(&["/db/*.sst"], "/x/db/1.sst"));
        assert!(
            !hits(&["/db/*.sst"], "/db/sub/1.sst"),
            "* stays in one name"
        );
        assert!(hits(&["/db/**/*.sst"], "/db/sub/1.sst"));
        assert!(hits(&["sub/"], "/a/sub"));
        assert!(hits(&["nope", "a.txt"], "/a.txt"));
        assert!(matcher(&["/".to_owned()]).is_err());
        assert!(matcher(&["[".to_owned()]).is_err());
    }
}
