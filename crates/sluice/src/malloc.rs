//! glibc malloc settings for the gateway process.
//!
//! glibc gives every thread that allocates under contention an arena of its
//! own (up to 8 per core) and keeps freed memory in each. In `sluice serve`
//! the tokio workers, the store writer and the blocking pool all allocate
//! and free each other's buffers (a leased batch is built on the writer
//! thread and dropped on a worker), and freed memory stayed spread over
//! many arenas: RssAnon rose from 42 to 79 MiB while a
//! backlog drained. glibc also raises its mmap threshold each time a large
//! buffer (a 150 KB request body, a 1.4 MB batch) is freed, so later large
//! buffers come from the arenas and fragment them instead of going back to
//! the kernel when freed. Measured with the same binary through
//! `GLIBC_TUNABLES`, then with this module (bench/RESULTS.md, "Session 3:
//! memory").
//!
//! [`tune`] runs first thing in `main`, before any thread exists.
//!
//! Memory freed in the middle of a heap stays in the process until
//! `malloc_trim` gives its pages back. The store frees its page caches once
//! it has had no write for a few seconds; [`spawn_idle_trimmer`] (for
//! `sluice serve`) then trims, once the process has used next to no CPU for
//! a check interval, so an idle gateway returns toward its start-up size
//! after a load or a backlog. Under load it never trims: trimming takes the
//! arena locks and the pages would only be faulted back in.
//!
//! Other platforms and C libraries are left alone.

/// Two arenas: the main one and one shared by every other thread. More
/// arenas cut lock contention only where many threads allocate at once;
/// the gateway runs two tokio workers and one writer thread.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENA_MAX: libc::c_int = 2;

/// Allocations from 128 KiB up get their own mapping, returned to the
/// kernel when freed. Setting it also turns off glibc's dynamic threshold.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Free memory above this at the top of a heap goes back to the kernel
/// (glibc's default, pinned: the dynamic threshold would raise it too).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 128 * 1024;

/// Applies the settings above; returns how many glibc accepted. Call
/// before spawning any thread.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn tune() -> usize {
    [
        (libc::M_ARENA_MAX, ARENA_MAX),
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ]
    .into_iter()
    // SAFETY: mallopt only sets allocator parameters and is safe to call at
    // any time; it runs from the main thread before other threads exist. A
    // refused value (it returns 0) leaves glibc's default in place.
    .filter(|&(param, value)| unsafe { libc::mallopt(param, value) } == 1)
    .count()
}

/// How often the idle trimmer looks at the process's CPU time.
const TRIM_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Trims per idle spell: the store may give its caches back just after the
/// first trim, so a second check trims what that freed.
const TRIMS_PER_IDLE_SPELL: u32 = 2;

/// Whether the process was idle over a check interval: less than 1 % of
/// one core.
fn idle(cpu_used: std::time::Duration, interval: std::time::Duration) -> bool {
    cpu_used
        .checked_mul(100)
        .is_some_and(|scaled| scaled < interval)
}

/// Decides, check by check, when to trim: at the first
/// [`TRIMS_PER_IDLE_SPELL`] idle checks after a busy one.
#[derive(Debug, Default)]
struct IdleSpell {
    trims: u32,
}

impl IdleSpell {
    /// Feeds one check; `true` means: trim now.
    fn check(&mut self, cpu_used: std::time::Duration, interval: std::time::Duration) -> bool {
        if !idle(cpu_used, interval) {
            self.trims = 0;
            return false;
        }
        if self.trims >= TRIMS_PER_IDLE_SPELL {
            return false;
        }
        self.trims += 1;
        true
    }
}

/// Starts the idle trimmer thread (see the module docs). A failure to
/// start it costs idle memory only, so it is logged and ignored.
pub fn spawn_idle_trimmer() {
    let started = std::thread::Builder::new()
        .name("sluice-malloc-trim".to_owned())
        .spawn(|| {
            let mut spell = IdleSpell::default();
            let mut last = process_cpu_time();
            loop {
                std::thread::sleep(TRIM_CHECK_EVERY);
                let now = process_cpu_time();
                if spell.check(now.saturating_sub(last), TRIM_CHECK_EVERY) {
                    trim();
                }
                // The trim's own CPU is not counted against the next check.
                last = process_cpu_time();
            }
        });
    if let Err(error) = started {
        tracing::debug!(%error, "cannot start the malloc trimmer");
    }
}

/// User + system CPU time of the whole process.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn process_cpu_time() -> std::time::Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given, which
    // points to one, and reads nothing else.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        // Unknown: report "busy" (a large value), so nothing is trimmed.
        return std::time::Duration::MAX;
    }
    // SAFETY: getrusage returned 0, so it filled the struct (which started
    // zeroed in any case).
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        std::time::Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + std::time::Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn process_cpu_time() -> std::time::Duration {
    std::time::Duration::MAX
}

/// Gives every whole free page of every arena back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim takes the arena locks itself and may be called
    // from any thread at any time.
    let _released = unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

/// Not glibc: nothing to tune.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() -> usize {
    0
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #[test]
    fn glibc_accepts_every_setting() {
        assert_eq!(super::tune(), 3);
    }

    /// The trimmer decides on this clock: it must be read (not the "busy"
    /// fallback) and must count the CPU this process spends.
    #[test]
    fn process_cpu_time_is_read_and_counts_this_process() {
        use std::time::{Duration, Instant};
        let before = super::process_cpu_time();
        assert!(before < Duration::MAX, "getrusage failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut spin = 0u64;
        while super::process_cpu_time() <= before {
            assert!(Instant::now() < deadline, "CPU time did not advance");
            for i in 0..100_000u64 {
                spin = std::hint::black_box(spin.wrapping_mul(31).wrapping_add(i));
            }
        }
    }
}

#[cfg(test)]
mod spell_tests {
    use super::IdleSpell;
    use std::time::Duration;

    const FIVE_S: Duration = Duration::from_secs(5);

    #[test]
    fn trims_twice_per_idle_spell_and_never_under_load() {
        let mut spell = IdleSpell::default();
        let busy = Duration::from_millis(500);
        let quiet = Duration::from_millis(10);
        let decisions: Vec<bool> = [busy, quiet, quiet, quiet, quiet, busy, quiet, quiet, quiet]
            .into_iter()
            .map(|cpu| spell.check(cpu, FIVE_S))
            .collect();
        assert_eq!(
            decisions,
            [false, true, true, false, false, false, true, true, false]
        );
        // 1 % of the interval is the line.
        assert!(!IdleSpell::default().check(Duration::from_millis(50), FIVE_S));
        assert!(IdleSpell::default().check(Duration::from_millis(49), FIVE_S));
        assert!(!IdleSpell::default().check(Duration::MAX, FIVE_S));
    }
}
