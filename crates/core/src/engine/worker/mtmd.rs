//! Images through llama.cpp's multimodal library (mtmd): the vision projector loaded beside
//! the model, and a request with images read into a free slot at once (encoded, its embeddings
//! decoded into the slot's sequence) before it joins the shared batch.

use super::server::{Prompt, Server};
use super::slots::NO_TOKEN;
use super::*;
use crate::error::{EngineError, VisionError};

/// The vision projector named by `mmproj` (relative to the model's folder), loaded for `model`.
/// A projector that cannot be loaded leaves the text model working: the report says why.
pub(super) fn load_projector(
    spec: &LoadSpec,
    model: &LlamaModel,
    report: &LoadReport,
    settings: &Settings,
    log: &ThreadLog,
) -> (Option<MtmdContext>, Option<VisionReport>) {
    let Some(configured) = &spec.config.mmproj else {
        return (None, None);
    };
    let projector = if configured.is_absolute() {
        configured.clone()
    } else {
        spec.path
            .parent()
            .map_or_else(|| configured.clone(), |dir| dir.join(configured))
    };
    let failed = |error: String| {
        tracing::warn!(projector = %projector.display(), %error, "vision projector not loaded");
        (
            None,
            Some(VisionReport {
                projector: projector.clone(),
                ready: false,
                error: Some(error),
            }),
        )
    };
    // Checked here: llama.cpp's loader asserts on some unreadable files.
    if let Err(e) = crate::engine::gguf::read(&projector) {
        return failed(e.to_string());
    }
    let Some(path) = projector.to_str() else {
        return failed("the path is not valid UTF-8".into());
    };
    let params = MtmdContextParams {
        use_gpu: report.layers_on_gpu > 0,
        print_timings: false,
        n_threads: settings.threads,
        ..MtmdContextParams::default()
    };
    let mark = log.mark();
    match MtmdContext::init_from_file(path, model, &params) {
        Ok(ctx) if ctx.support_vision() => (
            Some(ctx),
            Some(VisionReport {
                projector: projector.clone(),
                ready: true,
                error: None,
            }),
        ),
        Ok(_) => failed("the projector is not a vision projector (audio only)".into()),
        Err(e) => failed(format!("{e}: {}", failure_reason(&log.since(mark)))),
    }
}

pub(super) fn image_error(persona: &'static str, e: &dyn std::fmt::Display) -> Error {
    Error::Engine(EngineError::Decode {
        persona,
        message: format!("the image could not be prepared: {e}"),
    })
}

impl Server<'_> {
    /// Reads a prompt with images into a free slot through mtmd and samples its first token.
    pub(super) fn start_job_with_images(
        &mut self,
        job: Job,
        sampling: Sampling,
        reserve: usize,
        admitted: Instant,
    ) {
        let limit = self.slot_ctx().saturating_sub(reserve);
        let prepared = self.read_images_into_slot(&job.request, limit);
        let (index, prompt) = match prepared {
            Ok(p) => p,
            Err((e, tokens)) => {
                self.release_slot();
                self.fail_job(job, e, tokens);
                return;
            }
        };
        self.activate(
            index,
            job,
            &sampling,
            prompt,
            admitted,
            // The logits of the last prompt position, left by mtmd's last decode; sampled
            // before the next batch replaces them.
            Some(-1),
        );
        if let Some(end) = self.sample(index) {
            self.finish(index, end);
        }
    }

    /// Renders the conversation with a media marker per image, tokenises it with mtmd and
    /// evaluates it into the least recently used free slot. Returns the slot and what it now
    /// holds; or the error and the prompt tokens.
    pub(super) fn read_images_into_slot(
        &mut self,
        request: &ChatRequest,
        limit: usize,
    ) -> std::result::Result<(usize, Prompt), (Error, usize)> {
        let persona = self.persona();
        if self.mtmd.is_none() {
            return Err((
                Error::Vision(VisionError::VisionUnavailable {
                    persona,
                    reason: "no vision projector is loaded for this model".into(),
                }),
                0,
            ));
        }
        let (text, dropped) = self
            .render_prompt_text(request, limit, true)
            .map_err(|e| (e, 0))?;
        let bitmaps = request
            .messages
            .iter()
            .flat_map(|m| m.images.iter())
            .map(|i| MtmdBitmap::from_image_data(i.width, i.height, &i.rgb))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| (image_error(persona, &e), 0))?;
        let refs: Vec<&MtmdBitmap> = bitmaps.iter().collect();
        let Some(mtmd) = self.mtmd.as_ref() else {
            return Err((image_error(persona, &"no projector"), 0));
        };
        let chunks = mtmd
            .tokenize(
                MtmdInputText {
                    text,
                    add_special: true,
                    parse_special: true,
                },
                &refs,
            )
            .map_err(|e| (image_error(persona, &e), 0))?;
        let tokens = chunks.total_tokens();
        if tokens > limit {
            return Err((
                Error::Engine(EngineError::PromptTooLong {
                    tokens,
                    limit,
                    n_ctx: self.settings.n_ctx,
                    parallel: self.settings.parallel,
                }),
                tokens,
            ));
        }
        let Some(index) = self.pick_slot(&[]) else {
            return Err((
                Error::Engine(EngineError::Decode {
                    persona,
                    message: "no free slot".into(),
                }),
                tokens,
            ));
        };
        // The conversation the slot drops goes to the disk cache first.
        self.save_slot(index);
        let seq = self.slots[index].seq;
        let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
        self.slots[index].cache.clear();
        let n_batch = self.settings.n_batch as i32;
        let Some(mtmd) = self.mtmd.as_mut() else {
            return Err((image_error(persona, &"no projector"), tokens));
        };
        let evaluated = chunks.eval_chunks(mtmd, &mut self.ctx, 0, seq, n_batch, true);
        match evaluated {
            Ok(n_past) => {
                // Image positions have no token: the sentinel keeps them from being reused.
                let positions = vec![NO_TOKEN; usize::try_from(n_past).unwrap_or(0)];
                self.slots[index].cache = positions.clone();
                Ok((
                    index,
                    Prompt {
                        tokens: positions,
                        counted: tokens,
                        cached: 0,
                        restored: 0,
                        dropped_turns: dropped,
                    },
                ))
            }
            Err(e) => {
                let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
                Err((
                    Error::Engine(EngineError::Decode {
                        persona,
                        message: format!("reading the image failed: {e}"),
                    }),
                    tokens,
                ))
            }
        }
    }
}
