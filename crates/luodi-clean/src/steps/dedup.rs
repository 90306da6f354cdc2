//! Exact and near-duplicate removal against everything kept before.
//!
//! The state of each is a [`Store`] in the state folder (exact: 16-byte content hashes; near:
//! each kept document's MinHash signature), an append-only log with an index on disk, appended
//! per batch and cut back to a checkpoint's marks on resume — so later runs and streams dedup
//! against what came before, a killed run never half-remembers a batch it did not write, and
//! memory stays bounded however much the state holds.
//!
//! Near duplicates: shingles of the folded text (width, case, 繁简 folded; punctuation and
//! spaces left out, so punctuation edits and script conversion do not hide a copy), a MinHash
//! of `bands × rows` values kept as their low 16 bits (b-bit MinHash), LSH over the bands to
//! find candidates, and a candidate confirmed when the share of equal values — the estimated
//! Jaccard similarity — reaches the threshold. The first document of a cluster is kept.

use std::path::Path;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::Deserialize;

use crate::store::{Store, StoreLimits};
use crate::{CorpusStep, Doc, Verdict};

fn limits(filter_mb: usize) -> StoreLimits {
    StoreLimits {
        filter_bytes: filter_mb << 20,
        ..StoreLimits::default()
    }
}

fn open_err(state: &Path, name: &str, e: std::io::Error) -> String {
    format!("state {}: {e}", state.join(format!("{name}.log")).display())
}

/// The key documents are compared by: the folded text without whitespace.
fn folded(text: &str) -> String {
    luodi_text::fold_for_search(text)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExactParams {
    /// Memory for the index's Bloom filters (MB); past it the index is read from disk.
    #[serde(default = "d_exact_mb")]
    pub filter_mb: usize,
}

fn d_exact_mb() -> usize {
    64
}

pub struct ExactDedup {
    store: Store,
    /// Kept document → documents dropped as its copies.
    dups: FxHashMap<u32, u32>,
}

impl ExactDedup {
    pub fn new(p: ExactParams, state: &Path) -> Result<ExactDedup, String> {
        let store = Store::open(
            state,
            "exact",
            16,
            limits(p.filter_mb),
            Box::new(|r: &[u8], out: &mut Vec<u64>| {
                let mut k = [0u8; 8];
                k.copy_from_slice(&r[..8]);
                out.push(u64::from_le_bytes(k));
            }),
        )
        .map_err(|e| open_err(state, "exact", e))?;
        Ok(ExactDedup {
            store,
            dups: FxHashMap::default(),
        })
    }

    /// The kept document with this content hash.
    fn find(&self, key: &[u8; 16]) -> std::io::Result<Option<u32>> {
        let mut cands = Vec::new();
        let mut k = [0u8; 8];
        k.copy_from_slice(&key[..8]);
        self.store.candidates(u64::from_le_bytes(k), &mut cands)?;
        let mut rec = [0u8; 16];
        for ord in cands {
            self.store.record(ord, &mut rec)?;
            if &rec == key {
                return Ok(Some(ord));
            }
        }
        Ok(None)
    }
}

fn exact_key(text: &str) -> [u8; 16] {
    let h = blake3::hash(folded(text).as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&h.as_bytes()[..16]);
    k
}

/// A store read that failed mid-batch: the document goes to the rejects with the error
/// (nothing is lost, and it is never let through unchecked).
fn store_error(e: std::io::Error) -> Verdict {
    Verdict::drop("state_error", format!("dedup state could not be read: {e}"))
}

impl CorpusStep for ExactDedup {
    fn name(&self) -> &str {
        "exact_dedup"
    }

    fn apply_batch(&mut self, docs: &mut [Doc], verdicts: &mut [Verdict]) {
        let keys: Vec<Option<[u8; 16]>> = docs
            .par_iter()
            .zip(verdicts.par_iter())
            .map(|(d, v)| (*v == Verdict::Keep).then(|| exact_key(&d.text)))
            .collect();
        for (k, v) in keys.into_iter().zip(verdicts.iter_mut()) {
            let Some(k) = k else { continue };
            match self.find(&k) {
                Ok(None) => {
                    self.store.push(&k);
                }
                Ok(Some(ord)) => {
                    *self.dups.entry(ord).or_insert(0) += 1;
                    *v = Verdict::drop(
                        "exact_duplicate",
                        "same text (folded) as an earlier document",
                    );
                }
                Err(e) => *v = store_error(e),
            }
        }
    }

    fn commit(&mut self) -> std::io::Result<Vec<u64>> {
        Ok(vec![self.store.commit()?])
    }

    fn restore(&mut self, marks: &[u64]) -> std::io::Result<()> {
        self.store.restore(marks.first().copied().unwrap_or(0))?;
        self.dups.clear();
        Ok(())
    }

    fn clusters(&self) -> Vec<u32> {
        self.dups.values().map(|n| n + 1).collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NearParams {
    #[serde(default = "d_char")]
    pub shingle: String,
    #[serde(default = "d_n")]
    pub n: usize,
    #[serde(default = "d_bands")]
    pub bands: usize,
    #[serde(default = "d_rows")]
    pub rows: usize,
    #[serde(default = "d_threshold")]
    pub threshold: f64,
    /// `keep` digits, or read every digit as `0` (numbers that differ do not make texts
    /// differ — as datatrove normalizes them).
    #[serde(default = "d_keep")]
    pub digits: String,
    /// Memory for the index's Bloom filters (MB); past it the index is read from disk.
    #[serde(default = "d_near_mb")]
    pub filter_mb: usize,
}

fn d_near_mb() -> usize {
    256
}

fn d_keep() -> String {
    "keep".into()
}

fn d_char() -> String {
    "char".into()
}
fn d_n() -> usize {
    5
}
fn d_bands() -> usize {
    25
}
fn d_rows() -> usize {
    5
}
fn d_threshold() -> f64 {
    0.6
}

impl Default for NearParams {
    fn default() -> Self {
        NearParams {
            shingle: d_char(),
            n: d_n(),
            bands: d_bands(),
            rows: d_rows(),
            threshold: d_threshold(),
            digits: d_keep(),
            filter_mb: d_near_mb(),
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// MinHash signatures of texts (reusable outside the step: the benchmark measures with it).
#[derive(Debug, Clone)]
pub struct MinHasher {
    words: bool,
    zero_digits: bool,
    n: usize,
    seeds: Vec<u64>,
}

impl MinHasher {
    pub fn new(p: &NearParams) -> Result<MinHasher, String> {
        let words = match p.shingle.as_str() {
            "char" => false,
            "word" => true,
            other => return Err(format!("shingle: {other:?} is not \"char\" or \"word\"")),
        };
        let zero_digits = match p.digits.as_str() {
            "keep" => false,
            "zero" => true,
            other => return Err(format!("digits: {other:?} is not \"keep\" or \"zero\"")),
        };
        if p.n == 0 || p.n > 32 {
            return Err("n: give 1-32".into());
        }
        if p.bands == 0 || p.rows == 0 || p.bands * p.rows > 1024 {
            return Err("bands, rows: at least 1 each, bands × rows at most 1024".into());
        }
        if !(0.0..=1.0).contains(&p.threshold) {
            return Err("threshold: give a Jaccard similarity between 0 and 1".into());
        }
        Ok(MinHasher {
            words,
            zero_digits,
            n: p.n,
            seeds: (0..p.bands * p.rows)
                .map(|i| splitmix(0x006c_756f_6469 ^ i as u64))
                .collect(),
        })
    }

    /// Hashes of the text's shingles (deduplicated).
    pub fn shingles(&self, text: &str) -> Vec<u64> {
        let mut f = luodi_text::fold_for_search(text);
        if self.zero_digits {
            f = f
                .chars()
                .map(|c| if c.is_ascii_digit() { '0' } else { c })
                .collect();
        }
        let hash_seq = |items: &[&str]| -> u64 {
            let h = items.iter().fold(super::FNV_START, |h, it| {
                super::fnv1a(h, it.bytes().map(u64::from).chain([0xff]))
            });
            splitmix(h)
        };
        let mut out: Vec<u64> = if self.words {
            let seg = luodi_text::Segmenter::shared();
            let toks: Vec<&str> = seg
                .cut(&f)
                .into_iter()
                .filter(|t| t.chars().any(char::is_alphanumeric))
                .collect();
            if toks.is_empty() {
                Vec::new()
            } else if toks.len() <= self.n {
                vec![hash_seq(&toks)]
            } else {
                toks.windows(self.n).map(hash_seq).collect()
            }
        } else {
            let chars: Vec<char> = f.chars().filter(|c| c.is_alphanumeric()).collect();
            let hash_chars = |w: &[char]| -> u64 {
                let mut buf = [0u8; 4];
                let h = w.iter().fold(super::FNV_START, |h, c| {
                    super::fnv1a(h, c.encode_utf8(&mut buf).bytes().map(u64::from))
                });
                splitmix(h)
            };
            if chars.is_empty() {
                Vec::new()
            } else if chars.len() <= self.n {
                vec![hash_chars(&chars)]
            } else {
                chars.windows(self.n).map(hash_chars).collect()
            }
        };
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The b-bit (16) MinHash signature; empty for a text without letters or digits (no
    /// shingle: nothing to compare, so never a duplicate — the quality step judges such text).
    pub fn signature(&self, text: &str) -> Vec<u16> {
        let sh = self.shingles(text);
        if sh.is_empty() {
            return Vec::new();
        }
        let mut mins = vec![u64::MAX; self.seeds.len()];
        for h in sh {
            for (m, s) in mins.iter_mut().zip(&self.seeds) {
                let v = splitmix(h ^ s);
                if v < *m {
                    *m = v;
                }
            }
        }
        mins.into_iter().map(|m| m as u16).collect()
    }
}

/// Estimated Jaccard similarity of two signatures.
pub fn similarity(a: &[u16], b: &[u16]) -> f64 {
    let eq = a.iter().zip(b).filter(|(x, y)| x == y).count();
    eq as f64 / a.len().max(1) as f64
}

/// What [`NearDedup::observe`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observed {
    Kept(u32),
    Duplicate(u32, f64),
    NoShingles,
}

pub struct NearDedup {
    p: NearParams,
    hasher: MinHasher,
    store: Store,
    /// Kept document → documents dropped as its near copies.
    dups: FxHashMap<u32, u32>,
}

/// The LSH key of one band of a signature.
fn band_key(sig: &[u16], rows: usize, band: usize) -> u64 {
    let mut h: u64 = splitmix(band as u64 + 1);
    for v in &sig[band * rows..(band + 1) * rows] {
        h = splitmix(h ^ *v as u64);
    }
    h
}

impl NearDedup {
    pub fn new(p: NearParams, state: &Path) -> Result<NearDedup, String> {
        let hasher = MinHasher::new(&p)?;
        // signatures of other settings are not comparable: each setting has its own store
        let name = format!(
            "near-{}{}-{}x{}{}",
            p.shingle,
            p.n,
            p.bands,
            p.rows,
            if p.digits == "zero" { "-d0" } else { "" }
        );
        let (bands, rows) = (p.bands, p.rows);
        let store = Store::open(
            state,
            &name,
            bands * rows * 2,
            limits(p.filter_mb),
            Box::new(move |r: &[u8], out: &mut Vec<u64>| {
                let sig: Vec<u16> = r
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
                    .collect();
                out.extend((0..bands).map(|b| band_key(&sig, rows, b)));
            }),
        )
        .map_err(|e| open_err(state, &name, e))?;
        Ok(NearDedup {
            p,
            hasher,
            store,
            dups: FxHashMap::default(),
        })
    }

    /// One document's signature against everything kept: a duplicate of a kept document
    /// (with the estimated similarity), or kept now (pending until the next commit), or
    /// nothing to compare (no shingles).
    pub fn observe(&mut self, sig: &[u16]) -> std::io::Result<Observed> {
        if sig.is_empty() {
            return Ok(Observed::NoShingles);
        }
        Ok(match self.find(sig)? {
            Some((ord, s)) => Observed::Duplicate(ord, s),
            None => Observed::Kept(self.keep(sig)),
        })
    }

    fn keep(&mut self, sig: &[u16]) -> u32 {
        let bytes: Vec<u8> = sig.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.store.push(&bytes)
    }

    pub fn hasher(&self) -> &MinHasher {
        &self.hasher
    }

    /// Memory the index holds now (bytes) and its segment files.
    pub fn index_size(&self) -> (usize, usize) {
        (self.store.index_memory(), self.store.segments())
    }

    /// The kept document this signature duplicates, with the estimated similarity.
    fn find(&self, sig: &[u16]) -> std::io::Result<Option<(u32, f64)>> {
        let mut cands = Vec::new();
        for b in 0..self.p.bands {
            self.store
                .candidates(band_key(sig, self.p.rows, b), &mut cands)?;
        }
        cands.sort_unstable();
        cands.dedup();
        let mut rec = vec![0u8; sig.len() * 2];
        let mut best: Option<(u32, f64)> = None;
        for ord in cands {
            self.store.record(ord, &mut rec)?;
            let eq = sig
                .iter()
                .zip(rec.chunks_exact(2))
                .filter(|(x, r)| x.to_le_bytes() == [r[0], r[1]])
                .count();
            let s = eq as f64 / sig.len() as f64;
            if s >= self.p.threshold && best.is_none_or(|(_, bs)| s > bs) {
                best = Some((ord, s));
            }
        }
        Ok(best)
    }
}

impl CorpusStep for NearDedup {
    fn name(&self) -> &str {
        "near_dedup"
    }

    fn apply_batch(&mut self, docs: &mut [Doc], verdicts: &mut [Verdict]) {
        let hasher = &self.hasher;
        let sigs: Vec<Option<Vec<u16>>> = docs
            .par_iter()
            .zip(verdicts.par_iter())
            .map(|(d, v)| (*v == Verdict::Keep).then(|| hasher.signature(&d.text)))
            .collect();
        for (sig, v) in sigs.into_iter().zip(verdicts.iter_mut()) {
            let Some(sig) = sig.filter(|s| !s.is_empty()) else {
                continue;
            };
            match self.find(&sig) {
                Ok(Some((ord, s))) => {
                    *self.dups.entry(ord).or_insert(0) += 1;
                    *v = Verdict::drop(
                        "near_duplicate",
                        format!("estimated Jaccard {s:.2} with kept document #{ord}"),
                    );
                }
                Ok(None) => {
                    self.keep(&sig);
                }
                Err(e) => *v = store_error(e),
            }
        }
    }

    fn commit(&mut self) -> std::io::Result<Vec<u64>> {
        Ok(vec![self.store.commit()?])
    }

    fn restore(&mut self, marks: &[u64]) -> std::io::Result<()> {
        self.store.restore(marks.first().copied().unwrap_or(0))?;
        self.dups.clear();
        Ok(())
    }

    fn clusters(&self) -> Vec<u32> {
        self.dups.values().map(|n| n + 1).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::FxHashSet;

    fn jaccard(a: &[u64], b: &[u64]) -> f64 {
        let sa: FxHashSet<_> = a.iter().collect();
        let sb: FxHashSet<_> = b.iter().collect();
        sa.intersection(&sb).count() as f64 / sa.union(&sb).count() as f64
    }

    #[test]
    fn minhash_estimates_jaccard() {
        let h = MinHasher::new(&NearParams::default()).unwrap();
        let a = "员工入职满一年后享有带薪年假。工作满1年不满10年的，年假5天；满10年不满20年的，年假10天；满20年的，年假15天。年假须提前三个工作日在人事系统中提交申请。";
        let b = "員工入職滿一年後享有帶薪年假，工作滿1年不滿10年的年假5天；滿10年不滿20年的，年假10天；滿20年的，年假十五天。年假須提前三個工作日在人事系統中提交申請。";
        let c = "差旅住宿标准：一线城市每晚不超过600元，其他城市每晚不超过400元，超标部分自理。";
        let (sa, sb, sc) = (h.signature(a), h.signature(b), h.signature(c));
        let true_ab = jaccard(&h.shingles(a), &h.shingles(b));
        assert!(true_ab > 0.7, "{true_ab}");
        assert!(
            (similarity(&sa, &sb) - true_ab).abs() < 0.15,
            "{} vs {true_ab}",
            similarity(&sa, &sb)
        );
        assert!(similarity(&sa, &sc) < 0.1);
    }

    #[test]
    fn near_duplicates_are_dropped_and_remembered_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let doc = |t: &str| Doc {
            text: t.into(),
            ..Doc::default()
        };
        let a = "员工入职满一年后享有带薪年假。工作满1年不满10年的，年假5天；满10年不满20年的，年假10天；满20年的，年假15天。";
        let a2 = "员工入职满一年后享有带薪年假！工作满1年不满10年的：年假5天，满10年不满20年的，年假10天，满20年的，年假15天";
        let c = "差旅住宿标准：一线城市每晚不超过600元，其他城市每晚不超过400元，超标部分自理。";
        {
            let mut n = NearDedup::new(NearParams::default(), dir.path()).unwrap();
            let mut docs = vec![doc(a), doc(c), doc(a2)];
            let mut v = vec![Verdict::Keep; 3];
            n.apply_batch(&mut docs, &mut v);
            assert_eq!(v[0], Verdict::Keep);
            assert_eq!(v[1], Verdict::Keep);
            assert!(matches!(&v[2], Verdict::Drop { reason, .. } if reason == "near_duplicate"));
            assert_eq!(n.clusters(), vec![2]);
            n.commit().unwrap();
        }
        // a later run with the same state folder
        let mut n = NearDedup::new(NearParams::default(), dir.path()).unwrap();
        let mut docs = vec![doc(a2)];
        let mut v = vec![Verdict::Keep];
        n.apply_batch(&mut docs, &mut v);
        assert!(matches!(&v[0], Verdict::Drop { .. }));
        // cut back to nothing: a forgets
        n.restore(&[0]).unwrap();
        let mut v = vec![Verdict::Keep];
        n.apply_batch(&mut docs, &mut v);
        assert_eq!(v[0], Verdict::Keep);
    }
}
