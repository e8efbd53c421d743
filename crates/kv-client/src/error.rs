use std::fmt;
use std::io;

use kv_protocol::InvalidWord;

/// What can go wrong with a request.
#[derive(Debug)]
pub enum Error {
    /// The connection failed.
    Io(io::Error),
    /// The server closed the connection.
    Closed,
    /// The bucket does not exist (`NOT FOUND`).
    NotFound,
    /// The server did not understand the request (`UNKNOWN COMMAND`).
    UnknownCommand,
    /// The server could not carry out the request (`ERROR <reason>`).
    Server(String),
    /// A bucket, key or value is empty or holds whitespace; nothing was sent.
    InvalidArgument(&'static str),
    /// The server answered something this client does not understand.
    UnexpectedReply(String),
}

impl Error {
    /// Whether the connection is unusable after this error.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Error::Io(_) | Error::Closed | Error::UnexpectedReply(_)
        )
    }
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Error::Io(a), Error::Io(b)) => a.kind() == b.kind(),
            (Error::Closed, Error::Closed)
            | (Error::NotFound, Error::NotFound)
            | (Error::UnknownCommand, Error::UnknownCommand) => true,
            (Error::Server(a), Error::Server(b)) => a == b,
            (Error::InvalidArgument(a), Error::InvalidArgument(b)) => a == b,
            (Error::UnexpectedReply(a), Error::UnexpectedReply(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "connection error: {e}"),
            Error::Closed => f.write_str("the server closed the connection"),
            Error::NotFound => f.write_str("bucket not found"),
            Error::UnknownCommand => f.write_str("the server answered UNKNOWN COMMAND"),
            Error::Server(reason) => write!(f, "server error: {reason}"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::UnexpectedReply(reply) => write!(f, "unexpected reply: {reply}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<crate::ConnectError> for Error {
    /// The stage is lost: for callers of [`crate::Client::connect`], whose errors were
    /// always [`Error`]s.
    fn from(e: crate::ConnectError) -> Self {
        match e {
            crate::ConnectError::Connect { source, .. }
            | crate::ConnectError::Handshake { source, .. }
            | crate::ConnectError::TlsSetup(source) => Error::Io(source),
            crate::ConnectError::Auth(e) => e,
            crate::ConnectError::TimedOut { .. } => Error::Io(io::ErrorKind::TimedOut.into()),
        }
    }
}

impl From<InvalidWord> for Error {
    fn from(e: InvalidWord) -> Self {
        Error::InvalidArgument(match e {
            InvalidWord::Empty => "empty bucket, key or value",
            InvalidWord::Whitespace => "whitespace in bucket, key or value",
        })
    }
}
