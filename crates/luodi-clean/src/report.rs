//! What a run did: documents and bytes in and out of every step, why documents were dropped
//! (with examples), length histograms before and after, duplicate cluster sizes — as JSON
//! (in the checkpoint), Markdown, and a self-contained HTML page with inline SVG charts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Examples kept per drop reason.
const EXAMPLES: usize = 3;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Example {
    pub id: String,
    pub source: String,
    pub detail: String,
    pub preview: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Drops {
    pub count: u64,
    pub examples: Vec<Example>,
}

impl Drops {
    pub fn add(&mut self, e: Example) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(e);
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StepStats {
    pub name: String,
    pub docs_in: u64,
    pub docs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Documents whose text the step changed.
    pub changed: u64,
    pub drops: BTreeMap<String, Drops>,
    pub seconds: f64,
}

/// Documents by length in characters: bucket i holds lengths in [2^i, 2^(i+1)).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Histogram(pub Vec<u64>);

impl Default for Histogram {
    fn default() -> Self {
        Histogram(vec![0; 32])
    }
}

impl Histogram {
    pub fn add(&mut self, chars: usize) {
        let b = (usize::BITS - chars.max(1).leading_zeros() - 1) as usize;
        if let Some(x) = self.0.get_mut(b.min(31)) {
            *x += 1;
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub recipe: String,
    pub inputs: Vec<String>,
    pub input_docs: u64,
    pub input_bytes: u64,
    /// Records that could not be read (binary, undecodable, bad JSON, too large).
    pub input_rejects: BTreeMap<String, Drops>,
    pub output_docs: u64,
    pub output_bytes: u64,
    pub steps: Vec<StepStats>,
    pub length_before: Histogram,
    pub length_after: Histogram,
    /// Duplicate clusters by size (size → clusters), filled at the end of the run.
    pub clusters: BTreeMap<u32, u64>,
    pub seconds: f64,
}

impl Stats {
    pub fn mb_per_s(&self) -> f64 {
        self.input_bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }
}

fn bucket_label(i: usize) -> String {
    let lo = 1u64 << i;
    if lo >= 1024 {
        format!("{}k", lo / 1024)
    } else {
        lo.to_string()
    }
}

/// The report as Markdown.
pub fn markdown(s: &Stats) -> String {
    let mut o = String::new();
    o.push_str(&format!("# Clean report — {}\n\n", s.recipe));
    o.push_str(&format!(
        "Inputs: {}\n\n{} documents ({:.1} MB) in, {} documents ({:.1} MB) out, {} unreadable; {:.1} s, {:.1} MB/s.\n\n",
        s.inputs.join(", "),
        s.input_docs,
        s.input_bytes as f64 / 1e6,
        s.output_docs,
        s.output_bytes as f64 / 1e6,
        s.input_rejects.values().map(|d| d.count).sum::<u64>(),
        s.seconds,
        s.mb_per_s()
    ));
    o.push_str("## Steps\n\n| step | docs in | docs out | dropped | changed | MB in | MB out | s |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for st in &s.steps {
        o.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |\n",
            st.name,
            st.docs_in,
            st.docs_out,
            st.docs_in - st.docs_out,
            st.changed,
            st.bytes_in as f64 / 1e6,
            st.bytes_out as f64 / 1e6,
            st.seconds
        ));
    }
    o.push_str("\n## Why documents were dropped\n\n");
    let mut any = false;
    let all = s.input_rejects.iter().map(|(r, d)| ("input", r, d)).chain(
        s.steps
            .iter()
            .flat_map(|st| st.drops.iter().map(move |(r, d)| (st.name.as_str(), r, d))),
    );
    for (step, reason, d) in all {
        any = true;
        o.push_str(&format!("### {step}: {reason} ({})\n\n", d.count));
        for e in &d.examples {
            o.push_str(&format!(
                "- `{}` — {}{}\n",
                e.id,
                e.detail,
                if e.preview.is_empty() {
                    String::new()
                } else {
                    format!(": “{}”", e.preview.replace('\n', " "))
                }
            ));
        }
        o.push('\n');
    }
    if !any {
        o.push_str("None.\n\n");
    }
    o.push_str("## Length (characters) before and after\n\n| length ≥ | before | after |\n|---:|---:|---:|\n");
    for i in 0..32 {
        let (b, a) = (s.length_before.0[i], s.length_after.0[i]);
        if b > 0 || a > 0 {
            o.push_str(&format!("| {} | {b} | {a} |\n", bucket_label(i)));
        }
    }
    o.push_str("\n## Duplicate clusters\n\n");
    if s.clusters.is_empty() {
        o.push_str("None.\n");
    } else {
        o.push_str("| size | clusters |\n|---:|---:|\n");
        for (size, n) in &s.clusters {
            o.push_str(&format!("| {size} | {n} |\n"));
        }
    }
    o
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Horizontal bars: (label, values per series), series colours.
fn bars(rows: &[(String, Vec<u64>)], series: &[(&str, &str)]) -> String {
    let max = rows
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let row_h = 14 * series.len() + 8;
    let h = rows.len() * row_h + 24;
    let mut o = format!(
        "<svg width=\"720\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">"
    );
    for (i, (label, vals)) in rows.iter().enumerate() {
        let y = i * row_h;
        o.push_str(&format!(
            "<text x=\"0\" y=\"{}\">{}</text>",
            y + 14,
            esc(label)
        ));
        for (j, v) in vals.iter().enumerate() {
            let w = (*v as f64 / max * 480.0).max(if *v > 0 { 1.0 } else { 0.0 });
            let yy = y + j * 14 + 4;
            o.push_str(&format!(
                "<rect x=\"150\" y=\"{yy}\" width=\"{w:.1}\" height=\"12\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{}\">{v}</text>",
                series[j].1,
                155.0 + w,
                yy + 10
            ));
        }
    }
    let ly = rows.len() * row_h + 16;
    for (j, (name, colour)) in series.iter().enumerate() {
        let x = 150 + j * 120;
        o.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            ly - 9,
            x + 14,
            ly,
            esc(name)
        ));
    }
    o.push_str("</svg>");
    o
}

/// The report as one self-contained HTML page.
pub fn html(s: &Stats) -> String {
    let mut o = String::from("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>Clean report</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}table{border-collapse:collapse}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child{text-align:left}code{background:#f3f3f3}</style></head><body>");
    o.push_str(&format!("<h1>Clean report — {}</h1>", esc(&s.recipe)));
    o.push_str(&format!(
        "<p>{} documents ({:.1} MB) in, {} documents ({:.1} MB) out; {:.1} s, {:.1} MB/s.</p>",
        s.input_docs,
        s.input_bytes as f64 / 1e6,
        s.output_docs,
        s.output_bytes as f64 / 1e6,
        s.seconds,
        s.mb_per_s()
    ));
    o.push_str("<h2>Documents in and out per step</h2>");
    let rows: Vec<(String, Vec<u64>)> = s
        .steps
        .iter()
        .map(|st| (st.name.clone(), vec![st.docs_in, st.docs_out]))
        .collect();
    o.push_str(&bars(
        &rows,
        &[("docs in", "#8aa4c8"), ("docs out", "#1f3a5f")],
    ));
    o.push_str("<h2>Bytes in and out per step (KB)</h2>");
    let rows: Vec<(String, Vec<u64>)> = s
        .steps
        .iter()
        .map(|st| {
            (
                st.name.clone(),
                vec![st.bytes_in / 1024, st.bytes_out / 1024],
            )
        })
        .collect();
    o.push_str(&bars(&rows, &[("KB in", "#c8b28a"), ("KB out", "#7a5a1f")]));
    o.push_str("<h2>Length histogram (characters)</h2>");
    let rows: Vec<(String, Vec<u64>)> = (0..32)
        .filter(|i| s.length_before.0[*i] > 0 || s.length_after.0[*i] > 0)
        .map(|i| {
            (
                format!("≥ {}", bucket_label(i)),
                vec![s.length_before.0[i], s.length_after.0[i]],
            )
        })
        .collect();
    o.push_str(&bars(&rows, &[("before", "#b8c8a0"), ("after", "#3f6a1f")]));
    o.push_str("<h2>Duplicate cluster sizes</h2>");
    if s.clusters.is_empty() {
        o.push_str("<p>No duplicates.</p>");
    } else {
        let rows: Vec<(String, Vec<u64>)> = s
            .clusters
            .iter()
            .map(|(size, n)| (format!("size {size}"), vec![*n]))
            .collect();
        o.push_str(&bars(&rows, &[("clusters", "#a05a8a")]));
    }
    o.push_str("<h2>Why documents were dropped</h2>");
    let all = s.input_rejects.iter().map(|(r, d)| ("input", r, d)).chain(
        s.steps
            .iter()
            .flat_map(|st| st.drops.iter().map(move |(r, d)| (st.name.as_str(), r, d))),
    );
    for (step, reason, d) in all {
        o.push_str(&format!(
            "<h3>{} — {} ({})</h3><ul>",
            esc(step),
            esc(reason),
            d.count
        ));
        for e in &d.examples {
            o.push_str(&format!(
                "<li><code>{}</code> — {} <q>{}</q></li>",
                esc(&e.id),
                esc(&e.detail),
                esc(&e.preview)
            ));
        }
        o.push_str("</ul>");
    }
    o.push_str("</body></html>\n");
    o
}
