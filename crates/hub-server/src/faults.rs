//! Faults injected on request, and counters of what was served: the
//! server's test side. Faults apply to file-content answers (resolve GETs of
//! small files and CDN GETs) unless said otherwise.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Repeat a fault forever.
pub const ALWAYS: u32 = u32::MAX;

/// Faults to inject. Each one-shot fault carries how many answers it still
/// applies to; `ALWAYS` never runs out. Settable over HTTP as JSON at
/// `POST /_tektra/faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultPlan {
    /// Cut the connection after this many body bytes: `(bytes, times)`.
    pub cut_after: Option<(u64, u32)>,
    /// Answer this status instead of content: `(status, times, retry_after_secs)`.
    pub fail_status: Option<(u16, u32, Option<u64>)>,
    /// The body of those answers, instead of `injected failure` (e.g. text
    /// with terminal escapes, as a hostile server might send).
    pub fail_body: Option<String>,
    /// Flip the byte at this file offset in answers that carry it: `(offset, times)`.
    pub flip_byte_at: Option<(u64, u32)>,
    /// Cap each answer's body at this many bytes per second.
    pub rate_limit: Option<u64>,
    /// Answer 200 with the whole file to ranged requests.
    pub ignore_range: bool,
    /// Stop sending for `ms` after `bytes` body bytes: `(bytes, ms, times)`.
    pub stall: Option<(u64, u64, u32)>,
    /// Add this path to tree and revision listings (e.g. `../evil`).
    pub hostile_listing_path: Option<String>,
    /// Tree listings always carry a next-page link, and it goes back this
    /// many entries from where the page ended: 0 never ends (past the last
    /// entry, an empty page links to itself), 1 overlaps the pages (a path
    /// listed twice).
    pub listing_cursor_back: Option<usize>,
    /// Announce this size in resolve answers instead of the real one.
    pub announced_size: Option<u64>,
    /// Fail the Xet token endpoint with this status.
    pub xet_token_status: Option<u16>,
    /// Make the Xet CAS unreachable (its URL points at a closed port).
    pub xet_cas_down: bool,
    /// Delay every Xet CAS answer by this many milliseconds.
    pub xet_cas_delay_ms: Option<u64>,
    /// Give resolve answers the Xet hash of another file (a Hub whose
    /// metadata disagrees with its content): Xet delivers wrong bytes.
    pub xet_wrong_hash: bool,
    /// Issue Xet read tokens valid for this many seconds (default 3600).
    pub xet_token_ttl_secs: Option<u64>,
}

/// The faults one content answer gets, drawn from the plan.
#[derive(Debug, Clone, Default)]
pub(crate) struct Drawn {
    pub(crate) cut_after: Option<u64>,
    pub(crate) status: Option<(u16, Option<u64>)>,
    pub(crate) fail_body: Option<String>,
    pub(crate) flip_at: Option<u64>,
    pub(crate) rate_limit: Option<u64>,
    pub(crate) ignore_range: bool,
    pub(crate) stall: Option<(u64, u64)>,
}

fn take<T: Copy>(slot: &mut Option<T>, times: impl Fn(&mut T) -> &mut u32) -> Option<T> {
    let mut value = (*slot)?;
    let drawn = value;
    let n = times(&mut value);
    if *n == 0 {
        *slot = None;
        return None;
    }
    if *n != ALWAYS {
        *n -= 1;
    }
    let left = *n;
    *slot = if left == 0 { None } else { Some(value) };
    Some(drawn)
}

/// Shared fault plan and counters.
#[derive(Debug, Default)]
pub struct Faults {
    plan: Mutex<FaultPlan>,
    /// What was served.
    pub stats: Counters,
}

impl Faults {
    /// Replaces the plan.
    pub fn set(&self, plan: FaultPlan) {
        if let Ok(mut p) = self.plan.lock() {
            *p = plan;
        }
    }

    /// Changes the plan in place.
    pub fn update(&self, f: impl FnOnce(&mut FaultPlan)) {
        if let Ok(mut p) = self.plan.lock() {
            f(&mut p);
        }
    }

    /// The current plan.
    #[must_use]
    pub fn plan(&self) -> FaultPlan {
        self.plan.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Draws the faults for one content answer covering `range`.
    pub(crate) fn draw(&self, range: &std::ops::Range<u64>) -> Drawn {
        let Ok(mut plan) = self.plan.lock() else {
            return Drawn::default();
        };
        let status = take(&mut plan.fail_status, |v| &mut v.1).map(|(s, _, r)| (s, r));
        if status.is_some() {
            return Drawn {
                status,
                fail_body: plan.fail_body.clone(),
                ..Drawn::default()
            };
        }
        let flip_at = match plan.flip_byte_at {
            Some((at, _)) if range.contains(&at) => {
                take(&mut plan.flip_byte_at, |v| &mut v.1).map(|v| v.0)
            }
            _ => None,
        };
        Drawn {
            cut_after: take(&mut plan.cut_after, |v| &mut v.1).map(|v| v.0),
            status: None,
            fail_body: None,
            flip_at,
            rate_limit: plan.rate_limit,
            ignore_range: plan.ignore_range,
            stall: take(&mut plan.stall, |v| &mut v.2).map(|(b, ms, _)| (b, ms)),
        }
    }
}

/// Counters of what the server did, readable at any time.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests on the Hub origin.
    pub hub_requests: AtomicU64,
    /// Requests on the CDN origin.
    pub cdn_requests: AtomicU64,
    /// Requests on the Hub origin that carried an Authorization header.
    pub hub_auth_seen: AtomicU64,
    /// Requests on the CDN origin that carried an Authorization header (must stay 0).
    pub cdn_auth_seen: AtomicU64,
    /// File-content answers started.
    pub content_answers: AtomicU64,
    /// File-content body bytes sent.
    pub content_bytes: AtomicU64,
    /// Content answers that paused for the `stall` fault.
    pub stalls: AtomicU64,
    /// Ranged requests answered 200 with the whole file (`ignore_range`).
    pub ranges_ignored: AtomicU64,
    /// Content answers sent under the `rate_limit` cap.
    pub rate_capped: AtomicU64,
    /// Xet token requests.
    pub xet_token_requests: AtomicU64,
    /// Xet token requests that carried an Authorization header.
    pub xet_token_auth_seen: AtomicU64,
    /// Requests that reached the Xet CAS.
    pub xet_cas_requests: AtomicU64,
    /// Body bytes the Xet CAS sent.
    pub xet_cas_bytes: AtomicU64,
    /// CAS requests that carried an Authorization header (the Xet token).
    pub xet_cas_auth_seen: AtomicU64,
    /// CAS requests that carried a Hub token of any repo (must stay 0).
    pub xet_cas_hub_token_seen: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// See [`Counters`].
    pub hub_requests: u64,
    /// See [`Counters`].
    pub cdn_requests: u64,
    /// See [`Counters`].
    pub hub_auth_seen: u64,
    /// See [`Counters`].
    pub cdn_auth_seen: u64,
    /// See [`Counters`].
    pub content_answers: u64,
    /// See [`Counters`].
    pub content_bytes: u64,
    /// See [`Counters`].
    pub stalls: u64,
    /// See [`Counters`].
    pub ranges_ignored: u64,
    /// See [`Counters`].
    pub rate_capped: u64,
    /// See [`Counters`].
    pub xet_token_requests: u64,
    /// See [`Counters`].
    pub xet_token_auth_seen: u64,
    /// See [`Counters`].
    pub xet_cas_requests: u64,
    /// See [`Counters`].
    pub xet_cas_bytes: u64,
    /// See [`Counters`].
    pub xet_cas_auth_seen: u64,
    /// See [`Counters`].
    pub xet_cas_hub_token_seen: u64,
}

impl Counters {
    /// Reads every counter.
    #[must_use]
    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            hub_requests: get(&self.hub_requests),
            cdn_requests: get(&self.cdn_requests),
            hub_auth_seen: get(&self.hub_auth_seen),
            cdn_auth_seen: get(&self.cdn_auth_seen),
            content_answers: get(&self.content_answers),
            content_bytes: get(&self.content_bytes),
            stalls: get(&self.stalls),
            ranges_ignored: get(&self.ranges_ignored),
            rate_capped: get(&self.rate_capped),
            xet_token_requests: get(&self.xet_token_requests),
            xet_token_auth_seen: get(&self.xet_token_auth_seen),
            xet_cas_requests: get(&self.xet_cas_requests),
            xet_cas_bytes: get(&self.xet_cas_bytes),
            xet_cas_auth_seen: get(&self.xet_cas_auth_seen),
            xet_cas_hub_token_seen: get(&self.xet_cas_hub_token_seen),
        }
    }
}

pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_faults_run_out() {
        let faults = Faults::default();
        faults.set(FaultPlan {
            cut_after: Some((10, 2)),
            flip_byte_at: Some((500, ALWAYS)),
            ..FaultPlan::default()
        });
        assert_eq!(faults.draw(&(0..100)).cut_after, Some(10));
        assert_eq!(
            faults.draw(&(0..100)).flip_at,
            None,
            "offset 500 is not in 0..100"
        );
        assert_eq!(faults.draw(&(0..1000)).flip_at, Some(500));
        assert_eq!(
            faults.draw(&(0..100)).cut_after,
            None,
            "two cuts were asked for"
        );
        assert_eq!(faults.plan().flip_byte_at, Some((500, ALWAYS)));
    }
}
