//! Processes a test starts or watches: what Linux's `/proc` tells about one (proc(5)), the
//! one place the tests read it, and [`Reaped`], a child stopped when the test ends.

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

/// The names of the process's threads now (`/proc/<pid>/task/*/comm`); a thread that
/// ends while they are read is left out.
pub fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap_or_else(|e| panic!("list /proc/{pid}/task: {e}"));
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect()
}

/// How many file descriptors the process has open, from `/proc/<pid>/fd`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("list /proc/{pid}/fd: {e}"))
        .count()
}

/// A child process that is killed and reaped when dropped, also when a test panics.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
