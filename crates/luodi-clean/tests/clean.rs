//! The recipe engine through its library API: every input record ends up in exactly one of
//! the outputs, no two kept documents are the same text, and batch size does not change the
//! result.

use std::collections::HashSet;
use std::path::Path;

use luodi_clean::input::{InputOptions, Source};
use luodi_clean::recipe::RecipeSource;
use luodi_clean::run::{run, NoProgress, RunOptions};
use proptest::prelude::*;

fn ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn texts(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

const PHRASES: &[&str] = &[
    "员工入职满一年后享有带薪年假",
    "差旅住宿标准为一线城市每晚六百元",
    "報銷須於出差結束後十五日內提交",
    "会议室预订请在前一天下午五点前完成",
    "The remote work policy applies to all staff",
    "新员工须在入职当周完成信息安全培训",
];

fn corpus() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::collection::vec(0..PHRASES.len(), 1..5).prop_map(|idx| {
            idx.iter()
                .map(|i| PHRASES[*i])
                .collect::<Vec<_>>()
                .join("，")
                + "。"
        }),
        1..60,
    )
}

fn clean(records: &[String], batch: usize) -> (tempfile::TempDir, Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let lines: Vec<String> = records
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"id": format!("r{i}"), "text": t}).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("out");
    let opts = RunOptions {
        batch_docs: batch,
        ..RunOptions::new(&out)
    };
    run(
        &RecipeSource::load("sft-prep").unwrap(),
        &[Source::Path(input)],
        &InputOptions::default(),
        &opts,
        &NoProgress,
    )
    .unwrap();
    let kept = ids(&out.join("clean.jsonl"));
    let dropped = ids(&out.join("rejects.jsonl"));
    (dir, kept, dropped)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_record_is_kept_or_rejected_once_and_kept_texts_differ(records in corpus(), batch in 1usize..8) {
        let (dir, kept, dropped) = clean(&records, batch);
        let mut all: Vec<String> = kept.iter().chain(&dropped).cloned().collect();
        all.sort();
        let mut want: Vec<String> = (0..records.len()).map(|i| format!("r{i}")).collect();
        want.sort();
        prop_assert_eq!(all, want);
        let kept_texts = texts(&dir.path().join("out/clean.jsonl"));
        let folded: HashSet<String> = kept_texts
            .iter()
            .map(|t| luodi_text::fold_for_search(t))
            .collect();
        prop_assert_eq!(folded.len(), kept_texts.len(), "two kept documents are the same text");
        // the batch size is an implementation detail: one big batch decides the same
        let (_d2, kept_one, _) = clean(&records, 1000);
        prop_assert_eq!(kept, kept_one);
    }
}

#[test]
fn a_50_mb_single_line_is_judged_like_any_record_and_the_rest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let huge = "长".repeat((50 << 20) / 3 + 1); // 50 MB of UTF-8 on one line
    let lines = [
        serde_json::json!({"id": "before", "text": "会议室预订请在前一天下午五点前完成。"})
            .to_string(),
        serde_json::json!({"id": "huge", "text": huge}).to_string(),
        serde_json::json!({"id": "after", "text": "新员工须在入职当周完成信息安全培训。"})
            .to_string(),
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("out");
    let o = run(
        &RecipeSource::load("sft-prep").unwrap(),
        &[Source::Path(input)],
        &InputOptions::default(),
        &RunOptions::new(&out),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(ids(&out.join("clean.jsonl")), ["before", "after"]);
    let rejects = std::fs::read_to_string(out.join("rejects.jsonl")).unwrap();
    assert!(
        rejects.contains("\"huge\"") && rejects.contains("too_long"),
        "{}",
        &rejects[..rejects.len().min(300)]
    );
    assert!(
        rejects.len() < 10_000,
        "a reject holds a preview, not the record"
    );
    assert_eq!(o.stats.input_docs, 3);
}
