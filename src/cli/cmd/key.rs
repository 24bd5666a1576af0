//! `snapkeep key list | add | remove ID | passwd`: the key files of an encrypted repository.
//! The repository is opened with the password sources as any command opens it; a new
//! password comes from `--new-password-file`, else a prompt (twice).

use anyhow::Result;
use serde_json::json;
use zeroize::Zeroizing;

use snapkeep::Repository;
use snapkeep::clock::rfc3339;
use snapkeep::keyring;

use crate::cli::args::{KeyWhat, NewKeyArgs};
use crate::cli::env::Env;
use crate::cli::password::{PasswordSource, from_file};
use crate::cli::usage_error;

/// Runs one `key` verb.
pub fn run(env: &Env, what: &KeyWhat) -> Result<i32> {
    let repo = env.open()?;
    let Some(unlocked) = repo.unlocked() else {
        return Err(usage_error(format!(
            "the repository at {} is not encrypted, so it has no keys; copy it into an encrypted repository to protect it",
            env.repo.display()
        )));
    };
    let backend = repo.backend().as_ref();
    let current = unlocked.key_id.as_str();
    match what {
        KeyWhat::List => list(env, &repo, current),
        KeyWhat::Add { new } => {
            let (password, kdf) = new_key(env, new)?;
            let id = keyring::add(backend, &unlocked.master, &password, kdf)?;
            env.print(
                || json!({"added": id}),
                || env.say(&format!("added key {id}")),
            );
            Ok(0)
        }
        KeyWhat::Remove { id } => {
            let removed = keyring::remove(backend, id, current)?;
            env.print(
                || json!({"removed": removed}),
                || env.say(&format!("removed key {removed}")),
            );
            Ok(0)
        }
        KeyWhat::Passwd { new } => {
            let (password, kdf) = new_key(env, new)?;
            let id = keyring::passwd(backend, &unlocked.master, current, &password, kdf)?;
            env.print(
                || json!({"added": id, "removed": current}),
                || {
                    env.say(&format!(
                        "changed the password: key {current} is now key {id}"
                    ));
                },
            );
            Ok(0)
        }
    }
}

/// `key list`: a table, or (`--json`) one object a key.
fn list(env: &Env, repo: &Repository, current: &str) -> Result<i32> {
    let keys = keyring::list(repo.backend().as_ref())?;
    env.print(
        || {
            serde_json::Value::Array(
                keys.iter()
                    .map(|k| {
                        json!({
                            "id": k.id,
                            "current": k.id == current,
                            "host": k.host,
                            "created": rfc3339(k.created_ns),
                            "kdf": {"algorithm": "argon2id", "m_kib": k.kdf.m_kib, "t": k.kdf.t, "p": k.kdf.p},
                        })
                    })
                    .collect(),
            )
        },
        || {
            println!(" {:<32}  {:<24}  {:<20}  kdf", "id", "created", "host");
            for k in &keys {
                let mark = if k.id == current { '*' } else { ' ' };
                println!(
                    "{mark}{:<32}  {:<24}  {:<20}  m={}KiB,t={},p={}",
                    k.id,
                    rfc3339(k.created_ns),
                    k.host,
                    k.kdf.m_kib,
                    k.kdf.t,
                    k.kdf.p
                );
            }
        },
    );
    Ok(0)
}

/// The new password and its Argon2id parameters.
fn new_key(
    env: &Env,
    new: &NewKeyArgs,
) -> Result<(Zeroizing<Vec<u8>>, snapkeep::crypto::KdfParams)> {
    let kdf = super::init::parse_kdf(&new.kdf)?;
    super::init::weak_kdf_warning(env, kdf);
    let password = match &new.new_password_file {
        Some(f) => from_file(f, "--new-password-file")?,
        None => PasswordSource::prompt_only(&format!(
            "the new key of the repository at {}",
            env.repo.display()
        ))?,
    };
    Ok((password, kdf))
}
