// luodi web page: plain JavaScript against the same API as every other client.
"use strict";
const $ = (id) => document.getElementById(id);
let key = localStorage.getItem("luodi-key") || "";
let me = null;
let conversation = null;
let writable = {};

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + key }, opts.headers || {});
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(opts.json);
  }
  const r = await fetch(path, Object.assign({}, opts, { headers }));
  if (r.status === 401) { showLogin("密钥无效或已过期"); throw new Error("unauthorized"); }
  if (!r.ok) {
    let msg = r.status + "";
    try { msg = (await r.json()).error.message; } catch (_) {}
    throw new Error(msg);
  }
  return r.status === 204 ? null : r.json();
}

function showLogin(error) {
  $("login").hidden = false;
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
  $("login-error").textContent = error || "";
}

function show(view) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== view;
  for (const b of document.querySelectorAll("header nav button")) b.classList.toggle("on", b.dataset.view === view);
  if (view === "docs") loadDocs();
  if (view === "admin") loadAdmin();
  if (view === "words") loadWords();
}

async function start() {
  if (!key) return showLogin();
  try { me = await api("/v1/me"); } catch (e) { return; }
  $("login").hidden = true;
  $("who").textContent = me.name + (me.admin ? "（管理员）" : "");
  $("admin-tab").hidden = !me.admin;
  await loadKbs();
  show("ask");
  loadConversations();
}

async function loadKbs() {
  const kbs = (await api("/v1/kbs")).data;
  writable = Object.fromEntries(kbs.map((k) => [k.name, k.writable]));
  const sel = $("kb");
  const keep = sel.value || localStorage.getItem("luodi-kb");
  sel.replaceChildren(...kbs.map((k) => el("option", { value: k.name }, k.name)));
  if (keep && kbs.some((k) => k.name === keep)) sel.value = keep;
}

function kb() { return $("kb").value; }

async function loadConversations() {
  if (!kb()) return;
  const list = (await api("/v1/conversations?kb=" + encodeURIComponent(kb()) + "&limit=50")).data;
  $("convs").replaceChildren(...list.map((c) => {
    const li = el("li", { title: c.title, onclick: () => openConversation(c.id) }, c.title);
    if (conversation === c.id) li.classList.add("on");
    return li;
  }));
}

async function openConversation(id) {
  const c = await api("/v1/conversations/" + id);
  conversation = c.info.id;
  $("turns").replaceChildren();
  for (const t of c.turns) {
    const box = turnBox(t.question);
    box.answer.textContent = t.answer;
    box.answer.classList.toggle("refused", t.refused);
    if (t.model === "faq") box.answer.after(el("div", { class: "faq" }, "✓ 审核过的常见问题答案"));
    finishTurn(box, t.citations, t.seq, t.refused ? [] : null);
  }
  loadConversations();
}

function turnBox(question) {
  const answer = el("div", { class: "a" });
  const cites = el("div", { class: "cites" });
  const rate = el("div", { class: "rate" });
  const box = el("div", { class: "turn" }, el("div", { class: "q" }, question), answer, cites, rate);
  $("turns").append(box);
  box.scrollIntoView({ block: "end" });
  return { box, answer, cites, rate };
}

function place(e) {
  let p = e.title;
  for (const h of e.heading_path || []) if (h !== e.title) p += " › " + h;
  return p;
}

function openSource(e) {
  $("source").hidden = false;
  $("source-title").textContent = "[" + e.n + "] " + place(e);
  $("source-where").textContent = e.doc_key;
  $("source-text").textContent = e.text;
}

function finishTurn(box, citations, seq, evidence) {
  const shown = citations && citations.length ? citations : evidence || [];
  if (shown.length) box.cites.append(el("div", { class: "muted" }, citations && citations.length ? "来源：" : "最接近的段落："));
  for (const e of shown) {
    box.cites.append(el("a", { class: "cite", onclick: () => openSource(e) }, "[" + e.n + "] " + place(e)));
  }
  const send = async (body, note) => {
    await api("/v1/feedback", { method: "POST", json: Object.assign({ conversation_id: conversation, turn: seq }, body) });
    box.rate.replaceChildren(el("span", { class: "done" }, note));
  };
  const correction = el("input", { placeholder: "正确答案（可选）", class: "correction" });
  box.rate.append(
    el("button", { class: "up", title: "有帮助", onclick: () => send({ rating: "up" }, "谢谢反馈（有帮助）") }, "▲ 有帮助"),
    el("button", { class: "down", title: "没帮助", onclick: () => send({ rating: "down", correction: correction.value }, "已记录，谢谢反馈（没帮助）") }, "▼ 没帮助"),
    correction,
  );
}

async function ask(ev) {
  ev.preventDefault();
  const question = $("question").value.trim();
  if (!question || !kb()) return;
  $("question").value = "";
  $("ask-button").disabled = true;
  const box = turnBox(question);
  box.answer.textContent = "…";
  try {
    const body = { model: "kb:" + kb(), messages: [{ role: "user", content: question }], stream: true, format: $("format").value };
    if (conversation) body.conversation_id = conversation;
    const r = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!r.ok) {
      let msg = r.status + "";
      try { msg = (await r.json()).error.message; } catch (_) {}
      throw new Error(msg);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "", text = "", last = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          const delta = chunk.choices[0].delta.content;
          if (delta) { text += delta; box.answer.textContent = text; }
          if (chunk.luodi) last = chunk;
        }
      }
    }
    if (last) {
      const l = last.luodi;
      if (l.answer) box.answer.textContent = l.answer;
      if (l.faq) box.answer.after(el("div", { class: "faq" }, "✓ 审核过的常见问题答案：" + l.faq.question));
      box.answer.classList.toggle("refused", l.refused);
      conversation = l.conversation_id;
      finishTurn(box, last.citations, l.turn, l.evidence);
      loadConversations();
    }
  } catch (e) {
    box.answer.textContent = "出错了：" + e.message;
    box.answer.classList.add("refused");
  } finally {
    $("ask-button").disabled = false;
  }
}

async function loadDocs() {
  if (!kb()) return;
  const docs = (await api("/v1/kbs/" + encodeURIComponent(kb()) + "/documents")).data;
  $("doc-list").replaceChildren(...docs.map((d) => el("tr", {},
    el("td", {}, d.name),
    el("td", {}, (d.size / 1024).toFixed(1) + " KB"),
    el("td", {}, el("button", { onclick: async () => {
      if (!confirm("删除 " + d.name + "?")) return;
      await api("/v1/kbs/" + encodeURIComponent(kb()) + "/documents?source=" + encodeURIComponent(d.source), { method: "DELETE" });
      loadDocs();
    } }, "删除")))));
}

function upload(ev) {
  ev.preventDefault();
  const files = $("files").files;
  if (!files.length) return;
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  const xhr = new XMLHttpRequest();
  const bar = $("upload-progress");
  bar.hidden = false;
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
  xhr.onload = () => {
    if (xhr.status !== 202) {
      let msg = xhr.status + "";
      try { msg = JSON.parse(xhr.responseText).error.message; } catch (_) {}
      $("upload-status").textContent = "上传失败：" + msg;
      return;
    }
    pollJob(JSON.parse(xhr.responseText).id);
  };
  xhr.open("POST", "/v1/kbs/" + encodeURIComponent(kb()) + "/documents");
  xhr.setRequestHeader("Authorization", "Bearer " + key);
  xhr.send(form);
}

async function pollJob(id) {
  const j = await api("/v1/jobs/" + id);
  const bar = $("upload-progress");
  $("upload-status").textContent = { queued: "排队中", running: "处理中", done: "完成", failed: "失败：" + j.error }[j.state] + (j.files_total ? ` ${j.files_done}/${j.files_total}` : "");
  if (j.files_total) bar.value = (100 * j.files_done) / j.files_total;
  if (j.state === "queued" || j.state === "running") setTimeout(() => pollJob(id), 500);
  else loadDocs();
}

// --- glossary, suggestions and FAQs of the chosen knowledge base ---------------------------

/** The API under the chosen knowledge base: `kbApi("/glossary")` is /v1/kbs/{kb}/glossary. */
function kbApi(sub, opts) {
  return api("/v1/kbs/" + encodeURIComponent(kb()) + sub, opts);
}

const KINDS = { abbreviation: "缩写", synonym: "同义词", term: "业务术语" };

function wordsStatus(text, error) {
  $("words-status").textContent = text;
  $("words-status").className = error ? "error" : "muted";
}

async function guarded(work) {
  try { await work(); } catch (e) { wordsStatus(e.message, true); }
}

function importReport(r) {
  let t = "导入 " + r.added + " 条";
  if (r.problems.length) t += "；" + r.problems.length + " 行未导入：" + r.problems.map((p) => "第 " + p.row + " 行 " + p.reason).join("；");
  wordsStatus(t, r.problems.length > 0);
}

/** A button that asks `what？`, then DELETEs `sub` under the knowledge base and reloads. */
function removeButton(sub, what) {
  return el("button", { onclick: () => guarded(async () => {
    if (!confirm(what + "？")) return;
    await kbApi(sub, { method: "DELETE" });
    wordsStatus("已" + what);
    loadWords();
  }) }, "删除");
}

async function loadWords() {
  if (!kb()) return;
  const canWrite = !!writable[kb()];
  for (const e of document.querySelectorAll("#words .edit")) e.hidden = !canWrite;
  await guarded(async () => {
    const entries = (await kbApi("/glossary")).data;
    $("entry-list").replaceChildren(...entries.map((e) => el("tr", {},
      el("td", {}, "" + e.id),
      el("td", {}, KINDS[e.kind] || e.kind),
      el("td", {}, e.term),
      el("td", {}, [e.forms.join("、"), e.definition || ""].filter(Boolean).join(" — ")),
      el("td", { class: "muted" }, e.source),
      el("td", {}, canWrite ? removeButton("/glossary/" + e.id, "删除词条 " + e.term) : ""))));
    const history = (await kbApi("/glossary/history")).data;
    $("history-list").replaceChildren(...history.slice().reverse().map((c) => el("tr", {},
      el("td", {}, "v" + c.version),
      el("td", {}, new Date(c.at * 1000).toLocaleString()),
      el("td", {}, c.by),
      el("td", {}, c.action),
      el("td", {}, c.entry.term + (c.entry.forms.length ? " → " + c.entry.forms.join("、") : "")))));
    const mode = await kbApi("/faqs/mode");
    const sel = $("faq-mode");
    if (![...sel.options].some((o) => o.value === mode.mode)) sel.append(el("option", { value: mode.mode }, "阈值 " + mode.mode));
    sel.value = mode.mode;
    sel.disabled = !canWrite;
    $("faq-threshold").textContent = mode.threshold == null ? "" : "阈值 " + mode.threshold.toFixed(3);
    const faqs = (await kbApi("/faqs")).data;
    $("faq-list").replaceChildren(...faqs.map((f) => el("tr", {},
      el("td", {}, "" + f.id),
      el("td", {}, f.question),
      el("td", {}, f.answer),
      el("td", { class: "muted" }, f.source),
      el("td", {}, canWrite ? removeButton("/faqs/" + f.id, "删除常见问题 " + f.question) : ""))));
  });
}

let suggestions = [];

async function runSuggest() {
  $("suggest-run").disabled = true;
  wordsStatus("正在从文档中挖掘候选词条…");
  await guarded(async () => {
    suggestions = (await kbApi("/glossary/suggestions?limit=100")).data;
    $("suggest-box").hidden = false;
    $("suggest-all").checked = false;
    $("suggest-list").replaceChildren(...suggestions.map((s, i) => el("tr", {},
      el("td", {}, el("input", { type: "checkbox", "data-i": "" + i })),
      el("td", {}, s.abbr), el("td", {}, s.full),
      el("td", {}, { stated: "文中说明", together: "同时出现", predicted: "推测" }[s.evidence] || s.evidence),
      el("td", {}, "" + s.count),
      el("td", { class: "muted" }, s.example))));
    wordsStatus(suggestions.length ? "找到 " + suggestions.length + " 条候选，勾选后采纳或拒绝" : "没有新的候选词条");
  });
  $("suggest-run").disabled = false;
}

async function decide(accept) {
  const picked = [...document.querySelectorAll("#suggest-list input:checked")].map((c) => suggestions[+c.dataset.i]);
  if (!picked.length) return wordsStatus("先勾选候选词条", true);
  await guarded(async () => {
    const pairs = picked.map((s) => ({ abbr: s.abbr, full: s.full, evidence: s.evidence }));
    const r = await kbApi("/glossary/suggestions", { method: "POST", json: accept ? { accept: pairs } : { reject: pairs.map(({ abbr, full }) => ({ abbr, full })) } });
    wordsStatus(accept ? "已采纳 " + r.added.length + " 条" : "已拒绝 " + r.rejected + " 条（不再推荐）");
    await runSuggest();
    loadWords();
  });
}

function contentType(file) {
  return /\.jsonl?$/i.test(file.name) ? "application/x-ndjson" : "text/csv";
}

async function importFile(input, sub) {
  const file = input.files[0];
  if (!file) return;
  await guarded(async () => {
    const r = await kbApi(sub, { method: "POST", body: await file.text(), headers: { "Content-Type": contentType(file) } });
    importReport(r);
    loadWords();
  });
  input.value = "";
}

async function exportGlossary(format) {
  await guarded(async () => {
    const r = await fetch("/v1/kbs/" + encodeURIComponent(kb()) + "/glossary?format=" + format, { headers: { Authorization: "Bearer " + key } });
    if (!r.ok) throw new Error("导出失败：" + r.status);
    const a = el("a", { href: URL.createObjectURL(await r.blob()), download: kb() + "-glossary." + format });
    a.click();
    URL.revokeObjectURL(a.href);
  });
}

async function loadAdmin() {
  const kbs = (await api("/v1/kbs")).data;
  $("kb-list").replaceChildren(...kbs.map((k) => el("tr", {},
    el("td", {}, k.name),
    el("td", {}, k.stats.documents + " 文档 · " + k.stats.chunks + " 段"),
    el("td", {}, el("button", { onclick: async () => {
      if (!confirm("删除知识库 " + k.name + "？")) return;
      await api("/v1/kbs/" + encodeURIComponent(k.name), { method: "DELETE" });
      loadAdmin(); loadKbs();
    } }, "删除")))));
  const keys = (await api("/v1/keys")).data;
  $("key-list").replaceChildren(...keys.map((k) => el("tr", {},
    el("td", {}, k.id), el("td", {}, k.name),
    el("td", {}, k.admin ? "管理员" : k.scopes.map((s) => s.kb + (s.write ? "（可写）" : "")).join("、")),
    el("td", {}, k.revoked_at ? "已吊销" : el("button", { onclick: async () => {
      await api("/v1/keys/" + k.id, { method: "DELETE" }); loadAdmin();
    } }, "吊销")))));
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  key = $("key").value.trim();
  localStorage.setItem("luodi-key", key);
  start();
});
for (const b of document.querySelectorAll("header nav button")) b.addEventListener("click", () => show(b.dataset.view));
$("kb").addEventListener("change", () => {
  localStorage.setItem("luodi-kb", kb());
  conversation = null;
  $("turns").replaceChildren();
  loadConversations();
  if (!$("docs").hidden) loadDocs();
  if (!$("words").hidden) { $("suggest-box").hidden = true; loadWords(); }
});
$("new-conv").addEventListener("click", () => { conversation = null; $("turns").replaceChildren(); $("source").hidden = true; loadConversations(); });
$("ask-form").addEventListener("submit", ask);
$("question").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("ask-form").requestSubmit(); } });
$("source-close").addEventListener("click", () => { $("source").hidden = true; });
$("upload-form").addEventListener("submit", upload);
$("kb-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  await api("/v1/kbs", { method: "POST", json: { name: $("kb-name").value.trim() } });
  $("kb-name").value = ""; loadAdmin(); loadKbs();
});
$("entry-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    const kind = $("entry-kind").value;
    const forms = $("entry-forms").value.split(/[,，、]/).map((s) => s.trim()).filter(Boolean);
    const definition = $("entry-definition").value.trim();
    const body = { kind, term: $("entry-term").value.trim(), forms };
    if (definition) body.definition = definition;
    await kbApi("/glossary", { method: "POST", json: body });
    wordsStatus("已添加 " + body.term);
    for (const id of ["entry-term", "entry-forms", "entry-definition"]) $(id).value = "";
    loadWords();
  });
});
$("entry-file").addEventListener("change", () => importFile($("entry-file"), "/glossary/import"));
$("faq-file").addEventListener("change", () => importFile($("faq-file"), "/faqs/import"));
$("entry-export-csv").addEventListener("click", () => exportGlossary("csv"));
$("entry-export-jsonl").addEventListener("click", () => exportGlossary("jsonl"));
$("suggest-run").addEventListener("click", runSuggest);
$("suggest-all").addEventListener("change", () => { for (const c of document.querySelectorAll("#suggest-list input")) c.checked = $("suggest-all").checked; });
$("suggest-accept").addEventListener("click", () => decide(true));
$("suggest-reject").addEventListener("click", () => decide(false));
$("faq-mode").addEventListener("change", () => guarded(async () => {
  await kbApi("/faqs/mode", { method: "PUT", json: { mode: $("faq-mode").value } });
  wordsStatus("已更改直接回答的尺度");
  loadWords();
}));
$("faq-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    await kbApi("/faqs", { method: "POST", json: { question: $("faq-question").value.trim(), answer: $("faq-answer").value.trim() } });
    wordsStatus("已添加常见问题");
    $("faq-question").value = ""; $("faq-answer").value = "";
    loadWords();
  });
});
$("key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const scopes = $("key-kbs").value.split(/[,，]/).map((s) => s.trim()).filter(Boolean).map((kb) => ({ kb, write: $("key-write").checked }));
  const k = await api("/v1/keys", { method: "POST", json: { name: $("key-name").value.trim(), scopes } });
  $("key-secret").hidden = false;
  $("key-secret").textContent = "新密钥（只显示这一次）：" + k.secret;
  loadAdmin();
});
start();
