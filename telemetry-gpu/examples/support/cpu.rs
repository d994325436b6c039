//! CPU time of threads of this process, from `/proc` (Linux only).
#![allow(dead_code)] // each example uses part of it

use std::fs;

/// The kernel id of this process's thread named `name` (as `std::thread::Builder::name` set it).
pub fn thread_id(name: &str) -> Option<String> {
    fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let comm = fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == name).then(|| entry.file_name().to_string_lossy().into_owned())
        })
}

/// CPU time of thread `tid` so far, nanoseconds: `schedstat` where the kernel has it (ns
/// resolution), else utime + stime from `stat` (clock ticks, assumed 100 Hz).
pub fn thread_cpu_ns(tid: &str) -> Option<u64> {
    let dir = format!("/proc/self/task/{tid}");
    if let Ok(s) = fs::read_to_string(format!("{dir}/schedstat"))
        && let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok())
    {
        return Some(ns);
    }
    let stat = fs::read_to_string(format!("{dir}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10_000_000)
}

/// CPU time of the whole process so far, nanoseconds (utime + stime, clock ticks at 100 Hz).
pub fn process_cpu_ns() -> Option<u64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10_000_000)
}
