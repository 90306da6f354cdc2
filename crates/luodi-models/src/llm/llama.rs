//! llama.cpp (crate `llama-cpp-2`) over any GGUF file.
//!
//! One context is kept between requests together with the tokens its KV cache holds; a new
//! prompt that starts with the same tokens (the fixed system prompt, an earlier turn) only
//! evaluates what differs.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::gguf::GgufContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use super::{
    ChatMessage, FinishReason, GenParams, Generation, Generator, OnText, SpanAnswer,
    SpanConstraint, StopFilter,
};
use crate::ModelError;

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

fn backend() -> Result<&'static LlamaBackend, ModelError> {
    BACKEND
        .get_or_init(|| {
            let mut b = LlamaBackend::init().map_err(|e| e.to_string())?;
            if std::env::var_os("LUODI_LLAMA_LOG").is_none() {
                b.void_logs();
            }
            Ok(b)
        })
        .as_ref()
        .map_err(|e| ModelError::Permanent(format!("llama.cpp backend: {e}")))
}

/// Start llama.cpp's backend once per process (and silence its log unless `LUODI_LLAMA_LOG`).
pub(crate) fn init_backend() -> Result<(), ModelError> {
    backend().map(|_| ())
}

#[derive(Debug, Clone)]
pub struct LlamaConfig {
    /// Context length in tokens (prompt + generation).
    pub n_ctx: u32,
    /// Threads for generation and prompt processing.
    pub threads: usize,
    /// Tokens evaluated per prompt batch.
    pub n_batch: u32,
    /// A file keeping the KV cache between processes: a fresh process starts from it, so a
    /// fixed prompt prefix (system prompt, worked examples) is read once per machine, not
    /// once per `luodi ask`. `None`: no file.
    pub prompt_cache: Option<PathBuf>,
    /// llama.cpp's fused ("flash") attention. Off by default: on 2 cores its CPU kernel takes
    /// batches under 64 tokens (every decoded token, every quote scored) one query row at a
    /// time, and grounded answers reached their first token sooner without it (`eval answer`,
    /// CMRC dev 300: p50 1.37 s against 1.99 s, p95 3.3 s against 5.6 s); it reads long
    /// prompts faster (`bench llm`, 1,014 tokens: ~250 tok/s against ~180). `LUODI_FLASH_ATTN=1`
    /// turns it on ([`flash_attention_from_env`]).
    pub flash_attention: bool,
}

impl Default for LlamaConfig {
    fn default() -> Self {
        LlamaConfig {
            n_ctx: 4096,
            threads: default_threads(),
            n_batch: 512,
            prompt_cache: None,
            flash_attention: flash_attention_from_env(),
        }
    }
}

/// `LUODI_FLASH_ATTN` set to `1`, `on` or `true`: llama.cpp's fused attention on (see
/// [`LlamaConfig::flash_attention`]).
pub fn flash_attention_from_env() -> bool {
    std::env::var("LUODI_FLASH_ATTN")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "on" | "true"))
}

/// llama.cpp's flash-attention policy for `on`.
fn flash_attention_policy(on: bool) -> llama_cpp_sys_2::llama_flash_attn_type {
    if on {
        llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED
    } else {
        llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED
    }
}

/// `LUODI_THREADS`, else the number of cores.
pub fn default_threads() -> usize {
    std::env::var("LUODI_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

struct Session {
    ctx: LlamaContext<'static>,
    /// Tokens whose keys and values are in the cache, in order (sequence 0).
    cached: Vec<LlamaToken>,
    /// The prompt cache file was read (or tried) in this process.
    cache_file_tried: bool,
    /// Tokens the prompt cache file held when read (0: none).
    cache_file_tokens: usize,
}

impl Session {
    /// Keeps the cached tokens `tokens` starts with, at most `limit` of them, and drops the
    /// rest from the KV cache (all of it when that fails).
    fn keep_prefix(&mut self, tokens: &[LlamaToken], limit: usize) {
        let common = self
            .cached
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count();
        let keep = common.min(limit);
        if keep < self.cached.len() {
            let ok = self
                .ctx
                .clear_kv_cache_seq(Some(0), Some(keep as u32), None)
                .unwrap_or(false);
            if !ok {
                self.ctx.clear_kv_cache();
                self.cached.clear();
            } else {
                self.cached.truncate(keep);
            }
        }
    }

    /// Evaluate `batch`; on failure the cache is emptied (its state is unknown) and the error
    /// is transient.
    fn decode(&mut self, batch: &mut LlamaBatch) -> Result<(), ModelError> {
        self.ctx.decode(batch).map_err(|e| {
            self.ctx.clear_kv_cache();
            self.cached.clear();
            ModelError::Transient(format!("llama.cpp decode failed: {e}"))
        })
    }
}

pub struct LlamaGenerator {
    name: String,
    path: PathBuf,
    model: &'static LlamaModel,
    template: Option<LlamaChatTemplate>,
    config: LlamaConfig,
    session: Mutex<Session>,
    /// Every token's text, made on the first extractive request.
    vocab_table: OnceLock<VocabTable>,
    /// sha256 of the GGUF file, known from the catalog or computed on first use.
    sha256: OnceLock<String>,
}

/// The text of every token and the end-of-generation tokens (for constrained decoding).
struct VocabTable {
    pieces: Vec<Vec<u8>>,
    eog: Vec<usize>,
}

/// Architecture named in a GGUF file's metadata.
pub fn gguf_architecture(path: &Path) -> Result<String, ModelError> {
    let meta = std::fs::metadata(path).map_err(|e| ModelError::io(path, e))?;
    if meta.len() < 32 {
        return Err(ModelError::Corrupt {
            path: path.into(),
            reason: "too short to be a GGUF file".into(),
        });
    }
    let mut magic = [0u8; 4];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
        f.read_exact(&mut magic)
            .map_err(|e| ModelError::io(path, e))?;
    }
    if &magic != b"GGUF" {
        return Err(ModelError::Corrupt {
            path: path.into(),
            reason: "not a GGUF file (magic GGUF missing)".into(),
        });
    }
    backend()?; // silences llama.cpp's logging before it reads the file
    let g = GgufContext::from_file(path).ok_or_else(|| ModelError::Corrupt {
        path: path.into(),
        reason: "unreadable GGUF metadata (truncated or corrupt file)".into(),
    })?;
    let k = g.find_key("general.architecture");
    let arch = if k >= 0 {
        g.val_str(k).map(str::to_string)
    } else {
        None
    };
    arch.ok_or_else(|| ModelError::Corrupt {
        path: path.into(),
        reason: "GGUF metadata lacks general.architecture".into(),
    })
}

impl LlamaGenerator {
    pub fn load(path: &Path, config: LlamaConfig) -> Result<LlamaGenerator, ModelError> {
        let arch = gguf_architecture(path)?;
        let backend = backend()?;
        let params = LlamaModelParams::default();
        let model = LlamaModel::load_from_file(backend, path, &params).map_err(|e| {
            ModelError::Unsupported(format!(
                "{}: llama.cpp cannot load this model (architecture {arch}): unsupported architecture, or a truncated or corrupt file ({e})",
                path.display()
            ))
        })?;
        // The context borrows the model for its whole life; the generator lives as long as the
        // process uses it, so the model is given a static lifetime.
        let model: &'static LlamaModel = Box::leak(Box::new(model));
        let template = model.chat_template(None).ok();
        let ctx = new_context(model, &config)?;
        let name = path
            .file_stem()
            .map_or_else(|| "gguf".into(), |s| s.to_string_lossy().into_owned());
        Ok(LlamaGenerator {
            name,
            path: path.to_path_buf(),
            model,
            template,
            config,
            session: Mutex::new(Session {
                ctx,
                cached: Vec::new(),
                cache_file_tried: false,
                cache_file_tokens: 0,
            }),
            vocab_table: OnceLock::new(),
            sha256: OnceLock::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn model(&self) -> &'static LlamaModel {
        self.model
    }

    pub fn threads(&self) -> usize {
        self.config.threads
    }

    /// Sentence vectors from the model itself ("PromptEOL"): each text is put in a prompt that
    /// asks for its meaning in one word, and the last token's final hidden state (normalized)
    /// is its vector. One context, opened per call, texts one after another.
    pub fn embed_eol(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        use llama_cpp_2::context::params::LlamaPoolingType;
        let threads = self.config.threads.max(1) as i32;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(512))
            .with_n_batch(512)
            .with_n_ubatch(512)
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            .with_embeddings(true)
            .with_pooling_type(LlamaPoolingType::Last);
        let mut ctx = self
            .model
            .new_context(backend()?, params)
            .map_err(|e| ModelError::Permanent(format!("llama.cpp context: {e}")))?;
        let mut out = Vec::with_capacity(texts.len());
        for text in texts {
            let clipped: String = text.chars().take(200).collect();
            let prompt = format!("这句话：“{clipped}”用一个词概括意思是：“");
            let tokens = self.model.vocab().tokenize(prompt.as_bytes(), false, true);
            let mut batch = LlamaBatch::new(tokens.len().max(1), 1);
            for (i, &t) in tokens.iter().enumerate() {
                batch
                    .add(t, i as i32, &[0], i + 1 == tokens.len())
                    .map_err(|e| ModelError::Permanent(e.to_string()))?;
            }
            ctx.clear_kv_cache();
            ctx.decode(&mut batch)
                .map_err(|e| ModelError::Transient(format!("llama.cpp decode failed: {e}")))?;
            let v = ctx
                .embeddings_seq_ith(0)
                .map_err(|e| ModelError::Permanent(format!("embeddings: {e}")))?;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            out.push(v.iter().map(|x| x / norm).collect());
        }
        Ok(out)
    }

    /// Whether llama.cpp's fused attention is on ([`LlamaConfig::flash_attention`]).
    pub fn flash_attention(&self) -> bool {
        self.config.flash_attention
    }

    /// The prompt text the model's chat template makes of `messages`.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, ModelError> {
        let Some(tmpl) = &self.template else {
            // no template in the file: a plain transcript
            let mut s = String::new();
            for m in messages {
                s.push_str(&format!("{}: {}\n", m.role.as_str(), m.content));
            }
            s.push_str("assistant: ");
            return Ok(s);
        };
        let msgs = messages
            .iter()
            .map(|m| {
                LlamaChatMessage::new(m.role.as_str().into(), m.content.replace('\0', ""))
                    .map_err(|e| ModelError::Permanent(format!("chat message: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.model
            .apply_chat_template(tmpl, &msgs, true)
            .map_err(|e| ModelError::Permanent(format!("chat template: {e}")))
    }

    /// In a fresh context, the KV state of the prompt cache file (if any); a file that does
    /// not load (another model or context size, truncated) is removed.
    fn load_prompt_cache(&self, session: &mut Session) {
        if session.cache_file_tried || !session.cached.is_empty() {
            return;
        }
        session.cache_file_tried = true;
        let Some(path) = &self.config.prompt_cache else {
            return;
        };
        if !path.is_file() {
            return;
        }
        match session
            .ctx
            .state_load_file(path, self.config.n_ctx as usize)
        {
            Ok(tokens) => {
                session.cache_file_tokens = tokens.len();
                session.cached = tokens;
            }
            Err(_) => {
                session.ctx.clear_kv_cache();
                session.cached.clear();
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// Writes the KV state to the prompt cache file (to a temporary file renamed over it, so
    /// a reader never sees half of one). Failures only cost speed, so they are ignored.
    fn save_prompt_cache(&self, session: &mut Session) {
        let Some(path) = &self.config.prompt_cache else {
            return;
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if session.ctx.state_save_file(&tmp, &session.cached).is_ok() {
            if std::fs::rename(&tmp, path).is_ok() {
                session.cache_file_tokens = session.cached.len();
            }
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    fn vocab_table(&self) -> &VocabTable {
        self.vocab_table.get_or_init(|| {
            let vocab = self.model.vocab();
            let n = self.model.n_vocab().max(0) as usize;
            let mut pieces = Vec::with_capacity(n);
            let mut eog = Vec::new();
            for i in 0..n {
                let t = LlamaToken::new(i as i32);
                if vocab.is_eog(t) {
                    eog.push(i);
                    pieces.push(Vec::new());
                } else if vocab.is_control(t) {
                    pieces.push(Vec::new());
                } else {
                    pieces.push(vocab.token_to_piece(t, false, None));
                }
            }
            VocabTable { pieces, eog }
        })
    }

    pub fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        let vocab = self.model.vocab();
        vocab.tokenize(text.as_bytes(), vocab.should_add_bos(), true)
    }

    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenize(text).len()
    }

    /// Generate from an already rendered prompt.
    pub fn complete(
        &self,
        prompt: &str,
        params: &GenParams,
        on_text: OnText<'_>,
    ) -> Result<Generation, ModelError> {
        let tokens = self.tokenize(prompt);
        self.generate_tokens(&tokens, params, on_text)
    }

    /// The log-probability of each token of `continuation` right after `prompt` (teacher
    /// forcing, nothing generated): the tokens that differ from the cached prefix are
    /// evaluated once, with logits read at every position that predicts a continuation
    /// token. How likely a passage makes a question, for ranking passages.
    pub fn continuation_logprobs(
        &self,
        prompt: &str,
        continuation: &str,
    ) -> Result<Vec<f32>, ModelError> {
        let vocab = self.model.vocab();
        let mut tokens = self.tokenize(prompt);
        let prompt_len = tokens.len();
        let cont = vocab.tokenize(continuation.as_bytes(), false, false);
        if prompt_len == 0 || cont.is_empty() {
            return Ok(Vec::new());
        }
        tokens.extend_from_slice(&cont);
        let n_ctx = self.config.n_ctx as usize;
        if tokens.len() > n_ctx {
            return Err(ModelError::ContextExceeded {
                tokens: tokens.len(),
                reserve: 0,
                limit: n_ctx,
            });
        }
        let mut guard = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let session = &mut *guard;
        self.load_prompt_cache(session);
        // the last prompt token is evaluated again: its logits predict the first one
        session.keep_prefix(&tokens, prompt_len - 1);
        let n_batch = (self.config.n_batch as usize).max(1);
        let mut batch = LlamaBatch::new(n_batch, 1);
        let mut out = Vec::with_capacity(cont.len());
        let mut pos = session.cached.len();
        // the last token predicts nothing that is scored
        let last = tokens.len() - 1;
        while pos < last {
            batch.clear();
            let end = (pos + n_batch).min(last);
            for (i, &t) in tokens[pos..end].iter().enumerate() {
                let p = pos + i;
                batch
                    .add(t, p as i32, &[0], p + 1 >= prompt_len)
                    .map_err(|e| ModelError::Permanent(format!("batch: {e}")))?;
            }
            session.decode(&mut batch)?;
            session.cached.extend_from_slice(&tokens[pos..end]);
            for (i, p) in (pos..end).enumerate() {
                if p + 1 >= prompt_len {
                    let logits = session.ctx.get_logits_ith(i as i32);
                    let next = tokens[p + 1].0 as usize;
                    out.push(
                        logits
                            .get(next)
                            .map_or(f32::MIN, |_| log_softmax(logits, next)),
                    );
                }
            }
            pos = end;
        }
        Ok(out)
    }

    fn generate_tokens(
        &self,
        tokens: &[LlamaToken],
        params: &GenParams,
        on_text: OnText<'_>,
    ) -> Result<Generation, ModelError> {
        let n_ctx = self.config.n_ctx as usize;
        if tokens.is_empty() {
            return Err(ModelError::Permanent("empty prompt".into()));
        }
        let reserve = params.max_tokens.max(1);
        if tokens.len() + reserve > n_ctx {
            return Err(ModelError::ContextExceeded {
                tokens: tokens.len(),
                reserve,
                limit: n_ctx,
            });
        }
        let mut guard = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let session = &mut *guard;
        let t0 = Instant::now();
        self.load_prompt_cache(session);

        // reuse the cached prefix; at least the last prompt token is evaluated for its logits
        session.keep_prefix(tokens, tokens.len() - 1);
        let start = session.cached.len();
        let n_batch = self.config.n_batch as usize;
        let mut batch = LlamaBatch::new(n_batch.max(1), 1);
        let mut pos = start;
        while pos < tokens.len() {
            batch.clear();
            let end = (pos + n_batch).min(tokens.len());
            for (i, &t) in tokens[pos..end].iter().enumerate() {
                let p = pos + i;
                batch
                    .add(t, p as i32, &[0], p + 1 == tokens.len())
                    .map_err(|e| ModelError::Permanent(format!("batch: {e}")))?;
            }
            session.decode(&mut batch)?;
            session.cached.extend_from_slice(&tokens[pos..end]);
            pos = end;
        }
        let prompt_ms = t0.elapsed().as_secs_f64() * 1000.0;
        // a file that held little of this prompt (none yet, or another prefix) is replaced
        // by this one's state
        if start < 32 && session.cache_file_tokens < 32 {
            self.save_prompt_cache(session);
        }

        let vocab = self.model.vocab();
        let t1 = Instant::now();
        let first_idx = batch.n_tokens() - 1;
        let mut spans = (!params.spans.is_empty()).then(|| {
            let c = SpanConstraint::new(&params.spans);
            // the tokens whose text occurs in the spans: the only ones ever allowed
            let table = self.vocab_table();
            const SHORT: usize = 32;
            let mut short: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
            for sp in &params.spans {
                let b = sp.as_bytes();
                for i in 0..b.len() {
                    for j in i + 1..=(i + SHORT).min(b.len()) {
                        short.insert(&b[i..j]);
                    }
                }
            }
            let candidates: Vec<usize> = (0..table.pieces.len())
                .filter(|&i| {
                    let p = table.pieces[i].as_slice();
                    !p.is_empty()
                        && if p.len() <= SHORT {
                            short.contains(p)
                        } else {
                            c.occurs(p)
                        }
                })
                .collect();
            (candidates, table)
        });
        // the first tokens each answer starts with (None: the greedy choice); with several,
        // the most likely allowed tokens that do not begin with the same character
        let firsts: Vec<Option<(usize, f32)>> = match &mut spans {
            Some((candidates, table)) if params.span_candidates > 1 => {
                let logits = session.ctx.get_logits_ith(first_idx);
                let c = SpanConstraint::new(&params.spans);
                candidates.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
                let mut out: Vec<Option<(usize, f32)>> = Vec::new();
                let mut leads: Vec<&[u8]> = Vec::new();
                for &i in candidates.iter() {
                    let piece = table.pieces[i].as_slice();
                    // the bytes of its first character
                    let width = match piece.first() {
                        Some(&b) if b < 0x80 => 1,
                        Some(&b) if b < 0xE0 => 2,
                        Some(&b) if b < 0xF0 => 3,
                        _ => 4,
                    };
                    let lead = &piece[..width.min(piece.len())];
                    if !c.allows(piece) || leads.contains(&lead) {
                        continue;
                    }
                    leads.push(lead);
                    out.push(Some((i, log_softmax(logits, i))));
                    if out.len() >= params.span_candidates {
                        break;
                    }
                }
                if out.is_empty() {
                    vec![None]
                } else {
                    out
                }
            }
            _ => vec![None],
        };
        let prompt_len = session.cached.len();
        let mut primary: Option<(String, FinishReason, usize, Option<f32>)> = None;
        let mut alternatives: Vec<SpanAnswer> = Vec::new();
        for (run, forced) in firsts.iter().enumerate() {
            if run > 0 {
                // back to the end of the prompt for the next answer
                let ok = session
                    .ctx
                    .clear_kv_cache_seq(Some(0), Some(prompt_len as u32), None)
                    .unwrap_or(false);
                if !ok {
                    break;
                }
                session.cached.truncate(prompt_len);
            }
            let mut sampler = if params.temperature <= 0.0 {
                LlamaSampler::greedy()
            } else {
                LlamaSampler::chain_simple([
                    LlamaSampler::top_p(params.top_p.clamp(0.0, 1.0), 1),
                    LlamaSampler::temp(params.temperature),
                    LlamaSampler::dist(params.seed),
                ])
            };
            let mut filter = StopFilter::new(&params.stop);
            let mut bytes: Vec<u8> = Vec::new();
            let mut finish = FinishReason::Length;
            let mut n_out = 0usize;
            let mut logits_idx = first_idx;
            let mut constraint = spans.as_ref().map(|_| SpanConstraint::new(&params.spans));
            // only the first answer is shown as it is generated
            let mut silent = |_: &str| true;
            let emit: &mut dyn FnMut(&str) -> bool =
                if run == 0 { &mut *on_text } else { &mut silent };
            let (mut span_logprob_sum, mut span_tokens) = (0.0f32, 0usize);
            while n_out < params.max_tokens {
                let token = match (&mut spans, constraint.as_mut()) {
                    (Some((candidates, table)), Some(c)) => {
                        let pick = match forced {
                            Some((i, lp)) if n_out == 0 => Some((*i, *lp)),
                            _ => {
                                let logits = session.ctx.get_logits_ith(logits_idx);
                                let end_logit = table
                                    .eog
                                    .iter()
                                    .map(|&t| logits.get(t).copied().unwrap_or(f32::MIN))
                                    .fold(f32::MIN, f32::max);
                                candidates.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
                                c.choose(
                                    candidates
                                        .iter()
                                        .map(|&i| (i, logits[i], table.pieces[i].as_slice())),
                                    end_logit,
                                )
                                // log-softmax of the chosen token over the whole vocabulary
                                .map(|i| (i, log_softmax(logits, i)))
                            }
                        };
                        match pick {
                            Some((i, lp)) => {
                                span_logprob_sum += lp;
                                span_tokens += 1;
                                c.advance(&table.pieces[i]);
                                LlamaToken::new(i as i32)
                            }
                            None => {
                                finish = FinishReason::Stop;
                                break;
                            }
                        }
                    }
                    _ => {
                        let token = sampler.sample(&session.ctx, logits_idx);
                        sampler.accept(token);
                        token
                    }
                };
                if vocab.is_eog(token) {
                    finish = FinishReason::Stop;
                    break;
                }
                n_out += 1;
                bytes.extend(vocab.token_to_piece(token, false, None));
                // emit the longest valid UTF-8 prefix
                let valid = match std::str::from_utf8(&bytes) {
                    Ok(s) => s.len(),
                    Err(e) => e.valid_up_to(),
                };
                let piece = String::from_utf8_lossy(&bytes[..valid]).into_owned();
                bytes.drain(..valid);
                if let Some(f) = filter.feed(&piece, &mut *emit) {
                    finish = f;
                    break;
                }
                if n_out >= params.max_tokens {
                    break;
                }
                if session.cached.len() + 1 >= n_ctx {
                    finish = FinishReason::Length;
                    break;
                }
                batch.clear();
                batch
                    .add(token, session.cached.len() as i32, &[0], true)
                    .map_err(|e| ModelError::Permanent(format!("batch: {e}")))?;
                session.decode(&mut batch)?;
                session.cached.push(token);
                logits_idx = 0;
            }
            if !bytes.is_empty() {
                let (out, _) = filter.push(&String::from_utf8_lossy(&bytes));
                if !out.is_empty() {
                    emit(&out);
                }
            }
            let rest = filter.finish();
            if !rest.is_empty() {
                emit(&rest);
            }
            if firsts.len() > 1 {
                alternatives.push(SpanAnswer {
                    text: filter.out.clone(),
                    logprob: span_logprob_sum,
                    tokens: span_tokens,
                });
            }
            if run == 0 {
                primary = Some((
                    filter.out,
                    finish,
                    n_out,
                    (span_tokens > 0).then(|| span_logprob_sum / span_tokens as f32),
                ));
            }
        }
        let (text, finish, n_out, span_logprob) =
            primary.unwrap_or((String::new(), FinishReason::Stop, 0, None));
        let decode_ms = t1.elapsed().as_secs_f64() * 1000.0;
        Ok(Generation {
            text,
            finish,
            prompt_tokens: tokens.len(),
            cached_tokens: start,
            completion_tokens: n_out,
            prompt_ms,
            decode_ms,
            span_logprob,
            alternatives,
        })
    }
}

/// Log-softmax of entry `i` of `logits` (its log-probability over the whole vocabulary).
fn log_softmax(logits: &[f32], i: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    logits[i] - max - sum.ln()
}

fn new_context(
    model: &'static LlamaModel,
    config: &LlamaConfig,
) -> Result<LlamaContext<'static>, ModelError> {
    let threads = config.threads.max(1) as i32;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.n_ctx.max(64)))
        .with_n_batch(config.n_batch.max(1))
        .with_n_ubatch(config.n_batch.max(1))
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        .with_flash_attention_policy(flash_attention_policy(config.flash_attention));
    model
        .new_context(backend()?, params)
        .map_err(|e| ModelError::Permanent(format!("llama.cpp context: {e}")))
}

impl Generator for LlamaGenerator {
    fn name(&self) -> &str {
        &self.name
    }

    fn fingerprint(&self) -> String {
        self.sha256
            .get_or_init(|| {
                // a catalog file of the right size was verified at install: its pinned digest
                let size = std::fs::metadata(&self.path).map(|m| m.len()).ok();
                for m in crate::catalog::MODELS {
                    let files = m.files.iter().map(|f| (f.name, f.size, f.sha256));
                    let derived = m.derived.iter().map(|d| (d.name, d.size, d.sha256));
                    for (name, fsize, sha) in files.chain(derived) {
                        if self.path.ends_with(Path::new(m.name).join(name)) && size == Some(fsize)
                        {
                            return format!("sha256:{sha}");
                        }
                    }
                }
                crate::install::sha256_file(&self.path)
                    .map_or_else(|_| self.name.clone(), |(h, _)| format!("sha256:{h}"))
            })
            .clone()
    }

    fn context_length(&self) -> usize {
        self.config.n_ctx as usize
    }

    fn chat(
        &self,
        messages: &[ChatMessage],
        params: &GenParams,
        on_text: OnText<'_>,
    ) -> Result<Generation, ModelError> {
        let prompt = self.render(messages)?;
        self.complete(&prompt, params, on_text)
    }

    fn reply_logprobs(
        &self,
        messages: &[ChatMessage],
        reply: &str,
    ) -> Result<Vec<f32>, ModelError> {
        let prompt = self.render(messages)?;
        self.continuation_logprobs(&prompt, reply)
    }
}

/// The baseline for the decode-speed benchmark: the plainest generation loop over the same
/// runtime and model (fresh context, greedy, one token per decode), no luodi code in between.
/// Returns (decode tokens per second, tokens generated).
pub fn bare_decode_loop(
    generator: &LlamaGenerator,
    prompt: &str,
    n: usize,
) -> Result<(f64, usize), ModelError> {
    let model = generator.model();
    let ctx_params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(generator.config.n_ctx))
        .with_n_batch(generator.config.n_batch)
        .with_n_threads(generator.config.threads as i32)
        .with_n_threads_batch(generator.config.threads as i32)
        .with_flash_attention_policy(flash_attention_policy(generator.config.flash_attention));
    let mut ctx = model
        .new_context(backend()?, ctx_params)
        .map_err(|e| ModelError::Permanent(format!("llama.cpp context: {e}")))?;
    let tokens = model
        .vocab()
        .tokenize(prompt.as_bytes(), model.vocab().should_add_bos(), true);
    let mut batch = LlamaBatch::new(tokens.len().max(512), 1);
    for (i, &t) in tokens.iter().enumerate() {
        batch
            .add(t, i as i32, &[0], i + 1 == tokens.len())
            .map_err(|e| ModelError::Permanent(e.to_string()))?;
    }
    ctx.decode(&mut batch)
        .map_err(|e| ModelError::Permanent(e.to_string()))?;
    let mut sampler = LlamaSampler::greedy();
    let mut idx = batch.n_tokens() - 1;
    let mut count = 0;
    let mut t1 = None;
    for pos in (tokens.len() as i32..).take(n) {
        let token = sampler.sample(&ctx, idx);
        sampler.accept(token);
        count += 1;
        if t1.is_none() {
            t1 = Some(Instant::now());
        }
        if count == n {
            break;
        }
        batch.clear();
        batch
            .add(token, pos, &[0], true)
            .map_err(|e| ModelError::Permanent(e.to_string()))?;
        ctx.decode(&mut batch)
            .map_err(|e| ModelError::Permanent(e.to_string()))?;
        idx = 0;
    }
    let secs = t1.map_or(0.0, |t| t.elapsed().as_secs_f64());
    Ok((
        if secs > 0.0 {
            (count - 1) as f64 / secs
        } else {
            0.0
        },
        count,
    ))
}
