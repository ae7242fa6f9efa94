//! Sentence embeddings for chunks and queries.
//!
//! [`OnnxEmbedder`] runs a BERT-style ONNX model (multilingual e5-small by default) through
//! fastembed with mean pooling; fastembed L2-normalises the output, so cosine distance is a dot
//! product. ONNX Runtime is a shared library loaded at run time with `ort::init_from` (fastembed
//! is built with `ort-load-dynamic`): a missing or too old library is an
//! [`Error::Documents(DocumentsError::EmbeddingRuntime)`], never a panic, and the documents module then falls back to
//! keyword search.
//!
//! e5 models were trained with `query: ` and `passage: ` prefixes; leaving them out costs
//! retrieval quality, so the prefixes come from the configuration and are always applied here.
//!
//! Threading: embedding is blocking and CPU-bound (ONNX Runtime uses its own thread pool); an
//! [`Embedder`] is `Send` and used from one thread at a time (the documents worker holds it in a
//! mutex).

use crate::error::DocumentsError;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::config::EmbeddingConfig;
use crate::{Error, Result};

/// What the documents module needs from an embedding model; tests and the benchmark may supply
/// their own.
pub trait Embedder: Send {
    /// Identifies the model, so stored vectors from another model are not mixed with these.
    fn model_id(&self) -> &str;
    fn dimensions(&self) -> usize;
    /// Embeds chunk texts (the passage prefix is added here).
    fn embed_passages(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
    /// Embeds one search query (the query prefix is added here).
    fn embed_query(&mut self, text: &str) -> Result<Vec<f32>>;
}

pub struct OnnxEmbedder {
    model: fastembed::TextEmbedding,
    model_id: String,
    dimensions: usize,
    batch_size: usize,
    query_prefix: String,
    passage_prefix: String,
}

/// The library ONNX Runtime was loaded from. It is process-wide and cannot be unloaded, so a
/// second load from another path is refused rather than silently ignored.
static RUNTIME: OnceLock<PathBuf> = OnceLock::new();

fn load_runtime(library: &Path) -> Result<()> {
    if let Some(loaded) = RUNTIME.get() {
        return if loaded == library {
            Ok(())
        } else {
            Err(Error::Documents(DocumentsError::EmbeddingRuntime {
                path: library.to_path_buf(),
                reason: format!(
                    "ONNX Runtime is already loaded from {}; restart Deskmate to use another library",
                    loaded.display()
                ),
            }))
        };
    }
    if !library.is_file() {
        return Err(Error::Documents(DocumentsError::EmbeddingRuntime {
            path: library.to_path_buf(),
            reason: "file not found (embedding.runtime_library)".to_owned(),
        }));
    }
    let runtime_error = |reason: String| {
        Error::Documents(DocumentsError::EmbeddingRuntime {
            path: library.to_path_buf(),
            reason,
        })
    };
    // Loading a shared library runs its initialisers; a foreign file can crash here, but a
    // missing or wrong-version one is an error from `init_from`.
    // Loading is all that is needed here: the sessions fastembed builds then create the
    // default environment over this library.
    ort::init_from(library).map_err(|e| runtime_error(e.to_string()))?;
    let _ = RUNTIME.set(library.to_path_buf());
    Ok(())
}

impl OnnxEmbedder {
    /// Loads the model folder (`model.onnx`, `tokenizer.json`, `config.json`,
    /// `special_tokens_map.json`, `tokenizer_config.json`) and the runtime library.
    pub fn load(
        model_dir: &Path,
        runtime_library: &Path,
        config: &EmbeddingConfig,
    ) -> Result<Self> {
        let read = |name: &str| -> Result<Vec<u8>> {
            let path = model_dir.join(name);
            std::fs::read(&path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::Documents(DocumentsError::EmbeddingModelMissing { path })
                } else {
                    Error::io(path, e)
                }
            })
        };
        if !model_dir.is_dir() {
            return Err(Error::Documents(DocumentsError::EmbeddingModelMissing {
                path: model_dir.to_path_buf(),
            }));
        }
        let onnx = read("model.onnx")?;
        let tokenizer_files = fastembed::TokenizerFiles {
            tokenizer_file: read("tokenizer.json")?,
            config_file: read("config.json")?,
            special_tokens_map_file: read("special_tokens_map.json")?,
            tokenizer_config_file: read("tokenizer_config.json")?,
        };
        let dimensions = hidden_size(&tokenizer_files.config_file).ok_or_else(|| {
            Error::Documents(DocumentsError::EmbeddingFailed {
                message: format!("{}: config.json has no hidden_size", model_dir.display()),
            })
        })?;
        load_runtime(runtime_library)?;
        let model = fastembed::UserDefinedEmbeddingModel::new(onnx, tokenizer_files)
            .with_pooling(fastembed::Pooling::Mean);
        let options = fastembed::InitOptionsUserDefined::new().with_max_length(512);
        let model =
            fastembed::TextEmbedding::try_new_from_user_defined(model, options).map_err(|e| {
                Error::Documents(DocumentsError::EmbeddingFailed {
                    message: format!("{}: {e}", model_dir.display()),
                })
            })?;
        let model_id = model_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| model_dir.display().to_string());
        Ok(OnnxEmbedder {
            model,
            model_id,
            dimensions,
            batch_size: config.batch_size.max(1) as usize,
            query_prefix: config.query_prefix.clone(),
            passage_prefix: config.passage_prefix.clone(),
        })
    }

    fn embed(&mut self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        let vectors = self
            .model
            .embed(&texts, Some(self.batch_size))
            .map_err(|e| {
                Error::Documents(DocumentsError::EmbeddingFailed {
                    message: e.to_string(),
                })
            })?;
        if let Some(bad) = vectors.iter().find(|v| v.len() != self.dimensions) {
            return Err(Error::Documents(DocumentsError::EmbeddingFailed {
                message: format!(
                    "the model gave {} dimensions, its config.json says {}",
                    bad.len(),
                    self.dimensions
                ),
            }));
        }
        Ok(vectors)
    }
}

fn hidden_size(config_json: &[u8]) -> Option<usize> {
    let value: serde_json::Value = serde_json::from_slice(config_json).ok()?;
    value
        .get("hidden_size")?
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
}

impl Embedder for OnnxEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn embed_passages(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let prefixed = texts
            .iter()
            .map(|t| format!("{}{t}", self.passage_prefix))
            .collect();
        self.embed(prefixed)
    }

    fn embed_query(&mut self, text: &str) -> Result<Vec<f32>> {
        let mut vectors = self.embed(vec![format!("{}{text}", self.query_prefix)])?;
        vectors.pop().ok_or_else(|| {
            Error::Documents(DocumentsError::EmbeddingFailed {
                message: "the model returned no vector for the query".to_owned(),
            })
        })
    }
}

/// Cosine similarity of two L2-normalised vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Vectors are stored in SQLite as little-endian `f32`s.
pub fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn from_blob(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_a_torn_blob_is_refused() {
        let v = vec![0.25_f32, -1.5, 3.0e-7];
        assert_eq!(from_blob(&to_blob(&v)), Some(v));
        assert_eq!(from_blob(&[1, 2, 3]), None);
    }

    #[test]
    fn a_missing_model_folder_or_runtime_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = OnnxEmbedder::load(
            &dir.path().join("nope"),
            &dir.path().join("libonnxruntime.so"),
            &EmbeddingConfig::default(),
        )
        .err()
        .expect("no model folder");
        assert_eq!(err.code(), "embedding_model_missing");
        assert!(err.to_string().contains("nope"), "{err}");

        // Runtime checks come after the model files, so give it a folder with stand-in files.
        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        for f in [
            "model.onnx",
            "tokenizer.json",
            "special_tokens_map.json",
            "tokenizer_config.json",
        ] {
            std::fs::write(model.join(f), b"{}").unwrap();
        }
        std::fs::write(model.join("config.json"), br#"{"hidden_size": 384}"#).unwrap();
        let err = OnnxEmbedder::load(
            &model,
            &dir.path().join("libonnxruntime.so.9"),
            &EmbeddingConfig::default(),
        )
        .err()
        .expect("no runtime library");
        assert_eq!(err.code(), "embedding_runtime_missing");
        assert!(err.to_string().contains("libonnxruntime.so.9"), "{err}");
    }
}
