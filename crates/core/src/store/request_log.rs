//! The request log: one row per finished engine request, for the per-model statistics.

use super::*;

impl Store {
    pub fn log_request(&mut self, r: &RequestRecord) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO request_log (model, persona, started_at, outcome, error_code, prompt_tokens,
                    completion_tokens, queue_ms, ttft_ms, prompt_ms, generation_ms, total_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    r.model,
                    r.persona,
                    r.started_at,
                    r.outcome,
                    r.error_code,
                    r.prompt_tokens,
                    r.completion_tokens,
                    r.queue_ms,
                    r.ttft_ms,
                    r.prompt_ms,
                    r.generation_ms,
                    r.total_ms
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn request_totals(&self, model: &str) -> Result<RequestTotals> {
        self.conn
            .query_row(
                "SELECT count(*),
                        count(*) FILTER (WHERE outcome = 'ok'),
                        count(*) FILTER (WHERE outcome = 'cancelled'),
                        count(*) FILTER (WHERE outcome = 'busy'),
                        count(*) FILTER (WHERE outcome = 'error'),
                        coalesce(sum(prompt_tokens), 0),
                        coalesce(sum(completion_tokens), 0)
                 FROM request_log WHERE model = ?1",
                [model],
                |r| {
                    Ok(RequestTotals {
                        requests: r.get(0)?,
                        ok: r.get(1)?,
                        cancelled: r.get(2)?,
                        busy: r.get(3)?,
                        errors: r.get(4)?,
                        prompt_tokens: r.get(5)?,
                        completion_tokens: r.get(6)?,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }
}
