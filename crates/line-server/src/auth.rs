//! Password authentication and protected mode, as a wrapper around any protocol ([`Auth`]),
//! the way [`crate::Faulty`] wraps one with fault injection (PROTOCOL.md, "Security").
//!
//! - With a password, a client must send `AUTH password` before anything else; until then
//!   every line but `QUIT` is answered `ERROR NOAUTH authentication required`. A wrong
//!   password is `ERROR WRONGPASS invalid password`, and the third on one connection closes
//!   it. `AUTH` without a password set is `ERROR AUTH no password is set`. (Redis'
//!   `requirepass`, with its reply words.)
//! - Protected mode (on by default, as Redis'): with no password, a client that is not on
//!   loopback is told `ERROR DENIED ...` and closed, so a server exposed by mistake does not
//!   hand its data to the network.
//!
//! The password is kept only as its SHA-256 digest, and a guess is checked by comparing
//! digests in constant time (`subtle`): how long the check takes does not depend on how
//! much of the guess is right, nor on its length beyond the hashing. It is never logged.
//!
//! The password can be replaced while the server runs ([`SharedPassword::replace`], what
//! kv-server does on SIGHUP). Every `AUTH` checks the password current when it arrives, on
//! connections opened before the change too: an authenticated connection stays
//! authenticated (it is never asked again), and one that has not authenticated yet needs
//! the new password, so a password rotated because it leaked stops letting anyone in at
//! once, not only on connections opened after the rotation.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::BytesMut;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::framing::words;
use crate::protocol::{Flow, Handoff, Protocol, Session};
use crate::stats::ServerStats;

/// Wrong passwords allowed on one connection; the last of them closes it.
pub const MAX_AUTH_FAILURES: u8 = 3;

const OK: &[u8] = b"OK\r\n";
const NOAUTH: &[u8] = b"ERROR NOAUTH authentication required\r\n";
const WRONGPASS: &[u8] = b"ERROR WRONGPASS invalid password\r\n";
const NO_PASSWORD: &[u8] = b"ERROR AUTH no password is set\r\n";
/// Sent to a non-loopback client in protected mode, then the connection is closed.
pub(crate) const DENIED: &[u8] =
    b"ERROR DENIED protected mode: set a password (--requirepass) or start \
with --protected-mode no\r\n";

/// A password, held as its SHA-256 digest only; `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Password {
    digest: [u8; 32],
}

impl Password {
    /// Keeps `password`'s digest.
    pub fn new(password: &[u8]) -> Self {
        Self {
            digest: Sha256::digest(password).into(),
        }
    }

    /// Whether `guess` is the password, in time independent of how close it is.
    fn matches(&self, guess: &[u8]) -> bool {
        let guess: [u8; 32] = Sha256::digest(guess).into();
        self.digest.ct_eq(&guess).into()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// The password of a running server: shared by every session of an [`Auth`] (cheap to
/// clone: one `Arc`) and replaceable while it serves, atomically and without a lock on the
/// `AUTH` path. Keep a clone to replace it with; every clone sees the change.
#[derive(Clone)]
pub struct SharedPassword(Arc<ArcSwap<Password>>);

impl SharedPassword {
    /// Shares `password`.
    pub fn new(password: Password) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(password)))
    }

    /// Makes every `AUTH` from now on, on every connection, check `password` instead.
    /// Connections that already authenticated stay authenticated.
    pub fn replace(&self, password: Password) {
        self.0.store(Arc::new(password));
    }

    /// Whether `guess` is the current password, in time independent of how close it is.
    fn matches(&self, guess: &[u8]) -> bool {
        self.0.load().matches(guess)
    }
}

impl From<Password> for SharedPassword {
    fn from(password: Password) -> Self {
        Self::new(password)
    }
}

impl fmt::Debug for SharedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedPassword(<redacted>)")
    }
}

/// `P` behind a password and protected mode. Without a password and with protected mode
/// off it only answers `AUTH` lines (with `ERROR AUTH no password is set`).
#[derive(Debug)]
pub struct Auth<P> {
    inner: P,
    /// Shared by every session: 8 bytes each, not a copy of the digest per connection
    /// (what a session holds is paid for by every idle client).
    password: Option<SharedPassword>,
    protected_mode: bool,
}

impl<P> Auth<P> {
    /// Wraps `inner`: clients must `AUTH` with `password` if one is given (a
    /// [`Password`] converts with `.into()`; keep a clone of the [`SharedPassword`] to
    /// replace it while serving); in `protected_mode` without a password, only loopback
    /// clients are served. Whether there is a password at all is fixed here: protected mode
    /// is decided on it for every connection.
    pub fn new(inner: P, password: Option<SharedPassword>, protected_mode: bool) -> Self {
        Self {
            inner,
            password,
            protected_mode,
        }
    }
}

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Served: authenticated, or no password is needed.
    Served,
    /// Must `AUTH` first; wrong passwords so far.
    Locked(u8),
    /// Protected mode turned it away: closed once opened.
    Denied,
}

/// A session of `S` behind the password.
#[derive(Debug)]
pub struct AuthSession<S> {
    inner: S,
    standing: Standing,
    /// The password, shared with every session; read when an `AUTH` arrives.
    password: Option<SharedPassword>,
}

impl<P: Protocol> Protocol for Auth<P> {
    type Session = AuthSession<P::Session>;

    fn on_start(&mut self, stats: &Arc<ServerStats>) {
        self.inner.on_start(stats);
    }

    fn open_session(&self, peer: SocketAddr) -> Self::Session {
        let standing = match &self.password {
            Some(_) => Standing::Locked(0),
            None if self.protected_mode && !is_loopback(peer.ip()) => Standing::Denied,
            None => Standing::Served,
        };
        AuthSession {
            inner: self.inner.open_session(peer),
            standing,
            password: self.password.clone(),
        }
    }

    async fn acceptor_hook(&self) {
        self.inner.acceptor_hook().await;
    }
}

/// Loopback, also as an IPv4-mapped IPv6 address (a dual-stack listener sees 127.0.0.1
/// as `::ffff:127.0.0.1`).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

impl<S: Session> Session for AuthSession<S> {
    fn on_open(&mut self, out: &mut BytesMut) -> Flow {
        if self.standing == Standing::Denied {
            out.extend_from_slice(DENIED);
            return Flow::Close;
        }
        self.inner.on_open(out)
    }

    async fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Flow {
        let auth = auth_argument(line);
        let answered_here = auth.is_some()
            || match self.standing {
                Standing::Served => false,
                Standing::Locked(_) => !is_quit(line),
                Standing::Denied => return Flow::Close,
            };
        if !answered_here {
            return self.inner.on_line(line, out).await;
        }
        // The inner session's deferred replies come before this line's, also before a
        // hang-up: what arrived before it is answered, nothing after it runs.
        self.inner.on_batch_end(out).await;
        if self.inner.screen(line) == Flow::Close {
            return Flow::Close;
        }
        match auth {
            Some(argument) => self.authenticate(argument, out),
            None => {
                out.extend_from_slice(NOAUTH);
                Flow::Continue
            }
        }
    }

    fn screen(&mut self, line: &[u8]) -> Flow {
        self.inner.screen(line)
    }

    async fn on_batch_end(&mut self, out: &mut BytesMut) {
        self.inner.on_batch_end(out).await;
    }

    fn poll_push(&mut self, out: Option<&mut BytesMut>, cx: &mut Context<'_>) -> Poll<Flow> {
        self.inner.poll_push(out, cx)
    }

    fn handoff(&mut self) -> Option<Handoff> {
        self.inner.handoff()
    }

    fn is_listening(&self) -> bool {
        self.inner.is_listening()
    }

    fn on_unterminated_eof(&mut self, rest: &[u8], out: &mut BytesMut) {
        if self.standing == Standing::Served {
            self.inner.on_unterminated_eof(rest, out);
        }
    }
}

impl<S> AuthSession<S> {
    /// Answers `AUTH argument`; `None` is an `AUTH` with no or several words after it.
    fn authenticate(&mut self, argument: Option<&[u8]>, out: &mut BytesMut) -> Flow {
        let Some(password) = &self.password else {
            out.extend_from_slice(NO_PASSWORD);
            return Flow::Continue;
        };
        if argument.is_some_and(|guess| password.matches(guess)) {
            self.standing = Standing::Served;
            out.extend_from_slice(OK);
            return Flow::Continue;
        }
        // A wrong password after a right one leaves the connection authenticated (as Redis
        // 6 does): only tries to get in count towards closing it.
        if self.standing == Standing::Served {
            out.extend_from_slice(WRONGPASS);
            return Flow::Continue;
        }
        let failures = match self.standing {
            Standing::Locked(failures) => failures + 1,
            _ => 1,
        };
        self.standing = Standing::Locked(failures);
        out.extend_from_slice(WRONGPASS);
        if failures >= MAX_AUTH_FAILURES {
            Flow::Close
        } else {
            Flow::Continue
        }
    }
}

/// If `line` is an `AUTH` request (any case): its one argument, or `Some(None)` if it has
/// none or more than one. Cheap for every other line: a line whose first byte cannot
/// begin `AUTH` is not split into words (every served line passes here).
fn auth_argument(line: &[u8]) -> Option<Option<&[u8]>> {
    if !matches!(line.first(), Some(b'A' | b'a' | b' ' | b'\t')) {
        return None;
    }
    let mut words = words(line);
    if !words.next()?.eq_ignore_ascii_case(b"AUTH") {
        return None;
    }
    let argument = words.next();
    Some(if words.next().is_some() {
        None
    } else {
        argument
    })
}

fn is_quit(line: &[u8]) -> bool {
    let mut words = words(line);
    words
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case(b"QUIT"))
        && words.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::Echo;
    use futures_util::FutureExt;

    fn loopback() -> SocketAddr {
        "127.0.0.1:5000".parse().expect("address")
    }

    fn remote() -> SocketAddr {
        "192.0.2.7:5000".parse().expect("address")
    }

    /// Runs `line` through `session`; echo sessions never wait.
    fn ask<S: Session>(session: &mut AuthSession<S>, line: &[u8]) -> (Vec<u8>, Flow) {
        let mut out = BytesMut::new();
        let flow = session
            .on_line(line, &mut out)
            .now_or_never()
            .expect("ready at once");
        (out.to_vec(), flow)
    }

    #[test]
    fn auth_is_found_in_any_case_after_blanks_and_nowhere_else() {
        let pw = Some(Some(&b"pw"[..]));
        assert_eq!(auth_argument(b"AUTH pw\r\n"), pw);
        assert_eq!(auth_argument(b"auth pw\n"), pw);
        assert_eq!(auth_argument(b" \tAuth  pw\r\n"), pw);
        assert_eq!(auth_argument(b"AUTH\r\n"), Some(None));
        assert_eq!(auth_argument(b"AUTH a b\r\n"), Some(None));
        assert_eq!(auth_argument(b"GET b AUTH\r\n"), None);
        assert_eq!(auth_argument(b"AUTHX pw\r\n"), None);
        assert_eq!(auth_argument(b"\r\n"), None);
    }

    fn with_password() -> Auth<Echo> {
        Auth::new(Echo, Some(Password::new(b"s3cret").into()), true)
    }

    #[test]
    fn before_auth_every_line_but_quit_is_noauth() {
        let mut session = with_password().open_session(remote());
        assert_eq!(
            ask(&mut session, b"PING\r\n"),
            (NOAUTH.to_vec(), Flow::Continue)
        );
        assert_eq!(
            ask(&mut session, b"GET b k\n"),
            (NOAUTH.to_vec(), Flow::Continue)
        );
        // QUIT goes through (echo echoes it; KV answers OK and closes).
        assert_eq!(
            ask(&mut session, b"quit\r\n"),
            (b"quit\r\n".to_vec(), Flow::Continue)
        );
    }

    #[test]
    fn the_right_password_opens_the_session() {
        let mut session = with_password().open_session(remote());
        assert_eq!(
            ask(&mut session, b"AUTH s3cret\r\n"),
            (OK.to_vec(), Flow::Continue)
        );
        assert_eq!(
            ask(&mut session, b"hello\n"),
            (b"hello\n".to_vec(), Flow::Continue)
        );
        assert_eq!(
            ask(&mut session, b"auth\ts3cret\n"),
            (OK.to_vec(), Flow::Continue)
        );
    }

    #[test]
    fn a_wrong_password_after_the_right_one_keeps_the_session_open() {
        let mut session = with_password().open_session(loopback());
        assert_eq!(
            ask(&mut session, b"AUTH s3cret\r\n"),
            (OK.to_vec(), Flow::Continue)
        );
        for _ in 0..4 {
            assert_eq!(
                ask(&mut session, b"AUTH nope\r\n"),
                (WRONGPASS.to_vec(), Flow::Continue)
            );
        }
        assert_eq!(
            ask(&mut session, b"hi\n"),
            (b"hi\n".to_vec(), Flow::Continue)
        );
    }

    #[test]
    fn the_third_wrong_password_closes_the_connection() {
        let mut session = with_password().open_session(loopback());
        let wrong = (WRONGPASS.to_vec(), Flow::Continue);
        assert_eq!(ask(&mut session, b"AUTH nope\r\n"), wrong);
        assert_eq!(ask(&mut session, b"AUTH s3cret extra\r\n"), wrong);
        assert_eq!(
            ask(&mut session, b"AUTH\r\n"),
            (WRONGPASS.to_vec(), Flow::Close)
        );
    }

    #[test]
    fn auth_without_a_password_set_says_so_and_is_not_echoed() {
        let mut session = Auth::new(Echo, None, true).open_session(loopback());
        assert_eq!(
            ask(&mut session, b"AUTH x\r\n"),
            (NO_PASSWORD.to_vec(), Flow::Continue)
        );
        assert_eq!(
            ask(&mut session, b"AUTHX\r\n"),
            (b"AUTHX\r\n".to_vec(), Flow::Continue)
        );
    }

    #[test]
    fn protected_mode_turns_away_remote_clients_only_without_a_password() {
        let mut out = BytesMut::new();
        let mut remote_session = Auth::new(Echo, None, true).open_session(remote());
        assert_eq!(remote_session.on_open(&mut out), Flow::Close);
        assert_eq!(&out[..], DENIED);
        for peer in [
            loopback(),
            "[::1]:1".parse().expect("v6"),
            "[::ffff:127.0.0.1]:1".parse().expect("mapped"),
        ] {
            let mut out = BytesMut::new();
            let mut session = Auth::new(Echo, None, true).open_session(peer);
            assert_eq!(session.on_open(&mut out), Flow::Continue, "{peer}");
            assert!(out.is_empty());
        }
        for auth in [Auth::new(Echo, None, false), with_password()] {
            let mut out = BytesMut::new();
            assert_eq!(
                auth.open_session(remote()).on_open(&mut out),
                Flow::Continue
            );
        }
    }

    /// A protocol that hangs up on a line starting `POST` or ending `HTTP/1.1`, as KV does
    /// on a line of HTTP.
    struct Picky;

    struct PickySession;

    impl Protocol for Picky {
        type Session = PickySession;

        fn open_session(&self, _: SocketAddr) -> PickySession {
            PickySession
        }
    }

    impl Session for PickySession {
        async fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Flow {
            if self.screen(line) == Flow::Close {
                return Flow::Close;
            }
            out.extend_from_slice(b"served\r\n");
            Flow::Continue
        }

        fn screen(&mut self, line: &[u8]) -> Flow {
            if line.starts_with(b"POST") || crate::trim_terminator(line).ends_with(b"HTTP/1.1") {
                Flow::Close
            } else {
                Flow::Continue
            }
        }
    }

    fn picky_with_password() -> Auth<Picky> {
        Auth::new(Picky, Some(Password::new(b"s3cret").into()), true)
    }

    #[test]
    fn before_auth_a_line_the_protocol_screens_out_closes_unanswered_not_noauth() {
        let mut session = picky_with_password().open_session(loopback());
        assert_eq!(
            ask(&mut session, b"GET x\r\n"),
            (NOAUTH.to_vec(), Flow::Continue)
        );
        assert_eq!(
            ask(&mut session, b"POST / HTTP/1.1\r\n"),
            (Vec::new(), Flow::Close)
        );
    }

    #[test]
    fn an_auth_line_the_protocol_screens_out_closes_before_and_after_authenticating() {
        let mut locked = picky_with_password().open_session(loopback());
        assert_eq!(
            ask(&mut locked, b"AUTH s3cret HTTP/1.1\r\n"),
            (Vec::new(), Flow::Close)
        );
        let mut served = picky_with_password().open_session(loopback());
        assert_eq!(
            ask(&mut served, b"AUTH s3cret\r\n"),
            (OK.to_vec(), Flow::Continue)
        );
        assert_eq!(
            ask(&mut served, b"AUTH x HTTP/1.1\r\n"),
            (Vec::new(), Flow::Close)
        );
    }

    #[test]
    fn wrappers_forward_the_screen_to_the_session_they_wrap() {
        let mut session = Auth::new(crate::Faulty::new(Picky), None, false).open_session(remote());
        assert_eq!(session.screen(b"POST /\r\n"), Flow::Close);
        assert_eq!(session.screen(b"PING\r\n"), Flow::Continue);
    }

    #[test]
    fn a_replaced_password_is_checked_on_open_connections_and_the_authenticated_stay_in() {
        let password = SharedPassword::new(Password::new(b"old"));
        let auth = Auth::new(Echo, Some(password.clone()), true);
        let mut authenticated = auth.open_session(remote());
        let mut waiting = auth.open_session(remote());
        assert_eq!(
            ask(&mut authenticated, b"AUTH old\r\n"),
            (OK.to_vec(), Flow::Continue)
        );
        password.replace(Password::new(b"new"));
        assert_eq!(
            ask(&mut authenticated, b"hi\n"),
            (b"hi\n".to_vec(), Flow::Continue)
        );
        assert_eq!(
            ask(&mut waiting, b"AUTH old\r\n"),
            (WRONGPASS.to_vec(), Flow::Continue)
        );
        assert_eq!(
            ask(&mut waiting, b"AUTH new\r\n"),
            (OK.to_vec(), Flow::Continue)
        );
        let mut opened_after = auth.open_session(remote());
        assert_eq!(
            ask(&mut opened_after, b"AUTH new\r\n"),
            (OK.to_vec(), Flow::Continue)
        );
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let auth = with_password();
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
