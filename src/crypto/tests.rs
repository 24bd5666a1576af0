use super::*;

const REPO: [u8; 16] = [0x11; 16];
const OTHER_REPO: [u8; 16] = [0x22; 16];

fn keys(scheme: Scheme) -> (MasterKey, Keys) {
    let m = MasterKey::generate().expect("random master key");
    let k = m.keys(scheme, &REPO);
    (m, k)
}

fn is_auth_failure(r: &Result<Vec<u8>>, object: &str) -> bool {
    matches!(r, Err(Error::Corrupt { object: o, detail }) if o == object && detail == AUTH_FAILED)
}

#[test]
fn seal_open_round_trip() {
    for scheme in Scheme::ALL {
        let (_, k) = keys(scheme);
        let large = vec![0u8; 70_000];
        for plain in [&b""[..], b"x", b"a tree blob of a few bytes", &large[..]] {
            let sealed = k.seal(SealKind::DataBlob, b"id-1", plain).expect("seal");
            assert_eq!(sealed.len(), plain.len() + scheme.overhead());
            let opened = k
                .open(SealKind::DataBlob, b"id-1", &sealed, "blob id-1")
                .expect("open");
            assert_eq!(opened, plain);
        }
    }
}

#[test]
fn ciphertext_does_not_contain_the_plaintext() {
    for scheme in Scheme::ALL {
        let (_, k) = keys(scheme);
        let plain = b"a very recognisable plaintext of sixty-four bytes for the check.";
        let sealed = k.seal(SealKind::DataBlob, b"n", plain).expect("seal");
        assert!(
            !sealed
                .windows(16)
                .any(|w| plain.windows(16).any(|p| p == w))
        );
    }
}

#[test]
fn two_seals_of_one_plaintext_differ() {
    for scheme in Scheme::ALL {
        let (_, k) = keys(scheme);
        let a = k.seal(SealKind::Snapshot, b"s", b"same").expect("seal");
        let b = k.seal(SealKind::Snapshot, b"s", b"same").expect("seal");
        assert_ne!(a, b);
        assert_ne!(a[..24], b[..24], "the nonces differ");
    }
}

#[test]
fn every_flipped_byte_fails() {
    for scheme in Scheme::ALL {
        let (_, k) = keys(scheme);
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
}

#[test]
fn every_truncation_fails() {
    for scheme in Scheme::ALL {
        let (_, k) = keys(scheme);
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
}

#[test]
fn another_name_kind_repository_or_master_fails() {
    for scheme in Scheme::ALL {
        let (m, k) = keys(scheme);
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
        let other_repo = m.keys(scheme, &OTHER_REPO);
        assert!(is_auth_failure(
            &other_repo.open(SealKind::DataBlob, b"chunk-a", &sealed, "o"),
            "o"
        ));
        // Another master key with the same repository id.
        let other_master = MasterKey::generate().expect("random").keys(scheme, &REPO);
        assert!(is_auth_failure(
            &other_master.open(SealKind::DataBlob, b"chunk-a", &sealed, "o"),
            "o"
        ));
    }
}

#[test]
fn auth_failure_message_is_one_sentence_naming_the_object() {
    for scheme in Scheme::ALL {
        let (_, k) = keys(scheme);
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
}

#[test]
fn purpose_keys_are_stable_and_distinct() {
    for scheme in Scheme::ALL {
        let secret = [0x5au8; 32];
        let a = MasterKey::from_bytes(&secret).keys(scheme, &REPO);
        let b = MasterKey::from_bytes(&secret).keys(scheme, &REPO);
        assert_eq!(a.seal, b.seal);
        assert_eq!(a.id, b.id);
        assert_ne!(a.seal, a.id, "each purpose has its own key");
        assert_ne!(a.seal, secret);
        assert_ne!(a.id, secret);
        let c = MasterKey::from_bytes(&secret).keys(scheme, &OTHER_REPO);
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
}

#[test]
fn id_hash_is_keyed() {
    for scheme in Scheme::ALL {
        let (_, k) = keys(scheme);
        let (_, k2) = keys(scheme);
        let data = b"file content";
        let id = k.id_hash(data);
        assert_ne!(id, *blake3::hash(data).as_bytes());
        assert_ne!(id, k2.id_hash(data), "two master keys give two ids");
        assert_eq!(id, k.id_hash(data));
        assert_ne!(id, k.id_hash(b"file contenu"));
    }
}

#[test]
fn chunker_seed_is_non_zero_and_stable() {
    for scheme in Scheme::ALL {
        let secret = [0x42u8; 32];
        let a = MasterKey::from_bytes(&secret).keys(scheme, &REPO);
        let b = MasterKey::from_bytes(&secret).keys(scheme, &REPO);
        assert_ne!(a.chunker_seed(), 0);
        assert_eq!(a.chunker_seed(), b.chunker_seed());
        assert_eq!(a.clone().chunker_seed(), a.chunker_seed());
        let (_, other) = keys(scheme);
        assert_ne!(other.chunker_seed(), 0);
        assert_ne!(other.chunker_seed(), a.chunker_seed());
    }
}

#[test]
fn debug_does_not_print_key_material() {
    for scheme in Scheme::ALL {
        let secret = [0xabu8; 32];
        let m = MasterKey::from_bytes(&secret);
        let k = m.keys(scheme, &REPO);
        let printed = format!("{m:?} {k:?}");
        assert!(
            !printed.contains("ab, ab") && !printed.contains("171"),
            "{printed}"
        );
        assert!(!printed.contains(&hex::encode(k.seal)), "{printed}");
        assert!(printed.contains(&hex::encode(REPO)), "{printed}");
    }
}

/// C2SP XAES-256-GCM's first test vector: key 0x01 * 32, nonce "ABCDEFGHIJKLMNOPQRSTUVWX",
/// plaintext "XAES-256-GCM", no associated data.
#[test]
fn xaes_matches_the_c2sp_test_vector() {
    let nonce: &[u8; 24] = b"ABCDEFGHIJKLMNOPQRSTUVWX";
    let (key, gcm_nonce) = xaes_cipher(&[0x01; 32], nonce).expect("key");
    let mut buf = b"XAES-256-GCM".to_vec();
    let tag = key
        .seal_in_place_separate_tag(gcm_nonce, ring::aead::Aad::empty(), &mut buf)
        .expect("seal");
    buf.extend_from_slice(tag.as_ref());
    assert_eq!(
        hex::encode(&buf),
        "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271"
    );
}

/// C2SP XAES-256-GCM's second test vector: key 0x03 * 32 (its L has the top bit set, so the
/// 0x87 branch of the subkey runs), associated data "c2sp.org/XAES-256-GCM".
#[test]
fn xaes_matches_the_second_c2sp_test_vector() {
    let nonce: &[u8; 24] = b"ABCDEFGHIJKLMNOPQRSTUVWX";
    let (key, gcm_nonce) = xaes_cipher(&[0x03; 32], nonce).expect("key");
    let mut buf = b"XAES-256-GCM".to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            gcm_nonce,
            ring::aead::Aad::from(&b"c2sp.org/XAES-256-GCM"[..]),
            &mut buf,
        )
        .expect("seal");
    buf.extend_from_slice(tag.as_ref());
    assert_eq!(
        hex::encode(&buf),
        "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d"
    );
}

/// Our XAES-256-GCM (the key derivation here, AES-256-GCM from ring) equals the RustCrypto
/// reference implementation byte for byte, and each opens what the other sealed.
#[test]
fn xaes_equals_the_reference_implementation() {
    use xaes_256_gcm::aead::{AeadInOut, KeyInit};
    let (_, k) = keys(Scheme::Xaes256Gcm);
    let reference = xaes_256_gcm::Xaes256Gcm::new((&k.seal).into());
    let mut sizes = vec![0usize, 1, 15, 16, 17, 255, 4096, 70_001];
    sizes.extend(1..40);
    for (i, size) in sizes.into_iter().enumerate() {
        let plain: Vec<u8> = (0..size).map(|b| (b * 31 + i).to_le_bytes()[0]).collect();
        let name = format!("object-{i}");
        let ours = k
            .seal(SealKind::DataBlob, name.as_bytes(), &plain)
            .expect("seal");
        let nonce = xaes_256_gcm::Nonce::try_from(&ours[..24]).expect("nonce");
        let ad = k.associated_data(SealKind::DataBlob, name.as_bytes());
        let mut theirs = plain.clone();
        let tag = reference
            .encrypt_inout_detached(&nonce, &ad, theirs.as_mut_slice().into())
            .expect("reference seal");
        theirs.extend_from_slice(tag.as_slice());
        assert_eq!(ours[24..], theirs[..], "size {size}");
        let mut back = ours[24..ours.len() - 16].to_vec();
        reference
            .decrypt_inout_detached(
                &nonce,
                &ad,
                back.as_mut_slice().into(),
                &xaes_256_gcm::Tag::try_from(&ours[ours.len() - 16..]).expect("tag"),
            )
            .expect("the reference opens ours");
        assert_eq!(back, plain);
    }
}

#[test]
fn the_schemes_do_not_open_each_other() {
    let secret = [0x77u8; 32];
    let all = Scheme::ALL.map(|scheme| MasterKey::from_bytes(&secret).keys(scheme, &REPO));
    for a in &all {
        for b in &all {
            if a.scheme == b.scheme {
                continue;
            }
            assert_ne!(a.seal, b.seal, "one seal key per scheme");
            assert_eq!(a.id, b.id);
            let sealed = a.seal(SealKind::Snapshot, b"s", b"record").expect("seal");
            assert!(
                is_auth_failure(&b.open(SealKind::Snapshot, b"s", &sealed, "s"), "s"),
                "{} opened what {} sealed",
                b.scheme,
                a.scheme
            );
        }
    }
}

/// The pinned aegis crate computes AEGIS-256X4 as the draft specifies (draft-irtf-cfrg-aegis-
/// aead, AEGIS-256X4 test vector 2, 256-bit tag), in place as our seal calls it.
#[test]
fn aegis_256x4_matches_the_draft_test_vector() {
    use aegis::aegis256x4::Aegis256X4;
    let key: [u8; 32] =
        hex::decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .expect("hex")
            .try_into()
            .expect("32 bytes");
    let nonce: [u8; 32] =
        hex::decode("101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f")
            .expect("hex")
            .try_into()
            .expect("32 bytes");
    let ad = hex::decode("0102030401020304").expect("hex");
    let msg = hex::decode("04050607".repeat(30)).expect("hex");
    let mut buf = msg.clone();
    let tag = Aegis256X4::<32>::new(&key, &nonce).encrypt_in_place(&mut buf, &ad);
    assert_eq!(
        hex::encode(&buf),
        "bfc2085b7e8017da99b0b6d646ae4d01f4ba8f2e7dfca1d759ae48a135139b9aaac6b4f5db810d426be1fdaff4e1454153a34b11da78ed7e418ee2ee9853042e95536aecbb694cea1b16a478eb0d4d1bf6509b1ce652a45af58e0e46ffccfa2d0426e702391d2ff5813808b81748a490dd656465fed61f09"
    );
    assert_eq!(
        hex::encode(tag),
        "7847eace74409ee56c8f4cf63a9c2841ce7c8bd567d7c0ca514c879a190b978c"
    );
    Aegis256X4::<32>::new(&key, &nonce)
        .decrypt_in_place(&mut buf, &tag, &ad)
        .expect("opens");
    assert_eq!(buf, msg);
}

/// Our AEGIS-256X4 seal is `nonce(32) | AEGIS-256X4(seal key, nonce, ad) | tag(32)`: the
/// crate run directly on the same inputs gives the same bytes.
#[test]
fn aegis_seal_layout_is_nonce_ciphertext_tag() {
    use aegis::aegis256x4::Aegis256X4;
    let (_, k) = keys(Scheme::Aegis256X4);
    for size in [0usize, 1, 63, 64, 65, 4096, 70_001] {
        let plain: Vec<u8> = (0..size).map(|b| (b * 7).to_le_bytes()[0]).collect();
        let sealed = k.seal(SealKind::TreeBlob, b"tree", &plain).expect("seal");
        assert_eq!(sealed.len(), size + 64);
        let nonce: [u8; 32] = sealed[..32].try_into().expect("nonce");
        let ad = k.associated_data(SealKind::TreeBlob, b"tree");
        let mut theirs = plain.clone();
        let tag = Aegis256X4::<32>::new(&k.seal, &nonce).encrypt_in_place(&mut theirs, &ad);
        theirs.extend_from_slice(&tag);
        assert_eq!(sealed[32..], theirs[..], "size {size}");
    }
}

#[test]
fn scheme_names_round_trip() {
    for scheme in Scheme::ALL {
        assert_eq!(Scheme::from_name(scheme.name()), Some(scheme));
    }
    assert_eq!(Scheme::DEFAULT, Scheme::Aegis256X4);
    assert_eq!(Scheme::from_name("aes256gcm-blake3"), None);
    assert_eq!(
        Scheme::names(),
        "aegis256x4-blake3, xaes256gcm-blake3, xchacha20poly1305-blake3"
    );
}

/// Every scheme's overhead lies in the range a sealed pack's footer accepts for its entries.
#[test]
fn every_scheme_seals_within_the_pack_layouts_range() {
    for scheme in Scheme::ALL {
        assert!(
            crate::format::pack::SEALED_OVERHEAD_RANGE.contains(&(scheme.overhead() as u64)),
            "{scheme}"
        );
    }
}

/// Sealing into a reused buffer (longer, shorter, full of old bytes: the backup's pool) gives
/// what opens to the plaintext, and no old byte survives past the object.
#[test]
fn seal_into_a_reused_buffer_overwrites_it() {
    for scheme in Scheme::ALL {
        let (_, k) = keys(scheme);
        let mut buf = vec![0xa5u8; 100_000];
        for len in [70_000usize, 10, 0, 90_000] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251).to_le_bytes()[0]).collect();
            k.seal_into(SealKind::DataBlob, b"n", &plain, &mut buf)
                .expect("seal");
            assert_eq!(buf.len(), len + scheme.overhead(), "{scheme}");
            assert_eq!(
                k.open(SealKind::DataBlob, b"n", &buf, "n").expect("open"),
                plain,
                "{scheme} {len}"
            );
        }
    }
}

#[test]
fn sealing_and_opening_in_place_match_the_copying_calls() {
    for scheme in Scheme::ALL {
        let (_, k) = keys(scheme);
        let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let a = k
            .seal_vec(SealKind::Index, b"idx", plain.clone())
            .expect("seal in place");
        let b = k.seal(SealKind::Index, b"idx", &plain).expect("seal");
        assert_eq!(a.len(), b.len(), "{scheme}");
        assert_ne!(a, b, "fresh nonces");
        // Each opens with the other call, and to the same bytes.
        assert_eq!(
            k.open(SealKind::Index, b"idx", &a, "i").expect("open"),
            plain
        );
        assert_eq!(
            k.open_vec(SealKind::Index, b"idx", b, "i")
                .expect("open in place"),
            plain
        );
        let mut bad = a.clone();
        bad[50_000] ^= 1;
        assert!(is_auth_failure(
            &k.open_vec(SealKind::Index, b"idx", bad, "i"),
            "i"
        ));
    }
}
