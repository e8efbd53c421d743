//! [`BackupStream`]: the reply to `BACKUP` (PROTOCOL.md, "Backup"), read as the raw bytes
//! of a backup file. Checking them (and knowing where they end) is the backup format's
//! reader's business (`kv_store::backup::Reader`), which `kv-cli --backup` uses; this
//! crate only tells a backup from a refusal.

use bytes::{Buf, Bytes, BytesMut};
use kv_protocol::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Client, Error, Stream};

/// How much is read at a time.
const READ_SIZE: usize = 256 << 10;

/// A connection receiving a backup; dropping it closes the connection (and the server
/// stops making the backup).
pub struct BackupStream {
    stream: Box<dyn Stream>,
    input: BytesMut,
}

impl Client {
    /// `BACKUP`: once this returns, the server is sending its backup. A refusal is an
    /// error: [`Error::Server`] (`ERROR`: in cluster mode, another backup running, not
    /// authenticated), [`Error::UnexpectedReply`] (a server that does not know `BACKUP`
    /// answers `UNKNOWN COMMAND`), or connection errors.
    pub async fn backup(mut self) -> Result<BackupStream, Error> {
        self.input.advance(std::mem::take(&mut self.returned));
        self.out.clear();
        Request::Backup.encode(&mut self.out);
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        let mut backup = BackupStream {
            stream: self.stream,
            input: self.input,
        };
        if backup.input.is_empty() {
            backup.fill().await?;
        }
        match backup.input.first() {
            None => Err(Error::Closed),
            // A reply line is ASCII; a backup begins with a byte that is not.
            Some(b) if b.is_ascii() => Err(backup.refusal().await),
            Some(_) => Ok(backup),
        }
    }
}

impl BackupStream {
    /// The next bytes of the backup, as they arrive; `Ok(None)` if the server closed the
    /// connection. The stream has no end of its own: the backup's end record says when it
    /// is whole, and then nothing more comes.
    pub async fn next(&mut self) -> Result<Option<Bytes>, Error> {
        if self.input.is_empty() && !self.fill().await? {
            return Ok(None);
        }
        Ok(Some(self.input.split().freeze()))
    }

    /// Reads more into `input`; `false` at the end of the stream.
    async fn fill(&mut self) -> Result<bool, Error> {
        self.input.reserve(READ_SIZE);
        Ok(self.stream.read_buf(&mut self.input).await? > 0)
    }

    /// The reply line that refused the backup, as an error.
    async fn refusal(&mut self) -> Error {
        loop {
            if let Some(end) = self.input.iter().position(|b| *b == b'\n') {
                let line = String::from_utf8_lossy(&self.input[..end]);
                let line = line.trim_end_matches('\r');
                return match line.strip_prefix("ERROR ") {
                    Some(reason) => Error::Server(reason.to_owned()),
                    None => Error::UnexpectedReply(line.to_owned()),
                };
            }
            match self.fill().await {
                Ok(true) => {}
                Ok(false) => return Error::Closed,
                Err(e) => return e,
            }
        }
    }
}
