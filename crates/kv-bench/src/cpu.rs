//! Who used the CPUs during the measured window: the generator, the server, everyone else.
//!
//! The generator shares the machine with the server (and, on a shared machine, with
//! whatever else runs), so a throughput number means little without knowing how much CPU
//! went elsewhere. Sampled from `/proc` at the start and end of the window.

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
}

/// Cumulative CPU counters at one instant, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    machine_busy: u64,
    machine_total: u64,
    generator: u64,
    server: Option<u64>,
}

/// Reads the counters now; `None` if `/proc` is unreadable (not Linux).
pub fn sample(server_pid: Option<u32>) -> Option<Sample> {
    let (machine_busy, machine_total) =
        machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let generator = process_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let server = server_pid
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .and_then(|stat| process_ticks(&stat));
    Some(Sample {
        machine_busy,
        machine_total,
        generator,
        server,
    })
}

/// The use between two samples.
pub fn between(start: Sample, end: Sample) -> CpuUse {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let total = end.machine_total.saturating_sub(start.machine_total).max(1) as f64;
    // Percent of one core: ticks over (total ticks / cores).
    let pct = |ticks: u64| ticks as f64 * 100.0 * cores as f64 / total;
    let machine = pct(end.machine_busy.saturating_sub(start.machine_busy));
    let generator = pct(end.generator.saturating_sub(start.generator));
    let server = match (start.server, end.server) {
        (Some(a), Some(b)) => Some(pct(b.saturating_sub(a))),
        _ => None,
    };
    CpuUse {
        cores,
        machine,
        generator,
        server,
        others: (machine - generator - server.unwrap_or(0.0)).max(0.0),
    }
}

/// (busy, total) ticks from the `cpu` line of `/proc/stat`: idle and iowait are not busy.
fn machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
    Some((total - idle, total))
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
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n";
        assert_eq!(machine_ticks(stat), Some((150, 1000)));
    }

    #[test]
    fn process_ticks_survive_odd_command_names() {
        let stat = "42 (a (b) c) S 1 1 1 0 -1 0 0 0 0 0 7 5 0 0 20 0 1 0";
        assert_eq!(process_ticks(stat), Some(12));
    }

    #[test]
    fn others_are_what_neither_the_generator_nor_the_server_used() {
        let s = |busy, total, g, srv| Sample {
            machine_busy: busy,
            machine_total: total,
            generator: g,
            server: Some(srv),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let u = between(s(0, 0, 0, 0), s(100, 100, 30, 50));
        assert!((u.machine - 100.0 * cores).abs() < 1e-9);
        assert!(
            (u.others - (100.0 * cores - 80.0 * cores)).abs() < 1e-9,
            "{u:?}"
        );
    }

    #[test]
    fn this_machine_can_be_sampled() {
        assert!(sample(Some(std::process::id())).is_some_and(|s| s.server.is_some()));
    }
}
