//! Lock helper: a panic elsewhere must not turn every later request into a panic.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering the data if a previous holder panicked. The
/// emulator's state stays usable: at worst one counter update was lost.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
