//! Encryption at rest: the master secret, the purpose keys derived from it, and the AEAD seal
//! that every stored object of an encrypted repository goes through.
//!
//! Owns:
//! - [`MasterKey`]: the random 32-byte secret made at `init`; it is stored only wrapped in key
//!   files ([`KeyFile`], Argon2id from a password, in `keyfile.rs`).
//! - [`Keys`]: the purpose keys of one repository, each derived from the master secret and the
//!   repository id with `blake3::derive_key` under its own context string: the seal key (of
//!   the repository's [`Scheme`]), the id key (keyed blake3 for chunk and tree ids) and the
//!   chunker seed (fastcdc's gear-table XOR).
//! - [`Scheme`], the AEAD of a repository, named in its config: AEGIS-256X4 (the default),
//!   XAES-256-GCM or XChaCha20-Poly1305. Each takes a random nonce of at least 192 bits per
//!   object, so concurrent writers need no nonce state and no per-key message limit applies in
//!   practice (random 96-bit AES-GCM nonces under one key would). AEGIS-256X4
//!   (draft-irtf-cfrg-aegis-aead) takes a 256-bit nonce and a 256-bit tag; XAES-256-GCM (C2SP)
//!   derives an AES-256-GCM key from the seal key and the nonce's first 12 bytes, and seals
//!   with the last 12.
//! - The sealed layout: `nonce | ciphertext | tag`, with the scheme's lengths
//!   ([`Scheme::nonce_len`], [`Scheme::tag_len`]: 32 + 32 for AEGIS-256X4, 24 + 16 for the
//!   other two).
//!
//! Invariants:
//! - The associated data of a seal is `b"snapkeep-seal-v1" | repo_id[16] | kind u8 | name`;
//!   every part before `name` has a fixed length, so two different (repository, kind, name)
//!   triples never share associated data. An object opens only with the kind, the name and the
//!   keys of the repository that sealed it.
//! - Every failure to open is the same one-sentence [`Error::Corrupt`] naming the object: a
//!   reader learns nothing about which check failed.
//! - Key material (the master secret, the purpose keys, intermediate key buffers) is zeroized
//!   when dropped, and `Debug` never prints it. (ring's AES-256-GCM context of one object's
//!   derived key is dropped without a wipe; that key opens only objects with that nonce. The
//!   aegis crate's by-value copy of the seal key is on the stack of one call; the seal's
//!   AEGIS state is wiped by the crate when its encryptor drops; an open's one-shot state
//!   lives on libaegis's stack and is not wiped.)
//!
//! Must not: do I/O (beyond asking the OS for random bytes), know object keys or layouts of
//! the repository, or panic on any bytes it is asked to open.

pub mod keyfile;

pub use keyfile::{KdfParams, KeyFile};

use aes::Aes256;
use aes::cipher::BlockCipherEncrypt;
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Key, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};

/// The AEAD that seals a repository's objects; its name is in the repository config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// AEGIS-256X4 (draft-irtf-cfrg-aegis-aead) with a random 256-bit nonce and a 256-bit tag.
    /// The default: four AES round lanes make it the fastest on CPUs with AES instructions
    /// (2-3x ring's AES-256-GCM through our seal on one core here, 4x as bare primitives), and
    /// its random nonce has no usage limit a repository can reach.
    Aegis256X4,
    /// XAES-256-GCM (C2SP): AES-256-GCM under a key derived from the seal key and the first
    /// half of the random 192-bit nonce.
    Xaes256Gcm,
    /// XChaCha20-Poly1305: for CPUs without AES instructions (and repositories made with it).
    XChaCha20Poly1305,
}

impl Scheme {
    /// The scheme `init` uses unless told otherwise.
    pub const DEFAULT: Scheme = Scheme::Aegis256X4;
    /// Every scheme, the default first.
    pub const ALL: [Scheme; 3] = [
        Scheme::Aegis256X4,
        Scheme::Xaes256Gcm,
        Scheme::XChaCha20Poly1305,
    ];

    /// The name `init --encryption`, `show`, `--json` and the config use.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Scheme::Aegis256X4 => "aegis256x4-blake3",
            Scheme::Xaes256Gcm => "xaes256gcm-blake3",
            Scheme::XChaCha20Poly1305 => "xchacha20poly1305-blake3",
        }
    }

    /// The scheme of this name, if it is one.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Every scheme's name, for messages: "a, b".
    #[must_use]
    pub fn names() -> String {
        Scheme::ALL.map(Scheme::name).join(", ")
    }

    /// The `blake3::derive_key` context of this scheme's seal key (one key per cipher).
    fn seal_context(self) -> &'static str {
        match self {
            Scheme::Aegis256X4 => CONTEXT_SEAL_AEGIS,
            Scheme::Xaes256Gcm => CONTEXT_SEAL_XAES,
            Scheme::XChaCha20Poly1305 => CONTEXT_SEAL,
        }
    }

    /// Length of the random nonce that opens a sealed object of this scheme.
    #[must_use]
    pub const fn nonce_len(self) -> usize {
        match self {
            Scheme::Aegis256X4 => AEGIS_NONCE_LEN,
            Scheme::Xaes256Gcm | Scheme::XChaCha20Poly1305 => NONCE_LEN,
        }
    }

    /// Length of the tag that closes a sealed object of this scheme.
    #[must_use]
    pub const fn tag_len(self) -> usize {
        match self {
            Scheme::Aegis256X4 => AEGIS_TAG_LEN,
            Scheme::Xaes256Gcm | Scheme::XChaCha20Poly1305 => TAG_LEN,
        }
    }

    /// Bytes a sealed object of this scheme adds: its nonce and its tag.
    #[must_use]
    pub const fn overhead(self) -> usize {
        self.nonce_len() + self.tag_len()
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Length of the random nonce of XAES-256-GCM and XChaCha20-Poly1305 (192 bits).
const NONCE_LEN: usize = 24;
/// Length of the tag (Poly1305 or GCM) of XAES-256-GCM and XChaCha20-Poly1305.
const TAG_LEN: usize = 16;
/// Length of AEGIS-256X4's random nonce (256 bits).
const AEGIS_NONCE_LEN: usize = 32;
/// Length of AEGIS-256X4's tag (256 bits, as the draft recommends where it fits).
const AEGIS_TAG_LEN: usize = 32;

/// First bytes of every seal's associated data (the layout's version).
const SEAL_AD_PREFIX: &[u8; 16] = b"snapkeep-seal-v1";

/// `blake3::derive_key` context of the seal key of XChaCha20-Poly1305.
const CONTEXT_SEAL: &str = "snapkeep 2026-12 seal key";
/// `blake3::derive_key` context of the seal key of AEGIS-256X4.
const CONTEXT_SEAL_AEGIS: &str = "snapkeep 2026-12 aegis-256x4 seal key";
/// `blake3::derive_key` context of the seal key of XAES-256-GCM.
const CONTEXT_SEAL_XAES: &str = "snapkeep 2026-12 xaes-256-gcm seal key";
/// `blake3::derive_key` context of the id (keyed blake3) key.
const CONTEXT_ID: &str = "snapkeep 2026-12 id key";
/// `blake3::derive_key` context of the chunker seed.
const CONTEXT_CHUNKER: &str = "snapkeep 2026-12 chunker seed";

/// The detail of every failure to open a sealed object.
pub(crate) const AUTH_FAILED: &str =
    "fails authentication: it is damaged, or was not written by this repository with this key";

/// What a sealed object is; its byte goes into the associated data, so an object of one kind
/// never opens as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SealKind {
    /// The secret part of the repository config.
    Config = 1,
    /// A data blob (file content, after compression).
    DataBlob = 2,
    /// A tree blob (one directory).
    TreeBlob = 3,
    /// The trailer of a pack (its blob table).
    PackTrailer = 4,
    /// An index file.
    Index = 5,
    /// A snapshot record.
    Snapshot = 6,
}

impl SealKind {
    /// The byte this kind puts into the associated data.
    #[must_use]
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn random_fill(buf: &mut [u8], what: &str) -> Result<()> {
    getrandom::fill(buf).map_err(|e| {
        Error::io(
            "draw random bytes from",
            format!("the operating system's random number generator (for {what})"),
            std::io::Error::other(e.to_string()),
        )
    })
}

/// The random master secret made at init (32 bytes), zeroized on drop. Never stored unwrapped.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    secret: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A new random master secret from the OS generator; its failure is an `Err`, not a panic.
    pub fn generate() -> Result<MasterKey> {
        let mut key = MasterKey { secret: [0u8; 32] };
        random_fill(&mut key.secret, "a new master key")?;
        Ok(key)
    }

    /// The master key with this secret (a caller that keeps the secret itself, and tests).
    /// The caller's copy is not zeroized here; wipe it after the call.
    #[must_use]
    pub fn from_bytes(secret: &[u8; 32]) -> MasterKey {
        let mut key = MasterKey { secret: [0u8; 32] };
        key.secret.copy_from_slice(secret);
        key
    }

    /// The secret itself, for wrapping it into a key file.
    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The purpose keys of the repository `repo_id` sealed with `scheme`: each is
    /// `blake3::derive_key(context, secret | repo_id)` with its own context string.
    #[must_use]
    pub fn keys(&self, scheme: Scheme, repo_id: &[u8; 16]) -> Keys {
        let mut material = Zeroizing::new([0u8; 48]);
        material[..32].copy_from_slice(&self.secret);
        material[32..].copy_from_slice(repo_id);
        let mut seed = Zeroizing::new(blake3::derive_key(CONTEXT_CHUNKER, &material[..]));
        let mut first = [0u8; 8];
        first.copy_from_slice(&seed[..8]);
        // fastcdc treats a zero seed as "no seed"; 1 in 2^64 draws is mapped to 1.
        let chunker = u64::from_le_bytes(first).max(1);
        first.zeroize();
        seed.zeroize();
        Keys {
            scheme,
            repo_id: *repo_id,
            seal: blake3::derive_key(scheme.seal_context(), &material[..]),
            id: blake3::derive_key(CONTEXT_ID, &material[..]),
            chunker,
        }
    }
}

/// The purpose keys of one repository, zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Keys {
    #[zeroize(skip)]
    scheme: Scheme,
    repo_id: [u8; 16],
    seal: [u8; 32],
    id: [u8; 32],
    chunker: u64,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keys {{ scheme: {}, repo_id: {}, .. }}",
            self.scheme,
            hex::encode(self.repo_id)
        )
    }
}

/// XAES-256-GCM's key derivation (C2SP XAES-256-GCM, steps 1-5: NIST SP 800-108r1 counter
/// mode with CMAC-AES-256 over one block): the AES-256-GCM key for the nonce half `n1`.
fn xaes_key(key: &[u8; 32], n1: &[u8; 12]) -> Zeroizing<[u8; 32]> {
    let aes = Aes256::new(key.into());
    // L = AES-256(K, 0^128); K1 = L << 1, xor 0x87 into the last byte when L's top bit is set.
    let mut block = aes::Block::default();
    aes.encrypt_block(&mut block);
    let mut k1 = Zeroizing::new([0u8; 16]);
    for i in 0..16 {
        let carry = if i + 1 < 16 { block[i + 1] >> 7 } else { 0 };
        k1[i] = (block[i] << 1) | carry;
    }
    k1[15] ^= (block[0] >> 7) * 0x87;
    let mut derived = Zeroizing::new([0u8; 32]);
    for (half, counter) in [(0usize, 1u8), (1, 2)] {
        // M = 0x00 | counter | "X" | 0x00 | N[:12]; K_half = AES-256(K, M xor K1).
        block[..4].copy_from_slice(&[0, counter, b'X', 0]);
        block[4..].copy_from_slice(n1);
        for (b, k) in block.iter_mut().zip(k1.iter()) {
            *b ^= k;
        }
        aes.encrypt_block(&mut block);
        derived[half * 16..half * 16 + 16].copy_from_slice(&block);
    }
    block.fill(0);
    derived
}

/// ring's AES-256-GCM under the XAES-256-GCM key of `nonce`, with its 96-bit GCM nonce.
fn xaes_cipher(
    seal_key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
) -> Option<(ring::aead::LessSafeKey, ring::aead::Nonce)> {
    let mut n1 = [0u8; 12];
    let mut n2 = [0u8; 12];
    n1.copy_from_slice(&nonce[..12]);
    n2.copy_from_slice(&nonce[12..]);
    let derived = xaes_key(seal_key, &n1);
    let key = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &derived[..]).ok()?;
    Some((
        ring::aead::LessSafeKey::new(key),
        ring::aead::Nonce::assume_unique_for_key(n2),
    ))
}

impl Keys {
    /// The scheme these keys seal with.
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The repository id these keys were derived for (it is in every seal's associated data).
    #[must_use]
    pub fn repo_id(&self) -> &[u8; 16] {
        &self.repo_id
    }

    /// The associated data of a seal of `kind` named `name` in this repository.
    fn associated_data(&self, kind: SealKind, name: &[u8]) -> Vec<u8> {
        let mut ad = Vec::with_capacity(SEAL_AD_PREFIX.len() + 16 + 1 + name.len());
        ad.extend_from_slice(SEAL_AD_PREFIX);
        ad.extend_from_slice(&self.repo_id);
        ad.push(kind.as_u8());
        ad.extend_from_slice(name);
        ad
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        let key: &Key = (&self.seal).into();
        XChaCha20Poly1305::new(key)
    }

    /// Bytes a seal with these keys adds to an object.
    #[must_use]
    pub fn overhead(&self) -> usize {
        self.scheme.overhead()
    }

    /// AEAD-seals `plain` with a random nonce; output = nonce | ciphertext | tag (lengths of
    /// the scheme). Associated data = b"snapkeep-seal-v1" | repo_id (16) | kind as u8 | name
    /// (the object's id bytes or key string).
    pub fn seal(&self, kind: SealKind, name: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plain.len() + self.overhead());
        self.seal_into(kind, name, plain, &mut out)?;
        Ok(out)
    }

    /// [`Keys::seal`] of a buffer the caller gives up: encrypted in place, so a large object
    /// (an index file) needs its size in memory once, not twice. The output is the same form
    /// (nonce | ciphertext | tag).
    pub fn seal_vec(&self, kind: SealKind, name: &[u8], mut plain: Vec<u8>) -> Result<Vec<u8>> {
        let nonce_len = self.scheme.nonce_len();
        let mut nonce_bytes = [0u8; AEGIS_NONCE_LEN];
        random_fill(&mut nonce_bytes[..nonce_len], "a nonce")?;
        let ad = self.associated_data(kind, name);
        let plain_len = plain.len();
        let too_long = || {
            Error::InvalidInput(format!(
                "a {kind:?} object of {plain_len} bytes is too long to seal; {} seals at most 64 GiB",
                self.scheme
            ))
        };
        let tag: Vec<u8> = match self.scheme {
            Scheme::Aegis256X4 => {
                aegis::aegis256x4::Aegis256X4::<AEGIS_TAG_LEN>::new(&self.seal, &nonce_bytes)
                    .encrypt_in_place(&mut plain, &ad)
                    .to_vec()
            }
            Scheme::Xaes256Gcm => {
                let nonce = <&[u8; NONCE_LEN]>::try_from(&nonce_bytes[..nonce_len])
                    .map_err(|_| too_long())?;
                let (key, gcm_nonce) = xaes_cipher(&self.seal, nonce).ok_or_else(too_long)?;
                key.seal_in_place_separate_tag(
                    gcm_nonce,
                    ring::aead::Aad::from(&ad[..]),
                    &mut plain,
                )
                .map_err(|_| too_long())?
                .as_ref()
                .to_vec()
            }
            Scheme::XChaCha20Poly1305 => {
                let nonce =
                    <&XNonce>::try_from(&nonce_bytes[..nonce_len]).map_err(|_| too_long())?;
                self.cipher()
                    .encrypt_inout_detached(nonce, &ad, (&mut plain[..]).into())
                    .map_err(|_| too_long())?
                    .to_vec()
            }
        };
        plain.reserve_exact(nonce_len + tag.len());
        plain.extend_from_slice(&tag);
        plain.splice(0..0, nonce_bytes[..nonce_len].iter().copied());
        Ok(plain)
    }

    /// [`Keys::seal`] into `out` (cleared first), so a caller can reuse one buffer.
    pub fn seal_into(
        &self,
        kind: SealKind,
        name: &[u8],
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let nonce_len = self.scheme.nonce_len();
        let mut nonce_bytes = [0u8; AEGIS_NONCE_LEN];
        let nonce = &mut nonce_bytes[..nonce_len];
        random_fill(nonce, "a nonce")?;
        let ad = self.associated_data(kind, name);
        // The nonce, then room for the ciphertext: the buffer's old bytes are overwritten, so
        // only its growth is zero-filled. AEGIS encrypts from `plain` straight into it; the
        // other two encrypt in place, so the plaintext is copied in first.
        let end = nonce_len + plain.len();
        out.truncate(end);
        out.resize(end, 0);
        out.reserve(self.scheme.tag_len());
        out[..nonce_len].copy_from_slice(nonce);
        let too_long = || {
            Error::InvalidInput(format!(
                "a {kind:?} object of {} bytes is too long to seal; {} seals at most 64 GiB",
                plain.len(),
                self.scheme
            ))
        };
        match self.scheme {
            Scheme::Aegis256X4 => {
                let mut encryptor =
                    aegis::aegis256x4::Aegis256X4::<AEGIS_TAG_LEN>::new(&self.seal, &nonce_bytes)
                        .encryptor(&ad);
                encryptor.update(plain, &mut out[nonce_len..]);
                out.extend_from_slice(&encryptor.finalize());
            }
            Scheme::Xaes256Gcm => {
                out[nonce_len..].copy_from_slice(plain);
                let nonce = <&[u8; NONCE_LEN]>::try_from(&*nonce).map_err(|_| too_long())?;
                let (key, gcm_nonce) = xaes_cipher(&self.seal, nonce).ok_or_else(too_long)?;
                let tag = key
                    .seal_in_place_separate_tag(
                        gcm_nonce,
                        ring::aead::Aad::from(&ad[..]),
                        &mut out[nonce_len..],
                    )
                    .map_err(|_| too_long())?;
                out.extend_from_slice(tag.as_ref());
            }
            Scheme::XChaCha20Poly1305 => {
                out[nonce_len..].copy_from_slice(plain);
                let nonce = <&XNonce>::try_from(&*nonce).map_err(|_| too_long())?;
                let tag = self
                    .cipher()
                    .encrypt_inout_detached(nonce, &ad, (&mut out[nonce_len..]).into())
                    .map_err(|_| too_long())?;
                out.extend_from_slice(tag.as_slice());
            }
        }
        Ok(())
    }

    /// Opens what `seal` made with the same kind and name; anything else (a flipped byte,
    /// truncation, another repository's object, another name, another kind) is
    /// `Error::corrupt(object, "fails authentication: …")`; `object` names it for the message.
    pub fn open(
        &self,
        kind: SealKind,
        name: &[u8],
        sealed: &[u8],
        object: &str,
    ) -> Result<Vec<u8>> {
        self.open_vec(kind, name, sealed.to_vec(), object)
    }

    /// [`Keys::open`] of a buffer the caller gives up: opened in place, so a large object
    /// (an index file) needs its size in memory once, not twice.
    pub fn open_vec(
        &self,
        kind: SealKind,
        name: &[u8],
        mut buf: Vec<u8>,
        object: &str,
    ) -> Result<Vec<u8>> {
        let len = self.open_in_place(kind, name, &mut buf, object)?.len();
        // The plaintext stands after the nonce, where the ciphertext was.
        buf.drain(..self.scheme.nonce_len());
        buf.truncate(len);
        Ok(buf)
    }

    /// [`Keys::open`] in the caller's buffer: the plaintext is left in `sealed` and returned
    /// as a slice of it (no copy); on failure the buffer's contents are unspecified.
    pub fn open_in_place<'a>(
        &self,
        kind: SealKind,
        name: &[u8],
        sealed: &'a mut [u8],
        object: &str,
    ) -> Result<&'a [u8]> {
        let failed = || Error::corrupt(object, AUTH_FAILED);
        if sealed.len() < self.overhead() {
            return Err(failed());
        }
        let (nonce, rest) = sealed.split_at_mut(self.scheme.nonce_len());
        let ad = self.associated_data(kind, name);
        match self.scheme {
            Scheme::Aegis256X4 => {
                let at = rest.len() - AEGIS_TAG_LEN;
                let (body, tag) = rest.split_at_mut(at);
                let nonce = <&[u8; AEGIS_NONCE_LEN]>::try_from(&*nonce).map_err(|_| failed())?;
                let tag = <&[u8; AEGIS_TAG_LEN]>::try_from(&*tag).map_err(|_| failed())?;
                aegis::aegis256x4::Aegis256X4::<AEGIS_TAG_LEN>::new(&self.seal, nonce)
                    .decrypt_in_place(body, tag, &ad)
                    .map_err(|_| failed())?;
                Ok(&*body)
            }
            Scheme::Xaes256Gcm => {
                let nonce = <&[u8; NONCE_LEN]>::try_from(&*nonce).map_err(|_| failed())?;
                let (key, gcm_nonce) = xaes_cipher(&self.seal, nonce).ok_or_else(failed)?;
                let plain = key
                    .open_in_place(gcm_nonce, ring::aead::Aad::from(&ad[..]), rest)
                    .map_err(|_| failed())?;
                Ok(&*plain)
            }
            Scheme::XChaCha20Poly1305 => {
                let at = rest.len() - TAG_LEN;
                let (body, tag) = rest.split_at_mut(at);
                let nonce = <&XNonce>::try_from(&*nonce).map_err(|_| failed())?;
                let tag = <&Tag>::try_from(&*tag).map_err(|_| failed())?;
                self.cipher()
                    .decrypt_inout_detached(nonce, &ad, (&mut *body).into(), tag)
                    .map_err(|_| failed())?;
                Ok(&*body)
            }
        }
    }

    /// Keyed blake3 (`blake3::keyed_hash` with the id key): chunk and tree ids of an encrypted
    /// repository.
    #[must_use]
    pub fn id_hash(&self, data: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.id, data).as_bytes()
    }

    /// A non-zero u64 seed for fastcdc's `with_level_and_seed` (gear table XOR), derived from
    /// the master secret and the repository id.
    #[must_use]
    pub fn chunker_seed(&self) -> u64 {
        self.chunker
    }
}

#[cfg(test)]
mod tests;
