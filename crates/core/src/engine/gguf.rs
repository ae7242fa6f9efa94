//! Reading GGUF model files: header, metadata and tensor table, without loading any weights.
//!
//! Every count and length read from the file is checked against the bytes that remain before it
//! is used, so a corrupt header cannot make us allocate or loop without bound, and the tensor
//! table is checked against the file size, so a truncated download is found here, not by
//! llama.cpp. Only GGUF versions 2 and 3 (little-endian) are accepted, as llama.cpp does.
//!
//! Format: `"GGUF"`, version `u32`, tensor count `u64`, metadata count `u64`, the metadata
//! (`key: string, type: u32, value`), the tensor infos (`name, n_dims: u32, dims: u64[n_dims],
//! ggml type: u32, offset: u64`), then the tensor data from the next multiple of
//! `general.alignment` (32 by default).

use crate::error::EngineError;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Error;

/// A metadata value. Arrays keep only their length: the large ones are token tables, which
/// llama.cpp reads itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    String(String),
    Array { len: u64 },
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Uint(v) => Some(v),
            Value::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Bytes of data, from the ggml type's block size; `None` for a type this reader does not
    /// know (newer than it), whose size then comes from the next tensor's offset.
    pub size: Option<u64>,
}

/// What the engine needs to know about a model file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GgufModel {
    pub path: PathBuf,
    pub file_len: u64,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    /// Where tensor data starts in the file.
    pub data_offset: u64,
}

/// Largest plausible counts; real models have a few thousand tensors and metadata entries.
const MAX_TENSORS: u64 = 1 << 20;
const MAX_METADATA: u64 = 1 << 20;
const MAX_DIMS: u32 = 4;

struct Reader<'a> {
    inner: BufReader<File>,
    pos: u64,
    len: u64,
    path: &'a Path,
}

impl Reader<'_> {
    fn truncated(&self, what: &str) -> Error {
        Error::Engine(EngineError::ModelTruncated {
            path: self.path.to_path_buf(),
            detail: format!(
                "it ends inside the header while reading {what} at byte {}",
                self.pos
            ),
            file_len: self.len,
        })
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::Engine(EngineError::ModelCorrupt {
            path: self.path.to_path_buf(),
            detail,
        })
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Error> {
        let mut buf = [0u8; N];
        if self.len.saturating_sub(self.pos) < N as u64 {
            return Err(self.truncated(what));
        }
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| self.truncated(what))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, Error> {
        self.bytes::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, Error> {
        self.bytes::<8>(what).map(u64::from_le_bytes)
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), Error> {
        if self.len.saturating_sub(self.pos) < n {
            return Err(self.truncated(what));
        }
        std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|_| self.truncated(what))?;
        self.pos += n;
        Ok(())
    }

    fn string(&mut self, what: &str) -> Result<String, Error> {
        let len = self.u64(what)?;
        if len > self.len.saturating_sub(self.pos) {
            return Err(self.truncated(what));
        }
        let mut buf = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| self.truncated(what))?;
        self.pos += len;
        String::from_utf8(buf).map_err(|_| self.corrupt(format!("{what} is not UTF-8")))
    }

    /// Reads one value of `kind`.
    fn value(&mut self, kind: u32, key: &str) -> Result<Value, Error> {
        let what = format!("the value of {key}");
        Ok(match kind {
            0 => Value::Uint(u64::from(self.bytes::<1>(&what)?[0])),
            1 => Value::Int(i64::from(i8::from_le_bytes(self.bytes::<1>(&what)?))),
            2 => Value::Uint(u64::from(u16::from_le_bytes(self.bytes::<2>(&what)?))),
            3 => Value::Int(i64::from(i16::from_le_bytes(self.bytes::<2>(&what)?))),
            4 => Value::Uint(u64::from(self.u32(&what)?)),
            5 => Value::Int(i64::from(i32::from_le_bytes(self.bytes::<4>(&what)?))),
            6 => Value::Float(f64::from(f32::from_le_bytes(self.bytes::<4>(&what)?))),
            7 => Value::Bool(self.bytes::<1>(&what)?[0] != 0),
            8 => Value::String(self.string(&what)?),
            9 => {
                let item_kind = self.u32(&what)?;
                let len = self.u64(&what)?;
                // Every item takes at least one byte, so a count beyond the remaining bytes is a lie.
                if len > self.len.saturating_sub(self.pos) {
                    return Err(self.truncated(&what));
                }
                if item_kind == 9 {
                    return Err(self.corrupt(format!("{key} is an array of arrays")));
                }
                match fixed_size(item_kind) {
                    Some(size) => self.skip(len.saturating_mul(size), &what)?,
                    None if item_kind == 8 => {
                        for _ in 0..len {
                            let n = self.u64(&what)?;
                            self.skip(n, &what)?;
                        }
                    }
                    None => {
                        return Err(
                            self.corrupt(format!("{key} has items of unknown type {item_kind}"))
                        )
                    }
                }
                Value::Array { len }
            }
            10 => Value::Uint(self.u64(&what)?),
            11 => Value::Int(i64::from_le_bytes(self.bytes::<8>(&what)?)),
            12 => Value::Float(f64::from_le_bytes(self.bytes::<8>(&what)?)),
            other => return Err(self.corrupt(format!("{key} has unknown value type {other}"))),
        })
    }
}

fn fixed_size(kind: u32) -> Option<u64> {
    match kind {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// `(elements per block, bytes per block)` of the ggml tensor types (ggml.h `ggml_type`).
fn block_layout(ggml_type: u32) -> Option<(u64, u64)> {
    Some(match ggml_type {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 36),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        16 => (256, 66),  // IQ2_XXS
        17 => (256, 74),  // IQ2_XS
        18 => (256, 98),  // IQ3_XXS
        19 => (256, 50),  // IQ1_S
        20 => (32, 18),   // IQ4_NL
        21 => (256, 110), // IQ3_S
        22 => (256, 82),  // IQ2_S
        23 => (256, 136), // IQ4_XS
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        29 => (256, 56),  // IQ1_M
        30 => (1, 2),     // BF16
        34 => (256, 54),  // TQ1_0
        35 => (256, 66),  // TQ2_0
        39 => (32, 17),   // MXFP4
        _ => return None,
    })
}

fn tensor_size(dims: &[u64], ggml_type: u32) -> Option<u64> {
    let (block, bytes) = block_layout(ggml_type)?;
    let elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))?;
    (elements % block == 0).then(|| (elements / block).checked_mul(bytes))?
}

/// Reads and checks a GGUF file's header and tensor table.
pub fn read(path: &Path) -> Result<GgufModel, Error> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Engine(EngineError::ModelFileMissing {
                path: path.to_path_buf(),
            }))
        }
        Err(e) => {
            return Err(Error::Engine(EngineError::ModelUnreadable {
                path: path.to_path_buf(),
                message: e.to_string(),
            }))
        }
    };
    if meta.is_dir() {
        return Err(Error::Engine(EngineError::ModelNotAFile {
            path: path.to_path_buf(),
        }));
    }
    let file = File::open(path).map_err(|e| {
        Error::Engine(EngineError::ModelUnreadable {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    })?;
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        len: meta.len(),
        path,
    };

    let magic = r.bytes::<4>("the magic number").map_err(|_| {
        Error::Engine(EngineError::ModelNotGguf {
            path: path.to_path_buf(),
            found: String::from("(fewer than 4 bytes)"),
        })
    })?;
    if &magic != b"GGUF" {
        return Err(Error::Engine(EngineError::ModelNotGguf {
            path: path.to_path_buf(),
            found: String::from_utf8_lossy(&magic).escape_debug().to_string(),
        }));
    }
    let version = r.u32("the version")?;
    if !(2..=3).contains(&version) {
        return Err(Error::Engine(EngineError::ModelUnsupportedVersion {
            path: path.to_path_buf(),
            version,
        }));
    }
    let tensor_count = r.u64("the tensor count")?;
    let metadata_count = r.u64("the metadata count")?;
    if tensor_count > MAX_TENSORS || metadata_count > MAX_METADATA {
        return Err(r.corrupt(format!(
            "implausible counts: {tensor_count} tensors, {metadata_count} metadata entries"
        )));
    }

    let mut metadata = BTreeMap::new();
    for i in 0..metadata_count {
        let key = r.string(&format!("metadata key {i}"))?;
        let kind = r.u32(&format!("the type of {key}"))?;
        let value = r.value(kind, &key)?;
        metadata.insert(key, value);
    }

    let mut tensors = Vec::with_capacity(tensor_count.min(4096) as usize);
    for i in 0..tensor_count {
        let name = r.string(&format!("tensor name {i}"))?;
        let n_dims = r.u32(&format!("the dimensions of {name}"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(r.corrupt(format!("tensor {name} has {n_dims} dimensions")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64(&format!("the dimensions of {name}"))?);
        }
        let ggml_type = r.u32(&format!("the type of {name}"))?;
        let offset = r.u64(&format!("the offset of {name}"))?;
        let size = tensor_size(&dims, ggml_type);
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            size,
        });
    }

    let alignment = metadata
        .get("general.alignment")
        .and_then(Value::as_u64)
        .unwrap_or(32);
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(r.corrupt(format!(
            "general.alignment is {alignment}, not a power of two"
        )));
    }
    let data_offset = r.pos.div_ceil(alignment) * alignment;
    let mut model = GgufModel {
        path: path.to_path_buf(),
        file_len: meta.len(),
        version,
        metadata,
        tensors,
        data_offset,
    };
    model.check_tensor_data()?;
    Ok(model)
}

impl GgufModel {
    /// Fills unknown sizes from neighbouring offsets and checks every tensor lies inside the file.
    fn check_tensor_data(&mut self) -> Result<(), Error> {
        let data_len = self.file_len.saturating_sub(self.data_offset);
        let mut order: Vec<usize> = (0..self.tensors.len()).collect();
        order.sort_by_key(|&i| self.tensors[i].offset);
        for (pos, &i) in order.iter().enumerate() {
            let next_offset = order
                .get(pos + 1)
                .map_or(data_len, |&j| self.tensors[j].offset);
            let tensor = &mut self.tensors[i];
            let size = match tensor.size {
                Some(size) => size,
                None => next_offset.saturating_sub(tensor.offset),
            };
            tensor.size = Some(size);
            let end = tensor.offset.checked_add(size);
            if end.is_none_or(|end| end > data_len) {
                return Err(Error::Engine(EngineError::ModelTruncated {
                    path: self.path.clone(),
                    detail: format!(
                        "tensor {} needs bytes up to {} but the data ends at {}",
                        tensor.name,
                        self.data_offset.saturating_add(end.unwrap_or(u64::MAX)),
                        self.file_len
                    ),
                    file_len: self.file_len,
                }));
            }
        }
        Ok(())
    }

    fn arch_key(&self, suffix: &str) -> Option<&Value> {
        let arch = self.architecture()?;
        self.metadata.get(&format!("{arch}.{suffix}"))
    }

    fn arch_u64(&self, suffix: &str) -> Option<u64> {
        self.arch_key(suffix).and_then(Value::as_u64)
    }

    pub fn architecture(&self) -> Option<&str> {
        self.metadata
            .get("general.architecture")
            .and_then(Value::as_str)
    }

    pub fn name(&self) -> Option<&str> {
        self.metadata.get("general.name").and_then(Value::as_str)
    }

    /// The chat template stored in the file (`tokenizer.chat_template`), if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.metadata
            .get("tokenizer.chat_template")
            .and_then(Value::as_str)
    }

    pub fn block_count(&self) -> Option<u32> {
        self.arch_u64("block_count")
            .and_then(|v| u32::try_from(v).ok())
    }

    pub fn context_length(&self) -> Option<u32> {
        self.arch_u64("context_length")
            .and_then(|v| u32::try_from(v).ok())
    }

    /// The quantization named by `general.file_type` (llama.cpp's `llama_ftype`).
    pub fn quantization(&self) -> Option<&'static str> {
        let names = [
            (0, "F32"),
            (1, "F16"),
            (2, "Q4_0"),
            (3, "Q4_1"),
            (7, "Q8_0"),
            (8, "Q5_0"),
            (9, "Q5_1"),
            (10, "Q2_K"),
            (11, "Q3_K_S"),
            (12, "Q3_K_M"),
            (13, "Q3_K_L"),
            (14, "Q4_K_S"),
            (15, "Q4_K_M"),
            (16, "Q5_K_S"),
            (17, "Q5_K_M"),
            (18, "Q6_K"),
            (19, "IQ2_XXS"),
            (20, "IQ2_XS"),
            (21, "Q2_K_S"),
            (22, "IQ3_XS"),
            (23, "IQ3_XXS"),
            (24, "IQ1_S"),
            (25, "IQ4_NL"),
            (26, "IQ3_S"),
            (27, "IQ3_M"),
            (28, "IQ2_S"),
            (29, "IQ2_M"),
            (30, "IQ4_XS"),
            (31, "IQ1_M"),
            (32, "BF16"),
            (36, "TQ1_0"),
            (37, "TQ2_0"),
            (38, "MXFP4_MOE"),
        ];
        let file_type = self.metadata.get("general.file_type")?.as_u64()?;
        names
            .iter()
            .find(|(id, _)| *id == file_type)
            .map(|(_, name)| *name)
    }

    /// Bytes of weights in each repeating layer (`blk.N.*`), indexed by layer.
    pub fn layer_bytes(&self) -> Vec<u64> {
        let mut layers = vec![0u64; self.block_count().unwrap_or(0) as usize];
        for t in &self.tensors {
            let layer = t
                .name
                .strip_prefix("blk.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|n| n.parse::<usize>().ok());
            if let (Some(layer), Some(size)) = (layer, t.size) {
                if let Some(total) = layers.get_mut(layer) {
                    *total += size;
                }
            }
        }
        layers
    }

    /// Bytes of weights outside the repeating layers (embeddings, output head, final norm).
    pub fn non_layer_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .filter(|t| !t.name.starts_with("blk."))
            .filter_map(|t| t.size)
            .sum()
    }

    /// KV-cache bytes per token of context across all layers, with an f16 cache.
    pub fn kv_bytes_per_token(&self) -> Option<u64> {
        let layers = u64::from(self.block_count()?);
        let embedding = self.arch_u64("embedding_length")?;
        let heads = self.arch_u64("attention.head_count")?.max(1);
        let kv_heads = self.arch_u64("attention.head_count_kv").unwrap_or(heads);
        let key_len = self
            .arch_u64("attention.key_length")
            .unwrap_or(embedding / heads);
        let value_len = self
            .arch_u64("attention.value_length")
            .unwrap_or(embedding / heads);
        Some(layers * kv_heads * (key_len + value_len) * 2)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Writes a small but complete GGUF: a llama-style model with `layers` blocks of one
    /// 64x64 F16 tensor each, plus an embedding, padded so the tensor data is complete.
    fn tiny_gguf(layers: u32) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        }
        let mut kv: Vec<(String, u32, Vec<u8>)> = Vec::new();
        let str_val = |k: &str, v: &str| {
            let mut b = Vec::new();
            string(&mut b, v);
            (k.to_owned(), 8u32, b)
        };
        kv.push(str_val("general.architecture", "llama"));
        kv.push(str_val("general.name", "Tiny Test"));
        kv.push(str_val(
            "tokenizer.chat_template",
            "{% for m in messages %}{{ m.content }}{% endfor %}",
        ));
        let u32_val = |k: &str, v: u32| (k.to_owned(), 4u32, v.to_le_bytes().to_vec());
        kv.push(u32_val("general.file_type", 1));
        kv.push(u32_val("llama.block_count", layers));
        kv.push(u32_val("llama.context_length", 2048));
        kv.push(u32_val("llama.embedding_length", 64));
        kv.push(u32_val("llama.attention.head_count", 4));
        kv.push(u32_val("llama.attention.head_count_kv", 2));
        // An array of strings, as token tables are.
        let mut tokens = Vec::new();
        tokens.extend(8u32.to_le_bytes());
        tokens.extend(3u64.to_le_bytes());
        for t in ["<s>", "안녕", "hello"] {
            string(&mut tokens, t);
        }
        kv.push(("tokenizer.ggml.tokens".into(), 9, tokens));

        let mut tensors = vec![("token_embd.weight".to_owned(), vec![64u64, 16])];
        for i in 0..layers {
            tensors.push((format!("blk.{i}.attn_q.weight"), vec![64, 64]));
        }

        let mut out = Vec::new();
        out.extend(b"GGUF");
        out.extend(3u32.to_le_bytes());
        out.extend((tensors.len() as u64).to_le_bytes());
        out.extend((kv.len() as u64).to_le_bytes());
        for (k, kind, v) in &kv {
            string(&mut out, k);
            out.extend(kind.to_le_bytes());
            out.extend(v);
        }
        let mut offset = 0u64;
        for (name, dims) in &tensors {
            string(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(1u32.to_le_bytes()); // F16
            out.extend(offset.to_le_bytes());
            offset += dims.iter().product::<u64>() * 2;
            offset = offset.div_ceil(32) * 32;
        }
        let data_start = (out.len() as u64).div_ceil(32) * 32;
        out.resize((data_start + offset) as usize, 0);
        out
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_complete_file_yields_architecture_layers_sizes_and_template() {
        let dir = tempfile::tempdir().unwrap();
        let model = read(&write(dir.path(), "tiny.gguf", &tiny_gguf(3))).unwrap();
        assert_eq!(model.version, 3);
        assert_eq!(model.architecture(), Some("llama"));
        assert_eq!(model.name(), Some("Tiny Test"));
        assert_eq!(model.quantization(), Some("F16"));
        assert_eq!(model.block_count(), Some(3));
        assert_eq!(model.context_length(), Some(2048));
        assert!(model.chat_template().unwrap().contains("messages"));
        assert_eq!(
            model.metadata["tokenizer.ggml.tokens"],
            Value::Array { len: 3 }
        );
        assert_eq!(model.layer_bytes(), vec![64 * 64 * 2; 3]);
        assert_eq!(model.non_layer_bytes(), 64 * 16 * 2);
        // 3 layers x 2 KV heads x (16 + 16) x 2 bytes
        assert_eq!(model.kv_bytes_per_token(), Some(3 * 2 * 32 * 2));
    }

    #[test]
    fn missing_directory_and_non_gguf_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.gguf");
        assert_eq!(read(&missing).unwrap_err().code(), "model_missing");
        assert_eq!(read(dir.path()).unwrap_err().code(), "model_not_a_file");
        let text = write(dir.path(), "notes.txt", b"hello, this is not a model");
        let err = read(&text).unwrap_err();
        assert_eq!(err.code(), "model_not_gguf");
        assert!(err.to_string().contains("notes.txt"), "{err}");
        assert_eq!(
            read(&write(dir.path(), "empty.gguf", b""))
                .unwrap_err()
                .code(),
            "model_not_gguf"
        );
    }

    #[test]
    fn every_truncation_point_is_reported_as_truncated_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let full = tiny_gguf(2);
        // Cut the file at many points inside the header and the data.
        for cut in (4..full.len()).step_by(7) {
            let path = write(dir.path(), "cut.gguf", &full[..cut]);
            let err = read(&path).expect_err("a cut file must be rejected");
            assert_eq!(err.code(), "model_truncated", "cut at {cut}: {err}");
        }
    }

    #[test]
    fn corrupt_headers_are_rejected_without_huge_allocations() {
        let dir = tempfile::tempdir().unwrap();
        let good = tiny_gguf(1);

        let mut version = good.clone();
        version[4..8].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(
            read(&write(dir.path(), "v1.gguf", &version))
                .unwrap_err()
                .code(),
            "model_unsupported_version"
        );

        let mut counts = good.clone();
        counts[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            read(&write(dir.path(), "counts.gguf", &counts))
                .unwrap_err()
                .code(),
            "model_corrupt"
        );

        // The first metadata key claims to be 2^60 bytes long.
        let mut key_len = good.clone();
        key_len[24..32].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert_eq!(
            read(&write(dir.path(), "keylen.gguf", &key_len))
                .unwrap_err()
                .code(),
            "model_truncated"
        );

        // An unknown value type for the first key.
        let first_key_len = u64::from_le_bytes(good[24..32].try_into().unwrap()) as usize;
        let type_at = 32 + first_key_len;
        let mut kind = good;
        kind[type_at..type_at + 4].copy_from_slice(&77u32.to_le_bytes());
        let err = read(&write(dir.path(), "kind.gguf", &kind)).unwrap_err();
        assert_eq!(err.code(), "model_corrupt");
        assert!(err.to_string().contains("unknown value type 77"), "{err}");
    }

    /// The real test models from the mirror, when `DESKMATE_MODEL_MIRROR` names one.
    fn mirror_file(name: &str) -> Option<PathBuf> {
        let path = crate::paths::mirror_from_env()?.join(name);
        path.is_file().then_some(path)
    }

    #[test]
    fn real_models_from_the_mirror_are_read() {
        let Some(smol) = mirror_file("SmolLM2-135M-Instruct.Q4_1.gguf") else {
            eprintln!(
                "skipped: DESKMATE_MODEL_MIRROR does not provide SmolLM2-135M-Instruct.Q4_1.gguf"
            );
            return;
        };
        let model = read(&smol).unwrap();
        assert_eq!(model.architecture(), Some("llama"));
        assert_eq!(model.block_count(), Some(30));
        assert_eq!(model.quantization(), Some("Q4_1"));
        assert!(model.chat_template().unwrap().contains("im_start"));
        let weights: u64 = model.layer_bytes().iter().sum::<u64>() + model.non_layer_bytes();
        assert!(weights <= model.file_len && weights > model.file_len * 9 / 10);

        if let Some(gemma) = mirror_file("gemma-3-270m-q4_k_m.gguf") {
            let model = read(&gemma).unwrap();
            assert_eq!(model.architecture(), Some("gemma3"));
            assert_eq!(
                model.chat_template(),
                None,
                "the gemma base model has no chat template"
            );
            assert!(model.layer_bytes().iter().all(|&b| b > 0));
        }
    }
}
