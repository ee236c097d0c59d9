//! CPU time and peak memory of a process, read from `/proc` (Linux): the client's own
//! (`/proc/self`) and the server's (`--server-pid`). Read without `unsafe`, so no
//! `getrusage(2)`; `/proc/<pid>/stat` counts every thread of the process, as getrusage's
//! RUSAGE_SELF does.

/// User plus system CPU seconds `pid` (or this process) has used so far; `None` off Linux or
/// when the process is gone.
pub fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(path(pid, "stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields are counted after
    // its last ')'. utime and stime are fields 14 and 15 of proc(5).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_sec())
}

/// Peak resident set (`VmHWM`) of `pid` (or this process), KiB.
pub fn peak_rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(path(pid, "status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(p) => format!("/proc/{p}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`; Linux's USER_HZ is 100 on
/// every common architecture, the fallback).
fn ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_and_memory() {
        // Burn a little CPU so the counter cannot be zero on a coarse clock.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(30) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        if cfg!(target_os = "linux") {
            assert!(cpu_secs(None).is_some_and(|s| s > 0.0));
            assert!(peak_rss_kib(None).is_some_and(|k| k > 0));
            assert_eq!(cpu_secs(Some(u32::MAX)), None, "no such process");
        }
    }
}
