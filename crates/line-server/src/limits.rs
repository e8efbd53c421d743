//! Process resource limits.

use tracing::{info, warn};

/// Descriptors the server needs beyond one per client: listener, logs, runtime, storage.
const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft open-file limit to the hard limit (as Redis does at start) and warns if
/// `max_connections` clients cannot fit under it. Returns the limit in force.
pub fn raise_open_file_limit(max_connections: usize) -> Option<u64> {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            warn!("cannot read or raise the open-file limit: {e}");
            return None;
        }
    };
    let needed = max_connections as u64 + RESERVED_DESCRIPTORS;
    if limit < needed {
        warn!(
            "open-file limit is {limit}, but --max-connections {max_connections} needs about \
             {needed}; clients beyond the limit will wait in the backlog (raise `ulimit -Hn`)"
        );
    } else {
        info!("open-file limit: {limit}");
    }
    Some(limit)
}
