//! Requantizing a GGUF with llama.cpp's own `llama_model_quantize`, and whether this build of
//! llama.cpp gains from it.
//!
//! The default 0.5B model is "Q4_K_M" in name only: Qwen2.5-0.5B's 896-wide rows do not fit
//! k-quant blocks, so most of its matrices (attention q/k/o, FFN gate/up, embeddings) are Q5_0.
//! llama.cpp has AMX (Sapphire Rapids tile) kernels for Q8_0 and the k-quants but not for Q5_0,
//! so on such a CPU a prompt reads at ~50–70 tokens/s from Q5_0 and ~200 from the same weights
//! requantized to Q8_0 (`luodi bench llm`). Q8_0 holds every Q5_0/Q4_K/Q6_K value to within
//! 1/254 of its block's largest one, far inside the error the 4/5-bit quantization already made.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::path::Path;

use crate::ModelError;

/// Whether this build of llama.cpp has AMX int8 matrix kernels (built for a CPU with AMX:
/// `-C target-cpu=native` on such a machine). Only there is a Q8_0 copy faster than the
/// installed Q4_K_M file; elsewhere it is ~7% slower and 180 MB larger.
pub fn amx_kernels() -> bool {
    // SAFETY: a pure function of how ggml-cpu was compiled; no state, no arguments.
    unsafe { llama_cpp_sys_2::ggml_cpu_has_amx_int8() != 0 }
}

/// Write `src` requantized to Q8_0 (every tensor llama.cpp quantizes; norms stay F32) at `dest`.
/// Deterministic for a given llama.cpp version: the caller checks the result's pinned sha256.
pub fn requantize_q8_0(src: &Path, dest: &Path, threads: usize) -> Result<(), ModelError> {
    // the backend first: it also silences llama.cpp's log unless LUODI_LLAMA_LOG is set
    super::llama::init_backend()?;
    let c = |p: &Path| {
        p.to_str()
            .and_then(|s| CString::new(s).ok())
            .ok_or_else(|| ModelError::Permanent(format!("{}: not a UTF-8 path", p.display())))
    };
    let (inp, out) = (c(src)?, c(dest)?);
    // SAFETY: both strings are valid NUL-terminated paths that outlive the call; the params
    // come from llama.cpp's own defaults with plain fields changed.
    let rc = unsafe {
        let mut p = llama_cpp_sys_2::llama_model_quantize_default_params();
        p.nthread = threads.clamp(1, 64) as i32;
        p.ftype = llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q8_0;
        p.allow_requantize = true;
        llama_cpp_sys_2::llama_model_quantize(inp.as_ptr(), out.as_ptr(), &p)
    };
    if rc != 0 {
        let _ = std::fs::remove_file(dest);
        return Err(ModelError::Permanent(format!(
            "{}: llama.cpp could not requantize it to Q8_0 (code {rc})",
            src.display()
        )));
    }
    Ok(())
}
