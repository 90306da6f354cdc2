//! The hot path: int8 activations × 4-bit weights.
//!
//! Activations are quantized per 32-element block to int8 (scale `amax/127`, rounding half to
//! even as `lrintf` does). Weights are Q4_0 (f16 scale, nibbles biased by 8), expanded once at
//! load time to unsigned bytes 0..15 so the inner loop is a pure `maddubs`. Each output is
//! `Σ_blocks d_w·d_a·(⟨w, a⟩ − 8·Σa)`; the `−8·Σa` term is folded into the integer lanes.
#![allow(unsafe_code)]

use super::file::{Q4_BLOCK_BYTES, QK};

pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            let mut e = 1i32;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e += 1;
            }
            m &= 0x3ff;
            sign | (((127 - 15 - e + 1) as u32) << 23) | (m << 13)
        }
    } else if exp == 31 {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

/// A Q4_0 weight matrix `[rows, cols]` expanded to unsigned nibble bytes plus f32 scales.
pub struct QMatrix {
    pub rows: usize,
    pub cols: usize,
    /// rows × cols bytes, each 0..=15
    pub q: Vec<u8>,
    /// rows × cols/32 scales
    pub d: Vec<f32>,
}

impl QMatrix {
    pub fn from_q4(bytes: &[u8], rows: usize, cols: usize) -> QMatrix {
        let nb = cols / QK;
        let mut q = vec![0u8; rows * cols];
        let mut d = vec![0f32; rows * nb];
        for (bi, blk) in bytes
            .chunks_exact(Q4_BLOCK_BYTES)
            .enumerate()
            .take(rows * nb)
        {
            d[bi] = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
            let o = &mut q[bi * QK..bi * QK + QK];
            for j in 0..16 {
                o[j] = blk[2 + j] & 0x0f;
                o[j + 16] = blk[2 + j] >> 4;
            }
        }
        QMatrix { rows, cols, q, d }
    }
}

/// Dequantize one Q4_0 row of `cols` weights.
pub fn dequant_row(bytes: &[u8], out: &mut [f32]) {
    for (blk, o) in bytes
        .chunks_exact(Q4_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK))
    {
        let d = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
        for j in 0..16 {
            o[j] = ((blk[2 + j] & 0x0f) as f32 - 8.0) * d;
            o[j + 16] = ((blk[2 + j] >> 4) as f32 - 8.0) * d;
        }
    }
}

/// Activations quantized per block: int8 values, scale and the block's integer sum.
#[derive(Default)]
pub struct QActs {
    pub cols: usize,
    pub q: Vec<i8>,
    pub d: Vec<f32>,
    pub s: Vec<i32>,
}

impl QActs {
    pub fn quantize_row(x: &[f32], q: &mut [i8], d: &mut [f32], s: &mut [i32]) {
        for (b, xb) in x.chunks_exact(QK).enumerate() {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let dd = amax / 127.0;
            let id = if dd > 0.0 { 1.0 / dd } else { 0.0 };
            let mut sum = 0i32;
            for (j, &v) in xb.iter().enumerate() {
                let r = (v * id).round_ties_even().clamp(-128.0, 127.0) as i32;
                q[b * QK + j] = r as i8;
                sum += r;
            }
            d[b] = dd;
            s[b] = sum;
        }
    }
}

/// `y[t, r] = bias[r] + Σ_k W[r, k]·x[t, k]` for rows `r0..r0+ro` of `w`, all tokens `t`,
/// written to `out[t * ro + (r - r0)]`.
pub fn matmul_rows(
    w: &QMatrix,
    r0: usize,
    ro: usize,
    bias: Option<&[f32]>,
    a: &QActs,
    out: &mut [f32],
) {
    let tokens = a.q.len() / a.cols;
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512vnni"
    ))]
    if (w.cols / QK).is_multiple_of(2) {
        // SAFETY: as below; the kernel reads whole pairs of blocks, and the block count is even.
        unsafe { avx512::matmul_rows(w, r0, ro, bias, a, tokens, out) };
        return;
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    {
        // SAFETY: the target features are enabled at compile time; all indices below are
        // within the slices' lengths (rows r0..r0+ro of w, tokens 0..tokens of a).
        unsafe { avx2::matmul_rows(w, r0, ro, bias, a, tokens, out) }
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )))]
    {
        scalar_matmul_rows(w, r0, ro, bias, a, tokens, out)
    }
}

/// The reference the SIMD kernels are tested against (and the kernel where there is no AVX2).
#[allow(dead_code)]
fn scalar_matmul_rows(
    w: &QMatrix,
    r0: usize,
    ro: usize,
    bias: Option<&[f32]>,
    a: &QActs,
    tokens: usize,
    out: &mut [f32],
) {
    let nin = w.cols;
    let nb = nin / QK;
    for t in 0..tokens {
        let at = &a.q[t * nin..(t + 1) * nin];
        for r in 0..ro {
            let row = r0 + r;
            let wr = &w.q[row * nin..(row + 1) * nin];
            let mut acc = 0f32;
            for b in 0..nb {
                let mut isum = 0i32;
                for j in 0..QK {
                    isum += wr[b * QK + j] as i32 * at[b * QK + j] as i32;
                }
                isum -= 8 * a.s[t * nb + b];
                acc += w.d[row * nb + b] * a.d[t * nb + b] * isum as f32;
            }
            out[t * ro + r] = bias.map_or(0.0, |bb| bb[row]) + acc;
        }
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod avx2 {
    use super::{QActs, QMatrix, QK};
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    const RO: usize = 4;
    const TILE: usize = 32;

    /// 4 weight rows × 2 tokens per step: every loaded weight vector serves two tokens and
    /// every activation vector four rows.
    pub unsafe fn matmul_rows(
        w: &QMatrix,
        r0: usize,
        ro: usize,
        bias: Option<&[f32]>,
        a: &QActs,
        tokens: usize,
        out: &mut [f32],
    ) {
        let nin = w.cols;
        let nb = nin / QK;
        let ones = _mm256_set1_epi16(1);
        let wq = w.q.as_ptr();
        let aq = a.q.as_ptr();
        // token tiles keep a tile of activations in cache while every row group passes over it
        let mut tile = 0;
        while tile < tokens {
            let tile_end = (tile + TILE).min(tokens);
            let mut rr = 0;
            while rr < ro {
                let rn = (ro - rr).min(RO);
                let rows: [usize; RO] = std::array::from_fn(|i| r0 + rr + i.min(rn - 1));
                let mut t = tile;
                while t + 1 < tile_end {
                    let t2 = t + 1;
                    let mut acc0 = [_mm256_setzero_ps(); RO];
                    let mut acc1 = [_mm256_setzero_ps(); RO];
                    for b in 0..nb {
                        let a0 = _mm256_loadu_si256(aq.add(t * nin + b * QK) as *const __m256i);
                        let a1 = _mm256_loadu_si256(aq.add(t2 * nin + b * QK) as *const __m256i);
                        let s0 = _mm256_set1_epi32(*a.s.get_unchecked(t * nb + b));
                        let s1 = _mm256_set1_epi32(*a.s.get_unchecked(t2 * nb + b));
                        let d0 = *a.d.get_unchecked(t * nb + b);
                        let d1 = *a.d.get_unchecked(t2 * nb + b);
                        for i in 0..RO {
                            let row = rows[i];
                            let wv =
                                _mm256_loadu_si256(wq.add(row * nin + b * QK) as *const __m256i);
                            let dw = *w.d.get_unchecked(row * nb + b);
                            // Σ lanes (p − Σa) = ⟨w,a⟩ − 8·Σa  (8 lanes)
                            let p0 = _mm256_sub_epi32(
                                _mm256_madd_epi16(_mm256_maddubs_epi16(wv, a0), ones),
                                s0,
                            );
                            let p1 = _mm256_sub_epi32(
                                _mm256_madd_epi16(_mm256_maddubs_epi16(wv, a1), ones),
                                s1,
                            );
                            acc0[i] = _mm256_fmadd_ps(
                                _mm256_cvtepi32_ps(p0),
                                _mm256_set1_ps(dw * d0),
                                acc0[i],
                            );
                            acc1[i] = _mm256_fmadd_ps(
                                _mm256_cvtepi32_ps(p1),
                                _mm256_set1_ps(dw * d1),
                                acc1[i],
                            );
                        }
                    }
                    for i in 0..rn {
                        let row = rows[i];
                        let bv = bias.map_or(0.0, |bb| bb[row]);
                        out[t * ro + rr + i] = bv + hsum(acc0[i]);
                        out[t2 * ro + rr + i] = bv + hsum(acc1[i]);
                    }
                    t += 2;
                }
                if t < tile_end {
                    // the odd token of the tile, alone
                    let mut acc0 = [_mm256_setzero_ps(); RO];
                    for b in 0..nb {
                        let a0 = _mm256_loadu_si256(aq.add(t * nin + b * QK) as *const __m256i);
                        let s0 = _mm256_set1_epi32(*a.s.get_unchecked(t * nb + b));
                        let d0 = *a.d.get_unchecked(t * nb + b);
                        for i in 0..RO {
                            let row = rows[i];
                            let wv =
                                _mm256_loadu_si256(wq.add(row * nin + b * QK) as *const __m256i);
                            let dw = *w.d.get_unchecked(row * nb + b);
                            let p0 = _mm256_sub_epi32(
                                _mm256_madd_epi16(_mm256_maddubs_epi16(wv, a0), ones),
                                s0,
                            );
                            acc0[i] = _mm256_fmadd_ps(
                                _mm256_cvtepi32_ps(p0),
                                _mm256_set1_ps(dw * d0),
                                acc0[i],
                            );
                        }
                    }
                    for i in 0..rn {
                        let row = rows[i];
                        out[t * ro + rr + i] = bias.map_or(0.0, |bb| bb[row]) + hsum(acc0[i]);
                    }
                }
                rr += RO;
            }
            tile = tile_end;
        }
    }
}

/// AVX-512 VNNI: one `vpdpbusd` multiplies 64 weight bytes by 64 activation bytes and sums them
/// in fours — two 32-element blocks at once, where AVX2 needs `maddubs` + `madd` for one. The
/// lanes of block `b` are the low eight, those of `b + 1` the high eight, so the block scales
/// and sums come as a vector of two halves. Each lane starts at −Σa of its block (eight lanes
/// make the −8·Σa of the weights' bias), then its integer dot product is scaled and summed.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "avx512vnni"
))]
mod avx512 {
    use super::{QActs, QMatrix, QK};
    use std::arch::x86_64::*;

    const RO: usize = 4;
    const TILE: usize = 32;

    /// `[x0; 8] ++ [x1; 8]`
    #[inline(always)]
    unsafe fn halves_ps(x0: f32, x1: f32) -> __m512 {
        _mm512_insertf32x8::<1>(_mm512_set1_ps(x0), _mm256_set1_ps(x1))
    }

    /// `[-s0; 8] ++ [-s1; 8]`
    #[inline(always)]
    unsafe fn neg_halves_epi32(s0: i32, s1: i32) -> __m512i {
        _mm512_inserti32x8::<1>(_mm512_set1_epi32(-s0), _mm256_set1_epi32(-s1))
    }

    /// Adds one pair of blocks of one token against [`RO`] rows to their running sums.
    #[inline(always)]
    unsafe fn token_pair(
        acc: &mut [__m512; RO],
        wv: &[__m512i; RO],
        dw: &[__m512; RO],
        a: __m512i,
        neg_s: __m512i,
        da: __m512,
    ) {
        for i in 0..RO {
            let p = _mm512_dpbusd_epi32(neg_s, wv[i], a);
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw[i], da), acc[i]);
        }
    }

    /// As `avx2::matmul_rows`: 4 weight rows × 2 tokens per step, tokens in tiles of 32.
    /// `w.cols / QK` must be even.
    pub unsafe fn matmul_rows(
        w: &QMatrix,
        r0: usize,
        ro: usize,
        bias: Option<&[f32]>,
        a: &QActs,
        tokens: usize,
        out: &mut [f32],
    ) {
        let nin = w.cols;
        let nb = nin / QK;
        let wq = w.q.as_ptr();
        let aq = a.q.as_ptr();
        let mut tile = 0;
        while tile < tokens {
            let tile_end = (tile + TILE).min(tokens);
            let mut rr = 0;
            while rr < ro {
                let rn = (ro - rr).min(RO);
                let rows: [usize; RO] = std::array::from_fn(|i| r0 + rr + i.min(rn - 1));
                let mut t = tile;
                while t < tile_end {
                    // two tokens, or the tile's odd last one twice (its second sums unused)
                    let t2 = (t + 1).min(tile_end - 1);
                    let mut acc0 = [_mm512_setzero_ps(); RO];
                    let mut acc1 = [_mm512_setzero_ps(); RO];
                    let mut b = 0;
                    while b < nb {
                        let wv: [__m512i; RO] = std::array::from_fn(|i| {
                            _mm512_loadu_si512(wq.add(rows[i] * nin + b * QK) as *const __m512i)
                        });
                        let dw: [__m512; RO] = std::array::from_fn(|i| {
                            let d = w.d.as_ptr().add(rows[i] * nb + b);
                            halves_ps(*d, *d.add(1))
                        });
                        for (tt, acc) in [(t, &mut acc0), (t2, &mut acc1)] {
                            let av =
                                _mm512_loadu_si512(aq.add(tt * nin + b * QK) as *const __m512i);
                            let s = a.s.as_ptr().add(tt * nb + b);
                            let d = a.d.as_ptr().add(tt * nb + b);
                            token_pair(
                                acc,
                                &wv,
                                &dw,
                                av,
                                neg_halves_epi32(*s, *s.add(1)),
                                halves_ps(*d, *d.add(1)),
                            );
                        }
                        b += 2;
                    }
                    for i in 0..rn {
                        let bv = bias.map_or(0.0, |bb| bb[rows[i]]);
                        out[t * ro + rr + i] = bv + _mm512_reduce_add_ps(acc0[i]);
                        if t2 != t {
                            out[t2 * ro + rr + i] = bv + _mm512_reduce_add_ps(acc1[i]);
                        }
                    }
                    t += 2;
                }
                rr += RO;
            }
            tile = tile_end;
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A deterministic stream of pseudo-random numbers in [-1, 1) (the attention tests use it
    /// too).
    pub(in crate::e5) fn noise(seed: u64, n: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn matrix(rows: usize, cols: usize, seed: u64) -> QMatrix {
        let bytes: Vec<u8> = noise(seed, rows * cols / QK * Q4_BLOCK_BYTES)
            .iter()
            .enumerate()
            .map(|(i, v)| match i % Q4_BLOCK_BYTES {
                // a small positive f16 scale (exponent 8..11)
                0 => (v.to_bits() & 0xff) as u8,
                1 => 0x20 + ((v.to_bits() >> 8) & 0x0f) as u8,
                _ => (v.to_bits() >> 3) as u8,
            })
            .collect();
        QMatrix::from_q4(&bytes, rows, cols)
    }

    fn acts(tokens: usize, cols: usize, seed: u64) -> QActs {
        let x: Vec<f32> = noise(seed, tokens * cols).iter().map(|v| v * 3.0).collect();
        let nb = cols / QK;
        let mut a = QActs {
            cols,
            q: vec![0; tokens * cols],
            d: vec![0.0; tokens * nb],
            s: vec![0; tokens * nb],
        };
        for t in 0..tokens {
            QActs::quantize_row(
                &x[t * cols..(t + 1) * cols],
                &mut a.q[t * cols..(t + 1) * cols],
                &mut a.d[t * nb..(t + 1) * nb],
                &mut a.s[t * nb..(t + 1) * nb],
            );
        }
        a
    }

    /// The SIMD kernel this CPU runs gives the scalar reference's sums (to float rounding)
    /// for every shape the encoder meets: odd and even token counts and tiles, row groups
    /// that do not fill the last step, an odd number of blocks, a row range inside the matrix.
    #[test]
    fn the_simd_kernel_matches_the_scalar_reference() {
        for (rows, cols, tokens, r0, ro) in [
            (16, 64, 1, 0, 16),
            (13, 96, 3, 2, 9),
            (40, 384, 33, 5, 31),
            (8, 1536, 70, 0, 8),
            (7, 32, 2, 0, 7),
        ] {
            let w = matrix(rows, cols, rows as u64 * 31 + cols as u64);
            let a = acts(tokens, cols, tokens as u64 + 7);
            let bias = noise(99, rows);
            let mut got = vec![0f32; tokens * ro];
            let mut want = vec![0f32; tokens * ro];
            matmul_rows(&w, r0, ro, Some(&bias), &a, &mut got);
            scalar_matmul_rows(&w, r0, ro, Some(&bias), &a, tokens, &mut want);
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - e).abs() <= 1e-4 * e.abs().max(1.0),
                    "{rows}x{cols}, {tokens} tokens, rows {r0}+{ro}: output {i} is {g}, not {e}"
                );
            }
        }
    }
}
