//! `openssl` as the TLS tests use it: an interactive `s_client` session kept open, and the
//! serial number of the certificate a server presents to a new client.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::disk::arg;

/// A TLS session by `openssl s_client -quiet`, verifying the server against `ca`; killed
/// when dropped.
pub struct Session {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Session {
    /// Connects to `port` on loopback; panics if openssl cannot be started.
    pub fn connect(port: u16, ca: &Path) -> Session {
        let mut child = s_client(port, ca, true)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl is installed (Debian package openssl; .ci/run installs it)");
        let stdin = child.stdin.take().expect("stdin");
        let lines = read_lines(child.stdout.take().expect("stdout"));
        Session {
            child,
            stdin,
            lines,
        }
    }

    /// Sends `line` and returns the next line the server sends, or `None` if none comes
    /// within `timeout` (the session failed or was closed).
    pub fn ask(&mut self, line: &str, timeout: Duration) -> Option<String> {
        self.stdin.write_all(line.as_bytes()).ok()?;
        self.stdin.flush().ok()?;
        self.lines.recv_timeout(timeout).ok()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each line `stdout` prints, `\r\n` trimmed, as it arrives.
fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (sender, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line.trim_end().to_owned()).is_err() {
                break;
            }
        }
    });
    lines
}

fn s_client(port: u16, ca: &Path, quiet: bool) -> Command {
    let mut command = Command::new("openssl");
    command.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    command.args(["-verify_return_error", "-CAfile", arg(ca)]);
    if quiet {
        command.arg("-quiet");
    }
    command
}

/// The serial number (`openssl x509 -serial`'s hex) of the certificate the server on
/// `port` presents to a new client that trusts `ca`; `None` if the handshake fails (the
/// certificate is not one `ca` signed). Bounded in time: stdin is empty, so s_client
/// closes once the handshake is done, and the server ends a handshake within 5 s.
pub fn served_serial(port: u16, ca: &Path) -> Option<String> {
    let out = s_client(port, ca, false)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("openssl is installed (Debian package openssl; .ci/run installs it)");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let begin = text.find("-----BEGIN CERTIFICATE-----")?;
    let end_marker = "-----END CERTIFICATE-----";
    let end = text[begin..].find(end_marker)? + begin + end_marker.len();
    Some(serial_of(text[begin..end].as_bytes()))
}

/// The serial number of the PEM certificate in the file at `path`.
pub fn file_serial(path: &Path) -> String {
    serial_of(&std::fs::read(path).expect("read the certificate"))
}

fn serial_of(pem: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pem)
        .expect("write the certificate");
    let out = child.wait_with_output().expect("openssl x509");
    assert!(out.status.success(), "openssl x509 read the certificate");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
