//! The key files of an encrypted repository (`keys/<id>`): which one a password opens, and
//! adding, listing and removing them.
//!
//! Owns: the rules of key management. Every key file wraps the same master key, each with its
//! own password and Argon2id parameters, so several people or machines can open one
//! repository and one of them can be revoked without touching the data. The last key file is
//! never removed (without it nothing in the repository can be read again), nor the one the
//! caller opened the repository with (change its password with [`passwd`] instead).
//!
//! Invariants: a key file holds nothing of the data; a wrong password reads and writes
//! nothing but the key files it tries.
//!
//! Must not: know what the master key seals (that is [`crate::codec`]'s).

use crate::backend::Backend;
use crate::crypto::{KdfParams, KeyFile, MasterKey};
use crate::error::{Error, Result};
use crate::format::keys;

/// One key file as `key list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key file's id (its name under `keys/`).
    pub id: String,
    /// The host that made it.
    pub host: String,
    /// When it was made, nanoseconds since the Unix epoch.
    pub created_ns: i64,
    /// Its Argon2id parameters.
    pub kdf: KdfParams,
}

/// Ids of every key file, sorted.
fn key_ids(backend: &dyn Backend) -> Result<Vec<String>> {
    let mut ids: Vec<String> = backend
        .list(keys::Kind::Key.prefix())?
        .into_iter()
        .filter_map(|o| match keys::parse(&o.key) {
            keys::Key::KeyFile(name) => Some(name.to_owned()),
            _ => None,
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// Reads key file `id`.
fn read(backend: &dyn Backend, id: &str) -> Result<KeyFile> {
    let key = keys::key_file(id);
    let bytes = backend.get(&key)?;
    KeyFile::from_bytes(&bytes, &format!("key file {id}"))
}

/// The master key that `password` opens, and the id of the key file that opened it. No key
/// file that opens is an input error naming the repository; damaged key files are skipped
/// (another may open) and named when none does.
pub fn unlock(backend: &dyn Backend, password: &[u8]) -> Result<(MasterKey, String)> {
    let ids = key_ids(backend)?;
    if ids.is_empty() {
        return Err(Error::corrupt(
            format!("the repository at {}", backend.location()),
            "it is encrypted but holds no key file (keys/ is empty), so nothing in it can be read; put back the key files from a copy of the repository",
        ));
    }
    let mut damaged = Vec::new();
    for id in &ids {
        match read(backend, id) {
            Ok(file) => {
                if let Some(master) = file.open(password)? {
                    return Ok((master, id.clone()));
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => damaged.push(format!("{id} ({e})")),
        }
    }
    let mut msg = format!(
        "no key in {} opens with this password; check the password (or its file or command)",
        backend.location()
    );
    if !damaged.is_empty() {
        msg.push_str("; these key files could not be read: ");
        msg.push_str(&damaged.join(", "));
    }
    Err(Error::InvalidInput(msg))
}

/// Writes a new key file that wraps `master` with `password`; returns its id.
pub fn add(
    backend: &dyn Backend,
    master: &MasterKey,
    password: &[u8],
    kdf: KdfParams,
) -> Result<String> {
    kdf.check()?;
    if password.is_empty() {
        return Err(Error::InvalidInput(
            "an empty password protects nothing; give a password".into(),
        ));
    }
    let file = KeyFile::create(
        master,
        password,
        kdf,
        &crate::clock::hostname(),
        crate::clock::now_ns(),
    )?;
    let id = file.id();
    if !backend.put_if_absent(&keys::key_file(&id), &file.to_bytes())? {
        return Err(Error::Conflict(format!(
            "key file {id} exists already in {}; try again",
            backend.location()
        )));
    }
    Ok(id)
}

/// Every key file, sorted by id; one that cannot be read is an error naming it.
pub fn list(backend: &dyn Backend) -> Result<Vec<KeyInfo>> {
    key_ids(backend)?
        .into_iter()
        .map(|id| {
            let f = read(backend, &id)?;
            Ok(KeyInfo {
                host: f.host().to_owned(),
                created_ns: f.created_ns(),
                kdf: f.params(),
                id,
            })
        })
        .collect()
}

/// Removes key file `id` (a unique prefix is enough), unless it is the last one or the one in
/// use (`current`).
pub fn remove(backend: &dyn Backend, id: &str, current: &str) -> Result<String> {
    let ids = key_ids(backend)?;
    let matching: Vec<&String> = ids.iter().filter(|k| k.starts_with(id)).collect();
    let found = match matching.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(Error::NotFound(format!(
                "key file '{id}' in {} ('snapkeep key list' shows them)",
                backend.location()
            )));
        }
        _ => {
            return Err(Error::InvalidInput(format!(
                "'{id}' names {} key files; give more of the id",
                matching.len()
            )));
        }
    };
    if ids.len() == 1 {
        return Err(Error::InvalidInput(format!(
            "key file {found} is the last key of {}; without it nothing in the repository can be read again, so it is never removed (add another key first)",
            backend.location()
        )));
    }
    if found == current {
        return Err(Error::InvalidInput(format!(
            "key file {found} is the key this command opened the repository with; open it with another key to remove this one, or change its password with 'snapkeep key passwd'"
        )));
    }
    backend.delete(&keys::key_file(&found))?;
    Ok(found)
}

/// Changes the password of the key in use: a new key file with `new_password` is written
/// first, then the old one (`current`) is removed; returns the new id.
pub fn passwd(
    backend: &dyn Backend,
    master: &MasterKey,
    current: &str,
    new_password: &[u8],
    kdf: KdfParams,
) -> Result<String> {
    let new = add(backend, master, new_password, kdf)?;
    backend.delete(&keys::key_file(current))?;
    Ok(new)
}
