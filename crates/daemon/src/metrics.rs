//! Counters behind `GET /metrics`, in Prometheus' text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::jobs::JobState;

/// Upper bounds (seconds) of the time-to-first-token histogram's buckets.
const TTFT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Everything the daemon counts. Lock-free: bumped from request handlers,
/// job reporters and model threads.
#[derive(Default)]
pub(crate) struct Metrics {
    bytes_downloaded: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    jobs: [AtomicU64; 5],
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    requests: AtomicU64,
    rejected: AtomicU64,
    cancelled: AtomicU64,
    /// f64 bits of the last generation's figures.
    prompt_tps: AtomicU64,
    generation_tps: AtomicU64,
    ttft_buckets: [AtomicU64; TTFT_BUCKETS.len()],
    ttft_count: AtomicU64,
    /// Microseconds, summed.
    ttft_sum_us: AtomicU64,
}

fn index(state: JobState) -> usize {
    JobState::ALL
        .iter()
        .position(|s| *s == state)
        .unwrap_or_default()
}

impl Metrics {
    pub(crate) fn downloaded(&self, bytes: u64) {
        self.bytes_downloaded.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn job_created(&self) {
        self.jobs[index(JobState::Queued)].fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn job_moved(&self, from: JobState, to: JobState) {
        if from != to {
            self.jobs[index(from)].fetch_sub(1, Ordering::Relaxed);
            self.jobs[index(to)].fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// One generation's figures.
    pub(crate) fn generation(&self, stats: &tektra_inference::GenerationStats) {
        self.prompt_tokens
            .fetch_add(stats.prompt_tokens as u64, Ordering::Relaxed);
        self.generated_tokens
            .fetch_add(stats.generated_tokens as u64, Ordering::Relaxed);
        if stats.stop_reason == tektra_inference::StopReason::Cancelled {
            self.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        if stats.prompt_tokens_per_sec.is_finite() && stats.prompt_tokens_per_sec > 0.0 {
            self.prompt_tps
                .store(stats.prompt_tokens_per_sec.to_bits(), Ordering::Relaxed);
        }
        if stats.tokens_per_sec.is_finite() && stats.tokens_per_sec > 0.0 {
            self.generation_tps
                .store(stats.tokens_per_sec.to_bits(), Ordering::Relaxed);
        }
    }

    /// Time from a request's arrival to its first token.
    pub(crate) fn first_token(&self, after: Duration) {
        let secs = after.as_secs_f64();
        for (bound, bucket) in TTFT_BUCKETS.iter().zip(&self.ttft_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.ttft_count.fetch_add(1, Ordering::Relaxed);
        self.ttft_sum_us.fetch_add(
            u64::try_from(after.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The text `/metrics` answers; `rate` and `queued` and `loaded` are
    /// read at the time of the request.
    pub(crate) fn render(&self, rate: f64, queued: usize, loaded: usize) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let float = |a: &AtomicU64| f64::from_bits(a.load(Ordering::Relaxed));
        let mut out = String::new();
        let mut one = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        one(
            "tektra_download_bytes_total",
            "counter",
            "Bytes downloaded into the cache by jobs.",
            get(&self.bytes_downloaded).to_string(),
        );
        one(
            "tektra_download_rate_bytes_per_second",
            "gauge",
            "Download rate of the running jobs now.",
            format!("{rate:.0}"),
        );
        one(
            "tektra_cache_hits_total",
            "counter",
            "Files a job found verified in the cache.",
            get(&self.cache_hits).to_string(),
        );
        one(
            "tektra_cache_misses_total",
            "counter",
            "Files a job had to download.",
            get(&self.cache_misses).to_string(),
        );
        one(
            "tektra_prompt_tokens_total",
            "counter",
            "Prompt tokens processed.",
            get(&self.prompt_tokens).to_string(),
        );
        one(
            "tektra_generated_tokens_total",
            "counter",
            "Tokens generated.",
            get(&self.generated_tokens).to_string(),
        );
        one(
            "tektra_requests_total",
            "counter",
            "Completion requests received.",
            get(&self.requests).to_string(),
        );
        one(
            "tektra_requests_rejected_total",
            "counter",
            "Completion requests refused because the queue was full.",
            get(&self.rejected).to_string(),
        );
        one(
            "tektra_generations_cancelled_total",
            "counter",
            "Generations stopped early (a client went away).",
            get(&self.cancelled).to_string(),
        );
        one(
            "tektra_prompt_tokens_per_second",
            "gauge",
            "Prompt processing speed of the last generation.",
            format!("{:.2}", float(&self.prompt_tps)),
        );
        one(
            "tektra_generation_tokens_per_second",
            "gauge",
            "Generation speed of the last generation.",
            format!("{:.2}", float(&self.generation_tps)),
        );
        one(
            "tektra_queue_length",
            "gauge",
            "Completion requests waiting or running.",
            queued.to_string(),
        );
        one(
            "tektra_models_loaded",
            "gauge",
            "Models in memory.",
            loaded.to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP tektra_jobs Jobs by state.\n# TYPE tektra_jobs gauge"
        );
        for state in JobState::ALL {
            let _ = writeln!(
                out,
                "tektra_jobs{{state=\"{}\"}} {}",
                state.name(),
                get(&self.jobs[index(state)])
            );
        }
        let _ = writeln!(
            out,
            "# HELP tektra_time_to_first_token_seconds From a request's arrival to its first token.\n# TYPE tektra_time_to_first_token_seconds histogram"
        );
        for (bound, bucket) in TTFT_BUCKETS.iter().zip(&self.ttft_buckets) {
            let _ = writeln!(
                out,
                "tektra_time_to_first_token_seconds_bucket{{le=\"{bound}\"}} {}",
                get(bucket)
            );
        }
        let count = get(&self.ttft_count);
        #[allow(clippy::cast_precision_loss)]
        let sum = get(&self.ttft_sum_us) as f64 / 1e6;
        let _ = writeln!(
            out,
            "tektra_time_to_first_token_seconds_bucket{{le=\"+Inf\"}} {count}\ntektra_time_to_first_token_seconds_sum {sum:.6}\ntektra_time_to_first_token_seconds_count {count}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_jobs_move_between_states() {
        let m = Metrics::default();
        m.first_token(Duration::from_millis(3));
        m.first_token(Duration::from_millis(300));
        m.job_created();
        m.job_moved(JobState::Queued, JobState::Running);
        let text = m.render(0.0, 0, 0);
        assert!(text.contains("tektra_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("tektra_time_to_first_token_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("tektra_time_to_first_token_seconds_count 2\n"));
        assert!(text.contains("tektra_jobs{state=\"running\"} 1\n"));
        assert!(text.contains("tektra_jobs{state=\"queued\"} 0\n"));
    }
}
