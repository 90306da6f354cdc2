//! Any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp's server, a hosted API) behind
//! the same [`Generator`] trait, streamed over server-sent events.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{ChatMessage, FinishReason, GenParams, Generation, Generator, OnText, StopFilter};
use crate::ModelError;

#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Base URL up to and including `/v1`, e.g. `http://gpu-server:8000/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub context_length: usize,
    pub timeout: Duration,
}

pub struct RemoteGenerator {
    config: RemoteConfig,
    agent: ureq::Agent,
}

impl RemoteGenerator {
    pub fn new(config: RemoteConfig) -> RemoteGenerator {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(config.timeout)
            .build();
        RemoteGenerator { config, agent }
    }
}

fn classify(err: ureq::Error, context_length: usize) -> ModelError {
    match err {
        ureq::Error::Status(code, resp) => {
            let body = resp.into_string().unwrap_or_default();
            let msg = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| body.chars().take(300).collect());
            let code_str = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
                .unwrap_or_default();
            if code_str == "context_length_exceeded" || msg.contains("context length") {
                ModelError::ContextExceeded {
                    tokens: 0,
                    reserve: 0,
                    limit: context_length,
                }
            } else if code == 408 || code == 409 || code == 429 || code >= 500 {
                ModelError::Transient(format!("HTTP {code}: {msg}"))
            } else {
                ModelError::Permanent(format!("HTTP {code}: {msg}"))
            }
        }
        ureq::Error::Transport(t) => ModelError::Transient(format!("endpoint unreachable: {t}")),
    }
}

impl Generator for RemoteGenerator {
    fn name(&self) -> &str {
        &self.config.model
    }

    fn fingerprint(&self) -> String {
        format!("remote:{}#{}", self.config.base_url, self.config.model)
    }

    fn context_length(&self) -> usize {
        self.config.context_length
    }

    fn chat(
        &self,
        messages: &[ChatMessage],
        params: &GenParams,
        on_text: OnText<'_>,
    ) -> Result<Generation, ModelError> {
        let url = format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let mut body = json!({
            "model": self.config.model,
            "messages": messages,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if !params.stop.is_empty() {
            body["stop"] = json!(params.stop);
        }
        let mut req = self
            .agent
            .post(&url)
            .set("Content-Type", "application/json");
        if let Some(k) = &self.config.api_key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        let t0 = Instant::now();
        let resp = req
            .send_string(&body.to_string())
            .map_err(|e| classify(e, self.config.context_length))?;
        let reader = BufReader::new(resp.into_reader());
        let mut filter = StopFilter::new(&params.stop);
        let mut first: Option<Instant> = None;
        let mut finish = FinishReason::Length;
        let (mut prompt_tokens, mut completion_tokens, mut pieces) = (0usize, 0usize, 0usize);
        for line in reader.lines() {
            let line =
                line.map_err(|e| ModelError::Transient(format!("stream interrupted: {e}")))?;
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                break;
            }
            let v: Value = serde_json::from_str(data).map_err(|e| {
                ModelError::Permanent(format!("endpoint sent invalid JSON in its stream: {e}"))
            })?;
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                prompt_tokens = u["prompt_tokens"].as_u64().unwrap_or(0) as usize;
                completion_tokens = u["completion_tokens"].as_u64().unwrap_or(0) as usize;
            }
            let Some(choice) = v["choices"].get(0) else {
                continue;
            };
            if let Some(t) = choice["delta"]["content"].as_str() {
                if first.is_none() {
                    first = Some(Instant::now());
                }
                pieces += 1;
                if let Some(f) = filter.feed(t, on_text) {
                    finish = f;
                    break;
                }
            }
            match choice["finish_reason"].as_str() {
                Some("stop") => finish = FinishReason::Stop,
                Some("length") => finish = FinishReason::Length,
                _ => {}
            }
        }
        let rest = filter.finish();
        if !rest.is_empty() {
            on_text(&rest);
        }
        let first = first.unwrap_or_else(Instant::now);
        Ok(Generation {
            text: filter.out,
            finish,
            prompt_tokens,
            cached_tokens: 0,
            completion_tokens: if completion_tokens > 0 {
                completion_tokens
            } else {
                pieces
            },
            prompt_ms: (first - t0).as_secs_f64() * 1000.0,
            decode_ms: first.elapsed().as_secs_f64() * 1000.0,
            span_logprob: None,
            alternatives: Vec::new(),
        })
    }
}
