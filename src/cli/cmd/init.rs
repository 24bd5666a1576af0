//! `snapkeep init`: create a repository with the chunker, compression and pack size given.

use anyhow::Result;
use serde_json::json;

use snapkeep::chunker::ChunkerParams;
use snapkeep::format::repo_config::RepoConfig;
use snapkeep::{Compression, InitOptions};

use crate::cli::env::Env;
use crate::cli::usage_error;

/// Creates the repository; prints its parameters (`--json`) or a line naming it.
pub fn run(
    env: &Env,
    chunk_avg: Option<u64>,
    compression: &str,
    pack_size: Option<u64>,
) -> Result<i32> {
    let opts = init_options(chunk_avg, compression, pack_size)?;
    let repo = env.repo.init(&opts)?;
    let c = repo.config();
    env.print(
        || {
            json!({
                "repository": env.repo.display(),
                "id": hex::encode(c.id),
                "version": c.version,
                "chunker": {"min": c.chunker.min, "avg": c.chunker.avg, "max": c.chunker.max},
                "compression": c.compression.to_string(),
                "pack_size": c.pack_size,
            })
        },
        || {
            env.say(&format!(
                "created repository {} at {}",
                hex::encode(&c.id[..4]),
                env.repo.display()
            ));
        },
    );
    Ok(0)
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
