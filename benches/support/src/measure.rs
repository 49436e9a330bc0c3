//! Runs a child to the end and reads what the kernel accounted for it: wall
//! time, CPU seconds (user + system), peak RSS, and when its first stdout
//! byte came.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

/// What one child cost.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    /// Spawn to exit.
    pub secs: f64,
    /// User plus system CPU time.
    pub cpu_secs: f64,
    /// Peak resident memory, MB (10^6 bytes).
    pub peak_rss_mb: f64,
    /// Spawn to the first byte on stdout.
    pub first_stdout_secs: Option<f64>,
}

/// Runs `cmd` to the end (stdin closed); returns its cost and stdout, or an
/// error with its stderr when it fails.
///
/// # Errors
/// The child could not start, or exited non-zero.
pub fn run(cmd: &mut Command) -> Result<(Cost, String), String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
    let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut stderr = child.stderr.take().ok_or("no stderr pipe")?;
    // Pipes drained on threads; the child is reaped by wait4 below, which is
    // what gives its resource usage.
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut first = None;
        let mut buf = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            first.get_or_insert_with(|| start.elapsed().as_secs_f64());
            bytes.extend_from_slice(&buf[..n]);
        }
        (String::from_utf8_lossy(&bytes).into_owned(), first)
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (status, usage) = wait4(pid)?;
    let secs = start.elapsed().as_secs_f64();
    let (stdout, first_stdout_secs) = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if status != 0 {
        return Err(format!("{cmd:?} failed ({status}): {}", stderr.trim_end()));
    }
    #[allow(clippy::cast_precision_loss)]
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    #[allow(clippy::cast_precision_loss)]
    let cost = Cost {
        secs,
        cpu_secs: tv(usage.ru_utime) + tv(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        peak_rss_mb: usage.ru_maxrss as f64 * 1024.0 / 1e6,
        first_stdout_secs,
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
