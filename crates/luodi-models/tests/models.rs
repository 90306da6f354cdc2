//! Integration tests of luodi-models against the real installed models (`scripts/test.sh` runs
//! `luodi models install` first): e5 vectors against the reference C engine, the LLM loading the
//! real GGUF and generating, and the typed errors of bad input.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use luodi_models::catalog::{self, E5_SMALL, E5_WEIGHTS, QWEN_05B, QWEN_05B_GGUF};
use luodi_models::e5::oracle::Oracle;
use luodi_models::e5::{cosine, E5Model, EmbedKind};
use luodi_models::install;
use luodi_models::llm::llama::{LlamaConfig, LlamaGenerator};
use luodi_models::llm::requant;
use luodi_models::llm::{ChatMessage, FinishReason, GenParams, Generator};
use luodi_models::{models_dir, ModelError};

fn e5() -> &'static E5Model {
    static M: OnceLock<E5Model> = OnceLock::new();
    M.get_or_init(|| {
        let p = install::require(&models_dir(), E5_SMALL, E5_WEIGHTS)
            .expect("e5 installed (scripts/test.sh installs it)");
        E5Model::load(&p, 2).expect("e5 loads")
    })
}

fn llm() -> &'static LlamaGenerator {
    static G: OnceLock<LlamaGenerator> = OnceLock::new();
    G.get_or_init(|| {
        let p = install::require(&models_dir(), QWEN_05B, QWEN_05B_GGUF).expect("LLM installed");
        LlamaGenerator::load(
            &p,
            LlamaConfig {
                n_ctx: 2048,
                threads: 2,
                n_batch: 512,
                prompt_cache: None,
                flash_attention: false,
            },
        )
        .expect("GGUF loads")
    })
}

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/handbook")
}

/// ≥ 200 texts of 5–500 characters from the project's sample handbook (简体, 繁體, English).
fn sample_texts() -> Vec<String> {
    let mut docs = Vec::new();
    for name in [
        "员工手册-请假制度.md",
        "remote-work-policy.md",
        "差旅費報銷辦法.html",
    ] {
        let raw = std::fs::read_to_string(samples_dir().join(name)).expect("sample");
        // drop markup crudely: tags and markdown marks
        let mut text = String::new();
        let mut in_tag = false;
        for c in raw.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                '#' | '*' | '|' => {}
                _ if !in_tag => text.push(c),
                _ => {}
            }
        }
        docs.push(text.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    // 13 lengths × 6 evenly spaced windows × 3 documents
    let mut out = Vec::new();
    for d in &docs {
        let chars: Vec<char> = d.chars().collect();
        for len in [5usize, 8, 12, 16, 20, 30, 45, 60, 80, 120, 200, 320, 500] {
            let len = len.min(chars.len());
            let span = chars.len() - len;
            for k in 0..6 {
                let start = span * k / 5;
                out.push(chars[start..start + len].iter().collect::<String>());
            }
        }
    }
    out
}

#[test]
fn e5_matches_the_reference_engine_on_200_texts() {
    let dir = models_dir().join(E5_SMALL);
    let work = std::env::temp_dir().join(format!("luodi-e5ref-{}", std::process::id()));
    let oracle = Oracle::build(&dir, &work, 2).expect("e5.c compiles");
    let texts = sample_texts();
    assert!(texts.len() >= 200, "only {} texts", texts.len());
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut worst = (1.0f32, String::new());
    // every text as a passage, the short ones also as queries
    let short: Vec<&str> = refs
        .iter()
        .copied()
        .filter(|t| t.chars().count() <= 80)
        .collect();
    for (kind, refs) in [(EmbedKind::Passage, &refs), (EmbedKind::Query, &short)] {
        let ours = e5().embed(refs, kind);
        let (theirs, _) = oracle.embed(refs, kind, 1).expect("oracle runs");
        assert_eq!(ours.len(), theirs.len());
        for ((a, b), t) in ours.iter().zip(&theirs).zip(refs.iter()) {
            assert_eq!(a.len(), 384);
            let c = cosine(a, b);
            if c < worst.0 {
                worst = (c, t.to_string());
            }
        }
    }
    // a text of several 512-token windows and the empty text
    let long = texts.iter().take(40).cloned().collect::<Vec<_>>().join(" ");
    for t in [long.as_str(), ""] {
        let a = e5().embed_one(t, EmbedKind::Passage);
        let (b, _) = oracle
            .embed(&[t], EmbedKind::Passage, 1)
            .expect("oracle runs");
        let c = cosine(&a, &b[0]);
        if c < worst.0 {
            worst = (c, t.chars().take(40).collect());
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    assert!(
        worst.0 >= 0.999,
        "cosine {} < 0.999 for {:?}",
        worst.0,
        worst.1
    );
}

#[test]
fn e5_sparse_head_matches_the_reference_engine() {
    let dir = models_dir().join(E5_SMALL);
    let sae = install::require(&models_dir(), E5_SMALL, catalog::E5_SAE).expect("sae.bin");
    let mut model = E5Model::load(&dir.join(E5_WEIGHTS), 2).expect("e5 loads");
    assert_eq!(model.sparse_dim(), 0);
    assert!(
        model.embed_sparse(&["年假"], 8)[0].is_empty(),
        "no head, no vector"
    );
    model.load_sparse(&sae).expect("sae.bin loads");
    assert_eq!(model.sparse_dim(), 16_384);
    let work = std::env::temp_dir().join(format!("luodi-e5sparse-{}", std::process::id()));
    let oracle = Oracle::build(&dir, &work, 2).expect("e5.c compiles");
    let texts = sample_texts();
    // every 4th sample text, a text of several windows and the empty text (one token: ▁)
    let mut refs: Vec<&str> = texts.iter().step_by(4).map(String::as_str).collect();
    let long = texts.iter().take(40).cloned().collect::<Vec<_>>().join(" ");
    refs.extend([long.as_str(), ""]);
    let ours = model.embed_sparse(&refs, 64);
    let (theirs, _) = oracle
        .embed_sparse(&refs, &sae, 64, 1)
        .expect("oracle runs");
    let _ = std::fs::remove_dir_all(&work);
    assert_eq!(ours.len(), theirs.len());
    let mut worst = (1.0f32, String::new());
    let mut cos = Vec::new();
    for ((a, b), t) in ours.iter().zip(&theirs).zip(&refs) {
        assert!(
            a.len() <= 64 && a.windows(2).all(|w| w[0].1 >= w[1].1),
            "heaviest first"
        );
        let c = luodi_models::e5::sparse_cosine(a, b);
        cos.push(c);
        if c < worst.0 {
            worst = (c, t.chars().take(40).collect());
        }
    }
    // the same features with weights within ~1 %: the 4-bit head amplifies the last digits
    // of the token states (the dense vectors agree to 0.999), so a feature near a token's
    // top-k line can swap with its neighbour
    let mean = cos.iter().sum::<f32>() / cos.len() as f32;
    assert!(mean >= 0.98, "mean sparse cosine {mean} < 0.98");
    assert!(
        worst.0 >= 0.93,
        "sparse cosine {} < 0.93 for {:?}",
        worst.0,
        worst.1
    );
    // a question and the passage answering it share latent terms; an unrelated one fewer
    let v = model.embed_sparse(
        &[
            "年假可以顺延到什么时候",
            "员工当年未休完的年假可顺延至次年3月31日前使用。",
            "The cafeteria opens at 7 am.",
        ],
        64,
    );
    let (near, far) = (
        luodi_models::e5::sparse_cosine(&v[0], &v[1]),
        luodi_models::e5::sparse_cosine(&v[0], &v[2]),
    );
    assert!(near > far, "{near} vs {far}");
}

#[test]
fn e5_ranks_the_answering_passage_first() {
    let q = e5().embed_one("年假可以顺延到什么时候", EmbedKind::Query);
    let ps = e5().embed(
        &[
            "当年未休的年假可顺延至次年3月31日，逾期作废。",
            "Home internet costs are reimbursed up to 100 yuan per month.",
            "員工出差住宿費依城市等級核定上限。",
        ],
        EmbedKind::Passage,
    );
    let scores: Vec<f32> = ps.iter().map(|p| cosine(&q, p)).collect();
    assert!(scores[0] > scores[1] && scores[0] > scores[2], "{scores:?}");
    // unit length
    let n: f32 = q.iter().map(|x| x * x).sum();
    assert!((n - 1.0).abs() < 1e-4);
}

#[test]
fn e5_handles_a_100k_character_text() {
    let text = "青禾科技员工手册。".repeat(11_200);
    assert!(text.chars().count() >= 100_000);
    let v = e5().embed_one(&text, EmbedKind::Passage);
    assert_eq!(v.len(), 384);
    assert!(v.iter().all(|x| x.is_finite()));
}

#[test]
fn llm_generates_with_the_chat_template_and_reuses_the_system_prompt() {
    let g = llm();
    let system = ChatMessage::system("你是青禾科技的助手。只用一句话回答。");
    let params = GenParams {
        max_tokens: 24,
        ..GenParams::default()
    };
    let mut streamed = String::new();
    let first = g
        .chat(
            &[system.clone(), ChatMessage::user("1加1等于几？")],
            &params,
            &mut |t| {
                streamed.push_str(t);
                true
            },
        )
        .expect("generates");
    assert!(!first.text.trim().is_empty());
    assert_eq!(streamed, first.text, "the stream is the answer");
    assert!(
        first.text.contains('2') || first.text.contains('二'),
        "{:?}",
        first.text
    );
    let second = g
        .chat(
            &[system, ChatMessage::user("中国的首都是哪里？")],
            &params,
            &mut |_| true,
        )
        .expect("generates");
    assert!(
        second.cached_tokens >= 10,
        "system prompt reused: {} cached",
        second.cached_tokens
    );
    assert!(second.text.contains("北京"), "{:?}", second.text);
}

#[test]
fn llm_quotes_the_evidence_and_decodes_alternative_quotes() {
    let g = llm();
    let evidence = "员工入职满一年后享有5天带薪年假。当年未休的年假可顺延至次年3月31日，逾期作废。加班可以调休。";
    let messages = [
        ChatMessage::system("只根据资料回答，直接摘录资料中能回答问题的最短原文。"),
        ChatMessage::user(format!(
            "资料：\n[1] {evidence}\n问题：没休完的年假最晚什么时候要休完？"
        )),
    ];
    let greedy_params = GenParams {
        max_tokens: 32,
        spans: vec![evidence.to_string()],
        ..GenParams::default()
    };
    let greedy = g
        .chat(&messages, &greedy_params, &mut |_| true)
        .expect("generates");
    assert!(
        !greedy.text.is_empty() && evidence.contains(&greedy.text),
        "{:?}",
        greedy.text
    );
    assert!(greedy.alternatives.is_empty(), "one quote asked for");
    let params = GenParams {
        span_candidates: 3,
        ..greedy_params.clone()
    };
    let mut shown = String::new();
    let several = g
        .chat(&messages, &params, &mut |t| {
            shown.push_str(t);
            true
        })
        .expect("generates");
    // the greedy quote comes first and is the one shown; the others start elsewhere
    assert_eq!(several.text, greedy.text);
    assert_eq!(shown, greedy.text, "only the first quote is streamed");
    assert!(
        (2..=3).contains(&several.alternatives.len()),
        "{:?}",
        several.alternatives
    );
    assert_eq!(several.alternatives[0].text, greedy.text);
    let mut firsts = Vec::new();
    for a in &several.alternatives {
        assert!(
            !a.text.is_empty() && evidence.contains(&a.text),
            "{:?}",
            a.text
        );
        assert!(a.logprob <= 0.0 && a.tokens >= 1, "{a:?}");
        firsts.push(a.text.chars().next());
    }
    firsts.dedup();
    assert_eq!(
        firsts.len(),
        several.alternatives.len(),
        "different first characters"
    );
    // the cache went back to the prompt between quotes: asking again gives the same answer
    let again = g
        .chat(&messages, &greedy_params, &mut |_| true)
        .expect("generates");
    assert_eq!(again.text, greedy.text);
}

#[test]
fn llm_scores_a_reply_token_by_token_and_prefers_the_one_the_passage_asks_for() {
    let g = llm();
    let messages = [
        ChatMessage::system("读下面的资料，写出一个能用这段资料回答的问题。"),
        ChatMessage::user("资料：青禾科技的年假为每年15天，入职满一年后可以申请。"),
    ];
    let on_topic = g
        .reply_logprobs(&messages, "青禾科技的年假有多少天？")
        .expect("scores");
    let off_topic = g
        .reply_logprobs(&messages, "火星上的沙尘暴一般持续多久？")
        .expect("scores");
    assert!(!on_topic.is_empty() && !off_topic.is_empty());
    assert!(on_topic.iter().all(|l| *l <= 0.0 && l.is_finite()));
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(
        mean(&on_topic) > mean(&off_topic) + 0.5,
        "{} vs {}",
        mean(&on_topic),
        mean(&off_topic)
    );
    // the same scoring twice gives the same numbers (the cached prefix is reused correctly).
    // Other tests may use the model in between, so the prompt may be evaluated again in a batch
    // of another shape, which rounds differently: a CI machine saw 0.11 nats on an unlikely
    // token (-4.63 vs -4.74). A wrongly reused prefix moves scores by whole nats and the mean
    // with them, which is what this guards.
    let again = g
        .reply_logprobs(&messages, "青禾科技的年假有多少天？")
        .expect("scores");
    assert_eq!(on_topic.len(), again.len());
    for (a, b) in on_topic.iter().zip(&again) {
        assert!((a - b).abs() < 0.3, "{a} vs {b}");
    }
    assert!(
        (mean(&on_topic) - mean(&again)).abs() < 0.05,
        "{} vs {}",
        mean(&on_topic),
        mean(&again)
    );
}

#[test]
fn llm_stops_at_stop_strings_and_max_tokens() {
    let g = llm();
    let params = GenParams {
        max_tokens: 5,
        ..GenParams::default()
    };
    let out = g
        .chat(
            &[ChatMessage::user(
                "Count from 1 to 50, separated by commas.",
            )],
            &params,
            &mut |_| true,
        )
        .expect("generates");
    assert_eq!(out.finish, FinishReason::Length);
    assert!(out.completion_tokens <= 5);
    let params = GenParams {
        max_tokens: 60,
        stop: vec!["5".into()],
        ..GenParams::default()
    };
    let out = g
        .chat(
            &[ChatMessage::user(
                "Count from 1 to 50, separated by commas.",
            )],
            &params,
            &mut |_| true,
        )
        .expect("generates");
    assert_eq!(out.finish, FinishReason::Stop);
    assert!(!out.text.contains('5'), "{:?}", out.text);
    assert!(out.text.contains('4'), "{:?}", out.text);
}

#[test]
fn llm_prompt_over_the_context_is_a_typed_error() {
    let g = llm();
    let long = "上下文".repeat(3000);
    let err = g
        .chat(
            &[ChatMessage::user(long)],
            &GenParams::default(),
            &mut |_| true,
        )
        .unwrap_err();
    assert!(
        matches!(err, ModelError::ContextExceeded { limit: 2048, .. }),
        "{err}"
    );
    // and the generator still works afterwards
    let ok = g.chat(
        &[ChatMessage::user("Say OK.")],
        &GenParams {
            max_tokens: 4,
            ..Default::default()
        },
        &mut |_| true,
    );
    assert!(ok.is_ok());
}

#[test]
fn broken_model_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    // a truncated GGUF: the real header, no tensors
    let real = install::require(&models_dir(), QWEN_05B, QWEN_05B_GGUF).unwrap();
    let mut head = vec![0u8; 1 << 20];
    use std::io::Read;
    std::fs::File::open(&real)
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &head).unwrap();
    let err = LlamaGenerator::load(&truncated, LlamaConfig::default())
        .err()
        .expect("fails");
    assert!(
        matches!(err, ModelError::Corrupt { .. } | ModelError::Unsupported(_)),
        "{err}"
    );
    // not a GGUF at all
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, "this is not a model file, just text".repeat(10)).unwrap();
    let err = LlamaGenerator::load(&junk, LlamaConfig::default())
        .err()
        .expect("fails");
    assert!(matches!(err, ModelError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("junk.gguf"));
    // a truncated e5 file
    let e5_real =
        std::fs::read(install::require(&models_dir(), E5_SMALL, E5_WEIGHTS).unwrap()).unwrap();
    let e5_cut = dir.path().join("e5.bin");
    std::fs::write(&e5_cut, &e5_real[..e5_real.len() / 2]).unwrap();
    let err = E5Model::load(&e5_cut, 1).err().expect("fails");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn a_missing_model_names_the_install_command() {
    let dir = tempfile::tempdir().unwrap();
    let err = install::require(dir.path(), QWEN_05B, QWEN_05B_GGUF).unwrap_err();
    assert!(err.to_string().contains("luodi models install"), "{err}");
    let err = install::require(dir.path(), catalog::QWEN_15B, catalog::QWEN_15B_GGUF).unwrap_err();
    assert!(err.to_string().contains("--with-large"), "{err}");
}

#[test]
fn the_q8_0_copy_is_made_deterministically_and_chosen_only_where_amx_runs_it() {
    let q4 = install::require(&models_dir(), QWEN_05B, QWEN_05B_GGUF).unwrap();
    let pinned = catalog::find(QWEN_05B).unwrap().derived[0];
    assert_eq!(pinned.from, QWEN_05B_GGUF);
    // llama.cpp's requantization gives the pinned bytes on this machine, whatever the build
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q8.gguf");
    requant::requantize_q8_0(&q4, &out, 2).unwrap();
    install::verify(&out, pinned.size, pinned.sha256).unwrap();
    // a source that is no GGUF is an error naming it, and leaves nothing behind
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, "not a model").unwrap();
    let bad = dir.path().join("bad.gguf");
    let err = requant::requantize_q8_0(&junk, &bad, 1).unwrap_err();
    assert!(err.to_string().contains("junk.gguf"), "{err}");
    assert!(!bad.exists());
    // the installed model opens as its Q8_0 copy exactly where this build has AMX kernels
    // (`luodi models install` made the copy there)
    let chosen = install::require_fastest(&models_dir(), QWEN_05B, QWEN_05B_GGUF).unwrap();
    let expected = if requant::amx_kernels() {
        pinned.name
    } else {
        QWEN_05B_GGUF
    };
    assert!(chosen.ends_with(expected), "{}", chosen.display());
}

#[test]
fn install_from_a_folder_verifies_and_is_idempotent() {
    // the installed e5 files serve as the "copied by hand" folder
    let src = models_dir().join(E5_SMALL);
    let dest = tempfile::tempdir().unwrap();
    let mut opts = install::InstallOptions::new(dest.path().to_path_buf());
    opts.from = Some(src.clone());
    opts.only = vec![E5_SMALL.into()];
    let first = install::install(&opts, &mut |_| {}).expect("installs");
    assert_eq!(first, vec![(E5_SMALL, install::Outcome::Installed)]);
    let second = install::install(&opts, &mut |_| {}).expect("verifies");
    assert_eq!(second, vec![(E5_SMALL, install::Outcome::Verified)]);
    assert!(install::require(dest.path(), E5_SMALL, E5_WEIGHTS).is_ok());
    // a corrupted file is found, never used, and repaired by the next install
    let f = dest.path().join(E5_SMALL).join(catalog::E5_SAE);
    let mut b = std::fs::read(&f).unwrap();
    b[100] ^= 0xff;
    std::fs::write(&f, &b).unwrap();
    assert!(install::require(dest.path(), E5_SMALL, catalog::E5_SAE).is_err());
    let third = install::install(&opts, &mut |_| {}).expect("repairs");
    assert_eq!(third, vec![(E5_SMALL, install::Outcome::Installed)]);
    // a wrong file offered by hand is refused with both checksums named
    let bad = tempfile::tempdir().unwrap();
    for f in catalog::find(E5_SMALL).unwrap().files {
        std::fs::write(bad.path().join(f.name), b"x").unwrap();
    }
    let other = tempfile::tempdir().unwrap();
    let mut opts = install::InstallOptions::new(other.path().to_path_buf());
    opts.from = Some(bad.path().to_path_buf());
    opts.only = vec![E5_SMALL.into()];
    let err = install::install(&opts, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("expected"), "{err}");
    assert!(install::require(other.path(), E5_SMALL, E5_WEIGHTS).is_err());
}

/// A one-shot HTTP endpoint on loopback answering with `response` (status line included).
fn serve_once(response: String) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut len = 0;
        let mut head = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).unwrap();
        s.write_all(response.as_bytes()).unwrap();
        format!("{head}{}", String::from_utf8_lossy(&body))
    });
    (url, h)
}

#[test]
fn remote_endpoint_streams_through_the_same_trait() {
    use luodi_models::llm::remote::{RemoteConfig, RemoteGenerator};
    let chunks = ["北京", "是中国", "的首都。"]
        .iter()
        .map(|t| format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{t}\"}},\"finish_reason\":null}}]}}\n\n"))
        .collect::<String>();
    let sse = format!(
        "{chunks}data: {{\"choices\":[{{\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\ndata: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":5}}}}\n\ndata: [DONE]\n\n"
    );
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n{sse}",
        sse.len()
    );
    let (url, server) = serve_once(resp);
    let g = RemoteGenerator::new(RemoteConfig {
        base_url: url,
        model: "qwen-remote".into(),
        api_key: Some("sk-test".into()),
        context_length: 8192,
        timeout: std::time::Duration::from_secs(10),
    });
    let mut pieces = Vec::new();
    let out = g
        .chat(
            &[ChatMessage::user("中国的首都是哪里？")],
            &GenParams::default(),
            &mut |t| {
                pieces.push(t.to_string());
                true
            },
        )
        .expect("streams");
    assert_eq!(out.text, "北京是中国的首都。");
    assert_eq!(pieces.len(), 3);
    assert_eq!(out.finish, FinishReason::Stop);
    assert_eq!((out.prompt_tokens, out.completion_tokens), (12, 5));
    let request = server.join().unwrap();
    assert!(request.contains("POST /v1/chat/completions"));
    assert!(request.contains("Bearer sk-test"));
    assert!(request.contains("\"stream\":true") && request.contains("中国的首都是哪里"));

    // errors are typed: 429 is transient, 401 permanent, a context overflow is ContextExceeded
    for (status, body, check) in [
        (
            "429 Too Many Requests",
            r#"{"error":{"message":"busy"}}"#,
            0,
        ),
        ("401 Unauthorized", r#"{"error":{"message":"bad key"}}"#, 1),
        (
            "400 Bad Request",
            r#"{"error":{"message":"too long","code":"context_length_exceeded"}}"#,
            2,
        ),
    ] {
        let (url, server) = serve_once(format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        let g = RemoteGenerator::new(RemoteConfig {
            base_url: url,
            model: "m".into(),
            api_key: None,
            context_length: 8192,
            timeout: std::time::Duration::from_secs(10),
        });
        let err = g
            .chat(
                &[ChatMessage::user("hi")],
                &GenParams::default(),
                &mut |_| true,
            )
            .unwrap_err();
        server.join().unwrap();
        match check {
            0 => assert!(err.is_transient(), "{err}"),
            1 => assert!(matches!(err, ModelError::Permanent(_)), "{err}"),
            _ => assert!(matches!(err, ModelError::ContextExceeded { .. }), "{err}"),
        }
    }
    // nothing listening: transient
    let g = RemoteGenerator::new(RemoteConfig {
        base_url: "http://127.0.0.1:9/v1".into(),
        model: "m".into(),
        api_key: None,
        context_length: 8192,
        timeout: std::time::Duration::from_secs(5),
    });
    assert!(g
        .chat(
            &[ChatMessage::user("hi")],
            &GenParams::default(),
            &mut |_| true
        )
        .unwrap_err()
        .is_transient());
}

#[test]
fn llm_prompt_cache_file_carries_the_prefix_to_a_new_generator_and_survives_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prefix.kv");
    let p = install::require(&models_dir(), QWEN_05B, QWEN_05B_GGUF).expect("LLM installed");
    let load = || {
        LlamaGenerator::load(
            &p,
            LlamaConfig {
                n_ctx: 1024,
                threads: 2,
                n_batch: 512,
                prompt_cache: Some(file.clone()),
                flash_attention: false,
            },
        )
        .expect("GGUF loads")
    };
    let system = ChatMessage::system(
        "你是青禾科技的知识库助手，只根据资料回答，答案简短直接。资料中没有答案时回答：知识库中没有找到相关内容。",
    );
    let params = GenParams {
        max_tokens: 8,
        ..GenParams::default()
    };
    let ask = |g: &LlamaGenerator, q: &str| {
        g.chat(
            &[system.clone(), ChatMessage::user(q)],
            &params,
            &mut |_| true,
        )
        .unwrap()
    };
    // the first process reads everything and leaves the state behind
    let first = ask(&load(), "年假有几天？");
    assert_eq!(first.cached_tokens, 0);
    assert!(file.is_file());
    // a new process (a new generator) reads only what differs from it
    let second = ask(&load(), "病假要交什么证明？");
    assert!(
        second.cached_tokens >= 20,
        "the system prompt came from the file: {second:?}"
    );
    assert!(second.cached_tokens < second.prompt_tokens);
    // a corrupt file is not trusted: the answer still comes, reading the whole prompt
    std::fs::write(&file, b"not a llama state").unwrap();
    let third = ask(&load(), "事假每次最多几天？");
    assert_eq!(third.cached_tokens, 0);
    assert!(!third.text.is_empty());
}
