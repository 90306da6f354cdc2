//! Chunking (the knowledge base's chunker) and token counts.

use luodi_ingest::{chunk_blocks, Block, ChunkConfig};
use serde::Deserialize;

use crate::{Doc, DocStep, Verdict};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkParams {
    target_chars: Option<usize>,
    max_chars: Option<usize>,
    overlap_chars: Option<usize>,
}

pub struct ChunkStep {
    cfg: ChunkConfig,
}

impl ChunkStep {
    pub fn new(p: ChunkParams) -> Result<ChunkStep, String> {
        let d = ChunkConfig::default();
        let cfg = ChunkConfig {
            target_chars: p.target_chars.unwrap_or(d.target_chars),
            max_chars: p.max_chars.unwrap_or(d.max_chars),
            overlap_chars: p.overlap_chars.unwrap_or(d.overlap_chars),
        };
        if cfg.target_chars == 0 || cfg.target_chars > cfg.max_chars {
            return Err(format!(
                "target_chars ({}) must be at least 1 and at most max_chars ({})",
                cfg.target_chars, cfg.max_chars
            ));
        }
        Ok(ChunkStep { cfg })
    }
}

impl DocStep for ChunkStep {
    fn name(&self) -> &str {
        "chunk"
    }

    fn apply(&self, doc: &mut Doc) -> Verdict {
        let blocks: Vec<Block> = doc
            .text
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Block::paragraph(p, Default::default()))
            .collect();
        let chunks: Vec<String> = chunk_blocks(&blocks, self.cfg)
            .into_iter()
            .map(|c| c.text)
            .collect();
        doc.provenance
            .push(format!("chunk: {} chunks", chunks.len()));
        doc.chunks = Some(chunks);
        Verdict::Keep
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensParams {
    #[serde(default = "chars")]
    tokenizer: String,
}

fn chars() -> String {
    "chars".into()
}

pub struct Tokens {
    jieba: bool,
}

impl Tokens {
    pub fn new(p: TokensParams) -> Result<Tokens, String> {
        let jieba = match p.tokenizer.as_str() {
            "chars" => false,
            "jieba" => true,
            other => {
                return Err(format!(
                    "tokenizer: {other:?} is not \"chars\" or \"jieba\""
                ))
            }
        };
        Ok(Tokens { jieba })
    }
}

/// Han characters, plus runs of other letters and digits, each one token.
pub fn count_char_tokens(text: &str) -> usize {
    let mut n = 0;
    let mut in_word = false;
    for c in text.chars() {
        if luodi_text::is_han(c) {
            n += 1;
            in_word = false;
        } else if c.is_alphanumeric() {
            if !in_word {
                n += 1;
            }
            in_word = true;
        } else {
            in_word = false;
        }
    }
    n
}

impl DocStep for Tokens {
    fn name(&self) -> &str {
        "tokens"
    }

    fn apply(&self, doc: &mut Doc) -> Verdict {
        let n = if self.jieba {
            luodi_text::Segmenter::shared()
                .cut(&doc.text)
                .into_iter()
                .filter(|t| t.chars().any(char::is_alphanumeric))
                .count()
        } else {
            count_char_tokens(&doc.text)
        };
        doc.tokens = Some(n);
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_chunks() {
        assert_eq!(
            count_char_tokens("年假 5 days, HR-Link系统"),
            2 + 1 + 1 + 1 + 1 + 2
        );
        let c = ChunkStep::new(ChunkParams {
            target_chars: Some(40),
            max_chars: Some(60),
            overlap_chars: Some(0),
        })
        .unwrap();
        let mut d = Doc {
            text: "第一段。".repeat(20) + "\n\n" + &"第二段。".repeat(5),
            ..Doc::default()
        };
        c.apply(&mut d);
        let chunks = d.chunks.unwrap();
        assert!(chunks.len() >= 3, "{chunks:?}");
        assert!(chunks.iter().all(|c| c.chars().count() <= 60));
    }
}
