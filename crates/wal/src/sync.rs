//! std or loom synchronisation types, so the group-commit hand-off can be model-checked
//! (`RUSTFLAGS="--cfg loom"`, see `tests/loom_group_commit.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard, RwLock};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard, RwLock};

/// Locks, recovering the guard if another thread panicked while holding it: the state
/// it protects is kept consistent by never panicking between updates.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn wait<'a, T>(c: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    c.wait(g).unwrap_or_else(|e| e.into_inner())
}
