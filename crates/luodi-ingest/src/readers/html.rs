//! HTML: boilerplate (scripts, navigation, headers, footers, forms) stripped, headings and
//! paragraphs kept, tables kept as Markdown tables.

use ego_tree::NodeRef;
use luodi_core::Location;
use scraper::{ElementRef, Html, Node, Selector};

use crate::readers::{decode_text, ReadOutput};
use crate::{Block, BlockKind, Extracted, ReadError};

const SKIP: &[&str] = &[
    "script", "style", "noscript", "nav", "header", "footer", "aside", "form", "button", "select",
    "iframe", "svg", "template", "head", "menu",
];
const BLOCK: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "pre",
    "blockquote",
    "figure",
    "figcaption",
    "address",
    "body",
    "center",
    "hr",
];

struct Walker {
    blocks: Vec<Block>,
    buf: String,
    n: u32,
}

impl Walker {
    fn flush(&mut self) {
        let t = self.buf.trim();
        if !t.is_empty() {
            self.n += 1;
            self.blocks.push(Block::paragraph(
                t,
                Location {
                    paragraph: Some(self.n),
                    ..Default::default()
                },
            ));
        }
        self.buf.clear();
    }

    fn walk(&mut self, node: NodeRef<'_, Node>) {
        for child in node.children() {
            match child.value() {
                Node::Text(t) => {
                    let s = collapse(t);
                    if !s.trim().is_empty() || (!self.buf.is_empty() && !s.is_empty()) {
                        self.buf.push_str(&s);
                    }
                }
                Node::Element(e) => {
                    let name = e.name();
                    let el = match ElementRef::wrap(child) {
                        Some(el) => el,
                        None => continue,
                    };
                    if SKIP.contains(&name) || is_boilerplate(e) {
                        continue;
                    }
                    if let Some(level) = name
                        .strip_prefix('h')
                        .and_then(|d| d.parse::<u8>().ok())
                        .filter(|l| (1..=6).contains(l))
                    {
                        self.flush();
                        let text = element_text(el);
                        if !text.is_empty() {
                            self.blocks.push(Block {
                                kind: BlockKind::Heading(level),
                                text,
                                location: Location::default(),
                            });
                        }
                    } else if name == "table" {
                        self.flush();
                        self.n += 1;
                        table_blocks(el, self.n, &mut self.blocks);
                    } else if name == "br" {
                        self.buf.push('\n');
                    } else if BLOCK.contains(&name) {
                        self.flush();
                        self.walk(child);
                        self.flush();
                    } else {
                        self.walk(child);
                    }
                }
                _ => {}
            }
        }
    }
}

fn is_boilerplate(e: &scraper::node::Element) -> bool {
    let marks = [
        "nav",
        "menu",
        "footer",
        "header",
        "breadcrumb",
        "sidebar",
        "copyright",
        "cookie",
    ];
    let check = |v: Option<&str>| {
        v.is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| marks.contains(&w))
        })
    };
    check(e.attr("id"))
        || check(e.attr("class"))
        || e.attr("role").is_some_and(|r| r == "navigation")
}

fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    out
}

fn element_text(el: ElementRef<'_>) -> String {
    collapse(&el.text().collect::<String>()).trim().to_owned()
}

fn cell_text(el: ElementRef<'_>) -> String {
    element_text(el).replace('|', "\\|")
}

fn table_blocks(table: ElementRef<'_>, n: u32, blocks: &mut Vec<Block>) {
    let (Ok(tr), Ok(cell)) = (Selector::parse("tr"), Selector::parse("th, td")) else {
        return;
    };
    let rows: Vec<Vec<String>> = table
        .select(&tr)
        .map(|r| r.select(&cell).map(cell_text).collect::<Vec<_>>())
        .filter(|r: &Vec<String>| r.iter().any(|c| !c.is_empty()))
        .collect();
    let Some((head, body)) = rows.split_first() else {
        return;
    };
    let header = format!(
        "| {} |\n|{}",
        head.join(" | "),
        " --- |".repeat(head.len().max(1))
    );
    if body.is_empty() {
        blocks.push(Block::paragraph(
            head.join(" "),
            Location {
                paragraph: Some(n),
                ..Default::default()
            },
        ));
    }
    for (i, r) in body.iter().enumerate() {
        blocks.push(Block {
            kind: BlockKind::TableRow {
                header: header.clone(),
            },
            text: format!("| {} |", r.join(" | ")),
            location: Location {
                paragraph: Some(n),
                row: Some(i as u32 + 2),
                ..Default::default()
            },
        });
    }
}

pub(crate) fn read(bytes: &[u8]) -> Result<ReadOutput, ReadError> {
    let (text, enc) = decode_text(bytes)?;
    let doc = Html::parse_document(&text);
    let title = Selector::parse("title")
        .ok()
        .and_then(|s| doc.select(&s).next().map(element_text))
        .filter(|t| !t.is_empty());
    let mut w = Walker {
        blocks: Vec::new(),
        buf: String::new(),
        n: 0,
    };
    let root = Selector::parse("body")
        .ok()
        .and_then(|s| doc.select(&s).next())
        .map(|b| *b)
        .unwrap_or_else(|| doc.tree.root());
    w.walk(root);
    w.flush();
    let title = title.or_else(|| {
        w.blocks
            .iter()
            .find(|b| matches!(b.kind, BlockKind::Heading(_)))
            .map(|b| b.text.clone())
    });
    Ok(ReadOutput {
        documents: vec![Extracted {
            title,
            blocks: w.blocks,
            ..Default::default()
        }],
        warnings: Vec::new(),
        encoding: Some(enc),
    })
}
