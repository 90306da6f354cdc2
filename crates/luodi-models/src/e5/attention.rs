//! Scaled dot-product attention of one head over one segment.
//!
//! The plain loop ([`plain`]) keeps one running value per output element: every key's score
//! waits for the previous key's add, and the compiler, which may not reorder float additions,
//! cannot split the chains itself. Where the CPU has AVX2 and FMA and heads are 32 wide
//! (multilingual-e5-small), [`avx2::head32`] keeps eight independent accumulators in
//! registers for the scores and for the weighted sum of values, and fuses each multiply-add.
// The SIMD kernel uses `std::arch` intrinsics (as `kernels` does).
#![allow(unsafe_code)]

use super::fast_exp;

/// The key dimension of the transposed keys is padded to a multiple of this (one AVX2
/// register of scores); the padding is zero and never enters the result.
pub(super) const STRIDE_MULTIPLE: usize = 8;

/// `out[t][e] = Σ_s softmax_s(scale · q_t·k_s) · v[s][e]` over the `l` tokens of a segment.
/// `q` and `v` are `[l][hd]`; `kt` holds the keys transposed, `[hd][stride]`, where
/// `stride ≥ l` is a multiple of [`STRIDE_MULTIPLE`]. Returns `[l][hd]`.
pub(super) fn head(
    q: &[f32],
    kt: &[f32],
    stride: usize,
    v: &[f32],
    l: usize,
    hd: usize,
    scale: f32,
) -> Vec<f32> {
    debug_assert!(stride >= l && stride.is_multiple_of(STRIDE_MULTIPLE));
    debug_assert!(q.len() == l * hd && v.len() == l * hd && kt.len() == hd * stride);
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    if hd == 32 {
        let mut out = vec![0f32; l * 32];
        // SAFETY: the target features are enabled at compile time, and the slices have the
        // lengths asserted above, which are all the kernel reads and writes.
        unsafe { avx2::head32(q, kt, stride, v, l, scale, &mut out) };
        return out;
    }
    plain(q, kt, stride, v, l, hd, scale)
}

/// `p ← exp(p - max p)`; returns the sum. Maximum and sum run in 16 independent lanes, which
/// the compiler turns into vector operations.
pub(super) fn softmax_in_place(p: &mut [f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 16];
    let mut chunks = p.chunks_exact(16);
    for c in &mut chunks {
        for (mj, &x) in m.iter_mut().zip(c) {
            *mj = if x > *mj { x } else { *mj };
        }
    }
    let mx = chunks
        .remainder()
        .iter()
        .chain(&m)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let mut s = [0f32; 16];
    let mut chunks = p.chunks_exact_mut(16);
    for c in &mut chunks {
        for (sj, x) in s.iter_mut().zip(c) {
            *x = fast_exp(*x - mx);
            *sj += *x;
        }
    }
    let mut total: f32 = s.iter().sum();
    for x in chunks.into_remainder() {
        *x = fast_exp(*x - mx);
        total += *x;
    }
    total
}

/// [`head`] for any head size and CPU, and the reference the kernel is tested against.
pub(super) fn plain(
    q: &[f32],
    kt: &[f32],
    stride: usize,
    v: &[f32],
    l: usize,
    hd: usize,
    scale: f32,
) -> Vec<f32> {
    let mut out = vec![0f32; l * hd];
    let mut p = vec![0f32; l];
    for t in 0..l {
        p.fill(0.0);
        for (e, &qe) in q[t * hd..(t + 1) * hd].iter().enumerate() {
            let qe = qe * scale;
            for (ps, ks) in p.iter_mut().zip(&kt[e * stride..e * stride + l]) {
                *ps += qe * ks;
            }
        }
        let inv = 1.0 / softmax_in_place(&mut p);
        let o = &mut out[t * hd..(t + 1) * hd];
        for (s, &ps) in p.iter().enumerate() {
            let w = ps * inv;
            for (oe, ve) in o.iter_mut().zip(&v[s * hd..(s + 1) * hd]) {
                *oe += w * ve;
            }
        }
    }
    out
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod avx2 {
    use super::softmax_in_place;
    use std::arch::x86_64::*;

    /// Scores of keys `s0..s0 + 8·N` (N registers of 8) for one query: for each of the 32
    /// query elements, one broadcast and N independent fused multiply-adds.
    #[inline(always)]
    unsafe fn scores<const N: usize>(
        qs: &[__m256; 32],
        kt: *const f32,
        stride: usize,
        s0: usize,
        p: *mut f32,
    ) {
        let mut acc = [_mm256_setzero_ps(); N];
        for (e, qe) in qs.iter().enumerate() {
            let row = kt.add(e * stride + s0);
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(*qe, _mm256_loadu_ps(row.add(8 * j)), *a);
            }
        }
        for (j, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(p.add(s0 + 8 * j), *a);
        }
    }

    /// [`super::head`] for 32-wide heads. `out` is `[l][32]`.
    pub(super) unsafe fn head32(
        q: &[f32],
        kt: &[f32],
        stride: usize,
        v: &[f32],
        l: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        // scores for all `stride` columns (the padding scores 0 and is cut off below)
        let mut p = vec![0f32; stride];
        let scale = _mm256_set1_ps(scale);
        for t in 0..l {
            let qt = q.as_ptr().add(t * 32);
            let mut qs = [_mm256_setzero_ps(); 32];
            for (e, x) in qs.iter_mut().enumerate() {
                *x = _mm256_mul_ps(_mm256_set1_ps(*qt.add(e)), scale);
            }
            let (ktp, pp) = (kt.as_ptr(), p.as_mut_ptr());
            let mut s0 = 0;
            while s0 + 64 <= stride {
                scores::<8>(&qs, ktp, stride, s0, pp);
                s0 += 64;
            }
            while s0 + 32 <= stride {
                scores::<4>(&qs, ktp, stride, s0, pp);
                s0 += 32;
            }
            while s0 < stride {
                scores::<1>(&qs, ktp, stride, s0, pp);
                s0 += 8;
            }
            let inv = 1.0 / softmax_in_place(&mut p[..l]);
            // the weighted sum of values: two keys at a time into two sets of accumulators
            let mut a0 = [_mm256_setzero_ps(); 4];
            let mut a1 = [_mm256_setzero_ps(); 4];
            let vp = v.as_ptr();
            let mut s = 0;
            while s + 2 <= l {
                let w0 = _mm256_set1_ps(p[s]);
                let w1 = _mm256_set1_ps(p[s + 1]);
                let r0 = vp.add(s * 32);
                let r1 = vp.add((s + 1) * 32);
                for i in 0..4 {
                    a0[i] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(r0.add(8 * i)), a0[i]);
                    a1[i] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(r1.add(8 * i)), a1[i]);
                }
                s += 2;
            }
            if s < l {
                let w0 = _mm256_set1_ps(p[s]);
                let r0 = vp.add(s * 32);
                for (i, a) in a0.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(w0, _mm256_loadu_ps(r0.add(8 * i)), *a);
                }
            }
            let inv = _mm256_set1_ps(inv);
            let o = out.as_mut_ptr().add(t * 32);
            for i in 0..4 {
                _mm256_storeu_ps(
                    o.add(8 * i),
                    _mm256_mul_ps(_mm256_add_ps(a0[i], a1[i]), inv),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e5::kernels::tests::noise;

    /// The kernel this CPU runs gives the plain loop's output (within float rounding) for
    /// one token, segments that end inside a register of scores, and long ones that use every
    /// block size; the padding past the segment never enters the result.
    #[test]
    fn the_attention_kernel_matches_the_plain_loop() {
        for l in [1usize, 3, 17, 40, 64, 100, 181] {
            let stride = l.next_multiple_of(STRIDE_MULTIPLE);
            // queries of a few units, as in the model, so the softmax is not flat
            let q: Vec<f32> = noise(1, l * 32).iter().map(|x| x * 8.0).collect();
            let mut kt = noise(2, 32 * stride);
            let v = noise(3, l * 32);
            let scale = 1.0 / 32f32.sqrt();
            let want = plain(&q, &kt, stride, &v, l, 32, scale);
            // padding keys as large as they come: a kernel that let them in would be far off
            for e in 0..32 {
                kt[e * stride + l..(e + 1) * stride].fill(50.0);
            }
            let got = head(&q, &kt, stride, &v, l, 32, scale);
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() < 1e-5, "l={l}, element {i}: {a} vs {b}");
            }
        }
    }
}
