//! `deskmate bench-documents` (hidden; run by `cargo xtask bench documents`): the document
//! library's benchmark, printed as one JSON object.
//!
//! 1. **Ingest**: the labeled corpus (real public Korean and English text, see
//!    `xtask/bench-data/documents/SOURCES.md`) imported with the real embedding model; chunks/s
//!    and MB/min, and, as the baseline measured in the same run, embedding the same chunk texts
//!    alone (so the ratio is the pipeline's overhead over the model).
//!    The same for one generated text of `--unbroken-bytes` without a single sentence break (as
//!    logs, OCR output and text pasted from PDFs come): the case whose chunking was quadratic.
//!    The target is an import rate of at least 0.8 of the model's own rate.
//! 2. **Retrieval quality**: each labeled question searched hybrid, keyword-only and
//!    vector-only; a passage is relevant when it comes from the question's file and contains its
//!    evidence string (or at least half of it, where a chunk boundary cuts it). recall@5 and MRR
//!    (first relevant within 10).
//!    The same for `paraphrases.json`: Korean questions in everyday words over the constitution,
//!    whose text uses formal ones (월급 for 임금, 일자리 for 근로), recall@5 per method.
//! 3. **Korean office formats**: the Korean constitution as HWPX, XLSX, PPTX and a scanned PDF
//!    read by OCR, each searched with its labeled questions; OCR error rate and speed (see
//!    `bench_docs_korean.rs`).
//! 4. **Scale**: libraries of 10k and 100k chunks. Their texts are sentences of the corpus
//!    recombined, their vectors mixes of two real chunk embeddings plus noise (embedding 100k
//!    chunks would take about an hour here). Query latency p50/p95 of the full hybrid search
//!    (query embedding, keyword and vector search, fusion, passage reads), and HNSW recall@10
//!    against exact f32 search over the same vectors.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use deskmate_core::config::Config;
use deskmate_core::documents::embed::dot;
use deskmate_core::documents::samples::unbroken_text;
use deskmate_core::documents::{Library, SearchMode};
use deskmate_core::store::AccessLevel;

#[derive(Debug, clap::Args)]
pub struct BenchDocsArgs {
    /// Folder with `corpus/` and `questions.json`
    #[arg(long)]
    data: PathBuf,
    /// Models directory with the embedding model and ONNX Runtime
    #[arg(long)]
    models: PathBuf,
    /// Work folder (databases are created here)
    #[arg(long)]
    work: PathBuf,
    /// Library sizes for the scale measures
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    sizes: Vec<usize>,
    /// Queries per scale measure
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Size of the generated text without sentence breaks
    #[arg(long, default_value_t = 1_000_000)]
    unbroken_bytes: usize,
    /// Scanned pages of the Korean set (all of the constitution's when not given)
    #[arg(long)]
    korean_scan_pages: Option<usize>,
}

/// Imports `files` into a fresh library and embeds its chunk texts alone: the import's rate
/// against the model's raw rate on the same chunks, in one run.
fn ingest_rate(
    open: &dyn Fn(&str) -> anyhow::Result<Library>,
    name: &str,
    files: &[PathBuf],
    bytes: u64,
) -> anyhow::Result<(
    Library,
    serde_json::Value,
    Vec<deskmate_core::documents::JobReport>,
)> {
    let library = open(name)?;
    // The model is loaded before the clock starts, for both measures.
    library.warm_up().ok();
    let started = Instant::now();
    let reports = library.import(files, None, &mut |_| {})?;
    let ingest_s = started.elapsed().as_secs_f64();
    let chunks: i64 = reports.iter().map(|r| r.chunks).sum();
    let failed: usize = reports.iter().map(|r| r.failed).sum();
    anyhow::ensure!(failed == 0, "{name}: files failed to import: {reports:?}");
    let texts: Vec<String> = library.chunk_texts()?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // The baseline does the import's embedding work and nothing else: the chunks, then their
    // sentences (for the search's rerank), timed apart so the sentences' share is known.
    let started = Instant::now();
    let baseline_vectors = library.embed_passages_for_bench(&refs)?;
    let chunks_only_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(baseline_vectors.len() == refs.len());
    let started = Instant::now();
    let sentences = library.embed_sentences_for_bench(&refs)?;
    let sentences_s = started.elapsed().as_secs_f64();
    let embed_only_s = chunks_only_s + sentences_s;
    let figures = serde_json::json!({
        "bytes": bytes,
        "chunks": chunks,
        "seconds": ingest_s,
        "chunks_per_s": chunks as f64 / ingest_s,
        "mb_per_min": bytes as f64 / 1e6 / (ingest_s / 60.0),
        "embed_only_seconds": embed_only_s,
        "embed_only_chunks_per_s": chunks as f64 / embed_only_s,
        "sentences": sentences,
        "sentences_seconds": sentences_s,
        "sentence_share_of_embedding": sentences_s / embed_only_s,
        "ratio_ingest_to_embed_only": ingest_s / embed_only_s,
        "rate_vs_embed_only": embed_only_s / ingest_s,
    });
    Ok((library, figures, reports))
}

#[derive(Debug)]
pub(crate) struct Question {
    pub(crate) id: String,
    pub(crate) lang: String,
    pub(crate) question: String,
    pub(crate) file: String,
    pub(crate) evidence: String,
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn relevant(passage_text: &str, evidence: &str) -> bool {
    let text = squash(passage_text);
    let evidence = squash(evidence);
    if text.contains(&evidence) {
        return true;
    }
    let chars: Vec<char> = evidence.chars().collect();
    let half = chars.len().div_ceil(2).max(8);
    if chars.len() < half {
        return false;
    }
    let prefix: String = chars[..half].iter().collect();
    let suffix: String = chars[chars.len() - half..].iter().collect();
    text.contains(&prefix) || text.contains(&suffix)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A tiny deterministic generator (xorshift), so runs are repeatable without a rand crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 20_001) as f32 / 10_000.0 - 1.0
    }
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

pub fn run(args: &BenchDocsArgs) -> anyhow::Result<()> {
    let corpus = args.data.join("corpus");
    let raw: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(args.data.join("questions.json"))
            .context("reading questions.json")?,
    )
    .context("parsing questions.json")?;
    let field = |q: &serde_json::Value, name: &str| -> anyhow::Result<String> {
        q[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("questions.json: an entry has no \"{name}\": {q}"))
    };
    let parse = |raw: &[serde_json::Value]| {
        raw.iter()
            .map(|q| {
                Ok(Question {
                    id: field(q, "id")?,
                    lang: field(q, "lang")?,
                    question: field(q, "question")?,
                    file: field(q, "file")?,
                    evidence: field(q, "evidence")?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let paraphrases: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(args.data.join("paraphrases.json"))
            .context("reading paraphrases.json")?,
    )
    .context("parsing paraphrases.json")?;
    let paraphrases = parse(&paraphrases)?;
    let questions = parse(&raw)?;
    std::fs::create_dir_all(&args.work)?;
    let config = Config::shipped();
    let open = |name: &str| -> anyhow::Result<Library> {
        let db = args.work.join(format!("{name}.sqlite3"));
        let vectors = args.work.join(format!("{name}.vectors"));
        for p in [&db, &vectors] {
            let _ = std::fs::remove_file(p);
        }
        Ok(Library::open(&db, &vectors, &config, &args.models)?)
    };

    // 1. Ingest: the corpus, then one long text without sentence breaks.
    let bytes: u64 = std::fs::read_dir(&corpus)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let (library, ingest, reports) =
        ingest_rate(&open, "corpus", std::slice::from_ref(&corpus), bytes)?;
    let chunks: i64 = reports.iter().map(|r| r.chunks).sum();
    let unbroken_file = args.work.join("unbroken.txt");
    std::fs::write(&unbroken_file, unbroken_text(args.unbroken_bytes))?;
    let (unbroken_library, unbroken, _) = ingest_rate(
        &open,
        "unbroken",
        std::slice::from_ref(&unbroken_file),
        args.unbroken_bytes as u64,
    )?;
    drop(unbroken_library);
    for ext in ["sqlite3", "sqlite3-wal", "sqlite3-shm", "vectors"] {
        let _ = std::fs::remove_file(args.work.join(format!("unbroken.{ext}")));
    }
    let _ = std::fs::remove_file(&unbroken_file);
    let stored = library.stored_embeddings()?;
    let texts: Vec<String> = library.chunk_texts()?;

    // 2. Retrieval quality. The same library opened a second time with the sentence rerank
    // off gives the "before" of each method that embeds the query.
    let plain_config = {
        let mut c = config.clone();
        c.documents.sentence_rerank = false;
        c
    };
    let plain = Library::open(
        &args.work.join("corpus.sqlite3"),
        &args.work.join("corpus.vectors"),
        &plain_config,
        &args.models,
    )?;
    let methods: [(&str, &Library, SearchMode); 5] = [
        ("hybrid", &library, SearchMode::Hybrid),
        ("hybrid_without_rerank", &plain, SearchMode::Hybrid),
        ("keyword", &library, SearchMode::Keyword),
        ("vector", &library, SearchMode::Vector),
        ("vector_without_rerank", &plain, SearchMode::Vector),
    ];
    let mut quality = serde_json::Map::new();
    let mut per_question = Vec::new();
    for (name, library, mode) in methods {
        let (mut hits5, mut rr_sum) = (0usize, 0f64);
        let mut by_lang: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
        for q in &questions {
            let result = library.search_with(&q.question, 10, mode)?;
            let rank = result
                .passages
                .iter()
                .position(|p| p.file_name == q.file && relevant(&p.text, &q.evidence))
                .map(|i| i + 1);
            let entry = by_lang.entry(q.lang.clone()).or_default();
            entry.1 += 1;
            if rank.is_some_and(|r| r <= 5) {
                hits5 += 1;
                entry.0 += 1;
            }
            if let Some(r) = rank {
                rr_sum += 1.0 / r as f64;
            }
            per_question.push(serde_json::json!({"id": q.id, "method": name, "rank": rank}));
        }
        let n = questions.len() as f64;
        quality.insert(
            name.to_owned(),
            serde_json::json!({
                "recall_at_5": hits5 as f64 / n,
                "mrr_at_10": rr_sum / n,
                "recall_at_5_by_language": by_lang.iter().map(|(l, (h, t))| (l.clone(), serde_json::json!(*h as f64 / *t as f64))).collect::<serde_json::Map<_, _>>(),
            }),
        );
    }

    // 2b. Paraphrased Korean questions: everyday words where the text has formal ones.
    let mut paraphrase = serde_json::Map::new();
    for (name, library, mode) in methods {
        let mut hits = 0usize;
        let mut missed = Vec::new();
        let mut ms = Vec::new();
        for q in &paraphrases {
            let started = Instant::now();
            let result = library.search_with(&q.question, 5, mode)?;
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
            if result
                .passages
                .iter()
                .any(|p| p.file_name == q.file && relevant(&p.text, &q.evidence))
            {
                hits += 1;
            } else {
                missed.push(q.id.clone());
            }
        }
        ms.sort_by(f64::total_cmp);
        paraphrase.insert(
            name.to_owned(),
            serde_json::json!({
                "questions": paraphrases.len(),
                "recall_at_5": hits as f64 / paraphrases.len().max(1) as f64,
                "missed": missed,
                "query_ms_p50": percentile(&ms, 50.0),
            }),
        );
    }

    // 3. The Korean office formats and OCR.
    let korean = crate::bench_docs_korean::run(
        &corpus,
        &args.models,
        &args.work,
        &questions,
        args.korean_scan_pages,
    )?;

    // 4. Scale.
    let sentences: Vec<String> = texts
        .iter()
        .flat_map(|t| {
            t.split(['.', '。', '\n'])
                .map(str::trim)
                .filter(|s| s.chars().count() > 15)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let real: Vec<Vec<f32>> = stored.iter().map(|(_, v)| v.clone()).collect();
    anyhow::ensure!(
        !real.is_empty() && !sentences.is_empty(),
        "the corpus gave no chunks"
    );
    let model = "multilingual-e5-small-onnx";
    let query_texts: Vec<&str> = questions.iter().map(|q| q.question.as_str()).collect();
    let query_vectors = library.embed_queries(&query_texts)?;
    let mut scale = Vec::new();
    for &size in &args.sizes {
        let lib = open(&format!("scale-{size}"))?;
        let mut rng = Rng(0x5EED_0000 + size as u64);
        let started = Instant::now();
        let per_doc = 1000;
        let mut made = 0;
        while made < size {
            let n = per_doc.min(size - made);
            let chunks: Vec<(String, Vec<f32>)> = (0..n)
                .map(|_| {
                    let text = (0..4)
                        .map(|_| sentences[rng.below(sentences.len())].as_str())
                        .collect::<Vec<_>>()
                        .join(". ");
                    let a = &real[rng.below(real.len())];
                    let b = &real[rng.below(real.len())];
                    let mut v: Vec<f32> = a
                        .iter()
                        .zip(b)
                        .map(|(x, y)| 0.7 * x + 0.3 * y + 0.02 * rng.unit())
                        .collect();
                    normalise(&mut v);
                    (text, v)
                })
                .collect();
            lib.insert_prepared(
                &format!("synthetic-{made}"),
                AccessLevel::Internal,
                &chunks,
                model,
            )?;
            made += n;
        }
        let fill_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        lib.warm_up()?;
        let index_build_s = started.elapsed().as_secs_f64();

        // Latency of the whole hybrid search, one query at a time.
        let mut latencies = Vec::new();
        for i in 0..args.queries {
            let q = &questions[i % questions.len()].question;
            let t = Instant::now();
            let r = lib.search(q, 5)?;
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(
                r.notice.is_none(),
                "vector search unavailable: {:?}",
                r.notice
            );
        }
        latencies.sort_by(f64::total_cmp);
        // Each half alone, to see where the time goes.
        let mut by_mode = serde_json::Map::new();
        for mode in [SearchMode::Keyword, SearchMode::Vector] {
            let mut ms = Vec::new();
            let mut slowest: Vec<(f64, String)> = Vec::new();
            for i in 0..args.queries {
                let q = &questions[i % questions.len()].question;
                let t = Instant::now();
                lib.search_with(q, 5, mode)?;
                let took = t.elapsed().as_secs_f64() * 1000.0;
                ms.push(took);
                slowest.push((took, q.clone()));
            }
            slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
            for (took, q) in slowest.iter().take(5) {
                eprintln!(
                    "slowest {mode:?} at {size}: {took:.1} ms  {q}  {:?}",
                    deskmate_core::documents::keyword::query_terms(q)
                );
            }
            ms.sort_by(f64::total_cmp);
            by_mode.insert(
                format!("{mode:?}").to_lowercase(),
                serde_json::json!({"p50": percentile(&ms, 50.0), "p95": percentile(&ms, 95.0)}),
            );
        }

        // HNSW recall@10 against exact f32 search over the same stored vectors.
        let all = lib.stored_embeddings()?;
        let mut recall_sum = 0.0;
        let recall_queries = query_vectors.len().min(100);
        for qv in query_vectors.iter().take(recall_queries) {
            let mut exact: Vec<(f32, i64)> = all.iter().map(|(id, v)| (dot(qv, v), *id)).collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let truth: Vec<i64> = exact.iter().take(10).map(|(_, id)| *id).collect();
            let got = lib.nearest_chunks(qv, 10)?;
            let hit = got.iter().filter(|id| truth.contains(id)).count();
            recall_sum += hit as f64 / 10.0;
        }
        scale.push(serde_json::json!({
            "chunks": size,
            "fill_s": fill_s,
            "index_build_s": index_build_s,
            "query_ms_p50": percentile(&latencies, 50.0),
            "query_ms_p95": percentile(&latencies, 95.0),
            "queries": latencies.len(),
            "query_ms_by_mode": by_mode,
            "hnsw_recall_at_10": recall_sum / recall_queries as f64,
            "recall_queries": recall_queries,
        }));
        drop(lib);
        for ext in ["sqlite3", "sqlite3-wal", "sqlite3-shm", "vectors"] {
            let _ = std::fs::remove_file(args.work.join(format!("scale-{size}.{ext}")));
        }
    }

    let report = serde_json::json!({
        "corpus": {
            "files": reports.iter().map(|r| r.files.len()).sum::<usize>(),
            "bytes": bytes,
            "chunks": chunks,
            "questions": questions.len(),
        },
        "ingest": ingest,
        "ingest_unbroken": unbroken,
        "quality": quality,
        "paraphrase": paraphrase,
        "korean_formats": korean,
        "scale": scale,
        "per_question": per_question,
    });
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
