//! Integration tests of the engine that need no model: the conversation store, the script
//! dense queries are read in.

use luodi_engine::{AnswerFormat, Evidence, Home, KbConfig, Turn};

fn turn(q: &str, a: &str) -> Turn {
    Turn {
        seq: 0,
        question: q.into(),
        standalone: q.into(),
        answer: a.into(),
        citations: vec![Evidence {
            n: 1,
            chunk_id: 7,
            doc_key: "/docs/员工手册-请假制度.md".into(),
            title: "青禾科技员工手册：请假制度".into(),
            heading_path: vec!["年假".into()],
            location: Default::default(),
            text: "当年未休的年假可顺延至次年3月31日，逾期作废。".into(),
            score: 0.9,
        }],
        refused: false,
        choices: Vec::new(),
        format: AnswerFormat::Plain,
        confidence: 0.8,
        ttft_ms: 1200.0,
        total_ms: 1500.0,
        model: "qwen".into(),
        model_fingerprint: "sha256:abc".into(),
        kb_version: 2,
        created_at: 1_764_460_800,
    }
}

#[test]
fn conversations_are_stored_listed_reopened_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::open(dir.path()).unwrap();
    home.create("hb", KbConfig::default()).unwrap();
    home.create("other", KbConfig::default()).unwrap();
    // a conversation needs an existing knowledge base
    assert!(home.conversation_create("nope", "问题").is_err());
    let a = home
        .conversation_create("hb", "年假可以顺延到什么时候？")
        .unwrap();
    let t1 = home
        .conversation_add_turn(&a.id, &turn("年假可以顺延到什么时候？", "次年3月31日[1]"))
        .unwrap();
    let t2 = home
        .conversation_add_turn(&a.id, &turn("那病假呢？", "须提供诊断证明[1]"))
        .unwrap();
    assert_eq!((t1.seq, t2.seq), (1, 2));
    let b = home.conversation_create("other", "另一个").unwrap();
    home.conversation_add_turn(&b.id, &turn("另一个", "答"))
        .unwrap();

    let all = home.conversations(None, 100, 0).unwrap();
    assert_eq!(all.len(), 2);
    let only_hb = home.conversations(Some("hb"), 100, 0).unwrap();
    assert_eq!(only_hb.len(), 1);
    assert_eq!(only_hb[0].turns, 2);
    assert_eq!(only_hb[0].title, "年假可以顺延到什么时候？");

    // reopened whole, by id or by a unique prefix of it
    let c = home.conversation(&a.id).unwrap().unwrap();
    assert_eq!(c.turns.len(), 2);
    assert_eq!(c.turns[1].question, "那病假呢？");
    assert_eq!(
        c.turns[0].citations[0].text,
        "当年未休的年假可顺延至次年3月31日，逾期作废。"
    );
    assert_eq!(c.turns[0].model_fingerprint, "sha256:abc");
    let by_prefix = home.conversation(&a.id[..14]).unwrap().unwrap();
    assert_eq!(by_prefix.info.id, a.id);
    assert!(home.conversation("ffffffffffffffffffff").unwrap().is_none());

    // persisted: a new process sees the same
    drop(home);
    let home = Home::open(dir.path()).unwrap();
    assert_eq!(home.conversation(&a.id).unwrap().unwrap(), c);

    assert!(home.conversation_delete(&a.id).unwrap());
    assert!(!home.conversation_delete(&a.id).unwrap());
    assert!(home.conversation(&a.id).unwrap().is_none());
    // deleting a knowledge base deletes its conversations
    home.delete("other").unwrap();
    assert!(home.conversation(&b.id).unwrap().is_none());
    assert!(home.conversations(None, 100, 0).unwrap().is_empty());
}

#[test]
fn a_registry_of_the_first_release_gains_conversations_and_keeps_its_kbs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("luodi.sqlite")).unwrap();
        conn.execute_batch(
            "CREATE TABLE kbs(name TEXT PRIMARY KEY, created_at INTEGER NOT NULL, config TEXT NOT NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        let cfg = serde_json::to_string(&KbConfig::default()).unwrap();
        conn.execute(
            "INSERT INTO kbs(name, created_at, config) VALUES('old', 1, ?1)",
            [cfg],
        )
        .unwrap();
    }
    let home = Home::open(dir.path()).unwrap();
    assert_eq!(home.list().unwrap()[0].name, "old");
    let c = home.conversation_create("old", "问").unwrap();
    assert_eq!(home.conversations(Some("old"), 10, 0).unwrap()[0].id, c.id);
}

/// A question in the other Chinese script than the documents is embedded in theirs (BM25
/// folds scripts itself; e5 does not), and left as asked otherwise.
#[test]
fn dense_queries_are_read_in_the_documents_script() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("年金.md"),
        "# 国民年金\n\n不缴纳国民年金保险费会有什么影响？未缴纳的保险费须补缴并加计利息。\n",
    )
    .unwrap();
    let kb =
        luodi_engine::Kb::open_at(&dir.path().join("store"), "t", KbConfig::default()).unwrap();
    // no documents yet: nothing to judge by, the question is left as asked
    assert_eq!(
        kb.in_documents_script("國民年金保費沒繳會有什麼後果？")
            .unwrap(),
        "國民年金保費沒繳會有什麼後果？"
    );
    kb.ingest(
        &[docs],
        &luodi_engine::IngestOptions::default(),
        &luodi_engine::NoProgress,
    )
    .unwrap();
    assert_eq!(
        kb.documents_script().unwrap(),
        luodi_text::Script::Simplified
    );
    assert_eq!(
        kb.in_documents_script("國民年金保費沒繳會有什麼後果？")
            .unwrap(),
        "国民年金保费没缴会有什么后果？"
    );
    assert_eq!(
        kb.in_documents_script("国民年金怎么补缴？").unwrap(),
        "国民年金怎么补缴？"
    );
    assert_eq!(kb.in_documents_script("pension?").unwrap(), "pension?");
    let mut off =
        luodi_engine::Kb::open_at(&dir.path().join("store"), "t", KbConfig::default()).unwrap();
    off.match_script = false;
    assert_eq!(
        off.in_documents_script("國民年金保費沒繳會有什麼後果？")
            .unwrap(),
        "國民年金保費沒繳會有什麼後果？"
    );
}

#[test]
fn glossary_suggestions_pair_the_short_words_people_ask_with_with_the_documents_terms() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("交易所.md"),
        "# 华沙证券交易所\n\n华沙证券交易所建于1817年，二战期间停止运营，1991年恢复。证券交易所每天上午开盘。\n",
    )
    .unwrap();
    let home = Home::open(&dir.path().join("home")).unwrap();
    home.create("hb", KbConfig::default()).unwrap();
    home.open_kb("hb")
        .unwrap()
        .ingest(
            &[docs],
            &luodi_engine::IngestOptions::default(),
            &luodi_engine::NoProgress,
        )
        .unwrap();
    let model = luodi_engine::suggest::AbbrevModel::first_characters();
    let pairs = |home: &Home| -> Vec<(String, String, String)> {
        home.glossary_suggestions("hb", &model, 50)
            .unwrap()
            .into_iter()
            .map(|s| (s.abbr, s.full, s.evidence))
            .collect()
    };
    // nobody has asked yet: the documents never write 证交所
    assert!(!pairs(&home).iter().any(|(a, _, _)| a == "证交所"));
    let c = home
        .conversation_create("hb", "华沙证交所什么时候恢复运营？")
        .unwrap();
    home.conversation_add_turn(&c.id, &turn("华沙证交所什么时候恢复运营？", "1991年[1]"))
        .unwrap();
    let after = pairs(&home);
    assert!(
        after
            .iter()
            .any(|(a, f, e)| a == "证交所" && f == "证券交易所" && e == "asked"),
        "{after:?}"
    );
}

/// A knowledge base's FAQ mode: strict until set, kept across reopening, read by an open copy
/// once reloaded, a bad value refused by name, gone with the knowledge base.
#[test]
fn the_faq_mode_is_set_per_knowledge_base_and_kept() {
    use luodi_engine::faq::{FaqMode, FaqPolicy};
    let dir = tempfile::tempdir().unwrap();
    let home = Home::open(dir.path()).unwrap();
    home.create("hb", KbConfig::default()).unwrap();
    home.create("other", KbConfig::default()).unwrap();
    assert_eq!(home.faq_mode("hb").unwrap(), FaqMode::Strict);
    let open = home.open_kb("hb").unwrap();
    home.set_faq_mode("hb", FaqMode::Broad, "test").unwrap();
    // an open copy sees the change once it reloads its words (the server does at the next
    // question: the words version moved)
    assert!(home.words_version("hb").unwrap() > open.words_version);
    assert_eq!(home.reload_words(&open).unwrap().faq_mode, FaqMode::Broad);
    assert_eq!(home.faq_mode("other").unwrap(), FaqMode::Strict);
    drop(home);
    let home = Home::open(dir.path()).unwrap();
    assert_eq!(home.open_kb("hb").unwrap().faq_mode, FaqMode::Broad);
    let policy = FaqPolicy::default();
    assert!(FaqMode::Broad.threshold(&policy) < FaqMode::Strict.threshold(&policy));
    assert_eq!(FaqMode::Off.threshold(&policy), None);
    assert_eq!(FaqMode::parse(" 0.4 ").unwrap(), FaqMode::Threshold(0.4));
    for bad in ["1.5", "-0.1", "loose", ""] {
        let e = FaqMode::parse(bad).unwrap_err().to_string();
        assert!(e.contains(&format!("{bad:?}")), "{e}");
    }
    assert!(home.set_faq_mode("ghost", FaqMode::Off, "test").is_err());
    home.delete("hb").unwrap();
    home.create("hb", KbConfig::default()).unwrap();
    assert_eq!(home.faq_mode("hb").unwrap(), FaqMode::Strict);
}
