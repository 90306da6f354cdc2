//! Steps on the characters of one document: encoding repair, normalization, 繁简, language.

use luodi_text::{detect_script, Script, Variant};
use serde::Deserialize;

use crate::{Doc, DocStep, Verdict};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairParams {
    #[serde(default = "repair")]
    mojibake: String,
    #[serde(default = "one_percent")]
    max_replacement_ratio: f64,
}

fn repair() -> String {
    "repair".into()
}

fn one_percent() -> f64 {
    0.01
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OnMojibake {
    Repair,
    Flag,
    Drop,
}

pub struct Repair {
    on: OnMojibake,
    max_replacement_ratio: f64,
}

impl Repair {
    pub fn new(p: RepairParams) -> Result<Repair, String> {
        let on = match p.mojibake.as_str() {
            "repair" => OnMojibake::Repair,
            "flag" => OnMojibake::Flag,
            "drop" => OnMojibake::Drop,
            other => {
                return Err(format!(
                    "mojibake: {other:?} is not \"repair\", \"flag\" or \"drop\""
                ))
            }
        };
        if !(0.0..=1.0).contains(&p.max_replacement_ratio) {
            return Err("max_replacement_ratio: give a share between 0 and 1".into());
        }
        Ok(Repair {
            on,
            max_replacement_ratio: p.max_replacement_ratio,
        })
    }
}

impl DocStep for Repair {
    fn name(&self) -> &str {
        "repair"
    }

    fn apply(&self, doc: &mut Doc) -> Verdict {
        let total = doc.text.chars().count().max(1);
        let replaced = doc.text.chars().filter(|c| *c == '\u{FFFD}').count();
        if replaced as f64 / total as f64 > self.max_replacement_ratio {
            return Verdict::drop(
                "undecodable",
                format!("{replaced} of {total} characters are U+FFFD (undecodable bytes)"),
            );
        }
        if let Some(m) = luodi_text::detect_mojibake(&doc.text) {
            match self.on {
                OnMojibake::Flag => doc.provenance.push(format!("repair: flagged ({m})")),
                OnMojibake::Drop => return Verdict::drop("mojibake", m.to_string()),
                OnMojibake::Repair => match luodi_text::repair_mojibake(&doc.text) {
                    Some((fixed, enc)) => {
                        doc.text = fixed;
                        doc.provenance
                            .push(format!("repair: {m}; re-decoded as {enc}"));
                    }
                    None => {
                        return Verdict::drop("mojibake", format!("{m}; no encoding repairs it"))
                    }
                },
            }
        }
        Verdict::Keep
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeParams {
    #[serde(default)]
    nfkc: bool,
}

pub struct Normalize {
    nfkc: bool,
}

impl Normalize {
    pub fn new(p: NormalizeParams) -> Normalize {
        Normalize { nfkc: p.nfkc }
    }
}

/// Characters that differ between two texts, roughly (length difference plus changed
/// positions of the common length), for provenance.
fn changed_chars(a: &str, b: &str) -> usize {
    let (la, lb) = (a.chars().count(), b.chars().count());
    let diff = a.chars().zip(b.chars()).filter(|(x, y)| x != y).count();
    diff + la.abs_diff(lb)
}

impl DocStep for Normalize {
    fn name(&self) -> &str {
        "normalize"
    }

    fn apply(&self, doc: &mut Doc) -> Verdict {
        let mut t = if self.nfkc {
            luodi_text::nfkc(&doc.text)
        } else {
            doc.text.clone()
        };
        t = luodi_text::clean(&t);
        if t != doc.text {
            doc.provenance.push(format!(
                "normalize: ~{} characters changed",
                changed_chars(&doc.text, &t)
            ));
            doc.text = t;
        }
        if let Some(title) = &doc.title {
            let t = luodi_text::clean(title);
            if &t != title {
                doc.title = Some(t);
            }
        }
        Verdict::Keep
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptParams {
    #[serde(default = "simplified")]
    to: String,
    #[serde(default = "tw")]
    variant: String,
}

fn simplified() -> String {
    "simplified".into()
}

fn tw() -> String {
    "tw".into()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Simplified,
    Traditional(Variant),
    Keep,
}

pub struct ScriptStep {
    to: Target,
}

impl ScriptStep {
    pub fn new(p: ScriptParams) -> Result<ScriptStep, String> {
        let variant = match p.variant.as_str() {
            "tw" => Variant::Taiwan,
            "hk" => Variant::HongKong,
            "standard" => Variant::Standard,
            other => {
                return Err(format!(
                    "variant: {other:?} is not \"tw\", \"hk\" or \"standard\""
                ))
            }
        };
        let to = match p.to.as_str() {
            "simplified" => Target::Simplified,
            "traditional" => Target::Traditional(variant),
            "keep" => Target::Keep,
            other => {
                return Err(format!(
                    "to: {other:?} is not \"simplified\", \"traditional\" or \"keep\""
                ))
            }
        };
        Ok(ScriptStep { to })
    }
}

impl DocStep for ScriptStep {
    fn name(&self) -> &str {
        "script"
    }

    fn apply(&self, doc: &mut Doc) -> Verdict {
        let convert = |t: &str| match self.to {
            Target::Simplified => luodi_text::to_simplified(t),
            Target::Traditional(v) => luodi_text::to_traditional(t, v),
            Target::Keep => t.to_owned(),
        };
        if self.to == Target::Keep {
            return Verdict::Keep;
        }
        let t = convert(&doc.text);
        if t != doc.text {
            doc.provenance.push(format!(
                "script: ~{} characters → {}",
                changed_chars(&doc.text, &t),
                if self.to == Target::Simplified {
                    "simplified"
                } else {
                    "traditional"
                }
            ));
            doc.text = t;
        }
        if let Some(title) = &doc.title {
            doc.title = Some(convert(title));
        }
        Verdict::Keep
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageParams {
    #[serde(default = "zh_en")]
    keep: Vec<String>,
}

fn zh_en() -> Vec<String> {
    vec!["zh".into(), "en".into()]
}

pub struct Language {
    keep: Vec<Script>,
}

impl Language {
    pub fn new(p: LanguageParams) -> Result<Language, String> {
        let mut keep = Vec::new();
        for k in &p.keep {
            match k.as_str() {
                "zh" => keep.extend([Script::Simplified, Script::Traditional]),
                "zh-hans" => keep.push(Script::Simplified),
                "zh-hant" => keep.push(Script::Traditional),
                "en" | "latin" => keep.push(Script::Latin),
                "unknown" => keep.push(Script::Unknown),
                other => {
                    return Err(format!(
                        "keep: {other:?} is not zh, zh-hans, zh-hant, en or unknown"
                    ))
                }
            }
        }
        if keep.is_empty() {
            return Err("keep: name at least one language".into());
        }
        Ok(Language { keep })
    }
}

impl DocStep for Language {
    fn name(&self) -> &str {
        "language"
    }

    fn apply(&self, doc: &mut Doc) -> Verdict {
        // the opening of a long document decides (detection reads every character otherwise)
        let head: String = doc.text.chars().take(2000).collect();
        let s = detect_script(&head);
        if self.keep.contains(&s) {
            Verdict::Keep
        } else {
            Verdict::drop("language", format!("script {} not kept", s.as_str()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Doc {
        Doc {
            id: "1".into(),
            text: text.into(),
            ..Doc::default()
        }
    }

    #[test]
    fn repair_fixes_mojibake_and_drops_undecodable() {
        let zh = "杭州分公司员工请假须提前三个工作日提交申请，经部门经理审批后生效。";
        let garbled: String = zh.bytes().map(|b| b as char).collect();
        let r = Repair::new(RepairParams {
            mojibake: "repair".into(),
            max_replacement_ratio: 0.01,
        })
        .unwrap();
        let mut d = doc(&garbled);
        assert_eq!(r.apply(&mut d), Verdict::Keep);
        assert_eq!(d.text, zh);
        assert!(d.provenance[0].starts_with("repair:"), "{:?}", d.provenance);
        let mut bad = doc("正文\u{FFFD}\u{FFFD}\u{FFFD}内容");
        assert!(
            matches!(r.apply(&mut bad), Verdict::Drop { reason, .. } if reason == "undecodable")
        );
    }

    #[test]
    fn script_and_language() {
        let s = ScriptStep::new(ScriptParams {
            to: "simplified".into(),
            variant: "tw".into(),
        })
        .unwrap();
        let mut d = doc("資料庫軟體的說明");
        s.apply(&mut d);
        assert_eq!(d.text, "数据库软件的说明");
        let l = Language::new(LanguageParams {
            keep: vec!["zh".into()],
        })
        .unwrap();
        assert_eq!(l.apply(&mut doc("年假有几天")), Verdict::Keep);
        assert!(matches!(
            l.apply(&mut doc("How many days of leave?")),
            Verdict::Drop { .. }
        ));
    }
}
