//! Fault injection (`--debug-commands`): the `DEBUG ...` lines of SPEC §6.
//!
//! They exist so that tests can crash a connection or the acceptor on demand and check
//! that supervision holds. They are parsed by the machinery, before the protocol sees the
//! line, so they behave the same in every mode.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::framing::trim_terminator;

/// A fault a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `DEBUG PANIC`: the task serving this connection panics.
    PanicConnection,
    /// `DEBUG ACCEPTOR-PANIC`: reply `OK`, then the acceptor panics.
    PanicAcceptor,
    /// `DEBUG SLEEP ms`: sleep, then reply `OK`.
    Sleep(Duration),
}

impl Fault {
    /// Parses a line (terminator included); `None` if it is not a well-formed `DEBUG`
    /// command, in which case the line goes to the protocol like any other.
    pub fn parse(line: &[u8]) -> Option<Fault> {
        let mut words = trim_terminator(line)
            .split(|b| *b == b' ' || *b == b'\t')
            .filter(|w| !w.is_empty());
        if !words.next()?.eq_ignore_ascii_case(b"DEBUG") {
            return None;
        }
        let verb = words.next()?;
        let argument = words.next();
        let fault = if verb.eq_ignore_ascii_case(b"PANIC") && argument.is_none() {
            Fault::PanicConnection
        } else if verb.eq_ignore_ascii_case(b"ACCEPTOR-PANIC") && argument.is_none() {
            Fault::PanicAcceptor
        } else if verb.eq_ignore_ascii_case(b"SLEEP") {
            let ms: u64 = std::str::from_utf8(argument?).ok()?.parse().ok()?;
            Fault::Sleep(Duration::from_millis(ms))
        } else {
            return None;
        };
        words.next().is_none().then_some(fault)
    }
}

/// Lets a connection reach the acceptor to make it panic.
#[derive(Debug, Clone, Default)]
pub struct FaultHooks {
    acceptor_panic: Arc<Notify>,
}

impl FaultHooks {
    /// Asks the running (or next) acceptor to panic.
    pub fn request_acceptor_panic(&self) {
        // `notify_one` keeps a permit if the acceptor is not waiting right now.
        self.acceptor_panic.notify_one();
    }

    /// Resolves when a connection asked the acceptor to panic.
    pub async fn acceptor_panic_requested(&self) {
        self.acceptor_panic.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_fault_case_insensitively() {
        assert_eq!(
            Fault::parse(b"DEBUG PANIC\r\n"),
            Some(Fault::PanicConnection)
        );
        assert_eq!(Fault::parse(b"debug panic\n"), Some(Fault::PanicConnection));
        assert_eq!(
            Fault::parse(b"Debug Acceptor-Panic\n"),
            Some(Fault::PanicAcceptor)
        );
        assert_eq!(
            Fault::parse(b"  DEBUG\tSLEEP  250 \r\n"),
            Some(Fault::Sleep(Duration::from_millis(250)))
        );
    }

    #[test]
    fn anything_else_is_not_a_fault() {
        for line in [
            &b"DEBUG\n"[..],
            b"DEBUG SLEEP\n",
            b"DEBUG SLEEP x\n",
            b"DEBUG SLEEP -1\n",
            b"DEBUG SLEEP 1 2\n",
            b"DEBUG PANIC now\n",
            b"DEBUGPANIC\n",
            b"GET a b\n",
            b"\n",
        ] {
            assert_eq!(
                Fault::parse(line),
                None,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
