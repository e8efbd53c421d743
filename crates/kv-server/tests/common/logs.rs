//! The server's log as the harness sees it: stderr lines captured by a background thread,
//! and how to read a line's level and the port line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Log lines, appended by a background thread as the process writes them to stderr.
#[derive(Default)]
pub struct LogBuffer {
    lines: Mutex<Vec<String>>,
    /// Notified on every new line and when stderr closes.
    changed: Condvar,
}

impl LogBuffer {
    /// Reads `source` line by line until EOF (non-UTF-8 bytes are replaced, never fatal),
    /// or until a line for which `last` holds: then `source` is dropped at once.
    pub fn capture(
        self: Arc<Self>,
        source: impl Read + Send + 'static,
        last: fn(&str) -> bool,
    ) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            let mut reader = BufReader::new(source);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        let text = text.trim_end_matches(['\r', '\n']).to_owned();
                        let stop = last(&text);
                        self.lines.lock().unwrap().push(text);
                        self.changed.notify_all();
                        if stop {
                            break;
                        }
                    }
                }
            }
            drop(reader);
            self.changed.notify_all();
        })
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until `done(lines)` holds; returns whether it did before `timeout`.
    pub fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if done(&lines) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Woken by new lines; the short cap also re-checks if the writer is gone.
            let wait = (deadline - now).min(Duration::from_millis(200));
            lines = self.changed.wait_timeout(lines, wait).unwrap().0;
        }
    }
}

/// Reads a file that another process appends to, as `tail -f` does: at its end it waits
/// for more until `stop` is set, then reads what is left and ends.
pub struct Follow {
    pub file: File,
    pub stop: Arc<AtomicBool>,
}

impl Read for Follow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // Checked before reading, so the last read comes after the stop.
            let stopping = self.stop.load(Ordering::SeqCst);
            let n = self.file.read(buf)?;
            if n > 0 || stopping {
                return Ok(n);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The `N` of an `Accepting connections on port N` log line.
pub fn parse_port_line(line: &str) -> Option<u16> {
    let rest = line.split("Accepting connections on port ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The level column of a log line (`2024-01-01T00:00:00Z  WARN target: message`).
pub fn log_level(line: &str) -> Option<&str> {
    let level = line.split_whitespace().nth(1)?;
    ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
        .contains(&level)
        .then_some(level)
}
