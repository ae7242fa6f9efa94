//! How many layers go on the GPU, and what to do when they do not fit.
//!
//! [`estimate_gpu_layers`] turns the GGUF's per-layer sizes, the KV cache for the configured
//! context and the GPU's free VRAM into a starting layer count for `n_gpu_layers: "auto"`.
//! [`load_with_backoff`] is the retry policy: it calls an injected [`Loader`] (llama.cpp in the
//! app, a script in the tests) and, each time the model or its context fails for lack of
//! memory, tries again with fewer GPU layers, down to CPU only, and only then with a smaller
//! context. Any other failure ends the attempts at once, since fewer layers would not help.
//! Every attempt is recorded with its reason for the load report.

use serde::Serialize;

/// Memory kept free on the GPU beyond the estimate: drivers, the desktop, other programs and the
/// estimate's own error.
pub const MIN_SAFETY_MARGIN: u64 = 512 << 20;

/// Scratch buffers llama.cpp allocates per context beside weights and KV cache (measured figures
/// for small models are 100–300 MiB at n_batch 512); used until a measurement replaces it.
pub const COMPUTE_BUFFER_ESTIMATE: u64 = 384 << 20;

/// The smallest context the back-off will shrink to.
pub const MIN_CONTEXT: u32 = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitInput {
    /// Weight bytes of each repeating layer.
    pub layer_bytes: Vec<u64>,
    /// Weights outside the layers (embeddings, output head); the output head joins the GPU
    /// when every layer is offloaded.
    pub non_layer_bytes: u64,
    /// KV cache bytes per token of context, all layers together.
    pub kv_bytes_per_token: u64,
    pub n_ctx: u32,
    /// Free VRAM of the GPU that will hold the model; `None` without a usable GPU.
    pub free_vram: Option<u64>,
}

/// The VRAM that `layers` offloaded layers would take.
pub fn vram_needed(input: &FitInput, layers: u32) -> u64 {
    let total = input.layer_bytes.len() as u32;
    let layers = layers.min(total);
    // llama.cpp offloads the last layers first.
    let weights: u64 = input.layer_bytes.iter().rev().take(layers as usize).sum();
    let kv_per_layer = input.kv_bytes_per_token / u64::from(total.max(1));
    let kv = kv_per_layer * u64::from(layers) * u64::from(input.n_ctx);
    let head = if layers == total {
        input.non_layer_bytes
    } else {
        0
    };
    weights
        + kv
        + head
        + if layers > 0 {
            COMPUTE_BUFFER_ESTIMATE
        } else {
            0
        }
}

/// The memory left free on a device with `free` bytes free: 10% of it, at least
/// [`MIN_SAFETY_MARGIN`]. Both predictions leave the same margin.
pub fn safety_margin(free: u64) -> u64 {
    (free / 10).max(MIN_SAFETY_MARGIN)
}

/// The most layers whose estimated VRAM, plus [`safety_margin`], fits in the free VRAM. 0
/// without a GPU.
pub fn estimate_gpu_layers(input: &FitInput) -> u32 {
    let Some(free) = input.free_vram else {
        return 0;
    };
    let budget = free.saturating_sub(safety_margin(free));
    let total = input.layer_bytes.len() as u32;
    (0..=total)
        .rev()
        .find(|&n| vram_needed(input, n) <= budget)
        .unwrap_or(0)
}

/// Which prediction gave the first attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FitSource {
    /// llama.cpp's own fit (`common_fit_params`, llama-server's `--fit`).
    LlamaCpp,
    /// [`estimate_gpu_layers`], from the GGUF's sizes.
    Deskmate,
}

/// The two predictions of how many layers fit, for `n_gpu_layers: "auto"`; the load report shows
/// them beside what loaded.
///
/// llama.cpp's fit goes first when it has an answer: it measures the compute buffers and the KV
/// cache with a dry run of the real model and context, where [`estimate_gpu_layers`] assumes
/// [`COMPUTE_BUFFER_ESTIMATE`]. Which one predicts the most layers that really load can only be
/// measured on a device that enforces its memory (Mesa's software device does not; on it, with
/// SmolLM2 and a 131,072-token context on its 2 GiB, llama.cpp predicted 14 layers and ours 11).
/// `cargo xtask gpu-check` records both against what loads on a lent GPU. Ours stays for when
/// llama.cpp's fit cannot run, and the back-off stays as the safety net for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FitPrediction {
    pub deskmate_layers: u32,
    pub llama_cpp_layers: Option<u32>,
    pub first_attempt: FitSource,
}

impl FitPrediction {
    pub fn new(deskmate_layers: u32, llama_cpp_layers: Option<u32>) -> FitPrediction {
        FitPrediction {
            deskmate_layers,
            llama_cpp_layers,
            first_attempt: if llama_cpp_layers.is_some() {
                FitSource::LlamaCpp
            } else {
                FitSource::Deskmate
            },
        }
    }

    pub fn first_attempt_layers(&self) -> u32 {
        match (self.first_attempt, self.llama_cpp_layers) {
            (FitSource::LlamaCpp, Some(layers)) => layers,
            _ => self.deskmate_layers,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    LoadModel,
    CreateContext,
}

/// Why one load attempt failed, as the loader saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadFailure {
    pub stage: Stage,
    /// The reason in words (for llama.cpp, the lines it logged).
    pub reason: String,
    /// Whether the failure was a lack of memory, the only kind that fewer layers can cure.
    pub out_of_memory: bool,
}

/// One try, as the Models page shows it ("tried 33 layers: out of memory; loaded 24 layers").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub gpu_layers: u32,
    pub n_ctx: u32,
    /// `None` when this attempt loaded the model.
    pub failure: Option<LoadFailure>,
}

/// Loads a model with a given number of GPU layers and context size.
pub trait Loader {
    type Loaded;
    fn load(&mut self, gpu_layers: u32, n_ctx: u32) -> Result<Self::Loaded, LoadFailure>;
}

/// The outcome of [`load_with_backoff`]: the loaded model (or the last failure) and every attempt.
#[derive(Debug)]
pub struct BackoffResult<T> {
    pub loaded: Result<T, LoadFailure>,
    pub attempts: Vec<Attempt>,
}

/// The layer counts to try after `start`: three quarters, a half, a quarter, then CPU only.
fn layer_ladder(start: u32) -> Vec<u32> {
    let mut ladder = vec![start, start * 3 / 4, start / 2, start / 4, 0];
    ladder.dedup();
    ladder
}

/// Loads with `start_layers` GPU layers and backs off on out-of-memory failures: fewer layers,
/// then CPU only, then (CPU only) halving the context down to [`MIN_CONTEXT`].
pub fn load_with_backoff<L: Loader>(
    loader: &mut L,
    start_layers: u32,
    n_ctx: u32,
) -> BackoffResult<L::Loaded> {
    let mut attempts = Vec::new();
    let mut plan: Vec<(u32, u32)> = layer_ladder(start_layers)
        .into_iter()
        .map(|l| (l, n_ctx))
        .collect();
    let mut ctx = n_ctx;
    while ctx / 2 >= MIN_CONTEXT {
        ctx /= 2;
        plan.push((0, ctx));
    }

    let mut last_failure = None;
    for (gpu_layers, n_ctx) in plan {
        match loader.load(gpu_layers, n_ctx) {
            Ok(loaded) => {
                attempts.push(Attempt {
                    gpu_layers,
                    n_ctx,
                    failure: None,
                });
                return BackoffResult {
                    loaded: Ok(loaded),
                    attempts,
                };
            }
            Err(failure) => {
                let retry = failure.out_of_memory;
                attempts.push(Attempt {
                    gpu_layers,
                    n_ctx,
                    failure: Some(failure.clone()),
                });
                last_failure = Some(failure);
                if !retry {
                    break;
                }
            }
        }
    }
    BackoffResult {
        loaded: Err(last_failure.unwrap_or(LoadFailure {
            stage: Stage::LoadModel,
            reason: "no load was attempted".to_owned(),
            out_of_memory: false,
        })),
        attempts,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    /// A loader scripted by a rule, recording what it was asked.
    struct Scripted<F: FnMut(u32, u32) -> Result<(), LoadFailure>> {
        rule: F,
        calls: Vec<(u32, u32)>,
    }

    impl<F: FnMut(u32, u32) -> Result<(), LoadFailure>> Loader for Scripted<F> {
        type Loaded = (u32, u32);
        fn load(&mut self, layers: u32, n_ctx: u32) -> Result<(u32, u32), LoadFailure> {
            self.calls.push((layers, n_ctx));
            (self.rule)(layers, n_ctx).map(|()| (layers, n_ctx))
        }
    }

    fn oom(stage: Stage) -> LoadFailure {
        LoadFailure {
            stage,
            reason: "cudaMalloc failed: out of memory".into(),
            out_of_memory: true,
        }
    }

    #[test]
    fn succeeds_first_time_with_one_attempt() {
        let mut loader = Scripted {
            rule: |_, _| Ok(()),
            calls: vec![],
        };
        let result = load_with_backoff(&mut loader, 33, 8192);
        assert_eq!(result.loaded.unwrap(), (33, 8192));
        assert_eq!(
            result.attempts,
            vec![Attempt {
                gpu_layers: 33,
                n_ctx: 8192,
                failure: None
            }]
        );
    }

    #[test]
    fn fails_above_n_layers_and_settles_on_the_first_count_that_fits() {
        let mut loader = Scripted {
            rule: |layers, _| {
                if layers > 20 {
                    Err(oom(Stage::LoadModel))
                } else {
                    Ok(())
                }
            },
            calls: vec![],
        };
        let result = load_with_backoff(&mut loader, 33, 8192);
        assert_eq!(result.loaded.unwrap(), (16, 8192));
        assert_eq!(loader.calls, vec![(33, 8192), (24, 8192), (16, 8192)]);
        let failed: Vec<u32> = result
            .attempts
            .iter()
            .filter(|a| a.failure.is_some())
            .map(|a| a.gpu_layers)
            .collect();
        assert_eq!(failed, vec![33, 24]);
    }

    #[test]
    fn fails_only_at_context_creation_and_backs_off_the_same_way() {
        // The weights fit at every count, but the KV cache for 32k tokens does not beside 12+ layers.
        let mut loader = Scripted {
            rule: |layers, _| {
                if layers >= 12 {
                    Err(oom(Stage::CreateContext))
                } else {
                    Ok(())
                }
            },
            calls: vec![],
        };
        let result = load_with_backoff(&mut loader, 28, 32768);
        assert_eq!(result.loaded.unwrap(), (7, 32768));
        assert!(result.attempts[0].failure.as_ref().unwrap().stage == Stage::CreateContext);
    }

    #[test]
    fn fails_always_then_tries_cpu_and_smaller_contexts_and_reports_every_attempt() {
        let mut loader = Scripted {
            rule: |_, _| Err(oom(Stage::CreateContext)),
            calls: vec![],
        };
        let result = load_with_backoff(&mut loader, 8, 8192);
        assert_eq!(
            loader.calls,
            vec![
                (8, 8192),
                (6, 8192),
                (4, 8192),
                (2, 8192),
                (0, 8192),
                (0, 4096),
                (0, 2048),
                (0, 1024)
            ]
        );
        assert_eq!(result.attempts.len(), 8);
        let last = result.loaded.unwrap_err();
        assert!(last.out_of_memory);
        assert!(last.reason.contains("out of memory"));
    }

    #[test]
    fn a_smaller_context_is_only_a_last_resort_after_cpu_only() {
        let mut loader = Scripted {
            rule: |layers, ctx| {
                if layers == 0 && ctx <= 4096 {
                    Ok(())
                } else {
                    Err(oom(Stage::CreateContext))
                }
            },
            calls: vec![],
        };
        let result = load_with_backoff(&mut loader, 4, 8192);
        assert_eq!(result.loaded.unwrap(), (0, 4096));
        assert!(loader.calls.iter().all(|&(l, c)| c == 8192 || l == 0));
    }

    #[test]
    fn a_failure_that_is_not_memory_stops_at_once() {
        let mut loader = Scripted {
            rule: |_, _| {
                Err(LoadFailure {
                    stage: Stage::LoadModel,
                    reason: "unknown model architecture: 'mamba9'".into(),
                    out_of_memory: false,
                })
            },
            calls: vec![],
        };
        let result = load_with_backoff(&mut loader, 33, 8192);
        assert_eq!(loader.calls, vec![(33, 8192)]);
        assert!(result.loaded.unwrap_err().reason.contains("mamba9"));
    }

    #[test]
    fn cpu_only_start_tries_just_the_context_ladder() {
        let mut loader = Scripted {
            rule: |_, _| Ok(()),
            calls: vec![],
        };
        load_with_backoff(&mut loader, 0, 4096).loaded.unwrap();
        assert_eq!(loader.calls, vec![(0, 4096)]);
    }

    fn qwen_like(free_vram: Option<u64>, n_ctx: u32) -> FitInput {
        // Qwen2.5 1.5B Q4_K_M as `deskmate models inspect` reads it: 28 layers of ~28 MB,
        // ~315 MB outside the layers, 28672 KV bytes per token.
        FitInput {
            layer_bytes: vec![28 * MIB; 28],
            non_layer_bytes: 315 * MIB,
            kv_bytes_per_token: 28_672,
            n_ctx,
            free_vram,
        }
    }

    #[test]
    fn everything_fits_on_a_large_card_and_nothing_without_one() {
        assert_eq!(estimate_gpu_layers(&qwen_like(Some(24 * GIB), 8192)), 28);
        assert_eq!(estimate_gpu_layers(&qwen_like(None, 8192)), 0);
        assert_eq!(
            estimate_gpu_layers(&qwen_like(Some(100 * MIB), 8192)),
            0,
            "less than the margin"
        );
    }

    #[test]
    fn a_small_card_gets_the_layers_that_fit_within_the_margin() {
        let input = qwen_like(Some(2 * GIB), 32768);
        let layers = estimate_gpu_layers(&input);
        assert!(layers > 0 && layers < 28, "{layers}");
        let budget = 2 * GIB - MIN_SAFETY_MARGIN;
        assert!(vram_needed(&input, layers) <= budget);
        assert!(
            vram_needed(&input, layers + 1) > budget,
            "one more layer must not fit"
        );
    }

    #[test]
    fn a_longer_context_leaves_room_for_fewer_layers() {
        let short = estimate_gpu_layers(&qwen_like(Some(3 * GIB / 2), 4096));
        let long = estimate_gpu_layers(&qwen_like(Some(3 * GIB / 2), 32768));
        assert!(long < short, "{long} vs {short}");
    }
}
