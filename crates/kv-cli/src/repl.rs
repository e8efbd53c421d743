//! The interactive session, on a terminal: a prompt showing where kv-cli is connected
//! (`127.0.0.1:4040> `, `not connected> `), line editing and a history kept across
//! sessions (rustyline), replies printed as the server sent them, `help`.
//!
//! Follows redis-cli: `quit`/`exit` (any case) leave without sending anything; `AUTH`
//! lines are never written to the history; after a connection error kv-cli reconnects and
//! sends the line once more (every request here can be repeated without harm: PUT sets,
//! DELETE and CREATE succeed twice); when that fails too the prompt says `not connected`
//! and the next line tries again, so a restarted server is picked up on demand.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use kv_client::{Client, ConnectOptions, Outgoing, Reply, Secret};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Config, Editor};
use tokio::runtime::Runtime;

use crate::connect;
use crate::line::{self, Typed};
use crate::output::{self, Status};

/// Overrides where the history is kept; empty: keep none (redis-cli's is
/// `REDISCLI_HISTFILE`).
pub const HISTFILE_ENV: &str = "KV_CLI_HISTFILE";

/// Lines kept in the history.
const HISTORY_SIZE: usize = 1000;

const HELP: &str = "\
Requests (docs/PROTOCOL.md):
  CREATE bucket              OK (also if it exists)
  PUT bucket key value       OK
  GET bucket key             the value, then OK (an empty line for a missing key)
  DELETE bucket key          OK (also if the key was missing)
  PING                       PONG
  INFO [section]             report lines (# Section, name:value), then OK
  AUTH password              OK: a server started with --requirepass serves you
  SUBSCRIBE bucket           not supported by this kv-cli yet
Any reply may also be NOT FOUND (no such bucket), UNKNOWN COMMAND or ERROR <reason>.
kv-cli's own:
  help                       this list
  quit, exit                 leave (also Ctrl-D or Ctrl-C)
Up and Down recall earlier lines, Ctrl-R searches them.";

/// The connection, opened and re-opened on demand.
struct Session {
    options: ConnectOptions,
    client: Option<Client>,
}

/// Runs the session on this thread (rustyline reads the terminal), requests on `runtime`.
pub fn run(runtime: &Runtime, options: ConnectOptions) -> Status {
    let mut editor = match editor() {
        Ok(editor) => editor,
        Err(e) => {
            output::complain(&format!("cannot use the terminal: {e}"));
            return Status::Error;
        }
    };
    let history = history_path();
    if let Some(path) = &history {
        open_history(&mut editor, path);
    }
    let mut session = Session {
        options,
        client: None,
    };
    runtime.block_on(session.ensure_connected());
    loop {
        let line = match editor.readline(&session.prompt()) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => return Status::Ok,
            Err(e) => {
                output::complain(&format!("reading the terminal failed: {e}"));
                return Status::Error;
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.to_ascii_lowercase().as_str() {
            // Not kept: Up in the next session should give the last request.
            "quit" | "exit" => return Status::Ok,
            "help" => println!("{HELP}"),
            _ => {
                remember(&mut editor, history.as_deref(), line);
                runtime.block_on(session.send(line));
            }
        }
    }
}

fn editor() -> rustyline::Result<Editor<(), FileHistory>> {
    let config = Config::builder()
        .max_history_size(HISTORY_SIZE)?
        .history_ignore_dups(true)?
        .auto_add_history(false)
        .build();
    Editor::with_config(config)
}

/// Where the history is kept: `KV_CLI_HISTFILE`, else `$XDG_STATE_HOME/kv-cli/history`
/// (XDG's place for history), else `~/.kv_cli_history` (as redis-cli's
/// `~/.rediscli_history`). `None`: nowhere.
pub fn history_path() -> Option<PathBuf> {
    let set = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(path) = std::env::var_os(HISTFILE_ENV) {
        return (!path.is_empty()).then(|| PathBuf::from(path));
    }
    if let Some(state) = set("XDG_STATE_HOME") {
        return Some(PathBuf::from(state).join("kv-cli").join("history"));
    }
    set("HOME").map(|home| PathBuf::from(home).join(".kv_cli_history"))
}

/// Loads the history at `path`, creating it readable by its owner only (it holds keys and
/// values). Problems are told once and the session goes on without the old lines.
fn open_history(editor: &mut Editor<(), FileHistory>, path: &Path) {
    let created = path
        .parent()
        .map_or(Ok(()), fs::create_dir_all)
        .and_then(|()| {
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)
        });
    let loaded = created
        .map_err(|e| e.to_string())
        .and_then(|_| editor.load_history(path).map_err(|e| e.to_string()));
    if let Err(e) = loaded {
        output::complain(&format!("history {}: {e}", path.display()));
    }
}

/// Adds `line` to the history and appends it to the file at once, so a killed session
/// loses nothing; `AUTH` lines are kept out of both.
fn remember(editor: &mut Editor<(), FileHistory>, path: Option<&Path>, line: &str) {
    if kv_client::Auth::is_auth_line(line.as_bytes()) {
        return;
    }
    if !matches!(editor.add_history_entry(line), Ok(true)) {
        return;
    }
    if let Some(path) = path {
        if let Err(e) = editor.append_history(path) {
            output::complain(&format!("history {}: {e}", path.display()));
        }
    }
}

impl Session {
    fn prompt(&self) -> String {
        match &self.client {
            Some(_) => format!("{}> ", self.options.address()),
            None => "not connected> ".into(),
        }
    }

    /// Connects if not connected; a failure is printed and leaves it not connected.
    async fn ensure_connected(&mut self) -> bool {
        if self.client.is_none() {
            match connect::connect(&self.options).await {
                Ok(client) => self.client = Some(client),
                Err(message) => output::complain(&message),
            }
        }
        self.client.is_some()
    }

    /// Sends `line` and prints its reply; on a connection error, reconnects and sends it
    /// once more.
    async fn send(&mut self, line: &str) {
        let outgoing = match line::classify(line.as_bytes()) {
            Typed::Send(outgoing) => outgoing,
            Typed::Blank => return,
            Typed::Subscribe(_) => return output::complain(line::SUBSCRIBE_NOT_YET),
            Typed::Refused(why) => return output::complain(&format!("not sent: {why}")),
        };
        for attempt in 0..2 {
            if !self.ensure_connected().await {
                return;
            }
            match self.exchange(&outgoing).await {
                Ok(()) => return,
                Err(e) if e.is_connection_error() && attempt == 0 => self.client = None,
                Err(e) if e.is_connection_error() => {
                    self.client = None;
                    return output::complain(&connect::explain_lost(&e, &self.options));
                }
                Err(e) => return output::complain(&e.to_string()),
            }
        }
    }

    /// One round trip on the open connection; the reply is printed. A successful `AUTH`
    /// is remembered for reconnecting (redis-cli does the same).
    async fn exchange(&mut self, outgoing: &Outgoing<'_>) -> Result<(), kv_client::Error> {
        let Some(client) = self.client.as_mut() else {
            return Err(kv_client::Error::Closed);
        };
        let reply = client.exchange(outgoing).await?;
        if let Err(e) = output::print_reply(reply.wire) {
            output::complain(&format!("cannot write to stdout: {e}"));
        }
        if let Some(hint) = connect::noauth_hint(reply.reply) {
            output::complain(&format!("{hint}, or type AUTH password"));
        }
        if let (Outgoing::Auth(auth), Some(Reply::Ok)) = (outgoing, reply.reply) {
            self.options.password = Some(Secret::new(auth.password));
        }
        Ok(())
    }
}
