//! The Alopex DB stage, through the database's own readers (`alopex-core` =0.8.16):
//! `checkpoint.meta` loads, `lsm.wal` replays with no stop reason (strict), and every
//! `sst/*.sst` opens (which checks its whole-file CRC32).

use std::path::Path;

use alopex_core::lsm::LsmKVConfig;
use alopex_core::lsm::checkpoint::load_checkpoint_meta;
use alopex_core::lsm::sstable::SSTableReader;
use alopex_core::lsm::wal::WalReader;

use super::Stage;

/// Checks Alopex data-directory files.
pub struct AlopexStage;

impl Stage for AlopexStage {
    fn name(&self) -> &'static str {
        "alopex"
    }

    fn applies_to(&self, rel: &str) -> bool {
        rel == "checkpoint.meta"
            || rel == "lsm.wal"
            || rel.strip_prefix("sst/").is_some_and(|n| {
                !n.contains('/')
                    && Path::new(n)
                        .extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("sst"))
            })
    }

    fn check(&self, rel: &str, path: &Path) -> Vec<String> {
        match rel {
            "checkpoint.meta" => match load_checkpoint_meta(path) {
                Ok(Some(_)) => vec![],
                Ok(None) => {
                    vec!["checkpoint.meta does not load (short file or CRC mismatch)".into()]
                }
                Err(e) => vec![format!("checkpoint.meta cannot be read: {e}")],
            },
            "lsm.wal" => check_wal(path),
            _ => match SSTableReader::open(path) {
                Ok(_) => vec![],
                Err(e) => vec![format!("SSTable does not open: {e}")],
            },
        }
    }
}

fn check_wal(path: &Path) -> Vec<String> {
    let mut reader = match WalReader::open(path, LsmKVConfig::default().wal) {
        Ok(r) => r,
        Err(e) => return vec![format!("WAL does not open: {e}")],
    };
    match reader.replay() {
        Err(e) => vec![format!("WAL replay failed: {e}")],
        Ok(r) => match r.stop_reason {
            None => vec![],
            Some(reason) => {
                let at = r
                    .stopped_at
                    .map_or_else(String::new, |o| format!(" at ring offset {o}"));
                if reason.contains("truncated") {
                    vec![format!(
                        "WAL torn tail{at}: {reason} ({} entries before it)",
                        r.entries.len()
                    )]
                } else {
                    vec![format!(
                        "WAL damaged record in the middle{at}: {reason}; replay would drop every batch after it ({} entries before it)",
                        r.entries.len()
                    )]
                }
            }
        },
    }
}
