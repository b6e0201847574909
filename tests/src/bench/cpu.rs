//! CPU time read from `/proc`, the one reading of it for every benchmark: a process's own (all its
//! threads) and the whole machine's, which also counts the softirq work a transfer causes wherever
//! it lands.

/// The kernel's clock tick (`USER_HZ`), the unit of `/proc` CPU times.
fn ticks_per_second() -> f64 {
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .expect("the kernel's clock tick rate");
    per_second as f64
}

/// CPU time (user + system, all threads) process `pid` used so far, in seconds, from
/// `/proc/<pid>/stat`.
pub fn process_seconds(pid: u32) -> f64 {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|field| field.parse::<f64>().expect("a tick count"))
        .sum();
    ticks / ticks_per_second()
}

/// CPU seconds the whole machine spent busy so far (every state of `/proc/stat`'s `cpu` line but
/// idle and iowait): the kernel's share of a transfer runs in softirq wherever it lands.
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("reading /proc/stat");
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|field| field.parse().expect("a tick count"))
        .collect();
    let busy: f64 = fields.iter().sum::<f64>() - fields[3] - fields[4];
    busy / ticks_per_second()
}
