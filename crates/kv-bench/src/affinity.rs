//! Which cores run what: CPU lists (`--pin 2-3`, a process's `Cpus_allowed_list`) and
//! pinning a thread to a core.
//!
//! When the generator shares a machine with the server, where each runs decides what is
//! measured. The caller pins the server with `taskset -c` (bench/scaling.sh does);
//! `--pin` pins kv-bench's generator threads to other cores, so the two never take turns
//! on one core and the server's CPU per request is the server's alone.

use std::fmt;
use std::io;
use std::str::FromStr;

/// CPUs a list may name: 0 to 1023, what glibc's `cpu_set_t` holds (`CPU_SETSIZE`).
pub const MAX_CPUS: usize = 1024;

/// A set of CPU numbers, sorted and without repeats, written as `taskset -c` and
/// `/proc/PID/status` write it: `0-3,8,10-11`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

impl CpuList {
    /// The CPU numbers, ascending.
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }

    /// How many CPUs (never 0: an empty list does not parse).
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The CPU generator thread `index` runs on: the list's CPUs in turn.
    pub fn for_thread(&self, index: usize) -> usize {
        self.0[index % self.0.len()]
    }

    /// Whether every CPU of `self` is in `other`.
    pub fn is_within(&self, other: &CpuList) -> bool {
        self.0.iter().all(|cpu| other.0.binary_search(cpu).is_ok())
    }
}

impl FromStr for CpuList {
    type Err = String;

    /// `1`, `2-3`, `0,2-3,8`; spaces around items are allowed, nothing else.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{text:?} is not a CPU list ({why}; try 1, 2-3 or 0,2-3)");
        let mut cpus = Vec::new();
        for item in text.split(',') {
            let item = item.trim();
            let (first, last) = match item.split_once('-') {
                Some((a, b)) => (cpu_number(a, &bad)?, cpu_number(b, &bad)?),
                None => {
                    let cpu = cpu_number(item, &bad)?;
                    (cpu, cpu)
                }
            };
            if first > last {
                return Err(bad("a range must run upwards"));
            }
            cpus.extend(first..=last);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList(cpus))
    }
}

fn cpu_number(text: &str, bad: &dyn Fn(&str) -> String) -> Result<usize, String> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("CPUs are numbers"));
    }
    match text.parse::<usize>() {
        Ok(cpu) if cpu < MAX_CPUS => Ok(cpu),
        _ => Err(bad(&format!("CPUs are numbered below {MAX_CPUS}"))),
    }
}

impl fmt::Display for CpuList {
    /// Runs of consecutive CPUs as ranges: `[0, 1, 2, 5]` → `0-2,5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        while i < self.0.len() {
            let first = self.0[i];
            let mut last = first;
            while i + 1 < self.0.len() && self.0[i + 1] == last + 1 {
                i += 1;
                last = self.0[i];
            }
            if first > self.0[0] {
                f.write_str(",")?;
            }
            if first == last {
                write!(f, "{first}")?;
            } else {
                write!(f, "{first}-{last}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

/// The CPUs a process may run on (`pid` `None`: this one), from the `Cpus_allowed_list`
/// line of `/proc/PID/status`; `None` where `/proc` is unreadable or the process gone.
pub fn allowed_cpus(pid: Option<u32>) -> Option<CpuList> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    cpus_allowed(&std::fs::read_to_string(path).ok()?)
}

/// The `Cpus_allowed_list` of a `/proc/PID/status` text.
fn cpus_allowed(status: &str) -> Option<CpuList> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .and_then(|list| list.parse().ok())
}

/// Pins the calling thread to `cpu` (Linux: `sched_setaffinity(2)` on thread id 0, which
/// is the caller).
#[cfg(target_os = "linux")]
pub fn pin_this_thread(cpu: usize) -> io::Result<()> {
    if cpu >= MAX_CPUS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is beyond {MAX_CPUS}"),
        ));
    }
    // SAFETY: `cpu_set_t` is a plain array of integers, for which all-zero bits are a
    // valid value (the empty set, what `CPU_ZERO` would write).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `CPU_SET` indexes the set's array by `cpu / bits-per-word`; `cpu` was
    // checked to be below `MAX_CPUS` = `CPU_SETSIZE`, the number of bits the array has,
    // so it stays in bounds (and out-of-bounds would be a checked-index panic anyway).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: the pointer is to a live, initialised `cpu_set_t` and the size passed is
    // exactly its size; the kernel only reads that many bytes. Pid 0 is the calling
    // thread, so no other thread's state is touched.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Pinning needs Linux's `sched_setaffinity`.
#[cfg(not(target_os = "linux"))]
pub fn pin_this_thread(_cpu: usize) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "--pin needs Linux (sched_setaffinity)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Vec<usize> {
        text.parse::<CpuList>()
            .expect("a valid list")
            .cpus()
            .to_vec()
    }

    #[test]
    fn single_cpus_ranges_and_mixtures_parse() {
        assert_eq!(list("1"), vec![1]);
        assert_eq!(list("2-3"), vec![2, 3]);
        assert_eq!(list("0,2-3,8"), vec![0, 2, 3, 8]);
        assert_eq!(list(" 4 , 1 "), vec![1, 4]);
        assert_eq!(list("5-5"), vec![5]);
    }

    #[test]
    fn repeats_and_order_do_not_matter() {
        assert_eq!(list("3,1-2,2,3"), vec![1, 2, 3]);
    }

    #[test]
    fn malformed_lists_are_rejected_with_a_hint() {
        for bad in [
            "", " ", ",", "1,", "a", "-1", "1-", "-", "3-2", "1.5", "0x1", "1 2", "1024", "0-1024",
            "+1",
        ] {
            let err = bad.parse::<CpuList>().expect_err(bad);
            assert!(err.contains("try 1, 2-3"), "{bad:?}: {err}");
        }
        assert_eq!(list("1023"), vec![1023]);
    }

    #[test]
    fn lists_print_back_as_compact_ranges() {
        for (input, shown) in [
            ("0,1,2,5", "0-2,5"),
            ("7", "7"),
            ("2-3", "2-3"),
            ("1,3", "1,3"),
        ] {
            let parsed: CpuList = input.parse().expect("valid");
            assert_eq!(parsed.to_string(), shown);
            assert_eq!(shown.parse::<CpuList>(), Ok(parsed));
        }
    }

    #[test]
    fn generator_threads_take_the_cpus_in_turn() {
        let cpus: CpuList = "2-3".parse().expect("valid");
        let chosen: Vec<usize> = (0..5).map(|t| cpus.for_thread(t)).collect();
        assert_eq!(chosen, vec![2, 3, 2, 3, 2]);
    }

    #[test]
    fn a_status_file_names_the_cpus_a_process_may_use() {
        let status = "Name:\tredis-server\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n";
        assert_eq!(cpus_allowed(status), "0-1".parse().ok());
        assert_eq!(cpus_allowed("Name:\tx\n"), None);
        let narrow: CpuList = "1".parse().expect("valid");
        assert!(narrow.is_within(&"0-1".parse().expect("valid")));
        assert!(!"1-2".parse::<CpuList>().expect("valid").is_within(&narrow));
    }

    #[test]
    fn this_thread_can_be_pinned_to_a_cpu_it_may_use() {
        let allowed = allowed_cpus(None).expect("Linux /proc");
        let cpu = allowed.cpus()[0];
        std::thread::spawn(move || {
            pin_this_thread(cpu).expect("sched_setaffinity");
            // A thread's own status file lives under /proc/thread-self.
            let mine = std::fs::read_to_string("/proc/thread-self/status").expect("readable");
            assert_eq!(
                cpus_allowed(&mine).map(|l| l.cpus().to_vec()),
                Some(vec![cpu])
            );
        })
        .join()
        .expect("the pinned thread");
        assert!(pin_this_thread(MAX_CPUS).is_err());
    }
}
