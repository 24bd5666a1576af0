//! Trees and snapshot records.
//!
//! A tree is one directory: its entries sorted by raw name bytes, unique, each a single path
//! component. Trees are blobs (kind `Tree`) in packs; their id is the blake3 of the encoded
//! bytes `"SKTREE" | version u16 LE | postcard(Tree)`, so an unchanged directory yields the
//! same id. A snapshot record is a framed object (magic `SKSNAPSH`) at `snapshots/<uuid>`
//! holding postcard of [`SnapshotRecord`], then optional sections (each postcard of a
//! `(tag u32, bytes)` pair: [`SECTION_ROOT`] is the top directory's [`DirMeta`]); it is the
//! last object a snapshot writes. A reader skips a section whose tag it does not know, unless
//! the tag has [`SECTION_REQUIRED`] set: then the record is refused as written by a newer
//! version.

use serde::{Deserialize, Serialize};

use super::{decode, encode, frame, unframe};
use crate::error::{Error, Result};
use crate::id::{ChunkId, SnapshotId, TreeId};

const TREE_MAGIC: &[u8; 6] = b"SKTREE";
/// Tree encoding version.
pub const TREE_VERSION: u16 = 1;
const SNAPSHOT_MAGIC: &[u8; 8] = b"SKSNAPSH";
/// Snapshot record version.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Record section: the snapshot's top directory ([`DirMeta`]).
pub const SECTION_ROOT: u32 = 1;
/// Record section: the exclude patterns of a one-directory snapshot ([`ExcludeRules`]).
pub const SECTION_EXCLUDES: u32 = 2;
/// Record section: the snapshot this one is a copy of ([`Original`]), written by `copy`.
pub const SECTION_ORIGINAL: u32 = 3;
/// Set in a section tag that a reader must understand to use the record.
pub const SECTION_REQUIRED: u32 = 1 << 31;

/// A hole in a sparse file: `len` zero bytes at `offset` that are not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
}

/// A reference to one chunk of file content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: ChunkId,
    pub len: u32,
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// A regular file: the data outside `holes`, in order, is the concatenation of `chunks`.
    File {
        crc32: u32,
        chunks: Vec<ChunkRef>,
        holes: Vec<Extent>,
    },
    /// A directory and the id of its tree.
    Dir { tree: TreeId },
    /// A symbolic link and its raw target.
    Symlink { target: Vec<u8> },
}

/// Node flag: the file changed while it was read (its content may be torn).
pub const FLAG_CHANGED_DURING_READ: u32 = 1;
/// Node flag: the file failed a format stage as captured (kept by `--allow-inconsistent`).
pub const FLAG_STAGE_FAILED: u32 = 2;
/// Record flag: the snapshot holds files that failed a format stage.
pub const FLAG_INCONSISTENT: u32 = 1;

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Raw name bytes (non-UTF-8 names survive); one path component.
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits and set-id bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the Unix epoch (for change detection).
    pub ctime_ns: i64,
    /// Inode number at capture (for change detection).
    pub inode: u64,
    /// Logical size in bytes (files: including holes; symlinks: target length; dirs: 0).
    pub size: u64,
    /// `FLAG_*` bits.
    pub flags: u32,
}

impl Node {
    /// Whether the name is a single safe path component.
    #[must_use]
    pub fn name_is_safe(name: &[u8]) -> bool {
        !name.is_empty()
            && name != b"."
            && name != b".."
            && !name.contains(&b'/')
            && !name.contains(&0)
    }
}

/// One directory's entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Encoded bytes (what the tree id hashes). Sorts entries by name first.
    #[must_use]
    pub fn to_bytes(&mut self) -> Vec<u8> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = Vec::with_capacity(64 + self.nodes.len() * 96);
        out.extend_from_slice(TREE_MAGIC);
        out.extend_from_slice(&TREE_VERSION.to_le_bytes());
        out.extend_from_slice(&encode(self));
        out
    }

    /// Decodes a tree and checks its invariants (sorted, unique names; restore checks that
    /// each name is a safe single component).
    pub fn from_bytes(b: &[u8], id: &TreeId) -> Result<Self> {
        let object = format!("tree {}", id.short());
        if b.len() < 8 || &b[..6] != TREE_MAGIC {
            return Err(Error::corrupt(&object, "not a tree (magic missing)"));
        }
        let version = u16::from_le_bytes([b[6], b[7]]);
        if version != TREE_VERSION {
            return Err(Error::UnsupportedFormat {
                object,
                found: u32::from(version),
                supported: u32::from(TREE_VERSION),
            });
        }
        let tree: Tree = decode(&b[8..], &object)?;
        for w in tree.nodes.windows(2) {
            if w[0].name >= w[1].name {
                return Err(Error::corrupt(&object, "entries not sorted or not unique"));
            }
        }
        Ok(tree)
    }
}

/// Counters of one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Entries skipped (fifos, sockets, devices, unreadable): counted and reported.
    pub skipped: u64,
    /// Logical bytes of all files (including holes).
    pub bytes: u64,
    /// Bytes actually read and chunked (files minus holes).
    pub data_bytes: u64,
    /// Bytes of chunks that were not already stored (before compression).
    pub new_bytes: u64,
    /// Bytes written to the repository (packs, index, record).
    pub stored_bytes: u64,
    pub new_chunks: u64,
    pub chunks: u64,
    /// Files whose content changed while being read.
    pub changed_during_read: u64,
    /// Files reused from the parent snapshot without being read (metadata unchanged).
    pub unchanged_files: u64,
    /// Files captured into a private copy for format stages.
    pub stage_files: u64,
    /// Bytes checked by format stages (captured bytes of changed staged files).
    pub stage_bytes: u64,
    /// Files that failed a format stage and were kept (`allow_inconsistent`).
    pub inconsistent_files: u64,
    pub duration_ns: u64,
}

/// The record of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub id: SnapshotId,
    /// Start time, nanoseconds since the Unix epoch (UTC).
    pub time_ns: i64,
    pub host: String,
    /// Absolute source paths.
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub parent: Option<SnapshotId>,
    pub tree: TreeId,
    pub summary: Summary,
    /// Version of the program that wrote it.
    pub program: String,
    /// Verification stages run on the captured files.
    pub stages: Vec<String>,
    /// `FLAG_INCONSISTENT` and future record flags.
    pub flags: u32,
    /// The source directory's own mode, owner and mtime (restore gives them to the target's
    /// top directory). Encoded as section [`SECTION_ROOT`] after the other fields, only when
    /// present: a record without it keeps its exact version-1 bytes, and a reader that does
    /// not know the section skips it.
    #[serde(skip)]
    pub root: Option<DirMeta>,
    /// The patterns that left entries of the (one) source directory out: an in-place restore
    /// keeps what they match instead of deleting it. Section [`SECTION_EXCLUDES`], written
    /// only when there are patterns.
    #[serde(skip)]
    pub excludes: Option<ExcludeRules>,
    /// The snapshot this record copies (section [`SECTION_ORIGINAL`], only in copies): its id
    /// and repository, the first one's when a copy is copied again.
    #[serde(skip)]
    pub original: Option<Original>,
}

/// Where a copied snapshot came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Original {
    /// The snapshot's id in the repository it was made in.
    pub id: SnapshotId,
    /// That repository's id.
    pub repo: [u8; 16],
}

/// Exclude patterns as the snapshot applied them (restic's rules, see `backup::exclude`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExcludeRules {
    /// Case-sensitive patterns (the database layout's own, then `--exclude`).
    pub patterns: Vec<String>,
    /// Case-insensitive patterns (`--iexclude`).
    pub ipatterns: Vec<String>,
}

/// The metadata of a snapshot's top directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirMeta {
    /// `st_mode & 0o7777`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
}

impl SnapshotRecord {
    /// The framed object.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut payload = encode(self);
        if let Some(root) = &self.root {
            payload.extend_from_slice(&encode(&(SECTION_ROOT, encode(root))));
        }
        if let Some(ex) = &self.excludes {
            payload.extend_from_slice(&encode(&(SECTION_EXCLUDES, encode(ex))));
        }
        if let Some(o) = &self.original {
            payload.extend_from_slice(&encode(&(SECTION_ORIGINAL, encode(o))));
        }
        frame(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, &payload)
    }

    /// Decodes and checks a framed record stored under `id`.
    pub fn from_bytes(b: &[u8], id: &SnapshotId) -> Result<Self> {
        let object = format!("snapshot record {id}");
        let payload = unframe(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, b, &object)?;
        let (mut rec, mut rest): (SnapshotRecord, &[u8]) = postcard::take_from_bytes(payload)
            .map_err(|e| Error::corrupt(&object, format!("cannot decode: {e}")))?;
        while !rest.is_empty() {
            let ((tag, body), next): ((u32, Vec<u8>), &[u8]) = postcard::take_from_bytes(rest)
                .map_err(|e| Error::corrupt(&object, format!("cannot decode a section: {e}")))?;
            rest = next;
            match tag {
                SECTION_ROOT => {
                    rec.root = Some(decode(&body, &format!("{object} (its top directory)"))?);
                }
                SECTION_EXCLUDES => {
                    rec.excludes = Some(decode(&body, &format!("{object} (its excludes)"))?);
                }
                SECTION_ORIGINAL => {
                    rec.original = Some(decode(&body, &format!("{object} (its original)"))?);
                }
                t if t & SECTION_REQUIRED != 0 => {
                    return Err(Error::InvalidInput(format!(
                        "{object} holds a section (tag {t:#x}) this version of snapkeep does not \
                         know; read it with a newer snapkeep"
                    )));
                }
                _ => {}
            }
        }
        if rec.id != *id {
            return Err(Error::corrupt(
                &object,
                format!("record names snapshot {}", rec.id),
            ));
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &[u8]) -> Node {
        Node {
            name: name.to_vec(),
            kind: NodeKind::Symlink {
                target: b"t".to_vec(),
            },
            mode: 0o777,
            uid: 0,
            gid: 0,
            mtime_ns: 1,
            ctime_ns: 1,
            inode: 1,
            size: 1,
            flags: 0,
        }
    }

    fn record(root: Option<DirMeta>) -> SnapshotRecord {
        SnapshotRecord {
            id: uuid::Uuid::now_v7(),
            time_ns: 7,
            host: "h".into(),
            paths: vec!["/src".into()],
            tags: vec![],
            parent: None,
            tree: TreeId::of(b"t"),
            summary: Summary::default(),
            program: "p".into(),
            stages: vec![],
            flags: 0,
            root,
            excludes: None,
            original: None,
        }
    }

    #[test]
    fn record_root_is_a_trailing_section_old_readers_skip() {
        let root = DirMeta {
            mode: 0o750,
            uid: 1,
            gid: 2,
            mtime_ns: -3,
        };
        let with = record(Some(root));
        let b = with.to_bytes();
        assert_eq!(
            SnapshotRecord::from_bytes(&b, &with.id).expect("decode"),
            with
        );
        // Without a root the payload is the version-1 layout, byte for byte.
        let mut without = with.clone();
        without.root = None;
        let b1 = without.to_bytes();
        assert!(b1.len() < b.len());
        assert_eq!(
            SnapshotRecord::from_bytes(&b1, &with.id).expect("decode"),
            without
        );
        // A reader that knows only the version-1 fields decodes the longer payload too.
        let payload = unframe(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, &b, "r").expect("frame");
        let old: SnapshotRecord = decode(payload, "r").expect("old reader");
        assert_eq!(old, without);
        // The excludes section round-trips too.
        let mut ex = with.clone();
        ex.excludes = Some(ExcludeRules {
            patterns: vec!["*.log".into()],
            ipatterns: vec![],
        });
        assert_eq!(
            SnapshotRecord::from_bytes(&ex.to_bytes(), &ex.id).expect("decode"),
            ex
        );
        // The section is tag 1, its length, then postcard of the DirMeta: golden bytes.
        let tail = &payload[payload.len() - 7..];
        assert_eq!(tail, &[1, 5, 0xe8, 0x03, 1, 2, 5][..]);
    }

    #[test]
    fn record_sections_unknown_skipped_required_refused() {
        let rec = record(None);
        let with_section = |tag: u32| {
            let mut payload = encode(&rec);
            payload.extend_from_slice(&encode(&(tag, vec![9u8, 9, 9])));
            frame(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, &payload)
        };
        // A section a later version adds and this one does not know: skipped.
        assert_eq!(
            SnapshotRecord::from_bytes(&with_section(77), &rec.id).expect("skip"),
            rec
        );
        // One that must be understood: refused, naming the record.
        let err = SnapshotRecord::from_bytes(&with_section(SECTION_REQUIRED | 2), &rec.id)
            .expect_err("required section");
        assert!(err.to_string().contains("newer snapkeep"), "{err}");
        // A truncated section is damage.
        let mut payload = encode(&rec);
        payload.extend_from_slice(&encode(&(77u32, vec![9u8, 9, 9])));
        payload.pop();
        let b = frame(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, &payload);
        let err = SnapshotRecord::from_bytes(&b, &rec.id).expect_err("truncated section");
        assert!(err.to_string().contains("section"), "{err}");
    }

    #[test]
    fn tree_sorted_roundtrip_and_rejects_duplicates() {
        let mut t = Tree {
            nodes: vec![node(b"b"), node(b"a\xff")],
        };
        let bytes = t.to_bytes();
        let id = TreeId::of(&bytes);
        let back = Tree::from_bytes(&bytes, &id).expect("decode");
        assert_eq!(back.nodes[0].name, b"a\xff");
        let dup = Tree {
            nodes: vec![node(b"a"), node(b"a")],
        };
        let mut raw = TREE_MAGIC.to_vec();
        raw.extend_from_slice(&TREE_VERSION.to_le_bytes());
        raw.extend_from_slice(&encode(&dup));
        assert!(Tree::from_bytes(&raw, &id).is_err());
        assert!(Tree::from_bytes(&bytes[..bytes.len() - 3], &id).is_err());
    }

    #[test]
    fn unsafe_names() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc", b"a\0b"] {
            assert!(!Node::name_is_safe(bad), "{bad:?}");
        }
        assert!(Node::name_is_safe(b"ok\xfe"));
    }
}
