//! Snapshot records (`snapshots/<uuid>`, framed `SKSNAPSH`). The input is decoded twice: as
//! a stored object as is (checks the frame: magic, checksum, version), and framed by the
//! harness with `format::frame` so the checksum passes and the postcard decoder is
//! exercised. The record must name the snapshot it is stored under: the id passed is the one
//! the payload starts with when it has one (postcard of a uuid: length 16 + 16 bytes), so
//! both the accepting and the refusing path of that check run. Round trip: `to_bytes` ->
//! `from_bytes` gives the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapkeep::SnapshotId;
use snapkeep::format::manifest::{SNAPSHOT_VERSION, SnapshotRecord};
use snapkeep::format::{FRAME_OVERHEAD, frame};

const MAGIC: &[u8; 8] = b"SKSNAPSH";

/// The id a payload names, if it starts with one.
fn id_in(payload: &[u8]) -> SnapshotId {
    match payload {
        [16, id @ ..] if id.len() >= 16 => SnapshotId::from_slice(&id[..16]).unwrap_or_default(),
        _ => SnapshotId::nil(),
    }
}

fn check(bytes: &[u8], id: &SnapshotId) {
    let Ok(rec) = SnapshotRecord::from_bytes(bytes, id) else {
        return;
    };
    assert_eq!(rec.id, *id);
    let encoded = rec.to_bytes();
    let back = SnapshotRecord::from_bytes(&encoded, id).expect("re-encoded record");
    assert_eq!(back, rec);
}

fuzz_target!(|data: &[u8]| {
    let stored_id = if data.len() >= FRAME_OVERHEAD && data.starts_with(MAGIC) {
        id_in(&data[12..data.len() - 32])
    } else {
        SnapshotId::nil()
    };
    check(data, &stored_id);
    check(&frame(MAGIC, SNAPSHOT_VERSION, data), &id_in(data));
});
