//! Snapshot → restore round trip over random trees: every entry comes back with the same type,
//! content, permission bits, owner, nanosecond mtime and symlink target; sparse files stay
//! sparse; and `verify --read-data` finds nothing.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File, FileTimes};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use snapkeep::{BackupOptions, NoProgress, RestoreOptions};

/// Seconds and nanoseconds since the epoch (seconds may be negative).
type Mtime = (i64, u32);

#[derive(Clone, Debug)]
enum Content {
    Empty,
    Bytes(Vec<u8>),
    /// A pseudo-random block repeated up to `len` bytes (large, cheap to generate).
    Repeated {
        seed: u64,
        block: usize,
        len: usize,
    },
    /// `set_len(size)`, then each write at its offset: the rest are holes.
    Sparse {
        size: u64,
        writes: Vec<(u64, Vec<u8>)>,
    },
}

#[derive(Clone, Debug)]
enum Entry {
    File {
        content: Content,
        mode: u32,
        mtime: Mtime,
    },
    Dir {
        children: BTreeMap<Vec<u8>, Entry>,
        mode: u32,
        mtime: Mtime,
    },
    Symlink {
        target: Vec<u8>,
    },
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[a-z]{1,6}(\\.[a-z]{1,3})?".prop_map(String::into_bytes),
        1 => Just(b"\xff\xfe".to_vec()),
        1 => Just("Ωmega ünïcode".as_bytes().to_vec()),
        2 => prop::collection::vec(1u8..=255, 1..10).prop_map(|mut v| {
            for b in &mut v {
                if *b == b'/' {
                    *b = b'_';
                }
            }
            v
        }),
    ]
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn mtime() -> impl Strategy<Value = Mtime> {
    // 1938 .. 2065, any nanosecond: before the epoch and after 2038 included.
    (-1_000_000_000i64..3_000_000_000, 0u32..1_000_000_000)
}

fn file_mode() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![
        0o600, 0o644, 0o640, 0o755, 0o700, 0o444, 0o400, 0o4755,
    ])
}

fn dir_mode() -> impl Strategy<Value = u32> {
    // Always owner rwx, so the test can fill and clean up the directories.
    prop::sample::select(vec![0o700, 0o755, 0o750, 0o711, 0o2755, 0o1777])
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        2 => Just(Content::Empty),
        6 => prop::collection::vec(any::<u8>(), 1..3000).prop_map(Content::Bytes),
        1 => (any::<u64>(), 1usize..100_000, 100_000usize..3_000_000)
            .prop_map(|(seed, block, len)| Content::Repeated { seed, block, len }),
        2 => (1u64..16 << 20, prop::collection::vec((0.0f64..1.0, prop::collection::vec(any::<u8>(), 1..5000)), 0..4))
            .prop_map(|(size, ws)| {
                let writes = ws
                    .into_iter()
                    .map(|(f, data)| {
                        let room = size.saturating_sub(data.len() as u64);
                        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a fraction in [0, 1) of a room that fits u64")]
                        let at = (room as f64 * f) as u64;
                        (at.min(room), data)
                    })
                    .collect();
                Content::Sparse { size, writes }
            }),
    ]
}

fn symlink_target() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"../elsewhere".to_vec()),
        Just(b"dangling/no/such/file".to_vec()),
        Just(b".".to_vec()),
        "[a-z]{1,6}".prop_map(String::into_bytes),
        prop::collection::vec(1u8..=255, 1..20),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    let leaf = prop_oneof![
        6 => (content(), file_mode(), mtime())
            .prop_map(|(content, mode, mtime)| Entry::File { content, mode, mtime }),
        2 => symlink_target().prop_map(|target| Entry::Symlink { target }),
        1 => (dir_mode(), mtime()).prop_map(|(mode, mtime)| Entry::Dir {
            children: BTreeMap::new(),
            mode,
            mtime
        }),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        (
            prop::collection::btree_map(name(), inner, 0..5),
            dir_mode(),
            mtime(),
        )
            .prop_map(|(children, mode, mtime)| Entry::Dir {
                children,
                mode,
                mtime,
            })
    })
}

fn root() -> impl Strategy<Value = BTreeMap<Vec<u8>, Entry>> {
    prop::collection::btree_map(name(), entry(), 0..6)
}

fn system_time((secs, nanos): Mtime) -> SystemTime {
    let d = Duration::new(secs.unsigned_abs(), 0);
    let base = if secs >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    };
    base + Duration::from_nanos(u64::from(nanos))
}

fn bytes_of(content: &Content) -> Option<Vec<u8>> {
    match content {
        Content::Empty => Some(Vec::new()),
        Content::Bytes(b) => Some(b.clone()),
        Content::Repeated { seed, block, len } => {
            let block = common::random_bytes(*block, *seed);
            Some(block.iter().copied().cycle().take(*len).collect())
        }
        Content::Sparse { .. } => None,
    }
}

fn materialize(dir: &Path, children: &BTreeMap<Vec<u8>, Entry>) {
    for (name, e) in children {
        let path = dir.join(OsStr::from_bytes(name));
        match e {
            Entry::File {
                content,
                mode,
                mtime,
            } => {
                let f = File::create(&path).expect("create file");
                if let Some(data) = bytes_of(content) {
                    f.write_all_at(&data, 0).expect("write");
                } else if let Content::Sparse { size, writes } = content {
                    f.set_len(*size).expect("set_len");
                    for (at, data) in writes {
                        f.write_all_at(data, *at).expect("sparse write");
                    }
                }
                f.set_permissions(fs::Permissions::from_mode(*mode))
                    .expect("chmod");
                f.set_times(FileTimes::new().set_modified(system_time(*mtime)))
                    .expect("set mtime");
            }
            Entry::Symlink { target } => {
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &path).expect("symlink");
            }
            Entry::Dir {
                children,
                mode,
                mtime,
            } => {
                fs::create_dir(&path).expect("mkdir");
                materialize(&path, children);
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).expect("chmod dir");
                File::open(&path)
                    .expect("open dir")
                    .set_times(FileTimes::new().set_modified(system_time(*mtime)))
                    .expect("set dir mtime");
            }
        }
    }
}

#[derive(Default, Debug, PartialEq, Eq)]
struct Counts {
    files: u64,
    dirs: u64,
    symlinks: u64,
    bytes: u64,
}

fn count(children: &BTreeMap<Vec<u8>, Entry>, c: &mut Counts) {
    for e in children.values() {
        match e {
            Entry::File { content, .. } => {
                c.files += 1;
                c.bytes += match content {
                    Content::Sparse { size, .. } => *size,
                    other => bytes_of(other).map_or(0, |b| b.len() as u64),
                };
            }
            Entry::Symlink { .. } => c.symlinks += 1,
            Entry::Dir { children, .. } => {
                c.dirs += 1;
                count(children, c);
            }
        }
    }
}

fn sorted_names(dir: &Path) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().as_bytes().to_vec())
        .collect();
    v.sort();
    v
}

/// Compares two directory trees entry by entry (the roots themselves are not compared).
fn compare_trees(src: &Path, dst: &Path, rel: &str) {
    let names = sorted_names(src);
    assert_eq!(
        names,
        sorted_names(dst),
        "entries of '{rel}/' differ (left: source, right: restored)"
    );
    for n in names {
        let a = src.join(OsStr::from_bytes(&n));
        let b = dst.join(OsStr::from_bytes(&n));
        let shown = format!("{rel}/{}", String::from_utf8_lossy(&n));
        let ma = fs::symlink_metadata(&a).expect("stat source");
        let mb = fs::symlink_metadata(&b).expect("stat restored");
        assert_eq!(ma.file_type(), mb.file_type(), "type of {shown}");
        assert_eq!(
            format!("{:o}", ma.mode() & 0o7777),
            format!("{:o}", mb.mode() & 0o7777),
            "mode of {shown}"
        );
        assert_eq!(
            (ma.mtime(), ma.mtime_nsec()),
            (mb.mtime(), mb.mtime_nsec()),
            "mtime of {shown}"
        );
        assert_eq!(
            (ma.uid(), ma.gid()),
            (mb.uid(), mb.gid()),
            "owner of {shown}"
        );
        if ma.is_symlink() {
            assert_eq!(
                fs::read_link(&a).expect("readlink").as_os_str().as_bytes(),
                fs::read_link(&b).expect("readlink").as_os_str().as_bytes(),
                "target of {shown}"
            );
        } else if ma.is_file() {
            assert_eq!(ma.len(), mb.len(), "size of {shown}");
            let (da, db) = (fs::read(&a).expect("read"), fs::read(&b).expect("read"));
            assert!(da == db, "content of {shown} differs");
            // Holes must stay holes: no more blocks than the source, plus a little.
            assert!(
                mb.blocks() <= ma.blocks() + 64,
                "{shown}: restored file uses {} blocks, the source {} (holes filled?)",
                mb.blocks(),
                ma.blocks()
            );
        } else {
            compare_trees(&a, &b, &shown);
        }
    }
}

fn roundtrip(tree: &BTreeMap<Vec<u8>, Entry>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    fs::create_dir(&src).expect("mkdir src");
    materialize(&src, tree);
    let repo = common::small_repo(&tmp.path().join("repo"));
    let out =
        snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress).expect("snapshot");
    let mut want = Counts::default();
    count(tree, &mut want);
    let s = &out.record.summary;
    assert_eq!(s.files, want.files, "summary.files");
    assert_eq!(s.symlinks, want.symlinks, "summary.symlinks");
    assert_eq!(s.bytes, want.bytes, "summary.bytes");
    assert_eq!(s.skipped, 0);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);

    let target = tmp.path().join("restored");
    let stats = snapkeep::restore(
        &repo,
        &out.record.id,
        &target,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .expect("restore");
    assert_eq!(
        Counts {
            files: stats.files,
            dirs: stats.dirs,
            symlinks: stats.symlinks,
            bytes: stats.bytes
        },
        want,
        "restore stats"
    );
    compare_trees(&src, &target, "");

    let report = common::verify_read_data(&repo);
    assert!(report.ok(), "verify: {:?}", report.findings);
    assert_eq!(report.files, want.files);

    // An incremental snapshot that may reuse every settled entry yields the same tree.
    let parent = common::later_parent(&repo, &out.record, 10);
    let again = snapkeep::snapshot(
        &repo,
        &src,
        &BackupOptions {
            parent: Some(parent),
            ..BackupOptions::default()
        },
        &NoProgress,
    )
    .expect("incremental snapshot");
    assert_eq!(again.record.tree, out.record.tree, "reuse changed the tree");
    assert_eq!(again.record.summary.bytes, want.bytes);
    assert_eq!(again.record.summary.new_bytes, 0);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 20,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_trees_round_trip(tree in root()) {
        roundtrip(&tree);
    }
}

/// A file with a big hole, deterministic: restored sparse, not 64 MiB of zeros on disk.
#[test]
fn big_hole_stays_a_hole() {
    let mut tree = BTreeMap::new();
    tree.insert(
        b"sparse.db".to_vec(),
        Entry::File {
            content: Content::Sparse {
                size: 64 << 20,
                writes: vec![
                    (0, b"header".to_vec()),
                    (40 << 20, vec![7u8; 10_000]),
                    ((64 << 20) - 3, b"end".to_vec()),
                ],
            },
            mode: 0o640,
            mtime: (1_700_000_000, 123_456_789),
        },
    );
    tree.insert(
        b"all-hole".to_vec(),
        Entry::File {
            content: Content::Sparse {
                size: 5 << 20,
                writes: Vec::new(),
            },
            mode: 0o600,
            mtime: (-86_400, 1),
        },
    );
    roundtrip(&tree);

    // And check the allocation directly, independent of the comparison above.
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    materialize(&src, &tree);
    let repo = common::small_repo(&tmp.path().join("repo"));
    let id = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("snapshot")
        .record
        .id;
    let rec = repo.load_snapshot(&id).expect("record");
    assert!(
        rec.summary.data_bytes < 1 << 20,
        "holes were read as data: {} data bytes",
        rec.summary.data_bytes
    );
    let target = tmp.path().join("out");
    snapkeep::restore(&repo, &id, &target, &RestoreOptions::default(), &NoProgress)
        .expect("restore");
    let m = fs::metadata(target.join("sparse.db")).expect("stat");
    assert_eq!(m.len(), 64 << 20);
    assert!(
        m.blocks() * 512 < 4 << 20,
        "restored sparse file allocates {} bytes",
        m.blocks() * 512
    );
    let m = fs::metadata(target.join("all-hole")).expect("stat");
    assert_eq!(m.len(), 5 << 20);
    assert!(
        m.blocks() * 512 < 64 << 10,
        "an all-hole file got data blocks"
    );
}

/// A file longer than one read window (32 MiB): the window seam must not move cut points or
/// lose bytes, and the restored file must be identical.
#[test]
fn file_larger_than_a_read_window() {
    use snapkeep::chunker::Chunker;
    use snapkeep::format::manifest::NodeKind;

    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    // Period not a power of two, so chunks do not line up with window boundaries.
    let block = common::random_bytes(1_000_003, 5);
    let data: Vec<u8> = block.iter().copied().cycle().take(40 << 20).collect();
    common::write_file(&src.join("big.sst"), &data);
    let repo = common::small_repo(&tmp.path().join("repo"));
    let rec = snapkeep::snapshot(&repo, &src, &BackupOptions::default(), &NoProgress)
        .expect("snapshot")
        .record;
    let tree = repo.load_tree(&rec.tree).expect("tree");
    let NodeKind::File { chunks, .. } = &tree.nodes[0].kind else {
        panic!("not a file");
    };
    let got: Vec<usize> = chunks.iter().map(|c| c.len as usize).collect();
    let want = Chunker::new(&repo.config().chunker)
        .expect("chunker")
        .cut_all(&data);
    assert_eq!(
        got.len(),
        want.len(),
        "chunk count differs from whole-buffer cutting"
    );
    assert!(got == want, "window seams moved cut points");
    assert!(
        rec.summary.new_bytes < 4 << 20,
        "repeated content was not deduplicated: {} new bytes",
        rec.summary.new_bytes
    );
    let target = tmp.path().join("out");
    snapkeep::restore(
        &repo,
        &rec.id,
        &target,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .expect("restore");
    assert!(
        fs::read(target.join("big.sst")).expect("read") == data,
        "content differs"
    );
}
