//! A `tektra serve` child for the length of a benchmark.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `tektra serve` on a free loopback port; killed when dropped.
pub struct Served {
    child: Child,
    /// What to set HF_ENDPOINT to.
    pub endpoint: String,
}

impl Served {
    /// Starts `tektra serve [extra...] --test-controls --follow-links --addr
    /// 127.0.0.1:0 repos` (the control routes [`Served::control`] uses are
    /// closed without the first flag; benchmark mirrors link to files
    /// elsewhere) and reads the endpoint from the first line it prints
    /// (`HF_ENDPOINT=...`).
    ///
    /// # Errors
    /// The server could not start, or did not say where it listens.
    pub fn start(tektra: &Path, extra: &[&str], repos: &Path) -> Result<Served, String> {
        let child = Command::new(tektra)
            .arg("serve")
            .args(extra)
            .args(["--test-controls", "--follow-links", "--addr", "127.0.0.1:0"])
            .arg(repos)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", tektra.display()))?;
        let mut served = Served {
            endpoint: String::new(),
            child,
        };
        let mut out = served.child.stdout.take().ok_or("no server stdout")?;
        // Byte by byte: the server keeps the pipe, and this must not read
        // past its first line.
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while out.read(&mut byte).map_err(|e| e.to_string())? == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&line);
        let Some(endpoint) = line.trim().strip_prefix("HF_ENDPOINT=") else {
            return Err(format!("tektra serve did not start: it said {line:?}"));
        };
        served.endpoint = endpoint.to_string();
        Ok(served)
    }
}

impl Served {
    /// One request to the server's control routes (`/_tektra/stats`,
    /// `/_tektra/faults`); returns the body of a 200 answer.
    ///
    /// # Errors
    /// The request failed, or the answer was not a 200.
    pub fn control(&self, method: &str, path: &str, body: &str) -> Result<String, String> {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| e.to_string())?;
        match answer.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
            _ => Err(format!("{method} {path}: {answer}")),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
