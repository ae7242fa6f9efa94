//! The worker's queue: callers submit requests (a full queue refuses at once with
//! `EngineBusy`), the worker thread admits them into free slots; finished requests go to the
//! request log. Shared between the callers and the worker thread.

use super::*;
use crate::error::EngineError;

/// What callers share with the worker thread.
pub(crate) struct WorkerShared {
    pub persona: Persona,
    pub report: LoadReport,
    pub stats: Stats,
    pub(super) queue: Mutex<Queue>,
    pub(super) wake: Condvar,
    pub(super) max_queue: usize,
    pub(super) sink: Option<RequestSink>,
}

pub(super) struct Queue {
    pub(super) jobs: std::collections::VecDeque<Job>,
    pub(super) idle_slots: usize,
    pub(super) shutdown: bool,
}

pub(super) struct Job {
    pub(super) request: ChatRequest,
    pub(super) events: UnboundedSender<GenerationEvent>,
    pub(super) cancel: CancelToken,
    pub(super) submitted: Instant,
    pub(super) submitted_at_ms: i64,
}

impl WorkerShared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a request, or answers [`Error::Engine(EngineError::Busy)`] at once when the queue is full.
    pub fn submit(&self, request: ChatRequest, cancel: CancelToken) -> Result<Generation> {
        let (events, receiver) = unbounded_channel();
        let mut queue = self.lock();
        if queue.shutdown {
            return Err(Error::Engine(EngineError::ModelUnloaded {
                persona: self.persona.as_str(),
            }));
        }
        // A request that will find a free slot at the next step is not "waiting".
        if queue.jobs.len() >= self.max_queue + queue.idle_slots {
            let queued = queue.jobs.len();
            drop(queue);
            self.stats.record(&Outcome::Busy, None, 0, 0);
            self.log(RequestRecord {
                model: self.report.file_name(),
                persona: Some(self.persona.as_str().to_owned()),
                started_at: now_ms(),
                outcome: RequestOutcome::Busy,
                error_code: Some("busy".to_owned()),
                ..RequestRecord::default()
            });
            return Err(Error::Engine(EngineError::Busy {
                persona: self.persona.as_str(),
                queued,
            }));
        }
        queue.jobs.push_back(Job {
            request,
            events,
            cancel: cancel.clone(),
            submitted: Instant::now(),
            submitted_at_ms: now_ms(),
        });
        let waiting = queue.jobs.len();
        drop(queue);
        self.wake.notify_all();
        self.stats.set_queue_length(waiting);
        Ok(Generation::new(receiver, cancel))
    }

    /// Asks the worker to stop: queued and running requests end with [`Error::Engine(EngineError::ModelUnloaded)`].
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.wake.notify_all();
    }

    pub(super) fn log(&self, record: RequestRecord) {
        if let Some(sink) = &self.sink {
            sink(&record);
        }
    }
}
