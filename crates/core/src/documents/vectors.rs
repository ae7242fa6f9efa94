//! The approximate nearest-neighbour index over chunk embeddings (usearch HNSW, cosine).
//!
//! Storage: one file, `deskmate.vectors` beside the database, written atomically (temporary file,
//! sync, rename). It starts with a header line `DESKMATE-VECTORS 1`, then one JSON line
//! ([`Header`]: the embedding model, dimensions, the database's `vector_epoch` it reflects and the
//! vector count), then usearch's own serialisation. The database is the source of truth: every
//! embedding is also stored in `chunks.embedding`. An index whose header names another epoch,
//! model or dimension count, or that cannot be read at all, is rebuilt from those stored
//! embeddings, so a crash between a database commit and an index save loses nothing.
//!
//! Keys are chunk ids. Vectors are kept as `f16` in the index (half the memory of `f32`; the
//! benchmark measures recall against exact `f32` search).
//!
//! Threading: usearch allows concurrent searches and adds; callers still hold the index in a
//! mutex because growing its capacity must not race an add.

use crate::error::DocumentsError;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::{Error, Result};

const MAGIC: &[u8] = b"DESKMATE-VECTORS 1\n";

/// What a saved index reflects; compared with the database at open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub model: String,
    pub dimensions: usize,
    pub epoch: i64,
    pub count: usize,
}

pub struct VectorIndex {
    index: Index,
    path: PathBuf,
    model: String,
    dimensions: usize,
}

/// Why a saved index was not used (for the log and the tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    Missing,
    Unreadable(String),
    Mismatch {
        saved: Box<Header>,
        wanted: Box<Header>,
    },
}

impl VectorIndex {
    /// An empty index for `dimensions`-long vectors of `model`, to be saved at `path`.
    pub fn new(path: &Path, model: &str, dimensions: usize) -> Result<VectorIndex> {
        let options = IndexOptions {
            dimensions,
            metric: MetricKind::Cos,
            quantization: ScalarKind::F16,
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 256,
            multi: false,
        };
        let index = Index::new(&options).map_err(|e| index_err(path, e))?;
        Ok(VectorIndex {
            index,
            path: path.to_path_buf(),
            model: model.to_owned(),
            dimensions,
        })
    }

    /// Opens the saved index if it reflects `wanted` exactly; otherwise says why not.
    pub fn open(path: &Path, wanted: &Header) -> Result<std::result::Result<VectorIndex, Stale>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Err(Stale::Missing)),
            Err(e) => return Ok(Err(Stale::Unreadable(e.to_string()))),
        };
        let (header, body) = match split_file(&bytes) {
            Some(parts) => parts,
            None => return Ok(Err(Stale::Unreadable("not a Deskmate vector file".into()))),
        };
        if &header != wanted {
            return Ok(Err(Stale::Mismatch {
                saved: Box::new(header),
                wanted: Box::new(wanted.clone()),
            }));
        }
        let index = VectorIndex::new(path, &wanted.model, wanted.dimensions)?;
        if let Err(e) = index.index.load_from_buffer(body) {
            return Ok(Err(Stale::Unreadable(e.to_string())));
        }
        if index.index.size() != wanted.count || index.index.dimensions() != wanted.dimensions {
            return Ok(Err(Stale::Unreadable(format!(
                "holds {} vectors of {} dimensions, its header says {} of {}",
                index.index.size(),
                index.index.dimensions(),
                wanted.count,
                wanted.dimensions
            ))));
        }
        Ok(Ok(index))
    }

    pub fn len(&self) -> usize {
        self.index.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Adds (or replaces) the vector of chunk `key`.
    pub fn add(&mut self, key: i64, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dimensions {
            return Err(Error::Documents(DocumentsError::VectorIndex {
                path: self.path.clone(),
                message: format!(
                    "chunk {key}: {} dimensions, the index has {}",
                    vector.len(),
                    self.dimensions
                ),
            }));
        }
        let key = key as u64;
        if self.index.contains(key) {
            self.index
                .remove(key)
                .map_err(|e| index_err(&self.path, e))?;
        }
        if self.index.size() + 1 > self.index.capacity() {
            let grown = (self.index.capacity() * 2).max(1024);
            self.index
                .reserve(grown)
                .map_err(|e| index_err(&self.path, e))?;
        }
        self.index
            .add(key, vector)
            .map_err(|e| index_err(&self.path, e))
    }

    pub fn reserve(&mut self, capacity: usize) -> Result<()> {
        if capacity > self.index.capacity() {
            self.index
                .reserve(capacity)
                .map_err(|e| index_err(&self.path, e))?;
        }
        Ok(())
    }

    pub fn remove(&mut self, key: i64) -> Result<()> {
        self.index
            .remove(key as u64)
            .map(|_| ())
            .map_err(|e| index_err(&self.path, e))
    }

    /// The `k` nearest chunks to `query` that `allowed` accepts, nearest first, with their
    /// cosine similarity.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        allowed: impl Fn(i64) -> bool,
    ) -> Result<Vec<(i64, f32)>> {
        if self.index.size() == 0 || k == 0 {
            return Ok(Vec::new());
        }
        let matches = self
            .index
            .filtered_search(query, k, |key| allowed(key as i64))
            .map_err(|e| index_err(&self.path, e))?;
        Ok(matches
            .keys
            .iter()
            .zip(&matches.distances)
            .map(|(&key, &distance)| (key as i64, 1.0 - distance))
            .collect())
    }

    /// Writes the index with a header saying it reflects database epoch `epoch`.
    pub fn save(&self, epoch: i64) -> Result<()> {
        let header = Header {
            model: self.model.clone(),
            dimensions: self.dimensions,
            epoch,
            count: self.index.size(),
        };
        let mut header_line = serde_json::to_vec(&header).map_err(|e| {
            Error::Documents(DocumentsError::VectorIndex {
                path: self.path.clone(),
                message: e.to_string(),
            })
        })?;
        header_line.push(b'\n');
        let body_len = self.index.serialized_length();
        let mut bytes = Vec::with_capacity(MAGIC.len() + header_line.len() + body_len);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&header_line);
        let start = bytes.len();
        bytes.resize(start + body_len, 0);
        self.index
            .save_to_buffer(&mut bytes[start..])
            .map_err(|e| index_err(&self.path, e))?;
        crate::atomic_file::write(&self.path, &bytes).map_err(|e| Error::io(&self.path, e))
    }
}

fn split_file(bytes: &[u8]) -> Option<(Header, &[u8])> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let newline = rest.iter().position(|&b| b == b'\n')?;
    let header: Header = serde_json::from_slice(&rest[..newline]).ok()?;
    Some((header, &rest[newline + 1..]))
}

fn index_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Documents(DocumentsError::VectorIndex {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn unit(seed: u64, dims: usize) -> Vec<f32> {
        // A small xorshift so the test needs no rand crate; the vectors only need to differ.
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..dims)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.into_iter().map(|a| a / norm).collect()
    }

    #[test]
    fn a_saved_index_opens_only_when_it_reflects_the_wanted_epoch_and_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deskmate.vectors");
        let mut index = VectorIndex::new(&path, "e5", 8).unwrap();
        for key in 1..=50 {
            index.add(key, &unit(key as u64, 8)).unwrap();
        }
        index.save(7).unwrap();
        let wanted = Header {
            model: "e5".into(),
            dimensions: 8,
            epoch: 7,
            count: 50,
        };
        let reopened = VectorIndex::open(&path, &wanted).unwrap().expect("matches");
        let hits = reopened.search(&unit(9, 8), 3, |_| true).unwrap();
        assert_eq!(hits[0].0, 9, "a stored vector is its own nearest neighbour");
        assert!(hits[0].1 > 0.99);

        let newer = Header {
            epoch: 8,
            ..wanted.clone()
        };
        assert!(matches!(
            VectorIndex::open(&path, &newer).unwrap(),
            Err(Stale::Mismatch { .. })
        ));
        let other_model = Header {
            model: "minilm".into(),
            ..wanted.clone()
        };
        assert!(VectorIndex::open(&path, &other_model).unwrap().is_err());
        assert!(matches!(
            VectorIndex::open(&dir.path().join("none"), &wanted).unwrap(),
            Err(Stale::Missing)
        ));
        std::fs::write(&path, b"DESKMATE-VECTORS 1\n{\"model\":\"e5\",\"dimensions\":8,\"epoch\":7,\"count\":50}\ngarbage").unwrap();
        assert!(matches!(
            VectorIndex::open(&path, &wanted).unwrap(),
            Err(Stale::Unreadable(_))
        ));
    }

    #[test]
    fn the_filter_keeps_out_what_it_refuses_and_replacing_a_key_keeps_one_vector() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = VectorIndex::new(&dir.path().join("v"), "m", 16).unwrap();
        for key in 1..=200 {
            index.add(key, &unit(key as u64, 16)).unwrap();
        }
        index.add(5, &unit(1005, 16)).unwrap();
        assert_eq!(index.len(), 200);
        let hits = index.search(&unit(10, 16), 10, |k| k % 2 == 1).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|(k, _)| k % 2 == 1), "{hits:?}");
        index.remove(7).unwrap();
        assert_eq!(index.len(), 199);
        assert!(index
            .search(&unit(7, 16), 5, |_| true)
            .unwrap()
            .iter()
            .all(|(k, _)| *k != 7));
        let err = index.add(1, &[0.0; 3]).unwrap_err();
        assert_eq!(err.code(), "vector_index");
    }
}
