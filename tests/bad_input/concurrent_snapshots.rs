//! Two snapshot processes into one repository at once.

use crate::common;
use crate::harness::{
    Entry, Running, Tree, User, code, json_of, spawn, stderr_of, tree_of, utf8, with_baseline,
    write,
};

#[test]
fn concurrent_snapshots_both_commit_and_prune_leaves_shared_data_once() {
    let (sb, repo, base_id, base_tree) = with_baseline();

    let shared = common::random_bytes(1 << 20, 555);
    let own_len = 300_000usize;
    let mut sources = Vec::new();
    for (i, seed) in [(0u8, 600u64), (1, 601)] {
        let src = sb.path(&format!("src{i}"));
        write(&src.join("shared.bin"), &shared);
        write(
            &src.join(format!("own{i}.bin")),
            &common::random_bytes(own_len, seed),
        );
        sources.push(src);
    }
    let expected: Vec<Tree> = sources.iter().map(|s| tree_of(s)).collect();
    let running: Vec<Running> = sources
        .iter()
        .map(|s| {
            spawn(
                sb.cmd(User::Root, &repo, &["--json", "snapshot", utf8(s)]),
                &format!("concurrent snapshot of {}", s.display()),
            )
        })
        .collect();
    let mut ids = Vec::new();
    for r in running {
        let out = r.finish();
        assert_eq!(code(&out), 0, "concurrent snapshot: {}", stderr_of(&out));
        let v = json_of(&out, "snapshot");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    let before = sb.json(User::Root, &repo, &["stats"]);
    eprintln!("stats after the concurrent snapshots: {before}");
    let listed = sb.json(User::Root, &repo, &["list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");

    sb.json(User::Root, &repo, &["prune", "--grace", "0"]);
    let stats = sb.json(User::Root, &repo, &["stats"]);
    eprintln!("stats after prune --grace 0: {stats}");
    assert_eq!(stats["reclaimable_bytes"], 0, "{stats}");
    let base_bytes: u64 = base_tree
        .values()
        .map(|e| match e {
            Entry::File(b) => b.len() as u64,
            _ => 0,
        })
        .sum();
    let distinct = base_bytes + shared.len() as u64 + 2 * own_len as u64;
    assert_eq!(stats["unique_bytes"], distinct, "{stats}");
    let pack_bytes = stats["repository_pack_bytes"]
        .as_u64()
        .expect("repository_pack_bytes");
    assert!(
        pack_bytes >= distinct && pack_bytes <= distinct + (64 << 10),
        "packs hold {pack_bytes} bytes for {distinct} distinct (incompressible) bytes: \
         shared data is stored more than once after prune: {stats}"
    );
    sb.assert_intact(
        User::Root,
        &repo,
        &[
            (&base_id, &base_tree),
            (&ids[0], &expected[0]),
            (&ids[1], &expected[1]),
        ],
    );
}
