// The web page in a real browser: Debian's chromium, driven by playwright-core.
// ask → streamed answer with a citation → open the citation → thumbs-down with a correction;
// then the glossary and FAQ view: mine suggestions and accept one, add an entry and a FAQ by
// hand, and ask the FAQ's question again in other words — the vetted answer, marked.
// Env: LUODI_URL, LUODI_KEY, SHOTS (folder for screenshots). Prints one JSON line.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const url = process.env.LUODI_URL;
const key = process.env.LUODI_KEY;
const shots = process.env.SHOTS || "screenshots";
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const seen = {};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, locale: "zh-CN" });
  page.setDefaultTimeout(120_000);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url + "/");
  await page.fill("#key", key);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#kb option[value=handbook]", { state: "attached" });
  await page.selectOption("#kb", "handbook");
  await page.screenshot({ path: `${shots}/1-signed-in.png` });

  await page.fill("#question", "病假怎么请？");
  await page.click("#ask-button");
  // the answer streams in, then its sources appear
  await page.waitForFunction(() => {
    const a = document.querySelector(".turn .a");
    return a && a.textContent.length > 5 && a.textContent !== "…";
  });
  const cite = page.locator(".turn .cite").first();
  await cite.waitFor();
  seen.answer = await page.locator(".turn .a").first().textContent();
  seen.citation = await cite.textContent();
  await page.screenshot({ path: `${shots}/2-answer.png` });

  await cite.click();
  await page.waitForSelector("#source:not([hidden])");
  seen.source = await page.locator("#source-text").textContent();
  await page.screenshot({ path: `${shots}/3-source.png` });

  await page.fill(".turn .correction", "病假须当天10点前告知主管");
  await page.click(".turn .rate button.down");
  await page.waitForSelector(".turn .rate .done");
  seen.feedback = await page.locator(".turn .rate .done").textContent();
  await page.screenshot({ path: `${shots}/4-feedback.png` });

  // the conversation is listed and reopens
  await page.waitForSelector("#convs li");
  seen.conversations = await page.locator("#convs li").count();

  // glossary and FAQs
  await page.click("header nav button[data-view=words]");
  await page.waitForSelector("#words:not([hidden])");
  await page.click("#suggest-run");
  await page.waitForSelector("#suggest-list tr");
  const row = page.locator("#suggest-list tr", { hasText: "上海分公司" }).first();
  seen.suggestion = await row.textContent();
  await row.locator("input[type=checkbox]").check();
  await page.click("#suggest-accept");
  await page.waitForSelector("#entry-list tr >> text=上海分公司");
  await page.selectOption("#entry-kind", "synonym");
  await page.fill("#entry-term", "病假");
  await page.fill("#entry-forms", "因病请假，生病请假");
  await page.click("#entry-form button");
  await page.waitForSelector("#entry-list tr >> text=生病请假");
  seen.entries = await page.locator("#entry-list tr").count();
  await page.fill("#faq-question", "年假一年有几天？");
  await page.fill("#faq-answer", "入职满一年后每年5至15天，按工龄计（人事部审核）。");
  await page.click("#faq-form button");
  await page.waitForSelector("#faq-list tr >> text=人事部审核");
  // the FAQ mode: broad shows its lower threshold, then back to the default
  seen.faq_strict = await page.locator("#faq-threshold").textContent();
  await page.selectOption("#faq-mode", "broad");
  await page.waitForFunction((t) => document.querySelector("#faq-threshold").textContent !== t, seen.faq_strict);
  seen.faq_broad = await page.locator("#faq-threshold").textContent();
  await page.selectOption("#faq-mode", "strict");
  await page.waitForFunction((t) => document.querySelector("#faq-threshold").textContent === t, seen.faq_strict);
  await page.click("#history-box summary");
  seen.history = await page.locator("#history-list tr").count();
  await page.screenshot({ path: `${shots}/5-glossary-faq.png`, fullPage: true });

  await page.click("header nav button[data-view=ask]");
  await page.click("#new-conv");
  await page.fill("#question", "一年能休几天年假？");
  await page.click("#ask-button");
  await page.waitForSelector(".turn .faq");
  seen.faq_answer = await page.locator(".turn .a").first().textContent();
  seen.faq_mark = await page.locator(".turn .faq").first().textContent();
  await page.screenshot({ path: `${shots}/6-faq-answer.png` });
  // reopened, the turn still says where its answer came from
  await page.click("#new-conv");
  await page.click("#convs li >> text=一年能休几天年假");
  await page.waitForSelector(".turn .faq");
  seen.faq_reopened = await page.locator(".turn .faq").first().textContent();
  seen.errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
