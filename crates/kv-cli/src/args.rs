//! The command line, as redis-cli's where kv-cli does the same thing: `-h HOST` (so help is
//! `--help` only), `-p PORT`, `--tls --cacert F --cert F --key F --sni NAME`, `-r N`,
//! `-i SECONDS`, `--latency`, `--stat`. The password is never a flag's value: it comes
//! from `KV_PASSWORD` or `--password-file` (redis-cli's `-a` puts it in `ps` output).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser};
use clap_complete::Shell;

/// kv-cli's flags. Field docs are the `--help` text.
#[derive(Debug, Parser)]
#[command(
    name = "kv-cli",
    version,
    about = "The command-line client of kv-server",
    long_about = "The command-line client of kv-server.\n\n\
        With REQUEST words, sends that one request, prints the reply and exits: 0 for a \
        normal reply (OK, a value, PONG, NOT FOUND), 1 for ERROR or UNKNOWN COMMAND, 2 when \
        it cannot connect or authenticate. So `kv-cli PING` is a health check.\n\
        Without them, on a terminal: an interactive session (line editing, history). \
        Without a terminal: the lines of standard input are sent pipelined and every reply \
        printed in order; exit 1 if any was an error.",
    after_help = "The password comes from the environment variable KV_PASSWORD or from \
        --password-file (its first line), never from the command line.\n\
        Manual: docs/CLI.md",
    disable_help_flag = true
)]
pub struct Args {
    /// Server host name or IP address.
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,

    /// Server port.
    #[arg(short = 'p', long, default_value_t = 4040)]
    pub port: u16,

    /// Read the password from the first line of FILE (as kv-server's --requirepass-file).
    /// Without it, the environment variable KV_PASSWORD is used if set.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Speak TLS (a server started with --tls-cert-file).
    #[arg(long)]
    pub tls: bool,

    /// With --tls: the CA certificate (PEM) that signed the server's certificate.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub cacert: Option<PathBuf>,

    /// With --tls: a client certificate (PEM), for a server started with
    /// --tls-ca-cert-file.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,

    /// With --cert: the client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// With --tls: the name the server's certificate must be valid for (default: HOST).
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub sni: Option<String>,

    /// Seconds to wait for the connection (TCP, TLS and AUTH), and for a one-shot reply.
    #[arg(short = 't', long, value_name = "SECONDS", default_value_t = 10.0)]
    pub timeout: f64,

    /// Send the request N times (-1: until interrupted), as redis-cli -r.
    #[arg(
        short = 'r',
        value_name = "N",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub repeat: i64,

    /// Seconds between repeats (-r), and between --stat lines (default 1 for --stat).
    #[arg(short = 'i', value_name = "SECONDS")]
    pub interval: Option<f64>,

    /// Measure round trips: PING continuously, printing min/avg/max in milliseconds until
    /// interrupted (Ctrl-C).
    #[arg(long, conflicts_with_all = ["stat", "request"])]
    pub latency: bool,

    /// Print a line of server figures (keys, memory, clients, commands/s) every second
    /// (-i) until interrupted (Ctrl-C).
    #[arg(long, conflicts_with = "request")]
    pub stat: bool,

    /// Write the server's backup to FILE (written aside, checked, synced, then renamed:
    /// FILE is never a partial backup) and exit; restore it with `kv-server restore`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["stat", "latency", "request"])]
    pub backup: Option<PathBuf>,

    /// Print a completion script for SHELL and exit (e.g. `kv-cli --completions bash`).
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub completions: Option<Shell>,

    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,

    /// The request, as words (e.g. `GET shopping milk`). None: read requests from
    /// standard input.
    #[arg(value_name = "REQUEST", trailing_var_arg = true)]
    pub request: Vec<String>,
}

/// What to do, decided once from the flags and whether standard input is a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Send the request words on the command line (maybe repeatedly).
    OneShot(Vec<String>),
    /// Send standard input's lines, pipelined.
    Pipe,
    /// An interactive session on the terminal.
    Repl,
    /// `--latency`
    Latency,
    /// `--stat`
    Stat,
    /// `--backup FILE`
    Backup(PathBuf),
    /// `--completions SHELL`
    Completions(Shell),
}

impl Args {
    /// The mode these flags ask for.
    pub fn mode(&self) -> Mode {
        if let Some(shell) = self.completions {
            Mode::Completions(shell)
        } else if let Some(file) = &self.backup {
            Mode::Backup(file.clone())
        } else if self.latency {
            Mode::Latency
        } else if self.stat {
            Mode::Stat
        } else if !self.request.is_empty() {
            Mode::OneShot(self.request.clone())
        } else if std::io::stdin().is_terminal() {
            Mode::Repl
        } else {
            Mode::Pipe
        }
    }

    /// `-i` as a duration; 1 s when not given (redis-cli's `--stat` default). A negative or
    /// non-finite value counts as none.
    pub fn interval(&self) -> Duration {
        self.interval
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(Duration::from_secs(1))
    }

    /// `-i` for `-r`: no pause unless given.
    pub fn repeat_interval(&self) -> Duration {
        self.interval
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(Duration::ZERO)
    }

    /// `-t` as a duration (10 s if it is negative or not finite).
    pub fn timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.timeout).unwrap_or(Duration::from_secs(10))
    }
}

/// Writes the completion script for `shell` to stdout.
pub fn print_completions(shell: Shell) {
    let mut command = Args::command();
    clap_complete::generate(shell, &mut command, "kv-cli", &mut std::io::stdout());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("kv-cli").chain(words.iter().copied()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn dash_h_is_the_host_and_the_request_words_follow() {
        let args = parse(&["-h", "10.0.0.1", "-p", "5000", "GET", "b", "k"]).expect("valid");
        assert_eq!((args.host.as_str(), args.port), ("10.0.0.1", 5000));
        assert_eq!(
            args.mode(),
            Mode::OneShot(vec!["GET".into(), "b".into(), "k".into()])
        );
    }

    #[test]
    fn request_words_may_look_like_flags_after_the_verb() {
        let args = parse(&["PUT", "b", "k", "-1"]).expect("valid");
        assert_eq!(args.request, ["PUT", "b", "k", "-1"]);
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_tls() {
        assert!(parse(&["--tls", "--cacert", "ca.pem", "--cert", "c.pem"]).is_err());
        assert!(parse(&["--cert", "c.pem", "--key", "k.pem"]).is_err());
        assert!(parse(&["--tls", "--cacert", "ca", "--cert", "c", "--key", "k"]).is_ok());
    }

    #[test]
    fn there_is_no_password_flag() {
        assert!(parse(&["--password", "x", "PING"]).is_err());
        assert!(parse(&["-a", "x", "PING"]).is_err());
    }

    #[test]
    fn operator_modes_take_no_request_words() {
        assert!(parse(&["--latency", "PING"]).is_err());
        assert!(parse(&["--stat", "PING"]).is_err());
        assert_eq!(
            parse(&["--stat", "-i", "0.5"]).expect("valid").mode(),
            Mode::Stat
        );
    }
}
