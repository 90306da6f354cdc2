//! Encoding detection and decoding: UTF-8 (with or without BOM), UTF-16 (BOM or heuristics),
//! GBK/GB18030 and Big5, with mojibake reported instead of silently passed on.
//!
//! Strategy: a BOM wins; then strict UTF-8; then UTF-16 by the pattern of zero bytes; then
//! chardetng's guess among the legacy encodings (GB18030 is a superset of GBK, so GBK input
//! decodes through it). A decode that had to replace bytes, or whose result looks like text
//! decoded with the wrong table, is flagged so the caller can report the file.

use encoding_rs::{Encoding, BIG5, GB18030, UTF_16BE, UTF_16LE, UTF_8};

/// What the decoder saw wrong with the text, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mojibake {
    /// Byte sequences that were invalid in the detected encoding; they became U+FFFD.
    InvalidBytes { replaced: usize },
    /// The text looks like UTF-8 read as Latin-1/CP1252 (e.g. `Ã©`, `å…¬`).
    Utf8AsLatin1 { suspicious: usize },
    /// Mostly Latin-1 supplement characters in a text that should be CJK (GBK read as Latin-1).
    LegacyAsLatin1 { suspicious: usize },
}

impl std::fmt::Display for Mojibake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mojibake::InvalidBytes { replaced } => {
                write!(
                    f,
                    "{replaced} invalid byte sequence(s) replaced with U+FFFD"
                )
            }
            Mojibake::Utf8AsLatin1 { suspicious } => write!(
                f,
                "looks like UTF-8 decoded as Latin-1 ({suspicious} suspicious sequences)"
            ),
            Mojibake::LegacyAsLatin1 { suspicious } => write!(
                f,
                "looks like GBK/Big5 decoded as Latin-1 ({suspicious} suspicious characters)"
            ),
        }
    }
}

/// A decoded text and how it was decoded.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub text: String,
    /// Canonical name of the encoding used (`UTF-8`, `UTF-16LE`, `gb18030`, `Big5`, …).
    pub encoding: &'static str,
    pub had_bom: bool,
    /// Set when the text is damaged; the text is still returned so a caller may keep it.
    pub mojibake: Option<Mojibake>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("binary content (NUL bytes outside UTF-16), not text")]
    Binary,
}

/// Decodes bytes of unknown encoding.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        return Ok(finish(enc, &bytes[bom_len..], true));
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        if s.contains('\0') {
            return match guess_utf16(bytes) {
                Some(enc) => Ok(finish(enc, bytes, false)),
                None => Err(DecodeError::Binary),
            };
        }
        return Ok(Decoded {
            mojibake: detect_mojibake(s),
            text: s.to_owned(),
            encoding: UTF_8.name(),
            had_bom: false,
        });
    }
    if let Some(enc) = guess_utf16(bytes) {
        return Ok(finish(enc, bytes, false));
    }
    if bytes.iter().take(8192).filter(|&&b| b == 0).count() > 0 {
        return Err(DecodeError::Binary);
    }
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(bytes, true);
    let guess = det.guess(None, chardetng::Utf8Detection::Deny);
    // Chinese first: decide between GB18030 (a superset of GBK) and Big5 by which one decodes
    // without errors into ordinary text; chardetng's guess breaks ties.
    let mut best: Option<(&'static Encoding, (usize, f64))> = None;
    for enc in [GB18030, BIG5] {
        let (text, had_errors) = enc.decode_without_bom_handling(bytes);
        let errors = if had_errors {
            text.matches('\u{FFFD}').count().max(1)
        } else {
            0
        };
        let score = (
            errors,
            -plausibility(&text) - if enc == guess { 1e-6 } else { 0.0 },
        );
        if best.is_none_or(|(_, b)| score.0 < b.0 || (score.0 == b.0 && score.1 < b.1)) {
            best = Some((enc, score));
        }
    }
    let enc = match best {
        Some((e, _)) => e,
        None => guess,
    };
    Ok(finish(enc, bytes, false))
}

fn finish(enc: &'static Encoding, bytes: &[u8], had_bom: bool) -> Decoded {
    let (text, _) = enc.decode_without_bom_handling(bytes);
    let replaced = text.matches('\u{FFFD}').count();
    let text = text.into_owned();
    let mojibake = if replaced > 0 {
        Some(Mojibake::InvalidBytes { replaced })
    } else {
        detect_mojibake(&text)
    };
    Decoded {
        text,
        encoding: enc.name(),
        had_bom,
        mojibake,
    }
}

fn guess_utf16(bytes: &[u8]) -> Option<&'static Encoding> {
    if bytes.len() < 4 || !bytes.len().is_multiple_of(2) {
        return None;
    }
    let sample = &bytes[..bytes.len().min(4096)];
    let pairs = sample.len() / 2;
    let even_zero = sample.chunks_exact(2).filter(|p| p[0] == 0).count();
    let odd_zero = sample.chunks_exact(2).filter(|p| p[1] == 0).count();
    // ASCII-heavy UTF-16 has a zero in one half of most pairs.
    if odd_zero * 10 > pairs * 3 && even_zero * 20 < pairs {
        return Some(UTF_16LE);
    }
    if even_zero * 10 > pairs * 3 && odd_zero * 20 < pairs {
        return Some(UTF_16BE);
    }
    // CJK-heavy UTF-16 has no zeros: accept when strict decoding succeeds and yields CJK, and
    // the bytes are not valid GB18030 (which would otherwise read them as legitimate text).
    if sample.len() < 16 || !GB18030.decode_without_bom_handling(sample).1 {
        return None;
    }
    for enc in [UTF_16LE, UTF_16BE] {
        let (text, had_errors) = enc.decode_without_bom_handling(sample);
        if !had_errors {
            let total = text.chars().count().max(1);
            let cjk = text.chars().filter(|c| is_han(*c)).count();
            if cjk * 10 > total * 6 {
                return Some(enc);
            }
        }
    }
    None
}

/// Share of characters that ordinary Chinese or English text is made of (ASCII, common Han,
/// CJK punctuation, full-width forms); text decoded with the wrong table scores low.
fn plausibility(text: &str) -> f64 {
    let mut total = 0usize;
    let mut ok = 0usize;
    for c in text.chars() {
        total += 1;
        if c.is_ascii()
            || matches!(c as u32, 0x4E00..=0x9FFF | 0x3000..=0x303F | 0xFF01..=0xFF5E | 0x2018..=0x201D)
        {
            ok += 1;
        }
    }
    if total == 0 {
        1.0
    } else {
        ok as f64 / total as f64
    }
}

/// A Han (CJK unified or compatibility) ideograph.
pub fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Flags text that decoded without errors but is probably garbled.
pub fn detect_mojibake(text: &str) -> Option<Mojibake> {
    let mut latin1_sup = 0usize;
    let mut utf8_pairs = 0usize;
    let mut letters = 0usize;
    let mut prev: Option<char> = None;
    for c in text.chars() {
        if c.is_alphanumeric() || ('\u{80}'..='\u{FF}').contains(&c) {
            letters += 1;
        }
        if ('\u{80}'..='\u{FF}').contains(&c) {
            latin1_sup += 1;
        }
        // UTF-8 lead byte (Ã Â å æ ç è é ä) read as a char followed by a continuation byte
        if let Some(p) = prev {
            if matches!(p, 'Ã' | 'Â' | 'â' | 'ä' | 'å' | 'æ' | 'ç' | 'è' | 'é')
                && (('\u{80}'..='\u{BF}').contains(&c) || "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ".contains(c))
            {
                utf8_pairs += 1;
            }
        }
        prev = Some(c);
    }
    if utf8_pairs >= 3 && utf8_pairs * 20 >= latin1_sup {
        return Some(Mojibake::Utf8AsLatin1 {
            suspicious: utf8_pairs,
        });
    }
    if letters >= 20 && latin1_sup * 10 > letters * 3 {
        return Some(Mojibake::LegacyAsLatin1 {
            suspicious: latin1_sup,
        });
    }
    None
}

/// Undoes the usual mojibake: text whose bytes were UTF-8 (or GBK/GB18030, or Big5) but were
/// read as Windows-1252/Latin-1. The characters are turned back into those bytes and decoded
/// with each candidate encoding; the first decoding that is clean (no invalid bytes, no
/// mojibake left) and holds more Han characters than the garbled text wins. `None` when the
/// text is not mojibake or no candidate repairs it.
pub fn repair_mojibake(text: &str) -> Option<(String, &'static str)> {
    detect_mojibake(text)?;
    // back to the bytes: Windows-1252 for its 0x80–0x9F printable characters, Latin-1 else
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        match c as u32 {
            0..=0xFF => bytes.push(c as u32 as u8),
            _ => {
                let mut buf = [0u8; 4];
                let (b, _, unmappable) = encoding_rs::WINDOWS_1252.encode(c.encode_utf8(&mut buf));
                if unmappable || b.len() != 1 {
                    return None;
                }
                bytes.push(b[0]);
            }
        }
    }
    let han_before = text.chars().filter(|c| is_han(*c)).count();
    for enc in [UTF_8, GB18030, BIG5] {
        let (fixed, had_errors) = enc.decode_without_bom_handling(&bytes);
        if had_errors || detect_mojibake(&fixed).is_some() {
            continue;
        }
        if fixed.chars().filter(|c| is_han(*c)).count() > han_before {
            return Some((fixed.into_owned(), enc.name()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mojibake_is_repaired() {
        let (garbled, _, _) = encoding_rs::WINDOWS_1252.decode(ZH.as_bytes());
        assert_eq!(repair_mojibake(&garbled), Some((ZH.to_owned(), "UTF-8")));
        let (gbk, _, _) = encoding_rs::GBK.encode(ZH);
        let garbled: String = gbk.iter().map(|b| *b as char).collect();
        assert_eq!(
            repair_mojibake(&garbled).map(|(t, _)| t),
            Some(ZH.to_owned())
        );
        assert_eq!(repair_mojibake(ZH), None);
        assert_eq!(repair_mojibake("café au lait, naïve résumé"), None);
    }

    const ZH: &str = "杭州分公司员工请假须提前三个工作日提交申请，经部门经理审批。";
    const ZH_T: &str = "杭州分公司員工請假須提前三個工作日提交申請，經部門經理審批。";

    #[test]
    fn utf8_with_and_without_bom() {
        let d = decode(ZH.as_bytes()).unwrap();
        assert_eq!(
            (d.text.as_str(), d.encoding, d.had_bom),
            (ZH, "UTF-8", false)
        );
        let mut b = vec![0xEF, 0xBB, 0xBF];
        b.extend_from_slice(ZH.as_bytes());
        let d = decode(&b).unwrap();
        assert_eq!((d.text.as_str(), d.had_bom), (ZH, true));
    }

    #[test]
    fn gbk_and_big5() {
        let (gbk, _, _) = encoding_rs::GBK.encode(ZH);
        let d = decode(&gbk).unwrap();
        assert_eq!(d.text, ZH);
        assert_eq!(d.encoding, "gb18030");
        assert!(d.mojibake.is_none());
        let (b5, _, _) = BIG5.encode(ZH_T);
        let d = decode(&b5).unwrap();
        assert_eq!(d.text, ZH_T);
        assert_eq!(d.encoding, "Big5");
    }

    #[test]
    fn utf16_without_bom() {
        let le: Vec<u8> = ZH.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(decode(&le).unwrap().text, ZH);
        let be: Vec<u8> = "Expense policy v2"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        assert_eq!(decode(&be).unwrap().text, "Expense policy v2");
    }

    #[test]
    fn utf8_read_as_latin1_is_reported() {
        let (garbled, _, _) = encoding_rs::WINDOWS_1252.decode(ZH.as_bytes());
        let d = decode(garbled.as_bytes()).unwrap();
        assert!(
            matches!(d.mojibake, Some(Mojibake::Utf8AsLatin1 { .. })),
            "{d:?}"
        );
    }

    #[test]
    fn binary_is_refused() {
        assert!(decode(&[0x89, b'P', b'N', b'G', 0, 0, 0, 13, 0xFF, 0xFE, 0xFD]).is_err());
    }
}
