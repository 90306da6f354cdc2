//! Word segmentation with jieba-rs, extensible with user dictionaries (a knowledge base's
//! glossary makes 杭分 one word).

use std::io::BufRead;
use std::sync::{Arc, OnceLock};

use jieba_rs::Jieba;

/// A jieba segmenter. Cloning is cheap (the dictionary is shared until a word is added).
#[derive(Clone)]
pub struct Segmenter {
    jieba: Arc<Jieba>,
}

impl std::fmt::Debug for Segmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmenter").finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("user dictionary, line {line}: {reason}")]
pub struct DictError {
    pub line: usize,
    pub reason: String,
}

static DEFAULT: OnceLock<Segmenter> = OnceLock::new();

/// The words of jieba's tokens, whitespace tokens dropped.
fn words(tokens: Vec<jieba_rs::Token<'_>>) -> Vec<&str> {
    tokens
        .into_iter()
        .map(|t| t.word)
        .filter(|w| !w.trim().is_empty())
        .collect()
}

impl Default for Segmenter {
    fn default() -> Self {
        Self::shared().clone()
    }
}

impl Segmenter {
    /// The process-wide segmenter with jieba's default dictionary (built once, ~0.3 s).
    pub fn shared() -> &'static Segmenter {
        DEFAULT.get_or_init(|| Segmenter {
            jieba: Arc::new(Jieba::new()),
        })
    }

    /// Adds a word (e.g. a glossary term) so it is never split.
    pub fn add_word(&mut self, word: &str, freq: Option<usize>) {
        let word = word.trim();
        if word.is_empty() || word.contains(char::is_whitespace) {
            return;
        }
        Arc::make_mut(&mut self.jieba).add_word(word, freq, None);
    }

    /// Loads a user dictionary in jieba's format: `word [freq] [tag]` per line, `#` comments.
    pub fn load_user_dict<R: BufRead>(&mut self, reader: R) -> Result<usize, DictError> {
        let mut n = 0;
        for (i, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| DictError {
                line: i + 1,
                reason: e.to_string(),
            })?;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let word = parts.next().unwrap_or_default();
            let freq = match parts.next() {
                Some(f) => Some(f.parse::<usize>().map_err(|_| DictError {
                    line: i + 1,
                    reason: format!("frequency {f:?} is not a whole number"),
                })?),
                None => None,
            };
            self.add_word(word, freq);
            n += 1;
        }
        Ok(n)
    }

    /// Precise-mode segmentation (HMM on for unknown words). Whitespace tokens are dropped.
    pub fn cut<'a>(&self, text: &'a str) -> Vec<&'a str> {
        words(self.jieba.cut(text, true))
    }

    /// Search-mode segmentation: long words are also emitted as their dictionary sub-words
    /// (中华人民共和国 → 中华, 华人, 人民, 共和, 共和国, 中华人民共和国), for recall.
    pub fn cut_for_search<'a>(&self, text: &'a str) -> Vec<&'a str> {
        words(self.jieba.cut_for_search(text, true))
    }

    /// Precise-mode segmentation from the dictionary alone (no HMM guessing of unknown words):
    /// the cheap cut for indexing paths that add character unigrams and bigrams anyway, which
    /// already cover every sub-word of one or two characters that search mode would add.
    pub fn cut_dict<'a>(&self, text: &'a str) -> Vec<&'a str> {
        words(self.jieba.cut(text, false))
    }

    /// Precise-mode words with jieba's part-of-speech tags (n, ns, nt, v, d, m, …).
    /// Whitespace tokens are dropped.
    pub fn tag<'a>(&'a self, text: &'a str) -> Vec<(&'a str, &'a str)> {
        self.jieba
            .tag(text, true)
            .into_iter()
            .filter(|t| !t.word.trim().is_empty())
            .map(|t| (t.word, t.tag))
            .collect()
    }

    pub fn has_word(&self, word: &str) -> bool {
        self.jieba.has_word(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_words_are_kept_whole() {
        let mut s = Segmenter::shared().clone();
        assert!(s.cut("杭分的放号情况").len() > 2);
        s.load_user_dict("# glossary\n杭分 1000 n\n".as_bytes())
            .unwrap();
        assert_eq!(s.cut("杭分的放号情况")[0], "杭分");
        assert!(
            !Segmenter::shared().has_word("杭分"),
            "shared dictionary untouched"
        );
    }

    #[test]
    fn bad_dict_line_is_named() {
        let mut s = Segmenter::shared().clone();
        let e = s
            .load_user_dict("好词 12\n坏词 many\n".as_bytes())
            .unwrap_err();
        assert_eq!(e.line, 2);
    }
}
