//! A knowledge base's glossary: the organisation's own words.
//!
//! Three kinds of entry: an **abbreviation** (杭分 → 杭州分公司), a **synonym set** (购买 /
//! 价格 / 多少钱) and a **business term** with its definition (a metric's meaning). Entries live
//! in the registry beside the knowledge base; every change is written to a history with who
//! made it and when (the glossary's version is the number of changes).
//!
//! Use: [`Glossary::expand`] finds the entries a question mentions — an abbreviation only where
//! it stands as a word of its own (北大 is not found inside 东北大学) — and gives a lexical query
//! with the full forms and synonyms added (for BM25), the question with abbreviations written
//! out (for the dense query and the prompt), and the definitions of the business terms.

use luodi_core::{Error, Result};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::conversation::now_secs;
use crate::home::Home;

/// The registry migration that adds glossaries.
pub(crate) const MIGRATION: &str = "
    CREATE TABLE glossary(
        id INTEGER PRIMARY KEY,
        kb TEXT NOT NULL,
        kind TEXT NOT NULL,
        term TEXT NOT NULL,
        forms TEXT NOT NULL,
        definition TEXT,
        source TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE INDEX glossary_by_kb ON glossary(kb);
    CREATE TABLE glossary_history(
        id INTEGER PRIMARY KEY,
        kb TEXT NOT NULL,
        at INTEGER NOT NULL,
        by TEXT NOT NULL,
        action TEXT NOT NULL,
        entry TEXT NOT NULL
    );
    CREATE INDEX glossary_history_by_kb ON glossary_history(kb, id);
";

/// The registry migration that keeps suggestions a person turned down, so `glossary suggest`
/// does not offer them again.
pub(crate) const REJECTIONS_MIGRATION: &str = "
    CREATE TABLE glossary_rejected(
        kb TEXT NOT NULL,
        abbr TEXT NOT NULL,
        full TEXT NOT NULL,
        at INTEGER NOT NULL,
        by TEXT NOT NULL,
        PRIMARY KEY (kb, abbr, full)
    );
    CREATE TABLE kb_words(
        kb TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    );
";

/// Raises the version of `kb`'s words (glossary and FAQs): an open knowledge base whose
/// version is older reloads them.
pub(crate) fn bump_words(tx: &rusqlite::Transaction<'_>, kb: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO kb_words(kb, version) VALUES (?1, 1)
         ON CONFLICT(kb) DO UPDATE SET version = version + 1",
        [kb],
    )
    .map_err(sql("glossary"))?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Abbreviation,
    Synonym,
    Term,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Abbreviation => "abbreviation",
            EntryKind::Synonym => "synonym",
            EntryKind::Term => "term",
        }
    }

    pub fn parse(s: &str) -> Option<EntryKind> {
        match s.trim() {
            "abbreviation" | "abbr" => Some(EntryKind::Abbreviation),
            "synonym" | "synonyms" => Some(EntryKind::Synonym),
            "term" => Some(EntryKind::Term),
            _ => None,
        }
    }
}

/// One entry. Abbreviation: `term` is the short form, `forms` its one full form. Synonym set:
/// `term` and `forms` are the members. Business term: `term`, its `definition`, and `forms`
/// other names for it (may be empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub id: i64,
    pub kind: EntryKind,
    pub term: String,
    #[serde(default)]
    pub forms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    /// `hand`, `import`, `suggest:EVIDENCE` (accepted from mined candidates: `stated`,
    /// `together`, `predicted`), `feedback`.
    #[serde(default = "hand")]
    pub source: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub created_by: String,
}

fn hand() -> String {
    "hand".into()
}

impl Entry {
    pub fn abbreviation(abbr: &str, full: &str) -> Entry {
        Entry::new(EntryKind::Abbreviation, abbr, vec![full.to_owned()], None)
    }

    pub fn synonyms(members: &[&str]) -> Entry {
        Entry::new(
            EntryKind::Synonym,
            members.first().copied().unwrap_or(""),
            members.iter().skip(1).map(|s| s.to_string()).collect(),
            None,
        )
    }

    pub fn term(term: &str, definition: &str) -> Entry {
        Entry::new(
            EntryKind::Term,
            term,
            Vec::new(),
            Some(definition.to_owned()),
        )
    }

    fn new(kind: EntryKind, term: &str, forms: Vec<String>, definition: Option<String>) -> Entry {
        Entry {
            id: 0,
            kind,
            term: term.trim().to_owned(),
            forms: forms.into_iter().map(|f| f.trim().to_owned()).collect(),
            definition,
            source: hand(),
            created_at: 0,
            created_by: String::new(),
        }
    }

    /// Every surface form: the term, then the others.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.term.as_str()).chain(self.forms.iter().map(String::as_str))
    }

    /// How it reads in messages: `杭分 → 杭州分公司`, `购买 / 价格`, `GMV`.
    pub fn describe(&self) -> String {
        let id = if self.id > 0 {
            format!(" (entry #{})", self.id)
        } else {
            String::new()
        };
        match self.kind {
            EntryKind::Abbreviation => {
                format!("{} → {}{id}", self.term, self.forms.join(" / "))
            }
            EntryKind::Synonym => format!("{}{id}", self.members().collect::<Vec<_>>().join(" / ")),
            EntryKind::Term => format!("{}{id}", self.term),
        }
    }

    /// Checks the entry on its own.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.term.is_empty() {
            return Err("the term is empty".into());
        }
        if self.members().any(|m| m.chars().count() > 64) {
            return Err("a form is longer than 64 characters".into());
        }
        match self.kind {
            EntryKind::Abbreviation => {
                if self.forms.len() != 1 || self.forms[0].is_empty() {
                    return Err(format!(
                        "abbreviation {}: give exactly one full form",
                        self.term
                    ));
                }
                if self.forms[0] == self.term {
                    return Err(format!(
                        "abbreviation {}: the full form is the abbreviation itself",
                        self.term
                    ));
                }
            }
            EntryKind::Synonym => {
                let mut m: Vec<&str> = self.members().filter(|m| !m.is_empty()).collect();
                m.sort_unstable();
                m.dedup();
                if m.len() < 2 {
                    return Err(format!(
                        "synonym set {}: give at least two different words",
                        self.term
                    ));
                }
            }
            EntryKind::Term => {
                if self
                    .definition
                    .as_deref()
                    .is_none_or(|d| d.trim().is_empty())
                {
                    return Err(format!("term {}: give its definition", self.term));
                }
            }
        }
        Ok(())
    }
}

/// A knowledge base's glossary, loaded.
#[derive(Debug, Clone, Default)]
pub struct Glossary {
    entries: Vec<Entry>,
    /// jieba with every form of every entry added as a word (so 杭分 is one token), built on
    /// first use.
    segmenter: std::sync::OnceLock<luodi_text::Segmenter>,
}

/// What a question means in the glossary's words.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Expansion {
    /// The question with the full forms and synonyms it implies added (for BM25).
    pub lexical: String,
    /// The question with its abbreviations written out (for the dense query and the prompt).
    pub rewritten: String,
    /// (abbreviation found, full form).
    pub abbreviations: Vec<(String, String)>,
    /// (business term found, its definition).
    pub definitions: Vec<(String, String)>,
}

impl Glossary {
    pub fn new(entries: Vec<Entry>) -> Glossary {
        Glossary {
            entries,
            segmenter: Default::default(),
        }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Adds an entry as it is (unchecked: [`Glossary::check`] first where it must fit).
    pub fn push(&mut self, e: Entry) {
        self.entries.push(e);
        self.segmenter = Default::default();
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The segmenter that knows the glossary's words: jieba's dictionary with every form of
    /// every entry added, so an abbreviation, a full form or a business term is one token.
    pub fn segmenter(&self) -> &luodi_text::Segmenter {
        self.segmenter.get_or_init(|| {
            if self.entries.is_empty() {
                return luodi_text::Segmenter::shared().clone();
            }
            let mut s = luodi_text::Segmenter::shared().clone();
            for e in &self.entries {
                for m in e.members() {
                    // frequent enough to win over the dictionary's cuts around it
                    s.add_word(m, Some(20_000));
                }
            }
            s
        })
    }

    /// Whether `entry` may join: a clash with an entry already there (the same abbreviation
    /// with another full form, a cycle of abbreviations, a word in two synonym sets, a term
    /// defined twice) is refused with a message naming both.
    pub fn check(&self, entry: &Entry) -> std::result::Result<(), String> {
        entry.validate()?;
        for e in &self.entries {
            if e.kind != entry.kind {
                continue;
            }
            match entry.kind {
                EntryKind::Abbreviation => {
                    if e.term == entry.term {
                        return Err(if e.forms == entry.forms {
                            format!("{} is already in the glossary", e.describe())
                        } else {
                            format!(
                                "{} conflicts with {}: one abbreviation, two full forms",
                                entry.describe(),
                                e.describe()
                            )
                        });
                    }
                }
                EntryKind::Synonym => {
                    if let Some(w) = entry.members().find(|m| e.members().any(|x| x == *m)) {
                        return Err(format!(
                            "{} conflicts with {}: {w} would be in two synonym sets",
                            entry.describe(),
                            e.describe()
                        ));
                    }
                }
                EntryKind::Term => {
                    if e.term == entry.term {
                        return Err(format!(
                            "term {} is already defined{}",
                            e.term,
                            if e.id > 0 {
                                format!(" (entry #{})", e.id)
                            } else {
                                String::new()
                            }
                        ));
                    }
                }
            }
        }
        if entry.kind == EntryKind::Abbreviation {
            // a cycle: the new full form leads back to the new abbreviation
            let mut at = entry.forms[0].clone();
            let mut path = vec![entry.clone()];
            for _ in 0..=self.entries.len() {
                let Some(next) = self
                    .entries
                    .iter()
                    .find(|e| e.kind == EntryKind::Abbreviation && e.term == at)
                else {
                    break;
                };
                path.push(next.clone());
                at = next.forms[0].clone();
                if at == entry.term {
                    return Err(format!(
                        "{} would make a cycle with {}",
                        entry.describe(),
                        path[1..]
                            .iter()
                            .map(Entry::describe)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        Ok(())
    }

    /// The entries `question` mentions, and the queries they make.
    pub fn expand(&self, question: &str) -> Expansion {
        let mut out = Expansion {
            lexical: question.to_owned(),
            rewritten: question.to_owned(),
            ..Expansion::default()
        };
        if self.entries.is_empty() {
            return out;
        }
        let bounds = word_bounds(self.segmenter(), question);
        let stands_alone = |form: &str| -> Vec<usize> {
            question
                .match_indices(form)
                .map(|(i, _)| i)
                .filter(|&i| {
                    // a Latin form must not be part of a longer Latin word; a Chinese one must
                    // start and end where the segmenter cuts
                    let end = i + form.len();
                    let latin = form.chars().all(|c| c.is_ascii_alphanumeric());
                    if latin {
                        let before = question[..i].chars().next_back();
                        let after = question[end..].chars().next();
                        !before.is_some_and(|c| c.is_ascii_alphanumeric())
                            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
                    } else {
                        bounds.contains(&i) && bounds.contains(&end)
                    }
                })
                .collect()
        };
        let mut added: Vec<String> = Vec::new();
        // abbreviations: longest first, so 杭分公司 wins over 杭分 where both are entries
        let mut abbrs: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Abbreviation)
            .collect();
        abbrs.sort_by_key(|e| std::cmp::Reverse(e.term.len()));
        let mut replaced: Vec<(usize, usize, &str)> = Vec::new();
        for e in abbrs {
            let full = &e.forms[0];
            // a candidate predicted by the abbreviation model, never seen in the text: it widens
            // the lexical query only, it does not rewrite the question
            let predicted = e.source == "suggest:predicted";
            if question.contains(full.as_str()) {
                continue;
            }
            for i in stands_alone(&e.term) {
                let end = i + e.term.len();
                if replaced.iter().any(|(s, t, _)| i < *t && *s < end) {
                    continue;
                }
                if predicted {
                    if !added.contains(full) {
                        added.push(full.clone());
                    }
                    continue;
                }
                replaced.push((i, end, full));
                if !out.abbreviations.iter().any(|(a, _)| a == &e.term) {
                    out.abbreviations.push((e.term.clone(), full.clone()));
                    added.push(full.clone());
                }
            }
        }
        replaced.sort_by_key(|r| r.0);
        let mut rewritten = String::with_capacity(question.len() + 16);
        let mut at = 0;
        for (s, t, full) in &replaced {
            rewritten.push_str(&question[at..*s]);
            rewritten.push_str(full);
            at = *t;
        }
        rewritten.push_str(&question[at..]);
        out.rewritten = rewritten;
        for e in &self.entries {
            match e.kind {
                EntryKind::Abbreviation => {}
                EntryKind::Synonym => {
                    if e.members().any(|m| !stands_alone(m).is_empty()) {
                        for m in e.members() {
                            if !question.contains(m) && !added.iter().any(|a| a == m) {
                                added.push(m.to_owned());
                            }
                        }
                    }
                }
                EntryKind::Term => {
                    if e.members().any(|m| !stands_alone(m).is_empty()) {
                        out.definitions
                            .push((e.term.clone(), e.definition.clone().unwrap_or_default()));
                        for m in e.members() {
                            if !question.contains(m) && !added.iter().any(|a| a == m) {
                                added.push(m.to_owned());
                            }
                        }
                    }
                }
            }
        }
        if !added.is_empty() {
            out.lexical = format!("{question} {}", added.join(" "));
        }
        out
    }
}

/// Byte offsets where the segmenter cuts `text` (its start and end included).
fn word_bounds(seg: &luodi_text::Segmenter, text: &str) -> std::collections::HashSet<usize> {
    let mut b = std::collections::HashSet::new();
    let mut at = 0;
    b.insert(0);
    for tok in seg.cut(text) {
        at += tok.len();
        b.insert(at);
    }
    b
}

pub use crate::rows::{ImportProblem, ImportReport};

/// A change, as the history keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub version: i64,
    pub at: i64,
    pub by: String,
    pub action: String,
    pub entry: Entry,
}

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::internal(context, e)
}

fn row_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let kind: String = r.get(1)?;
    let forms: String = r.get(3)?;
    Ok(Entry {
        id: r.get(0)?,
        kind: EntryKind::parse(&kind).unwrap_or(EntryKind::Term),
        term: r.get(2)?,
        forms: serde_json::from_str(&forms).unwrap_or_default(),
        definition: r.get(4)?,
        source: r.get(5)?,
        created_at: r.get(6)?,
        created_by: r.get(7)?,
    })
}

impl Home {
    fn must_exist(&self, kb: &str) -> Result<()> {
        if self.get(kb)?.is_none() {
            return Err(Error::UnknownKb(kb.to_owned()));
        }
        Ok(())
    }

    /// The glossary of `kb`.
    pub fn glossary(&self, kb: &str) -> Result<Glossary> {
        let conn = self.registry()?;
        let mut st = conn
            .prepare(
                "SELECT id, kind, term, forms, definition, source, created_at, created_by
                 FROM glossary WHERE kb = ?1 ORDER BY id",
            )
            .map_err(sql("glossary"))?;
        let entries = st
            .query_map([kb], row_entry)
            .map_err(sql("glossary"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql("glossary"))?;
        Ok(Glossary::new(entries))
    }

    /// Adds entries (all or none), checked against the glossary and each other; returns them
    /// with their ids.
    pub fn glossary_add(&self, kb: &str, entries: Vec<Entry>, by: &str) -> Result<Vec<Entry>> {
        self.must_exist(kb)?;
        let mut g = self.glossary(kb)?;
        let mut conn = self.registry()?;
        let tx = conn.transaction().map_err(sql("glossary"))?;
        let out = entries
            .into_iter()
            .map(|e| insert(&tx, kb, &mut g, e, by))
            .collect::<Result<Vec<_>>>()?;
        tx.commit().map_err(sql("glossary"))?;
        Ok(out)
    }

    /// Removes an entry; returns it.
    pub fn glossary_remove(&self, kb: &str, id: i64, by: &str) -> Result<Entry> {
        self.must_exist(kb)?;
        let mut conn = self.registry()?;
        let tx = conn.transaction().map_err(sql("glossary"))?;
        let e = tx
            .query_row(
                "SELECT id, kind, term, forms, definition, source, created_at, created_by
                 FROM glossary WHERE kb = ?1 AND id = ?2",
                params![kb, id],
                row_entry,
            )
            .optional()
            .map_err(sql("glossary"))?
            .ok_or_else(|| {
                Error::NotFound(format!("knowledge base {kb:?} has no glossary entry #{id}"))
            })?;
        tx.execute("DELETE FROM glossary WHERE id = ?1", [id])
            .map_err(sql("glossary"))?;
        record(&tx, kb, by, "remove", &e)?;
        tx.commit().map_err(sql("glossary"))?;
        Ok(e)
    }

    /// Imports entries: a bad or clashing row is reported with its number and the rest go in
    /// (one transaction, each row checked against the glossary and the rows before it).
    pub fn glossary_import(
        &self,
        kb: &str,
        parsed: crate::rows::Parsed<Entry>,
        by: &str,
    ) -> Result<ImportReport> {
        self.must_exist(kb)?;
        let mut g = self.glossary(kb)?;
        let mut conn = self.registry()?;
        let tx = conn.transaction().map_err(sql("glossary"))?;
        let mut report = ImportReport {
            unread_columns: parsed.unread_columns,
            ..ImportReport::default()
        };
        for (row, e) in parsed.rows {
            let e = match e {
                Ok(mut e) => {
                    if e.source == "hand" {
                        e.source = "import".into();
                    }
                    e
                }
                Err(reason) => {
                    report.problems.push(ImportProblem { row, reason });
                    continue;
                }
            };
            match insert(&tx, kb, &mut g, e, by) {
                Ok(_) => report.added += 1,
                Err(Error::InvalidInput(reason)) => {
                    report.problems.push(ImportProblem { row, reason })
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().map_err(sql("glossary"))?;
        Ok(report)
    }

    /// Turns down suggested pairs (abbreviation, full form): `glossary suggest` leaves them
    /// out from now on; the history records who did it. Returns how many were new.
    pub fn glossary_reject(&self, kb: &str, pairs: &[(String, String)], by: &str) -> Result<usize> {
        self.must_exist(kb)?;
        let mut conn = self.registry()?;
        let tx = conn.transaction().map_err(sql("glossary"))?;
        let mut n = 0;
        for (abbr, full) in pairs {
            n += tx
                .execute(
                    "INSERT OR IGNORE INTO glossary_rejected(kb, abbr, full, at, by)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![kb, abbr, full, now_secs(), by],
                )
                .map_err(sql("glossary"))?;
            let mut e = Entry::abbreviation(abbr, full);
            e.source = "suggest".into();
            record(&tx, kb, by, "reject", &e)?;
        }
        tx.commit().map_err(sql("glossary"))?;
        Ok(n)
    }

    /// The pairs turned down for `kb`.
    pub fn glossary_rejected(
        &self,
        kb: &str,
    ) -> Result<std::collections::HashSet<(String, String)>> {
        let conn = self.registry()?;
        let mut st = conn
            .prepare("SELECT abbr, full FROM glossary_rejected WHERE kb = ?1")
            .map_err(sql("glossary"))?;
        let rows = st
            .query_map([kb], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql("glossary"))?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql("glossary"))?;
        Ok(rows)
    }

    /// Every change to the glossary of `kb`, oldest first (the version is its position).
    pub fn glossary_history(&self, kb: &str) -> Result<Vec<Change>> {
        let conn = self.registry()?;
        let mut st = conn
            .prepare("SELECT at, by, action, entry FROM glossary_history WHERE kb = ?1 ORDER BY id")
            .map_err(sql("glossary"))?;
        let rows = st
            .query_map([kb], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(sql("glossary"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql("glossary"))?;
        Ok(rows
            .into_iter()
            .enumerate()
            .filter_map(|(i, (at, by, action, entry))| {
                Some(Change {
                    version: i as i64 + 1,
                    at,
                    by,
                    action,
                    entry: serde_json::from_str(&entry).ok()?,
                })
            })
            .collect())
    }
}

/// Checks `e` against `g`, stores it with its history row, and adds it to `g`.
fn insert(
    tx: &rusqlite::Transaction<'_>,
    kb: &str,
    g: &mut Glossary,
    mut e: Entry,
    by: &str,
) -> Result<Entry> {
    g.check(&e).map_err(Error::InvalidInput)?;
    e.created_at = now_secs();
    e.created_by = by.to_owned();
    tx.execute(
        "INSERT INTO glossary(kb, kind, term, forms, definition, source, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            kb,
            e.kind.as_str(),
            e.term,
            serde_json::to_string(&e.forms).unwrap_or_default(),
            e.definition,
            e.source,
            e.created_at,
            e.created_by
        ],
    )
    .map_err(sql("glossary"))?;
    e.id = tx.last_insert_rowid();
    record(tx, kb, by, "add", &e)?;
    g.push(e.clone());
    Ok(e)
}

fn record(
    tx: &rusqlite::Transaction<'_>,
    kb: &str,
    by: &str,
    action: &str,
    e: &Entry,
) -> Result<()> {
    bump_words(tx, kb)?;
    tx.execute(
        "INSERT INTO glossary_history(kb, at, by, action, entry) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            kb,
            now_secs(),
            by,
            action,
            serde_json::to_string(e).unwrap_or_default()
        ],
    )
    .map_err(sql("glossary"))?;
    Ok(())
}

/// An import row: CSV (header `kind,term,forms,definition`; forms split on `|`) or JSON lines
/// (an [`Entry`] a line).
impl crate::rows::FromRow for Entry {
    const REQUIRED: &'static [&'static [&'static str]] = &[&["kind"], &["term"]];
    // created_by, which export writes, is taken: an import records who imported
    const COLUMNS: &'static [&'static str] = &CSV_COLUMNS;

    fn from_row(
        row: &serde_json::Map<String, serde_json::Value>,
    ) -> std::result::Result<Entry, String> {
        use crate::rows::{list, text};
        let kind = text(row, &["kind"]).unwrap_or_default();
        let kind = EntryKind::parse(&kind)
            .ok_or_else(|| format!("kind {kind:?}: give abbreviation, synonym or term"))?;
        let mut e = Entry::new(
            kind,
            &text(row, &["term"]).unwrap_or_default(),
            list(row, "forms")?
                .into_iter()
                .filter(|f| !f.is_empty())
                .collect(),
            text(row, &["definition"]),
        );
        if let Some(s) = text(row, &["source"]) {
            e.source = s;
        }
        e.validate().map(|_| e)
    }
}

/// The columns of a glossary CSV, as export writes them and import reads them.
const CSV_COLUMNS: [&str; 6] = [
    "kind",
    "term",
    "forms",
    "definition",
    "source",
    "created_by",
];

/// The entries as CSV (the import's columns, with source and created_by) or JSON lines.
pub fn export(entries: &[Entry], format: crate::rows::Format) -> Result<Vec<u8>> {
    let fail = |e: &dyn std::fmt::Display| Error::internal("glossary export", e.to_string());
    match format {
        crate::rows::Format::Jsonl => {
            let mut out = Vec::new();
            for e in entries {
                out.extend(serde_json::to_vec(e).map_err(|e| fail(&e))?);
                out.push(b'\n');
            }
            Ok(out)
        }
        crate::rows::Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let mut row = |r: [&str; 6]| w.write_record(r).map_err(|e| fail(&e));
            row(CSV_COLUMNS)?;
            for e in entries {
                row([
                    e.kind.as_str(),
                    &e.term,
                    &e.forms.join("|"),
                    e.definition.as_deref().unwrap_or(""),
                    &e.source,
                    &e.created_by,
                ])?;
            }
            w.into_inner().map_err(|e| fail(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(entries: Vec<Entry>) -> Glossary {
        Glossary::new(entries)
    }

    #[test]
    fn abbreviations_expand_only_where_they_stand_as_words() {
        let gl = g(vec![
            Entry::abbreviation("杭分", "杭州分公司"),
            Entry::abbreviation("北大", "北京大学"),
            Entry::synonyms(&["购买", "价格", "多少钱"]),
            Entry::term("放号量", "统计期内新开通的号码数"),
        ]);
        let x = gl.expand("杭分的武林网格渠道的放号量如何");
        assert_eq!(x.rewritten, "杭州分公司的武林网格渠道的放号量如何");
        assert_eq!(x.abbreviations, vec![("杭分".into(), "杭州分公司".into())]);
        assert!(x.lexical.contains("杭州分公司"));
        assert_eq!(x.definitions[0].0, "放号量");
        let y = gl.expand("东北大学在哪里");
        assert_eq!(
            y.rewritten, "东北大学在哪里",
            "北大 inside 东北大学 is not 北京大学"
        );
        let z = gl.expand("这款手机多少钱");
        assert!(
            z.lexical.contains("购买") && z.lexical.contains("价格"),
            "{z:?}"
        );
    }

    #[test]
    fn the_segmenter_learns_the_glossary_words() {
        let q = "问杭分的放号量";
        // jieba alone reads 问杭分 as one word: 杭分 would not stand alone
        assert!(luodi_text::Segmenter::shared()
            .cut(q)
            .iter()
            .all(|w| *w != "杭分"));
        let gl = g(vec![
            Entry::abbreviation("杭分", "杭州分公司"),
            Entry::term("放号量", "统计期内新开通的号码数"),
        ]);
        let words = gl.segmenter().cut(q);
        assert!(
            words.contains(&"杭分") && words.contains(&"放号量"),
            "{words:?}"
        );
        assert_eq!(gl.expand(q).rewritten, "问杭州分公司的放号量");
        // an entry added later is learnt too
        let mut gl = gl;
        gl.push(Entry::abbreviation("甬分", "宁波分公司"));
        assert!(gl.segmenter().cut("问甬分的").contains(&"甬分"));
    }

    #[test]
    fn conflicts_and_cycles_are_refused_naming_both() {
        let mut a = Entry::abbreviation("杭分", "杭州分公司");
        a.id = 3;
        let gl = g(vec![a]);
        let e = gl
            .check(&Entry::abbreviation("杭分", "杭州分行"))
            .unwrap_err();
        assert!(
            e.contains("杭州分行") && e.contains("杭州分公司") && e.contains("#3"),
            "{e}"
        );
        let e = gl
            .check(&Entry::abbreviation("杭州分公司", "杭分"))
            .unwrap_err();
        assert!(e.contains("cycle"), "{e}");
        assert!(gl
            .check(&Entry::abbreviation("杭分", "杭州分公司"))
            .is_err());
        assert!(gl.check(&Entry::abbreviation("甬分", "宁波分公司")).is_ok());
        let syn = g(vec![Entry::synonyms(&["购买", "价格"])]);
        assert!(syn
            .check(&Entry::synonyms(&["价格", "价钱"]))
            .unwrap_err()
            .contains("价格"));
        assert!(Entry::synonyms(&["价格"]).validate().is_err());
    }
}
