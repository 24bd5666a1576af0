//! Tree objects: the input is the stored bytes of a tree blob (`"SKTREE" | version | postcard`),
//! decoded with its own id as `Tree::from_bytes(bytes, &TreeId::of(bytes))`; an input without
//! the tree magic is also decoded behind a valid magic and version, so postcard decoding is
//! exercised either way. On success: name safety of every node and its extents, as restore
//! checks them. Round trip: `to_bytes` -> `from_bytes` gives the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapkeep::format::manifest::{Node, NodeKind, TREE_VERSION, Tree};
use snapkeep::id::TreeId;

const MAGIC: &[u8; 6] = b"SKTREE";

fn check(bytes: &[u8]) {
    let Ok(tree) = Tree::from_bytes(bytes, &TreeId::of(bytes)) else {
        return;
    };
    for w in tree.nodes.windows(2) {
        assert!(
            w[0].name < w[1].name,
            "decoded tree is not sorted and unique"
        );
    }
    for node in &tree.nodes {
        let _ = Node::name_is_safe(&node.name);
        if let NodeKind::File { chunks, holes, .. } = &node.kind {
            // Restore lays the chunks out around the holes; the sums must not overflow.
            let data: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
            let _ = holes.iter().try_fold(data, |acc, h| {
                h.offset.checked_add(h.len)?;
                acc.checked_add(h.len)
            });
        }
    }
    let mut copy = tree.clone();
    let encoded = copy.to_bytes();
    let back = Tree::from_bytes(&encoded, &TreeId::of(&encoded)).expect("re-encoded tree");
    assert_eq!(back, tree);
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if !data.starts_with(MAGIC) {
        let mut framed = Vec::with_capacity(data.len() + 8);
        framed.extend_from_slice(MAGIC);
        framed.extend_from_slice(&TREE_VERSION.to_le_bytes());
        framed.extend_from_slice(data);
        check(&framed);
    }
});
