//! The sentence rerank (`documents.sentence_rerank`): questions asked in everyday words over
//! formal Korean text. The text is the real constitution and the questions are the paraphrase
//! set of the documents benchmark (`xtask/bench-data/documents`), on the real multilingual e5
//! model from the mirror.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use deskmate_core::documents::{Library, SearchMode};

fn bench_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../xtask/bench-data/documents")
        .join(name)
}

struct Paraphrase {
    question: String,
    evidence: String,
}

fn paraphrases() -> Vec<Paraphrase> {
    let raw: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(bench_data("paraphrases.json")).unwrap())
            .unwrap();
    raw.iter()
        .map(|q| Paraphrase {
            question: q["question"].as_str().unwrap().to_owned(),
            evidence: q["evidence"].as_str().unwrap().to_owned(),
        })
        .collect()
}

fn open(dir: &Path, rerank: bool) -> Library {
    common::library_in(dir, |c| c.documents.sentence_rerank = rerank)
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect()
}

/// How many questions have their evidence in a top-5 passage.
fn found_in_top_5(library: &Library, questions: &[Paraphrase]) -> usize {
    questions
        .iter()
        .filter(|q| {
            let result = library
                .search_with(&q.question, 5, SearchMode::Hybrid)
                .unwrap();
            assert_eq!(result.passages.len(), 5);
            assert!(result.passages.windows(2).all(|w| w[0].score >= w[1].score));
            let evidence = squash(&q.evidence);
            result
                .passages
                .iter()
                .any(|p| squash(&p.text).contains(&evidence))
        })
        .count()
}

/// (chunks without sentence vectors, with an empty set, with some)
fn stored_sentence_vectors(dir: &Path) -> (i64, i64, i64) {
    let conn = rusqlite::Connection::open(dir.join("deskmate.sqlite3")).unwrap();
    conn.query_row(
        "SELECT coalesce(sum(sentence_vectors IS NULL), 0), coalesce(sum(length(sentence_vectors) = 0), 0),
                coalesce(sum(length(sentence_vectors) > 0), 0) FROM chunks",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

#[test]
fn sentence_vectors_find_more_everyday_questions_and_a_library_from_before_gets_them_after_its_next_job(
) {
    let dir = tempfile::tempdir().unwrap();
    let library = open(dir.path(), true);
    let reports = library
        .import(
            &[bench_data("corpus/kolaw-constitution.txt")],
            None,
            &mut |_| {},
        )
        .unwrap();
    let chunks = reports.iter().map(|r| r.chunks).sum::<i64>();
    let (missing, empty, filled) = stored_sentence_vectors(dir.path());
    assert_eq!(missing, 0, "every chunk's sentences are embedded at import");
    assert_eq!(empty + filled, chunks);
    assert!(
        filled * 2 > chunks,
        "most chunks hold several sentences: {filled} of {chunks}"
    );
    // 384 int8 values and a scale per sentence.
    let conn = rusqlite::Connection::open(dir.path().join("deskmate.sqlite3")).unwrap();
    let bad: i64 = conn
        .query_row(
            "SELECT count(*) FROM chunks WHERE length(sentence_vectors) % 388 != 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bad, 0);

    let questions = paraphrases();
    assert!(questions.len() >= 40);
    let with = found_in_top_5(&library, &questions);
    let plain = open(dir.path(), false);
    let without = found_in_top_5(&plain, &questions);
    eprintln!(
        "paraphrased questions found in the top 5: {without} without the rerank, {with} with it, of {}",
        questions.len()
    );
    assert!(
        with > without,
        "the rerank found {with}, plain search {without}"
    );

    // A library imported before sentence vectors existed searches as plain search did…
    conn.execute("UPDATE chunks SET sentence_vectors = NULL", [])
        .unwrap();
    assert_eq!(found_in_top_5(&library, &questions), without);
    // …until its next run of jobs makes them (the app runs them at every start).
    library.run_jobs(&mut |_| {}).unwrap();
    assert_eq!(stored_sentence_vectors(dir.path()), (0, empty, filled));
    assert_eq!(found_in_top_5(&library, &questions), with);
}

#[test]
fn with_the_rerank_off_an_import_embeds_no_sentences_and_no_job_makes_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notice.txt");
    std::fs::write(
        &file,
        "연차 유급휴가는 1년간 80퍼센트 이상 출근한 근로자에게 15일을 준다. 사용하지 않은 휴가는 수당으로 지급한다.\n\n\
         The office is closed on public holidays. Requests for leave go to the team lead.",
    )
    .unwrap();
    let library = open(dir.path(), false);
    library.import(&[file], None, &mut |_| {}).unwrap();
    let (missing, _, _) = stored_sentence_vectors(dir.path());
    assert!(missing > 0);
    assert_eq!(library.embed_missing_sentences().unwrap(), 0);
    assert_eq!(stored_sentence_vectors(dir.path()).0, missing);
    let found = library.search("휴가 며칠", 3).unwrap();
    assert!(found.passages[0].text.contains("연차 유급휴가"));
}
