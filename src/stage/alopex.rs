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
    let open = || WalReader::open(path, LsmKVConfig::default().wal);
    let mut reader = match open() {
        Ok(r) => r,
        Err(e) => return vec![format!("WAL does not open: {e}")],
    };
    let strict = match reader.replay() {
        Err(e) => return vec![format!("WAL replay failed: {e}")],
        Ok(r) => r,
    };
    let Some(reason) = strict.stop_reason else {
        return vec![];
    };
    let at = strict
        .stopped_at
        .map_or_else(String::new, |o| format!(" at ring offset {o}"));
    // Torn tail or damaged middle: replay again allowing resynchronization past the damage.
    // If valid records follow it, the damage is in the middle and strict replay would drop
    // them; if nothing follows, the last record was only half written.
    let later = open()
        .and_then(|mut r| r.replay_with_resync(usize::MAX))
        .map_or(0, |r| r.entries.len());
    if later > strict.entries.len() {
        vec![format!(
            "WAL damaged record in the middle{at}: {reason}; replay would drop the {} entries after it ({} before it)",
            later - strict.entries.len(),
            strict.entries.len()
        )]
    } else {
        vec![format!(
            "WAL torn tail{at}: {reason} ({} entries before it)",
            strict.entries.len()
        )]
    }
}
