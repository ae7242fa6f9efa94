//! The inference engine (in progress, issue 3).
//!
//! Present so far: [`fit`], the VRAM fit estimate and the back-off retry policy over an injected
//! loader, and [`gguf`], which reads and checks a model file's header, metadata and tensor
//! table before llama.cpp is given the file, so a missing, truncated, corrupt or non-GGUF file is
//! a clear error that names the file and never reaches (or aborts) llama.cpp, and which supplies
//! the per-layer sizes and KV-cache size per token that the VRAM fit estimate needs.
//!
//! To come (see issue 3): the model host and worker thread per model over llama-cpp-2, the
//! llama.cpp loader behind [`fit::Loader`] (with its log captured for failure reasons), slots with continuous batching, the prompt cache and statistics.

pub mod fit;
pub mod gguf;
