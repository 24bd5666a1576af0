//! Repairs: rebuilding the index from pack trailers.
//!
//! Decide, then act: [`plan_index_rebuild`] reads every pack trailer and returns the entries
//! and the packs it could not read; [`repair_index`] writes them as one index file and only
//! then deletes the old index files.

use crate::backend::index_key;
use crate::error::Result;
use crate::format::index_file::BlobLocation;
use crate::id::{ChunkId, IndexId, PackId};
use crate::pack::{location, read_pack_entries};
use crate::repository::Repository;

/// What a rebuild found.
#[derive(Clone, Debug, Default)]
pub struct IndexRebuild {
    pub entries: Vec<(ChunkId, BlobLocation)>,
    pub packs_read: u64,
    /// Packs whose trailer could not be read, with the reason (their blobs are not indexed).
    pub damaged_packs: Vec<(String, String)>,
    /// Index files that the rebuild replaces.
    pub old_index_files: Vec<String>,
}

/// Reads every pack trailer (in parallel) and collects the index entries they describe.
pub fn plan_index_rebuild(repo: &Repository) -> Result<IndexRebuild> {
    use rayon::prelude::*;
    let backend = repo.backend();
    // Index files first: packs are written before the index that names them, so every index
    // file listed here has its packs in the listing below, and replacing it loses nothing.
    let old_index_files: Vec<String> = backend.list("index/")?.into_iter().map(|o| o.key).collect();
    let listed = backend.list("data/")?;
    let results: Vec<_> = listed
        .par_iter()
        .map(|o| {
            let name = o.key.rsplit('/').next().unwrap_or_default();
            match name.parse::<PackId>() {
                Ok(id) => read_pack_entries(backend.as_ref(), &id, o.size)
                    .map(|es| {
                        es.iter()
                            .map(|e| (e.id, location(id, e)))
                            .collect::<Vec<_>>()
                    })
                    .map_err(|e| (o.key.clone(), e.to_string())),
                Err(_) => Err((o.key.clone(), "name is not a pack id".to_string())),
            }
        })
        .collect();
    let mut plan = IndexRebuild::default();
    for r in results {
        match r {
            Ok(es) => {
                plan.packs_read += 1;
                plan.entries.extend(es);
            }
            Err(d) => plan.damaged_packs.push(d),
        }
    }
    plan.entries
        .sort_by(|a, b| a.0.cmp(&b.0).then(a.1.pack.cmp(&b.1.pack)));
    plan.entries.dedup_by(|a, b| a.0 == b.0);
    plan.old_index_files = old_index_files;
    Ok(plan)
}

/// Writes the rebuilt index, then deletes the index files it replaces.
pub fn repair_index(repo: &Repository, plan: &IndexRebuild) -> Result<Option<IndexId>> {
    let backend = repo.backend();
    let new = crate::index::write_index(backend.as_ref(), plan.entries.clone())?.map(|(id, _)| id);
    let keep = new.map(|id| index_key(&id));
    for key in &plan.old_index_files {
        if Some(key) != keep.as_ref() {
            backend.delete(key)?;
        }
    }
    repo.reload_index()?;
    Ok(new)
}
