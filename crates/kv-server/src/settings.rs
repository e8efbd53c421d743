//! The binary's settings: what `kv-server` is told by its flags and environment. The
//! machinery's own part is a [`ServerConfig`]; the defaults live in the libraries
//! (`ServerConfig::default()`, `DurableOptions::default()`) and nowhere else.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use kv_store::DurableOptions;
use line_server::{Password, ServerConfig, Tls};

/// Which protocol the server speaks on every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every line comes back unchanged: the seed's server.
    Echo,
    /// Buckets of keys and values driven by `CREATE`/`PUT`/`GET`/`DELETE`.
    #[default]
    Kv,
}

/// Everything the binary runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on. Loopback by default: without authentication the server should
    /// not be exposed unless asked to.
    pub bind: IpAddr,
    /// TCP port; 0 asks the OS for a free one.
    pub port: u16,
    /// Protocol served.
    pub mode: Mode,
    /// Limits, timeouts and restart intensity of the machinery.
    pub server: ServerConfig,
    /// Wrap the protocol with the `DEBUG` fault-injection commands.
    pub debug_commands: bool,
    /// Where the password clients must `AUTH` with comes from, if any.
    pub password: PasswordSource,
    /// Without a password, serve loopback clients only.
    pub protected_mode: bool,
    /// Speak TLS with these files; `None`: plain TCP.
    pub tls: Option<TlsFiles>,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Where durable mode keeps its data; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// How durable mode syncs and compacts (and its memory limit).
    pub durable: DurableOptions,
    /// Limit on what the data holds, in bytes; 0: none.
    pub max_memory: u64,
    /// Most bytes of events a subscriber may have unsent before it is disconnected.
    pub subscriber_buffer_bytes: usize,
    /// Where to serve `/metrics`, `/livez` and `/readyz`; `None`: nowhere.
    pub metrics: Option<SocketAddr>,
    /// Where the cluster engine keeps the data (`--redis-cluster`); `None`: this process.
    pub cluster: Option<ClusterSettings>,
}

/// The PEM files of `--tls-cert-file`, `--tls-key-file` and `--tls-ca-cert-file`; read
/// at start and again on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// CA certificates a client's certificate must chain to; `None`: no client certificate
    /// asked for.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The machinery's TLS settings from these files. Errors name the file and what is
    /// wrong with it.
    pub fn load(&self) -> Result<Tls, String> {
        Tls::from_pem_files(&self.cert, &self.key, self.client_ca.as_deref())
            .map_err(|e| format!("cannot use the TLS files: {e}"))
    }

    /// The files, for a log line: `CERT and KEY`, or `CERT, KEY and CA CA`.
    pub fn names(&self) -> String {
        let (cert, key) = (self.cert.display(), self.key.display());
        match &self.client_ca {
            None => format!("{cert} and {key}"),
            Some(ca) => format!("{cert}, {key} and CA {}", ca.display()),
        }
    }
}

/// `--redis-cluster` and the flags that go with it (SPEC §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Some of the cluster's nodes, `HOST:PORT`.
    pub nodes: Vec<String>,
    /// The longest wait for the cluster per request.
    pub timeout: std::time::Duration,
    /// Replicas that must have a write before its `OK`.
    pub wait_replicas: u32,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `timestamp LEVEL target: message fields`, for people.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `message`, `target`, and the
    /// event's other fields beside them), for log
    /// shippers.
    Json,
}

/// Where the password comes from; read at start, and a file again on SIGHUP.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// No password: clients need not `AUTH`.
    None,
    /// Given on the command line or in the environment.
    Given(String),
    /// The first line of this file.
    File(PathBuf),
}

impl std::fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordSource::None => f.write_str("None"),
            PasswordSource::Given(_) => f.write_str("Given(<redacted>)"),
            PasswordSource::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

impl PasswordSource {
    /// The password, read from its file if it has one (its first line, without a UTF-8
    /// byte-order mark). Errors say which file and why; an empty password, or one with
    /// whitespace, is refused: no client could send it.
    pub fn read(&self) -> Result<Option<Password>, String> {
        let password = match self {
            PasswordSource::None => return Ok(None),
            PasswordSource::Given(password) => password.clone(),
            PasswordSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read the password file {}: {e}", path.display())
                })?;
                // Editors that save "UTF-8 with BOM" (Windows Notepad until 2019) start the
                // file with U+FEFF, which no one means as part of a password.
                let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
                text.lines().next().unwrap_or_default().to_string()
            }
        };
        let from = match self {
            PasswordSource::File(path) => format!(" (password file {})", path.display()),
            _ => String::new(),
        };
        if password.is_empty() {
            return Err(format!("the password is empty{from}"));
        }
        // `AUTH password` is one line of words: a space, tab or line end could never be sent.
        if password.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(format!(
                "the password contains whitespace, which AUTH cannot carry{from}"
            ));
        }
        Ok(Some(Password::new(password.as_bytes())))
    }
}

/// The port the seed's server listens on.
pub const DEFAULT_PORT: u16 = 4040;
/// Loopback: see [`Settings::bind`].
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
