//! kv-cli: the client a person uses at a terminal and a script uses in a pipeline, what
//! `redis-cli` is to Redis (SPEC §16, docs/CLI.md). Built on `kv-client`; every request is
//! encoded and every reply decoded by `kv-protocol`, the grammar the server itself uses.
//!
//! # Layout
//! - [`args`]: the flags (clap), and which mode they ask for ([`args::Mode`]).
//! - [`connect`]: connection options from the flags and the environment (the password from
//!   `KV_PASSWORD` or `--password-file`), and errors a person can act on.
//! - [`line`]: what a typed line is: a request, `AUTH`, a line the grammar does not know, or
//!   one kv-cli keeps back (`SUBSCRIBE`, a line of HTTP).
//! - [`output`]: replies printed as the server sent them, and the exit status.
//! - One module per mode: [`oneshot`] (request words on the command line, `-r`/`-i`),
//!   [`pipe`] (standard input, pipelined), [`repl`] (a terminal: line editing, history),
//!   [`latency`] (`--latency`), [`stat`] (`--stat`) and [`subscribe`] (`SUBSCRIBE bucket`: events
//!   until interrupted), all three ended by [`stop`]; [`backup`] (`--backup FILE`).

#![warn(missing_docs)]

pub mod args;
pub mod backup;
pub mod connect;
pub mod latency;
pub mod line;
pub mod oneshot;
pub mod output;
pub mod pipe;
pub mod repl;
pub mod stat;
pub mod stop;
pub mod subscribe;

use args::{Args, Mode};
use output::Status;

/// Runs what `args` ask for and says how it went. Errors were already reported on stderr.
pub fn run(args: Args) -> Status {
    let mode = args.mode();
    if let Mode::Completions(shell) = mode {
        args::print_completions(shell);
        return Status::Ok;
    }
    let options = match connect::options(&args) {
        Ok(options) => options,
        Err(message) => {
            output::complain(&message);
            return Status::Usage;
        }
    };
    // A REPL reads lines on this thread while requests run on the runtime; the other modes
    // are async throughout. Two workers: the pipe's writer and reader run side by side.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            output::complain(&format!("cannot start the async runtime: {e}"));
            return Status::Unavailable;
        }
    };
    match mode {
        Mode::OneShot(words) => runtime.block_on(oneshot::run(&options, &words, &args)),
        Mode::Pipe => runtime.block_on(pipe::run(&options)),
        Mode::Repl => repl::run(&runtime, options),
        Mode::Latency => runtime.block_on(latency::run(&options)),
        Mode::Stat => runtime.block_on(stat::run(&options, args.interval())),
        Mode::Backup(file) => runtime.block_on(backup::run(&options, &file)),
        Mode::Completions(_) => Status::Ok,
    }
}
