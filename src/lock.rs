//! Repository locks: who is using the repository, so prune knows what it must not delete yet.
//!
//! Owns: taking, refreshing (heartbeat), releasing and judging locks. A job (snapshot, restore,
//! verify) takes a shared lock `locks/<uuid>` that records the marks it saw before it loaded
//! its index; a prune takes the exclusive `locks/prune`. Jobs never wait for anything: only a
//! second prune is refused while one runs.
//!
//! A lock is stale when it was taken on this host before its last boot, when its process is
//! gone (same host, no such pid), or when its heartbeat is older than [`STALE_AFTER`]; stale locks are removed by whoever finds them, saying so.
//! A holder whose lock disappeared (removed as stale by someone else) finds out through
//! [`LockGuard::check`] before it commits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::backend::Backend;
use crate::clock::{boot_id, hostname, now_ns, process_alive, rfc3339};
use crate::error::{Error, Result};
use crate::format::gc::{LockKind, LockRecord};
use crate::format::keys::{self, PRUNE_LOCK};

/// How often a holder refreshes its lock.
pub const HEARTBEAT: Duration = Duration::from_secs(60);
pub use crate::clock::STALE_AFTER;

/// A held lock; dropping it stops the heartbeat and removes the lock object.
pub struct LockGuard {
    backend: Arc<dyn Backend>,
    key: String,
    lost: Arc<AtomicBool>,
    stop: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    record: LockRecord,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    /// The lock object's key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The record as written.
    #[must_use]
    pub fn record(&self) -> &LockRecord {
        &self.record
    }

    /// Fails when the lock object was removed by someone else (judged stale): data this
    /// holder relies on may have been pruned, so it must not commit.
    pub fn check(&self) -> Result<()> {
        let gone = self.lost.load(Ordering::Acquire)
            || !still_ours(&*self.backend, &self.key, &self.record)?;
        if gone {
            self.lost.store(true, Ordering::Release);
            return Err(Error::Locked(format!(
                "lock {} of this {} was removed by another process that judged it stale; \
                 nothing was committed, run the {} again",
                self.key, self.record.purpose, self.record.purpose
            )));
        }
        Ok(())
    }

    /// The guard of a lock object just written, with its heartbeat running.
    fn held(backend: &Arc<dyn Backend>, key: String, record: LockRecord) -> Self {
        let guard = LockGuard {
            backend: Arc::clone(backend),
            key,
            lost: Arc::new(AtomicBool::new(false)),
            stop: Mutex::new(None),
            thread: Mutex::new(None),
            record,
        };
        guard.start_heartbeat();
        guard
    }

    fn start_heartbeat(&self) {
        let (tx, rx) = channel::<()>();
        let backend = Arc::clone(&self.backend);
        let key = self.key.clone();
        let lost = Arc::clone(&self.lost);
        let mut record = self.record.clone();
        let handle = std::thread::Builder::new()
            .name("snapkeep-lock-heartbeat".into())
            .spawn(move || {
                loop {
                    match rx.recv_timeout(HEARTBEAT) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    match still_ours(&*backend, &key, &record) {
                        Ok(false) => {
                            lost.store(true, Ordering::Release);
                            return;
                        }
                        Ok(true) => {
                            record.heartbeat_ns = now_ns();
                            // A failed refresh is retried at the next beat; ten in a row make
                            // the lock stale, which `check` then reports.
                            let _ = backend.put(&key, &record.to_bytes());
                        }
                        Err(_) => {}
                    }
                }
            })
            .ok();
        *self.stop.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
        *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = handle;
    }
}

/// Whether `key` still holds this holder's lock (not removed, not taken over by another).
fn still_ours(backend: &dyn Backend, key: &str, mine: &LockRecord) -> Result<bool> {
    match backend.get(key) {
        Ok(b) => Ok(LockRecord::from_bytes(&b, key).is_ok_and(|r| {
            r.host == mine.host
                && r.pid == mine.pid
                && r.started_ns == mine.started_ns
                && r.boot_id == mine.boot_id
        })),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Start times of the locks this process holds now (a lock of this pid that is not among
/// them was left behind by an earlier holder in this process, e.g. one whose release failed).
static HELD: Mutex<Vec<i64>> = Mutex::new(Vec::new());

fn hold(started_ns: i64) {
    HELD.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(started_ns);
}

fn release(started_ns: i64) {
    let mut h = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(i) = h.iter().position(|t| *t == started_ns) {
        h.swap_remove(i);
    }
}

fn held_here(started_ns: i64) -> bool {
    HELD.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&started_ns)
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(
            self.stop
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if let Some(h) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = h.join();
        }
        // Never delete a lock another process took over (after judging this one stale).
        if !self.lost.load(Ordering::Acquire)
            && still_ours(&*self.backend, &self.key, &self.record).unwrap_or(false)
        {
            let _ = self.backend.delete(&self.key);
        }
        release(self.record.started_ns);
    }
}

fn new_record(kind: LockKind, purpose: &str, seen_marks: Vec<String>) -> LockRecord {
    let now = now_ns();
    LockRecord {
        kind,
        purpose: purpose.to_owned(),
        host: hostname(),
        boot_id: boot_id(),
        pid: std::process::id(),
        started_ns: now,
        heartbeat_ns: now,
        seen_marks,
    }
}

/// Keys of every mark object now (pending marks excluded).
pub fn list_marks(backend: &dyn Backend) -> Result<Vec<String>> {
    let mut keys: Vec<String> = backend
        .list(keys::Kind::Mark.prefix())?
        .into_iter()
        .map(|o| o.key)
        .filter(|k| !keys::is_pending_mark(k))
        .collect();
    keys.sort();
    Ok(keys)
}

/// The packs named by the marks `keys` (marks that are gone or damaged name none: a prune
/// marks their packs again under a new mark, which a running job's lock has not seen).
pub fn marked_packs(
    backend: &dyn Backend,
    keys: &[String],
) -> Result<std::collections::HashSet<crate::id::PackId>> {
    let mut out = std::collections::HashSet::new();
    for key in keys {
        let bytes = match backend.get(key) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        if let Ok(m) = crate::format::gc::MarkRecord::from_bytes(&bytes, key) {
            out.extend(m.packs.iter().map(|p| p.id));
        }
    }
    Ok(out)
}

/// Takes a shared job lock. Call it before loading the index the job will use.
pub fn acquire_job(backend: &Arc<dyn Backend>, purpose: &str) -> Result<LockGuard> {
    let seen = list_marks(backend.as_ref())?;
    let record = new_record(LockKind::Job, purpose, seen);
    let key = keys::job_lock(&uuid::Uuid::now_v7());
    // Held from before the object exists: a prune in this process must never judge it left
    // behind in between.
    hold(record.started_ns);
    let stored = backend
        .put_if_absent(&key, &record.to_bytes())
        .map_err(|e| match &e {
            Error::Backend { source, .. } | Error::Io { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                Error::InvalidInput(format!(
                    "cannot write the lock of this {purpose} into the repository {} ({e}); a {purpose} needs a repository it can write to: check its permissions",
                    backend.location()
                ))
            }
            _ => e,
        })
        .inspect_err(|_| release(record.started_ns))?;
    if !stored {
        release(record.started_ns);
        return Err(Error::Locked(format!(
            "lock {key} already exists; retry the {purpose}"
        )));
    }
    Ok(LockGuard::held(backend, key, record))
}

/// Takes a shared lock for a job that only reads (restore, verify) and reloads the index
/// under it. A repository where no lock can be written (read-only media) is still readable:
/// the job goes on without a lock and says what that risks.
pub fn acquire_reader(
    repo: &crate::repository::Repository,
    purpose: &str,
    progress: &dyn crate::progress::Progress,
) -> Result<Option<LockGuard>> {
    let guard = match acquire_job(repo.backend(), purpose) {
        Ok(g) => Some(g),
        // Only a repository this process cannot write to (permissions, read-only media);
        // any other failure stops the job.
        Err(e @ Error::InvalidInput(_)) => {
            progress.warn(&format!(
                "no lock taken ({e}); a prune running meanwhile could remove data this {purpose} reads"
            ));
            None
        }
        Err(e) => return Err(e),
    };
    repo.reload_index()?;
    Ok(guard)
}

/// Takes the exclusive prune lock, removing a stale one first (with a note in `notes`).
pub fn acquire_prune(
    backend: &Arc<dyn Backend>,
    stale_after: Duration,
    notes: &mut Vec<String>,
) -> Result<LockGuard> {
    let record = new_record(LockKind::Prune, "prune", Vec::new());
    hold(record.started_ns);
    let taken = take_prune_lock(backend, &record, stale_after, notes);
    if !matches!(taken, Ok(Some(_))) {
        release(record.started_ns);
    }
    match taken {
        Ok(Some(g)) => Ok(g),
        Ok(None) => Err(Error::Locked(format!(
            "could not take {PRUNE_LOCK}: another prune keeps taking it; retry later"
        ))),
        Err(e) => Err(e),
    }
}

fn take_prune_lock(
    backend: &Arc<dyn Backend>,
    record: &LockRecord,
    stale_after: Duration,
    notes: &mut Vec<String>,
) -> Result<Option<LockGuard>> {
    let record = record.clone();
    for _ in 0..2 {
        if backend.put_if_absent(keys::PRUNE_LOCK, &record.to_bytes())? {
            return Ok(Some(LockGuard::held(
                backend,
                keys::PRUNE_LOCK.to_owned(),
                record,
            )));
        }
        let held = match backend.get(keys::PRUNE_LOCK) {
            Ok(b) => LockRecord::from_bytes(&b, keys::PRUNE_LOCK),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        match held {
            Ok(h) => match staleness(&h, now_ns(), stale_after) {
                Some(reason) => {
                    backend.delete(keys::PRUNE_LOCK)?;
                    notes.push(format!(
                        "removed stale lock {PRUNE_LOCK} of {} (pid {} on {}): {reason}",
                        h.purpose, h.pid, h.host
                    ));
                }
                None => {
                    return Err(Error::Locked(format!(
                        "another prune holds {PRUNE_LOCK} (pid {} on {}, since {}); wait \
                         for it to finish, or run 'snapkeep unlock' if that process is gone",
                        h.pid,
                        h.host,
                        rfc3339(h.started_ns)
                    )));
                }
            },
            Err(_) => {
                backend.delete(keys::PRUNE_LOCK)?;
                notes.push(format!(
                    "removed damaged lock {PRUNE_LOCK} (it did not decode)"
                ));
            }
        }
    }
    Ok(None)
}

/// Why a lock is stale, or `None` while its holder may be alive.
#[must_use]
pub fn staleness(rec: &LockRecord, now: i64, stale_after: Duration) -> Option<String> {
    if rec.host == hostname() {
        let boot = boot_id();
        if !boot.is_empty() && !rec.boot_id.is_empty() && rec.boot_id != boot {
            return Some("it was taken before this host last booted".to_owned());
        }
        if rec.pid == std::process::id() {
            if !held_here(rec.started_ns) {
                return Some("this process left it behind and no longer holds it".to_owned());
            }
        } else if !process_alive(rec.pid) {
            return Some(format!("process {} on this host is gone", rec.pid));
        }
    }
    let age = now.saturating_sub(rec.heartbeat_ns);
    let bound = i64::try_from(stale_after.as_nanos()).unwrap_or(i64::MAX);
    if age > bound {
        return Some(format!(
            "no heartbeat for {} s (bound {} s)",
            age / 1_000_000_000,
            stale_after.as_secs()
        ));
    }
    None
}

/// One lock object as found.
#[derive(Clone, Debug)]
pub struct FoundLock {
    pub key: String,
    /// `None` when the object did not decode.
    pub record: Option<LockRecord>,
    /// Why it is stale, when it is.
    pub stale: Option<String>,
}

/// Every lock object with its judgement. A lock that does not decode counts as stale.
pub fn list_locks(backend: &dyn Backend, stale_after: Duration) -> Result<Vec<FoundLock>> {
    let now = now_ns();
    let mut out = Vec::new();
    for obj in backend.list(keys::Kind::Lock.prefix())? {
        let bytes = match backend.get(&obj.key) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        let (record, stale) = match LockRecord::from_bytes(&bytes, &obj.key) {
            Ok(r) => {
                let s = staleness(&r, now, stale_after);
                (Some(r), s)
            }
            Err(e) => (None, Some(format!("it does not decode ({e})"))),
        };
        out.push(FoundLock {
            key: obj.key,
            record,
            stale,
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Removes the stale locks (all locks with `all`); returns one note per removed lock and the
/// locks that remain.
pub fn remove_stale(
    backend: &dyn Backend,
    stale_after: Duration,
    all: bool,
) -> Result<(Vec<String>, Vec<FoundLock>)> {
    let mut notes = Vec::new();
    let mut live = Vec::new();
    for l in list_locks(backend, stale_after)? {
        let reason = match (&l.stale, all) {
            (Some(r), _) => r.clone(),
            (None, true) => "removed on request (--remove-all)".to_owned(),
            (None, false) => {
                live.push(l);
                continue;
            }
        };
        notes.push(remove(backend, &l, &reason)?);
    }
    Ok((notes, live))
}

/// Removes the lock `l` found stale for `reason`; returns the note that says so.
pub fn remove(backend: &dyn Backend, l: &FoundLock, reason: &str) -> Result<String> {
    backend.delete(&l.key)?;
    let who = l.record.as_ref().map_or_else(
        || "unknown holder".to_owned(),
        |r| format!("{} (pid {} on {})", r.purpose, r.pid, r.host),
    );
    Ok(format!("removed lock {} of {who}: {reason}", l.key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemoryBackend;

    fn mem() -> Arc<dyn Backend> {
        Arc::new(MemoryBackend::new())
    }

    #[test]
    fn job_lock_records_marks_and_is_removed_on_drop() {
        let b = mem();
        b.put("marks/m1", b"x").expect("put");
        let g = acquire_job(&b, "snapshot").expect("lock");
        assert_eq!(g.record().seen_marks, vec!["marks/m1".to_string()]);
        assert!(b.exists(g.key()).expect("exists"));
        g.check().expect("held");
        let key = g.key().to_owned();
        drop(g);
        assert!(!b.exists(&key).expect("exists"));
    }

    #[test]
    fn removed_lock_is_reported_by_check() {
        let b = mem();
        let g = acquire_job(&b, "snapshot").expect("lock");
        b.delete(g.key()).expect("delete");
        let e = g.check().expect_err("lost");
        assert!(matches!(e, Error::Locked(_)), "{e}");
    }

    #[test]
    fn second_prune_is_refused_and_stale_prune_lock_is_replaced() {
        let b = mem();
        let mut notes = Vec::new();
        let g = acquire_prune(&b, STALE_AFTER, &mut notes).expect("first");
        let e = acquire_prune(&b, STALE_AFTER, &mut notes).expect_err("second");
        assert!(matches!(e, Error::Locked(_)));
        assert!(e.to_string().contains("unlock"), "{e}");
        std::mem::forget(g); // a killed prune leaves its lock behind
        // A dead pid on this host: stale at once.
        let mut rec =
            LockRecord::from_bytes(&b.get(keys::PRUNE_LOCK).expect("get"), "k").expect("decode");
        rec.pid = dead_pid();
        b.put(keys::PRUNE_LOCK, &rec.to_bytes()).expect("put");
        let g2 = acquire_prune(&b, STALE_AFTER, &mut notes).expect("stale replaced");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("is gone"), "{notes:?}");
        drop(g2);
        assert!(!b.exists(keys::PRUNE_LOCK).expect("exists"));
    }

    #[test]
    fn staleness_rules() {
        let b = mem();
        let g = acquire_job(&b, "snapshot").expect("lock");
        let mut r = g.record().clone();
        let now = r.heartbeat_ns;
        assert_eq!(staleness(&r, now, STALE_AFTER), None);
        assert_eq!(staleness(&r, now + 599_000_000_000, STALE_AFTER), None);
        assert!(
            staleness(&r, now + 601_000_000_000, STALE_AFTER)
                .expect("old")
                .contains("no heartbeat")
        );
        r.pid = dead_pid();
        assert!(
            staleness(&r, now, STALE_AFTER)
                .expect("dead")
                .contains("gone")
        );
        r.host = "another-host-entirely".into();
        assert_eq!(staleness(&r, now, STALE_AFTER), None);
        // Same host, this pid, not held by this process any more: stale.
        let left = new_record(LockKind::Job, "snapshot", Vec::new());
        assert!(
            staleness(&left, now, STALE_AFTER)
                .expect("left behind")
                .contains("left it behind")
        );
        // Same host, live pid, an earlier boot: stale.
        let mut rebooted = g.record().clone();
        if !rebooted.boot_id.is_empty() {
            assert_eq!(staleness(&rebooted, now, STALE_AFTER), None);
            rebooted.pid = std::process::id();
            rebooted.boot_id = "00000000-0000-0000-0000-000000000000".into();
            assert!(
                staleness(&rebooted, now, STALE_AFTER)
                    .expect("rebooted")
                    .contains("booted")
            );
        }
    }

    #[test]
    fn remove_stale_keeps_live_and_removes_damaged() {
        let b = mem();
        let g = acquire_job(&b, "verify").expect("lock");
        b.put("locks/junk", b"not a lock").expect("put");
        let (notes, live) = remove_stale(b.as_ref(), STALE_AFTER, false).expect("remove");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("locks/junk"));
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].key, g.key());
        let (notes, live) = remove_stale(b.as_ref(), STALE_AFTER, true).expect("remove all");
        assert_eq!(notes.len(), 1);
        assert!(live.is_empty());
    }

    /// A pid that no process has: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = c.id();
        c.wait().expect("wait");
        pid
    }
}
