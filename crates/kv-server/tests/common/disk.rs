//! Directories for data and logs: a temporary one, and a small disk that fills up.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A fresh directory under the system temp dir, removed when dropped; `label` is in its
/// name, to tell whose it is.
pub fn temp_dir(label: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("kv-test-{label}-"))
        .tempdir()
        .expect("create a temp dir")
}

/// `path` as a command-line argument (the harness passes arguments as `&str`).
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

/// A small tmpfs mounted at a directory (which needs root); unmounted when dropped.
pub struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts a tmpfs of `size` at `dir`. Not root: says the test is skipped, and why, and
    /// returns `None` (the caller returns), so the README's test command passes for an
    /// ordinary user; CI runs as root and runs it.
    pub fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        // SAFETY: geteuid has no preconditions and cannot fail (getuid(2)).
        if unsafe { libc::geteuid() } != 0 {
            println!(
                "skipped: this test fills a small tmpfs to simulate a full disk, and mounting \
                 one needs root"
            );
            return None;
        }
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs at {}", dir.display());
        Some(SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
