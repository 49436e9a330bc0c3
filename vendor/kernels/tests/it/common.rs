use half::f16;
use tektra_kernels::{Isa, WeightType};

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
    /// Roughly normal (sum of uniforms).
    pub fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.range(-1.0, 1.0)).sum::<f32>() * 0.87
    }
}

fn put_f16(b: &mut [u8], at: usize, v: f32) {
    b[at..at + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
}

/// GGUF bytes of a `rows x cols` tensor of `wtype`: random values, scales
/// finite and of realistic size.
pub fn gguf_tensor(wtype: WeightType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let row_bytes = wtype.row_bytes(cols).unwrap();
    let mut out = vec![0u8; rows * row_bytes];
    match wtype {
        WeightType::F32 => {
            for c in out.chunks_exact_mut(4) {
                c.copy_from_slice(&(rng.normal() * 0.05).to_le_bytes());
            }
        }
        WeightType::F16 => {
            for c in out.chunks_exact_mut(2) {
                put_f16(c, 0, rng.normal() * 0.05);
            }
        }
        WeightType::BF16 => {
            for c in out.chunks_exact_mut(2) {
                let v = half::bf16::from_f32(rng.normal() * 0.05);
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        _ => {
            let bb = wtype.block_bytes();
            for blk in out.chunks_exact_mut(bb) {
                for b in blk.iter_mut() {
                    *b = rng.byte();
                }
                match wtype {
                    WeightType::Q4_0 | WeightType::Q5_0 | WeightType::Q8_0 => {
                        put_f16(blk, 0, rng.range(0.001, 0.02))
                    }
                    WeightType::Q4_1 | WeightType::Q5_1 => {
                        put_f16(blk, 0, rng.range(0.001, 0.02));
                        put_f16(blk, 2, -rng.range(0.0, 0.2));
                    }
                    WeightType::Q4_K | WeightType::Q5_K => {
                        put_f16(blk, 0, rng.range(0.0001, 0.002));
                        put_f16(blk, 2, rng.range(0.0001, 0.004));
                    }
                    WeightType::Q6_K => put_f16(blk, 208, rng.range(0.0001, 0.002)),
                    _ => {}
                }
            }
        }
    }
    out
}

/// Activations: normal values with a few outliers and some exact zeros.
pub fn activations(tokens: usize, cols: usize, rng: &mut Rng) -> Vec<f32> {
    (0..tokens * cols)
        .map(|i| match rng.byte() {
            0..=3 => rng.normal() * 40.0,
            4..=12 => 0.0,
            _ if i % 97 == 5 => 0.0,
            _ => rng.normal(),
        })
        .collect()
}

/// The paths to test: every one this CPU runs; the others are named as
/// not run, so a run on a smaller CPU says what it did not cover.
pub fn isas() -> Vec<Isa> {
    Isa::ALL
        .into_iter()
        .filter(|isa| {
            let ok = isa.supported();
            if !ok {
                println!("NOT RUN: the {isa} path (this CPU lacks it)");
            }
            ok
        })
        .collect()
}
