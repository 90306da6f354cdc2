//! Script detection (简体 / 繁體 / Latin) and 繁↔简 conversion.
//!
//! Conversion goes through OpenCC's phrase-level dictionaries (ferrous-opencc, pure Rust), not
//! character tables: 資料庫 becomes 数据库 and 数据库 becomes 資料庫, the words a reader of
//! each script actually uses. Converters are built once per process and shared.

use std::sync::OnceLock;

use ferrous_opencc::config::BuiltinConfig;
use ferrous_opencc::OpenCC;

/// The writing system a text is mostly in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Script {
    /// 简体中文, or Chinese that reads the same in both scripts.
    Simplified,
    /// 繁體中文.
    Traditional,
    /// Mostly Latin letters (English and the like).
    Latin,
    /// Nothing to judge by (digits, punctuation, empty).
    Unknown,
}

impl Script {
    pub fn as_str(self) -> &'static str {
        match self {
            Script::Simplified => "zh-hans",
            Script::Traditional => "zh-hant",
            Script::Latin => "latin",
            Script::Unknown => "unknown",
        }
    }
}

/// Regional variant for conversion to traditional characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// Taiwan standard with Taiwanese phrases (数据库 → 資料庫).
    #[default]
    Taiwan,
    /// Hong Kong standard.
    HongKong,
    /// OpenCC's standard traditional characters, no regional phrases.
    Standard,
}

fn converter(
    slot: &'static OnceLock<Option<OpenCC>>,
    cfg: BuiltinConfig,
) -> Option<&'static OpenCC> {
    slot.get_or_init(|| OpenCC::from_config(cfg).ok()).as_ref()
}

static TW2SP: OnceLock<Option<OpenCC>> = OnceLock::new();
static T2S: OnceLock<Option<OpenCC>> = OnceLock::new();
static S2T: OnceLock<Option<OpenCC>> = OnceLock::new();
static S2TWP: OnceLock<Option<OpenCC>> = OnceLock::new();
static S2HK: OnceLock<Option<OpenCC>> = OnceLock::new();

fn convert(slot: &'static OnceLock<Option<OpenCC>>, cfg: BuiltinConfig, text: &str) -> String {
    match converter(slot, cfg) {
        Some(cc) => cc.convert(text),
        // The dictionaries are compiled into the binary; a failure here means a broken build,
        // and returning the text unchanged keeps every caller working.
        None => text.to_owned(),
    }
}

fn has_cjk(text: &str) -> bool {
    text.chars().any(crate::encoding::is_han)
}

/// Converts to simplified Chinese with phrase-level dictionaries (Taiwan and Hong Kong
/// phrases included: 資料庫 → 数据库, 軟體 → 软件).
pub fn to_simplified(text: &str) -> String {
    convert_clauses(text, tw2sp)
}

/// Simplified characters the Taiwan chain would change all the same: its variant table reads
/// 么 as Taiwan's spelling of 幺, but 么 is the simplified form of 麼 — converting 简体 text
/// (or a 简体 clause with one stray 繁體 character) would turn 什么 into 什幺. They are
/// left as they are (`keep_list_is_what_the_dictionaries_imply` recomputes the list).
const KEEP: &[char] = &['么'];

/// OpenCC's Taiwan-phrase chain to simplified, leaving [`KEEP`] characters alone.
fn tw2sp(text: &str) -> String {
    if !text.contains(KEEP) {
        return convert(&TW2SP, BuiltinConfig::Tw2sp, text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(KEEP) {
        out.push_str(&convert(&TW2SP, BuiltinConfig::Tw2sp, &rest[..i]));
        let c = rest[i..].chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[i + c.len_utf8()..];
    }
    out.push_str(&convert(&TW2SP, BuiltinConfig::Tw2sp, rest));
    out
}

/// `text` with `simplify` applied only to the runs of clauses holding a character a
/// traditional→simplified dictionary changes. Most text has none, which a bitset tells ~50×
/// cheaper than running the dictionaries; mostly simplified text often holds a stray one
/// (著, 乾), and OpenCC's phrases never span Chinese punctuation or line ends.
fn convert_clauses(text: &str, simplify: impl Fn(&str) -> String) -> String {
    if !has_traditional(text) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut pending = 0..0;
    let mut pos = 0;
    for clause in text.split_inclusive(is_clause_end) {
        let end = pos + clause.len();
        if has_traditional(clause) {
            if pending.is_empty() {
                pending = pos..end;
            } else {
                pending.end = end;
            }
        } else {
            if !pending.is_empty() {
                out.push_str(&simplify(&text[pending.clone()]));
                pending = 0..0;
            }
            out.push_str(clause);
        }
        pos = end;
    }
    if !pending.is_empty() {
        out.push_str(&simplify(&text[pending]));
    }
    out
}

/// Converts to traditional Chinese of the given regional variant.
pub fn to_traditional(text: &str, variant: Variant) -> String {
    if !has_cjk(text) {
        return text.to_owned();
    }
    match variant {
        Variant::Taiwan => convert(&S2TWP, BuiltinConfig::S2twp, text),
        Variant::HongKong => convert(&S2HK, BuiltinConfig::S2hk, text),
        Variant::Standard => convert(&S2T, BuiltinConfig::S2t, text),
    }
}

/// Folding used for search keys, applied the same way to documents and queries so 繁 and 简
/// spellings meet: OpenCC's Taiwan-phrase chain (軟體 → 软件, 資料庫 → 数据库), then a few
/// simplified variants that OpenCC keeps apart but people use interchangeably (帐号/账号).
///
/// OpenCC's chains are not idempotent for a few characters (薴 → 苧 → 苎), so the fold runs to
/// a fixed point: a key folds to itself, and every spelling of a character meets.
pub(crate) fn fold_to_simplified(text: &str) -> String {
    fold_variants(convert_clauses(text, simplify_to_fixed_point))
}

fn is_clause_end(c: char) -> bool {
    matches!(
        c,
        '。' | '，' | '、' | '；' | '：' | '！' | '？' | '\n' | ' ' | ',' | ';' | '.' | '!' | '?'
    )
}

fn simplify_to_fixed_point(text: &str) -> String {
    let mut cur = tw2sp(text);
    for _ in 0..3 {
        if !has_traditional(&cur) {
            break;
        }
        let next = tw2sp(&cur);
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

fn fold_variants(s: String) -> String {
    if s.contains('帐') {
        s.replace('帐', "账")
    } else {
        s
    }
}

const HAN_LIMIT: u32 = 0x3_0000;

/// Characters that the traditional→simplified chain changes on their own ([`KEEP`] aside).
fn traditional_chars() -> &'static [u64] {
    static SET: OnceLock<Vec<u64>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut bits = changed_chars(&[(&T2S, BuiltinConfig::T2s), (&TW2SP, BuiltinConfig::Tw2sp)]);
        for &c in KEEP {
            let cp = c as u32;
            bits[(cp / 64) as usize] &= !(1 << (cp % 64));
        }
        bits
    })
}

/// Characters that the simplified→traditional chain changes on their own.
fn simplified_chars() -> &'static [u64] {
    static SET: OnceLock<Vec<u64>> = OnceLock::new();
    SET.get_or_init(|| changed_chars(&[(&S2T, BuiltinConfig::S2t)]))
}

/// The Han characters that any of `chains` changes, as a bitset.
fn changed_chars(chains: &[(&'static OnceLock<Option<OpenCC>>, BuiltinConfig)]) -> Vec<u64> {
    {
        let mut bits = vec![0u64; (HAN_LIMIT as usize).div_ceil(64)];
        let ranges = [
            0x3400..=0x4DBF,
            0x4E00..=0x9FFF,
            0xF900..=0xFAFF,
            0x20000..=0x2A6DF,
        ];
        // convert all candidates in one pass per chain: one character per line
        let mut chars = Vec::new();
        let mut input = String::new();
        for r in ranges {
            for cp in r {
                if let Some(c) = char::from_u32(cp) {
                    chars.push(c);
                    input.push(c);
                    input.push('\n');
                }
            }
        }
        for (slot, cfg) in chains.iter().copied() {
            let out = convert(slot, cfg, &input);
            for (c, line) in chars.iter().zip(out.split('\n')) {
                let mut it = line.chars();
                if it.next() != Some(*c) || it.next().is_some() {
                    let cp = *c as u32;
                    bits[(cp / 64) as usize] |= 1 << (cp % 64);
                }
            }
        }
        bits
    }
}

/// True when `text` holds a character that conversion to simplified would change.
pub fn has_traditional(text: &str) -> bool {
    let bits = traditional_chars();
    text.chars().any(|c| {
        let cp = c as u32;
        (0x3400..HAN_LIMIT).contains(&cp) && bits[(cp / 64) as usize] & (1 << (cp % 64)) != 0
    })
}

/// Detects the script of a text from (at most) its first 4,000 characters: Han characters
/// that only traditional text uses against those only simplified text uses (two bitsets
/// built once from OpenCC's dictionaries, so detection reads each character once).
pub fn detect_script(text: &str) -> Script {
    let trad = traditional_chars();
    let simp = simplified_chars();
    let (mut han, mut latin, mut trad_only, mut simp_only) = (0usize, 0usize, 0usize, 0usize);
    for c in text.chars().take(4000) {
        if c.is_ascii_alphabetic() {
            latin += 1;
            continue;
        }
        if !crate::encoding::is_han(c) {
            continue;
        }
        han += 1;
        let cp = c as u32;
        if cp >= HAN_LIMIT {
            continue;
        }
        let bit = |set: &[u64]| set[(cp / 64) as usize] & (1 << (cp % 64)) != 0;
        match (bit(trad), bit(simp)) {
            (true, false) => trad_only += 1,
            (false, true) => simp_only += 1,
            _ => {}
        }
    }
    if han == 0 || latin > han * 4 {
        return if latin > 0 {
            Script::Latin
        } else {
            Script::Unknown
        };
    }
    if trad_only > simp_only {
        Script::Traditional
    } else {
        Script::Simplified
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrase_level_conversion() {
        assert_eq!(to_simplified("資料庫"), "数据库");
        assert_eq!(to_traditional("数据库", Variant::Taiwan), "資料庫");
        assert_eq!(to_simplified("軟體"), "软件");
    }

    #[test]
    fn simplified_text_stays_as_it_is() {
        for s in ["这是什么", "为什么要推动直饮？", "怎么办", "多么好", "著作"]
        {
            assert_eq!(to_simplified(s), s);
        }
        // a stray 繁體 character converts, its clause's 么 stays
        assert_eq!(
            to_simplified("先從公共場所著手，为什么"),
            "先从公共场所着手，为什么"
        );
        assert_eq!(to_simplified("這是什麼？怎麼辦"), "这是什么？怎么办");
        assert_eq!(fold_to_simplified("甚麼"), "甚么");
        assert!(!has_traditional("什么"));
    }

    /// [`KEEP`] is every character that standard simplification produces (for another
    /// character) and the Taiwan chain would still change (苧, which plain T2S also changes,
    /// is a step of a chain, not a simplified form).
    #[test]
    fn keep_list_is_what_the_dictionaries_imply() {
        let mut chars = Vec::new();
        for r in [0x3400u32..=0x4DBF, 0x4E00..=0x9FFF, 0xF900..=0xFAFF] {
            chars.extend(r.filter_map(char::from_u32));
        }
        let input: String = chars.iter().flat_map(|c| [*c, '\n']).collect();
        let t2s = convert(&T2S, BuiltinConfig::T2s, &input);
        let tw = convert(&TW2SP, BuiltinConfig::Tw2sp, &input);
        let t2s: Vec<&str> = t2s.split('\n').collect();
        let tw: Vec<&str> = tw.split('\n').collect();
        let mut image = std::collections::HashSet::new();
        for (c, out) in chars.iter().zip(&t2s) {
            if *out != c.to_string() {
                image.insert(*out);
            }
        }
        let implied: Vec<char> = chars
            .iter()
            .zip(tw.iter().zip(&t2s))
            .filter(|(c, (w, s))| {
                let c = c.to_string();
                **w != c && **s == c && image.contains(c.as_str())
            })
            .map(|(c, _)| *c)
            .collect();
        assert_eq!(implied, KEEP);
    }

    #[test]
    fn detects_scripts() {
        assert_eq!(
            detect_script("员工请假须提前三个工作日提交申请"),
            Script::Simplified
        );
        assert_eq!(
            detect_script("員工請假須提前三個工作日提交申請"),
            Script::Traditional
        );
        assert_eq!(detect_script("How do I reset my password?"), Script::Latin);
        assert_eq!(detect_script("2024-01-01"), Script::Unknown);
    }
}
