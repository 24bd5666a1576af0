//! Symlink loops.

use std::fs;
use std::path::Path;

use crate::harness::{User, tree_of, utf8, with_baseline, write};

#[test]
fn symlink_loops_are_stored_and_restored_as_symlinks() {
    let (sb, repo, base_id, base_tree) = with_baseline();

    let src = sb.path("src");
    write(&src.join("d/file.txt"), b"inside d\n");
    let links: [(&str, &str); 5] = [
        ("a", "b"),
        ("b", "a"),
        ("self", "self"),
        ("d/up", ".."),
        ("dangling", "does/not/exist"),
    ];
    for (link, target) in links {
        std::os::unix::fs::symlink(target, src.join(link)).expect("symlink");
    }
    let expected = tree_of(&src);

    let v = sb.snapshot(User::Root, &repo, &src);
    assert_eq!(v["symlinks"], links.len(), "{v}");
    assert_eq!((&v["skipped"], &v["files"]), (&0.into(), &1.into()), "{v}");
    let id = v["id"].as_str().expect("id").to_owned();

    let ls = sb.json(User::Root, &repo, &["ls", &id]);
    for (link, target) in links {
        let path = format!("/{link}");
        let e = ls
            .as_array()
            .expect("ls array")
            .iter()
            .find(|e| e["path"] == path.as_str())
            .unwrap_or_else(|| panic!("{path} is not listed: {ls}"));
        assert_eq!(
            (&e["type"], &e["target"]),
            (&"symlink".into(), &target.into()),
            "{path}: {e}"
        );
    }

    let target = sb.fresh_target();
    sb.json(User::Root, &repo, &["restore", &id, utf8(&target)]);
    for (link, want) in links {
        let p = target.join(link);
        let m = fs::symlink_metadata(&p).expect("restored link exists");
        assert!(m.file_type().is_symlink(), "{link} is not a symlink");
        assert_eq!(fs::read_link(&p).expect("readlink"), Path::new(want));
    }
    sb.assert_intact(
        User::Root,
        &repo,
        &[(&base_id, &base_tree), (&id, &expected)],
    );
}
