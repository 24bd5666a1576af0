//! `snapkeep init`: create a repository with the chunker, compression, pack size and
//! encryption given (encrypted unless `--encryption none`; the first key's password from the
//! password sources, asked twice at a prompt).

use anyhow::Result;
use serde_json::json;

use snapkeep::chunker::ChunkerParams;
use snapkeep::crypto::{KdfParams, Scheme};
use snapkeep::format::repo_config::RepoConfig;
use snapkeep::{Compression, Encryption, InitOptions};

use crate::cli::env::Env;
use crate::cli::usage_error;

/// The flags of `init`.
pub struct Flags<'a> {
    pub chunk_avg: Option<u64>,
    pub compression: &'a str,
    pub pack_size: Option<u64>,
    pub encryption: &'a str,
    pub kdf: &'a str,
}

/// Creates the repository; prints its parameters (`--json`) or a line naming it.
pub fn run(env: &Env, flags: &Flags<'_>) -> Result<i32> {
    let mut opts = init_options(flags.chunk_avg, flags.compression, flags.pack_size)?;
    opts.encryption = encryption(env, flags.encryption, flags.kdf)?;
    let repo = env.repo.init(&opts)?;
    let c = repo.config();
    env.print(
        || {
            json!({
                "repository": env.repo.display(),
                "id": hex::encode(c.id),
                "version": c.version,
                "encryption": repo.codec().scheme(),
                "key": repo.unlocked().map(|u| u.key_id.clone()),
                "chunker": {"min": c.chunker.min, "avg": c.chunker.avg, "max": c.chunker.max},
                "compression": c.compression.to_string(),
                "pack_size": c.pack_size,
            })
        },
        || {
            env.say(&format!(
                "created repository {} at {} ({})",
                hex::encode(&c.id[..4]),
                env.repo.display(),
                if repo.codec().is_sealed() {
                    "encrypted: keep the password, nothing in it can be read without it"
                } else {
                    "not encrypted: whoever can read its storage reads the data"
                }
            ));
        },
    );
    Ok(0)
}

/// How long `--kdf auto` makes one key derivation take here (the floor of what a key file
/// costs a password guesser per guess).
const KDF_TARGET: std::time::Duration = std::time::Duration::from_millis(300);

/// The encryption `--encryption` and `--kdf` ask for, with the first key's password.
pub fn encryption(env: &Env, scheme: &str, kdf: &str) -> Result<Encryption> {
    match scheme {
        "none" => Ok(Encryption::None),
        name => {
            let Some(scheme) = Scheme::from_name(name) else {
                return Err(usage_error(format!(
                    "--encryption '{name}' is not known; choose {} or none",
                    Scheme::names()
                )));
            };
            let kdf = parse_kdf(kdf)?;
            weak_kdf_warning(env, kdf);
            let password = env.password.get(
                &format!("the new repository at {}", env.repo.display()),
                true,
            )?;
            Ok(Encryption::Password {
                password,
                kdf,
                scheme,
            })
        }
    }
}

/// Says so on stderr when `kdf` is cheaper to attack than the default.
pub fn weak_kdf_warning(env: &Env, kdf: KdfParams) {
    let d = KdfParams::DEFAULT;
    if kdf.m_kib < d.m_kib || kdf.t < d.t {
        env.say(&format!(
            "warning: Argon2id m={}KiB,t={},p={} is cheaper to attack than the default m=64MiB,t=3,p=4; a stolen key file gives up a weak password sooner",
            kdf.m_kib, kdf.t, kdf.p
        ));
    }
}

/// `auto` (see `KdfParams::calibrated`) or `m=64MiB,t=3,p=4` (any order, each once; m a size
/// of at least 8 KiB per lane).
pub fn parse_kdf(spec: &str) -> Result<KdfParams> {
    if spec.trim() == "auto" {
        return Ok(KdfParams::calibrated(KDF_TARGET)?);
    }
    let bad = |why: &str| {
        usage_error(format!(
            "--kdf '{spec}' {why}; give auto or m=MEMORY,t=PASSES,p=LANES, e.g. m=64MiB,t=3,p=4"
        ))
    };
    let (mut mem, mut passes, mut lanes) = (None, None, None);
    for part in spec.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| bad("is not understood"))?;
        let key = key.trim();
        let slot = match key {
            "m" => &mut mem,
            "t" => &mut passes,
            "p" => &mut lanes,
            _ => return Err(bad("names an unknown parameter")),
        };
        if slot.is_some() {
            return Err(bad("names a parameter twice"));
        }
        let value = value.trim();
        *slot = Some(if key == "m" {
            snapkeep::units::parse_size(value)
                .map_err(|_| bad("has a memory size that is not a size"))?
                / 1024
        } else {
            value
                .parse::<u64>()
                .map_err(|_| bad("has a value that is not a number"))?
        });
    }
    let (Some(mem), Some(passes), Some(lanes)) = (mem, passes, lanes) else {
        return Err(bad("lacks one of m, t and p"));
    };
    let num = |v: u64| u32::try_from(v).map_err(|_| bad("has a value that is too large"));
    let params = KdfParams {
        m_kib: num(mem)?,
        t: num(passes)?,
        p: num(lanes)?,
    };
    params.check()?;
    Ok(params)
}

/// The options of the flags, refusing a chunk or pack size out of range.
fn init_options(
    chunk_avg: Option<u64>,
    compression: &str,
    pack_size: Option<u64>,
) -> Result<InitOptions> {
    let mut opts = InitOptions::default();
    if let Some(avg) = chunk_avg {
        let avg = u32::try_from(avg)
            .map_err(|_| usage_error(format!("--chunk-avg {avg} is too large")))?;
        opts.chunker = ChunkerParams::with_avg(avg)?;
    }
    opts.compression = compression.parse::<Compression>()?;
    if let Some(ps) = pack_size {
        opts.pack_size = RepoConfig::pack_size(ps).ok_or_else(|| {
            usage_error(format!("--pack-size {ps} must be between 1MiB and 1GiB"))
        })?;
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_flags_parse_and_refuse() {
        let p = parse_kdf("m=64MiB,t=3,p=4").expect("default");
        assert_eq!(p, KdfParams::DEFAULT);
        let p = parse_kdf("p=1, t=1, m=64KiB").expect("low");
        assert_eq!((p.m_kib, p.t, p.p), (64, 1, 1));
        for bad in [
            "",
            "m=64MiB",
            "m=64MiB,t=3,p=4,p=4",
            "x=1,t=1,p=1",
            "m=a,t=1,p=1",
            "m=64MiB,t=0,p=4",
        ] {
            assert!(parse_kdf(bad).is_err(), "{bad}");
        }
    }
}
