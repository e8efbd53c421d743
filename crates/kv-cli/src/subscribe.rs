//! `kv-cli SUBSCRIBE bucket`: each change to the bucket printed as it arrives, one line as
//! the server sends it (`milk SET TO 1`), until interrupted (SPEC §16).

use std::io::Write;

use kv_client::{ConnectOptions, Error, Event};

use crate::connect;
use crate::output::{complain, Status};

/// Subscribes to `bucket` and prints its events until Ctrl-C (exit 0). The server ending
/// the subscription (`ERROR subscription lost`, `ERROR too slow ...`) is 1; no server, no
/// authentication or a lost connection is 2; a missing bucket prints `NOT FOUND` (0, as a
/// one-shot `NOT FOUND` is).
pub async fn run(options: &ConnectOptions, bucket: &[u8]) -> Status {
    let (mut stop, client) = match connect::until_stopped(options).await {
        Ok(started) => started,
        Err(status) => return status,
    };
    let mut subscription = match client.subscribe(bucket).await {
        Ok(subscription) => subscription,
        Err(Error::NotFound) => {
            println!("NOT FOUND");
            return Status::Ok;
        }
        Err(e) => return ended(&e),
    };
    loop {
        let next = tokio::select! {
            () = stop.wait() => return Status::Ok,
            next = subscription.next() => next,
        };
        match next {
            Ok(Some(event)) => {
                if print(&event).is_err() {
                    // Whoever reads the output is gone (a closed pipe): so is the point.
                    return Status::Ok;
                }
            }
            Ok(None) => return ended(&Error::Closed),
            Err(e) => return ended(&e),
        }
    }
}

/// The event as the server sent it, on its own line.
fn print(event: &Event) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match event {
        Event::Set { key, value } => {
            out.write_all(key)?;
            out.write_all(b" SET TO ")?;
            out.write_all(value)?;
        }
        Event::Deleted { key } => {
            out.write_all(key)?;
            out.write_all(b" DELETED")?;
        }
    }
    out.write_all(b"\n")?;
    out.flush()
}

fn ended(error: &Error) -> Status {
    match error {
        Error::Server(reason) => {
            println!("ERROR {reason}");
            Status::Error
        }
        other => {
            complain(&format!("the subscription ended: {other}"));
            Status::Unavailable
        }
    }
}
