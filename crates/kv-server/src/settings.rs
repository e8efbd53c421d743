//! The binary's settings: what `kv-server` is told by its flags and environment. The
//! machinery's own part is a [`ServerConfig`]; the defaults live in the libraries
//! (`ServerConfig::default()`, `DurableOptions::default()`) and nowhere else.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use kv_store::DurableOptions;
use line_server::ServerConfig;

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
    /// Where durable mode keeps its data; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// How durable mode syncs and compacts.
    pub durable: DurableOptions,
}

/// The port the seed's server listens on.
pub const DEFAULT_PORT: u16 = 4040;
/// Loopback: see [`Settings::bind`].
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
