//! Text generation behind one trait: llama.cpp over any GGUF file ([`llama::LlamaGenerator`]),
//! or any OpenAI-compatible endpoint ([`remote::RemoteGenerator`]).

pub mod llama;
pub mod remote;
pub mod requant;

use serde::{Deserialize, Serialize};

use crate::ModelError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(s: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::System,
            content: s.into(),
        }
    }
    pub fn user(s: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::User,
            content: s.into(),
        }
    }
    pub fn assistant(s: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Assistant,
            content: s.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenParams {
    pub max_tokens: usize,
    /// 0 = greedy.
    pub temperature: f32,
    pub top_p: f32,
    /// Generation ends before any of these strings; they are not part of the text.
    pub stop: Vec<String>,
    pub seed: u32,
    /// Extractive answering: when not empty, the generated text is a contiguous span of one
    /// of these texts (each token is the most likely one that keeps it so, and generation
    /// ends when the model ends or no token can continue). Only llama.cpp honours it; a
    /// remote endpoint generates freely.
    pub spans: Vec<String>,
    /// With `spans`: how many answers to decode, each from a different first token (the most
    /// likely allowed ones); they come back in [`Generation::alternatives`], the greedy one
    /// first. 0 or 1: the greedy answer only.
    pub span_candidates: usize,
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            max_tokens: 256,
            temperature: 0.0,
            top_p: 1.0,
            stop: Vec::new(),
            seed: 42,
            spans: Vec::new(),
            span_candidates: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// End of turn or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The token callback asked to stop.
    Cancelled,
}

#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub text: String,
    pub finish: FinishReason,
    pub prompt_tokens: usize,
    /// Prompt tokens that came from the cache of an earlier request (not evaluated again).
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    /// Time to evaluate the prompt, i.e. to the first token (ms).
    pub prompt_ms: f64,
    /// Time spent generating after the first token (ms).
    pub decode_ms: f64,
    /// Constrained (span) decoding only: the mean log-probability, under the model's whole
    /// distribution, of the tokens the constraint let it choose. Low when the model wanted to
    /// say something the spans do not hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_logprob: Option<f32>,
    /// Constrained decoding with `span_candidates` > 1: every answer decoded, the greedy
    /// one (`text`) first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<SpanAnswer>,
}

/// One answer of constrained decoding, from a given first token.
#[derive(Debug, Clone, Serialize)]
pub struct SpanAnswer {
    pub text: String,
    /// Sum of the log-probabilities of its tokens under the model's whole distribution.
    pub logprob: f32,
    pub tokens: usize,
}

impl Generation {
    /// Decode speed in tokens per second (tokens after the first, over the decode time).
    pub fn decode_tps(&self) -> f64 {
        if self.decode_ms <= 0.0 || self.completion_tokens < 2 {
            0.0
        } else {
            (self.completion_tokens - 1) as f64 / (self.decode_ms / 1000.0)
        }
    }
}

/// Receives text as it is generated; return `false` to stop.
pub type OnText<'a> = &'a mut dyn FnMut(&str) -> bool;

pub trait Generator: Send + Sync {
    /// A name for logs and the API's `model` field.
    fn name(&self) -> &str;
    /// Context length in tokens (prompt and generated text together).
    fn context_length(&self) -> usize;
    /// The sha256 of the weights (or another stable identity of a remote model), recorded
    /// with every stored answer so that it can be traced and reproduced.
    fn fingerprint(&self) -> String {
        self.name().to_owned()
    }
    /// Generate the assistant's reply to `messages` with the model's own chat template.
    fn chat(
        &self,
        messages: &[ChatMessage],
        params: &GenParams,
        on_text: OnText<'_>,
    ) -> Result<Generation, ModelError>;
    /// The log-probability of each token of `reply` as the assistant's answer to
    /// `messages` (scored, not generated). Models that cannot score text say so.
    fn reply_logprobs(
        &self,
        _messages: &[ChatMessage],
        _reply: &str,
    ) -> Result<Vec<f32>, ModelError> {
        Err(ModelError::Unsupported(format!(
            "{} cannot score text (a local GGUF model can)",
            self.name()
        )))
    }
}

/// Keeps generated bytes a contiguous span of one of a few texts (extractive answering).
///
/// The state is the set of places (text, byte offset) where the bytes generated so far end
/// inside a match; before the first token every place is open.
pub(crate) struct SpanConstraint {
    spans: Vec<Vec<u8>>,
    /// `None`: nothing generated yet.
    ends: Option<Vec<(usize, usize)>>,
    /// Bytes generated so far.
    generated: usize,
}

impl SpanConstraint {
    pub fn new(spans: &[String]) -> Self {
        SpanConstraint {
            spans: spans
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            ends: None,
            generated: 0,
        }
    }

    /// Whether `piece` occurs anywhere in the texts (the tokens worth looking at).
    pub fn occurs(&self, piece: &[u8]) -> bool {
        !piece.is_empty()
            && self
                .spans
                .iter()
                .any(|s| s.windows(piece.len()).any(|w| w == piece))
    }

    /// Whether `piece` may come next.
    pub fn allows(&self, piece: &[u8]) -> bool {
        if piece.is_empty() {
            return false;
        }
        match &self.ends {
            None => self.occurs(piece),
            Some(ends) => ends
                .iter()
                .any(|&(s, e)| self.spans[s][e..].starts_with(piece)),
        }
    }

    /// Enough has been generated for an answer (two bytes: "80", a Han character), so
    /// generation may end.
    pub fn may_end(&self) -> bool {
        self.generated >= 2 && self.ends.as_ref().is_some_and(|e| !e.is_empty())
    }

    pub fn advance(&mut self, piece: &[u8]) {
        self.generated += piece.len();
        let next: Vec<(usize, usize)> = match &self.ends {
            None => {
                let mut v = Vec::new();
                for (s, text) in self.spans.iter().enumerate() {
                    for (i, w) in text.windows(piece.len()).enumerate() {
                        if w == piece {
                            v.push((s, i + piece.len()));
                        }
                    }
                }
                v
            }
            Some(ends) => ends
                .iter()
                .filter(|&&(s, e)| self.spans[s][e..].starts_with(piece))
                .map(|&(s, e)| (s, e + piece.len()))
                .collect(),
        };
        self.ends = Some(next);
    }

    /// The most likely allowed choice among `candidates` (token index, logit, piece) sorted
    /// by logit, best first: `Some(index)`, or `None` when ending is the best (or only)
    /// choice. `end_logit` is the logit of ending.
    pub fn choose<'p>(
        &self,
        candidates: impl Iterator<Item = (usize, f32, &'p [u8])>,
        end_logit: f32,
    ) -> Option<usize> {
        for (i, logit, piece) in candidates {
            if self.may_end() && end_logit >= logit {
                return None;
            }
            if self.allows(piece) {
                return Some(i);
            }
        }
        None
    }
}

/// Streams pieces of text while holding back what might be the start of a stop string.
pub(crate) struct StopFilter<'a> {
    stops: &'a [String],
    pending: String,
    pub out: String,
}

impl<'a> StopFilter<'a> {
    pub fn new(stops: &'a [String]) -> Self {
        StopFilter {
            stops,
            pending: String::new(),
            out: String::new(),
        }
    }

    /// Add text; returns (text safe to emit now, whether a stop string was hit).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        self.pending.push_str(piece);
        for s in self.stops.iter().filter(|s| !s.is_empty()) {
            if let Some(i) = self.pending.find(s.as_str()) {
                let emit = self.pending[..i].to_string();
                self.out.push_str(&emit);
                self.pending.clear();
                return (emit, true);
            }
        }
        // keep the longest suffix that is a prefix of some stop string
        let mut keep = 0;
        for s in self.stops {
            for (i, _) in self.pending.char_indices() {
                let tail = &self.pending[i..];
                if tail.len() > keep && s.starts_with(tail) {
                    keep = tail.len();
                }
            }
        }
        let cut = self.pending.len() - keep;
        let emit = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        self.out.push_str(&emit);
        (emit, false)
    }

    /// Push `piece`, pass what is safe to `on_text`; `Some` when generation must end (a stop
    /// string was hit, or the callback asked to stop).
    pub fn feed(
        &mut self,
        piece: &str,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Option<FinishReason> {
        let (emit, hit) = self.push(piece);
        if !emit.is_empty() && !on_text(&emit) {
            return Some(FinishReason::Cancelled);
        }
        hit.then_some(FinishReason::Stop)
    }

    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        self.out.push_str(&rest);
        rest
    }
}

/// The GGUF file `spec` names: `default` / `` (the installed 0.5B model), `large` (the
/// installed 1.5B model) or a path. An installed model is opened in its fastest installed form
/// for this build (its Q8_0 copy where llama.cpp has AMX kernels).
pub fn resolve_gguf(spec: &str) -> Result<std::path::PathBuf, ModelError> {
    use crate::catalog;
    match spec {
        "" | "default" => crate::install::require_fastest(
            &crate::models_dir(),
            catalog::QWEN_05B,
            catalog::QWEN_05B_GGUF,
        ),
        "large" => crate::install::require_fastest(
            &crate::models_dir(),
            catalog::QWEN_15B,
            catalog::QWEN_15B_GGUF,
        ),
        p => {
            let p = std::path::PathBuf::from(p);
            if !p.is_file() {
                return Err(ModelError::Permanent(format!(
                    "{}: no such GGUF file (use `default`, `large`, a .gguf path or an http(s):// endpoint)",
                    p.display()
                )));
            }
            Ok(p)
        }
    }
}

/// Which generator to use, as people write it on the command line or in a config:
/// `default` (the installed 0.5B model), `large` (the installed 1.5B model), a path to any GGUF
/// file, or an OpenAI-compatible endpoint `http(s)://host:port/v1` with `model` naming the
/// remote model (key from `LUODI_REMOTE_API_KEY`).
pub fn open_generator(
    spec: &str,
    remote_model: Option<&str>,
    threads: usize,
    n_ctx: u32,
) -> Result<Box<dyn Generator>, ModelError> {
    if spec.starts_with("http://") || spec.starts_with("https://") {
        return Ok(Box::new(remote::RemoteGenerator::new(
            remote::RemoteConfig {
                base_url: spec.to_string(),
                model: remote_model.unwrap_or("default").to_string(),
                api_key: std::env::var("LUODI_REMOTE_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty()),
                context_length: n_ctx as usize,
                timeout: std::time::Duration::from_secs(300),
            },
        )));
    }
    let path = resolve_gguf(spec)?;
    // the prompt cache of this model file and context size, beside the models
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    let stem = path
        .file_stem()
        .map_or_else(|| "gguf".into(), |s| s.to_string_lossy().into_owned());
    // (the KV layout differs with fused attention: a file of the other kind would not load)
    let flash_attention = llama::flash_attention_from_env();
    let fa = if flash_attention { "-fa" } else { "" };
    let prompt_cache = crate::models_dir()
        .join("prompt-cache")
        .join(format!("{stem}-{size}-{n_ctx}{fa}.kv"));
    Ok(Box::new(llama::LlamaGenerator::load(
        &path,
        llama::LlamaConfig {
            n_ctx,
            threads,
            n_batch: 512,
            prompt_cache: Some(prompt_cache),
            flash_attention,
        },
    )?))
}

#[cfg(test)]
mod tests {
    use super::{SpanConstraint, StopFilter};

    #[test]
    fn span_constraint_keeps_one_contiguous_span() {
        let spans = vec![
            "年假可顺延至次年3月31日。".to_string(),
            "病假须提供证明。".to_string(),
        ];
        let mut c = SpanConstraint::new(&spans);
        assert!(!c.may_end());
        assert!(c.allows("次年".as_bytes()));
        assert!(!c.allows("明年".as_bytes()));
        c.advance("次年".as_bytes());
        assert!(c.may_end());
        assert!(c.allows("3月".as_bytes()));
        // a piece of the other text does not continue this span
        assert!(!c.allows("病假".as_bytes()));
        let cands: Vec<(usize, f32, &[u8])> =
            vec![(0, 5.0, "4月".as_bytes()), (1, 4.0, "3月".as_bytes())];
        assert_eq!(c.choose(cands.iter().copied(), 1.0), Some(1));
        // ending beats a less likely continuation
        assert_eq!(c.choose(cands.iter().copied(), 4.5), None);
        c.advance("3月31日。".as_bytes());
        assert!(!c.allows("。".as_bytes()));
    }

    #[test]
    fn stop_strings_are_cut_even_across_pieces() {
        let stops = vec!["</answer>".to_string()];
        let mut f = StopFilter::new(&stops);
        let mut shown = String::new();
        for p in ["答案是", "42</", "ans", "wer>多余"] {
            let (e, hit) = f.push(p);
            shown.push_str(&e);
            if hit {
                break;
            }
        }
        assert_eq!(shown, "答案是42");
        assert_eq!(f.out, "答案是42");
    }
}
