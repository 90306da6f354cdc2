//! Whether two questions ask the same thing: the evidence FAQ-first answering and `luodi eval
//! match` decide on — the embedding cosine, lexical overlap of the folded texts (characters
//! and character bigrams), length agreement, and the words one side has that the other lacks —
//! combined by a logistic model fitted on labelled pairs.

use serde::{Deserialize, Serialize};

/// Names of the lexical features, in order (after one cosine per embedding view).
pub const LEXICAL_FEATURES: [&str; 5] = [
    "char_jaccard",
    "bigram_jaccard",
    "length_ratio",
    "unmatched_words",
    "bigram_containment",
];

/// The folded characters of a text that carry meaning (letters and digits; punctuation and
/// spaces left out; width, case and 繁简 folded).
fn chars(text: &str) -> Vec<char> {
    luodi_text::fold_for_search(text)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

fn jaccard<T: std::hash::Hash + Eq>(a: &[T], b: &[T]) -> f64 {
    let sa: std::collections::HashSet<&T> = a.iter().collect();
    let sb: std::collections::HashSet<&T> = b.iter().collect();
    let union = sa.union(&sb).count();
    if union == 0 {
        return 0.0;
    }
    sa.intersection(&sb).count() as f64 / union as f64
}

/// Character Jaccard similarity of two texts (the lexical baseline).
pub fn char_jaccard(a: &str, b: &str) -> f64 {
    jaccard(&chars(a), &chars(b))
}

/// The features of a pair, given the cosines of their embeddings (one per view, e.g. the
/// texts embedded as queries and as passages).
pub fn features(a: &str, b: &str, cosines: &[f32]) -> Vec<f64> {
    features_with(luodi_text::Segmenter::shared(), a, b, cosines)
}

/// [`features`] with words cut by `seg` (a glossary's segmenter knows its terms).
pub fn features_with(seg: &luodi_text::Segmenter, a: &str, b: &str, cosines: &[f32]) -> Vec<f64> {
    let (ca, cb) = (chars(a), chars(b));
    let bigrams =
        |c: &[char]| -> Vec<(char, char)> { c.windows(2).map(|w| (w[0], w[1])).collect() };
    let (ba, bb) = (bigrams(&ca), bigrams(&cb));
    let (la, lb) = (ca.len().max(1) as f64, cb.len().max(1) as f64);
    // words of either side (2+ characters) the other side does not contain
    let fa: String = ca.iter().collect();
    let fb: String = cb.iter().collect();
    let unmatched = |x: &str, other: &str| -> usize {
        seg.cut(x)
            .into_iter()
            .filter(|w| w.chars().count() >= 2 && !other.contains(*w))
            .count()
    };
    let un = (unmatched(&fa, &fb) + unmatched(&fb, &fa)) as f64;
    let containment = {
        let sa: std::collections::HashSet<&(char, char)> = ba.iter().collect();
        let sb: std::collections::HashSet<&(char, char)> = bb.iter().collect();
        let small = sa.len().min(sb.len()).max(1);
        sa.intersection(&sb).count() as f64 / small as f64
    };
    let mut f: Vec<f64> = cosines.iter().map(|c| *c as f64).collect();
    f.extend([
        jaccard(&ca, &cb),
        jaccard(&ba, &bb),
        la.min(lb) / la.max(lb),
        (1.0 + un).ln(),
        containment,
    ]);
    f
}

/// The local model's judgement of whether two questions ask the same thing: log P(是) −
/// log P(否) for its one-character answer to "do these two ask the same thing?" (the two
/// answers are the only ones it may give; a model that prefers neither still ranks them).
/// Costs one prompt of ~40 new tokens (the instruction is a cached prefix).
pub fn llm_same(
    generator: &dyn luodi_models::llm::Generator,
    a: &str,
    b: &str,
) -> Result<f64, luodi_models::ModelError> {
    use luodi_models::llm::{ChatMessage, GenParams};
    let clip = |t: &str| -> String { t.chars().take(200).collect() };
    let messages = [
        ChatMessage::system(
            "判断两个用户问题是否在问同一件事（意思相同，只是说法不同）。只回答“是”或“否”。",
        ),
        ChatMessage::user(format!("问题一：{}\n问题二：{}", clip(a), clip(b))),
    ];
    let params = GenParams {
        max_tokens: 1,
        spans: vec!["是".into(), "否".into()],
        span_candidates: 4,
        ..GenParams::default()
    };
    let g = generator.chat(&messages, &params, &mut |_| true)?;
    let lp = |word: &str| -> f64 {
        g.alternatives
            .iter()
            .find(|x| x.text == word)
            .map_or(-30.0, |x| x.logprob as f64)
    };
    Ok(lp("是") - lp("否"))
}

/// A logistic model over [`features`]: the probability that two questions match.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Matcher {
    pub weights: Vec<f64>,
    pub bias: f64,
    /// Per feature: mean and spread the weights apply to.
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Matcher {
    pub fn prob(&self, x: &[f64]) -> f64 {
        let z: f64 = self.bias
            + x.iter()
                .zip(&self.weights)
                .zip(self.mean.iter().zip(&self.scale))
                .map(|((v, w), (m, s))| w * (v - m) / s)
                .sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }

    /// Fits by gradient descent on the log-loss, with a little L2 (features standardized).
    pub fn fit(xs: &[Vec<f64>], ys: &[bool]) -> Matcher {
        let d = xs.first().map_or(0, Vec::len);
        let n = xs.len().max(1) as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| xs.iter().map(|x| x[j]).sum::<f64>() / n)
            .collect();
        let scale: Vec<f64> = (0..d)
            .map(|j| {
                let v = xs.iter().map(|x| (x[j] - mean[j]).powi(2)).sum::<f64>() / n;
                v.sqrt().max(1e-9)
            })
            .collect();
        let z: Vec<Vec<f64>> = xs
            .iter()
            .map(|x| (0..d).map(|j| (x[j] - mean[j]) / scale[j]).collect())
            .collect();
        let (mut w, mut b) = (vec![0.0; d], 0.0);
        let lr = 0.5;
        for _ in 0..800 {
            let mut gw = vec![0.0; d];
            let mut gb = 0.0;
            for (x, y) in z.iter().zip(ys) {
                let p =
                    1.0 / (1.0 + (-(b + x.iter().zip(&w).map(|(a, c)| a * c).sum::<f64>())).exp());
                let e = p - if *y { 1.0 } else { 0.0 };
                for j in 0..d {
                    gw[j] += e * x[j];
                }
                gb += e;
            }
            for j in 0..d {
                w[j] -= lr * (gw[j] / n + 1e-3 * w[j]);
            }
            b -= lr * gb / n;
        }
        Matcher {
            weights: w,
            bias: b,
            mean,
            scale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_overlap_more_match() {
        let same = features("花呗怎么提额", "怎样提高花呗额度", &[0.9]);
        let diff = features("花呗怎么提额", "借呗利息怎么算", &[0.6]);
        assert!(same[1] > diff[1], "character overlap");
        let xs = vec![same.clone(), diff.clone(), same.clone(), diff.clone()];
        let m = Matcher::fit(&xs, &[true, false, true, false]);
        assert!(m.prob(&same) > 0.5 && m.prob(&diff) < 0.5);
    }
}
