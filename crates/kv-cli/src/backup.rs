//! `kv-cli --backup FILE`: the server's backup written to FILE (SPEC §17, docs/BACKUP.md).
//!
//! The bytes are checked as they arrive (every frame's checksum, the record count, the
//! end) and written to a file beside FILE; only a whole backup is synced and renamed to
//! FILE, so FILE is never a partial backup, whatever stops kv-cli (an error, Ctrl-C, a
//! kill: the partial file keeps its own name, `.FILE.partial-PID`, removed unless kv-cli
//! was killed). On a terminal, a progress line on stderr.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kv_client::{BackupStream, ConnectOptions, Error};
use kv_store::backup::{Reader, Summary};

use crate::connect;
use crate::output::{complain, Status};

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Takes the server's backup into `file`. 0 once it is there; 1 if the server refused
/// (`ERROR ...`, printed), the backup arrived damaged, or the file cannot be written; 2 if
/// the server cannot be reached or the connection was lost before the backup's end.
pub async fn run(options: &ConnectOptions, file: &Path) -> Status {
    let (mut stop, client) = match connect::until_stopped(options).await {
        Ok(started) => started,
        Err(status) => return status,
    };
    let aside = partial_path(file);
    let mut out = match Partial::create(&aside) {
        Ok(out) => out,
        Err(e) => {
            complain(&format!("cannot write {}: {e}", aside.display()));
            return Status::Error;
        }
    };
    let started = Instant::now();
    let received = tokio::select! {
        () = stop.wait() => Err((Status::Error, "interrupted; no backup written".to_string())),
        received = receive(client, &mut out, started) => received,
    };
    let summary = match received.and_then(|summary| out.keep(file).map(|()| summary)) {
        Ok(summary) => summary,
        Err((status, message)) => {
            complain(&message);
            return status;
        }
    };
    println!(
        "backup written to {}: {} bucket(s), {} key(s), {} bytes in {:.1} s",
        file.display(),
        summary.buckets,
        summary.keys,
        summary.file_bytes,
        started.elapsed().as_secs_f64()
    );
    Status::Ok
}

/// Why a backup was not taken: the exit status and what to say.
type Failed = (Status, String);

/// Asks for the backup and writes it to `out` until its end record.
async fn receive(
    client: kv_client::Client,
    out: &mut Partial,
    started: Instant,
) -> Result<Summary, Failed> {
    let mut stream: BackupStream = client.backup().await.map_err(refused)?;
    let mut reader = Reader::new();
    let mut progress = Progress::new(started);
    while !reader.is_complete() {
        let piece = match stream.next().await {
            Ok(Some(piece)) => piece,
            Ok(None) => return Err(lost(&Error::Closed, &reader)),
            Err(e) => return Err(lost(&e, &reader)),
        };
        reader
            .feed(&piece)
            .map_err(|e| (Status::Error, format!("the backup arrived damaged: {e}")))?;
        out.write(&piece)?;
        progress.show(&reader.summary());
    }
    progress.done();
    reader.finish().map_err(|e| (Status::Error, e.to_string()))
}

fn refused(error: Error) -> Failed {
    match error {
        Error::Server(reason) => {
            println!("ERROR {reason}");
            (Status::Error, "the server refused the backup".into())
        }
        Error::UnexpectedReply(line) => (
            Status::Error,
            format!("the server does not take backups (it answered {line:?})"),
        ),
        other => (
            Status::Unavailable,
            format!("the backup could not start: {other}"),
        ),
    }
}

fn lost(error: &Error, reader: &Reader) -> Failed {
    (
        Status::Unavailable,
        format!(
            "the connection ended after {} bytes, before the backup was whole ({error}); no \
             backup written",
            reader.summary().file_bytes
        ),
    )
}

/// `.NAME.partial-PID` beside `file`: hidden, and never taken for a backup.
fn partial_path(file: &Path) -> PathBuf {
    let name = file.file_name().map_or_else(
        || "backup".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    let partial = format!(".{name}.partial-{}", std::process::id());
    file.with_file_name(partial)
}

/// The file a backup is written to until it is whole; removed if dropped before
/// [`Partial::keep`].
struct Partial {
    path: PathBuf,
    file: Option<File>,
}

impl Partial {
    fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            file: Some(File::create(path)?),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Failed> {
        let written = match self.file.as_mut() {
            Some(file) => file.write_all(bytes).map_err(|e| e.to_string()),
            None => Err("already kept".into()),
        };
        written.map_err(|why| self.failed(&why))
    }

    /// Syncs the whole backup and gives it the name `file` (replacing any), durably.
    fn keep(&mut self, file: &Path) -> Result<(), Failed> {
        let written = self
            .file
            .take()
            .ok_or_else(|| self.failed("already kept"))?;
        written
            .sync_all()
            .map_err(|e| self.failed(&e.to_string()))?;
        drop(written);
        std::fs::rename(&self.path, file).map_err(|e| {
            (
                Status::Error,
                format!("cannot name it {}: {e}", file.display()),
            )
        })?;
        let dir = match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        // The rename itself made durable; a directory that cannot be opened to sync is
        // rare and the backup is already in place.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        self.path = PathBuf::new();
        Ok(())
    }

    fn failed(&self, why: &str) -> Failed {
        (
            Status::Error,
            format!(
                "cannot write {}: {why}; no backup written",
                self.path.display()
            ),
        )
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The progress line on a terminal: bytes, keys and rate so far.
struct Progress {
    started: Instant,
    shown: Option<Instant>,
    on_terminal: bool,
}

impl Progress {
    fn new(started: Instant) -> Self {
        Self {
            started,
            shown: None,
            on_terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, so_far: &Summary) {
        let now = Instant::now();
        if !self.on_terminal || self.shown.is_some_and(|at| now - at < PROGRESS_EVERY) {
            return;
        }
        self.shown = Some(now);
        let secs = (now - self.started).as_secs_f64().max(1e-3);
        let mib = so_far.file_bytes as f64 / (1 << 20) as f64;
        eprint!(
            "\r\x1b[Kbackup: {mib:.1} MiB, {} key(s), {:.1} MiB/s",
            so_far.keys,
            mib / secs
        );
    }

    fn done(&self) {
        if self.on_terminal && self.shown.is_some() {
            eprintln!();
        }
    }
}
