//! Who used the CPUs during the measured window: the generator, the server, everyone else;
//! and what the server paid per request.
//!
//! The generator shares the machine with the server (and, on a shared machine, with
//! whatever else runs), so a throughput number means little without knowing how much CPU
//! went elsewhere. Sampled from `/proc` at the start and end of the window. Where the
//! generator shares the cores, ops/s measures the pair; the server's CPU time and context
//! switches per request are its own cost, comparable across servers and machines.

use serde::{Deserialize, Serialize};

/// CPU use over the window, in percent of one core (200 = two cores fully busy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    /// Cores on the machine.
    pub cores: usize,
    /// Every process, including the kernel's work for them.
    pub machine: f64,
    /// This process (the generator).
    pub generator: f64,
    /// The server, when its pid was given.
    pub server: Option<f64>,
    /// What neither used: other processes' load on the same cores.
    pub others: f64,
    /// The server's CPU time over the window, in seconds (user + system, all threads).
    #[serde(default)]
    pub server_cpu_secs: Option<f64>,
    /// The server's context switches over the window: voluntary + nonvoluntary, summed
    /// over its threads.
    #[serde(default)]
    pub server_ctx_switches: Option<u64>,
}

/// The generator counts as the bottleneck when it used this share of the cores it could
/// use: its ops/s then say how fast kv-bench is as much as how fast the server is.
pub const GENERATOR_BOUND_SHARE: f64 = 0.9;

/// Whether a generator that used `generator_pct` (% of one core) of `cores` cores was
/// the bottleneck: at least [`GENERATOR_BOUND_SHARE`] of them.
pub fn generator_bound(generator_pct: f64, cores: usize) -> bool {
    generator_pct >= GENERATOR_BOUND_SHARE * 100.0 * cores.max(1) as f64
}

/// `total / requests`, or `None` when no request completed (nothing to divide by).
pub fn per_request(total: f64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| total / requests as f64)
}

/// Cumulative CPU counters at one instant, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// CPUs whose ticks `machine_total` adds up.
    cores: usize,
    machine_busy: u64,
    machine_total: u64,
    generator: u64,
    server: Option<u64>,
    /// The server's context switches so far, all its threads.
    server_switches: Option<u64>,
}

/// Reads the counters now; `None` if `/proc` is unreadable (not Linux).
pub fn sample(server_pid: Option<u32>) -> Option<Sample> {
    let (machine_busy, machine_total, cores) =
        machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let generator = process_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let server = server_pid
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .and_then(|stat| process_ticks(&stat));
    Some(Sample {
        cores,
        machine_busy,
        machine_total,
        generator,
        server,
        server_switches: server_pid.and_then(process_switches),
    })
}

/// Context switches of every thread of `pid` so far. `/proc/PID/status` counts only the
/// thread it names (unlike `/proc/PID/stat`'s CPU times, which cover the whole process),
/// so this sums `/proc/PID/task/*/status`. A thread that exits inside the window takes
/// its count with it; servers keep their threads, so that is rare.
fn process_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        // A thread may exit between listing and reading: it then counts as none.
        if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
            total += context_switches(&status).unwrap_or(0);
        }
    }
    Some(total)
}

/// `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` of one `/proc/.../status`.
fn context_switches(status: &str) -> Option<u64> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse::<u64>().ok())
    };
    Some(field("voluntary_ctxt_switches")? + field("nonvoluntary_ctxt_switches")?)
}

/// Clock ticks per second, the unit of `/proc/PID/stat`'s CPU times (`USER_HZ`).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf takes an integer name and returns an integer; it reads no memory
    // of ours and has no preconditions (an unknown name returns -1).
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // USER_HZ is 100 on every Linux architecture; fall back to it should sysconf fail.
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// The use between two samples.
pub fn between(start: Sample, end: Sample) -> CpuUse {
    let cores = end.cores.max(1);
    let total = end.machine_total.saturating_sub(start.machine_total).max(1) as f64;
    // Percent of one core: ticks over (total ticks / cores).
    let pct = |ticks: u64| ticks as f64 * 100.0 * cores as f64 / total;
    let machine = pct(end.machine_busy.saturating_sub(start.machine_busy));
    let generator = pct(end.generator.saturating_sub(start.generator));
    let server = match (start.server, end.server) {
        (Some(a), Some(b)) => Some(pct(b.saturating_sub(a))),
        _ => None,
    };
    let server_cpu_secs = match (start.server, end.server) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / ticks_per_second()),
        _ => None,
    };
    let server_ctx_switches = match (start.server_switches, end.server_switches) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    CpuUse {
        cores,
        machine,
        generator,
        server,
        others: (machine - generator - server.unwrap_or(0.0)).max(0.0),
        server_cpu_secs,
        server_ctx_switches,
    }
}

/// (busy, total) ticks from the `cpu` line of `/proc/stat` (idle and iowait are not
/// busy), and how many CPUs it adds up: the `cpuN` lines. Counted here rather than asked
/// of `available_parallelism`, which answers for the calling thread's affinity: a pinned
/// thread would see one core and scale every share wrong.
fn machine_ticks(stat: &str) -> Option<(u64, u64, usize)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
    let cores = stat
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    Some((total - idle, total, cores))
}

/// utime + stime of a process from its `/proc/<pid>/stat` (all threads).
fn process_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the man page; utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ticks_leave_out_idle_and_iowait() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\ncpu1 4 5 6\nintr 7\n";
        assert_eq!(machine_ticks(stat), Some((150, 1000, 2)));
    }

    #[test]
    fn process_ticks_survive_odd_command_names() {
        let stat = "42 (a (b) c) S 1 1 1 0 -1 0 0 0 0 0 7 5 0 0 20 0 1 0";
        assert_eq!(process_ticks(stat), Some(12));
    }

    #[test]
    fn others_are_what_neither_the_generator_nor_the_server_used() {
        let s = |busy, total, g, srv| Sample {
            cores: 2,
            machine_busy: busy,
            machine_total: total,
            generator: g,
            server: Some(srv),
            server_switches: Some(srv * 2),
        };
        // Of 200 ticks on 2 cores, all busy: the generator had 30 (30% of a core), the
        // server 50 (50%), others the remaining 120 (120%).
        let u = between(s(0, 0, 0, 0), s(200, 200, 30, 50));
        assert_eq!(u.cores, 2);
        assert!((u.machine - 200.0).abs() < 1e-9, "{u:?}");
        assert!((u.generator - 30.0).abs() < 1e-9, "{u:?}");
        assert!((u.others - 120.0).abs() < 1e-9, "{u:?}");
    }

    #[test]
    fn the_server_window_counts_its_cpu_seconds_and_context_switches() {
        let s = |srv, switches| Sample {
            cores: 1,
            machine_busy: 0,
            machine_total: 0,
            generator: 0,
            server: Some(srv),
            server_switches: Some(switches),
        };
        let u = between(
            s(1_000, 70),
            s(1_000 + ticks_per_second() as u64 * 3, 5_070),
        );
        assert_eq!(u.server_cpu_secs, Some(3.0));
        assert_eq!(u.server_ctx_switches, Some(5_000));
        let unknown = Sample {
            server_switches: None,
            ..s(0, 0)
        };
        assert_eq!(between(unknown, s(1, 1)).server_ctx_switches, None);
    }

    #[test]
    fn context_switches_add_voluntary_and_nonvoluntary() {
        // Lines of a /proc/PID/task/TID/status (Linux 6.18), the middle left out.
        let status = "Name:\tkv-server\nState:\tS (sleeping)\nTgid:\t4242\n\
            SpeculationIndirectBranch:\talways enabled\nCpus_allowed:\t3\n\
            Cpus_allowed_list:\t0-1\nMems_allowed_list:\t0\n\
            voluntary_ctxt_switches:\t15210\nnonvoluntary_ctxt_switches:\t37\n";
        assert_eq!(context_switches(status), Some(15_247));
        assert_eq!(
            context_switches("voluntary_ctxt_switches:\t5\n"),
            None,
            "half a count is no count"
        );
        assert_eq!(
            context_switches("nonvoluntary_ctxt_switches:\t2\nvoluntary_ctxt_switches:\tx\n"),
            None
        );
    }

    #[test]
    fn cost_per_request_divides_by_requests_completed() {
        // 0.5 s of server CPU over 100,000 requests: 5,000 ns each.
        assert_eq!(per_request(0.5e9, 100_000), Some(5_000.0));
        assert_eq!(per_request(1.0, 0), None, "no request, no cost per request");
    }

    #[test]
    fn a_generator_at_90_percent_of_its_cores_is_the_bottleneck() {
        assert!(generator_bound(90.0, 1));
        assert!(!generator_bound(89.9, 1));
        assert!(!generator_bound(150.0, 2), "75% of two cores");
        assert!(generator_bound(185.0, 2));
        assert!(generator_bound(95.0, 0), "no cores is taken as one");
    }

    #[test]
    fn this_machine_can_be_sampled() {
        let s = sample(Some(std::process::id())).expect("Linux /proc");
        assert!(s.server.is_some());
        assert!(s.server_switches.is_some_and(|n| n > 0), "{s:?}");
    }

    #[test]
    fn a_pinned_thread_still_counts_every_core_of_the_machine() {
        let all = sample(None).expect("Linux /proc").cores;
        let cpu = crate::affinity::allowed_cpus(None)
            .expect("Linux /proc")
            .cpus()[0];
        let pinned = std::thread::spawn(move || {
            crate::affinity::pin_this_thread(cpu).expect("sched_setaffinity");
            sample(None).expect("Linux /proc").cores
        })
        .join()
        .expect("the pinned thread");
        assert_eq!(pinned, all);
        assert!(all >= 1);
    }
}
