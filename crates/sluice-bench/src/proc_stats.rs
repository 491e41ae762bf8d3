//! Peak RSS and CPU time of this process, read from `/proc` (Linux; no `unsafe`).

use std::fs;

/// Peak resident set size in KiB (`VmHWM`), if `/proc/self/status` is readable.
pub fn max_rss_kb() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU seconds of this process so far. `/proc/self/schedstat` gives
/// nanoseconds; `/proc/self/stat` (clock ticks, assumed 100 Hz) is the fallback.
pub fn cpu_seconds() -> Option<f64> {
    if let Some(ns) = fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
    {
        return Some(ns as f64 / 1e9);
    }
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; fields after it are plain.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' come field 3 (state) onwards: utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_something_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(max_rss_kb().is_some_and(|kb| kb > 0));
            assert!(cpu_seconds().is_some());
        }
    }
}
