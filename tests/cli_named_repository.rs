//! A named location without a repository is never created by a snapshot, on every backend
//! (issue #19, item 5): a local path that does not exist and an S3 prefix without `config`
//! both give exit 2 (also with `--dry-run`) and an error naming the location and the `init` command that creates it;
//! after that `init`, the snapshot works. The S3 case runs against the test server
//! (`SNAPKEEP_TEST_S3_ENDPOINT`, see tests/common/s3.rs).

mod common;

use common::s3::targets;

#[test]
fn snapshot_into_a_named_location_without_a_repository_is_refused() {
    for target in targets("snapshot_into_a_named_location_without_a_repository_is_refused") {
        let t = target.fresh("named");
        let src = t.path("src");
        common::write_file(&src.join("f"), b"data");
        let src = src.to_str().expect("utf-8");
        let what = format!("[{}] snapshot into {}", target.name(), t.repo);
        let out = t.cli(&["snapshot", src]);
        common::assert_exit(&out, 2, &what);
        let err = common::stderr_of(&out);
        let init = format!("snapkeep init --repo {}", t.repo);
        assert!(err.contains(&init), "{what}: no '{init}' in: {err}");
        assert!(out.stdout.is_empty(), "{what}: stdout {:?}", out.stdout);
        // A dry run is refused the same way (it would not have told the typo).
        let out = t.cli(&["snapshot", "--dry-run", src]);
        common::assert_exit(&out, 2, &format!("{what} --dry-run"));
        assert!(common::stderr_of(&out).contains(&init), "{what} --dry-run");
        // Nothing was created: the location still holds no repository.
        let out = t.cli(&["list"]);
        common::assert_exit(&out, 2, &format!("{what}, then list"));
        // The command the error names works, and then the snapshot does.
        t.cli_json(&["init"]);
        let v = t.cli_json(&["snapshot", src]);
        assert!(v["id"].is_string(), "{what}: {v}");
    }
}
