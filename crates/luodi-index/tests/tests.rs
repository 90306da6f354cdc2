//! The embedded store: atomic changes, search across scripts, reopen.

use std::collections::BTreeMap;

use luodi_core::{Backend, Change, Chunk, Document, SearchQuery, SourceState, SourceUpdate};
use luodi_index::{Analyzer, AnalyzerConfig, EmbeddedStore, StoreOptions};

fn update(path: &str, texts: &[&str], dept: &str) -> Change {
    let mut metadata = BTreeMap::new();
    metadata.insert("department".to_string(), dept.to_string());
    Change::Upsert(SourceUpdate {
        source: SourceState {
            path: path.into(),
            content_hash: format!("{path}{}", texts.len()),
            size: 1,
            mtime: 1,
        },
        documents: vec![(
            Document {
                key: path.into(),
                source: path.into(),
                title: path.into(),
                modified: Some(1_700_000_000),
                content_hash: "h".into(),
                metadata,
            },
            texts
                .iter()
                .enumerate()
                .map(|(i, t)| Chunk {
                    ordinal: i as u32,
                    text: t.to_string(),
                    heading_path: vec![],
                    location: Default::default(),
                })
                .collect(),
        )],
    })
}

fn q(text: &str) -> SearchQuery {
    SearchQuery {
        text: text.into(),
        k: 10,
        ..Default::default()
    }
}

#[test]
fn changes_search_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path(), StoreOptions::default()).unwrap();
        s.apply(vec![
            update(
                "a.md",
                &["员工请假须提前三个工作日提交申请", "年假五天"],
                "人事部",
            ),
            update("b.md", &["差旅住宿标准为每晚六百元"], "财务部"),
        ])
        .unwrap();
        let hits = s.search(&q("員工請假")).unwrap();
        assert_eq!(
            hits[0].doc_key, "a.md",
            "traditional query finds simplified text"
        );
        let hits = s
            .search(&SearchQuery {
                filters: vec![("department".into(), "财务部".into())],
                ..q("请假 住宿")
            })
            .unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].doc_key, "b.md");
        // replacing a source replaces its chunks
        s.apply(vec![update("a.md", &["病假须提供证明"], "人事部")])
            .unwrap();
        assert!(s
            .search(&q("年假"))
            .unwrap()
            .iter()
            .all(|h| !h.chunk.text.contains("年假")));
        assert_eq!(s.consistency().unwrap(), (2, 2));
        s.apply(vec![Change::Remove("b.md".into())]).unwrap();
        assert_eq!(s.consistency().unwrap(), (1, 1));
    }
    let s = EmbeddedStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(s.stats().unwrap().documents, 1);
    assert_eq!(
        s.search(&q("病假证明")).unwrap()[0].chunk.text,
        "病假须提供证明"
    );
    assert!(s.search(&q("的")).unwrap().is_empty() || s.search(&q("")).unwrap().is_empty());
}

#[test]
fn analyzer_snapshot() {
    let a = Analyzer::new(AnalyzerConfig::default());
    insta::assert_snapshot!(a.terms("杭州分公司的ＶＰＮ帳號密碼").join(" "));
    assert_eq!(
        a.terms("軟體帳號"),
        a.terms("软件账号"),
        "Taiwan phrases and variants fold together"
    );
}

#[test]
fn a_first_release_store_is_migrated_and_keeps_its_analyzer() {
    let dir = tempfile::tempdir().unwrap();
    let old = AnalyzerConfig {
        latin_trigrams: false,
        ..AnalyzerConfig::default()
    };
    {
        let s = EmbeddedStore::open(
            dir.path(),
            StoreOptions {
                analyzer: old,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        s.apply(vec![update(
            "a.md",
            &["员工请假须提前提交 Merits 申请"],
            "人事部",
        )])
        .unwrap();
    }
    // turn it back into what the first release wrote: schema 1, analyzer without trigrams
    {
        let c = rusqlite::Connection::open(dir.path().join("kb.sqlite")).unwrap();
        c.execute_batch(
            "DROP TABLE vectors; DROP TABLE failures; PRAGMA user_version = 1;
             UPDATE meta SET value = '{\"words\":true,\"unigrams\":true,\"bigrams\":true}' WHERE key = 'analyzer';",
        )
        .unwrap();
    }
    let s = EmbeddedStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(s.search(&q("请假")).unwrap()[0].doc_key, "a.md");
    // the old analyzer is kept: no trigrams, so `merit` does not meet `merits`
    assert!(s.search(&q("merit")).unwrap().is_empty());
    s.record_failures(&[("b.pdf".into(), "no text layer".into())])
        .unwrap();
    assert_eq!(s.stats().unwrap().failed_sources, 1);
    s.apply(vec![update("b.pdf", &["补上了文字层"], "人事部")])
        .unwrap();
    assert_eq!(
        s.stats().unwrap().failed_sources,
        0,
        "stored files are not failures"
    );
    let c = rusqlite::Connection::open(dir.path().join("kb.sqlite")).unwrap();
    let v: u32 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, luodi_index::SCHEMA_VERSION);
}

#[test]
fn latin_word_forms_meet_through_trigrams() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path(), StoreOptions::default()).unwrap();
    s.apply(vec![
        update("a.md", &["Merit Network 负责 NSFNET 的运营"], "x"),
        update("b.md", &["公司网络的运营由信息部负责"], "x"),
    ])
    .unwrap();
    assert_eq!(
        s.search(&q("Merits 在网络中的角色")).unwrap()[0].doc_key,
        "a.md"
    );
}

#[test]
fn vectors_are_searched_exactly_and_leave_with_their_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path(), StoreOptions::default()).unwrap();
    s.apply(vec![
        update("a.md", &["年假", "病假"], "人事部"),
        update("b.md", &["住宿"], "财务部"),
    ])
    .unwrap();
    let pending = s.chunks_without_vector("m", 10).unwrap();
    assert_eq!(pending.len(), 3);
    // the title goes before the chunk text
    assert!(pending[0].1.starts_with("a.md\n"), "{pending:?}");
    let unit = |i: usize| {
        let mut v = vec![0.0f32; 8];
        v[i] = 1.0;
        v
    };
    let vs: Vec<(u64, Vec<f32>)> = pending
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, unit(i)))
        .collect();
    s.put_vectors("m", &vs).unwrap();
    assert_eq!(s.vector_status("m").unwrap().missing(), 0);
    assert_eq!(s.vector_status("other").unwrap().with_vector, 0);
    let mut q = unit(2);
    q[0] = 0.5;
    let hits = s.dense_search("m", &q, 2).unwrap();
    assert_eq!(
        hits.iter().map(|h| h.0).collect::<Vec<_>>(),
        vec![vs[2].0, vs[0].0]
    );
    assert!(
        s.dense_search("m", &[1.0, 0.0], 2).is_err(),
        "wrong dimension"
    );
    // removing a source removes its chunks' vectors, and search forgets them
    s.apply(vec![Change::Remove("b.md".into())]).unwrap();
    assert_eq!(s.vector_status("m").unwrap().with_vector, 2);
    assert!(s
        .dense_search("m", &q, 3)
        .unwrap()
        .iter()
        .all(|h| h.0 != vs[2].0));
    let v = vec![0.25f32, -1.5, 3.0];
    assert_eq!(
        luodi_index::vector_from_bytes(&luodi_index::vector_to_bytes(&v)),
        v
    );
}
