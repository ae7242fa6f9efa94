//! Per-model request statistics: counters since the model was loaded, and the timings of the
//! last [`WINDOW`] finished requests, summarised as mean and 95th percentile.
//!
//! The worker thread writes, any thread reads a [`StatsSnapshot`]; one mutex, held only to
//! copy numbers. Lifetime totals live in the store's `request_log`, written through a
//! [`RequestSink`] so the engine does not hold a database connection.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use crate::error::ErrorCode;
use crate::store::{RequestOutcome, RequestRecord, Store};

/// How many finished requests the mean and p95 cover.
pub const WINDOW: usize = 200;

/// Where finished requests are recorded (the store's request log in the app and the CLI).
pub type RequestSink = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

/// A sink that writes each record to `store`'s request log; a failed write is logged, never
/// passed on (statistics must not fail a request).
pub fn store_sink(store: Arc<Mutex<Store>>) -> RequestSink {
    Arc::new(move |record: &RequestRecord| {
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = store.log_request(record) {
            tracing::warn!(error = %e, "request log not written");
        }
    })
}

/// The timings of one finished request, in milliseconds and tokens per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Waiting in the queue for a slot.
    pub queue_ms: f64,
    /// From submission to the first generated token.
    pub ttft_ms: Option<f64>,
    /// Reading the prompt (the part not already in the cache).
    pub prompt_ms: f64,
    /// From the first generated token to the last.
    pub generation_ms: f64,
    pub total_ms: f64,
    pub prompt_tokens_per_s: Option<f64>,
    pub generation_tokens_per_s: Option<f64>,
    /// Decode calls that produced reply tokens (each yields one sampled token, plus the
    /// drafted tokens it confirmed).
    pub generation_steps: u32,
    /// Prompt-lookup decoding: tokens drafted, and how many of them the model confirmed.
    pub drafted_tokens: u32,
    pub accepted_tokens: u32,
}

/// Mean and 95th percentile of one measure over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    pub mean: f64,
    pub p95: f64,
}

impl Summary {
    fn of(mut values: Vec<f64>) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        // Nearest-rank percentile.
        let rank = ((values.len() as f64) * 0.95).ceil() as usize;
        let p95 = values[rank.clamp(1, values.len()) - 1];
        Some(Summary { mean, p95 })
    }
}

/// What the Models page and `deskmate models` show for one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub succeeded: u64,
    pub cancelled: u64,
    pub busy: u64,
    /// Failures by error code.
    pub failed: BTreeMap<String, u64>,
    pub queue_length: usize,
    pub active_slots: usize,
    pub slots: usize,
    /// Finished requests the summaries below cover.
    pub window: usize,
    pub ttft_ms: Option<Summary>,
    pub latency_ms: Option<Summary>,
    pub prompt_tokens_per_s: Option<Summary>,
    pub generation_tokens_per_s: Option<Summary>,
    /// Prompt tokens served from the prompt cache, over all prompt tokens, in the window.
    pub cache_hit_ratio: Option<f64>,
    /// Prompt-lookup decoding in the window: confirmed drafted tokens over drafted ones.
    pub lookup_acceptance: Option<f64>,
    /// Reply tokens per generation decode call in the window: 1.0 without lookup decoding,
    /// more when drafts were confirmed (the decode calls it saved).
    pub tokens_per_step: Option<f64>,
    /// Prompt tokens restored from the prompt cache on disk since the model loaded (a part of
    /// the cached tokens: conversations a slot had dropped, or from before a restart).
    pub restored_tokens: u64,
    /// Requests whose prompt was restored from disk since the model loaded.
    pub restored_requests: u64,
    /// The prompt cache on disk: saved conversations and their bytes (0 when it is off).
    pub disk_cache_entries: usize,
    pub disk_cache_bytes: u64,
}

/// How a request ended, for the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Cancelled,
    Busy,
    Failed(crate::error::ErrorCode),
}

#[derive(Debug, Clone, Copy)]
struct Finished {
    timings: Timings,
    prompt_tokens: u32,
    cached_tokens: u32,
}

#[derive(Debug, Default)]
struct Inner {
    snapshot: StatsSnapshot,
    recent: VecDeque<Finished>,
}

#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

impl Stats {
    pub fn new(slots: usize) -> Stats {
        let stats = Stats::default();
        stats.lock().snapshot.slots = slots;
        stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Counters stay meaningful even if a holder panicked.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A prompt restored `tokens` from the disk cache.
    pub fn record_restored(&self, tokens: usize) {
        let mut inner = self.lock();
        inner.snapshot.restored_tokens += tokens as u64;
        inner.snapshot.restored_requests += 1;
    }

    /// What the disk cache holds now.
    pub fn set_disk_cache(&self, entries: usize, bytes: u64) {
        let mut inner = self.lock();
        inner.snapshot.disk_cache_entries = entries;
        inner.snapshot.disk_cache_bytes = bytes;
    }

    pub fn set_queue_length(&self, queue_length: usize) {
        self.lock().snapshot.queue_length = queue_length;
    }

    pub fn set_load(&self, queue_length: usize, active_slots: usize) {
        let mut inner = self.lock();
        inner.snapshot.queue_length = queue_length;
        inner.snapshot.active_slots = active_slots;
    }

    /// Counts a request's end; `timings` for requests that ran (succeeded or cancelled).
    pub fn record(
        &self,
        outcome: &Outcome,
        timings: Option<Timings>,
        prompt_tokens: u32,
        cached_tokens: u32,
    ) {
        let mut inner = self.lock();
        let s = &mut inner.snapshot;
        s.requests += 1;
        match outcome {
            Outcome::Succeeded => s.succeeded += 1,
            Outcome::Cancelled => s.cancelled += 1,
            Outcome::Busy => s.busy += 1,
            Outcome::Failed(code) => *s.failed.entry(code.as_str().to_owned()).or_default() += 1,
        }
        if let (Outcome::Succeeded, Some(timings)) = (outcome, timings) {
            if inner.recent.len() == WINDOW {
                inner.recent.pop_front();
            }
            inner.recent.push_back(Finished {
                timings,
                prompt_tokens,
                cached_tokens,
            });
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let inner = self.lock();
        let mut s = inner.snapshot.clone();
        let recent = &inner.recent;
        s.window = recent.len();
        s.ttft_ms = Summary::of(recent.iter().filter_map(|f| f.timings.ttft_ms).collect());
        s.latency_ms = Summary::of(recent.iter().map(|f| f.timings.total_ms).collect());
        s.prompt_tokens_per_s = Summary::of(
            recent
                .iter()
                .filter_map(|f| f.timings.prompt_tokens_per_s)
                .collect(),
        );
        s.generation_tokens_per_s = Summary::of(
            recent
                .iter()
                .filter_map(|f| f.timings.generation_tokens_per_s)
                .collect(),
        );
        let prompt: u64 = recent.iter().map(|f| u64::from(f.prompt_tokens)).sum();
        let cached: u64 = recent.iter().map(|f| u64::from(f.cached_tokens)).sum();
        s.cache_hit_ratio = (prompt > 0).then(|| cached as f64 / prompt as f64);
        let sum = |f: fn(&Timings) -> u32| -> u64 {
            recent.iter().map(|r| u64::from(f(&r.timings))).sum()
        };
        let (drafted, accepted, steps) = (
            sum(|t| t.drafted_tokens),
            sum(|t| t.accepted_tokens),
            sum(|t| t.generation_steps),
        );
        s.lookup_acceptance = (drafted > 0).then(|| accepted as f64 / drafted as f64);
        s.tokens_per_step = (steps > 0).then(|| (steps + accepted) as f64 / steps as f64);
        s
    }
}

/// One ended request, as the counters and the request log see it (local and remote models
/// alike).
pub(crate) struct Ended<'a> {
    /// The model's name in the request log: the file name, or the remote model's name.
    pub model: &'a str,
    pub persona: &'a str,
    pub started_at_ms: i64,
    /// From submission to the end, for requests that have no timings.
    pub elapsed_ms: f64,
    pub outcome: Outcome,
    pub timings: Option<Timings>,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
}

/// Counts `ended` in `stats` and writes it to the request log.
pub(crate) fn account(stats: &Stats, sink: Option<&RequestSink>, ended: Ended<'_>) {
    stats.record(
        &ended.outcome,
        ended.timings,
        ended.prompt_tokens as u32,
        ended.cached_tokens as u32,
    );
    let Some(sink) = sink else {
        return;
    };
    let (label, code) = match ended.outcome {
        Outcome::Succeeded => (RequestOutcome::Ok, None),
        Outcome::Cancelled => (RequestOutcome::Cancelled, None),
        Outcome::Busy => (RequestOutcome::Busy, Some(ErrorCode::Busy.as_str())),
        Outcome::Failed(code) => (RequestOutcome::Error, Some(code.as_str())),
    };
    let ms = |v: f64| Some(v.round() as i64);
    let timings = ended.timings;
    sink(&RequestRecord {
        model: ended.model.to_owned(),
        persona: Some(ended.persona.to_owned()),
        started_at: ended.started_at_ms,
        outcome: label,
        error_code: code.map(str::to_owned),
        prompt_tokens: ended.prompt_tokens as i64,
        completion_tokens: ended.completion_tokens as i64,
        queue_ms: timings.and_then(|t| ms(t.queue_ms)),
        ttft_ms: timings.and_then(|t| t.ttft_ms.and_then(ms)),
        prompt_ms: timings.and_then(|t| ms(t.prompt_ms)),
        generation_ms: timings.and_then(|t| ms(t.generation_ms)),
        total_ms: timings
            .and_then(|t| ms(t.total_ms))
            .or_else(|| ms(ended.elapsed_ms)),
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn timed(total_ms: f64) -> Option<Timings> {
        Some(Timings {
            total_ms,
            ttft_ms: Some(total_ms / 10.0),
            generation_tokens_per_s: Some(1000.0 / total_ms),
            ..Timings::default()
        })
    }

    #[test]
    fn counts_every_outcome_and_failures_by_code() {
        let stats = Stats::new(4);
        stats.record(&Outcome::Succeeded, timed(100.0), 10, 0);
        stats.record(&Outcome::Cancelled, timed(50.0), 10, 0);
        stats.record(&Outcome::Busy, None, 0, 0);
        stats.record(
            &Outcome::Failed(crate::error::ErrorCode::DecodeFailed),
            None,
            0,
            0,
        );
        stats.record(
            &Outcome::Failed(crate::error::ErrorCode::DecodeFailed),
            None,
            0,
            0,
        );
        stats.set_load(3, 2);
        let s = stats.snapshot();
        assert_eq!((s.requests, s.succeeded, s.cancelled, s.busy), (5, 1, 1, 1));
        assert_eq!(s.failed.get("decode_failed"), Some(&2));
        assert_eq!((s.queue_length, s.active_slots, s.slots), (3, 2, 4));
        // Only finished answers enter the latency window.
        assert_eq!(s.window, 1);
    }

    #[test]
    fn mean_and_p95_cover_the_latest_window_only() {
        let stats = Stats::new(1);
        for _ in 0..WINDOW {
            stats.record(&Outcome::Succeeded, timed(10_000.0), 1, 0);
        }
        for i in 1..=100 {
            stats.record(&Outcome::Succeeded, timed(f64::from(i)), 1, 0);
        }
        let s = stats.snapshot();
        assert_eq!(s.window, WINDOW);
        let latency = s.latency_ms.unwrap();
        // 100 old requests of 10 s remain beside 1..=100 ms.
        assert!((latency.mean - (100.0 * 10_000.0 + 5050.0) / 200.0).abs() < 1e-9);
        assert_eq!(latency.p95, 10_000.0);
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let s = Summary::of((1..=20).map(f64::from).collect()).unwrap();
        assert_eq!(s.p95, 19.0);
        assert_eq!(Summary::of(vec![7.0]).unwrap().p95, 7.0);
        assert!(Summary::of(Vec::new()).is_none());
    }

    #[test]
    fn lookup_figures_are_confirmed_over_drafted_and_tokens_over_decode_calls() {
        let stats = Stats::new(1);
        let answer = |steps, drafted, accepted| Timings {
            generation_steps: steps,
            drafted_tokens: drafted,
            accepted_tokens: accepted,
            ..Timings::default()
        };
        stats.record(&Outcome::Succeeded, Some(Timings::default()), 1, 0);
        assert_eq!(stats.snapshot().lookup_acceptance, None);
        assert_eq!(stats.snapshot().tokens_per_step, None);
        // 10 calls made 10 tokens plus 30 confirmed drafts; 5 calls with a failed draft.
        stats.record(&Outcome::Succeeded, Some(answer(10, 40, 30)), 1, 0);
        stats.record(&Outcome::Succeeded, Some(answer(5, 10, 0)), 1, 0);
        let s = stats.snapshot();
        assert_eq!(s.lookup_acceptance, Some(0.6));
        assert_eq!(s.tokens_per_step, Some(3.0));
    }

    #[test]
    fn cache_hit_ratio_is_cached_over_prompt_tokens() {
        let stats = Stats::new(1);
        stats.record(&Outcome::Succeeded, timed(1.0), 100, 0);
        stats.record(&Outcome::Succeeded, timed(1.0), 100, 90);
        assert_eq!(stats.snapshot().cache_hit_ratio, Some(0.45));
    }
}
