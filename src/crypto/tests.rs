use super::*;

const REPO: [u8; 16] = [0x11; 16];
const OTHER_REPO: [u8; 16] = [0x22; 16];

fn keys() -> (MasterKey, Keys) {
    let m = MasterKey::generate().expect("random master key");
    let k = m.keys(&REPO);
    (m, k)
}

fn is_auth_failure(r: &Result<Vec<u8>>, object: &str) -> bool {
    matches!(r, Err(Error::Corrupt { object: o, detail }) if o == object && detail == AUTH_FAILED)
}

#[test]
fn seal_open_round_trip() {
    let (_, k) = keys();
    let large = vec![0u8; 70_000];
    for plain in [&b""[..], b"x", b"a tree blob of a few bytes", &large[..]] {
        let sealed = k.seal(SealKind::DataBlob, b"id-1", plain).expect("seal");
        assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
        let opened = k
            .open(SealKind::DataBlob, b"id-1", &sealed, "blob id-1")
            .expect("open");
        assert_eq!(opened, plain);
    }
}

#[test]
fn ciphertext_does_not_contain_the_plaintext() {
    let (_, k) = keys();
    let plain = b"a very recognisable plaintext of sixty-four bytes for the check.";
    let sealed = k.seal(SealKind::DataBlob, b"n", plain).expect("seal");
    assert!(
        !sealed
            .windows(16)
            .any(|w| plain.windows(16).any(|p| p == w))
    );
}

#[test]
fn two_seals_of_one_plaintext_differ() {
    let (_, k) = keys();
    let a = k.seal(SealKind::Snapshot, b"s", b"same").expect("seal");
    let b = k.seal(SealKind::Snapshot, b"s", b"same").expect("seal");
    assert_ne!(a, b);
    assert_ne!(a[..24], b[..24], "the nonces differ");
}

#[test]
fn every_flipped_byte_fails() {
    let (_, k) = keys();
    let sealed = k
        .seal(SealKind::TreeBlob, b"tree", b"small tree")
        .expect("seal");
    for at in 0..sealed.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = sealed.clone();
            bad[at] ^= bit;
            let r = k.open(SealKind::TreeBlob, b"tree", &bad, "tree t");
            assert!(
                is_auth_failure(&r, "tree t"),
                "flip {bit:#x} at {at} opened"
            );
        }
    }
}

#[test]
fn every_truncation_fails() {
    let (_, k) = keys();
    let sealed = k
        .seal(SealKind::Index, b"idx", b"an index file")
        .expect("seal");
    for len in 0..sealed.len() {
        let r = k.open(SealKind::Index, b"idx", &sealed[..len], "index i");
        assert!(is_auth_failure(&r, "index i"), "truncation to {len} opened");
    }
    // Appended bytes fail too.
    let mut long = sealed.clone();
    long.push(0);
    assert!(is_auth_failure(
        &k.open(SealKind::Index, b"idx", &long, "i"),
        "i"
    ));
}

#[test]
fn another_name_kind_repository_or_master_fails() {
    let (m, k) = keys();
    let sealed = k
        .seal(SealKind::DataBlob, b"chunk-a", b"content")
        .expect("seal");
    assert!(k.open(SealKind::DataBlob, b"chunk-a", &sealed, "o").is_ok());
    // Another name, including a prefix and an extension of the right one.
    for name in [&b"chunk-b"[..], b"chunk-", b"chunk-aa", b""] {
        let r = k.open(SealKind::DataBlob, name, &sealed, "o");
        assert!(is_auth_failure(&r, "o"), "opened under name {name:?}");
    }
    // Another kind.
    for kind in [
        SealKind::Config,
        SealKind::TreeBlob,
        SealKind::PackTrailer,
        SealKind::Index,
        SealKind::Snapshot,
    ] {
        let r = k.open(kind, b"chunk-a", &sealed, "o");
        assert!(is_auth_failure(&r, "o"), "opened as {kind:?}");
    }
    // Another repository id under the same master key.
    let other_repo = m.keys(&OTHER_REPO);
    assert!(is_auth_failure(
        &other_repo.open(SealKind::DataBlob, b"chunk-a", &sealed, "o"),
        "o"
    ));
    // Another master key with the same repository id.
    let other_master = MasterKey::generate().expect("random").keys(&REPO);
    assert!(is_auth_failure(
        &other_master.open(SealKind::DataBlob, b"chunk-a", &sealed, "o"),
        "o"
    ));
}

#[test]
fn auth_failure_message_is_one_sentence_naming_the_object() {
    let (_, k) = keys();
    let e = k
        .open(SealKind::Snapshot, b"s", &[0u8; 10], "snapshot 0123abcd")
        .expect_err("garbage");
    let msg = e.to_string();
    assert!(
        msg.starts_with("snapshot 0123abcd is damaged (fails authentication"),
        "{msg}"
    );
    assert_eq!(msg.matches(". ").count(), 0, "{msg}");
}

#[test]
fn purpose_keys_are_stable_and_distinct() {
    let secret = [0x5au8; 32];
    let a = MasterKey::from_bytes(&secret).keys(&REPO);
    let b = MasterKey::from_bytes(&secret).keys(&REPO);
    assert_eq!(a.seal, b.seal);
    assert_eq!(a.id, b.id);
    assert_ne!(a.seal, a.id, "each purpose has its own key");
    assert_ne!(a.seal, secret);
    assert_ne!(a.id, secret);
    let c = MasterKey::from_bytes(&secret).keys(&OTHER_REPO);
    assert_ne!(a.seal, c.seal, "the repository id is in the key material");
    assert_ne!(a.id, c.id);
    // What one set sealed the other (same secret, same repository) opens.
    let sealed = a.seal(SealKind::Config, b"config", b"cfg").expect("seal");
    assert_eq!(
        b.open(SealKind::Config, b"config", &sealed, "config")
            .expect("open"),
        b"cfg"
    );
}

#[test]
fn id_hash_is_keyed() {
    let (_, k) = keys();
    let (_, k2) = keys();
    let data = b"file content";
    let id = k.id_hash(data);
    assert_ne!(id, *blake3::hash(data).as_bytes());
    assert_ne!(id, k2.id_hash(data), "two master keys give two ids");
    assert_eq!(id, k.id_hash(data));
    assert_ne!(id, k.id_hash(b"file contenu"));
}

#[test]
fn chunker_seed_is_non_zero_and_stable() {
    let secret = [0x42u8; 32];
    let a = MasterKey::from_bytes(&secret).keys(&REPO);
    let b = MasterKey::from_bytes(&secret).keys(&REPO);
    assert_ne!(a.chunker_seed(), 0);
    assert_eq!(a.chunker_seed(), b.chunker_seed());
    assert_eq!(a.clone().chunker_seed(), a.chunker_seed());
    let (_, other) = keys();
    assert_ne!(other.chunker_seed(), 0);
    assert_ne!(other.chunker_seed(), a.chunker_seed());
}

#[test]
fn debug_does_not_print_key_material() {
    let secret = [0xabu8; 32];
    let m = MasterKey::from_bytes(&secret);
    let k = m.keys(&REPO);
    let printed = format!("{m:?} {k:?}");
    assert!(
        !printed.contains("ab, ab") && !printed.contains("171"),
        "{printed}"
    );
    assert!(!printed.contains(&hex::encode(k.seal)), "{printed}");
    assert!(printed.contains(&hex::encode(REPO)), "{printed}");
}
