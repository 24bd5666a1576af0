//! Pack trailer: the input is a whole pack file. Decodes the header and the footer the way
//! `read_pack_entries` does, then the entries with the decoded footer, then every blob an
//! entry points at (what a reader does next). The stored entries checksum is tried as is and
//! then fixed up, so that a mutated entry reaches the entry decoder instead of stopping at
//! the checksum. Round trip: decode -> `encode_trailer` -> decode gives the same footer and
//! entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapkeep::codec::Codec;
use snapkeep::format::pack::{
    FOOTER_LEN, Footer, HEADER, check_header, decode_entries, decode_footer, encode_trailer,
};
use snapkeep::id::BlobId;
use snapkeep::pack::{check_blob_bytes, decode_blob, location, pack_id_of_trailer};

const OBJECT: &str = "pack fuzz";

fuzz_target!(|data: &[u8]| {
    let _ = check_header(data, OBJECT);
    let pack_len = data.len() as u64;
    if data.len() < FOOTER_LEN {
        // The decoder must refuse a footer of the wrong size, whatever the pack length says.
        assert!(decode_footer(data, pack_len, OBJECT).is_err());
        return;
    }
    let trailer_end = data.len() - FOOTER_LEN;
    let footer_bytes = &data[trailer_end..];
    let Ok(footer) = decode_footer(footer_bytes, pack_len, OBJECT) else {
        return;
    };
    // What the decoder promises: the entries lie between the header and the footer.
    let start = usize::try_from(footer.entries_offset).expect("u32 fits usize");
    assert!(start >= HEADER.len() && start <= trailer_end, "{footer:?}");
    assert_eq!((trailer_end - start) as u64, footer.entries_len());
    let region = &data[start..trailer_end];

    let as_stored = decode_entries(region, &footer, OBJECT);
    let fixed = Footer {
        entries_hash: *BlobId::of(region).as_bytes(),
        ..footer
    };
    let Ok(entries) = decode_entries(region, &fixed, OBJECT) else {
        assert!(as_stored.is_err());
        return;
    };
    if let Ok(stored) = &as_stored {
        assert_eq!(stored, &entries);
    }
    assert_eq!(entries.len() as u64, u64::from(footer.count));

    let pack = pack_id_of_trailer(&data[start..]);
    for e in &entries {
        let from = usize::try_from(e.offset).expect("u32 fits usize");
        let to = from + usize::try_from(e.length).expect("u32 fits usize");
        assert!(
            from >= HEADER.len() && to <= start,
            "{e:?} outside the data region"
        );
        let stored = &data[from..to];
        let loc = location(pack, e);
        let decoded = decode_blob(&Codec::Plain, stored, &loc, &e.id);
        let checked = check_blob_bytes(&Codec::Plain, stored, &loc, &e.id);
        assert_eq!(decoded.is_ok(), checked.is_ok(), "{e:?}");
        if let Ok(raw) = decoded {
            assert_eq!(raw.len() as u64, u64::from(e.raw_length));
            assert_eq!(BlobId::of(&raw), e.id);
        }
    }

    // Round trip through the encoder.
    let trailer = encode_trailer(&entries, footer.entries_offset);
    let len2 = u64::from(footer.entries_offset) + trailer.len() as u64;
    assert_eq!(len2, pack_len);
    let (entries2, footer2) = trailer.split_at(trailer.len() - FOOTER_LEN);
    let f2 = decode_footer(footer2, len2, OBJECT).expect("re-encoded footer decodes");
    assert_eq!(
        (f2.count, f2.entries_offset),
        (footer.count, footer.entries_offset)
    );
    if entries2 == region {
        assert_eq!(f2, fixed);
    }
    let back = decode_entries(entries2, &f2, OBJECT).expect("re-encoded entries decode");
    assert_eq!(back, entries);
});
