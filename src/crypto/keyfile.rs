//! Key files (`keys/<id>` in a repository): the master secret wrapped with a key derived from
//! a password by Argon2id.
//!
//! Owns: [`KdfParams`] (the Argon2id cost, stored in each key file) and [`KeyFile`], its byte
//! image and its two operations, `create` (wrap) and `open` (unwrap).
//!
//! Layout: `crate::format::frame(b"SKKEYFIL", 1, postcard(body))`, where the body is the KDF
//! parameters, a random 32-byte salt, the creation time, the host name and the sealed master
//! secret (`nonce[24] | ciphertext[32] | tag[16]`, XChaCha20-Poly1305 under the
//! password-derived key).
//!
//! Invariants:
//! - The wrapping key is `Argon2id(password, salt, params)`, 32 bytes, version 0x13.
//! - The associated data of the wrap is `b"snapkeep-keyfile-v1" | m_kib u32 LE | t u32 LE |
//!   p u32 LE | salt[32] | created_ns i64 LE | host length u32 LE | host`, so a file whose stored
//!   parameters, salt, time or host were changed does not open.
//! - A wrong password is `Ok(None)` from [`KeyFile::open`], never damage; a malformed file is
//!   an `Err` from [`KeyFile::from_bytes`], which never panics and allocates at most the bytes
//!   it was given (and refuses more than [`MAX_KEYFILE_LEN`]).
//! - Every intermediate key buffer is in `Zeroizing`.
//!
//! Must not: do I/O, read passwords (the CLI does), or hold key material past a call.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Key, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{MasterKey, random_fill};
use crate::error::{Error, Result};
use crate::format::{encode, frame, unframe};

/// Magic bytes of a key file.
const MAGIC: &[u8; 8] = b"SKKEYFIL";
/// The key-file layout version this build writes and reads.
const VERSION: u32 = 1;
/// First bytes of the wrap's associated data.
const WRAP_AD_PREFIX: &[u8; 19] = b"snapkeep-keyfile-v1";
/// Longest host name a key file records, in bytes.
pub const MAX_HOST_LEN: usize = 255;
/// Longest key file [`KeyFile::from_bytes`] reads: far above what one holds (~200 bytes).
pub const MAX_KEYFILE_LEN: usize = 4096;

/// Largest accepted Argon2id memory cost: 4 GiB in KiB.
const MAX_M_KIB: u32 = 4 * 1024 * 1024;
/// Largest accepted Argon2id pass count.
const MAX_T: u32 = 100;
/// Largest accepted Argon2id lane count.
const MAX_P: u32 = 64;

/// Argon2id parameters, stored in each key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub m_kib: u32,
    /// Number of passes.
    pub t: u32,
    /// Number of lanes.
    pub p: u32,
}

/// The most passes `KdfParams::calibrated` chooses (a slow machine still opens in seconds).
const MAX_CALIBRATED_T: u32 = 30;

impl KdfParams {
    /// borg 2's: m = 64 MiB, t = 3, p = 4 (stronger than the argon2 crate's defaults).
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 65536,
        t: 3,
        p: 4,
    };

    /// The default memory and lanes with as many passes (at least the default's 3, at most
    /// 30) as make one derivation take about `target` on this machine: one trial derivation
    /// with the default parameters measures the rate (restic calibrates its KDF likewise).
    pub fn calibrated(target: std::time::Duration) -> Result<KdfParams> {
        let d = KdfParams::DEFAULT;
        let start = std::time::Instant::now();
        d.derive(b"calibration", &[0x5a; 32])?;
        let per_pass = start.elapsed().as_secs_f64() / f64::from(d.t);
        let wanted = (target.as_secs_f64() / per_pass.max(1e-6)).ceil();
        let t = (d.t..=MAX_CALIBRATED_T)
            .find(|&t| f64::from(t) >= wanted)
            .unwrap_or(MAX_CALIBRATED_T);
        Ok(KdfParams { t, ..d })
    }

    /// Refuses parameters argon2 refuses or that are absurd (m over 4 GiB, t over 100, p over
    /// 64) with `InvalidInput`.
    pub fn check(&self) -> Result<()> {
        self.argon2_params().map(|_| ())
    }

    /// The argon2 crate's parameters for these, with a 32-byte output; checked as `check` says.
    fn argon2_params(&self) -> Result<Params> {
        let refuse = |why: String| {
            Error::InvalidInput(format!(
                "the Argon2id parameters m_kib={} t={} p={} are refused ({why}); use m_kib from 8×p to {MAX_M_KIB} (4 GiB), t from 1 to {MAX_T} and p from 1 to {MAX_P}",
                self.m_kib, self.t, self.p
            ))
        };
        if self.m_kib > MAX_M_KIB {
            return Err(refuse("memory over 4 GiB".to_owned()));
        }
        if self.t > MAX_T {
            return Err(refuse(format!("more than {MAX_T} passes")));
        }
        if self.p > MAX_P {
            return Err(refuse(format!("more than {MAX_P} lanes")));
        }
        Params::new(self.m_kib, self.t, self.p, Some(32)).map_err(|e| refuse(e.to_string()))
    }

    /// The wrapping key: Argon2id(password, salt, self), 32 bytes.
    fn derive(&self, password: &[u8], salt: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.argon2_params()?);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(password, salt, &mut out[..])
            .map_err(|e| {
                Error::InvalidInput(format!(
                    "cannot derive a key from the password with Argon2id (m_kib={} t={} p={}): {e}; use a shorter password or smaller parameters",
                    self.m_kib, self.t, self.p
                ))
            })?;
        Ok(out)
    }
}

/// The stored body of a key file (postcard inside the frame).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Body {
    kdf: KdfParams,
    salt: [u8; 32],
    created_ns: i64,
    host: String,
    nonce: [u8; 24],
    ciphertext: [u8; 32],
    tag: [u8; 16],
}

impl Body {
    /// The associated data of the wrap (see the module doc).
    fn associated_data(&self) -> Vec<u8> {
        let mut ad = Vec::with_capacity(WRAP_AD_PREFIX.len() + 12 + 32 + 8 + 4 + self.host.len());
        ad.extend_from_slice(WRAP_AD_PREFIX);
        ad.extend_from_slice(&self.kdf.m_kib.to_le_bytes());
        ad.extend_from_slice(&self.kdf.t.to_le_bytes());
        ad.extend_from_slice(&self.kdf.p.to_le_bytes());
        ad.extend_from_slice(&self.salt);
        ad.extend_from_slice(&self.created_ns.to_le_bytes());
        // The host is at most MAX_HOST_LEN bytes (checked on create and on read).
        ad.extend_from_slice(
            &u32::try_from(self.host.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        ad.extend_from_slice(self.host.as_bytes());
        ad
    }
}

/// One key file (`keys/<id>` in the repository): the master key sealed with a key derived from
/// a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFile {
    body: Body,
}

impl KeyFile {
    /// Wraps `master` under a key derived from `password` with `params` and a new random salt.
    /// Refuses an empty password, refused parameters and a host name over 255 bytes.
    pub fn create(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        host: &str,
        created_ns: i64,
    ) -> Result<KeyFile> {
        if password.is_empty() {
            return Err(Error::InvalidInput(
                "the password is empty; give a non-empty password for the new key".to_owned(),
            ));
        }
        if host.len() > MAX_HOST_LEN {
            return Err(Error::InvalidInput(format!(
                "the host name of {} bytes is too long for a key file; use at most {MAX_HOST_LEN} bytes",
                host.len()
            )));
        }
        params.check()?;
        let mut body = Body {
            kdf: params,
            salt: [0u8; 32],
            created_ns,
            host: host.to_owned(),
            nonce: [0u8; 24],
            ciphertext: [0u8; 32],
            tag: [0u8; 16],
        };
        random_fill(&mut body.salt, "a key file's salt")?;
        random_fill(&mut body.nonce, "a key file's nonce")?;
        let wrap = params.derive(password, &body.salt)?;
        let key: &Key = (&*wrap).into();
        let mut sealed = Zeroizing::new(*master.secret());
        let tag = XChaCha20Poly1305::new(key)
            .encrypt_inout_detached(
                &XNonce::from(body.nonce),
                &body.associated_data(),
                sealed.as_mut_slice().into(),
            )
            .map_err(|_| {
                Error::InvalidInput("cannot seal the master key into a key file".to_owned())
            })?;
        body.ciphertext = *sealed;
        body.tag.copy_from_slice(tag.as_slice());
        Ok(KeyFile { body })
    }

    /// The master key, when `password` opens this file. `Ok(None)` when the password does not
    /// open it (wrong password is not damage); `Err` only when the derivation itself fails.
    pub fn open(&self, password: &[u8]) -> Result<Option<MasterKey>> {
        let wrap = self.body.kdf.derive(password, &self.body.salt)?;
        let key: &Key = (&*wrap).into();
        let mut secret = Zeroizing::new(self.body.ciphertext);
        let opened = XChaCha20Poly1305::new(key).decrypt_inout_detached(
            &XNonce::from(self.body.nonce),
            &self.body.associated_data(),
            secret.as_mut_slice().into(),
            &Tag::from(self.body.tag),
        );
        Ok(opened.ok().map(|()| MasterKey::from_bytes(&secret)))
    }

    /// The Argon2id parameters this file was wrapped with.
    #[must_use]
    pub fn params(&self) -> KdfParams {
        self.body.kdf
    }

    /// The host the file was created on.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.body.host
    }

    /// When the file was created, in nanoseconds since the Unix epoch.
    #[must_use]
    pub fn created_ns(&self) -> i64 {
        self.body.created_ns
    }

    /// The framed bytes (magic b"SKKEYFIL", version 1, postcard payload, blake3 checksum).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        frame(MAGIC, VERSION, &encode(&self.body))
    }

    /// Reads a key file's bytes; `object` names it in errors. Never panics; refuses more than
    /// [`MAX_KEYFILE_LEN`] bytes, a bad frame, trailing bytes, refused parameters and an
    /// over-long host.
    pub fn from_bytes(b: &[u8], object: &str) -> Result<KeyFile> {
        if b.len() > MAX_KEYFILE_LEN {
            return Err(Error::corrupt(
                object,
                format!(
                    "{} bytes, more than the {MAX_KEYFILE_LEN} a key file holds",
                    b.len()
                ),
            ));
        }
        let payload = unframe(MAGIC, VERSION, b, object)?;
        let (body, rest): (Body, &[u8]) = postcard::take_from_bytes(payload)
            .map_err(|e| Error::corrupt(object, format!("cannot decode: {e}")))?;
        if !rest.is_empty() {
            return Err(Error::corrupt(
                object,
                format!("{} bytes after the key file's body", rest.len()),
            ));
        }
        if body.host.len() > MAX_HOST_LEN {
            return Err(Error::corrupt(
                object,
                format!(
                    "its host name has {} bytes, more than {MAX_HOST_LEN}",
                    body.host.len()
                ),
            ));
        }
        if let Err(e) = body.kdf.check() {
            return Err(Error::corrupt(object, e.to_string()));
        }
        Ok(KeyFile { body })
    }

    /// The key file's id: hex of the first 16 bytes of blake3(to_bytes()), 32 hex digits.
    #[must_use]
    pub fn id(&self) -> String {
        hex::encode(&blake3::hash(&self.to_bytes()).as_bytes()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters so the tests run fast.
    const LOW: KdfParams = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    fn master() -> MasterKey {
        MasterKey::generate().expect("random master key")
    }

    fn sample() -> (MasterKey, KeyFile) {
        let m = master();
        let kf = KeyFile::create(
            &m,
            b"correct horse",
            LOW,
            "db-host-1",
            1_700_000_000_000_000_000,
        )
        .expect("create key file");
        (m, kf)
    }

    #[test]
    fn create_open_round_trip() {
        let (m, kf) = sample();
        let opened = kf
            .open(b"correct horse")
            .expect("open")
            .expect("password opens");
        assert_eq!(opened.secret(), m.secret());
        assert_eq!(kf.params(), LOW);
        assert_eq!(kf.host(), "db-host-1");
        assert_eq!(kf.created_ns(), 1_700_000_000_000_000_000);
        // Through the byte image too.
        let back = KeyFile::from_bytes(&kf.to_bytes(), "keys/test").expect("from_bytes");
        assert_eq!(back, kf);
        let opened = back.open(b"correct horse").expect("open").expect("opens");
        assert_eq!(opened.secret(), m.secret());
    }

    #[test]
    fn wrong_password_is_none() {
        let (_, kf) = sample();
        assert!(kf.open(b"correct horsf").expect("open").is_none());
        assert!(kf.open(b"").expect("open").is_none());
    }

    #[test]
    fn two_key_files_of_one_master_differ() {
        let m = master();
        let a = KeyFile::create(&m, b"pw", LOW, "h", 1).expect("a");
        let b = KeyFile::create(&m, b"pw", LOW, "h", 1).expect("b");
        assert_ne!(a.to_bytes(), b.to_bytes(), "salt and nonce are random");
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn id_is_32_hex_digits_of_the_bytes() {
        let (_, kf) = sample();
        let id = kf.id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            id,
            hex::encode(&blake3::hash(&kf.to_bytes()).as_bytes()[..16])
        );
    }

    #[test]
    fn empty_password_and_long_host_are_refused() {
        let m = master();
        assert!(matches!(
            KeyFile::create(&m, b"", LOW, "h", 0),
            Err(Error::InvalidInput(_))
        ));
        let host = "h".repeat(MAX_HOST_LEN + 1);
        assert!(matches!(
            KeyFile::create(&m, b"pw", LOW, &host, 0),
            Err(Error::InvalidInput(_))
        ));
        let bad = KdfParams { t: 0, ..LOW };
        assert!(matches!(
            KeyFile::create(&m, b"pw", bad, "h", 0),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let (_, kf) = sample();
        let bytes = kf.to_bytes();
        for len in 0..bytes.len() {
            assert!(
                KeyFile::from_bytes(&bytes[..len], "keys/t").is_err(),
                "truncation to {len} bytes was accepted"
            );
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(
                KeyFile::from_bytes(&bad, "keys/t").is_err(),
                "a flipped bit at {at} was accepted"
            );
        }
        let mut long = bytes.clone();
        long.resize(MAX_KEYFILE_LEN + 1, 0);
        assert!(KeyFile::from_bytes(&long, "keys/t").is_err());
    }

    /// A re-framed body (valid checksum) with one field changed.
    fn reframed(kf: &KeyFile, change: impl FnOnce(&mut Body)) -> KeyFile {
        let mut body = kf.body.clone();
        change(&mut body);
        let bytes = frame(MAGIC, VERSION, &encode(&body));
        KeyFile::from_bytes(&bytes, "keys/t").expect("well-formed")
    }

    #[test]
    fn changed_stored_fields_do_not_open() {
        let (_, kf) = sample();
        let pw: &[u8] = b"correct horse";
        let cases: Vec<(&str, KeyFile)> = vec![
            ("m_kib", reframed(&kf, |b| b.kdf.m_kib = 128)),
            ("t", reframed(&kf, |b| b.kdf.t = 2)),
            ("p", reframed(&kf, |b| b.kdf.p = 2)),
            ("salt", reframed(&kf, |b| b.salt[0] ^= 1)),
            ("created_ns", reframed(&kf, |b| b.created_ns += 1)),
            ("host", reframed(&kf, |b| b.host.push('x'))),
            ("nonce", reframed(&kf, |b| b.nonce[5] ^= 1)),
            ("ciphertext", reframed(&kf, |b| b.ciphertext[31] ^= 1)),
            ("tag", reframed(&kf, |b| b.tag[0] ^= 1)),
        ];
        for (field, changed) in cases {
            assert!(
                changed.open(pw).expect("open").is_none(),
                "a key file with a changed {field} still opened"
            );
        }
        // The unchanged re-frame still opens (the cases above fail for their change alone).
        assert!(reframed(&kf, |_| {}).open(pw).expect("open").is_some());
    }

    #[test]
    fn absurd_stored_params_are_damage() {
        let (_, kf) = sample();
        let mut body = kf.body.clone();
        body.kdf.m_kib = u32::MAX;
        let bytes = frame(MAGIC, VERSION, &encode(&body));
        assert!(matches!(
            KeyFile::from_bytes(&bytes, "keys/t"),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_damage() {
        let (_, kf) = sample();
        let mut payload = encode(&kf.body);
        payload.push(0);
        let bytes = frame(MAGIC, VERSION, &payload);
        assert!(matches!(
            KeyFile::from_bytes(&bytes, "keys/t"),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn params_check() {
        assert!(KdfParams::DEFAULT.check().is_ok());
        assert!(LOW.check().is_ok());
        let refused = [
            KdfParams {
                m_kib: MAX_M_KIB + 1,
                ..KdfParams::DEFAULT
            },
            KdfParams {
                m_kib: u32::MAX,
                ..KdfParams::DEFAULT
            },
            KdfParams {
                t: MAX_T + 1,
                ..KdfParams::DEFAULT
            },
            KdfParams {
                t: 0,
                ..KdfParams::DEFAULT
            },
            KdfParams {
                p: MAX_P + 1,
                ..KdfParams::DEFAULT
            },
            KdfParams {
                p: 0,
                ..KdfParams::DEFAULT
            },
            // argon2 needs at least 8 KiB per lane.
            KdfParams {
                m_kib: 8 * 4 - 1,
                t: 1,
                p: 4,
            },
        ];
        for params in refused {
            assert!(
                matches!(params.check(), Err(Error::InvalidInput(_))),
                "{params:?} was accepted"
            );
        }
        assert!(
            KdfParams {
                m_kib: MAX_M_KIB,
                t: MAX_T,
                p: MAX_P
            }
            .check()
            .is_ok()
        );
    }

    /// Measures one derivation with the DEFAULT parameters (the cost of opening a repository).
    #[test]
    fn default_derivation_time() {
        let start = std::time::Instant::now();
        let key = KdfParams::DEFAULT
            .derive(b"a password", &[7u8; 32])
            .expect("derive");
        let took = start.elapsed();
        eprintln!("Argon2id m=64 MiB t=3 p=4: one derivation took {took:?}");
        assert_ne!(*key, [0u8; 32]);
        assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    }

    #[test]
    fn calibration_keeps_memory_and_lanes_and_adds_passes() {
        let c = KdfParams::calibrated(std::time::Duration::from_millis(300)).expect("calibrate");
        assert_eq!(
            (c.m_kib, c.p),
            (KdfParams::DEFAULT.m_kib, KdfParams::DEFAULT.p)
        );
        assert!((3..=30).contains(&c.t), "{c:?}");
        // A target far below one pass keeps the default's passes; one far above is capped.
        let low = KdfParams::calibrated(std::time::Duration::from_nanos(1)).expect("calibrate");
        assert_eq!(low, KdfParams::DEFAULT);
        let high = KdfParams::calibrated(std::time::Duration::from_secs(3600)).expect("calibrate");
        assert_eq!(high.t, 30);
        assert!(high.check().is_ok());
    }
}
