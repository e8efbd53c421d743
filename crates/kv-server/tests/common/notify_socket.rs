//! A service manager's end of sd_notify(3), owned by the test: a Unix datagram socket whose
//! path the server is given as `NOTIFY_SOCKET`, read message by message.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::disk::temp_dir;

/// The socket and its directory, removed when dropped.
pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: TempDir,
}

impl NotifySocket {
    /// Binds a fresh socket in a directory of its own.
    pub fn bind() -> NotifySocket {
        let dir = temp_dir("notify");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket {
            socket,
            path,
            _dir: dir,
        }
    }

    /// What `NOTIFY_SOCKET` should say.
    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    /// The next message, or `None` if none arrives within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .expect("set a read timeout");
        let mut buf = vec![0; 64 * 1024];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Messages, in order, up to and including the first for which `last` holds; panics
    /// with those received if it does not come within `timeout`.
    pub fn until(&self, timeout: Duration, last: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(message) => {
                    let done = last(&message);
                    seen.push(message);
                    if done {
                        return seen;
                    }
                }
                None => {
                    panic!("the expected message did not come within {timeout:?}; got {seen:?}")
                }
            }
        }
    }
}

/// Whether `message` has the line `field` (such as `READY=1`).
pub fn has(message: &str, field: &str) -> bool {
    message.lines().any(|line| line == field)
}

/// The value of `NAME=` in `message`, if it has that line.
pub fn value<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
}
