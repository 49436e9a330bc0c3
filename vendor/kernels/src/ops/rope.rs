//! Rotary position embeddings: tables made once, applied in place.

/// How rotary position embeddings pair dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs `(2i, 2i + 1)` (llama GGUFs, whose Q and K rows are permuted for it).
    Interleaved,
    /// Pairs `(i, i + d/2)` (qwen, gemma, phi3).
    Neox,
}

/// Rotary embedding tables: cos and sin of every position and pair.
#[derive(Debug)]
pub struct Rope {
    /// Rotated dimensions (the first `dims` of a head).
    pub dims: usize,
    /// Pairing.
    pub style: RopeStyle,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    /// Tables for `positions` positions: pair `i` turns by
    /// `pos * base^(-2i/dims) / factor[i]` (`factors` from a model's
    /// `rope_freqs`, else 1).
    #[must_use]
    pub fn new(
        dims: usize,
        style: RopeStyle,
        base: f32,
        positions: usize,
        factors: Option<&[f32]>,
    ) -> Rope {
        let half = dims / 2;
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        let freq: Vec<f64> = (0..half)
            .map(|i| {
                let f = f64::from(base).powf(-2.0 * i as f64 / dims as f64);
                f / f64::from(factors.and_then(|f| f.get(i).copied()).unwrap_or(1.0))
            })
            .collect();
        for p in 0..positions {
            for f in &freq {
                let a = p as f64 * f;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Rope {
            dims,
            style,
            cos,
            sin,
        }
    }

    /// Positions the tables cover.
    #[must_use]
    pub fn positions(&self) -> usize {
        self.cos.len() / (self.dims / 2).max(1)
    }

    /// Rotates one head's vector in place for position `pos`.
    pub fn apply(&self, v: &mut [f32], pos: usize) {
        let half = self.dims / 2;
        let (c, s) = (
            &self.cos[pos * half..(pos + 1) * half],
            &self.sin[pos * half..(pos + 1) * half],
        );
        for i in 0..half {
            let (a, b) = match self.style {
                RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                RopeStyle::Neox => (i, i + half),
            };
            let (x, y) = (v[a], v[b]);
            v[a] = x * c[i] - y * s[i];
            v[b] = x * s[i] + y * c[i];
        }
    }
}
