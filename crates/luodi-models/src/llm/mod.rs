//! Text generation behind one trait: llama.cpp over any GGUF file ([`llama::LlamaGenerator`]),
//! or any OpenAI-compatible endpoint ([`remote::RemoteGenerator`]).

pub mod llama;
pub mod remote;

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
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            max_tokens: 256,
            temperature: 0.0,
            top_p: 1.0,
            stop: Vec::new(),
            seed: 42,
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
    /// Generate the assistant's reply to `messages` with the model's own chat template.
    fn chat(
        &self,
        messages: &[ChatMessage],
        params: &GenParams,
        on_text: OnText<'_>,
    ) -> Result<Generation, ModelError>;
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
/// installed 1.5B model) or a path.
pub fn resolve_gguf(spec: &str) -> Result<std::path::PathBuf, ModelError> {
    use crate::catalog;
    match spec {
        "" | "default" => crate::install::require(
            &crate::models_dir(),
            catalog::QWEN_05B,
            catalog::QWEN_05B_GGUF,
        ),
        "large" => crate::install::require(
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
    Ok(Box::new(llama::LlamaGenerator::load(
        &path,
        llama::LlamaConfig {
            n_ctx,
            threads,
            n_batch: 512,
        },
    )?))
}

#[cfg(test)]
mod tests {
    use super::StopFilter;

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
