//! Structure-aware chunking.
//!
//! Blocks are packed into chunks of about `target_chars` characters, never more than
//! `max_chars` (chosen to stay inside the embedding model's 512-token window: ~400 Chinese
//! characters). A heading starts a new chunk and becomes part of the heading path of the
//! chunks under it. Paragraphs longer than the limit are cut at sentence ends, and a sentence
//! longer than the limit is cut at a character that is not inside a number or a Latin word.
//! Table rows are packed under their header, which every chunk of the table repeats.
//! Consecutive chunks of the same section overlap by up to `overlap_chars` of whole sentences.

use luodi_core::{Chunk, Location};
use luodi_text::split_sentences;

use crate::{Block, BlockKind};

#[derive(Debug, Clone, Copy)]
pub struct ChunkConfig {
    pub target_chars: usize,
    pub max_chars: usize,
    pub overlap_chars: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            target_chars: 300,
            max_chars: 400,
            overlap_chars: 60,
        }
    }
}

impl ChunkConfig {
    fn sane(self) -> Self {
        let max_chars = self.max_chars.max(16);
        ChunkConfig {
            max_chars,
            target_chars: self.target_chars.clamp(8, max_chars),
            overlap_chars: self.overlap_chars.min(max_chars / 2),
        }
    }
}

struct Builder {
    cfg: ChunkConfig,
    out: Vec<Chunk>,
    headings: Vec<(u8, String)>,
    pieces: Vec<String>,
    len: usize,
    location: Option<Location>,
    table_header: Option<String>,
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

impl Builder {
    fn heading_path(&self) -> Vec<String> {
        self.headings.iter().map(|(_, h)| h.clone()).collect()
    }

    fn flush(&mut self, keep_overlap: bool) {
        if self.pieces.is_empty() {
            return;
        }
        let mut text = String::new();
        if let Some(h) = &self.table_header {
            text.push_str(h);
            text.push('\n');
        }
        text.push_str(&self.pieces.join(if self.table_header.is_some() {
            "\n"
        } else {
            ""
        }));
        let overlap = if keep_overlap && self.table_header.is_none() {
            let mut carried: Vec<String> = Vec::new();
            let mut n = 0;
            for p in self.pieces.iter().rev() {
                let l = char_len(p);
                if n + l > self.cfg.overlap_chars {
                    break;
                }
                n += l;
                carried.push(p.clone());
            }
            carried.reverse();
            // never carry the whole previous chunk over
            if carried.len() == self.pieces.len() {
                carried.clear();
            }
            carried
        } else {
            Vec::new()
        };
        self.out.push(Chunk {
            ordinal: self.out.len() as u32,
            text,
            heading_path: self.heading_path(),
            location: self.location.take().unwrap_or_default(),
        });
        self.len = overlap.iter().map(|p| char_len(p)).sum();
        self.pieces = overlap;
    }

    fn header_len(&self) -> usize {
        self.table_header.as_deref().map_or(0, |h| char_len(h) + 1)
    }

    fn push_piece(&mut self, piece: String, location: &Location) {
        let l = char_len(&piece);
        if !self.pieces.is_empty() && self.header_len() + self.len + l > self.cfg.target_chars {
            self.flush(true);
        }
        if self.location.is_none() {
            self.location = Some(location.clone());
        }
        self.len += l;
        self.pieces.push(piece);
        if self.header_len() + self.len >= self.cfg.max_chars {
            self.flush(true);
        }
    }
}

/// Cuts a piece of text of at most `max` characters off the front of `s`, preferring a cut
/// that does not fall inside a run of digits or Latin letters.
fn hard_split(s: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while chars.len() - start > max {
        let mut cut = start + max;
        let inside = |i: usize| {
            i > 0
                && i < chars.len()
                && chars[i - 1].is_ascii_alphanumeric()
                && chars[i].is_ascii_alphanumeric()
                || (i > 0
                    && i + 1 < chars.len()
                    && chars[i].is_ascii_punctuation()
                    && chars[i - 1].is_ascii_digit()
                    && chars[i + 1].is_ascii_digit())
        };
        while cut > start + max / 2 && inside(cut) {
            cut -= 1;
        }
        if cut <= start + max / 2 {
            cut = start + max;
        }
        out.push(chars[start..cut].iter().collect());
        start = cut;
    }
    if start < chars.len() {
        out.push(chars[start..].iter().collect());
    }
    out
}

/// Turns a document's blocks into chunks.
pub fn chunk_blocks(blocks: &[Block], cfg: ChunkConfig) -> Vec<Chunk> {
    let cfg = cfg.sane();
    let mut b = Builder {
        cfg,
        out: Vec::new(),
        headings: Vec::new(),
        pieces: Vec::new(),
        len: 0,
        location: None,
        table_header: None,
    };
    for block in blocks {
        let text = block.text.trim();
        if text.is_empty() {
            continue;
        }
        match &block.kind {
            BlockKind::Heading(level) => {
                b.flush(false);
                b.table_header = None;
                while b.headings.last().is_some_and(|(l, _)| l >= level) {
                    b.headings.pop();
                }
                let h: String = text.chars().take(cfg.max_chars / 2).collect();
                b.headings.push((*level, h));
            }
            BlockKind::TableRow { header } => {
                if b.table_header.as_deref() != Some(header.as_str()) {
                    b.flush(false);
                    b.table_header = Some(header.clone());
                }
                let room = cfg
                    .max_chars
                    .saturating_sub(b.header_len())
                    .max(cfg.max_chars / 2);
                for piece in hard_split(text, room) {
                    b.push_piece(piece, &block.location);
                }
            }
            BlockKind::Paragraph => {
                if b.table_header.is_some() {
                    b.flush(false);
                    b.table_header = None;
                }
                let para_len = char_len(text);
                // a paragraph that fits keeps its own line break from the one before
                let mut pieces: Vec<String> = Vec::new();
                if para_len <= cfg.max_chars {
                    pieces.push(text.to_owned());
                } else {
                    for s in split_sentences(text) {
                        if char_len(s) <= cfg.max_chars {
                            pieces.push(s.to_owned());
                        } else {
                            pieces.extend(hard_split(s, cfg.max_chars));
                        }
                    }
                }
                if !b.pieces.is_empty() {
                    if let Some(first) = pieces.first_mut() {
                        first.insert(0, '\n');
                    }
                }
                for p in pieces {
                    b.push_piece(p, &block.location);
                }
            }
        }
    }
    b.flush(false);
    // a document made of headings only still gets one chunk, so it can be found
    if b.out.is_empty() && !b.headings.is_empty() {
        let text = b.heading_path().join(" / ");
        b.out.push(Chunk {
            ordinal: 0,
            text,
            heading_path: Vec::new(),
            location: blocks
                .first()
                .map(|x| x.location.clone())
                .unwrap_or_default(),
        });
    }
    b.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn para(t: &str, n: u32) -> Block {
        Block::paragraph(
            t,
            Location {
                paragraph: Some(n),
                ..Default::default()
            },
        )
    }

    #[test]
    fn headings_make_paths_and_boundaries() {
        let blocks = vec![
            Block {
                kind: BlockKind::Heading(1),
                text: "员工手册".into(),
                location: Location::default(),
            },
            Block {
                kind: BlockKind::Heading(2),
                text: "请假".into(),
                location: Location::default(),
            },
            para("年假每年十天。", 1),
            Block {
                kind: BlockKind::Heading(2),
                text: "报销".into(),
                location: Location::default(),
            },
            para("差旅费用凭发票报销。", 2),
        ];
        let c = chunk_blocks(&blocks, ChunkConfig::default());
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].heading_path, vec!["员工手册", "请假"]);
        assert_eq!(c[1].heading_path, vec!["员工手册", "报销"]);
        assert_eq!(c[1].location.paragraph, Some(2));
    }

    #[test]
    fn long_text_respects_max_and_keeps_numbers() {
        let s = "报销金额为12345.67元，需附发票。".repeat(60);
        let cfg = ChunkConfig {
            target_chars: 100,
            max_chars: 120,
            overlap_chars: 20,
        };
        let c = chunk_blocks(&[para(&s, 1)], cfg);
        assert!(c.len() > 5);
        for ch in &c {
            assert!(
                ch.text.chars().count() <= 120,
                "{}",
                ch.text.chars().count()
            );
            assert!(
                ch.text.contains("12345.67") || !ch.text.contains("2345"),
                "{}",
                ch.text
            );
        }
    }

    #[test]
    fn table_rows_repeat_header() {
        let header = "| 分公司 | 简称 |\n| --- | --- |".to_string();
        let rows: Vec<Block> = (0..50)
            .map(|i| Block {
                kind: BlockKind::TableRow {
                    header: header.clone(),
                },
                text: format!("| 杭州分公司{i} | 杭分{i} |"),
                location: Location {
                    row: Some(i + 2),
                    ..Default::default()
                },
            })
            .collect();
        let c = chunk_blocks(&rows, ChunkConfig::default());
        assert!(c.len() > 1);
        assert!(c.iter().all(|ch| ch.text.starts_with(&header)));
        assert_eq!(c[0].location.row, Some(2));
    }
}
