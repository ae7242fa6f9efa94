//! `deskmate bench-api`: the local API under load, as `cargo xtask bench api` runs it.
//!
//! One process serves the API (in process, on a free loopback port, over a fresh data folder
//! with the given model on `--slots` slots) and then streams chat completions at it over HTTP,
//! as a client would: first one request alone (the baseline, median of 3), then `--concurrency`
//! requests at once. It reports each request's time to first token and outcome (finished, or
//! refused with 429), p50 and p95, and the aggregate generation throughput, as ratios against the
//! baseline measured in the same run. Prints one JSON object.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use anyhow::Context;
use deskmate_core::app::App;
use deskmate_core::paths::Paths;
use deskmate_core::store::Persona;
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct BenchApiArgs {
    /// The GGUF model both personas use
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value_t = 4)]
    slots: u32,
    /// Requests that may wait for a slot; the rest are refused with 429
    #[arg(long, default_value_t = 12)]
    max_queue: u32,
    /// Tokens generated per request
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    #[arg(long, default_value_t = 2)]
    threads: u32,
}

/// One streamed request, as the client saw it.
#[derive(Debug, Clone)]
struct Outcome {
    status: u16,
    ttft_ms: Option<f64>,
    total_ms: f64,
    completion_tokens: u64,
    done: bool,
}

pub fn bench_api(args: &BenchApiArgs) -> anyhow::Result<ExitCode> {
    let model = args
        .model
        .canonicalize()
        .with_context(|| format!("{}", args.model.display()))?;
    let home = tempfile_dir()?;
    let paths = Paths::in_dir(&home);
    paths.ensure_dirs()?;
    let persona = json!({
        "path": model, "n_ctx": 1024 * args.slots, "parallel": args.slots,
        "threads": args.threads, "max_queue": args.max_queue,
        "sampling": {"temperature": 0.0, "max_tokens": args.max_tokens}
    });
    std::fs::write(
        &paths.config_file,
        json!({"models": {"office": persona, "character": persona}}).to_string(),
    )?;
    let app = Arc::new(App::open(paths)?);
    app.load_persona(Persona::Office, None)
        .context("loading the model")?;
    let key = app.ensure_api_key(false, None)?.key;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}/v1/chat/completions", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(deskmate_server::serve(
        Arc::clone(&app),
        listener,
        &[],
        async {
            let _ = stop_rx.await;
        },
    ));

    // Every request opens differently, so none finds its prompt in a slot's cache.
    let single: Vec<Outcome> = (0..3).map(|n| stream_once(&url, &key, n)).collect();
    let concurrent: Vec<Outcome> = {
        let barrier = Arc::new(Barrier::new(args.concurrency));
        let handles: Vec<_> = (0..args.concurrency)
            .map(|n| {
                let (url, key, barrier) = (url.clone(), key.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    stream_once(&url, &key, 100 + n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| failed_outcome()))
            .collect()
    };
    let _ = stop_tx.send(());
    let _ = runtime.block_on(server);
    let _ = std::fs::remove_dir_all(&home);

    let baseline_ttft = median(single.iter().filter_map(|o| o.ttft_ms).collect());
    let baseline_tps = median(single.iter().map(tokens_per_s).collect());
    let finished: Vec<&Outcome> = concurrent.iter().filter(|o| o.done).collect();
    let refused = concurrent.iter().filter(|o| o.status == 429).count();
    let lost = concurrent.len() - finished.len() - refused;
    let mut ttfts: Vec<f64> = finished.iter().filter_map(|o| o.ttft_ms).collect();
    ttfts.sort_by(f64::total_cmp);
    let wall_ms = finished.iter().map(|o| o.total_ms).fold(0.0, f64::max);
    let tokens: u64 = finished.iter().map(|o| o.completion_tokens).sum();
    let aggregate_tps = if wall_ms > 0.0 {
        tokens as f64 * 1000.0 / wall_ms
    } else {
        0.0
    };
    let p50 = percentile(&ttfts, 0.50);
    let p95 = percentile(&ttfts, 0.95);
    let report = json!({
        "model": model,
        "slots": args.slots,
        "max_queue": args.max_queue,
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "single": { "ttft_ms": baseline_ttft, "tokens_per_s": baseline_tps },
        "concurrent": {
            "finished": finished.len(), "refused_429": refused, "lost": lost,
            "p50_ttft_ms": p50, "p95_ttft_ms": p95,
            "wall_ms": wall_ms, "completion_tokens": tokens,
            "aggregate_tokens_per_s": aggregate_tps,
        },
        "ratios": {
            "p50_ttft_vs_single": p50 / baseline_ttft,
            "p95_ttft_vs_single": p95 / baseline_ttft,
            "aggregate_tokens_per_s_vs_single": aggregate_tps / baseline_tps,
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("deskmate-bench-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn failed_outcome() -> Outcome {
    Outcome {
        status: 0,
        ttft_ms: None,
        total_ms: 0.0,
        completion_tokens: 0,
        done: false,
    }
}

fn tokens_per_s(o: &Outcome) -> f64 {
    match o.ttft_ms {
        Some(ttft) if o.total_ms > ttft && o.completion_tokens > 1 => {
            (o.completion_tokens - 1) as f64 * 1000.0 / (o.total_ms - ttft)
        }
        _ => 0.0,
    }
}

/// Streams one completion and times it: the first content chunk, the end (`[DONE]`).
fn stream_once(url: &str, key: &str, nonce: usize) -> Outcome {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let body = json!({
        "model": "office", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": format!("Story number {nonce}: write a short story about a lighthouse keeper.")}]
    });
    let started = Instant::now();
    let sent = agent
        .post(url)
        .header("Authorization", &format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(body.to_string());
    let mut response = match sent {
        Ok(r) => r,
        Err(_) => return failed_outcome(),
    };
    let status = response.status().as_u16();
    let mut outcome = Outcome {
        status,
        ..failed_outcome()
    };
    if status != 200 {
        outcome.total_ms = started.elapsed().as_secs_f64() * 1000.0;
        return outcome;
    }
    let reader = BufReader::new(response.body_mut().as_reader());
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            outcome.done = true;
            break;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        let has_text = chunk["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty());
        if has_text && outcome.ttft_ms.is_none() {
            outcome.ttft_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        }
        if let Some(n) = chunk["usage"]["completion_tokens"].as_u64() {
            outcome.completion_tokens = n;
        }
    }
    outcome.total_ms = started.elapsed().as_secs_f64() * 1000.0;
    outcome
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

/// The nearest-rank percentile of sorted values (NaN when there are none).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 10.0);
        assert_eq!(percentile(&v, 0.95), 19.0);
        assert_eq!(percentile(&[3.0], 0.95), 3.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
