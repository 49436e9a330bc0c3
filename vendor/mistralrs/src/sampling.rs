//! Choosing the next token from logits: repeat penalty, temperature,
//! top-k, top-p and min-p, with a seedable random source.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Sampling settings for one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sampling {
    /// 0 picks the most likely token every time (greedy).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0: no limit).
    pub top_k: usize,
    /// Keep the most likely tokens whose probabilities add up to `p` (1: no limit).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (0: off).
    pub min_p: f32,
    /// Divide positive logits (multiply negative ones) of recent tokens by this (1: off).
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at.
    pub repeat_last_n: usize,
    /// Seed of the random source; the same seed gives the same text.
    pub seed: u64,
    /// Most new tokens to generate.
    pub max_tokens: usize,
    /// Stop as soon as the text contains one of these (not included in the output).
    pub stop: Vec<String>,
    /// Most tokens to draft by prompt lookup and check in one batched step
    /// (0: off). Exact for greedy decoding and distribution-preserving for
    /// sampling; only the native backend drafts.
    pub prompt_lookup: usize,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.05,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed: 42,
            max_tokens: 256,
            stop: Vec::new(),
            prompt_lookup: 8,
        }
    }
}

impl Sampling {
    /// Greedy decoding with no penalty: what correctness tests use.
    #[must_use]
    pub fn greedy(max_tokens: usize) -> Self {
        Sampling {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            max_tokens,
            ..Sampling::default()
        }
    }

    /// Checks that every setting is in range.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Sampling(what));
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..1.0).contains(&self.min_p) {
            return bad(format!("min_p must be in [0, 1), got {}", self.min_p));
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad(format!(
                "repeat_penalty must be > 0, got {}",
                self.repeat_penalty
            ));
        }
        if self.max_tokens == 0 {
            return bad("max_tokens must be at least 1".into());
        }
        Ok(())
    }
}

/// Picks tokens; holds the random state across a generation.
pub struct Sampler {
    settings: Sampling,
    rng: StdRng,
    // Reused between tokens so sampling allocates nothing per token.
    candidates: Vec<(u32, f32)>,
    seen: Vec<u32>,
}

impl Sampler {
    /// A sampler for `settings` (call [`Sampling::validate`] first).
    #[must_use]
    pub fn new(settings: &Sampling) -> Self {
        Sampler {
            settings: settings.clone(),
            rng: StdRng::seed_from_u64(settings.seed),
            candidates: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// The next token, given the logits for it and the tokens so far.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        self.penalize(logits, history);
        if self.settings.temperature == 0.0 {
            return argmax(logits);
        }
        self.distribution(logits);
        self.draw()
    }

    /// Checks a drafted token against the model's logits at its position
    /// (speculative decoding). Greedy: accepted when it is the argmax,
    /// else the argmax is returned. Sampling: accepted with the
    /// probability the sampler's distribution gives it, else a token is
    /// drawn from that distribution without it, which keeps the output
    /// distributed exactly as plain sampling would (a draft that proposes
    /// one token with certainty, accepted with probability `min(1, p/1)`,
    /// with the residual `max(0, p - q)` renormalised on rejection).
    pub fn verify(&mut self, logits: &mut [f32], history: &[u32], draft: u32) -> Verdict {
        self.penalize(logits, history);
        if self.settings.temperature == 0.0 {
            let best = argmax(logits);
            return if best == draft {
                Verdict::Accept
            } else {
                Verdict::Replace(best)
            };
        }
        self.distribution(logits);
        let p = self
            .candidates
            .iter()
            .find(|c| c.0 == draft)
            .map_or(0.0, |c| c.1);
        let total: f32 = self.candidates.iter().map(|c| c.1).sum();
        if total > 0.0 && self.rng.random::<f32>() * total < p {
            return Verdict::Accept;
        }
        self.candidates.retain(|c| c.0 != draft);
        if self.candidates.is_empty() {
            // Only the draft was possible; numerically a certain accept.
            return Verdict::Accept;
        }
        Verdict::Replace(self.draw())
    }

    fn penalize(&mut self, logits: &mut [f32], history: &[u32]) {
        let s = &self.settings;
        if s.repeat_penalty == 1.0 {
            return;
        }
        let start = history.len().saturating_sub(s.repeat_last_n);
        // Each recent token once: sort the window and skip repeats.
        self.seen.clear();
        self.seen.extend_from_slice(&history[start..]);
        self.seen.sort_unstable();
        self.seen.dedup();
        for &t in &self.seen {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = if *l > 0.0 {
                    *l / s.repeat_penalty
                } else {
                    *l * s.repeat_penalty
                };
            }
        }
    }

    /// Fills `candidates` with the tokens the filters keep and their
    /// probabilities (summing to 1 before min-p and top-p cut the tail).
    fn distribution(&mut self, logits: &[f32]) {
        let s = &self.settings;
        self.candidates.clear();
        self.candidates.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (u32::try_from(i).unwrap_or(u32::MAX), l)),
        );
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1);
        if s.top_k > 0 && s.top_k < self.candidates.len() {
            self.candidates
                .select_nth_unstable_by(s.top_k - 1, by_logit);
            self.candidates.truncate(s.top_k);
        }
        self.candidates.sort_unstable_by(by_logit);
        // Softmax at the temperature, over what is left.
        let max = self.candidates.first().map_or(0.0, |c| c.1);
        let mut sum = 0.0f32;
        for c in &mut self.candidates {
            c.1 = ((c.1 - max) / s.temperature).exp();
            sum += c.1;
        }
        if sum <= 0.0 || !sum.is_finite() {
            self.candidates.truncate(1);
            if let Some(c) = self.candidates.first_mut() {
                c.1 = 1.0;
            }
            return;
        }
        for c in &mut self.candidates {
            c.1 /= sum;
        }
        if s.min_p > 0.0 {
            let floor = self.candidates.first().map_or(0.0, |c| c.1) * s.min_p;
            self.candidates.retain(|c| c.1 >= floor);
        }
        if s.top_p < 1.0 {
            let mut cumulative = 0.0;
            let mut keep = self.candidates.len();
            for (i, c) in self.candidates.iter().enumerate() {
                cumulative += c.1;
                if cumulative >= s.top_p {
                    keep = i + 1;
                    break;
                }
            }
            self.candidates.truncate(keep.max(1));
        }
    }

    /// Draws from `candidates` in proportion to their weights.
    fn draw(&mut self) -> u32 {
        let total: f32 = self.candidates.iter().map(|c| c.1).sum();
        let mut pick = self.rng.random::<f32>() * total;
        for c in &self.candidates {
            pick -= c.1;
            if pick <= 0.0 {
                return c.0;
            }
        }
        self.candidates.last().map_or(0, |c| c.0)
    }
}

/// What [`Sampler::verify`] decided about a drafted token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The draft stands.
    Accept,
    /// The draft is rejected; this token comes instead.
    Replace(u32),
}

/// Index of the largest logit (the first one on ties).
#[must_use]
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &l) in logits.iter().enumerate() {
        if l > best_value {
            best_value = l;
            best = i;
        }
    }
    u32::try_from(best).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_the_largest_and_penalty_can_change_it() {
        let mut s = Sampler::new(&Sampling::greedy(1));
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.9], &[]), 1);
        let mut penalised = Sampler::new(&Sampling {
            repeat_penalty: 1.5,
            ..Sampling::greedy(1)
        });
        assert_eq!(penalised.sample(&mut [0.1, 3.0, 2.9], &[1]), 2);
    }

    #[test]
    fn top_k_one_is_greedy_and_seeds_repeat() {
        let cfg = Sampling {
            temperature: 1.0,
            top_k: 1,
            ..Sampling::default()
        };
        let mut s = Sampler::new(&cfg);
        for _ in 0..20 {
            assert_eq!(s.sample(&mut [1.0, 5.0, 4.0, 0.0], &[]), 1);
        }
        let cfg = Sampling {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            ..Sampling::default()
        };
        let draw = |seed| {
            let mut s = Sampler::new(&Sampling {
                seed,
                ..cfg.clone()
            });
            (0..50)
                .map(|_| s.sample(&mut [1.0, 1.1, 0.9, 1.05], &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        // Every token can come out when nothing filters.
        let seen: std::collections::BTreeSet<u32> = draw(7).into_iter().collect();
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn min_p_and_top_p_cut_unlikely_tokens() {
        let cfg = Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.5,
            repeat_penalty: 1.0,
            ..Sampling::default()
        };
        let mut s = Sampler::new(&cfg);
        for _ in 0..100 {
            // exp(0)=1 vs exp(-3)=0.05: token 1 is below half the best.
            assert_eq!(s.sample(&mut [0.0, -3.0], &[]), 0);
        }
        let mut s = Sampler::new(&Sampling {
            min_p: 0.0,
            top_p: 0.5,
            ..cfg
        });
        for _ in 0..100 {
            assert_eq!(s.sample(&mut [2.0, 0.0, 0.0], &[]), 0);
        }
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        assert!(
            Sampling {
                top_p: 0.0,
                ..Sampling::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Sampling {
                temperature: -1.0,
                ..Sampling::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Sampling {
                max_tokens: 0,
                ..Sampling::default()
            }
            .validate()
            .is_err()
        );
        assert!(Sampling::default().validate().is_ok());
    }
}
