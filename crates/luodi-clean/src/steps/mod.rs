//! Every step a recipe may name, with its parameters, documented for `luodi clean
//! --list-steps`, and built from the recipe's table by [`build`].

pub mod chunk;
pub mod dedup;
pub mod quality;
pub mod text;

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::Step;

/// Where an FNV-1a hash starts.
pub(crate) const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, continued from `h` over `values` (bytes or characters).
pub(crate) fn fnv1a(mut h: u64, values: impl IntoIterator<Item = u64>) -> u64 {
    for v in values {
        h = (h ^ v).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A parameter as documented.
pub struct ParamDoc {
    pub name: &'static str,
    pub kind: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// A step as documented.
pub struct StepDoc {
    pub name: &'static str,
    /// `document` (one at a time, in parallel) or `corpus` (whole batches, with state).
    pub kind: &'static str,
    pub help: &'static str,
    pub params: &'static [ParamDoc],
}

macro_rules! p {
    ($name:expr, $kind:expr, $default:expr, $help:expr) => {
        ParamDoc {
            name: $name,
            kind: $kind,
            default: $default,
            help: $help,
        }
    };
}

/// Every step, in the order a recipe usually lists them.
pub const STEPS: &[StepDoc] = &[
    StepDoc {
        name: "repair",
        kind: "document",
        help: "Encoding repair: text that is UTF-8, GBK or Big5 read as Latin-1/Windows-1252 (mojibake) is turned back; replacement characters (U+FFFD) from undecodable bytes are counted.",
        params: &[
            p!("mojibake", "\"repair\" | \"flag\" | \"drop\"", "\"repair\"", "what to do with mojibake: fix it (dropped when it cannot be fixed), keep it and note it, or drop the document"),
            p!("max_replacement_ratio", "float", "0.01", "drop documents where more than this share of characters are U+FFFD"),
        ],
    },
    StepDoc {
        name: "normalize",
        kind: "document",
        help: "Unicode and width normalization: full-width letters and digits to half width (Chinese punctuation kept), control and zero-width characters removed, line ends and spaces tidied, at most one blank line between paragraphs.",
        params: &[
            p!("nfkc", "bool", "false", "also apply Unicode NFKC (compatibility forms: ①→1, ㎡→m2)"),
        ],
    },
    StepDoc {
        name: "script",
        kind: "document",
        help: "繁简 conversion with phrase-level dictionaries (OpenCC).",
        params: &[
            p!("to", "\"simplified\" | \"traditional\" | \"keep\"", "\"simplified\"", "target script"),
            p!("variant", "\"tw\" | \"hk\" | \"standard\"", "\"tw\"", "regional variant when converting to traditional"),
        ],
    },
    StepDoc {
        name: "language",
        kind: "document",
        help: "Script/language detection with a filter: zh-hans, zh-hant (both \"zh\"), latin (\"en\"), unknown.",
        params: &[
            p!("keep", "list of strings", "[\"zh\", \"en\"]", "kept: zh, zh-hans, zh-hant, en (Latin script), unknown"),
        ],
    },
    StepDoc {
        name: "quality",
        kind: "document",
        help: "Quality filters: length, share of content characters (Han, letters, digits), share of symbols, repeated lines, repeated character n-grams, control characters.",
        params: &[
            p!("min_chars", "integer", "10", "fewer non-space characters: too_short"),
            p!("max_chars", "integer", "1000000", "more: too_long"),
            p!("min_content_ratio", "float", "0.5", "Han + letters + digits over non-space characters, below: low_content"),
            p!("max_symbol_ratio", "float", "0.25", "symbols other than punctuation (#, *, |, …) over non-space characters, above: symbols"),
            p!("max_repeated_lines", "float", "0.3", "share of characters in lines that occur earlier in the document, above: repeated_lines"),
            p!("max_repeated_ngrams", "float", "0.3", "share of character 10-grams that occur earlier in the document, above: repeated_ngrams"),
            p!("max_control_chars", "integer", "0", "control characters (other than newline and tab), above: control_chars"),
        ],
    },
    StepDoc {
        name: "boilerplate",
        kind: "corpus",
        help: "Removes lines seen in many documents (navigation, footers, disclaimers) from the documents that follow; a document left with nothing is dropped.",
        params: &[
            p!("min_docs", "integer", "20", "a line is boilerplate once this many documents held it"),
            p!("min_line_chars", "integer", "4", "shorter lines are left alone"),
            p!("max_lines_tracked", "integer", "2000000", "lines counted at most (memory bound)"),
        ],
    },
    StepDoc {
        name: "exact_dedup",
        kind: "corpus",
        help: "Exact duplicates by content hash (of the text folded: width, case, 繁简, whitespace), against everything kept before — in this run and earlier runs sharing the state folder. The hashes are on disk with an index that keeps memory bounded.",
        params: &[
            p!("filter_mb", "integer", "64", "memory for the index's Bloom filters; once spent, further index segments are read from disk on each lookup (slower, never more memory)"),
        ],
    },
    StepDoc {
        name: "near_dedup",
        kind: "corpus",
        help: "Near duplicates by MinHash-LSH over shingles of the folded text (punctuation and spaces left out), verified by the estimated Jaccard; one representative per cluster is kept (the first seen), against everything kept before — in this run and earlier runs sharing the state folder.",
        params: &[
            p!("shingle", "\"char\" | \"word\"", "\"char\"", "shingles of characters or of jieba words"),
            p!("n", "integer", "5", "shingle length (characters or words)"),
            p!("bands", "integer", "25", "LSH bands"),
            p!("rows", "integer", "5", "rows per band (bands × rows MinHash values)"),
            p!("threshold", "float", "0.6", "estimated Jaccard at or above which a candidate is a duplicate"),
            p!("digits", "\"keep\" | \"zero\"", "\"keep\"", "zero: every digit reads as 0, so texts that differ only in numbers are duplicates"),
            p!("filter_mb", "integer", "256", "memory for the LSH index's Bloom filters (about 30 bytes per kept document); once spent, further index segments are read from disk on each lookup (slower, never more memory)"),
        ],
    },
    StepDoc {
        name: "chunk",
        kind: "document",
        help: "Sentence/paragraph chunking (the knowledge-base chunker: ~target characters, never past max, cut at sentence ends, overlapping whole sentences); chunks are written with the document.",
        params: &[
            p!("target_chars", "integer", "300", "aimed chunk size"),
            p!("max_chars", "integer", "400", "hard limit"),
            p!("overlap_chars", "integer", "60", "overlap of consecutive chunks, in whole sentences"),
        ],
    },
    StepDoc {
        name: "tokens",
        kind: "document",
        help: "Token counts written with the document.",
        params: &[
            p!("tokenizer", "\"chars\" | \"jieba\"", "\"chars\"", "chars: Han characters + Latin words + numbers; jieba: jieba words"),
        ],
    },
];

/// Where a step's parameters came from, for error messages.
pub struct Ctx<'a> {
    /// `step 3 (quality)`.
    pub label: String,
    /// The persisted state folder (duplicate stores).
    pub state: &'a Path,
}

/// Deserializes a step's parameter table; an error names the parameter.
pub fn params<T: DeserializeOwned>(table: &toml::Table) -> std::result::Result<T, String> {
    toml::Value::Table(table.clone())
        .try_into::<T>()
        .map_err(|e| e.to_string().trim().replace('\n', " "))
}

/// Builds a step from its name and parameters.
pub fn build(name: &str, table: &toml::Table, ctx: &Ctx<'_>) -> std::result::Result<Step, String> {
    Ok(match name {
        "repair" => Step::Doc(Box::new(text::Repair::new(params(table)?)?)),
        "normalize" => Step::Doc(Box::new(text::Normalize::new(params(table)?))),
        "script" => Step::Doc(Box::new(text::ScriptStep::new(params(table)?)?)),
        "language" => Step::Doc(Box::new(text::Language::new(params(table)?)?)),
        "quality" => Step::Doc(Box::new(quality::Quality::new(params(table)?)?)),
        "boilerplate" => Step::Corpus(Box::new(quality::Boilerplate::new(params(table)?)?)),
        "exact_dedup" => Step::Corpus(Box::new(dedup::ExactDedup::new(params(table)?, ctx.state)?)),
        "near_dedup" => Step::Corpus(Box::new(dedup::NearDedup::new(params(table)?, ctx.state)?)),
        "chunk" => Step::Doc(Box::new(chunk::ChunkStep::new(params(table)?)?)),
        "tokens" => Step::Doc(Box::new(chunk::Tokens::new(params(table)?)?)),
        other => {
            let known: Vec<&str> = STEPS.iter().map(|s| s.name).collect();
            return Err(format!(
                "unknown step {other:?} (steps: {})",
                known.join(", ")
            ));
        }
    })
}

/// The text `luodi clean --list-steps` prints.
pub fn describe() -> String {
    let mut s = String::new();
    for st in STEPS {
        s.push_str(&format!("{} ({} step)\n  {}\n", st.name, st.kind, st.help));
        for p in st.params {
            s.push_str(&format!(
                "    {} = {}   (default {})\n        {}\n",
                p.name, p.kind, p.default, p.help
            ));
        }
        s.push('\n');
    }
    s
}
