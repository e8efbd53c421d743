//! `--stat`: a line of figures from `INFO` every interval (`-i`, 1 s), as redis-cli's
//! `--stat`: keys, memory in use, connected clients, commands processed and per second;
//! the header again every [`HEADER_EVERY`] lines. Runs until interrupted (exit 0).

use std::time::{Duration, Instant};

use kv_client::{Client, ConnectOptions};

use crate::connect;
use crate::output::{self, Status};

/// Lines between headers (redis-cli repeats its header every 20 lines).
pub const HEADER_EVERY: u64 = 20;

const HEADER: &str = "keys       memory     clients    commands             commands/s";

/// The figures of one `INFO` report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Figures {
    keys: u64,
    used_memory: u64,
    clients: u64,
    commands: u64,
}

impl Figures {
    /// Reads the figures from `INFO`'s `name:value` lines; a missing one is 0.
    fn parse(report: &[u8]) -> Self {
        let mut figures = Figures::default();
        for line in String::from_utf8_lossy(report).lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim().parse().unwrap_or(0);
            match name {
                "keys" => figures.keys = value,
                "used_memory" => figures.used_memory = value,
                "connected_clients" => figures.clients = value,
                "total_commands_processed" => figures.commands = value,
                _ => {}
            }
        }
        figures
    }
}

/// Runs `--stat` until interrupted, a line every `interval`.
pub async fn run(options: &ConnectOptions, interval: Duration) -> Status {
    let (mut stop, mut client) = match connect::until_stopped(options).await {
        Ok(started) => started,
        Err(status) => return status,
    };
    let mut previous: Option<(Figures, Instant)> = None;
    for line in 0.. {
        let figures = tokio::select! {
            () = stop.wait() => return Status::Ok,
            figures = info(&mut client) => figures,
        };
        let figures = match figures {
            Ok(figures) => figures,
            Err(message) => {
                output::complain(&message);
                return Status::Unavailable;
            }
        };
        if line % HEADER_EVERY == 0 {
            println!("{HEADER}");
        }
        println!("{}", row(&figures, previous));
        previous = Some((figures, Instant::now()));
        tokio::select! {
            () = stop.wait() => return Status::Ok,
            () = tokio::time::sleep(interval) => {}
        }
    }
    Status::Ok
}

/// `INFO`'s figures. Errors: a sentence for stderr.
async fn info(client: &mut Client) -> Result<Figures, String> {
    match client.info(None).await {
        Ok(report) => Ok(Figures::parse(&report)),
        Err(e) => Err(match connect::noauth_hint_of(&e) {
            Some(hint) => hint,
            None => connect::explain_lost(&e, client.options()),
        }),
    }
}

/// One line under [`HEADER`]; commands/s from the previous figures, `-` for the first.
fn row(now: &Figures, previous: Option<(Figures, Instant)>) -> String {
    let rate = previous
        .map(|(before, at)| {
            let seconds = at.elapsed().as_secs_f64().max(1e-3);
            let done = now.commands.saturating_sub(before.commands);
            format!("{:.0}", done as f64 / seconds)
        })
        .unwrap_or_else(|| "-".into());
    format!(
        "{:<10} {:<10} {:<10} {:<20} {}",
        now.keys,
        human_bytes(now.used_memory),
        now.clients,
        now.commands,
        rate
    )
}

/// Bytes with a 1024-based unit, as redis-cli shows memory (`1.02M`).
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_info_report() {
        let report = b"# Clients\r\nconnected_clients:3\r\n# Memory\r\nused_memory:2048\r\n\
                       # Stats\r\ntotal_commands_processed:99\r\n# Keyspace\r\nbuckets:1\r\nkeys:7\r\n";
        assert_eq!(
            Figures::parse(report),
            Figures {
                keys: 7,
                used_memory: 2048,
                clients: 3,
                commands: 99
            }
        );
    }

    #[test]
    fn memory_is_shown_with_a_unit() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(2048), "2.00K");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.50M");
    }

    #[test]
    fn the_first_row_has_no_rate() {
        let row = row(&Figures::default(), None);
        assert!(row.ends_with(" -"), "{row}");
    }
}
