//! deskmate-core: the whole Deskmate domain, with no GUI dependency.
//!
//! The desktop shell (`src-tauri`) and the CLI (`crates/cli`) are thin layers over this crate.
//! See ARCHITECTURE.md for the map of modules, data flow and threads.

pub mod app;
mod atomic_file;
pub mod attachments;
pub mod chat;
pub mod config;
pub mod conversation;
pub mod documents;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod locale;
pub mod models;
pub mod ocr;
mod owner;
pub mod paths;
pub mod startup;
pub mod store;
pub mod vision;
pub mod voice;

pub use error::{Error, ErrorCode, ErrorPayload, Result};

/// The compute backends compiled into this build: always the CPU, plus the GPU backends chosen
/// with the `cuda` and `vulkan` cargo features.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut backends = vec!["cpu"];
    if cfg!(feature = "cuda") {
        backends.push("cuda");
    }
    if cfg!(feature = "vulkan") {
        backends.push("vulkan");
    }
    backends
}
