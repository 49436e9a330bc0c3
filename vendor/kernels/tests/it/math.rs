//! The element-wise kernels on every instruction set against f64: exp over
//! the range a softmax feeds it (down to underflow), the two gated
//! activations, RMS norm and dot products, on lengths that are not
//! multiples of the SIMD widths.

use tektra_kernels::math::{self, Gate};

use crate::common::{Rng, isas};

fn rel(got: f32, want: f64) -> f64 {
    (f64::from(got) - want).abs() / want.abs().max(1e-30)
}

#[test]
fn exp_matches_f64_down_to_underflow() {
    let xs: Vec<f32> = (0..1037).map(|i| -100.0 + i as f32 * 0.1).collect();
    for isa in isas() {
        let mut y = xs.clone();
        math::exp_inplace(isa, &mut y);
        let mut worst = 0.0f64;
        for (x, y) in xs.iter().zip(&y) {
            let want = f64::from(*x).exp();
            assert!(y.is_finite() && *y >= 0.0, "{isa}: exp({x}) = {y}");
            // Below f32's normal range only the absolute error matters.
            if want > 1e-37 {
                worst = worst.max(rel(*y, want));
            } else {
                assert!(f64::from(*y) < 1e-36, "{isa}: exp({x}) = {y}");
            }
        }
        println!("{isa}: exp worst relative error {worst:.2e}");
        assert!(worst < 1e-5, "{isa}: {worst}");
    }
}

#[test]
fn gated_activations_match_f64() {
    let mut rng = Rng(77);
    let n = 203;
    let g: Vec<f32> = (0..n)
        .map(|i| {
            if i == 0 {
                -30.0
            } else if i == 1 {
                30.0
            } else {
                rng.normal() * 4.0
            }
        })
        .collect();
    let u: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    for isa in isas() {
        for gate in [Gate::Silu, Gate::GeluTanh] {
            let mut out = vec![0.0; n];
            math::gated(isa, gate, &g, &u, &mut out);
            let mut worst = 0.0f64;
            for i in 0..n {
                let (x, v) = (f64::from(g[i]), f64::from(u[i]));
                let act = match gate {
                    Gate::Silu => x / (1.0 + (-x).exp()),
                    Gate::GeluTanh => {
                        0.5 * x
                            * (1.0
                                + ((2.0 / std::f64::consts::PI).sqrt()
                                    * (x + 0.044715 * x * x * x))
                                    .tanh())
                    }
                };
                worst = worst.max((f64::from(out[i]) - act * v).abs() / (1.0 + (act * v).abs()));
            }
            println!("{isa} {gate:?}: worst error {worst:.2e}");
            assert!(worst < 1e-5, "{isa} {gate:?}: {worst}");
        }
    }
}

#[test]
fn rms_norm_and_dot_match_f64() {
    let mut rng = Rng(5);
    for n in [1usize, 7, 64, 576, 1000] {
        let x: Vec<f32> = (0..n).map(|_| rng.normal() * 3.0).collect();
        let w: Vec<f32> = (0..n).map(|_| rng.range(0.5, 1.5)).collect();
        let ss: f64 = x.iter().map(|v| f64::from(*v).powi(2)).sum();
        let scale = 1.0 / (ss / n as f64 + 1e-6).sqrt();
        for isa in isas() {
            let d = math::dot(isa, &x, &x);
            assert!(rel(d, ss) < 1e-5, "{isa} dot n={n}: {d} vs {ss}");
            let mut out = vec![0.0; n];
            math::rms_norm(isa, &x, &w, 1e-6, &mut out);
            for i in 0..n {
                let want = f64::from(x[i]) * scale * f64::from(w[i]);
                assert!(
                    (f64::from(out[i]) - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "{isa} n={n} [{i}]"
                );
            }
        }
    }
}
