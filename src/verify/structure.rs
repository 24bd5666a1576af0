//! Verification's structure pass: the trees of the selected snapshots, walked with the one
//! walker ([`crate::walk::Walker`]), and the checks of every file in them.
//!
//! Owns: a [`TreeSource`] that reads trees as the walk needs them (memory: one walk's open
//! directories; a tree found damaged, by the pack pass or a read, is not read again) and the
//! visitor that checks every file: each chunk is in the index and points into an existing
//! pack; with read data, the file's size and CRC32 are recomputed from the verified chunks'
//! CRC32s and its holes, and the format stages run on files whose content verified (materialized
//! through [`crate::content`], results cached by content).
//!
//! Invariants: findings, not failures: a tree that cannot be loaded, or lies deeper than
//! [`MAX_DEPTH`], is one finding (object `tree <id>`, path `/` for a snapshot's root) and the
//! walk goes on; every finding names the snapshot and the path; no chunk is read twice (the
//! pack pass's facts are used, except for a chunk outside this view of the index).
//!
//! Must not: read packs in bulk (that is `packs`), write anything outside its private stage
//! directory, or import another verb.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use super::{Verified, VerifyOptions, VerifyReport};
use crate::error::{Error, Result};
use crate::format::manifest::{ChunkRef, FLAG_STAGE_FAILED, Node, NodeKind, SnapshotRecord, Tree};
use crate::hasher::FileCrc;
use crate::id::{AsBlob, PackId, SnapshotId, TreeId};
use crate::progress::Progress;
use crate::repository::Repository;
use crate::stage::{Layout, StageSet};
use crate::walk::{Step, TreePath, TreeSource, Visitor, Walker, is_too_deep};

/// Walks the trees of every record in `selected` and checks their files, into `report`.
pub(super) fn check_snapshots(
    repo: &Repository,
    opts: &VerifyOptions,
    packs: &HashMap<PackId, u64>,
    verified: Option<&Verified>,
    selected: &[&SnapshotRecord],
    progress: &dyn Progress,
    report: &mut VerifyReport,
) -> Result<()> {
    let trees = Trees {
        repo,
        verified,
        seen: RefCell::default(),
        bad: RefCell::default(),
    };
    let mut check = Check {
        repo,
        packs,
        verified,
        trees: &trees,
        report,
        snapshot: None,
        stages: StageSet::default(),
        stage_dir: None,
        stage_cache: HashMap::new(),
    };
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let mut walker = Walker::new(&trees);
    for rec in selected {
        if progress.is_cancelled() {
            return Err(Error::Cancelled);
        }
        check.report.snapshots += 1;
        check.stages = match (verified.is_some(), trees.get(&rec.tree)) {
            (true, Ok(root)) => {
                let names: Vec<(&[u8], bool)> = root
                    .nodes
                    .iter()
                    .map(|n| (n.name.as_slice(), matches!(n.kind, NodeKind::Dir { .. })))
                    .collect();
                StageSet::resolve(&opts.stages, Layout::detect_names(&names))?
            }
            _ => StageSet::default(),
        };
        check.snapshot = Some(rec.id);
        walker.walk(&rec.tree, "", &mut check)?;
    }
    check.report.trees = trees.seen.borrow().len() as u64;
    Ok(())
}

/// Trees as this verification reads them: a tree is read when a walk needs it, so memory
/// holds the open directories of one walk, not every tree; a tree found wrong keeps its
/// problem (read again, it would be wrong again) and is not read twice.
struct Trees<'a> {
    repo: &'a Repository,
    verified: Option<&'a Verified>,
    /// Distinct trees read, however many snapshots share them.
    seen: RefCell<HashSet<TreeId>>,
    /// What is wrong with each tree found wrong.
    bad: RefCell<HashMap<TreeId, String>>,
}

impl Trees<'_> {
    /// The tree `id`, or what is wrong with it (as the pack pass found it, or this read).
    fn get(&self, id: &TreeId) -> std::result::Result<Tree, String> {
        if let Some(p) = self.bad.borrow().get(id) {
            return Err(p.clone());
        }
        self.seen.borrow_mut().insert(*id);
        let t = match self.verified.and_then(|v| v.bad.get(&id.blob())) {
            Some(problem) => Err(problem.clone()),
            None => self.repo.load_tree(id).map_err(|e| e.finding()),
        };
        if let Err(p) = &t {
            self.bad.borrow_mut().insert(*id, p.clone());
        }
        t
    }

    /// What is wrong with tree `id`, when it was read and found wrong.
    fn problem(&self, id: &TreeId) -> Option<String> {
        self.bad.borrow().get(id).cloned()
    }
}

impl TreeSource for Trees<'_> {
    fn load_tree(&self, id: &TreeId) -> Result<Tree> {
        self.get(id)
            .map_err(|problem| Error::corrupt(format!("tree {id}"), problem))
    }
}

/// How one chunk of a file came out.
enum Chunk {
    /// Counted at its length, its CRC32 (when data is checked) appended.
    Counted,
    /// Counted at its length, but the file's CRC32 cannot be judged.
    Unknown,
    /// Not counted at all (not in the index, or its pack is gone).
    Missing,
}

/// The visitor: the file checks of one verification, across its snapshots.
struct Check<'a, 'r> {
    repo: &'a Repository,
    packs: &'a HashMap<PackId, u64>,
    verified: Option<&'a Verified>,
    trees: &'a Trees<'a>,
    report: &'r mut VerifyReport,
    /// The snapshot being walked.
    snapshot: Option<SnapshotId>,
    stages: StageSet,
    stage_dir: Option<tempfile::TempDir>,
    /// Stage problems by file content (chunk list and holes), so shared content is checked once.
    stage_cache: HashMap<[u8; 32], Vec<String>>,
}

impl Visitor for Check<'_, '_> {
    fn unreadable(&mut self, path: &TreePath, id: &TreeId, error: Error) -> Result<()> {
        let problem = if is_too_deep(&error) {
            "directories nested too deep".to_string()
        } else {
            self.trees.problem(id).unwrap_or_else(|| error.finding())
        };
        let shown = if path.as_bytes().is_empty() {
            "/".to_string()
        } else {
            path.lossy()
        };
        self.add(&shown, format!("tree {id}"), problem);
        Ok(())
    }

    fn node(&mut self, path: &TreePath, node: &Node) -> Result<Step> {
        if matches!(node.kind, NodeKind::File { .. }) {
            self.check_file(&path.lossy(), node);
        }
        Ok(Step::Enter)
    }
}

impl Check<'_, '_> {
    fn add(&mut self, path: &str, object: String, problem: String) {
        self.report
            .add(self.snapshot.as_ref(), Some(path), object, problem);
    }

    /// Every chunk of file `node` at `p`, then its size, CRC32, stages and capture flag.
    fn check_file(&mut self, p: &str, node: &Node) {
        let NodeKind::File {
            crc32,
            chunks,
            holes,
        } = &node.kind
        else {
            return;
        };
        self.report.files += 1;
        let mut crc = FileCrc::new();
        let mut crc_known = self.verified.is_some();
        let mut pos = 0u64;
        let mut holes_iter = holes.iter().peekable();
        for c in chunks {
            while let Some(h) = holes_iter.next_if(|h| h.offset <= pos) {
                crc.append_zeros(h.len);
                pos = h.offset + h.len;
            }
            match self.check_chunk(p, c, &mut crc) {
                Chunk::Counted => pos += u64::from(c.len),
                Chunk::Unknown => {
                    crc_known = false;
                    pos += u64::from(c.len);
                }
                Chunk::Missing => crc_known = false,
            }
        }
        for h in holes_iter {
            crc.append_zeros(h.len);
            pos = h.offset + h.len;
        }
        if pos != node.size {
            self.add(
                p,
                "file".into(),
                format!(
                    "chunks and holes cover {pos} bytes, the size is {}",
                    node.size
                ),
            );
        } else if crc_known {
            let actual = crc.finalize();
            if actual == *crc32 {
                self.run_stages(node, p);
            } else {
                self.add(
                    p,
                    "file".into(),
                    format!("CRC32 {actual:08x} differs from the recorded {crc32:08x}"),
                );
            }
        }
        if node.flags & FLAG_STAGE_FAILED != 0 {
            self.add(
                p,
                "file".into(),
                "failed its format stage when captured (kept by --allow-inconsistent)".into(),
            );
        }
    }

    /// One chunk of the file at `p`: in the index, in an existing pack, and (with read data)
    /// verified; its CRC32 appended to `crc` when known.
    fn check_chunk(&mut self, p: &str, c: &ChunkRef, crc: &mut FileCrc) -> Chunk {
        let object = format!("chunk {}", c.id);
        let indexed = self.repo.index().get(&c.id);
        if indexed.is_none() && self.repo.locate(&c.id).is_ok() {
            // In a pack a running prune took out of the index (it puts it back), or indexed
            // since this view was loaded: check the blob.
            if self.verified.is_some() {
                match self.repo.read_blob(&c.id) {
                    Ok(raw) => crc.append(crc32fast::hash(&raw), raw.len() as u64),
                    Err(e) => {
                        self.add(p, object, e.finding());
                        return Chunk::Unknown;
                    }
                }
            }
            return Chunk::Counted;
        }
        match indexed {
            None => {
                self.add(p, object, "not in the index".into());
                return Chunk::Missing;
            }
            Some(loc) if !self.packs.contains_key(&loc.pack) => {
                self.add(p, object, format!("its pack {} is missing", loc.pack));
                return Chunk::Missing;
            }
            Some(_) => {}
        }
        match self.verified {
            Some(v) => self.check_read(p, c, v, object, crc),
            None => Chunk::Counted,
        }
    }

    /// A chunk against what the pack pass found.
    fn check_read(
        &mut self,
        p: &str,
        c: &ChunkRef,
        v: &Verified,
        object: String,
        crc: &mut FileCrc,
    ) -> Chunk {
        let read = self
            .repo
            .index()
            .get(&c.id)
            .is_some_and(|l| v.packs.contains(&l.pack));
        if let Some(problem) = v.bad.get(&c.id.blob()) {
            self.add(p, object, problem.clone());
            Chunk::Unknown
        } else if !read && !v.all {
            // Its pack is outside this run's subset: no verdict.
            Chunk::Unknown
        } else if let Some((cc, len)) = v.facts.get(&c.id.blob()) {
            let mut out = Chunk::Counted;
            if len != c.len {
                self.add(
                    p,
                    object,
                    format!("stored length {len}, the tree says {}", c.len),
                );
                out = Chunk::Unknown;
            }
            crc.append(cc, u64::from(len));
            out
        } else {
            self.add(p, object, "not found in any pack that was read".into());
            Chunk::Unknown
        }
    }

    /// Runs the format stages on a file whose chunks all verified, materialized from the
    /// repository into a private directory; results are cached by content.
    fn run_stages(&mut self, node: &Node, path: &str) {
        let rel = path.trim_start_matches('/');
        if !self.stages.applies_to(rel) {
            return;
        }
        let NodeKind::File { chunks, holes, .. } = &node.kind else {
            return;
        };
        let mut h = blake3::Hasher::new();
        h.update(rel.as_bytes());
        for c in chunks {
            h.update(c.id.as_bytes());
        }
        for x in holes {
            h.update(&x.offset.to_le_bytes());
            h.update(&x.len.to_le_bytes());
        }
        let key = *h.finalize().as_bytes();
        if !self.stage_cache.contains_key(&key) {
            let problems = self.materialize_and_check(node, rel);
            self.report.stage_files += 1;
            self.stage_cache.insert(key, problems);
        }
        let problems = self.stage_cache.get(&key).cloned().unwrap_or_default();
        for problem in problems {
            self.add(path, "file".into(), problem);
        }
    }

    fn materialize_and_check(&mut self, node: &Node, rel: &str) -> Vec<String> {
        if self.stage_dir.is_none() {
            match tempfile::Builder::new()
                .prefix("snapkeep-verify-")
                .tempdir()
            {
                Ok(d) => self.stage_dir = Some(d),
                Err(e) => {
                    return vec![format!(
                        "cannot create a private directory to run stages: {e}"
                    )];
                }
            }
        }
        let Some(dir) = &self.stage_dir else {
            return Vec::new();
        };
        let dest = dir.path().join(format!("file-{}", self.stage_cache.len()));
        let out = match crate::content::materialize(self.repo, node, rel, &dest) {
            Ok(()) => self.stages.check(rel, &dest),
            Err(e) => vec![format!("cannot materialize it for the format stages: {e}")],
        };
        let _ = std::fs::remove_file(&dest);
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::{BackupOptions, InitOptions, NoProgress, Repository, VerifyOptions};

    #[test]
    fn trees_shared_by_snapshots_are_counted_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("sub")).expect("mkdir");
        std::fs::write(src.join("sub/a"), b"a").expect("write");
        let repo = Repository::init_local(&tmp.path().join("repo"), &InitOptions::default())
            .expect("init");
        for _ in 0..2 {
            crate::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("snapshot");
        }
        let opts = VerifyOptions {
            read_data: true,
            ..VerifyOptions::default()
        };
        let report = crate::verify(&repo, &opts, &NoProgress).expect("verify");
        assert!(report.ok(), "{:?}", report.findings);
        assert_eq!(report.snapshots, 2);
        assert_eq!(report.trees, 2);
        assert_eq!(report.files, 2);
    }
}
