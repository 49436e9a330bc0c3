//! Running programs with their output kept in a step's log file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use crate::error::{Result, SyncError, io};

/// The command line as a person would type it, for logs and errors.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd`, appending the command line, its output and its status to
/// `log`. Returns the output whatever the status.
pub(crate) fn run(cmd: &mut Command, log: &Path) -> Result<Output> {
    let line = describe(cmd);
    let dir = cmd
        .get_current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io(log))?;
    writeln!(file, "$ (cd {dir}) {line}").map_err(io(log))?;
    let out = cmd.output().map_err(|source| SyncError::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    file.write_all(&out.stdout).map_err(io(log))?;
    file.write_all(&out.stderr).map_err(io(log))?;
    writeln!(file, "[{}]\n", out.status).map_err(io(log))?;
    Ok(out)
}

/// Runs `cmd` like [`run`] and fails unless it succeeds; returns stdout.
pub(crate) fn run_ok(cmd: &mut Command, log: &Path) -> Result<String> {
    let out = run(cmd, log)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(SyncError::Command {
            command: describe(cmd),
            status: out.status.to_string(),
            log: log.to_owned(),
        })
    }
}

/// Runs `cmd` with its output going straight to `log` (long builds whose
/// output need not be held in memory); true when it succeeded.
pub(crate) fn run_to_log(cmd: &mut Command, log: &Path) -> Result<bool> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io(log))?;
    writeln!(file, "$ {}", describe(cmd)).map_err(io(log))?;
    let err = file.try_clone().map_err(io(log))?;
    let out = file.try_clone().map_err(io(log))?;
    let status = cmd
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|source| SyncError::Spawn {
            program: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
    writeln!(file, "[{status}]\n").map_err(io(log))?;
    Ok(status.success())
}

/// A `cargo` command for the workspace at `dir`.
pub(crate) fn cargo(dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(dir);
    // A caller's cargo (cargo run, nextest) leaves variables that would
    // point child builds at the caller's package.
    for var in [
        "CARGO_MANIFEST_DIR",
        "CARGO_PKG_NAME",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}
