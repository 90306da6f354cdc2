//! Invariants of the text primitives (property tests) and conversions users rely on.

use luodi_text::{
    clean, decode, fold_for_search, split_sentences, to_simplified, to_traditional, Variant,
};
use proptest::prelude::*;

fn zh_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            proptest::char::range('\u{4e00}', '\u{9fa5}'),
            proptest::char::range('a', 'z'),
            proptest::char::range('０', '９'),
            Just('。'),
            Just('，'),
            Just(' '),
            Just('\n'),
            Just('\t'),
            Just('\u{200b}'),
        ],
        0..200,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn clean_is_idempotent(s in zh_text()) {
        let once = clean(&s);
        prop_assert_eq!(clean(&once), once.clone());
        let bad = once.contains('\u{200b}') || once.contains('\t');
        prop_assert!(!bad, "invisible or tab left in {:?}", once);
    }

    #[test]
    fn fold_is_idempotent(s in zh_text()) {
        let once = fold_for_search(&s);
        prop_assert_eq!(fold_for_search(&once), once);
    }

    #[test]
    fn gbk_round_trips(s in "[\u{4e00}-\u{9fa5}，。]{6,60}[a-z0-9 ]{0,10}[\u{4e00}-\u{9fa5}]{2,20}") {
        let (bytes, _, unmappable) = encoding_rs::GBK.encode(&s);
        prop_assume!(!unmappable);
        let d = decode(&bytes).unwrap();
        prop_assert_eq!(d.text, s);
    }

    #[test]
    fn sentences_cover_the_text(s in zh_text()) {
        let joined: String = split_sentences(&s).concat().chars().filter(|c| !c.is_whitespace()).collect();
        let original: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        prop_assert_eq!(joined, original);
    }
}

#[test]
fn traditional_round_trip_of_handbook_terms() {
    let s = "员工请假须提前三个工作日在人事系统中提交申请";
    let t = to_traditional(s, Variant::Taiwan);
    assert_eq!(t, "員工請假須提前三個工作日在人事系統中提交申請");
    assert_eq!(to_simplified(&t), s);
}
