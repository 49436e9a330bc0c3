//! Before loading: how much memory the model will take, from its files,
//! against what the machine has free. Refusing early beats swapping or an
//! OOM kill half way through a load.

use serde::Serialize;

use crate::error::{Error, Result};

/// Headroom for activations, the tokenizer, logits and the allocator.
const OVERHEAD: u64 = 256 << 20;

/// What a model needs in memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    /// The weights as they will sit in memory.
    pub weights: u64,
    /// The KV cache at the context length used.
    pub kv_cache: u64,
    /// Headroom.
    pub overhead: u64,
}

impl MemoryEstimate {
    /// Weights plus a KV cache of `layers * 2 * context * kv_heads * head_dim`
    /// f32 values plus headroom.
    #[must_use]
    pub fn new(weights: u64, layers: u64, kv_heads: u64, head_dim: u64, context: u64) -> Self {
        let kv_cache = layers
            .saturating_mul(2)
            .saturating_mul(context)
            .saturating_mul(kv_heads)
            .saturating_mul(head_dim)
            .saturating_mul(4);
        MemoryEstimate {
            weights,
            kv_cache,
            overhead: OVERHEAD,
        }
    }

    /// The sum.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.weights
            .saturating_add(self.kv_cache)
            .saturating_add(self.overhead)
    }

    /// Fails when `available` bytes are less than the total.
    pub fn check(&self, model: &str, available: Option<u64>) -> Result<()> {
        let Some(available) = available else {
            return Ok(());
        };
        if self.total() <= available {
            return Ok(());
        }
        Err(Error::NotEnoughMemory {
            model: model.to_string(),
            needed_mb: self.total() >> 20,
            detail: format!(
                "weights {} MB, KV cache {} MB, headroom {} MB",
                self.weights >> 20,
                self.kv_cache >> 20,
                self.overhead >> 20
            ),
            available_mb: available >> 20,
        })
    }
}

/// Memory the OS says is available for a new process to use
/// (`MemAvailable`); `None` where that cannot be read.
#[must_use]
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

/// What a model may use: the OS's available memory, capped by `limit`.
#[must_use]
pub fn available_within(limit: Option<u64>) -> Option<u64> {
    match (available_memory(), limit) {
        (Some(a), Some(l)) => Some(a.min(l)),
        (a, l) => a.or(l),
    }
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_and_refusal() {
        // 30 layers, 3 KV heads of 64, 4096 tokens: 180 MiB of f32 KV cache.
        let e = MemoryEstimate::new(100 << 20, 30, 3, 64, 4096);
        assert_eq!(e.kv_cache, 180 << 20);
        assert!(e.check("m", Some(1 << 30)).is_ok());
        let err = e.check("m", Some(200 << 20)).unwrap_err().to_string();
        assert!(
            err.contains("536 MB needed") && err.contains("200 MB available"),
            "{err}"
        );
        assert!(e.check("m", None).is_ok());
    }

    #[test]
    fn meminfo() {
        let text = "MemTotal: 100 kB\nMemFree: 10 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_meminfo(text), Some(2 << 20));
        assert_eq!(parse_meminfo("MemTotal: 1 kB"), None);
    }
}
