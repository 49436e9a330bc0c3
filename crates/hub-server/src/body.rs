//! File content answers: Range handling and the body stream, with the
//! drawn faults applied (cut, flipped byte, rate cap, stall).

use std::fs::File;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use bytes::Bytes;

use crate::faults::{Drawn, Faults, bump};
use crate::store::FileEntry;

/// Parses `Range: bytes=a-b` / `bytes=a-` / `bytes=-n` against `size`.
/// `Ok(None)`: no Range header. `Err(())`: unsatisfiable or malformed.
#[allow(clippy::result_unit_err)]
pub fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<Range<u64>>, ()> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ())?.trim();
    let spec = text.strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(());
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let range = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            size.saturating_sub(n)..size
        }
        (a, "") => a.parse::<u64>().map_err(|_| ())?..size,
        (a, b) => {
            let a: u64 = a.parse().map_err(|_| ())?;
            let b: u64 = b.parse().map_err(|_| ())?;
            a..b.saturating_add(1).min(size)
        }
    };
    if range.start >= range.end || range.start >= size {
        return Err(());
    }
    Ok(Some(range))
}

/// The answer for the content of `entry`: 200, 206, 416 or an injected
/// failure; no body for HEAD.
pub(crate) fn content_response(
    entry: &FileEntry,
    request_headers: &HeaderMap,
    head: bool,
    faults: &Arc<Faults>,
    mut extra: HeaderMap,
    pace: Vec<Arc<tektra_rate::RateLimiter>>,
) -> Response<Body> {
    let size = entry.size;
    let requested = match parse_range(request_headers, size) {
        Ok(r) => r,
        Err(()) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            insert(
                response.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            return response;
        }
    };
    let whole = 0..size;
    let drawn = if head {
        Drawn::default()
    } else {
        faults.draw(requested.as_ref().unwrap_or(&whole))
    };
    if let Some((status, retry_after)) = drawn.status {
        let body = drawn
            .fail_body
            .unwrap_or_else(|| "injected failure".to_string());
        let mut response = Response::new(Body::from(body));
        *response.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Some(secs) = retry_after {
            insert(
                response.headers_mut(),
                header::RETRY_AFTER,
                &secs.to_string(),
            );
        }
        return response;
    }
    if drawn.ignore_range && requested.is_some() {
        bump(&faults.stats.ranges_ignored, 1);
    }
    if drawn.rate_limit.is_some() {
        bump(&faults.stats.rate_capped, 1);
    }
    let range = if drawn.ignore_range { None } else { requested };
    let (status, span) = match range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r),
        None => (StatusCode::OK, whole),
    };
    extra.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    insert(
        &mut extra,
        header::CONTENT_LENGTH,
        &(span.end - span.start).to_string(),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        insert(
            &mut extra,
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{size}", span.start, span.end - 1),
        );
    }
    let body = if head {
        Body::empty()
    } else {
        bump(&faults.stats.content_answers, 1);
        match File::open(&entry.disk) {
            Ok(file) => stream(Arc::new(file), span, drawn, faults.clone(), pace),
            Err(_) => {
                let mut response = Response::new(Body::from("file vanished"));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return response;
            }
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().extend(extra);
    response
}

fn insert(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

struct Cursor {
    file: Arc<File>,
    pos: u64,
    end: u64,
    sent: u64,
    started: Instant,
    drawn: Drawn,
    faults: Arc<Faults>,
    /// Bandwidth limits this answer shares with others.
    pace: Vec<Arc<tektra_rate::RateLimiter>>,
}

fn stream(
    file: Arc<File>,
    span: Range<u64>,
    drawn: Drawn,
    faults: Arc<Faults>,
    pace: Vec<Arc<tektra_rate::RateLimiter>>,
) -> Body {
    let cursor = Cursor {
        file,
        pos: span.start,
        end: span.end,
        sent: 0,
        started: Instant::now(),
        drawn,
        faults,
        pace,
    };
    let stream = futures::stream::unfold(cursor, |mut c| async move {
        if c.pos >= c.end {
            return None;
        }
        let block: u64 = if c.drawn.rate_limit.is_some() || !c.pace.is_empty() {
            64 << 10
        } else {
            256 << 10
        };
        let mut n = block.min(c.end - c.pos);
        if let Some(cut) = c.drawn.cut_after {
            if c.sent >= cut {
                let err = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected cut");
                return Some((Err(err), Cursor { pos: c.end, ..c }));
            }
            n = n.min(cut - c.sent);
        }
        if let Some((after, ms)) = c.drawn.stall
            && c.sent >= after
        {
            bump(&c.faults.stats.stalls, 1);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            c.drawn.stall = None;
        }
        if let Some(rate) = c.drawn.rate_limit.filter(|r| *r > 0) {
            #[allow(clippy::cast_precision_loss)]
            let due = Duration::from_secs_f64(c.sent as f64 / rate as f64);
            let elapsed = c.started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
        for limit in &c.pace {
            limit.take(n).await;
        }
        let (file, pos, len) = (
            c.file.clone(),
            c.pos,
            usize::try_from(n).unwrap_or(usize::MAX),
        );
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            read_exact_at(&file, &mut buf, pos).map(|()| buf)
        })
        .await;
        let mut buf = match read {
            Ok(Ok(buf)) => buf,
            Ok(Err(e)) => return Some((Err(e), Cursor { pos: c.end, ..c })),
            Err(e) => {
                return Some((
                    Err(std::io::Error::other(e.to_string())),
                    Cursor { pos: c.end, ..c },
                ));
            }
        };
        if let Some(at) = c.drawn.flip_at
            && (c.pos..c.pos + n).contains(&at)
        {
            let i = usize::try_from(at - c.pos).unwrap_or(0);
            if let Some(byte) = buf.get_mut(i) {
                *byte ^= 0xff;
            }
        }
        c.pos += n;
        c.sent += n;
        bump(&c.faults.stats.content_bytes, n);
        Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), c))
    });
    Body::from_stream(stream)
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Result<Option<Range<u64>>, ()> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, value.parse().unwrap());
        parse_range(&h, size)
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Ok(Some(0..10)));
        assert_eq!(range("bytes=90-", 100), Ok(Some(90..100)));
        assert_eq!(range("bytes=-10", 100), Ok(Some(90..100)));
        assert_eq!(range("bytes=95-200", 100), Ok(Some(95..100)));
        assert_eq!(range("bytes=100-", 100), Err(()));
        assert_eq!(range("bytes=0-1,5-6", 100), Err(()));
        assert_eq!(range("items=0-1", 100), Err(()));
    }
}
