//! Garbage-collection objects: locks (`locks/<name>`, framed `SKLOCK00`) and marks
//! (`marks/<uuid>`, framed `SKMARK00`). Every input is decoded as both types, as a stored
//! object as is and framed by the harness with `format::frame` (version 1) so the checksum
//! passes and the postcard decoder is exercised. Round trip: `to_bytes` -> `from_bytes` gives
//! the same object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapkeep::format::frame;
use snapkeep::format::gc::{LockRecord, MarkRecord};

const LOCK_MAGIC: &[u8; 8] = b"SKLOCK00";
const MARK_MAGIC: &[u8; 8] = b"SKMARK00";
const VERSION: u32 = 1;

fn lock(bytes: &[u8]) {
    if let Ok(l) = LockRecord::from_bytes(bytes, "locks/fuzz") {
        let back = LockRecord::from_bytes(&l.to_bytes(), "locks/fuzz").expect("re-encoded lock");
        assert_eq!(back, l);
    }
}

fn mark(bytes: &[u8]) {
    if let Ok(m) = MarkRecord::from_bytes(bytes, "marks/fuzz") {
        let back = MarkRecord::from_bytes(&m.to_bytes(), "marks/fuzz").expect("re-encoded mark");
        assert_eq!(back, m);
    }
}

fuzz_target!(|data: &[u8]| {
    lock(data);
    mark(data);
    lock(&frame(LOCK_MAGIC, VERSION, data));
    mark(&frame(MARK_MAGIC, VERSION, data));
});
