//! Evaluation harnesses over the public sets in `../shared/data`.
//!
//! Each harness reads a data folder in the format documented in that folder's README, runs
//! luodi on it, and returns metrics as a plain struct that the CLI prints as text or JSON.
//! The evaluation protocol (DESIGN.md) is built in: `--split` picks a split, `--half` applies
//! the sha256 rule that separates tuning ids from report ids.

pub mod abbrev;
pub mod answer;
pub mod dedup;
pub mod faq;
pub mod glossary;
pub mod matching;
pub mod retrieval;
pub mod sparse;

use sha2::{Digest, Sha256};

/// Which half of an id-hashed set: ids whose sha256 starts with 0–7 are for tuning, 8–f for
/// reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Tune,
    Report,
}

impl Half {
    pub fn parse(s: &str) -> Option<Half> {
        match s {
            "tune" => Some(Half::Tune),
            "report" => Some(Half::Report),
            _ => None,
        }
    }

    pub fn contains(self, id: &str) -> bool {
        let digest = Sha256::digest(id.as_bytes());
        let tune = digest[0] >> 4 < 8;
        (self == Half::Tune) == tune
    }
}

/// A small deterministic generator (xorshift64*) for synthetic sets and benchmark inputs, so
/// they are the same on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The value at quantile `q` (0..=1) of sorted values, nearest-rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_partition_ids() {
        let ids: Vec<String> = (0..1000).map(|i| format!("q{i}")).collect();
        let tune = ids.iter().filter(|i| Half::Tune.contains(i)).count();
        let report = ids.iter().filter(|i| Half::Report.contains(i)).count();
        assert_eq!(tune + report, 1000);
        assert!((400..600).contains(&tune), "{tune}");
    }

    #[test]
    fn quantiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(quantile(&v, 0.5), 5.0);
        assert_eq!(quantile(&v, 0.99), 10.0);
    }
}
