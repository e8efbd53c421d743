//! `--latency`: PING round trips, continuously, as redis-cli's `--latency`: a sample every
//! [`SAMPLE_EVERY`], min/avg/max in milliseconds since the start, refreshed in place on a
//! terminal (a line a second otherwise), until interrupted (SIGINT or SIGTERM: exit 0).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use kv_client::{Client, ConnectOptions, Outgoing, Request};

use crate::connect;
use crate::output::{self, Status};

/// Pause between samples (redis-cli's `LATENCY_SAMPLE_RATE`, 10 ms): light on the server.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// Round trips measured so far, in microseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Samples {
    count: u64,
    min: u64,
    max: u64,
    sum: u64,
}

impl Samples {
    fn add(&mut self, rtt: Duration) {
        let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        self.min = if self.count == 0 {
            micros
        } else {
            self.min.min(micros)
        };
        self.max = self.max.max(micros);
        self.sum = self.sum.saturating_add(micros);
        self.count += 1;
    }

    /// `min: 0.031, max: 1.204, avg: 0.057 (1520 samples)`, in milliseconds.
    fn line(&self) -> String {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let avg = self.sum.checked_div(self.count).unwrap_or(0);
        format!(
            "min: {:.3}, max: {:.3}, avg: {:.3} ({} samples)",
            ms(self.min),
            ms(self.max),
            ms(avg),
            self.count
        )
    }
}

/// Runs `--latency` until interrupted. 2 if the server cannot be reached or goes away.
pub async fn run(options: &ConnectOptions) -> Status {
    let (mut stop, mut client) = match connect::until_stopped(options).await {
        Ok(started) => started,
        Err(status) => return status,
    };
    let terminal = std::io::stdout().is_terminal();
    let refresh = if terminal {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    let mut samples = Samples::default();
    let mut shown = Instant::now();
    loop {
        tokio::select! {
            () = stop.wait() => break,
            rtt = ping(&mut client) => match rtt {
                Ok(rtt) => samples.add(rtt),
                Err(message) => {
                    show(&samples, terminal, true);
                    output::complain(&message);
                    return Status::Unavailable;
                }
            },
        }
        if shown.elapsed() >= refresh {
            show(&samples, terminal, false);
            shown = Instant::now();
        }
        tokio::select! {
            () = stop.wait() => break,
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
    show(&samples, terminal, true);
    Status::Ok
}

/// One PING's round trip. Errors: a sentence for stderr.
async fn ping(client: &mut Client) -> Result<Duration, String> {
    let options = client.options().clone();
    let started = Instant::now();
    let reply = client
        .exchange(&Outgoing::Request(Request::Ping))
        .await
        .map_err(|e| connect::explain_lost(&e, &options))?;
    match reply.reply {
        Some(kv_client::Reply::Pong) => Ok(started.elapsed()),
        _ => Err(format!(
            "PING answered {:?}",
            String::from_utf8_lossy(reply.wire).trim_end()
        )),
    }
}

/// Prints the figures: on a terminal over the previous ones (redis-cli's
/// `\x1b[0G\x1b[2K`), a new line when `last`; elsewhere a line each time.
fn show(samples: &Samples, terminal: bool, last: bool) {
    let mut stdout = std::io::stdout().lock();
    let line = samples.line();
    let written = if terminal {
        write!(
            stdout,
            "\x1b[0G\x1b[2K{line}{}",
            if last { "\n" } else { "" }
        )
    } else {
        writeln!(stdout, "{line}")
    };
    let _ = written.and_then(|()| stdout.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_in_milliseconds_over_every_sample() {
        let mut samples = Samples::default();
        for micros in [100, 300, 200] {
            samples.add(Duration::from_micros(micros));
        }
        assert_eq!(
            samples.line(),
            "min: 0.100, max: 0.300, avg: 0.200 (3 samples)"
        );
    }
}
