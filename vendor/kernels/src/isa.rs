//! Which instruction set the kernels use, chosen at run time.
//!
//! Every kernel has a portable scalar version (the reference) and, on
//! x86-64, AVX2 and AVX-512 versions over the same data layout. The CPU is
//! asked once which it has; `TEKTRA_ISA=scalar|avx2|avx512` forces one
//! (refused when the CPU lacks it), so tests and benchmarks can run every
//! path on one machine. Kernels take the `Isa` as an argument: nothing is
//! global but the detected default.
//!
//! The AVX-512 path needs AVX512F, BW, VL and VNNI (int8 dot products);
//! a CPU with AVX-512 but no VNNI (Skylake-SP) gets the AVX2 path, which
//! is about as fast there. The AVX2 path needs AVX2, FMA and F16C. On
//! other architectures only the scalar path exists (aarch64 keeps candle's
//! NEON kernels through the candle path until we can test there).

use crate::KernelError;

/// An instruction-set path of the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust; the reference every other path is tested against.
    Scalar,
    /// AVX2 + FMA + F16C (x86-64-v3).
    Avx2,
    /// AVX-512 F/BW/VL + VNNI.
    Avx512,
}

/// The environment variable that forces a path.
pub const ISA_ENV: &str = "TEKTRA_ISA";

impl Isa {
    /// Every path, slowest first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// Its name as `TEKTRA_ISA` spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    #[must_use]
    pub fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                    && std::is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.supported()
                    && std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest path this CPU runs.
    #[must_use]
    pub fn detect() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|isa| isa.supported())
            .unwrap_or(Isa::Scalar)
    }

    /// The path `TEKTRA_ISA` forces, else [`Isa::detect`]. The one place
    /// this crate reads the environment.
    ///
    /// # Errors
    /// [`KernelError::BadIsa`] for an unknown name or a path the CPU lacks.
    pub fn from_env() -> Result<Isa, KernelError> {
        match std::env::var(ISA_ENV) {
            Ok(v) if !v.is_empty() => v.parse(),
            _ => Ok(Isa::detect()),
        }
    }
}

impl std::str::FromStr for Isa {
    type Err = KernelError;
    fn from_str(s: &str) -> Result<Isa, KernelError> {
        let isa = Isa::ALL
            .into_iter()
            .find(|i| i.name() == s.trim())
            .ok_or_else(|| KernelError::BadIsa {
                value: s.to_string(),
                reason: "expected scalar, avx2 or avx512".into(),
            })?;
        if !isa.supported() {
            return Err(KernelError::BadIsa {
                value: s.to_string(),
                reason: format!("this CPU cannot run the {} path", isa.name()),
            });
        }
        Ok(isa)
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
