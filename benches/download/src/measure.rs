//! Runs a program and reads what the kernel accounted for it: wall time,
//! CPU seconds (user + system) and peak RSS.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

/// What one run cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cost {
    pub(crate) secs: f64,
    pub(crate) cpu_secs: f64,
    pub(crate) peak_rss_mb: f64,
}

/// Runs `cmd` to the end; fails with its stderr when it does not succeed.
pub(crate) fn run(cmd: &mut Command) -> Result<(Cost, String), String> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
    // Drain the pipes on threads; the child is reaped by wait4 below, which
    // is what gives its resource usage.
    let read_all = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = read_all(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = read_all(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let (status, usage) = wait4(pid)?;
    let secs = start.elapsed().as_secs_f64();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if status != 0 {
        return Err(format!("{cmd:?} failed ({status}): {stderr}"));
    }
    #[allow(clippy::cast_precision_loss)]
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    #[allow(clippy::cast_precision_loss)]
    let cost = Cost {
        secs,
        cpu_secs: tv(usage.ru_utime) + tv(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        peak_rss_mb: usage.ru_maxrss as f64 * 1024.0 / 1e6,
    };
    Ok((cost, stdout))
}

#[allow(unsafe_code)]
fn wait4(pid: libc::pid_t) -> Result<(i32, libc::rusage), String> {
    let mut status = 0;
    // SAFETY: rusage is plain old data; zero is a valid value, and wait4
    // fills it for the child we started and have not reaped.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to our locals; `pid` is our own child.
    let rc = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    if rc != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok((code, usage))
}
