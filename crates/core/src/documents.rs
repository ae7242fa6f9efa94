//! Local documents: import, indexes, hybrid search under access levels.
//!
//! - [`extract`] turns a txt, md, pdf, docx, html or csv file into sections of text with their
//!   page or heading; every unreadable, encrypted, binary or oversized file is an error naming
//!   it, so a batch can report it and go on.
//! - [`chunk`] cuts the sections into chunks sized in the embedding model's tokens, between
//!   sentences, with overlap.
//! - [`embed`] makes the vectors (fastembed, ONNX Runtime loaded at run time).
//! - [`vectors`] is the usearch HNSW index over them, a cache of the stored embeddings.
//! - [`sentence_vectors`] keeps each chunk's sentences embedded on their own (stored with the
//!   chunk) and reranks the best candidates of a search by their best sentence.
//! - [`keyword`] turns a query into FTS5 terms that are safe to `MATCH` and work for Korean.
//! - [`library`] ties them together: resumable import jobs, hybrid search by reciprocal-rank
//!   fusion, and the clearance filter every search goes through.
//!
//! Everything here is blocking and CPU-bound: call it from a worker thread or `spawn_blocking`.

pub mod chunk;
pub mod embed;
pub mod extract;
pub mod keyword;
pub mod library;
mod office;
pub mod open;
#[doc(hidden)]
pub mod samples;
pub mod sentence_vectors;
pub mod vectors;

pub use library::{
    Document, FileOutcome, ImportProgress, JobReport, Library, Passage, SearchMode, SearchResult,
};
