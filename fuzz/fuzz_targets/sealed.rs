//! The sealed formats of an encrypted repository (format 2): the input is decoded as a key
//! file (`keys/<id>`, framed `SKKEYFIL`) and as a stored config of either format, and opened
//! as a sealed object of every kind with a fixed repository key: nothing may panic or
//! allocate from a length field, and only a seal made with that key opens. Round trip: a seal
//! of the input opens to the input, and the seal with any one byte changed does not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapkeep::crypto::{KeyFile, MasterKey, Scheme, SealKind};
use snapkeep::format::repo_config::StoredConfig;

const KINDS: [SealKind; 6] = [
    SealKind::Config,
    SealKind::DataBlob,
    SealKind::TreeBlob,
    SealKind::PackTrailer,
    SealKind::Index,
    SealKind::Snapshot,
];

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = KeyFile::from_bytes(data, "key file fuzz") {
        // A decoded key file's parameters are within the checked bounds, and it re-encodes
        // to what was read.
        assert!(k.params().check().is_ok());
        assert_eq!(
            KeyFile::from_bytes(&k.to_bytes(), "again")
                .map(|k| k.id())
                .ok(),
            Some(k.id())
        );
    }
    let _ = StoredConfig::parse(data);
    for scheme in Scheme::ALL {
        let keys = MasterKey::from_bytes(&[7; 32]).keys(scheme, &[1; 16]);
        for kind in KINDS {
            assert!(
                keys.open(kind, b"name", data, "fuzz").is_err()
                    || data.len() >= scheme.overhead()
            );
        }
        let sealed = keys.seal(SealKind::DataBlob, b"name", data).expect("seal");
        assert_eq!(
            keys.open(SealKind::DataBlob, b"name", &sealed, "fuzz")
                .expect("opens"),
            data
        );
        let mut bad = sealed.clone();
        let at = data.len() % bad.len();
        bad[at] ^= 1;
        assert!(
            keys.open(SealKind::DataBlob, b"name", &bad, "fuzz")
                .is_err()
        );
        // Opened in place, the same verdict.
        let mut copy = sealed.clone();
        assert_eq!(
            keys.open_in_place(SealKind::DataBlob, b"name", &mut copy, "fuzz")
                .ok(),
            Some(data)
        );
    }
});
