//! The offline tools, `kv-server restore` and `kv-server check` (docs/BACKUP.md): each
//! does its work and exits; nothing is served. They are words before any flag, so the
//! server's own flags and environment variables (`PORT`, `KV_*`, read under a service
//! manager) never meet them.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// The words that name a tool.
const TOOLS: [&str; 2] = ["restore", "check"];

/// kv-server's offline tools.
#[derive(Debug, Parser)]
#[command(name = "kv-server", version)]
enum Tool {
    /// Make a data directory from a backup file (made by `kv-cli --backup FILE`); then serve
    /// it with `kv-server --data-dir DIR`. The backup is checked whole first: a damaged,
    /// cut-short or unknown-version file is refused, as is a DIR that holds anything, and
    /// nothing is written.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The data directory to make (new, or empty).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Verify a data directory offline, as start-up would read it, changing nothing; or,
    /// with --backup, a backup file. Says what it found; exits 1 on damage (naming the
    /// file and the byte offset) or if a running server holds the directory.
    Check {
        /// The data directory to verify.
        #[arg(long, required_unless_present = "backup", conflicts_with = "backup")]
        data_dir: Option<PathBuf>,
        /// A backup file to verify instead.
        #[arg(long)]
        backup: Option<PathBuf>,
    },
}

/// Runs the tool the command line names, if it names one: its exit status.
pub fn run_if_named() -> Option<ExitCode> {
    let first = std::env::args_os().nth(1)?;
    if !TOOLS.iter().any(|tool| first == *tool) {
        return None;
    }
    Some(match Tool::parse() {
        Tool::Restore { file, data_dir } => restore(&file, &data_dir),
        Tool::Check { data_dir, backup } => match (data_dir, backup) {
            (_, Some(file)) => check_backup(&file),
            (Some(dir), None) => check_dir(&dir),
            (None, None) => unreachable_usage(),
        },
    })
}

fn restore(file: &std::path::Path, dir: &std::path::Path) -> ExitCode {
    match kv_store::durable::restore(file, dir) {
        Ok(summary) => say(format_args!(
            "restored {} bucket(s), {} key(s) ({} bytes of data) from {} into {}; serve it \
             with: kv-server --data-dir {}",
            summary.buckets,
            summary.keys,
            summary.data_bytes,
            file.display(),
            dir.display(),
            dir.display()
        )),
        Err(e) => fail("restore", &e),
    }
}

fn check_dir(dir: &std::path::Path) -> ExitCode {
    match kv_store::durable::check(dir) {
        Ok(report) => say(format_args!("{}", report.to_string().trim_end())),
        Err(e) => fail("check", &e),
    }
}

fn check_backup(file: &std::path::Path) -> ExitCode {
    match kv_store::backup::verify(file) {
        Ok(summary) => say(format_args!(
            "backup {}: whole (format version {}): {} bucket(s), {} key(s), {} bytes of \
             data, {} bytes",
            file.display(),
            kv_store::backup::FORMAT_VERSION,
            summary.buckets,
            summary.keys,
            summary.data_bytes,
            summary.file_bytes
        )),
        Err(e) => fail("check", &format!("backup {}: {e}", file.display())),
    }
}

/// Clap enforces one of the two; said rather than panicked, should that ever change.
fn unreachable_usage() -> ExitCode {
    fail("check", &"give --data-dir DIR or --backup FILE");
    ExitCode::from(2)
}

fn say(what: std::fmt::Arguments<'_>) -> ExitCode {
    // A closed stdout (`| head`) is no failure of the tool's.
    let _ = writeln!(std::io::stdout(), "{what}");
    ExitCode::SUCCESS
}

fn fail(tool: &str, e: &dyn std::fmt::Display) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "kv-server {tool}: {e}");
    ExitCode::FAILURE
}
