//! deskmate-core: the whole Deskmate domain, with no GUI dependency.
//!
//! The desktop shell (`src-tauri`) and the CLI (`crates/cli`) are thin layers over this crate.
//! See ARCHITECTURE.md for the map of modules, data flow and threads.

mod atomic_file;
pub mod config;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod locale;
pub mod models;
pub mod paths;
pub mod startup;
pub mod store;

pub use error::{Error, ErrorPayload, Result};

/// The compute backends compiled into this build. GPU backends (CUDA, Vulkan) arrive as cargo
/// features with the inference engine; until then every build computes on the CPU.
pub fn compiled_backends() -> Vec<&'static str> {
    vec!["cpu"]
}
