//! The service end to end over real HTTP on loopback: a real server (without the models,
//! which the CLI's end-to-end tests load), real keys, real knowledge bases.

use std::path::Path;
use std::time::{Duration, Instant};

use luodi_engine::{Home, IngestOptions, KbConfig, NoProgress, Scope, Turn};
use luodi_server::{Running, ServerConfig};
use serde_json::{json, Value};

const FIN_SECRET: &str = "FIN-SECRET-7731";
const HR_SECRET: &str = "HR-SECRET-4410";

struct Server {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    url: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn home(&self) -> &Home {
        &self.running.as_ref().unwrap().state.home
    }

    fn stop(mut self) {
        let r = self.running.take().unwrap();
        self.rt.block_on(r.stop()).unwrap();
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

/// Two knowledge bases, each with a document holding a marker no other may see, a
/// conversation with one turn, and a finished job.
fn seed(home: &Home, docs: &Path) {
    for (kb, secret, text) in [
        (
            "finance",
            FIN_SECRET,
            "差旅报销须在出差结束后十五日内提交。",
        ),
        ("hr", HR_SECRET, "员工入职满一年后享有带薪年假五天。"),
    ] {
        home.create(kb, KbConfig::default()).unwrap();
        let dir = docs.join(kb);
        write(
            &dir,
            "policy.md",
            &format!("# {kb} policy\n\n{text} 编号 {secret}。\n"),
        );
        let k = home.open_kb(kb).unwrap();
        k.ingest(
            &[dir],
            &IngestOptions {
                remove_missing: true,
                ..IngestOptions::default()
            },
            &NoProgress,
        )
        .unwrap();
        let c = home
            .conversation_create(kb, &format!("{kb} question"))
            .unwrap();
        home.conversation_add_turn(
            &c.id,
            &Turn {
                seq: 0,
                question: format!("{kb} question {secret}"),
                standalone: format!("{kb} question"),
                answer: format!("{text} {secret}"),
                citations: Vec::new(),
                refused: false,
                choices: Vec::new(),
                format: luodi_engine::AnswerFormat::Plain,
                confidence: 1.0,
                ttft_ms: 1.0,
                total_ms: 1.0,
                model: "test".into(),
                model_fingerprint: "test".into(),
                kb_version: 1,
                created_at: 1,
            },
        )
        .unwrap();
        let j = home
            .job_create(kb, "ingest", &json!({"files": []}))
            .unwrap();
        home.job_update(&j.id, "done", (0, 0), Some(&json!({"note": secret})), None)
            .unwrap();
        home.glossary_add(
            kb,
            vec![luodi_engine::Entry::term(&format!("{kb}指标"), secret)],
            "seed",
        )
        .unwrap();
        home.faq_add(
            kb,
            vec![luodi_engine::faq::Faq {
                id: 0,
                question: format!("{kb} 常见问题"),
                answer: format!("答案 {secret}"),
                source: "hand".into(),
                created_at: 0,
                created_by: String::new(),
            }],
            "seed",
        )
        .unwrap();
    }
}

/// A new name each call (writes in the matrix must not clash with each other).
fn fresh(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "{prefix}{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

fn start_with(dir: tempfile::TempDir, setup: impl FnOnce(&Home)) -> Server {
    let home_dir = dir.path().join("home");
    {
        let home = Home::open(&home_dir).unwrap();
        setup(&home);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = ServerConfig {
        home: home_dir,
        addr: "127.0.0.1:0".parse().unwrap(),
        load_models: false,
        shutdown_grace: Duration::from_secs(20),
        max_body_bytes: 256 << 10,
        ..ServerConfig::default()
    };
    let running = rt.block_on(luodi_server::start(config)).unwrap();
    let admin = running
        .admin_key
        .clone()
        .expect("an admin key at first start");
    Server {
        url: format!("http://{}", running.addr),
        rt,
        running: Some(running),
        admin,
        _dir: dir,
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    start_with(dir, |h| seed(h, &docs))
}

/// One request: status and body text.
fn call(
    url: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, String) {
    let mut req = ureq::request(method, &format!("{url}{path}"));
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    let r = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    match r {
        Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

fn upload(url: &str, kb: &str, key: &str, name: &str, content: &str) -> (u16, String) {
    upload_many(url, kb, key, &[(name, content.as_bytes())])
}

fn upload_many(url: &str, kb: &str, key: &str, files: &[(&str, &[u8])]) -> (u16, String) {
    let boundary = "luodi-test-boundary";
    let mut body = Vec::new();
    for (name, content) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let r = ureq::post(&format!("{url}/v1/kbs/{kb}/documents"))
        .set("Authorization", &format!("Bearer {key}"))
        .set(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .send_bytes(&body);
    match r {
        Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
        Err(e) => panic!("upload: {e}"),
    }
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn wait_job(s: &Server, id: &str, key: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let (code, body) = call(&s.url, "GET", &format!("/v1/jobs/{id}"), Some(key), None);
        assert_eq!(code, 200, "{body}");
        let j = json_of(&body);
        if j["state"] == "done" || j["state"] == "failed" {
            return j;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "job stuck: {j}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn isolation_matrix_no_key_reads_or_infers_another_knowledge_base() {
    let s = start();
    let h = s.home();
    let mk = |name: &str, scopes: &[(&str, bool)], expires: Option<i64>| {
        h.key_create(
            name,
            false,
            &scopes
                .iter()
                .map(|(kb, write)| Scope {
                    kb: kb.to_string(),
                    write: *write,
                })
                .collect::<Vec<_>>(),
            expires,
        )
        .unwrap()
        .secret
    };
    let fin_read = mk("finance-read", &[("finance", false)], None);
    let fin_write = mk("finance-write", &[("finance", true)], None);
    let hr_read = mk("hr-read", &[("hr", false)], None);
    let revoked = h
        .key_create(
            "revoked",
            false,
            &[Scope {
                kb: "finance".into(),
                write: true,
            }],
            None,
        )
        .unwrap();
    h.key_revoke(&revoked.key.id).unwrap();
    let expired = mk("expired", &[("finance", true)], Some(1));
    let conv_of = |kb: &str| h.conversations(Some(kb), 1, 0).unwrap()[0].id.clone();
    let job_of = |kb: &str| h.jobs(Some(kb), 1).unwrap()[0].id.clone();

    // who may do what: (key, readable KBs, writable KBs, admin)
    type KeyCase<'a> = (&'a str, Option<String>, Vec<&'a str>, Vec<&'a str>, bool);
    let keys: Vec<KeyCase> = vec![
        (
            "admin",
            Some(s.admin.clone()),
            vec!["finance", "hr"],
            vec!["finance", "hr"],
            true,
        ),
        (
            "finance-read",
            Some(fin_read),
            vec!["finance"],
            vec![],
            false,
        ),
        (
            "finance-write",
            Some(fin_write),
            vec!["finance"],
            vec!["finance"],
            false,
        ),
        ("hr-read", Some(hr_read), vec!["hr"], vec![], false),
        (
            "revoked",
            Some(revoked.secret.clone()),
            vec![],
            vec![],
            false,
        ),
        ("expired", Some(expired), vec![], vec![], false),
        ("no key", None, vec![], vec![], false),
        ("wrong key", Some("ld-0000".into()), vec![], vec![], false),
    ];

    // per knowledge base: (endpoint, method, path, body, needs write, needs admin)
    type Case = (
        &'static str,
        &'static str,
        String,
        Option<Value>,
        bool,
        bool,
    );
    let cases = |kb: &str, conv: &str, job: &str| -> Vec<Case> {
        vec![
            (
                "kb info",
                "GET",
                format!("/v1/kbs/{kb}"),
                None,
                false,
                false,
            ),
            (
                "documents",
                "GET",
                format!("/v1/kbs/{kb}/documents"),
                None,
                false,
                false,
            ),
            (
                "search",
                "POST",
                format!("/v1/kbs/{kb}/search"),
                Some(json!({"query": "SECRET 报销 年假", "k": 5, "mode": "bm25"})),
                false,
                false,
            ),
            (
                "jobs",
                "GET",
                format!("/v1/kbs/{kb}/jobs"),
                None,
                false,
                false,
            ),
            (
                "feedback list",
                "GET",
                format!("/v1/kbs/{kb}/feedback"),
                None,
                false,
                false,
            ),
            (
                "conversations of kb",
                "GET",
                format!("/v1/conversations?kb={kb}"),
                None,
                false,
                false,
            ),
            (
                "conversation",
                "GET",
                format!("/v1/conversations/{conv}"),
                None,
                false,
                false,
            ),
            ("job", "GET", format!("/v1/jobs/{job}"), None, false, false),
            (
                "feedback",
                "POST",
                "/v1/feedback".into(),
                Some(json!({"conversation_id": conv, "rating": "down", "comment": "test"})),
                false,
                false,
            ),
            (
                "chat",
                "POST",
                "/v1/chat/completions".into(),
                Some(
                    json!({"model": format!("kb:{kb}"), "messages": [{"role": "user", "content": "年假有几天"}]}),
                ),
                false,
                false,
            ),
            (
                "document delete",
                "DELETE",
                format!("/v1/kbs/{kb}/documents?source=%2Fnone"),
                None,
                true,
                false,
            ),
            (
                "glossary",
                "GET",
                format!("/v1/kbs/{kb}/glossary"),
                None,
                false,
                false,
            ),
            (
                "glossary export",
                "GET",
                format!("/v1/kbs/{kb}/glossary?format=csv"),
                None,
                false,
                false,
            ),
            (
                "glossary history",
                "GET",
                format!("/v1/kbs/{kb}/glossary/history"),
                None,
                false,
                false,
            ),
            (
                "glossary add",
                "POST",
                format!("/v1/kbs/{kb}/glossary"),
                Some(json!({"kind": "abbreviation", "term": fresh("ZB"), "forms": ["总部"]})),
                true,
                false,
            ),
            (
                "glossary remove",
                "DELETE",
                format!("/v1/kbs/{kb}/glossary/999999"),
                None,
                true,
                false,
            ),
            (
                "faqs",
                "GET",
                format!("/v1/kbs/{kb}/faqs"),
                None,
                false,
                false,
            ),
            (
                "faq add",
                "POST",
                format!("/v1/kbs/{kb}/faqs"),
                Some(json!({"question": fresh("问题"), "answer": "答案"})),
                true,
                false,
            ),
            (
                "faq import",
                "POST",
                format!("/v1/kbs/{kb}/faqs/import"),
                Some(json!({"question": fresh("导入"), "answer": "答案"})),
                true,
                false,
            ),
            (
                "faq remove",
                "DELETE",
                format!("/v1/kbs/{kb}/faqs/999999"),
                None,
                true,
                false,
            ),
            (
                "faq mode",
                "GET",
                format!("/v1/kbs/{kb}/faqs/mode"),
                None,
                false,
                false,
            ),
            (
                "faq mode set",
                "PUT",
                format!("/v1/kbs/{kb}/faqs/mode"),
                Some(json!({"mode": "strict"})),
                true,
                false,
            ),
        ]
    };
    let secrets = [("finance", FIN_SECRET), ("hr", HR_SECRET)];
    let mut checked = 0;
    let mut unauthorized_reads = Vec::new();
    let mut problems = Vec::new();
    for (who, key, readable, writable, admin) in &keys {
        let k = key.as_deref();
        for kb in ["finance", "hr"] {
            let conv = conv_of(kb);
            let job = job_of(kb);
            let ghost_cases = cases("ghost", "00000000000000000000", "00000000000000000000");
            for (i, (what, method, path, body, write, _admin_only)) in
                cases(kb, &conv, &job).into_iter().enumerate()
            {
                checked += 1;
                let (code, text) = call(&s.url, method, &path, k, body.as_ref());
                let may_read = readable.contains(&kb);
                let may_write = writable.contains(&kb);
                let other_secret = secrets.iter().find(|(n, _)| *n == kb).unwrap().1;
                if !may_read && ((200..300).contains(&code) || text.contains(other_secret)) {
                    unauthorized_reads.push(format!("{who} {what} {kb}: {code} {text}"));
                }
                if key.is_none()
                    || !["admin", "finance-read", "finance-write", "hr-read"].contains(who)
                {
                    if code != 401 {
                        problems.push(format!("{who} {what} {kb}: {code}, not 401"));
                    }
                    continue;
                }
                if !may_read {
                    // exactly what a knowledge base (or id) that does not exist answers
                    let (gcode, gtext) = {
                        let (_, _, gpath, gbody, _, _) = &ghost_cases[i];
                        call(&s.url, method, gpath, k, gbody.as_ref())
                    };
                    let same = gtext
                        .replace("ghost", kb)
                        .replace("00000000000000000000", &conv)
                        == text
                        || gtext
                            .replace("ghost", kb)
                            .replace("00000000000000000000", &job)
                            == text;
                    if code != 404 || gcode != 404 || !same {
                        problems.push(format!(
                            "{who} {what} {kb}: {code} {text} — a missing one: {gcode} {gtext}"
                        ));
                    }
                } else if write && !may_write {
                    if code != 403 {
                        problems.push(format!("{who} {what} {kb}: {code}, not 403"));
                    }
                } else {
                    let ok = match what {
                        "chat" => code == 503, // no model in this test: after the scope check
                        "document delete" => code == 404 && text.contains("no document"),
                        "glossary remove" => code == 404 && text.contains("no glossary entry"),
                        "faq remove" => code == 404 && text.contains("no FAQ"),
                        _ => (200..300).contains(&code),
                    };
                    if !ok {
                        problems.push(format!("{who} {what} {kb}: {code} {text}"));
                    }
                }
                let _ = admin;
            }
            // uploads
            checked += 1;
            let (code, text) = upload(&s.url, kb, k.unwrap_or("none"), "x.md", "# x\n\nhello\n");
            let expect = if !readable.contains(&kb) {
                if key.is_some()
                    && ["admin", "finance-read", "finance-write", "hr-read"].contains(who)
                {
                    404
                } else {
                    401
                }
            } else if !writable.contains(&kb) {
                403
            } else {
                202
            };
            if code != expect {
                problems.push(format!(
                    "{who} upload {kb}: {code} (expected {expect}) {text}"
                ));
            }
        }
        // lists never name what the key may not read
        for (what, path) in [
            ("models", "/v1/models"),
            ("kbs", "/v1/kbs"),
            ("conversations", "/v1/conversations"),
        ] {
            checked += 1;
            let (code, text) = call(&s.url, "GET", path, k, None);
            if code == 200 {
                for (kb, secret) in secrets {
                    let named = text.contains(&format!("\"kb:{kb}\""))
                        || text.contains(&format!("\"name\":\"{kb}\""))
                        || text.contains(&format!("\"kb\":\"{kb}\""))
                        || text.contains(secret);
                    if named && !readable.contains(&kb) {
                        unauthorized_reads.push(format!("{who} {what} lists {kb}: {text}"));
                    }
                }
            }
        }
        // admin endpoints
        for path in ["/v1/keys", "/v1/audit"] {
            checked += 1;
            let (code, _) = call(&s.url, "GET", path, k, None);
            let expect = if *admin {
                200
            } else if ["finance-read", "finance-write", "hr-read"].contains(who) {
                403
            } else {
                401
            };
            if code != expect {
                problems.push(format!("{who} GET {path}: {code}, expected {expect}"));
            }
        }
    }
    println!(
        "isolation matrix: {checked} requests, {} unauthorized reads",
        unauthorized_reads.len()
    );
    assert!(unauthorized_reads.is_empty(), "{unauthorized_reads:#?}");
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(checked > 200, "{checked}");
    s.stop();
}

/// A request with a raw body (an import file).
fn send_raw(url: &str, path: &str, key: &str, ctype: &str, body: &str) -> (u16, String) {
    let r = ureq::post(&format!("{url}{path}"))
        .set("Authorization", &format!("Bearer {key}"))
        .set("Content-Type", ctype)
        .send_string(body);
    match r {
        Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
        Err(e) => panic!("{path}: {e}"),
    }
}

#[test]
fn glossary_and_faqs_are_managed_over_the_api_and_searches_read_the_new_words() {
    let s = start();
    let h = s.home();
    let writer = h
        .key_create(
            "finance-editor",
            false,
            &[Scope {
                kb: "finance".into(),
                write: true,
            }],
            None,
        )
        .unwrap()
        .secret;
    let w = Some(writer.as_str());
    let hits = |q: &str| -> usize {
        let (code, body) = call(
            &s.url,
            "POST",
            "/v1/kbs/finance/search",
            w,
            Some(&json!({"query": q, "k": 5, "mode": "bm25"})),
        );
        assert_eq!(code, 200, "{body}");
        json_of(&body)["data"].as_array().map_or(0, Vec::len)
    };
    // the abbreviation means nothing to the knowledge base until the glossary says so
    assert_eq!(hits("TRX"), 0);
    let (code, body) = call(
        &s.url,
        "POST",
        "/v1/kbs/finance/glossary",
        w,
        Some(&json!({"kind": "abbreviation", "term": "TRX", "forms": ["差旅报销"]})),
    );
    assert_eq!(code, 201, "{body}");
    let id = json_of(&body)["data"][0]["id"].as_i64().unwrap();
    assert!(
        hits("TRX") > 0,
        "a search right after the change reads the glossary"
    );
    // a clash is refused naming both entries, and nothing is added
    let (code, body) = call(
        &s.url,
        "POST",
        "/v1/kbs/finance/glossary",
        w,
        Some(&json!({"entries": [
            {"kind": "synonym", "term": "报销", "forms": ["报账"]},
            {"kind": "abbreviation", "term": "TRX", "forms": ["差旅费用"]}
        ]})),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("差旅费用") && body.contains("差旅报销"),
        "{body}"
    );
    assert!(!h
        .glossary("finance")
        .unwrap()
        .entries()
        .iter()
        .any(|e| e.term == "报销"));
    // import: bad rows by number, the rest in
    let csv = "kind,term,forms,definition\n\
               abbreviation,财部,财务部,\n\
               colour,x,y,\n\
               term,报销时限,,出差结束后十五日内\n\
               abbreviation,TRX,差旅费,\n";
    let (code, body) = send_raw(
        &s.url,
        "/v1/kbs/finance/glossary/import",
        &writer,
        "text/csv",
        csv,
    );
    assert_eq!(code, 200, "{body}");
    let r = json_of(&body);
    assert_eq!(r["added"], 2, "{r}");
    let rows: Vec<i64> = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["row"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, vec![3, 5], "{r}");
    assert!(r.get("unread_columns").is_none(), "{r}");
    // a column the import does not read is named
    let (code, body) = send_raw(
        &s.url,
        "/v1/kbs/finance/glossary/import",
        &writer,
        "text/csv",
        "kind,term,forms,备注\nabbreviation,人部,人事部,新增\n",
    );
    assert_eq!(code, 200, "{body}");
    let r = json_of(&body);
    assert_eq!(r["added"], 1, "{r}");
    assert_eq!(r["unread_columns"], json!(["备注"]), "{r}");
    // bad imports say what is wrong: no format, a header without the columns, not UTF-8
    let (code, body) = send_raw(
        &s.url,
        "/v1/kbs/finance/glossary/import",
        &writer,
        "application/octet-stream",
        csv,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("format"), "{body}");
    let (code, body) = send_raw(
        &s.url,
        "/v1/kbs/finance/glossary/import",
        &writer,
        "text/csv",
        "abbr,full\n杭分,杭州分公司\n",
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("kind") && body.contains("abbr, full"),
        "{body}"
    );
    let (code, body) = call(
        &s.url,
        "POST",
        "/v1/kbs/finance/glossary",
        w,
        Some(&json!({"kind": "colour", "term": "x"})),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("colour") || body.contains("kind"), "{body}");
    // export, history with who, removal
    let (code, body) = call(
        &s.url,
        "GET",
        "/v1/kbs/finance/glossary?format=csv",
        w,
        None,
    );
    assert_eq!(code, 200);
    assert!(
        body.starts_with("kind,term,forms") && body.contains("财部,财务部"),
        "{body}"
    );
    let (_, body) = call(&s.url, "GET", "/v1/kbs/finance/glossary/history", w, None);
    let hist = json_of(&body);
    assert!(
        hist["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["by"].as_str().unwrap().contains("finance-editor")),
        "{hist}"
    );
    let (code, _) = call(
        &s.url,
        "DELETE",
        &format!("/v1/kbs/finance/glossary/{id}"),
        w,
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(
        hits("TRX"),
        0,
        "removed: the abbreviation means nothing again"
    );
    // a change made beside the server (another process: the CLI) is read at the next question
    let cli = Home::open(h.root()).unwrap();
    cli.glossary_add(
        "finance",
        vec![luodi_engine::Entry::abbreviation("TRV", "差旅报销")],
        "cli:test",
    )
    .unwrap();
    assert!(
        hits("TRV") > 0,
        "the server reloads words changed by another process"
    );

    // suggestions mined from the text: accepted ones become entries, rejected ones go away
    let (code, body) = upload(
        &s.url,
        "finance",
        &writer,
        "机构.md",
        "# 机构\n\n杭州分公司（以下简称杭分）负责浙江区域的差旅审批。\n",
    );
    assert_eq!(code, 202, "{body}");
    let done = wait_job(&s, json_of(&body)["id"].as_str().unwrap(), &writer);
    assert_eq!(done["state"], "done", "{done}");
    let (code, body) = call(
        &s.url,
        "GET",
        "/v1/kbs/finance/glossary/suggestions",
        w,
        None,
    );
    assert_eq!(code, 200, "{body}");
    let sug = json_of(&body)["data"].clone();
    let hu = sug
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["abbr"] == "杭分")
        .unwrap_or_else(|| panic!("{sug}"))
        .clone();
    assert_eq!(hu["full"], "杭州分公司");
    let (code, body) = call(
        &s.url,
        "POST",
        "/v1/kbs/finance/glossary/suggestions",
        w,
        Some(&json!({"accept": [hu]})),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        json_of(&body)["added"][0]["source"],
        "suggest:stated",
        "{body}"
    );
    let (_, body) = call(
        &s.url,
        "GET",
        "/v1/kbs/finance/glossary/suggestions",
        w,
        None,
    );
    assert!(
        !body.contains("杭分"),
        "accepted: no longer a suggestion: {body}"
    );
    let (code, _) = call(
        &s.url,
        "GET",
        "/v1/kbs/finance/glossary/suggestions",
        Some(&s.admin),
        None,
    );
    assert_eq!(code, 200);
    let reader = h
        .key_create(
            "finance-reader",
            false,
            &[Scope {
                kb: "finance".into(),
                write: false,
            }],
            None,
        )
        .unwrap()
        .secret;
    let (code, _) = call(
        &s.url,
        "GET",
        "/v1/kbs/finance/glossary/suggestions",
        Some(&reader),
        None,
    );
    assert_eq!(code, 403, "suggestions are the editors' tool");

    // FAQs: by hand, a repeated question refused, imported, and from a corrected answer
    let (code, body) = call(
        &s.url,
        "POST",
        "/v1/kbs/finance/faqs",
        w,
        Some(&json!({"question": "报销要多久提交？", "answer": "出差结束后十五日内。"})),
    );
    assert_eq!(code, 201, "{body}");
    let faq_id = json_of(&body)["id"].as_i64().unwrap();
    let (code, body) = call(
        &s.url,
        "POST",
        "/v1/kbs/finance/faqs",
        w,
        Some(&json!({"question": "报销要多久提交?", "answer": "另一个答案"})),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains(&format!("#{faq_id}")), "{body}");
    let (code, body) = send_raw(
        &s.url,
        "/v1/kbs/finance/faqs/import",
        &writer,
        "application/x-ndjson",
        "{\"question\":\"发票丢了怎么办\",\"answer\":\"补开或写说明。\"}\n{\"question\":\"\"}\nnot json\n",
    );
    assert_eq!(code, 200, "{body}");
    let r = json_of(&body);
    assert_eq!(r["added"], 1, "{r}");
    assert_eq!(r["problems"].as_array().unwrap().len(), 2, "{r}");
    let conv = h.conversations(Some("finance"), 1, 0).unwrap()[0]
        .id
        .clone();
    let (code, body) = call(
        &s.url,
        "POST",
        "/v1/feedback",
        w,
        Some(&json!({"conversation_id": conv, "rating": "down",
                     "correction": "差旅报销须在出差结束后十五日内提交，逾期需部门负责人签字。"})),
    );
    assert_eq!(code, 201, "{body}");
    let fb = json_of(&body)["id"].as_str().unwrap().to_owned();
    let (code, body) = call(
        &s.url,
        "POST",
        "/v1/kbs/finance/faqs",
        w,
        Some(&json!({"from_feedback": fb})),
    );
    assert_eq!(code, 201, "{body}");
    let f = json_of(&body);
    assert_eq!(f["source"], "correction");
    assert!(f["answer"]
        .as_str()
        .unwrap()
        .contains("逾期需部门负责人签字"));
    assert!(f["question"].as_str().unwrap().contains(FIN_SECRET));
    let (_, body) = call(&s.url, "GET", "/v1/kbs/finance/faqs", w, None);
    assert_eq!(json_of(&body)["data"].as_array().unwrap().len(), 4);
    let (code, _) = call(
        &s.url,
        "DELETE",
        &format!("/v1/kbs/finance/faqs/{faq_id}"),
        w,
        None,
    );
    assert_eq!(code, 204);
    let (code, body) = call(
        &s.url,
        "DELETE",
        &format!("/v1/kbs/finance/faqs/{faq_id}"),
        w,
        None,
    );
    assert_eq!(code, 404, "{body}");

    // how readily questions are answered from the FAQs: strict until set, then what was set
    // (a word or a threshold), and a bad mode refused by name, the mode kept
    let mode = |body: Option<&Value>| -> (u16, Value) {
        let method = if body.is_some() { "PUT" } else { "GET" };
        let (code, text) = call(&s.url, method, "/v1/kbs/finance/faqs/mode", w, body);
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    let (code, m) = mode(None);
    assert_eq!((code, m["mode"].as_str()), (200, Some("strict")), "{m}");
    let strict = m["threshold"].as_f64().unwrap();
    let (code, m) = mode(Some(&json!({"mode": "broad"})));
    assert_eq!((code, m["mode"].as_str()), (200, Some("broad")), "{m}");
    assert!(m["threshold"].as_f64().unwrap() < strict, "{m}");
    let (code, m) = mode(Some(&json!({"mode": 0.42})));
    assert_eq!(code, 200, "{m}");
    assert_eq!(m["threshold"].as_f64(), Some(0.42), "{m}");
    let (code, m) = mode(Some(&json!({"mode": "loose"})));
    assert_eq!(code, 400, "{m}");
    assert!(m.to_string().contains("loose"), "{m}");
    let (code, m) = mode(Some(&json!({"mode": "off"})));
    assert_eq!((code, m["threshold"].is_null()), (200, true), "{m}");
    assert_eq!(h.faq_mode("finance").unwrap().to_string(), "off");
    assert_eq!(h.open_kb("finance").unwrap().faq_mode.to_string(), "off");
    s.stop();
}

#[test]
fn uploads_are_ingested_by_a_job_searched_and_deleted() {
    let s = start();
    let (code, body) = upload(
        &s.url,
        "finance",
        &s.admin,
        "发票规定.md",
        "# 发票规定\n\n增值税专用发票须在开票后三十日内交到财务共享中心。\n",
    );
    assert_eq!(code, 202, "{body}");
    let job = json_of(&body);
    let done = wait_job(&s, job["id"].as_str().unwrap(), &s.admin);
    assert_eq!(done["state"], "done", "{done}");
    assert!(done["files_total"].as_u64().unwrap() >= 1);

    let search = |q: &str| {
        let (code, body) = call(
            &s.url,
            "POST",
            "/v1/kbs/finance/search",
            Some(&s.admin),
            Some(&json!({"query": q, "k": 3})),
        );
        assert_eq!(code, 200, "{body}");
        json_of(&body)
    };
    let hits = search("增值税专用发票交到哪里");
    assert_eq!(hits["data"][0]["title"], "发票规定", "{hits}");
    let source = hits["data"][0]["source"].as_str().unwrap().to_owned();

    let (code, body) = call(
        &s.url,
        "GET",
        "/v1/kbs/finance/documents",
        Some(&s.admin),
        None,
    );
    assert_eq!(code, 200);
    let docs = json_of(&body);
    assert!(
        docs["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "发票规定.md" && d["uploaded"] == true),
        "{docs}"
    );

    let enc: String = source.bytes().map(|b| format!("%{b:02X}")).collect();
    let (code, body) = call(
        &s.url,
        "DELETE",
        &format!("/v1/kbs/finance/documents?source={enc}"),
        Some(&s.admin),
        None,
    );
    assert_eq!(code, 204, "{body}");
    assert!(!Path::new(&source).exists(), "the uploaded file is removed");
    let hits = search("增值税专用发票交到哪里");
    assert!(
        hits["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["title"] != "发票规定"),
        "{hits}"
    );

    // one upload with a good file, an unsupported one and a corrupt one: the job reports the
    // two per file and ingests the third
    let (code, body) = upload_many(
        &s.url,
        "finance",
        &s.admin,
        &[
            ("程序.exe", b"MZ\x90\x00binary"),
            ("损坏.docx", b"PK\x03\x04 this is not a zip"),
            (
                "报销时限.md",
                "# 报销时限\n\n出租车票须在三十日内报销。\n".as_bytes(),
            ),
        ],
    );
    assert_eq!(code, 202, "{body}");
    let done = wait_job(&s, json_of(&body)["id"].as_str().unwrap(), &s.admin);
    assert_eq!(done["state"], "done", "{done}");
    let failed = done["report"]["failed"].to_string();
    assert!(
        failed.contains("程序.exe") && failed.contains("unsupported"),
        "{done}"
    );
    assert!(failed.contains("损坏.docx"), "{done}");
    assert_eq!(search("出租车票报销期限")["data"][0]["title"], "报销时限");

    // bodies over the limit: 413 in OpenAI's shape. The server may answer before it has read
    // the whole body and close the connection (as nginx does); a client still writing then sees
    // the connection break instead of the answer — on a loaded machine that is a race, so a
    // broken connection counts as a refusal too, and the server must keep serving after it.
    let big = "长".repeat(200_000);
    let refused = |r: std::thread::Result<(u16, String)>| match r {
        Ok((code, body)) => {
            assert_eq!(code, 413, "{body}");
            Some(json_of(&body))
        }
        Err(e) => {
            let m = e.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(
                m.contains("Broken pipe") || m.contains("reset") || m.contains("closed"),
                "{m}"
            );
            None
        }
    };
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let up = std::panic::catch_unwind(|| upload(&s.url, "finance", &s.admin, "big.md", &big));
    let se = std::panic::catch_unwind(|| {
        call(
            &s.url,
            "POST",
            "/v1/kbs/finance/search",
            Some(&s.admin),
            Some(&json!({"query": big})),
        )
    });
    std::panic::set_hook(quiet);
    if let Some(v) = refused(up) {
        assert_eq!(v["error"]["code"], "request_too_large");
    }
    if let Some(v) = refused(se) {
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    assert_eq!(search("出租车票报销期限")["data"][0]["title"], "报销时限");

    // a path-like name keeps only its last part: nothing lands outside the files folder
    let (code, body) = upload(
        &s.url,
        "finance",
        &s.admin,
        "../../evil.md",
        "# evil\n\nx\n",
    );
    assert_eq!(code, 202, "{body}");
    assert_eq!(json_of(&body)["input"]["files"][0]["name"], "evil.md");
    assert!(s.home().files_dir("finance").join("evil.md").is_file());
    // bad uploads: a hidden name, an empty file
    for (name, content) in [(".hidden", "x"), ("empty.md", "")] {
        let (code, body) = upload(&s.url, "finance", &s.admin, name, content);
        assert_eq!(code, 400, "{name}: {body}");
        assert_eq!(json_of(&body)["error"]["type"], "invalid_request_error");
    }
    s.stop();
}

#[test]
fn a_job_left_running_resumes_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    let home_dir = dir.path().join("home");
    let s = start_with(dir, |h| {
        seed(h, &docs);
        // a server was killed midway through this job
        write(
            &h.files_dir("hr"),
            "加班.md",
            "# 加班\n\n加班须提前一天由部门经理审批。\n",
        );
        let j = h
            .job_create("hr", "ingest", &json!({"files": ["加班.md"]}))
            .unwrap();
        h.job_update(&j.id, "running", (0, 1), None, None).unwrap();
    });
    let j = &s.home().jobs(Some("hr"), 1).unwrap()[0];
    let done = wait_job(&s, &j.id, &s.admin);
    assert_eq!(done["state"], "done", "{done}");
    let (code, body) = call(
        &s.url,
        "POST",
        "/v1/kbs/hr/search",
        Some(&s.admin),
        Some(&json!({"query": "加班审批", "k": 1})),
    );
    assert_eq!(code, 200);
    assert_eq!(json_of(&body)["data"][0]["title"], "加班", "{body}");
    assert!(home_dir.exists());
    s.stop();
}

#[test]
fn errors_keep_openai_shape_and_keys_are_managed() {
    let s = start();
    // errors as OpenAI's SDKs expect them
    for (method, path, key, body, code, kind) in [
        ("GET", "/v1/models", None, None, 401, "authentication_error"),
        (
            "GET",
            "/v1/models",
            Some("ld-wrong"),
            None,
            401,
            "authentication_error",
        ),
        (
            "GET",
            "/v1/nothing",
            Some(s.admin.as_str()),
            None,
            404,
            "not_found_error",
        ),
        (
            "POST",
            "/v1/chat/completions",
            Some(s.admin.as_str()),
            Some(json!({"model": "kb:finance"})),
            400,
            "invalid_request_error",
        ),
        (
            "POST",
            "/v1/chat/completions",
            Some(s.admin.as_str()),
            Some(json!({"model": "kb:finance", "messages": [{"role": "robot", "content": "x"}]})),
            400,
            "invalid_request_error",
        ),
        (
            "POST",
            "/v1/chat/completions",
            Some(s.admin.as_str()),
            Some(json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]})),
            404,
            "not_found_error",
        ),
        (
            "POST",
            "/v1/kbs/finance/search",
            Some(s.admin.as_str()),
            Some(json!({"query": ""})),
            400,
            "invalid_request_error",
        ),
        (
            "POST",
            "/v1/kbs/finance/search",
            Some(s.admin.as_str()),
            Some(json!({"query": "x", "k": "ten"})),
            400,
            "invalid_request_error",
        ),
        (
            "POST",
            "/v1/embeddings",
            Some(s.admin.as_str()),
            Some(json!({"input": "x"})),
            503,
            "server_error",
        ),
        (
            "POST",
            "/v1/kbs",
            Some(s.admin.as_str()),
            Some(json!({"name": "bad name!"})),
            400,
            "invalid_request_error",
        ),
        (
            "POST",
            "/v1/kbs",
            Some(s.admin.as_str()),
            Some(json!({"name": "finance"})),
            409,
            "invalid_request_error",
        ),
    ] {
        let (got, text) = call(&s.url, method, path, key, body.as_ref());
        assert_eq!(got, code, "{method} {path}: {text}");
        let v = json_of(&text);
        assert_eq!(v["error"]["type"], kind, "{method} {path}: {text}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 5, "{text}");
    }

    // an admin makes a scoped key, which works at once and stops at once when revoked
    let (code, body) = call(
        &s.url,
        "POST",
        "/v1/keys",
        Some(&s.admin),
        Some(
            &json!({"name": "杭州分公司", "scopes": [{"kb": "hr", "write": false}], "expires_in_days": 30}),
        ),
    );
    assert_eq!(code, 201, "{body}");
    let k = json_of(&body);
    let secret = k["secret"].as_str().unwrap().to_owned();
    let id = k["key"]["id"].as_str().unwrap().to_owned();
    let (code, body) = call(&s.url, "GET", "/v1/me", Some(&secret), None);
    assert_eq!(code, 200);
    assert_eq!(json_of(&body)["scopes"][0]["kb"], "hr");
    let (code, body) = call(&s.url, "GET", "/v1/keys", Some(&s.admin), None);
    assert_eq!(code, 200);
    assert!(!body.contains(&secret), "secrets are never listed");
    assert!(body.contains(&id));
    let (code, _) = call(
        &s.url,
        "DELETE",
        &format!("/v1/keys/{id}"),
        Some(&s.admin),
        None,
    );
    assert_eq!(code, 204);
    let (code, body) = call(&s.url, "GET", "/v1/me", Some(&secret), None);
    assert_eq!(code, 401);
    assert!(body.contains("revoked"), "{body}");

    // a deleted knowledge base takes its scopes along: one made later under the same name
    // is not open to the old keys
    let old = s
        .home()
        .key_create(
            "old",
            false,
            &[Scope {
                kb: "hr".into(),
                write: false,
            }],
            None,
        )
        .unwrap()
        .secret;
    let (code, _) = call(&s.url, "DELETE", "/v1/kbs/hr", Some(&s.admin), None);
    assert_eq!(code, 204);
    let (code, _) = call(
        &s.url,
        "POST",
        "/v1/kbs",
        Some(&s.admin),
        Some(&json!({"name": "hr"})),
    );
    assert_eq!(code, 201);
    let (code, _) = call(&s.url, "GET", "/v1/kbs/hr", Some(&old), None);
    assert_eq!(code, 404);

    // the audit log knows who used which knowledge base, but not what was asked
    let (code, _) = call(
        &s.url,
        "POST",
        "/v1/kbs/finance/search",
        Some(&s.admin),
        Some(&json!({"query": "机密的问题文本", "k": 1})),
    );
    assert_eq!(code, 200);
    let (code, body) = call(&s.url, "GET", "/v1/audit?limit=500", Some(&s.admin), None);
    assert_eq!(code, 200);
    let log = json_of(&body);
    let search = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["route"] == "/v1/kbs/{kb}/search")
        .expect("the search is in the audit log");
    assert_eq!(search["kb"], "finance");
    assert_eq!(search["status"], 200);
    assert!(search["key_id"].as_str().unwrap().starts_with('k'));
    assert!(
        !body.contains("机密的问题文本"),
        "no content at the default policy"
    );

    // operations: health, metrics, the API description, the web page
    let (code, body) = call(&s.url, "GET", "/healthz", None, None);
    assert_eq!(code, 200);
    assert_eq!(json_of(&body)["status"], "ok");
    let (code, body) = call(&s.url, "GET", "/metrics", None, None);
    assert_eq!(code, 200);
    assert!(body.contains("luodi_http_requests_total{"), "{body}");
    assert!(body.contains("route=\"/v1/kbs/{kb}/search\""), "{body}");
    assert!(body.contains("luodi_generation_queue_depth"), "{body}");
    assert!(!body.contains("finance"), "metrics name no knowledge base");
    let (code, body) = call(&s.url, "GET", "/openapi.json", None, None);
    assert_eq!(code, 200);
    assert!(json_of(&body)["paths"]["/v1/chat/completions"].is_object());
    assert!(json_of(&body)["paths"]["/v1/kbs/{kb}/faqs/mode"]["put"].is_object());
    let (code, body) = call(&s.url, "GET", "/", None, None);
    assert_eq!(code, 200);
    assert!(body.contains("落地"));
    s.stop();
}
