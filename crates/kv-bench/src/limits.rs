//! The generator's own open-file limit: 10,000 idle connections need 10,000 descriptors,
//! and the usual soft limit is 1,024.

use rlimit::Resource;

/// Raises the soft open-file limit to at least `needed` (up to the hard limit, and the
/// hard limit too when allowed — as root it is). Fails only if `needed` cannot be had.
pub fn raise_open_files(needed: u64) -> Result<u64, String> {
    let (soft, hard) = Resource::NOFILE
        .get()
        .map_err(|e| format!("cannot read the open-file limit: {e}"))?;
    if soft >= needed {
        return Ok(soft);
    }
    let target_hard = hard.max(needed);
    if rlimit::setrlimit(Resource::NOFILE, needed.max(soft), target_hard).is_ok() {
        return Ok(needed);
    }
    // Not privileged: the hard limit is the ceiling.
    rlimit::setrlimit(Resource::NOFILE, hard, hard)
        .map_err(|e| format!("cannot raise the open-file limit: {e}"))?;
    if hard >= needed {
        Ok(hard)
    } else {
        Err(format!(
            "need {needed} open files but the hard limit is {hard} (raise `ulimit -Hn`)"
        ))
    }
}
