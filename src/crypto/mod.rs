//! Encryption at rest: the master secret, the purpose keys derived from it, and the AEAD seal
//! that every stored object of an encrypted repository goes through.
//!
//! Owns:
//! - [`MasterKey`]: the random 32-byte secret made at `init`; it is stored only wrapped in key
//!   files ([`KeyFile`], Argon2id from a password, in `keyfile.rs`).
//! - [`Keys`]: the purpose keys of one repository, each derived from the master secret and the
//!   repository id with `blake3::derive_key` under its own context string: the seal key
//!   (XChaCha20-Poly1305), the id key (keyed blake3 for chunk and tree ids) and the chunker
//!   seed (fastcdc's gear-table XOR).
//! - The sealed layout, [`SCHEME`]: `nonce[24] | ciphertext | tag[16]`, with a random 192-bit
//!   nonce per object, so concurrent writers need no nonce state and no per-key message limit
//!   applies in practice (random 96-bit AES-GCM nonces would).
//!
//! Invariants:
//! - The associated data of a seal is `b"snapkeep-seal-v1" | repo_id[16] | kind u8 | name`;
//!   every part before `name` has a fixed length, so two different (repository, kind, name)
//!   triples never share associated data. An object opens only with the kind, the name and the
//!   keys of the repository that sealed it.
//! - Every failure to open is the same one-sentence [`Error::Corrupt`] naming the object: a
//!   reader learns nothing about which check failed.
//! - Key material (the master secret, the purpose keys, intermediate key buffers) is zeroized
//!   when dropped, and `Debug` never prints it.
//!
//! Must not: do I/O (beyond asking the OS for random bytes), know object keys or layouts of
//! the repository, or panic on any bytes it is asked to open.

pub mod keyfile;

pub use keyfile::{KdfParams, KeyFile};

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Key, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};

/// The name of the encryption scheme, as `show` and the config report it.
pub const SCHEME: &str = "xchacha20poly1305-blake3";

/// Bytes a sealed object adds: 24-byte nonce + 16-byte tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Length of the random XChaCha20 nonce that opens a sealed object.
const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag that closes a sealed object.
const TAG_LEN: usize = 16;

/// First bytes of every seal's associated data (the layout's version).
const SEAL_AD_PREFIX: &[u8; 16] = b"snapkeep-seal-v1";

/// `blake3::derive_key` context of the seal (XChaCha20-Poly1305) key.
const CONTEXT_SEAL: &str = "snapkeep 2026-12 seal key";
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

    /// The purpose keys of the repository `repo_id`: each is `blake3::derive_key(context,
    /// secret | repo_id)` with its own context string.
    #[must_use]
    pub fn keys(&self, repo_id: &[u8; 16]) -> Keys {
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
            repo_id: *repo_id,
            seal: blake3::derive_key(CONTEXT_SEAL, &material[..]),
            id: blake3::derive_key(CONTEXT_ID, &material[..]),
            chunker,
        }
    }
}

/// The purpose keys of one repository, zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Keys {
    repo_id: [u8; 16],
    seal: [u8; 32],
    id: [u8; 32],
    chunker: u64,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys {{ repo_id: {}, .. }}", hex::encode(self.repo_id))
    }
}

impl Keys {
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

    /// AEAD-seals `plain`: XChaCha20-Poly1305, random 192-bit nonce; output = nonce(24) |
    /// ciphertext | tag(16). Associated data = b"snapkeep-seal-v1" | repo_id (16) | kind as u8
    /// | name (the object's id bytes or key string).
    pub fn seal(&self, kind: SealKind, name: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        random_fill(&mut nonce, "a nonce")?;
        let mut out = Vec::with_capacity(plain.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .cipher()
            .encrypt_inout_detached(
                &XNonce::from(nonce),
                &self.associated_data(kind, name),
                (&mut out[NONCE_LEN..]).into(),
            )
            .map_err(|_| {
                Error::InvalidInput(format!(
                    "a {kind:?} object of {} bytes is too long to seal; XChaCha20-Poly1305 seals at most 256 GiB",
                    plain.len()
                ))
            })?;
        out.extend_from_slice(tag.as_slice());
        Ok(out)
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
        let failed = || Error::corrupt(object, AUTH_FAILED);
        if sealed.len() < SEAL_OVERHEAD {
            return Err(failed());
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = <&XNonce>::try_from(nonce).map_err(|_| failed())?;
        let tag = <&Tag>::try_from(tag).map_err(|_| failed())?;
        let mut plain = body.to_vec();
        self.cipher()
            .decrypt_inout_detached(
                nonce,
                &self.associated_data(kind, name),
                plain.as_mut_slice().into(),
                tag,
            )
            .map_err(|_| failed())?;
        Ok(plain)
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
