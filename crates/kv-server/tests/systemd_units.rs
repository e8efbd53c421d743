//! The systemd units in `contrib/systemd` (docs/SYSTEMD.md): `systemd-analyze verify` finds
//! nothing to say about them, and `systemd-analyze security` rates the service's exposure
//! low. Skipped, saying why, where `systemd-analyze` is not installed (Debian package
//! `systemd`; `.ci/run` installs it).
//!
//! systemd before 253 does not know `Type=notify-reload`: there the shipped unit must draw
//! that one complaint and nothing else, and the fallback its comments give (`Type=notify`
//! with `ExecReload=`) must verify clean.

pub mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::builder::BINARY;
use common::disk::temp_dir;

/// The first systemd with `Type=notify-reload`.
const NOTIFY_RELOAD_SINCE: u32 = 253;

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/systemd")
}

/// systemd-analyze's version, or `None` if it is not installed.
fn systemd_version() -> Option<u32> {
    let out = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// The units copied into `dir`, the service's ExecStart pointing at the binary under test
/// (`verify` checks that the program exists), and `edit` applied to the service.
fn units_in(dir: &Path, edit: impl Fn(&str) -> String) -> (PathBuf, PathBuf) {
    let service = fs::read_to_string(contrib().join("kv-server.service")).expect("the service");
    let socket = fs::read_to_string(contrib().join("kv-server.socket")).expect("the socket");
    assert!(
        service.contains("ExecStart=/usr/local/bin/kv-server "),
        "{service}"
    );
    let service = edit(&service.replace("/usr/local/bin/kv-server", BINARY));
    let paths = (dir.join("kv-server.service"), dir.join("kv-server.socket"));
    fs::write(&paths.0, service).expect("write the service");
    fs::write(&paths.1, socket).expect("write the socket");
    paths
}

/// What `systemd-analyze verify` says about the units, stdout and stderr, line by line.
fn verify(units: &(PathBuf, PathBuf)) -> Vec<String> {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args([&units.0, &units.1])
        .output()
        .expect("run systemd-analyze verify");
    let said = [out.stdout, out.stderr].concat();
    let lines: Vec<String> = String::from_utf8_lossy(&said)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        out.status.success() || !lines.is_empty(),
        "verify failed silently"
    );
    lines
}

/// The comments' fallback for systemd < 253: `Type=notify` and `ExecReload=` uncommented,
/// `Type=notify-reload` gone.
fn fallback(service: &str) -> String {
    let edited = service
        .replace("Type=notify-reload\n", "")
        .replace("#Type=notify\n", "Type=notify\n")
        .replace("#ExecReload=", "ExecReload=");
    assert_ne!(edited, service, "the fallback lines are in the unit");
    edited
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    let Some(version) = systemd_version() else {
        println!("skipped: systemd-analyze is not installed (Debian package systemd)");
        return;
    };
    let dir = temp_dir("units");
    let said = verify(&units_in(dir.path(), str::to_owned));
    if version >= NOTIFY_RELOAD_SINCE {
        assert!(said.is_empty(), "systemd-analyze verify: {said:#?}");
        return;
    }
    println!("systemd {version} predates Type=notify-reload: checking the fallback too");
    assert!(
        said.iter()
            .all(|l| l.ends_with("Failed to parse service type, ignoring: notify-reload")),
        "only notify-reload may be unknown to systemd {version}: {said:#?}"
    );
    let said = verify(&units_in(dir.path(), fallback));
    assert!(said.is_empty(), "the fallback: {said:#?}");
}

/// The scheduled backup's units. `verify` checks that ExecStart's program exists: the shell
/// is real, and kv-cli's path inside its command line is not looked at.
#[test]
fn the_backup_units_pass_systemd_analyze_verify() {
    if systemd_version().is_none() {
        println!("skipped: systemd-analyze is not installed (Debian package systemd)");
        return;
    }
    let dir = temp_dir("backup-units");
    let units: Vec<PathBuf> = ["kv-backup.service", "kv-backup.timer"]
        .iter()
        .map(|name| {
            let path = dir.path().join(name);
            fs::copy(contrib().join(name), &path).expect("copy the unit");
            path
        })
        .collect();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .expect("run systemd-analyze verify");
    let said = [out.stdout, out.stderr].concat();
    let said = String::from_utf8_lossy(&said);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_service_is_rated_low_exposure_by_systemd_analyze_security() {
    let Some(version) = systemd_version() else {
        println!("skipped: systemd-analyze is not installed (Debian package systemd)");
        return;
    };
    let dir = temp_dir("units");
    let (service, _) = if version >= NOTIFY_RELOAD_SINCE {
        units_in(dir.path(), str::to_owned)
    } else {
        units_in(dir.path(), fallback)
    };
    // --offline reads the file instead of asking a running systemd (since 250);
    // --threshold fails the run above an exposure of 2.0 ("OK" is below 4.0).
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&service)
        .output()
        .expect("run systemd-analyze security");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exposure above 2.0: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("Overall exposure level"), "{report}");
}
