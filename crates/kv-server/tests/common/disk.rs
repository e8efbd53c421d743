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

/// Mounts a small tmpfs at `dir` (needs root); unmounted when dropped.
pub struct SmallDisk(PathBuf);

impl SmallDisk {
    pub fn mount(dir: &Path, size: &str) -> SmallDisk {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "this test simulates a full disk with a small tmpfs and needs root to mount it"
        );
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
