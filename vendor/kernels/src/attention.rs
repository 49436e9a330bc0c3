//! Causal attention over an f16 KV cache, flash-attention style: scores of
//! up to 16 query rows against blocks of 16 keys, an online softmax per
//! row, values accumulated in f32. A KV head serves all its query heads
//! (grouped-query attention) from one copy of its keys and values.
//!
//! Cache layout, per layer and KV head: keys in blocks of 16 positions,
//! dimension-major inside a block (`[block][dim][16]`), so one register of
//! 16 lanes is one dimension of 16 keys and a block's scores need no
//! horizontal sums; values position-major (`[pos][dim]`). Memory is
//! reserved for the whole context and touched as positions fill.

use half::f16;

use crate::{AlignedBuf, Isa};

/// Keys per block.
pub const KEY_BLOCK: usize = 16;
/// Query rows per attention tile.
pub const ROWS: usize = 16;

/// The KV cache of a model.
#[derive(Debug)]
pub struct KvCache {
    layers: usize,
    kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    k: AlignedBuf,
    v: AlignedBuf,
}

impl KvCache {
    /// Room for `capacity` positions (rounded up to whole key blocks).
    #[must_use]
    pub fn new(layers: usize, kv_heads: usize, head_dim: usize, capacity: usize) -> Self {
        let capacity = capacity.div_ceil(KEY_BLOCK) * KEY_BLOCK;
        let n = layers * kv_heads * capacity * head_dim * 2;
        KvCache {
            layers,
            kv_heads,
            head_dim,
            capacity,
            k: AlignedBuf::zeroed(n),
            v: AlignedBuf::zeroed(n),
        }
    }

    /// Positions it holds at most.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes reserved (keys and values).
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.k.len() + self.v.len()
    }

    fn head_base(&self, layer: usize, kv: usize) -> usize {
        assert!(
            layer < self.layers && kv < self.kv_heads,
            "cache index out of range"
        );
        (layer * self.kv_heads + kv) * self.capacity * self.head_dim
    }

    /// Stores the key and value of one position of one KV head.
    ///
    /// # Safety
    /// No other thread accesses this (layer, head, position) concurrently;
    /// `k` and `v` hold `head_dim` values; indices are in range.
    pub(crate) unsafe fn put(&self, layer: usize, kv: usize, pos: usize, k: &[f32], v: &[f32]) {
        let hd = self.head_dim;
        let base = self.head_base(layer, kv);
        let kp = self.k.as_ptr().cast::<u16>().cast_mut();
        let vp = self.v.as_ptr().cast::<u16>().cast_mut();
        let blk = pos / KEY_BLOCK * KEY_BLOCK * hd;
        for d in 0..hd {
            // SAFETY: per the contract; offsets stay inside this head's area.
            unsafe {
                *kp.add(base + blk + d * KEY_BLOCK + pos % KEY_BLOCK) =
                    f16::from_f32(k[d]).to_bits();
                *vp.add(base + pos * hd + d) = f16::from_f32(v[d]).to_bits();
            }
        }
    }

    fn keys(&self, layer: usize, kv: usize) -> *const u16 {
        self.k
            .as_ptr()
            .cast::<u16>()
            .wrapping_add(self.head_base(layer, kv))
    }

    fn values(&self, layer: usize, kv: usize) -> *const u16 {
        self.v
            .as_ptr()
            .cast::<u16>()
            .wrapping_add(self.head_base(layer, kv))
    }
}

/// Which keys a query row sees: positions `lo..=hi`.
#[derive(Debug, Clone, Copy)]
pub struct Visible {
    /// First visible position.
    pub lo: usize,
    /// Last visible position (the query's own).
    pub hi: usize,
}

/// Running softmax state of up to 16 rows: max, sum, unnormalised output.
pub struct Partial {
    /// Row maxima of the scores so far.
    pub m: [f32; ROWS],
    /// Row sums of `exp(score - m)`.
    pub l: [f32; ROWS],
    /// `rows x head_dim` sums of `exp(score - m) * value`.
    pub o: Vec<f32>,
}

impl Partial {
    /// An empty state for `head_dim`.
    #[must_use]
    pub fn new(head_dim: usize) -> Self {
        Partial {
            m: [f32::NEG_INFINITY; ROWS],
            l: [0.0; ROWS],
            o: vec![0.0; ROWS * head_dim],
        }
    }

    /// Back to empty.
    pub fn reset(&mut self) {
        self.m = [f32::NEG_INFINITY; ROWS];
        self.l = [0.0; ROWS];
        self.o.iter_mut().for_each(|v| *v = 0.0);
    }
}

/// Scratch of one thread: scores and one block of values in f32.
pub struct Scratch {
    s: [[f32; KEY_BLOCK]; ROWS],
    vf: Vec<f32>,
}

impl Scratch {
    /// Scratch for `head_dim`.
    #[must_use]
    pub fn new(head_dim: usize) -> Self {
        Scratch {
            s: [[0.0; KEY_BLOCK]; ROWS],
            vf: vec![0.0; KEY_BLOCK * head_dim],
        }
    }
}

/// Attends `q` (`rows` rows of `head_dim`, pre-scaled) over keys
/// `keys.0..keys.1` of one KV head, folding into `part`. Row `r` sees
/// `vis[r]`; keys outside it are skipped.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    isa: Isa,
    cache: &KvCache,
    layer: usize,
    kv: usize,
    q: &[f32],
    vis: &[Visible],
    keys: (usize, usize),
    part: &mut Partial,
    scratch: &mut Scratch,
) {
    let hd = cache.head_dim;
    let rows = vis.len().min(ROWS);
    let kbase = cache.keys(layer, kv);
    let vbase = cache.values(layer, kv);
    let (k0, k1) = (keys.0, keys.1.min(cache.capacity));
    let mut blk = k0 / KEY_BLOCK;
    while blk * KEY_BLOCK < k1 {
        let first = blk * KEY_BLOCK;
        // SAFETY: the block lies inside this head's key area.
        let kb = unsafe { kbase.add(first * hd) };
        scores(isa, kb, q, hd, rows, &mut scratch.s);
        // Values of the block in f32, once for all rows.
        let n = (k1 - first).min(KEY_BLOCK);
        // SAFETY: n positions of this head's value area.
        let vb = unsafe { std::slice::from_raw_parts(vbase.add(first * hd), n * hd) };
        let vb: &[f16] = bytemuck_u16_to_f16(vb);
        half::slice::HalfFloatSliceExt::convert_to_f32_slice(vb, &mut scratch.vf[..n * hd]);
        let mut correction = [1.0f32; ROWS];
        for r in 0..rows {
            let s = &mut scratch.s[r];
            for (j, v) in s.iter_mut().enumerate() {
                let pos = first + j;
                if pos < k0.max(vis[r].lo) || pos > vis[r].hi || j >= n {
                    *v = f32::NEG_INFINITY;
                }
            }
            let bmax = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if bmax == f32::NEG_INFINITY {
                *s = [0.0; KEY_BLOCK];
                continue;
            }
            let m_new = part.m[r].max(bmax);
            correction[r] = (part.m[r] - m_new).exp();
            for v in s.iter_mut() {
                *v -= m_new;
            }
            crate::math::exp_inplace(isa, s);
            part.l[r] = part.l[r] * correction[r] + s.iter().sum::<f32>();
            part.m[r] = m_new;
        }
        // Every row's weighted values in one call: the rows' outputs stay
        // in registers across the block's keys.
        weigh_values(
            isa,
            &scratch.s,
            &correction,
            rows,
            n,
            &scratch.vf,
            hd,
            &mut part.o,
        );
        blk += 1;
    }
}

fn bytemuck_u16_to_f16(v: &[u16]) -> &[f16] {
    // SAFETY: f16 is a transparent u16.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f16>(), v.len()) }
}

/// `o[r] = o[r] * correction[r] + sum over j < n of p[r][j] * v[j]` for
/// the first `rows` rows (`o` and `v` rows of `hd` floats).
#[allow(clippy::too_many_arguments)]
fn weigh_values(
    isa: Isa,
    p: &[[f32; KEY_BLOCK]; ROWS],
    correction: &[f32; ROWS],
    rows: usize,
    n: usize,
    v: &[f32],
    hd: usize,
    o: &mut [f32],
) {
    let (rows, n) = (rows.min(ROWS), n.min(KEY_BLOCK));
    assert!(v.len() >= n * hd && o.len() >= rows * hd);
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: the Isa value exists only when the CPU has the features;
        // the lengths were checked above.
        Isa::Avx512 if hd.is_multiple_of(16) => {
            return unsafe { x86::weigh_avx512(p, correction, rows, n, v, hd, o) };
        }
        // SAFETY: as above.
        Isa::Avx2 if hd.is_multiple_of(8) => {
            return unsafe { x86::weigh_avx2(p, correction, rows, n, v, hd, o) };
        }
        _ => {}
    }
    let _ = isa;
    for r in 0..rows {
        let out = &mut o[r * hd..(r + 1) * hd];
        for (d, y) in out.iter_mut().enumerate() {
            let mut acc = *y * correction[r];
            for j in 0..n {
                acc += p[r][j] * v[j * hd + d];
            }
            *y = acc;
        }
    }
}

/// Scores of `rows` query rows against the 16 keys of block `kb`.
fn scores(
    isa: Isa,
    kb: *const u16,
    q: &[f32],
    hd: usize,
    rows: usize,
    s: &mut [[f32; KEY_BLOCK]; ROWS],
) {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: as above; kb points at hd x 16 keys, q at rows x hd.
        Isa::Avx512 => return unsafe { x86::scores_avx512(kb, q, hd, rows, s) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { x86::scores_avx2(kb, q, hd, rows, s) },
        Isa::Scalar => {}
    }
    let _ = isa;
    for (r, row) in s.iter_mut().enumerate().take(rows) {
        *row = [0.0; KEY_BLOCK];
        for d in 0..hd {
            let qd = q[r * hd + d];
            for (j, v) in row.iter_mut().enumerate() {
                // SAFETY: kb holds hd x 16 values.
                let k = f16::from_bits(unsafe { *kb.add(d * KEY_BLOCK + j) }).to_f32();
                *v += qd * k;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{KEY_BLOCK, ROWS};

    /// `R` rows of `weigh_values` from row pointer `o`/`p`: for each
    /// 16-wide slice of the head, the R outputs stay in registers while
    /// each value row is loaded once.
    #[inline(always)]
    unsafe fn weigh_n512<const R: usize>(
        p: *const [f32; KEY_BLOCK],
        correction: *const f32,
        n: usize,
        v: *const f32,
        hd: usize,
        o: *mut f32,
    ) {
        // SAFETY: the caller's bounds: R rows of p, correction and o exist,
        // n rows of v, hd a multiple of 16.
        unsafe {
            let mut d = 0;
            while d < hd {
                let mut acc = [_mm512_setzero_ps(); R];
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_mul_ps(
                        _mm512_loadu_ps(o.add(r * hd + d)),
                        _mm512_set1_ps(*correction.add(r)),
                    );
                }
                for j in 0..n {
                    let vj = _mm512_loadu_ps(v.add(j * hd + d));
                    for (r, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(_mm512_set1_ps((*p.add(r))[j]), vj, *a);
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    _mm512_storeu_ps(o.add(r * hd + d), *a);
                }
                d += 16;
            }
        }
    }

    /// See `weigh_values`; `hd` is a multiple of 16 and the slices long enough.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub(super) unsafe fn weigh_avx512(
        p: &[[f32; KEY_BLOCK]; ROWS],
        correction: &[f32; ROWS],
        rows: usize,
        n: usize,
        v: &[f32],
        hd: usize,
        o: &mut [f32],
    ) {
        let (v, o, p, c) = (v.as_ptr(), o.as_mut_ptr(), p.as_ptr(), correction.as_ptr());
        let mut r = 0;
        // SAFETY: tiles of 8, 4, 2 and 1 rows cover rows <= 16 exactly;
        // the caller checked the slices' lengths.
        unsafe {
            while r < rows {
                let left = rows - r;
                let (pr, cr, or) = (p.add(r), c.add(r), o.add(r * hd));
                r += if left >= 8 {
                    weigh_n512::<8>(pr, cr, n, v, hd, or);
                    8
                } else if left >= 4 {
                    weigh_n512::<4>(pr, cr, n, v, hd, or);
                    4
                } else if left >= 2 {
                    weigh_n512::<2>(pr, cr, n, v, hd, or);
                    2
                } else {
                    weigh_n512::<1>(pr, cr, n, v, hd, or);
                    1
                };
            }
        }
    }

    /// See `weigh_values`; `hd` is a multiple of 8 and the slices long enough.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn weigh_avx2(
        p: &[[f32; KEY_BLOCK]; ROWS],
        correction: &[f32; ROWS],
        rows: usize,
        n: usize,
        v: &[f32],
        hd: usize,
        o: &mut [f32],
    ) {
        let (v, o) = (v.as_ptr(), o.as_mut_ptr());
        // SAFETY: as in weigh_avx512, with steps of 8.
        unsafe {
            for r in 0..rows {
                let mut d = 0;
                while d < hd {
                    let out = o.add(r * hd + d);
                    let mut acc =
                        _mm256_mul_ps(_mm256_loadu_ps(out), _mm256_set1_ps(correction[r]));
                    for (j, &pj) in p[r].iter().enumerate().take(n) {
                        let vj = _mm256_loadu_ps(v.add(j * hd + d));
                        acc = _mm256_fmadd_ps(_mm256_set1_ps(pj), vj, acc);
                    }
                    _mm256_storeu_ps(out, acc);
                    d += 8;
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn scores_n512<const R: usize>(
        kb: *const u16,
        q: *const f32,
        hd: usize,
        out: *mut [f32; KEY_BLOCK],
    ) {
        // SAFETY: kb holds hd x 16 f16, q holds R x hd floats, out R rows.
        unsafe {
            let mut acc = [_mm512_setzero_ps(); R];
            for d in 0..hd {
                let k = _mm512_cvtph_ps(_mm256_loadu_si256(kb.add(d * KEY_BLOCK).cast()));
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_set1_ps(*q.add(r * hd + d)), k, *a);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.add(r).cast::<f32>(), *a);
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub(super) unsafe fn scores_avx512(
        kb: *const u16,
        q: &[f32],
        hd: usize,
        rows: usize,
        s: &mut [[f32; KEY_BLOCK]; ROWS],
    ) {
        let q = q.as_ptr();
        let out = s.as_mut_ptr();
        let mut r = 0;
        // SAFETY: tiles of 8, 4, 2 and 1 rows cover rows <= 16 exactly, so
        // every row read from q and written to s exists.
        unsafe {
            while r < rows {
                let left = rows - r;
                let (qr, or) = (q.add(r * hd), out.add(r));
                r += if left >= 8 {
                    scores_n512::<8>(kb, qr, hd, or);
                    8
                } else if left >= 4 {
                    scores_n512::<4>(kb, qr, hd, or);
                    4
                } else if left >= 2 {
                    scores_n512::<2>(kb, qr, hd, or);
                    2
                } else {
                    scores_n512::<1>(kb, qr, hd, or);
                    1
                };
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn scores_avx2(
        kb: *const u16,
        q: &[f32],
        hd: usize,
        rows: usize,
        s: &mut [[f32; KEY_BLOCK]; ROWS],
    ) {
        let q = q.as_ptr();
        for (r, row) in s.iter_mut().enumerate().take(rows) {
            // SAFETY: kb holds hd x 16 f16; row r of q exists.
            unsafe {
                let (mut a, mut b) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                for d in 0..hd {
                    let qd = _mm256_set1_ps(*q.add(r * hd + d));
                    let k0 = _mm256_cvtph_ps(_mm_loadu_si128(kb.add(d * KEY_BLOCK).cast()));
                    let k1 = _mm256_cvtph_ps(_mm_loadu_si128(kb.add(d * KEY_BLOCK + 8).cast()));
                    a = _mm256_fmadd_ps(qd, k0, a);
                    b = _mm256_fmadd_ps(qd, k1, b);
                }
                _mm256_storeu_ps(row.as_mut_ptr(), a);
                _mm256_storeu_ps(row.as_mut_ptr().add(8), b);
            }
        }
    }
}
