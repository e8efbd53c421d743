//! What Linux's `/proc` tells about a process (proc(5)): the one place the tests read it.

use std::path::PathBuf;

/// The number in the `name:` line of `/proc/<pid>/status` (`Threads`, `VmRSS` in KiB...).
pub fn status_field(pid: u32, name: &str) -> u64 {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let status =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no number for {name} in {}", path.display()))
}

/// How many threads the process has.
pub fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads")
}

/// How many file descriptors the process has open, from `/proc/<pid>/fd`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("list /proc/{pid}/fd: {e}"))
        .count()
}
