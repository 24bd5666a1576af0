//! Writes seed inputs for every fuzz target into `<CORPUS>/<target>/`: valid encodings made by
//! the crate's own encoders, so the fuzzer starts from inputs that pass the magic, size and
//! checksum checks and mutates from there. Usage: `gen_seeds CORPUS_DIR`.
//!
//! The pack, index, tree, snapshot record and config seeds come from two real snapshots of a
//! small directory into an in-memory repository, the locks from the library's own lock
//! functions; marks and a few edge cases (empty index, empty pack, a tree with every node
//! kind) are built directly.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use snapkeep::backend::{Backend, MemoryBackend};
use snapkeep::chunker::ChunkerParams;
use snapkeep::codec::Codec;
use snapkeep::format::gc::{MarkRecord, MarkedPack};
use snapkeep::format::index_file::{self, BlobLocation};
use snapkeep::format::manifest::{ChunkRef, Extent, Node, NodeKind, Tree};
use snapkeep::format::pack::{BlobCompression, BlobKind, HEADER, encode_trailer};
use snapkeep::format::repo_config::RepoConfig;
use snapkeep::format::{FRAME_OVERHEAD, REPO_FORMAT_VERSION};
use snapkeep::lock;
use snapkeep::pack::{location, read_blob, read_pack_entries};
use snapkeep::repository::{InitOptions, Repository};
use snapkeep::{BackupOptions, BlobId, ChunkId, Compression, NoProgress, PackId, TreeId};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Seeds {
    root: PathBuf,
    written: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) -> Res<()> {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        self.written += 1;
        Ok(())
    }

    /// A framed object both whole (the stored form) and as its payload (what the harness
    /// frames itself).
    fn put_framed(&mut self, target: &str, name: &str, bytes: &[u8]) -> Res<()> {
        assert!(bytes.len() >= FRAME_OVERHEAD);
        self.put(target, &format!("{name}-stored"), bytes)?;
        self.put(
            target,
            &format!("{name}-payload"),
            &bytes[12..bytes.len() - 32],
        )
    }
}

/// Deterministic incompressible bytes (xorshift).
fn noise(len: usize, mut x: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn write_source(dir: &Path) -> Res<()> {
    std::fs::create_dir_all(dir.join("sub"))?;
    let text = "line: the quick brown fox jumps over the lazy dog\n".repeat(300);
    std::fs::write(dir.join("notes.txt"), text)?;
    std::fs::write(dir.join("random.bin"), noise(20_000, 0x9e37_79b9_7f4a_7c15))?;
    std::fs::write(dir.join("empty"), b"")?;
    std::fs::write(dir.join("sub/inner.log"), b"inner\n")?;
    std::os::unix::fs::symlink("notes.txt", dir.join("link"))?;
    // Sparse where the filesystem supports it: a hole, then data.
    let mut f = std::fs::File::create(dir.join("sparse.db"))?;
    f.set_len(64 * 1024)?;
    f.seek(SeekFrom::End(0))?;
    f.write_all(&noise(3000, 3))?;
    Ok(())
}

fn from_repository(seeds: &mut Seeds, scratch: &Path) -> Res<()> {
    let src = scratch.join("source");
    write_source(&src)?;
    let backend = Arc::new(MemoryBackend::new());
    let opts = InitOptions {
        chunker: ChunkerParams::with_avg(4096)?,
        compression: Compression::Zstd(3),
        pack_size: RepoConfig::MIN_PACK_SIZE,
        ..InitOptions::default()
    };
    let repo = Repository::init(backend.clone(), &opts)?;
    snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)?;
    std::fs::write(src.join("sub/inner.log"), b"inner, changed\n")?;
    std::fs::write(src.join("new.bin"), noise(9_000, 7))?;
    snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)?;

    // Locks as the library writes them: a job lock that saw a mark, and the prune lock.
    let mark = MarkRecord {
        marked_ns: 1_700_000_000_000_000_000,
        packs: vec![MarkedPack {
            id: PackId::of(b"marked"),
            size: 4096,
        }],
    };
    let dynb: Arc<dyn Backend> = backend.clone();
    dynb.put("marks/0190a1b2c3d47e5f8a9b0c1d2e3f4a5b", &mark.to_bytes())?;
    let job = lock::acquire_job(&dynb, "snapshot")?;
    seeds.put_framed("gc_objects", "lock-job", &job.record().to_bytes())?;
    drop(job);
    let prune = lock::acquire_prune(&dynb, Duration::from_hours(1), &mut Vec::new())?;
    seeds.put_framed("gc_objects", "lock-prune", &prune.record().to_bytes())?;
    drop(prune);

    for (n, obj) in backend.list("")?.iter().enumerate() {
        let bytes = backend.get(&obj.key)?;
        let key = &obj.key;
        if key == "config" {
            seeds.put_framed("repo_config", "repo", &bytes)?;
        } else if key.starts_with("snapshots/") {
            seeds.put_framed("snapshot_record", &format!("repo-{n}"), &bytes)?;
        } else if key.starts_with("index/") {
            seeds.put("index_file", &format!("repo-{n}"), &bytes)?;
        } else if let Some(hex) = key.strip_prefix("data/").and_then(|k| k.split('/').nth(1)) {
            seeds.put("pack_trailer", &format!("repo-{n}"), &bytes)?;
            let id: PackId = hex.parse()?;
            for (i, e) in read_pack_entries(backend.as_ref(), &Codec::Plain, &id, obj.size)?
                .iter()
                .enumerate()
            {
                if e.kind == BlobKind::Tree {
                    let tree = read_blob(backend.as_ref(), &Codec::Plain, &e.id, &location(id, e))?;
                    seeds.put("tree", &format!("repo-{n}-{i}"), &tree)?;
                }
            }
        }
    }
    Ok(())
}

fn node(name: &[u8], kind: NodeKind, size: u64) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        mtime_ns: 1_700_000_000_000_000_000,
        ctime_ns: 1_700_000_000_000_000_001,
        inode: 42,
        size,
        flags: 0,
    }
}

fn built(seeds: &mut Seeds) -> Res<()> {
    // A tree with every node kind, holes and several chunks.
    let mut tree = Tree {
        nodes: vec![
            node(
                b"data.sst",
                NodeKind::File {
                    crc32: 0xdead_beef,
                    chunks: vec![
                        ChunkRef {
                            id: ChunkId::of(b"one"),
                            len: 4096,
                        },
                        ChunkRef {
                            id: ChunkId::of(b"two"),
                            len: 100,
                        },
                    ],
                    holes: vec![Extent {
                        offset: 4096,
                        len: 8192,
                    }],
                },
                4096 + 8192 + 100,
            ),
            node(
                b"dir",
                NodeKind::Dir {
                    tree: TreeId::of(b"subtree"),
                },
                0,
            ),
            node(
                b"link\xff",
                NodeKind::Symlink {
                    target: b"../target".to_vec(),
                },
                9,
            ),
        ],
    };
    seeds.put("tree", "all-kinds", &tree.to_bytes())?;
    seeds.put("tree", "empty", &Tree::default().to_bytes())?;

    // Index files: empty, and 300 entries over 3 packs.
    seeds.put("index_file", "empty", &index_file::encode(Vec::new()))?;
    let entries = (0..300u32)
        .map(|n| {
            let loc = BlobLocation {
                pack: PackId::of(&[(n % 3) as u8]),
                kind: if n % 7 == 0 {
                    BlobKind::Tree
                } else {
                    BlobKind::Data
                },
                compression: if n % 2 == 0 {
                    BlobCompression::Zstd
                } else {
                    BlobCompression::Raw
                },
                offset: 8 + n * 100,
                length: 100,
                raw_length: 100 + n % 2 * 50,
            };
            (BlobId::of(&n.to_le_bytes()), loc)
        })
        .collect();
    seeds.put("index_file", "300", &index_file::encode(entries))?;

    // A pack with no blobs, and one whose entries are raw blobs.
    let mut empty = HEADER.to_vec();
    empty.extend_from_slice(&encode_trailer(&[], 8));
    seeds.put("pack_trailer", "empty", &empty)?;
    let mut pack = HEADER.to_vec();
    let mut pentries = Vec::new();
    for blob in [&b"alpha"[..], b"", b"gamma gamma"] {
        pentries.push(snapkeep::format::pack::PackEntry {
            id: BlobId::of(blob),
            kind: BlobKind::Data,
            compression: BlobCompression::Raw,
            offset: u32::try_from(pack.len())?,
            length: u32::try_from(blob.len())?,
            raw_length: u32::try_from(blob.len())?,
        });
        pack.extend_from_slice(blob);
    }
    let off = u32::try_from(pack.len())?;
    pack.extend_from_slice(&encode_trailer(&pentries, off));
    seeds.put("pack_trailer", "raw", &pack)?;

    // Config with the defaults.
    let cfg = RepoConfig {
        version: REPO_FORMAT_VERSION,
        id: [7; 16],
        chunker: ChunkerParams::default(),
        compression: Compression::Off,
        pack_size: RepoConfig::DEFAULT_PACK_SIZE,
    };
    seeds.put_framed("repo_config", "default", &cfg.to_bytes())?;

    // Marks (locks come from a live repository, see `from_repository`).
    let m = MarkRecord {
        marked_ns: 1_700_000_000_000_000_000,
        packs: vec![
            MarkedPack {
                id: PackId::of(b"p1"),
                size: 33_554_432,
            },
            MarkedPack {
                id: PackId::of(b"p2"),
                size: 1234,
            },
        ],
    };
    seeds.put_framed("gc_objects", "mark", &m.to_bytes())?;
    let empty_mark = MarkRecord {
        marked_ns: 0,
        packs: Vec::new(),
    };
    seeds.put_framed("gc_objects", "mark-empty", &empty_mark.to_bytes())?;

    // The sealed formats: a key file (low Argon2id parameters, so each run is quick) and a
    // sealed object.
    let master = snapkeep::crypto::MasterKey::from_bytes(&[7; 32]);
    let low = snapkeep::crypto::KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };
    let key = snapkeep::crypto::KeyFile::create(&master, b"pw", low, "seeds", 1)?;
    seeds.put("sealed", "keyfile", &key.to_bytes())?;
    let sealed = master
        .keys(snapkeep::crypto::Scheme::DEFAULT, &[1; 16])
        .seal(
            snapkeep::crypto::SealKind::DataBlob,
            b"name",
            b"a sealed object",
        )?;
    seeds.put("sealed", "object", &sealed)?;
    Ok(())
}

fn main() -> Res<()> {
    let root = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .ok_or("usage: gen_seeds CORPUS_DIR")?,
    );
    let scratch = std::env::temp_dir().join(format!("snapkeep-fuzz-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut seeds = Seeds { root, written: 0 };
    let result = from_repository(&mut seeds, &scratch).and_then(|()| built(&mut seeds));
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    println!(
        "wrote {} seeds under {}",
        seeds.written,
        seeds.root.display()
    );
    Ok(())
}
