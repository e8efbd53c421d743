//! `kv-cli [flags] REQUEST WORDS...`: one request, its reply on stdout, the exit status
//! saying how it went (0 normal reply, 1 error reply, 2 no server or no authentication),
//! so `kv-cli PING` is a health check. `-r N -i SECONDS` repeat it, as redis-cli's do.

use std::time::Duration;

use kv_client::{Client, ConnectOptions, Outgoing, Received};
use kv_protocol::check_word;

use crate::args::Args;
use crate::connect;
use crate::line::{self, Typed};
use crate::output::{self, Status};

/// Sends `words` as one request (`-r` times, `-i` apart) and prints each reply. The status
/// is the worst seen; a lost connection stops the repeats.
pub async fn run(options: &ConnectOptions, words: &[String], args: &Args) -> Status {
    let line = match join(words) {
        Ok(line) => line,
        Err(message) => {
            output::complain(&message);
            return Status::Error;
        }
    };
    let outgoing = match line::classify(&line) {
        Typed::Send(outgoing) => outgoing,
        Typed::Subscribe(bucket) => return crate::subscribe::run(options, bucket).await,
        Typed::Refused(why) => {
            output::complain(&format!("not sent: {why}"));
            return Status::Error;
        }
        Typed::Blank => return Status::Error,
    };
    let mut client = match connect::connect(options).await {
        Ok(client) => client,
        Err(message) => {
            output::complain(&message);
            return Status::Unavailable;
        }
    };
    let mut worst = Status::Ok;
    let mut sent: i64 = 0;
    // -r -1 (any negative count): until interrupted.
    while args.repeat < 0 || sent < args.repeat {
        if sent > 0 {
            tokio::time::sleep(args.repeat_interval()).await;
        }
        let status = once(&mut client, &outgoing, args.timeout()).await;
        worst = worst.max(status);
        if status == Status::Unavailable {
            break;
        }
        sent += 1;
    }
    worst
}

/// The request line the words make. Errors: a word the protocol cannot carry (a space or
/// line break inside it, or empty), which would reach the server as other words.
fn join(words: &[String]) -> Result<Vec<u8>, String> {
    for word in words {
        check_word(word.as_bytes()).map_err(|e| {
            format!(
                "{word:?}: {e}: a request's words are separated by spaces, so no word can hold one"
            )
        })?;
    }
    Ok(words.join(" ").into_bytes())
}

/// Sends `outgoing` once and prints its reply (with a hint on stderr for `NOAUTH`).
async fn once(client: &mut Client, outgoing: &Outgoing<'_>, timeout: Duration) -> Status {
    let options = client.options().clone();
    let reply = match tokio::time::timeout(timeout, client.exchange(outgoing)).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            output::complain(&connect::explain_lost(&e, &options));
            return Status::Unavailable;
        }
        Err(_) => {
            output::complain(&format!(
                "no reply from {} within {timeout:?} (-t SECONDS waits longer)",
                options.address()
            ));
            return Status::Unavailable;
        }
    };
    report(&reply)
}

/// Prints `reply` and says what it means for the exit status: a `NOAUTH` is "cannot
/// authenticate" (2), so that a health check without the password fails as such.
fn report(reply: &Received<'_>) -> Status {
    if let Err(e) = output::print_reply(reply.wire) {
        output::complain(&format!("cannot write the reply to stdout: {e}"));
        return Status::Error;
    }
    if let Some(hint) = connect::noauth_hint(reply.reply) {
        output::complain(&hint);
        return Status::Unavailable;
    }
    Status::of(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_joined_by_one_space() {
        let words = ["PUT", "b", "k", "v"].map(String::from);
        assert_eq!(join(&words).expect("valid"), b"PUT b k v");
    }

    #[test]
    fn a_word_holding_a_space_is_refused_before_sending() {
        let words = ["PUT", "b", "k", "two words"].map(String::from);
        let e = join(&words).expect_err("cannot travel");
        assert!(e.contains("two words"), "{e}");
    }
}
