//! A missing source, and a source that is a regular file.

use crate::harness::{
    User, assert_one_line_naming, code, json_of, stderr_of, utf8, with_baseline, write,
};

#[test]
fn missing_or_non_directory_source_is_an_input_error_naming_the_path() {
    let (sb, repo, base_id, base_tree) = with_baseline();

    let missing = sb.path("no-such-source");
    let file = sb.path("plain-file");
    write(&file, b"not a directory");
    for (src, what) in [(&missing, "missing source"), (&file, "regular-file source")] {
        let out = sb.run(User::Root, &repo, &["snapshot", utf8(src)]);
        assert_eq!(code(&out), 2, "{what}: stderr: {}", stderr_of(&out));
        assert!(out.stdout.is_empty(), "{what}: stdout is not empty");
        assert_one_line_naming(&out, src);
        assert!(
            stderr_of(&out).contains("directory"),
            "{what}: the message does not say a directory is needed: {}",
            stderr_of(&out)
        );
        let out = sb.run(User::Root, &repo, &["--json", "snapshot", utf8(src)]);
        assert_eq!(code(&out), 2, "{what} (--json)");
        let v = json_of(&out, what);
        assert_eq!(v["exit_code"], 2, "{what}: {v}");
        let msg = v["error"].as_str().expect("error is a string");
        assert!(
            msg.contains(utf8(src)),
            "{what}: --json error lacks the path: {v}"
        );
    }

    // Refused before anything is created: no repository appears at a new path.
    let fresh = sb.path("never-created");
    let out = sb.run(User::Root, &fresh, &["snapshot", utf8(&missing)]);
    assert_eq!(code(&out), 2);
    assert!(
        !fresh.exists(),
        "a repository was created for a missing source"
    );

    let listed = sb.json(User::Root, &repo, &["list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    sb.assert_intact(User::Root, &repo, &[(&base_id, &base_tree)]);
}
