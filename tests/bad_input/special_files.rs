//! Fifos, sockets, devices.

use std::process::Command;

use crate::harness::{User, assert_warned, mkfifo, tree_of, warnings_of, with_baseline, write};

#[test]
fn fifo_socket_and_device_are_skipped_counted_and_never_block() {
    let (sb, repo, base_id, base_tree) = with_baseline();

    let src = sb.path("src");
    write(&src.join("regular.txt"), b"a regular file\n");
    let expected = tree_of(&src);
    let fifo = src.join("pipe");
    mkfifo(&fifo);
    let sock = src.join("sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind socket");
    let dev = src.join("null-device");
    let mut specials = vec![fifo, sock];
    match Command::new("mknod")
        .arg(&dev)
        .args(["c", "1", "3"])
        .output()
    {
        Ok(o) if o.status.success() => specials.push(dev),
        Ok(o) => eprintln!(
            "note: mknod failed here ({}); the device sub-case is skipped",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("note: cannot run mknod ({e}); the device sub-case is skipped"),
    }

    let v = sb.snapshot(User::Root, &repo, &src);
    drop(listener);
    assert_eq!(v["skipped"], specials.len(), "{v}");
    assert_eq!(v["files"], 1, "{v}");
    let warnings = warnings_of(&v);
    for p in &specials {
        assert_warned(&warnings, p);
    }
    let id = v["id"].as_str().expect("id").to_owned();
    sb.assert_intact(
        User::Root,
        &repo,
        &[(&base_id, &base_tree), (&id, &expected)],
    );
}
