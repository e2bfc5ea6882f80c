//! CPU time and memory of process trees, read from /proc.

use std::collections::HashMap;
use std::fs;

/// Clock ticks per second for /proc/*/stat times (USER_HZ; 100 on Linux
/// x86_64 and arm64).
const TICKS_PER_SEC: f64 = 100.0;

struct Stat {
    ppid: u32,
    ticks: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let raw = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields follow the last ')'.
    let rest = &raw[raw.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    })
}

fn status_kb(pid: u32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `root` and all its live descendants.
pub fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                if let Some(s) = stat(pid) {
                    children.entry(s.ppid).or_default().push(pid);
                }
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids);
        }
        i += 1;
    }
    out
}

/// CPU seconds (user + system) used so far by a process tree.
pub fn cpu_seconds(root: u32) -> f64 {
    tree(root)
        .iter()
        .filter_map(|p| stat(*p))
        .map(|s| s.ticks as f64 / TICKS_PER_SEC)
        .sum()
}

/// Memory of a process tree now, in MB: the sum of each process's
/// proportional set size, so shared memory (Postgres's buffers) counts once.
pub fn rss_mb(root: u32) -> f64 {
    tree(root).iter().map(|p| pss_kb(*p)).sum::<u64>() as f64 / 1024.0
}

fn pss_kb(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or_else(|| status_kb(pid, "VmRSS:"))
}

/// Peak resident memory of one process over its life, in MB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    status_kb(pid, "VmHWM:") as f64 / 1024.0
}

/// CPU seconds used by this process so far.
pub fn self_cpu_seconds() -> f64 {
    cpu_seconds_one(std::process::id())
}

fn cpu_seconds_one(pid: u32) -> f64 {
    stat(pid)
        .map(|s| s.ticks as f64 / TICKS_PER_SEC)
        .unwrap_or(0.0)
}
