//! Loading a model with the VRAM back-off (`fit`), its context settings, and its chat
//! template (the file's own, or one chosen by architecture).

use super::*;
use crate::error::EngineError;

pub(super) struct Loaded {
    pub(super) model: Arc<LlamaModel>,
    pub(super) report: LoadReport,
    pub(super) template: LlamaChatTemplate,
    pub(super) settings: Settings,
}

pub(super) fn resolved_threads(config: &ModelConfig) -> i32 {
    match config.threads {
        AutoOr::Value(t) => t as i32,
        AutoOr::Auto => std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1).max(1)) as i32,
    }
}

pub(super) fn context_params(config: &ModelConfig, settings: &Settings) -> LlamaContextParams {
    let flash = match config.flash_attn {
        AutoOr::Auto => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
        AutoOr::Value(true) => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
        AutoOr::Value(false) => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
    };
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(settings.n_ctx))
        .with_n_batch(settings.n_batch)
        .with_n_ubatch(settings.n_batch)
        .with_n_seq_max(settings.parallel)
        .with_kv_unified(false)
        .with_n_threads(settings.threads)
        .with_n_threads_batch(settings.threads)
        // Gemma 3's sliding-window layers: a full-size cache would be ~6x larger.
        .with_swa_full(false)
        .with_flash_attention_policy(flash)
}

/// The llama.cpp loader the back-off policy drives: loads the weights (or reuses shared ones)
/// and proves a context of the requested size can be created.
pub(super) struct LlamaLoader<'a> {
    pub(super) backend: &'static LlamaBackend,
    pub(super) path: &'a Path,
    pub(super) config: &'a ModelConfig,
    pub(super) settings: Settings,
    pub(super) log: &'a ThreadLog,
    pub(super) total_layers: u32,
    pub(super) shared: Option<Arc<LlamaModel>>,
}

impl Loader for LlamaLoader<'_> {
    type Loaded = Arc<LlamaModel>;

    fn load(
        &mut self,
        gpu_layers: u32,
        n_ctx: u32,
    ) -> std::result::Result<Self::Loaded, LoadFailure> {
        let mark = self.log.mark();
        let model = match &self.shared {
            Some(model) => Arc::clone(model),
            None => {
                // Asking for more than the layer count also offloads the output head.
                let n_gpu_layers = if gpu_layers >= self.total_layers && gpu_layers > 0 {
                    self.total_layers + 1
                } else {
                    gpu_layers
                };
                let params = LlamaModelParams::default()
                    .with_n_gpu_layers(n_gpu_layers)
                    .with_main_gpu(self.config.main_gpu as i32)
                    .with_split_mode(LlamaSplitMode::None);
                match LlamaModel::load_from_file(self.backend, self.path, &params) {
                    Ok(model) => Arc::new(model),
                    Err(e) => return Err(failure(Stage::LoadModel, &e, self.log, mark)),
                }
            }
        };
        let settings = Settings {
            n_ctx,
            ..self.settings
        };
        match model.new_context(self.backend, context_params(self.config, &settings)) {
            // The worker creates the context it serves with on its own stack: a context borrows
            // its model, so it cannot be handed out of here.
            Ok(ctx) => drop(ctx),
            Err(e) => return Err(failure(Stage::CreateContext, &e, self.log, mark)),
        }
        Ok(model)
    }
}

/// Serialises [`llama_cpp_fit`]: llama.cpp's fit swaps the process-wide log callback for its own
/// and restores it afterwards, so two at once could restore a callback whose state is gone.
static LLAMA_FIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// llama.cpp's own fit (`common_fit_params`, what llama-server's `--fit` uses): a dry-run load
/// of the model and context that measures the weights, KV cache and compute buffers per device,
/// and the most layers that leave `margin` free on the target. `None` when it finds no fit or
/// cannot run (its reason goes to the log).
pub(super) fn llama_cpp_fit(
    path: &Path,
    config: &ModelConfig,
    settings: &Settings,
    margin: u64,
    total_layers: u32,
) -> Option<u32> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut params = std::pin::pin!(LlamaModelParams::default()
        .with_main_gpu(config.main_gpu as i32)
        .with_split_mode(LlamaSplitMode::None));
    let mut cparams = context_params(config, settings);
    let max_devices = llama_cpp_2::max_devices();
    let mut margins = vec![usize::try_from(margin).unwrap_or(usize::MAX); max_devices.max(1)];
    let _serial = LLAMA_FIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let fitted = params.as_mut().fit_params(
        &c_path,
        &mut cparams,
        &mut margins,
        fit::MIN_CONTEXT,
        llama_cpp_sys_2::GGML_LOG_LEVEL_WARN,
    );
    match fitted {
        Ok(_) => {
            // Negative means "all"; more than the layer count also offloads the output head.
            let n = params.n_gpu_layers();
            Some(u32::try_from(n).map_or(total_layers, |n| n.min(total_layers)))
        }
        Err(e) => {
            tracing::info!(file = %path.display(), "llama.cpp's fit found no placement: {e}");
            None
        }
    }
}

pub(super) fn failure(
    stage: Stage,
    e: &dyn std::fmt::Display,
    log: &ThreadLog,
    mark: u64,
) -> LoadFailure {
    let lines = log.since(mark);
    let reason = if lines.is_empty() {
        e.to_string()
    } else {
        failure_reason(&lines)
    };
    LoadFailure {
        stage,
        out_of_memory: looks_like_out_of_memory(&reason),
        reason,
    }
}

pub(super) fn load(
    backend: &'static LlamaBackend,
    spec: &LoadSpec,
    log: &ThreadLog,
) -> Result<Loaded> {
    let started = Instant::now();
    let config = &spec.config;
    // Checked before llama.cpp sees the file: a bad file is a clear error, never an abort.
    let gguf = crate::engine::gguf::read(&spec.path)?;
    let total_layers = gguf.block_count().unwrap_or(0);
    let settings = Settings {
        n_ctx: config.n_ctx,
        n_batch: config.n_batch,
        parallel: config.parallel,
        threads: resolved_threads(config),
    };
    let gpu_offload = backend.supports_gpu_offload();
    let target = if gpu_offload {
        crate::engine::devices::offload_target(config.main_gpu)
    } else {
        None
    };
    let free_vram = target.as_ref().and_then(crate::engine::free_memory);
    let mut prediction = None;
    let start_layers = match (gpu_offload, config.n_gpu_layers) {
        (false, _) => 0,
        (true, AutoOr::Value(n)) => n.min(total_layers),
        (true, AutoOr::Auto) => match free_vram {
            Some(free) => {
                let deskmate = fit::estimate_gpu_layers(&fit::FitInput {
                    layer_bytes: gguf.layer_bytes(),
                    non_layer_bytes: gguf.non_layer_bytes(),
                    kv_bytes_per_token: gguf.kv_bytes_per_token().unwrap_or(0),
                    n_ctx: config.n_ctx,
                    free_vram: Some(free),
                });
                let llama_cpp = llama_cpp_fit(
                    &spec.path,
                    config,
                    &settings,
                    fit::safety_margin(free),
                    total_layers,
                );
                let p = fit::FitPrediction::new(deskmate, llama_cpp);
                let first = p.first_attempt_layers();
                prediction = Some(p);
                first
            }
            // A GPU whose backend reports no memory: try everything, back off on failure.
            None => total_layers,
        },
    };

    let mut loader = LlamaLoader {
        backend,
        path: &spec.path,
        config,
        settings,
        log,
        total_layers,
        shared: spec.shared.as_ref().map(|s| Arc::clone(&s.model)),
    };
    let (result, attempts, layers_on_gpu) = match &spec.shared {
        Some(shared) => {
            let layers = shared.report.layers_on_gpu;
            let (result, attempts) = shrink_context_only(&mut loader, layers, config.n_ctx);
            (result, attempts, layers)
        }
        None => {
            let outcome = fit::load_with_backoff(&mut loader, start_layers, config.n_ctx);
            let layers = outcome
                .attempts
                .last()
                .map_or(0, |a: &Attempt| a.gpu_layers);
            (outcome.loaded, outcome.attempts, layers)
        }
    };
    let n_ctx = attempts.last().map_or(config.n_ctx, |a| a.n_ctx);
    let model = match result {
        Ok(model) => model,
        Err(failure) => {
            return Err(Error::Engine(EngineError::ModelLoadFailed {
                path: spec.path.clone(),
                reason: failure.reason,
                out_of_memory: failure.out_of_memory,
                attempts,
            }))
        }
    };

    let (template, template_source) =
        chat_template(&model, config, gguf.architecture()).map_err(|(template, message)| {
            Error::Engine(EngineError::ChatTemplate {
                path: spec.path.clone(),
                template,
                message,
            })
        })?;

    let report = LoadReport {
        persona: spec.persona,
        file: spec.path.clone(),
        file_bytes: gguf.file_len,
        architecture: gguf.architecture().map(str::to_owned),
        quantization: gguf.quantization().map(str::to_owned),
        layers_total: total_layers,
        layers_on_gpu,
        gpu: (layers_on_gpu > 0).then_some(config.main_gpu),
        device: target
            .as_ref()
            .filter(|_| layers_on_gpu > 0)
            .map(crate::engine::devices::ComputeDevice::label),
        backend: crate::compiled_backends().join("+"),
        free_vram_bytes: free_vram,
        estimated_layers: prediction.as_ref().map(|p| p.deskmate_layers),
        fit: prediction,
        n_ctx,
        n_ctx_per_slot: n_ctx / config.parallel.max(1),
        parallel: config.parallel,
        threads: settings.threads as u32,
        chat_template: template_source,
        load_ms: started.elapsed().as_secs_f64() * 1000.0,
        attempts,
        shared_with: spec.shared.as_ref().map(|s| s.report.persona),
        vision: None,
    };
    tracing::info!(
        persona = spec.persona.as_str(),
        file = %spec.path.display(),
        layers_on_gpu,
        total_layers,
        n_ctx,
        "model loaded"
    );
    Ok(Loaded {
        model,
        report,
        template,
        settings: Settings { n_ctx, ..settings },
    })
}

/// Shared weights: the layers are fixed, so only the context can shrink.
pub(super) fn shrink_context_only(
    loader: &mut LlamaLoader<'_>,
    layers: u32,
    n_ctx: u32,
) -> (
    std::result::Result<Arc<LlamaModel>, LoadFailure>,
    Vec<Attempt>,
) {
    let mut attempts = Vec::new();
    let mut ctx = n_ctx;
    loop {
        match loader.load(layers, ctx) {
            Ok(model) => {
                attempts.push(Attempt {
                    gpu_layers: layers,
                    n_ctx: ctx,
                    failure: None,
                });
                return (Ok(model), attempts);
            }
            Err(failure) => {
                attempts.push(Attempt {
                    gpu_layers: layers,
                    n_ctx: ctx,
                    failure: Some(failure.clone()),
                });
                if !failure.out_of_memory || ctx / 2 < fit::MIN_CONTEXT {
                    return (Err(failure), attempts);
                }
                ctx /= 2;
            }
        }
    }
}

/// The built-in template for a file without one, by architecture.
pub(super) fn builtin_template_for(architecture: Option<&str>) -> &'static str {
    match architecture {
        Some(a) if a.starts_with("gemma") => "gemma",
        Some(a) if a.starts_with("phi3") => "phi3",
        Some("llama") => "llama3",
        _ => "chatml",
    }
}

/// The chat template to use and where it came from: the config's override, the GGUF's own, or a
/// built-in by architecture. Checked by rendering a short conversation.
pub(super) fn chat_template(
    model: &LlamaModel,
    config: &ModelConfig,
    architecture: Option<&str>,
) -> std::result::Result<(LlamaChatTemplate, String), (String, String)> {
    let (template, source) = match &config.chat_template {
        Some(t) => {
            let shown = if t.len() <= 24 {
                t.clone()
            } else {
                "(custom template)".to_owned()
            };
            let template = LlamaChatTemplate::new(t)
                .map_err(|e| (shown.clone(), format!("cannot be used: {e}")))?;
            (template, format!("config: {shown}"))
        }
        None => match model.chat_template(None) {
            Ok(template) => (template, "from the model file".to_owned()),
            Err(_) => {
                let name = builtin_template_for(architecture);
                let template =
                    LlamaChatTemplate::new(name).map_err(|e| (name.to_owned(), e.to_string()))?;
                (template, format!("built-in {name} (the file has none)"))
            }
        },
    };
    let probe = [
        LlamaChatMessage::new("system".into(), "s".into()),
        LlamaChatMessage::new("user".into(), "u".into()),
    ]
    .into_iter()
    .collect::<std::result::Result<Vec<_>, _>>()
    .map_err(|e| (source.clone(), e.to_string()))?;
    model
        .apply_chat_template(&template, &probe, true)
        .map_err(|e| {
            (
                source.clone(),
                format!("llama.cpp does not support it ({e}); set models.<persona>.chat_template to a built-in name such as \"chatml\""),
            )
        })?;
    Ok((template, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_without_a_template_get_one_by_architecture() {
        assert_eq!(builtin_template_for(Some("gemma3")), "gemma");
        assert_eq!(builtin_template_for(Some("qwen2")), "chatml");
        assert_eq!(builtin_template_for(None), "chatml");
    }
}
