use bytes::Bytes;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

use crate::{Error, Request};

/// Longest reply line this client accepts (the server's default line limit).
const MAX_REPLY_LINE: u64 = 64 * 1024;

/// A successful reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `OK` to CREATE, PUT or DELETE.
    Ok,
    /// The reply to GET: the value, or `None` for a missing key.
    Value(Option<Bytes>),
    /// `PONG`
    Pong,
}

/// Reads the reply to `request` from `reader`.
pub async fn read_response<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    request: &Request,
) -> Result<Response, Error> {
    let line = read_line(reader).await?;
    if let Some(error) = error_reply(&line) {
        return Err(error);
    }
    match request {
        Request::Get { .. } => {
            let ok = read_line(reader).await?;
            expect(&ok, b"OK")?;
            Ok(Response::Value(
                (!line.is_empty()).then(|| Bytes::from(line)),
            ))
        }
        Request::Ping => expect(&line, b"PONG").map(|()| Response::Pong),
        _ => expect(&line, b"OK").map(|()| Response::Ok),
    }
}

/// Recognises the replies that mean failure. None of them can be a value: values hold
/// no spaces.
fn error_reply(line: &[u8]) -> Option<Error> {
    match line {
        b"NOT FOUND" => Some(Error::NotFound),
        b"UNKNOWN COMMAND" => Some(Error::UnknownCommand),
        _ => line
            .strip_prefix(b"ERROR ")
            .map(|reason| Error::Server(String::from_utf8_lossy(reason).into_owned())),
    }
}

fn expect(line: &[u8], wanted: &[u8]) -> Result<(), Error> {
    if line == wanted {
        Ok(())
    } else {
        Err(Error::UnexpectedReply(
            String::from_utf8_lossy(line).into_owned(),
        ))
    }
}

/// Reads one `\r\n`-terminated line, without its terminator.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, Error> {
    let mut line = Vec::new();
    let n = reader
        .take(MAX_REPLY_LINE)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(Error::Closed);
    }
    if line.pop() != Some(b'\n') {
        return Err(Error::UnexpectedReply(
            "reply line too long or cut off".into(),
        ));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(wire: &[u8], request: Request) -> Result<Response, Error> {
        let mut reader = wire;
        read_response(&mut reader, &request).await
    }

    #[tokio::test]
    async fn reads_every_kind_of_reply() {
        let get = || Request::get("b", "k");
        assert_eq!(
            parse(b"OK\r\n", Request::create("b")).await,
            Ok(Response::Ok)
        );
        assert_eq!(
            parse(b"1\r\nOK\r\n", get()).await,
            Ok(Response::Value(Some("1".into())))
        );
        assert_eq!(parse(b"\r\nOK\r\n", get()).await, Ok(Response::Value(None)));
        assert_eq!(
            parse(b"OK\r\nOK\r\n", get()).await,
            Ok(Response::Value(Some("OK".into())))
        );
        assert_eq!(parse(b"NOT FOUND\r\n", get()).await, Err(Error::NotFound));
        assert_eq!(
            parse(b"UNKNOWN COMMAND\r\n", get()).await,
            Err(Error::UnknownCommand)
        );
        assert_eq!(
            parse(b"ERROR disk full\r\n", Request::put("b", "k", "v")).await,
            Err(Error::Server("disk full".into()))
        );
        assert_eq!(parse(b"PONG\r\n", Request::Ping).await, Ok(Response::Pong));
        assert_eq!(parse(b"", Request::Ping).await, Err(Error::Closed));
        assert!(matches!(
            parse(b"WHAT\r\n", Request::Ping).await,
            Err(Error::UnexpectedReply(_))
        ));
    }
}
