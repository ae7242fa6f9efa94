//! Serving: the slots, continuous batching (a token of every replying slot with its lookup
//! draft, then prompt chunks up to `n_batch`), sampling, stop strings, and how each request ends
//! and is accounted.
//!
//! Lookup decoding (see [`crate::engine::lookup`]): a replying slot's token goes into the batch
//! followed by up to a few drafted tokens, each with logits. After the decode the slot samples
//! at its positions in order while the sampled token equals the drafted one; the first
//! difference (or the end of the draft) becomes the next token to feed, and the unconfirmed
//! drafted positions leave the KV cache and the slot's token list together, so the two never
//! disagree.

use super::slots::{self, SlotView};
use super::*;
use crate::engine::lookup::{find_draft, DecodeCost, DraftPolicy, MAX_VERIFY_ROWS};
use crate::error::EngineError;

pub(super) struct Slot {
    pub(super) seq: i32,
    /// The tokens in this sequence's KV cache, position by position.
    pub(super) cache: Vec<LlamaToken>,
    pub(super) last_used: Instant,
    pub(super) active: Option<Active>,
}

pub(super) struct Active {
    pub(super) job: Job,
    pub(super) prompt: Vec<LlamaToken>,
    /// Prompt tokens already in the cache (reused or fed so far).
    pub(super) fed: usize,
    pub(super) cached: usize,
    /// Of the cached tokens, those restored from the disk cache.
    pub(super) restored: usize,
    pub(super) dropped_turns: usize,
    pub(super) sampler: LlamaSampler,
    utf8: Utf8Stream,
    pub(super) stops: StopScanner,
    pub(super) text: String,
    pub(super) generated: u32,
    pub(super) max_tokens: u32,
    pub(super) ignore_eos: bool,
    /// The sampled token to feed at the next step.
    pub(super) pending: Option<LlamaToken>,
    /// Where this slot's logits are in the current batch (of its pending token; its draft's
    /// follow).
    pub(super) logits_at: Option<i32>,
    /// The drafted tokens in the current batch, after the pending token.
    pub(super) draft: Vec<LlamaToken>,
    /// Lookup decoding's draft length policy; `None`: this request does not draft.
    pub(super) lookup: Option<DraftPolicy>,
    /// Draft whatever the history offers, whatever a row costs (`lookup_decoding: true`).
    pub(super) draft_always: bool,
    pub(super) generation_steps: u32,
    pub(super) drafted: u32,
    pub(super) accepted: u32,
    pub(super) admitted: Instant,
    pub(super) prompt_done: Option<Instant>,
    pub(super) last_token: Option<Instant>,
}

/// A rendered prompt as a slot takes it.
pub(super) struct Prompt {
    /// One entry per cache position.
    pub(super) tokens: Vec<LlamaToken>,
    /// Prompt tokens as reported (with images, more than the positions on some models).
    pub(super) counted: usize,
    /// Leading positions already in the slot's cache.
    pub(super) cached: usize,
    /// Of those, positions restored from the disk cache.
    pub(super) restored: usize,
    pub(super) dropped_turns: usize,
}

pub(super) struct Server<'m> {
    pub(super) shared: &'m WorkerShared,
    pub(super) model: &'m LlamaModel,
    pub(super) ctx: LlamaContext<'m>,
    pub(super) template: LlamaChatTemplate,
    /// llama.cpp's multimodal context, when a vision projector loaded.
    pub(super) mtmd: Option<MtmdContext>,
    pub(super) defaults: Sampling,
    pub(super) settings: Settings,
    pub(super) slots: Vec<Slot>,
    /// The prompt cache on disk (`None`: off).
    pub(super) store: Option<PromptStore>,
    /// Whether the KV cache can drop a sequence's last positions (lookup decoding needs it;
    /// recurrent and hybrid models cannot).
    pub(super) can_draft: bool,
    /// What a drafted row costs on this device, learned from the generation steps.
    pub(super) decode_cost: DecodeCost,
}

pub(super) enum End {
    Finished(FinishReason),
    Failed(Error),
}

pub(super) static SEED_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(super) fn fresh_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ (SEED_COUNTER.fetch_add(0x9e37_79b9, Ordering::Relaxed) as u32)
}

impl Server<'_> {
    pub(super) fn persona(&self) -> &'static str {
        self.shared.persona.as_str()
    }

    pub(super) fn slot_ctx(&self) -> usize {
        (self.settings.n_ctx / self.settings.parallel.max(1)) as usize
    }

    pub(super) fn run(&mut self) {
        let mut batch = LlamaBatch::new(self.settings.n_batch as usize, 1);
        loop {
            if !self.admit() {
                break;
            }
            self.drop_cancelled();
            if self.slots.iter().all(|s| s.active.is_none()) {
                continue;
            }
            self.step(&mut batch);
        }
        self.fail_everything();
        // The conversations in the slots outlive the model: the next load restores them.
        for index in 0..self.slots.len() {
            self.save_slot(index);
        }
    }

    /// Moves queued jobs into free slots; waits when there is nothing to do. `false` on shutdown.
    pub(super) fn admit(&mut self) -> bool {
        let mut jobs = Vec::new();
        {
            let mut queue = self.shared.lock();
            loop {
                if queue.shutdown {
                    return false;
                }
                let busy = self.slots.iter().any(|s| s.active.is_some());
                if busy || !queue.jobs.is_empty() {
                    break;
                }
                queue = self
                    .shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let free = self.slots.iter().filter(|s| s.active.is_none()).count();
            while jobs.len() < free {
                match queue.jobs.pop_front() {
                    Some(job) => jobs.push(job),
                    None => break,
                }
            }
            queue.idle_slots = free - jobs.len();
        }
        // Nothing changed when nothing was admitted: submit and finish publish their own changes.
        if !jobs.is_empty() {
            for job in jobs {
                self.start_job(job);
            }
            self.publish_load();
        }
        true
    }

    pub(super) fn publish_load(&self) {
        let waiting = self.shared.lock().jobs.len();
        let active = self.slots.iter().filter(|s| s.active.is_some()).count();
        self.shared.stats.set_load(waiting, active);
    }

    pub(super) fn start_job(&mut self, job: Job) {
        let admitted = Instant::now();
        if job.cancel.is_cancelled() || job.events.is_closed() {
            self.account(&job, &Outcome::Cancelled, None, 0, 0, 0);
            self.release_slot();
            let _ = job.events.send(GenerationEvent::Finished(Completion {
                text: String::new(),
                finish_reason: FinishReason::Cancelled,
                prompt_tokens: 0,
                cached_tokens: 0,
                restored_tokens: 0,
                completion_tokens: 0,
                dropped_turns: 0,
                timings: Timings::default(),
            }));
            return;
        }
        let sampling = job
            .request
            .sampling
            .clone()
            .unwrap_or_else(|| self.defaults.clone());
        let reserve = (sampling.max_tokens as usize)
            .min(self.slot_ctx() / 4)
            .max(1);
        if job.request.messages.iter().any(|m| !m.images.is_empty()) {
            self.start_job_with_images(job, sampling, reserve, admitted);
            return;
        }
        let (prompt, dropped_turns) = match self.render_prompt(&job.request, reserve) {
            Ok(p) => p,
            Err(e) => {
                self.release_slot();
                self.fail_job(job, e, 0);
                return;
            }
        };
        let Some(index) = self.pick_slot(&prompt) else {
            // admit() never hands out more jobs than free slots.
            self.fail_job(
                job,
                Error::Engine(EngineError::Decode {
                    persona: self.persona(),
                    message: "no free slot".into(),
                }),
                prompt.len(),
            );
            return;
        };
        self.save_evicted(index, &prompt);
        let kept = self.reuse_prefix(index, &prompt);
        let (cached, restored) = match self.restore_from_disk(index, &prompt, kept) {
            Some(restored) => {
                self.shared.stats.record_restored(restored);
                (restored, restored)
            }
            None => (self.slots[index].cache.len(), 0),
        };
        let prompt_tokens = prompt.len();
        self.activate(
            index,
            job,
            &sampling,
            Prompt {
                tokens: prompt,
                counted: prompt_tokens,
                cached,
                restored,
                dropped_turns,
            },
            admitted,
            None,
        );
    }

    /// Tells the caller the request started and puts it in its slot. `logits_at` is where the
    /// logits of an already read prompt are (mtmd's reading), `None` when the batch reads it.
    pub(super) fn activate(
        &mut self,
        index: usize,
        job: Job,
        sampling: &Sampling,
        prompt: Prompt,
        admitted: Instant,
        logits_at: Option<i32>,
    ) {
        let _ = job.events.send(GenerationEvent::Started {
            prompt_tokens: prompt.counted,
            cached_tokens: prompt.cached,
            restored_tokens: prompt.restored,
            dropped_turns: prompt.dropped_turns,
        });
        let sampler = build_sampler(sampling, self.model.n_vocab());
        let fed = if logits_at.is_some() {
            prompt.tokens.len()
        } else {
            prompt.cached
        };
        self.slots[index].active = Some(Active {
            prompt: prompt.tokens,
            fed,
            cached: prompt.cached,
            restored: prompt.restored,
            dropped_turns: prompt.dropped_turns,
            sampler,
            utf8: Utf8Stream::default(),
            stops: StopScanner::new(&sampling.stop),
            text: String::new(),
            generated: 0,
            max_tokens: sampling.max_tokens.max(1),
            ignore_eos: job.request.ignore_eos,
            pending: None,
            logits_at,
            draft: Vec::new(),
            lookup: (sampling.lookup_decoding != AutoOr::Value(false) && self.can_draft)
                .then(DraftPolicy::default),
            draft_always: sampling.lookup_decoding == AutoOr::Value(true),
            generation_steps: 0,
            drafted: 0,
            accepted: 0,
            admitted,
            prompt_done: None,
            last_token: None,
            job,
        });
    }

    pub(super) fn release_slot(&self) {
        self.shared.lock().idle_slots += 1;
    }

    /// Renders the conversation with the chat template and tokenises it, dropping the oldest
    /// turns (never the system message or the last user message) until it fits in a slot with
    /// `reserve` tokens left for the reply.
    pub(super) fn render_prompt(
        &self,
        request: &ChatRequest,
        reserve: usize,
    ) -> Result<(Vec<LlamaToken>, usize)> {
        let limit = self.slot_ctx().saturating_sub(reserve);
        let (text, dropped) = self.render_prompt_text(request, limit, false)?;
        Ok((
            self.model.vocab().tokenize(text.as_bytes(), true, true),
            dropped,
        ))
    }

    /// The prompt as text (with a media marker before the text of each message with images,
    /// when `markers`), dropping the oldest turns until its text tokens fit in `limit`.
    pub(super) fn render_prompt_text(
        &self,
        request: &ChatRequest,
        limit: usize,
        markers: bool,
    ) -> Result<(String, usize)> {
        let mut messages = request.messages.clone();
        let mut dropped = 0;
        loop {
            let chat = messages
                .iter()
                .map(|m| {
                    let content = if markers && !m.images.is_empty() {
                        let mut c = format!("{}\n", mtmd_default_marker()).repeat(m.images.len());
                        c.push_str(&m.content);
                        c
                    } else {
                        m.content.clone()
                    };
                    LlamaChatMessage::new(m.role.as_str().to_owned(), content)
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| Error::InvalidInput {
                    field: "message",
                    message: "contains a NUL character".into(),
                })?;
            let text = self
                .model
                .apply_chat_template(&self.template, &chat, true)
                .map_err(|e| {
                    Error::Engine(EngineError::ChatTemplate {
                        path: self.shared.report.file.clone(),
                        template: self.shared.report.chat_template.clone(),
                        message: e.to_string(),
                    })
                })?;
            let tokens = self.model.vocab().tokenize(text.as_bytes(), true, true);
            if tokens.len() <= limit {
                return Ok((text, dropped));
            }
            if !drop_oldest_turn(&mut messages) {
                return Err(Error::Engine(EngineError::PromptTooLong {
                    tokens: tokens.len(),
                    limit,
                    n_ctx: self.settings.n_ctx,
                    parallel: self.settings.parallel,
                }));
            }
            dropped += 1;
        }
    }

    /// The free slot whose cache shares the longest prefix with `prompt`, then the least
    /// recently used one (see [`super::slots`]).
    pub(super) fn pick_slot(&self, prompt: &[LlamaToken]) -> Option<usize> {
        let views = self.slots.iter().map(|s| SlotView {
            cache: &s.cache,
            last_used: s.last_used,
            free: s.active.is_none(),
        });
        slots::choose(views, prompt)
    }

    /// Keeps the slot's cached prefix that matches `prompt` and removes the rest; returns how
    /// many prompt tokens need not be read again.
    pub(super) fn reuse_prefix(&mut self, index: usize, prompt: &[LlamaToken]) -> usize {
        let slot = &mut self.slots[index];
        let mut keep = slots::reusable_prefix(&slot.cache, prompt);
        let partial_ok = self
            .ctx
            .kv_cache_seq_rm(slot.seq, Some(keep as u32), None)
            .is_ok();
        // A sliding-window cache may have dropped early positions, and some caches cannot cut
        // a sequence in the middle: then the prefix must be read again.
        if !partial_ok || (keep > 0 && self.ctx.kv_cache_seq_pos_min(slot.seq) > 0) {
            let _ = self.ctx.kv_cache_seq_rm(slot.seq, None, None);
            keep = 0;
        }
        slot.cache.truncate(keep);
        keep
    }

    /// Saves the conversation in slot `index` to the disk cache when `prompt` is about to drop
    /// a good part of it (another conversation takes the slot).
    pub(super) fn save_evicted(&mut self, index: usize, prompt: &[LlamaToken]) {
        let slot = &self.slots[index];
        let keep = slots::reusable_prefix(&slot.cache, prompt);
        if slot.cache.len() - keep.min(slot.cache.len()) >= MIN_SAVED_TOKENS {
            self.save_slot(index);
        }
    }

    /// Writes slot `index`'s sequence to the disk cache, if it is worth keeping.
    pub(super) fn save_slot(&mut self, index: usize) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let slot = &self.slots[index];
        if !store.worth_saving(&slot.cache) {
            return;
        }
        let (ctx, seq, tokens) = (&self.ctx, slot.seq, &slot.cache);
        let saved = store.save(tokens, |path| {
            ctx.state_seq_save_file(path, seq, tokens)
                .map_err(|e| e.to_string())
        });
        match saved {
            Ok(bytes) => tracing::debug!(
                persona = self.shared.persona.as_str(),
                tokens = tokens.len(),
                bytes,
                "conversation saved to the prompt cache on disk"
            ),
            Err(e) => tracing::warn!(
                persona = self.shared.persona.as_str(),
                error = %e,
                "conversation not saved to the prompt cache on disk"
            ),
        }
        self.shared
            .stats
            .set_disk_cache(store.len(), store.used_bytes());
    }

    /// When the disk cache holds more of `prompt` than the `kept` tokens slot `index` has,
    /// loads it into the slot and returns the prompt tokens now in the cache; `None` when
    /// nothing was restored (a failed restore leaves the slot empty, and its cache says so).
    pub(super) fn restore_from_disk(
        &mut self,
        index: usize,
        prompt: &[LlamaToken],
        kept: usize,
    ) -> Option<usize> {
        let limit = prompt.len().saturating_sub(1);
        let cells = self.slot_ctx();
        let store = self.store.as_mut()?;
        // Worth a file read only when it saves reading a real stretch of prompt.
        let found = store.best(prompt, kept + MIN_SAVED_TOKENS / 4)?;
        if found.prefix.min(limit) <= kept {
            return None;
        }
        let seq = self.slots[index].seq;
        let ctx = &mut self.ctx;
        let _ = ctx.kv_cache_seq_rm(seq, None, None);
        let loaded = store.restore(found, |path| {
            ctx.state_seq_load_file(path, seq, cells)
                .map(|(tokens, _)| tokens)
                .map_err(|e| e.to_string())
        });
        self.shared
            .stats
            .set_disk_cache(store.len(), store.used_bytes());
        let slot = &mut self.slots[index];
        let tokens = match loaded {
            Ok(tokens) => tokens,
            Err(_) => {
                // The reply is still right: the prompt is read from the start.
                let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
                slot.cache.clear();
                return None;
            }
        };
        let keep = slots::common_prefix(&tokens, prompt).min(limit);
        let trimmed = self
            .ctx
            .kv_cache_seq_rm(seq, Some(keep as u32), None)
            .is_ok()
            && self.ctx.kv_cache_seq_pos_min(seq) <= 0;
        if !trimmed {
            let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
            slot.cache.clear();
            return None;
        }
        slot.cache = tokens[..keep].to_vec();
        Some(keep)
    }

    pub(super) fn drop_cancelled(&mut self) {
        for index in 0..self.slots.len() {
            let cancelled = self.slots[index]
                .active
                .as_ref()
                .is_some_and(|a| a.job.cancel.is_cancelled() || a.job.events.is_closed());
            if cancelled {
                self.finish(index, End::Finished(FinishReason::Cancelled));
            }
        }
    }

    /// One decode step: a token of every generating slot, then prompt chunks while room remains.
    pub(super) fn step(&mut self, batch: &mut LlamaBatch) {
        batch.clear();
        let capacity = self.settings.n_batch as usize;
        let mut in_batch = Vec::new();
        let mut add_failed = false;
        let mut prompt_rows = 0;
        let slot_ctx = self.slot_ctx();
        // Drafts never take the room that the other slots' pending tokens need.
        let slots_len = self.slots.len();
        let marginal = self.decode_cost.marginal();
        // Drafted rows left in this step: all replies' tokens and drafts stay under 8 rows.
        let replying = self
            .slots
            .iter()
            .filter(|s| s.active.as_ref().is_some_and(|a| a.pending.is_some()))
            .count();
        let mut draft_rows = MAX_VERIFY_ROWS.saturating_sub(replying);
        for slot in &mut self.slots {
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            active.logits_at = None;
            active.draft.clear();
            if let Some(token) = active.pending.take() {
                let at = batch.n_tokens();
                add_failed |= batch
                    .add(token, slot.cache.len() as i32, &[slot.seq], true)
                    .is_err();
                slot.cache.push(token);
                active.logits_at = Some(at);
                active.generation_steps += 1;
                in_batch.push(slot.seq);
                if let Some(policy) = active.lookup.as_mut() {
                    // Room for the tokens still to come, in the reply, the slot and the batch.
                    let room = (active.max_tokens.saturating_sub(active.generated + 1) as usize)
                        .min(slot_ctx.saturating_sub(slot.cache.len() + 2))
                        .min(capacity.saturating_sub(batch.n_tokens() as usize + slots_len));
                    let found = find_draft(&slot.cache, room);
                    let cost = if active.draft_always { 0.0 } else { marginal };
                    // A guess without room in this step is still watched (learned from).
                    let length = policy.length(cost, found.len().min(draft_rows));
                    if length == 0 {
                        policy.watch(found);
                    } else {
                        policy.drafting();
                    }
                    active.draft = found[..length].to_vec();
                    draft_rows -= length;
                    for &drafted in &active.draft {
                        add_failed |= batch
                            .add(drafted, slot.cache.len() as i32, &[slot.seq], true)
                            .is_err();
                        slot.cache.push(drafted);
                    }
                    active.drafted += active.draft.len() as u32;
                }
            }
        }
        for slot in &mut self.slots {
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            if active.fed >= active.prompt.len() {
                continue;
            }
            let room = capacity.saturating_sub(batch.n_tokens() as usize);
            if room == 0 {
                break;
            }
            let end = (active.fed + room).min(active.prompt.len());
            for i in active.fed..end {
                let last = i + 1 == active.prompt.len();
                let at = batch.n_tokens();
                add_failed |= batch
                    .add(active.prompt[i], slot.cache.len() as i32, &[slot.seq], last)
                    .is_err();
                slot.cache.push(active.prompt[i]);
                if last {
                    active.logits_at = Some(at);
                }
            }
            prompt_rows += end - active.fed;
            active.fed = end;
            in_batch.push(slot.seq);
        }
        if batch.n_tokens() == 0 {
            return;
        }
        let started = Instant::now();
        let decoded = if add_failed {
            Err("the batch overflowed".to_owned())
        } else {
            self.ctx.decode(batch).map_err(|e| e.to_string())
        };
        if let Err(message) = decoded {
            for index in 0..self.slots.len() {
                if in_batch.contains(&self.slots[index].seq) {
                    let seq = self.slots[index].seq;
                    let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
                    self.slots[index].cache.clear();
                    let e = Error::Engine(EngineError::Decode {
                        persona: self.persona(),
                        message: message.clone(),
                    });
                    self.finish(index, End::Failed(e));
                }
            }
            return;
        }
        for index in 0..self.slots.len() {
            if let Some(end) = self.sample(index) {
                self.finish(index, end);
            }
        }
        if prompt_rows == 0 {
            // Up to the last sample: a GPU's decode returns before it computed, and reading
            // the logits waits for it; sampling the drafted positions is part of their cost.
            self.decode_cost
                .record(batch.n_tokens() as usize, started.elapsed().as_secs_f64());
        }
    }

    /// Samples the next token of a slot whose logits are in the batch, then one per confirmed
    /// drafted token; `Some` when the request is done.
    pub(super) fn sample(&mut self, index: usize) -> Option<End> {
        let slot = &mut self.slots[index];
        let active = slot.active.as_mut()?;
        let at = active.logits_at.take()?;
        let draft = std::mem::take(&mut active.draft);
        // The position of the first drafted token (the pending token's is one before).
        let draft_start = slot.cache.len() - draft.len();
        let mut confirmed = 0;
        let end = loop {
            let at = at + confirmed as i32;
            let token = self.slots[index].active.as_mut().map(|a| {
                let token = a.sampler.sample(&self.ctx, at);
                if let Some(policy) = a.lookup.as_mut() {
                    policy.observe(token);
                }
                token
            })?;
            if let Some(end) = self.take_token(index, token, draft_start + confirmed) {
                break Some(end);
            }
            if draft.get(confirmed) == Some(&token) {
                confirmed += 1;
                continue;
            }
            if let Some(active) = self.slots[index].active.as_mut() {
                active.pending = Some(token);
            }
            break None;
        };
        let slot = &mut self.slots[index];
        if let Some(active) = slot.active.as_mut() {
            active.accepted += confirmed as u32;
            if let Some(policy) = active.lookup.as_mut() {
                policy.update(draft.len(), confirmed);
            }
        }
        if confirmed < draft.len() {
            let keep = draft_start + confirmed;
            let removed = self
                .ctx
                .kv_cache_seq_rm(slot.seq, Some(keep as u32), None)
                .is_ok();
            slot.cache.truncate(keep);
            if !removed {
                // The next token would land on positions the cache still holds: start over.
                let _ = self.ctx.kv_cache_seq_rm(slot.seq, None, None);
                slot.cache.clear();
                return Some(End::Failed(Error::Engine(EngineError::Decode {
                    persona: self.persona(),
                    message: "the KV cache could not drop the unconfirmed draft".into(),
                })));
            }
        }
        end
    }

    /// Takes one sampled token into the reply (`cache_len`: the tokens before it in the slot);
    /// `Some` when the request is done.
    fn take_token(&mut self, index: usize, token: LlamaToken, cache_len: usize) -> Option<End> {
        let slot_ctx = self.slot_ctx();
        let vocab = self.model.vocab();
        let active = self.slots[index].active.as_mut()?;
        let now = Instant::now();
        if active.prompt_done.is_none() {
            active.prompt_done = Some(now);
        }
        active.last_token = Some(now);
        if vocab.is_eog(token) && !active.ignore_eos {
            return Some(End::Finished(FinishReason::Stop));
        }
        active.generated += 1;
        let piece = vocab.token_to_piece(token, false, None);
        let text = active.utf8.push(&piece);
        let (shown, stopped) = match active.stops.push(&text) {
            Scan::Continue(t) => (t, false),
            Scan::Stop(t) => (t, true),
        };
        if !shown.is_empty() {
            active.text.push_str(&shown);
            if active
                .job
                .events
                .send(GenerationEvent::Text(shown))
                .is_err()
            {
                return Some(End::Finished(FinishReason::Cancelled));
            }
        }
        if stopped {
            return Some(End::Finished(FinishReason::StopString));
        }
        if active.generated >= active.max_tokens || cache_len + 1 >= slot_ctx {
            return Some(End::Finished(FinishReason::Length));
        }
        None
    }

    /// Ends a slot's request: flushes held text, sends the result, records the statistics.
    pub(super) fn finish(&mut self, index: usize, end: End) {
        let Some(mut active) = self.slots[index].active.take() else {
            return;
        };
        self.slots[index].last_used = Instant::now();
        // A stop string ended the text already; anything else may have held text back.
        if !matches!(end, End::Finished(FinishReason::StopString)) {
            let (Scan::Continue(mut tail) | Scan::Stop(mut tail)) =
                active.stops.push(&active.utf8.finish());
            tail.push_str(&active.stops.finish());
            if !tail.is_empty() {
                active.text.push_str(&tail);
                let _ = active.job.events.send(GenerationEvent::Text(tail));
            }
        }
        let prompt_tokens = active.prompt.len();
        let last_event = match end {
            End::Finished(reason) => {
                let timings = timings(&active);
                let outcome = if reason == FinishReason::Cancelled {
                    Outcome::Cancelled
                } else {
                    Outcome::Succeeded
                };
                self.account(
                    &active.job,
                    &outcome,
                    Some(timings),
                    prompt_tokens,
                    active.cached,
                    active.generated as usize,
                );
                GenerationEvent::Finished(Completion {
                    text: active.text,
                    finish_reason: reason,
                    prompt_tokens,
                    cached_tokens: active.cached,
                    restored_tokens: active.restored,
                    completion_tokens: active.generated as usize,
                    dropped_turns: active.dropped_turns,
                    timings,
                })
            }
            End::Failed(e) => {
                self.account(
                    &active.job,
                    &Outcome::Failed(e.code()),
                    None,
                    prompt_tokens,
                    0,
                    0,
                );
                GenerationEvent::Failed(e)
            }
        };
        // The slot is free (and the statistics say so) before the caller hears the end.
        self.release_slot();
        self.publish_load();
        let _ = active.job.events.send(last_event);
    }

    pub(super) fn fail_job(&self, job: Job, error: Error, prompt_tokens: usize) {
        self.account(
            &job,
            &Outcome::Failed(error.code()),
            None,
            prompt_tokens,
            0,
            0,
        );
        let _ = job.events.send(GenerationEvent::Failed(error));
    }

    pub(super) fn account(
        &self,
        job: &Job,
        outcome: &Outcome,
        timings: Option<Timings>,
        prompt_tokens: usize,
        cached: usize,
        completion_tokens: usize,
    ) {
        stats::account(
            &self.shared.stats,
            self.shared.sink.as_ref(),
            stats::Ended {
                model: &self.shared.report.file_name(),
                persona: self.persona(),
                started_at_ms: job.submitted_at_ms,
                elapsed_ms: job.submitted.elapsed().as_secs_f64() * 1000.0,
                outcome: outcome.clone(),
                timings,
                prompt_tokens,
                cached_tokens: cached,
                completion_tokens,
            },
        );
    }

    /// On shutdown: every queued and running request ends with "model unloaded".
    pub(super) fn fail_everything(&mut self) {
        let jobs: Vec<Job> = self.shared.lock().jobs.drain(..).collect();
        for job in jobs {
            let e = Error::Engine(EngineError::ModelUnloaded {
                persona: self.persona(),
            });
            self.fail_job(job, e, 0);
        }
        for index in 0..self.slots.len() {
            let e = Error::Engine(EngineError::ModelUnloaded {
                persona: self.persona(),
            });
            self.finish(index, End::Failed(e));
        }
    }
}

pub(super) fn timings(active: &Active) -> Timings {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let end = active.last_token.unwrap_or_else(Instant::now);
    let queue_ms = ms(active.admitted.duration_since(active.job.submitted));
    let prompt_ms = active
        .prompt_done
        .map_or(0.0, |t| ms(t.duration_since(active.admitted)));
    let generation_ms = active
        .prompt_done
        .map_or(0.0, |t| ms(end.duration_since(t)));
    let read = active.prompt.len() - active.cached;
    Timings {
        queue_ms,
        ttft_ms: active
            .prompt_done
            .map(|t| ms(t.duration_since(active.job.submitted))),
        prompt_ms,
        generation_ms,
        total_ms: ms(active.job.submitted.elapsed()),
        prompt_tokens_per_s: (prompt_ms > 0.0 && read > 0)
            .then(|| read as f64 * 1000.0 / prompt_ms),
        // The first token comes with the prompt; the rate covers the ones after it.
        generation_tokens_per_s: (generation_ms > 0.0 && active.generated > 1)
            .then(|| f64::from(active.generated - 1) * 1000.0 / generation_ms),
        generation_steps: active.generation_steps,
        drafted_tokens: active.drafted,
        accepted_tokens: active.accepted,
    }
}

/// Removes the oldest user/assistant turn, keeping a leading system message and the last
/// user message; `false` when nothing can go.
pub(crate) fn drop_oldest_turn(messages: &mut Vec<crate::engine::ChatMessage>) -> bool {
    let first = usize::from(messages.first().is_some_and(|m| m.role == Role::System));
    let last_user = messages.iter().rposition(|m| m.role == Role::User);
    let Some(last_user) = last_user else {
        return false;
    };
    if first >= last_user {
        return false;
    }
    let mut end = first + 1;
    // A turn is a user message with the assistant's answer to it.
    while end < last_user && messages[end].role == Role::Assistant {
        end += 1;
    }
    messages.drain(first..end);
    true
}

pub(super) fn build_sampler(sampling: &Sampling, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::new();
    if (sampling.repeat_penalty - 1.0).abs() > f32::EPSILON {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            64,
            sampling.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if sampling.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if sampling.top_k > 0 {
            chain.push(LlamaSampler::top_k(sampling.top_k as i32));
        }
        chain.push(LlamaSampler::top_p(sampling.top_p, 1));
        chain.push(LlamaSampler::min_p(sampling.min_p, 1));
        chain.push(LlamaSampler::temp(sampling.temperature));
        chain.push(LlamaSampler::dist(sampling.seed.unwrap_or_else(fresh_seed)));
    }
    LlamaSampler::chain_simple(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ChatMessage;

    fn msg(role: Role, content: &str) -> ChatMessage {
        ChatMessage::new(role, content)
    }

    #[test]
    fn the_oldest_turn_goes_first_and_the_system_message_stays() {
        let mut m = vec![
            msg(Role::System, "sys"),
            msg(Role::User, "q1"),
            msg(Role::Assistant, "a1"),
            msg(Role::User, "q2"),
            msg(Role::Assistant, "a2"),
            msg(Role::User, "q3"),
        ];
        assert!(drop_oldest_turn(&mut m));
        let left: Vec<&str> = m.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(left, ["sys", "q2", "a2", "q3"]);
        assert!(drop_oldest_turn(&mut m));
        assert!(!drop_oldest_turn(&mut m), "the last question must stay");
        let left: Vec<&str> = m.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(left, ["sys", "q3"]);
    }

    #[test]
    fn a_conversation_without_system_message_loses_its_first_turn() {
        let mut m = vec![
            msg(Role::User, "q1"),
            msg(Role::Assistant, "a1"),
            msg(Role::User, "q2"),
        ];
        assert!(drop_oldest_turn(&mut m));
        assert_eq!(m.len(), 1);
        assert!(!drop_oldest_turn(&mut vec![msg(
            Role::Assistant,
            "greeting"
        )]));
    }
}
