//! From flags and environment to a connection, and from failures to sentences a person can
//! act on: which address, which certificate, how to give the password.

use std::io;

use kv_client::{Client, ConnectError, ConnectOptions, Error, Reply, Secret, TlsOptions};

use crate::args::Args;

/// The environment variable holding the password (redis-cli's is `REDISCLI_AUTH`).
pub const PASSWORD_ENV: &str = "KV_PASSWORD";

/// The connection options `args` describe, with the password from `--password-file` or
/// else `KV_PASSWORD` (an empty one counts as unset). Errors: a sentence saying which
/// flag or file is wrong.
pub fn options(args: &Args) -> Result<ConnectOptions, String> {
    let mut options = ConnectOptions::new(args.host.clone(), args.port);
    options.timeout = args.timeout();
    options.password = password(args)?;
    if args.tls {
        let Some(ca_cert) = args.cacert.clone() else {
            return Err(
                "--tls needs --cacert FILE: the CA certificate (PEM) that signed \
                        the server's certificate"
                    .into(),
            );
        };
        options.tls = Some(TlsOptions {
            ca_cert,
            server_name: args.sni.clone().unwrap_or_else(|| args.host.clone()),
            identity: args.cert.clone().zip(args.key.clone()),
        });
    }
    Ok(options)
}

fn password(args: &Args) -> Result<Option<Secret>, String> {
    if let Some(path) = &args.password_file {
        return Secret::from_file(path).map(Some).map_err(|e| e.to_string());
    }
    match std::env::var_os(PASSWORD_ENV) {
        Some(value) if !value.is_empty() => {
            let secret = Secret::checked(value.as_encoded_bytes())
                .map_err(|why| format!("{PASSWORD_ENV}: {why}"))?;
            Ok(Some(secret))
        }
        _ => Ok(None),
    }
}

/// Connects and authenticates as `options` say. Errors: what went wrong and what to do,
/// ready for stderr.
pub async fn connect(options: &ConnectOptions) -> Result<Client, String> {
    match Client::connect_with(options).await {
        Ok(client) => Ok(client),
        // A password given to a server that has none is harmless: go on without it, as
        // redis-cli does after its AUTH warning.
        Err(ConnectError::Auth(Error::Server(reason))) if reason.starts_with("AUTH ") => {
            crate::output::complain(&format!(
                "the server has no password set ({reason}); going on without AUTH"
            ));
            let mut without = options.clone();
            without.password = None;
            Client::connect_with(&without)
                .await
                .map_err(|e| explain(&e, options))
        }
        Err(e) => Err(explain(&e, options)),
    }
}

/// What the operator modes (`--latency`, `--stat`) start with: a watch for Ctrl-C, then a
/// connection. Errors were said on stderr; the status to exit with.
pub async fn until_stopped(
    options: &ConnectOptions,
) -> Result<(crate::stop::Stop, Client), crate::output::Status> {
    use crate::output::{complain, Status};
    let stop = crate::stop::Stop::new().map_err(|e| {
        complain(&format!("cannot watch for Ctrl-C: {e}"));
        Status::Error
    })?;
    let client = connect(options).await.map_err(|message| {
        complain(&message);
        Status::Unavailable
    })?;
    Ok((stop, client))
}

/// A connection failure, explained.
pub fn explain(error: &ConnectError, options: &ConnectOptions) -> String {
    let address = options.address();
    match error {
        ConnectError::Connect { source, .. } => explain_connect(source, options),
        ConnectError::TlsSetup(e) => format!("TLS: {e}"),
        ConnectError::Handshake { source, .. } => {
            let why = options
                .tls
                .as_ref()
                .and_then(|tls| tls.explain(source))
                .unwrap_or_else(|| source.to_string());
            format!("TLS handshake with {address} failed: {why}")
        }
        ConnectError::Auth(e) => explain_auth(e, options),
        ConnectError::TimedOut { after, .. } => format!(
            "no connection to {address} within {after:?} (is a firewall dropping it, or the \
             server overloaded? -t SECONDS waits longer)"
        ),
    }
}

fn explain_connect(source: &io::Error, options: &ConnectOptions) -> String {
    let address = options.address();
    match source.kind() {
        io::ErrorKind::ConnectionRefused => format!(
            "cannot connect to {address}: connection refused. Is kv-server running, and \
             listening on port {}? (-h HOST and -p PORT choose where kv-cli connects)",
            options.port
        ),
        _ if source.to_string().contains("lookup") => format!(
            "cannot resolve the host {:?}: {source} (-h HOST)",
            options.host
        ),
        _ => format!("cannot connect to {address}: {source}"),
    }
}

fn explain_auth(error: &Error, options: &ConnectOptions) -> String {
    match error {
        Error::Server(reason) if reason.starts_with("WRONGPASS") => format!(
            "the server refused the password ({reason}): check {PASSWORD_ENV} or the file \
             given with --password-file"
        ),
        Error::Server(reason) => format!("AUTH refused: {reason}"),
        other => explain_lost(other, options),
    }
}

/// A request failed on an open connection: why, in words (TLS refusals in TLS 1.3 surface
/// here, on the first read).
pub fn explain_lost(error: &Error, options: &ConnectOptions) -> String {
    let address = options.address();
    if let Error::Io(e) = error {
        if let Some(why) = options.tls.as_ref().and_then(|tls| tls.explain(e)) {
            return format!("TLS with {address} failed: {why}");
        }
    }
    match error {
        Error::Closed => format!(
            "the server at {address} closed the connection{}",
            if options.tls.is_none() {
                " (a TLS port closes plaintext clients: --tls?)"
            } else {
                ""
            }
        ),
        Error::UnexpectedReply(_) if options.tls.is_none() => format!(
            "{address} answered something that is no kv-server reply ({error}); is it a TLS \
             port (--tls), or another server?"
        ),
        other => format!("connection to {address} failed: {other}"),
    }
}

/// How to give the password, for a server that answered `NOAUTH`.
pub fn password_hint() -> String {
    format!("the server requires a password: set {PASSWORD_ENV}, or give --password-file FILE")
}

/// If `reply` says the server wants a password (`ERROR NOAUTH ...`): how to give it.
pub fn noauth_hint(reply: Option<Reply<'_>>) -> Option<String> {
    match reply {
        Some(Reply::Error(reason)) if reason.starts_with(b"NOAUTH") => Some(password_hint()),
        _ => None,
    }
}

/// If `error` is the server's `NOAUTH`: how to give the password.
pub fn noauth_hint_of(error: &Error) -> Option<String> {
    match error {
        Error::Server(reason) => noauth_hint(Some(Reply::Error(reason.as_bytes()))),
        _ => None,
    }
}
