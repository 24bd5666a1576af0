//! AEAD throughput per core: sealing and opening one object, as an encrypted repository does
//! for every blob, tree, trailer, index file and snapshot record.
//!
//! - `aegis256x4_seal` / `_open`: `crypto::Keys::seal` / `open` with the default scheme
//!   (AEGIS-256X4 from libaegis; random 256-bit nonce, 256-bit tag, associated data with the
//!   repository id, kind and name);
//! - `xaes256gcm_seal` / `_open`: the same with XAES-256-GCM (the key derivation, then
//!   ring's AES-256-GCM; random 192-bit nonce);
//! - `xchacha20poly1305_seal` / `_open`: the same with XChaCha20-Poly1305;
//! - `rustcrypto_aes256gcm_seal` / `_open`: RustCrypto's aes-gcm directly (random 96-bit
//!   nonce, same associated data), for comparison only.
//!
//! Sizes 1 KiB (a tree), 64 KiB (a small blob) and 1 MiB (a large blob). One thread: the
//! backup pipeline seals on its rayon workers, so the total scales with the cores.
//!
//! Run: `cargo bench --bench aead`

mod common;

use std::hint::black_box;
use std::time::Duration;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use common::{MIB, Rng};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use snapkeep::crypto::{MasterKey, Scheme, SealKind};

const SIZES: [usize; 3] = [1024, 64 * 1024, MIB];
const NAME: &[u8; 32] = &[0x3c; 32];
const AD: &[u8] = b"snapkeep-seal-v1 repo-id-16bytes\x02 and a 32-byte object id....";

/// AES-256-GCM seal in the same layout as ours: nonce(12) | ciphertext | tag(16).
fn aes_seal(cipher: &Aes256Gcm, nonce: [u8; 12], plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + 28);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let tag = cipher
        .encrypt_inout_detached(&Nonce::from(nonce), AD, (&mut out[12..]).into())
        .expect("aes-gcm seal");
    out.extend_from_slice(tag.as_slice());
    out
}

/// Opens what `aes_seal` made.
fn aes_open(cipher: &Aes256Gcm, sealed: &[u8]) -> Vec<u8> {
    let (nonce, rest) = sealed.split_at(12);
    let (body, tag) = rest.split_at(rest.len() - 16);
    let mut plain = body.to_vec();
    cipher
        .decrypt_inout_detached(
            <&Nonce<_>>::try_from(nonce).expect("nonce"),
            AD,
            plain.as_mut_slice().into(),
            <&Tag>::try_from(tag).expect("tag"),
        )
        .expect("aes-gcm open");
    plain
}

fn bench_aead(c: &mut Criterion) {
    let mut rng = Rng(0x5eed_ae4d_0000_0001);
    let data = rng.random(SIZES[SIZES.len() - 1]);
    let master = MasterKey::from_bytes(&rng.bytes32());
    let aes = Aes256Gcm::new(&rng.bytes32().into());
    let mut group = common::flat_group(c, "aead", Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for size in SIZES {
        let plain = &data[..size];
        let label = if size >= MIB {
            format!("{}MiB", size / MIB)
        } else {
            format!("{}KiB", size / 1024)
        };
        group.throughput(Throughput::Bytes(size as u64));
        for scheme in Scheme::ALL {
            let keys = master.keys(scheme, &[0x11; 16]);
            let short = scheme.name().trim_end_matches("-blake3");
            group.bench_with_input(
                BenchmarkId::new(format!("{short}_seal"), &label),
                plain,
                |b, plain| {
                    b.iter(|| {
                        black_box(
                            keys.seal(SealKind::DataBlob, NAME, black_box(plain))
                                .expect("seal"),
                        )
                    });
                },
            );
            let sealed = keys.seal(SealKind::DataBlob, NAME, plain).expect("seal");
            group.bench_with_input(
                BenchmarkId::new(format!("{short}_open"), &label),
                &sealed,
                |b, sealed| {
                    b.iter(|| {
                        black_box(
                            keys.open(SealKind::DataBlob, NAME, black_box(sealed), "bench")
                                .expect("open"),
                        )
                    });
                },
            );
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&rng.bytes32()[..12]);
        group.bench_with_input(
            BenchmarkId::new("rustcrypto_aes256gcm_seal", &label),
            plain,
            |b, plain| b.iter(|| black_box(aes_seal(&aes, nonce, black_box(plain)))),
        );
        let sealed = aes_seal(&aes, nonce, plain);
        group.bench_with_input(
            BenchmarkId::new("rustcrypto_aes256gcm_open", &label),
            &sealed,
            |b, sealed| b.iter(|| black_box(aes_open(&aes, black_box(sealed)))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_aead);
criterion_main!(benches);
