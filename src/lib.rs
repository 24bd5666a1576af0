//! snapkeep: a content-addressed, incremental snapshot engine for database data directories.
//!
//! ```text
//! source dir ──walk──▶ files ──read (holes skipped)──▶ FastCDC cut points ──▶ blake3 + CRC32
//!     per chunk (rayon) ──▶ dedup (index + in-flight) ──▶ zstd ──▶ pack writer ──▶ Backend
//! trees (one per directory, content-addressed) ──▶ index file ──▶ snapshot record (commit)
//! ```
//!
//! A snapshot is a tree of directory objects whose files reference deduplicated chunks stored
//! in packs; the index maps chunk ids to pack locations and is memory-mapped. Every object is
//! checked against its id when read.
//!
//! ```
//! use snapkeep::{BackupOptions, InitOptions, NoProgress, Repository, RestoreOptions};
//! # fn main() -> snapkeep::Result<()> {
//! let tmp = tempfile::tempdir().unwrap();
//! let src = tmp.path().join("data");
//! std::fs::create_dir(&src).unwrap();
//! std::fs::write(src.join("table.sst"), b"some bytes").unwrap();
//!
//! let repo = Repository::init_local(&tmp.path().join("repo"), &InitOptions::default())?;
//! let snap = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)?;
//! let target = tmp.path().join("restored");
//! snapkeep::restore(&repo, &snap.record.id, &target, &RestoreOptions::default(), &NoProgress)?;
//! assert_eq!(std::fs::read(target.join("table.sst")).unwrap(), b"some bytes");
//! let report = snapkeep::verify(&repo, &snapkeep::VerifyOptions { read_data: true, ..Default::default() }, &NoProgress)?;
//! assert!(report.ok());
//! # Ok(()) }
//! ```

pub mod backend;
pub mod backup;
pub mod chunker;
pub mod clock;
pub mod codec;
pub mod commit;
pub mod content;
pub mod copy;
pub mod crypto;
pub mod error;
pub(crate) mod exclude;
pub mod format;
pub mod gc;
pub mod hasher;
pub mod id;
pub mod index;
pub mod job;
pub mod keyring;
pub mod lock;
mod mmap;
pub mod pack;
pub mod progress;
pub use gc as prune;
pub mod repair;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod select;
pub mod source;
pub mod stage;
pub mod units;
pub mod verify;
pub mod walk;

pub use backup::{BackupOptions, BackupOutcome, snapshot};
pub use copy::{CopyReport, copy_snapshots};
pub use error::{Error, Result};
pub use format::manifest::{SnapshotRecord, Summary};
pub use format::repo_config::Compression;
pub use id::{BlobId, ChunkId, IndexId, PackId, SnapshotId, TreeId};
pub use job::{JobHandle, JobKind, JobOutcome, JobState, SnapshotCoordinator};
pub use progress::{NoProgress, Phase, Progress};
pub use repository::{Encryption, InitOptions, Repository, Unlocked};
pub use restore::{PreviewEntry, RestoreOptions, RestorePreview, RestoreStats, restore};
pub use select::{SnapshotFilter, SnapshotSpec, short_id};
pub use verify::{Finding, VerifyOptions, VerifyReport, verify};
