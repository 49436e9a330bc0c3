use tektra_kernels::matmul::matmul_serial;
use tektra_kernels::{Isa, PackedMatrix, QuantActs, WeightType, reference};

use crate::common::{Rng, activations, gguf_tensor, isas};

/// Shapes that are not multiples of the panel (16 rows) or the token tile
/// (8 tokens), and a column count of several blocks.
fn shapes(w: WeightType) -> Vec<(usize, usize, usize)> {
    let k = if w.block_len() == 256 { 512 } else { 96 };
    vec![
        (1, k, 1),
        (17, k, 3),
        (40, k, 9),
        (33, 2 * k, 13),
        (16, k, 8),
    ]
}

fn run(isa: Isa, w: &PackedMatrix, x: &[f32], tokens: usize) -> (Vec<f32>, QuantActs) {
    let mut acts = QuantActs::new(w.cols(), tokens);
    if w.wtype().is_quantized() {
        acts.quantize_all(x, isa);
    }
    let mut out = vec![f32::NAN; tokens * w.rows()];
    matmul_serial(isa, w, &acts, x, &mut out);
    (out, acts)
}

#[test]
fn every_kernel_equals_the_integer_reference() {
    let mut rng = Rng(3);
    for isa in isas() {
        for w in WeightType::ALL {
            for (rows, cols, tokens) in shapes(w) {
                let bytes = gguf_tensor(w, rows, cols, &mut rng);
                let m = PackedMatrix::pack(w, rows, cols, &bytes).unwrap();
                let x = activations(tokens, cols, &mut rng);
                let (out, acts) = run(isa, &m, &x, tokens);
                let rb = w.row_bytes(cols).unwrap();
                for t in 0..tokens {
                    let xt = &x[t * cols..(t + 1) * cols];
                    // Summation order differs: bound by the sum of magnitudes.
                    let mag: f32 = xt.iter().map(|v| v.abs()).sum::<f32>() * 0.5;
                    for r in 0..rows {
                        let want = reference::dot(w, &bytes[r * rb..(r + 1) * rb], &acts, t, xt);
                        let got = out[t * rows + r];
                        assert!(
                            (got - want).abs() <= 2e-5 * mag.max(1.0),
                            "{isa} {w} {rows}x{cols} x{tokens}: token {t} row {r}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

/// Normalised MSE against dequantized weights times float activations,
/// over all shapes of a type (one output alone is too noisy a statistic):
/// the error of quantizing the activations to int8 plus the kernel's.
#[test]
fn every_kernel_is_close_to_the_dequantized_f32_product() {
    let mut rng = Rng(5);
    for isa in isas() {
        for w in WeightType::ALL {
            let (mut err, mut norm) = (0.0f64, 0.0f64);
            for (rows, cols, tokens) in shapes(w) {
                let bytes = gguf_tensor(w, rows, cols, &mut rng);
                let m = PackedMatrix::pack(w, rows, cols, &bytes).unwrap();
                let x = activations(tokens, cols, &mut rng);
                let (out, _) = run(isa, &m, &x, tokens);
                let mut wf = vec![0.0f32; cols];
                for r in 0..rows {
                    m.dequantize_row(r, &mut wf);
                    for t in 0..tokens {
                        let want: f64 = wf
                            .iter()
                            .zip(&x[t * cols..(t + 1) * cols])
                            .map(|(a, b)| f64::from(*a) * f64::from(*b))
                            .sum();
                        err += (f64::from(out[t * rows + r]) - want).powi(2);
                        norm += want * want;
                    }
                }
            }
            let nmse = err / norm.max(1e-30);
            println!("{isa} {w}: nmse {nmse:.2e}");
            assert!(nmse <= 5e-4, "{isa} {w}: nmse {nmse:.2e}");
        }
    }
}

#[test]
fn all_isa_paths_quantize_activations_to_the_same_bytes() {
    let mut rng = Rng(9);
    let x = activations(5, 256, &mut rng);
    let mut want = QuantActs::new(256, 5);
    want.quantize_all(&x, Isa::Scalar);
    for isa in isas() {
        let mut got = QuantActs::new(256, 5);
        got.quantize_all(&x, isa);
        for t in 0..5 {
            assert_eq!(got.quants(t), want.quants(t), "{isa} token {t}");
            for b in 0..8 {
                assert_eq!(got.scale(t, b).to_bits(), want.scale(t, b).to_bits());
            }
            for h in 0..16 {
                assert_eq!(got.sum16(t, h), want.sum16(t, h));
            }
        }
    }
}
