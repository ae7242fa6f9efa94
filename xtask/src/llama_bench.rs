//! llama.cpp's own `llama-bench`, built against the very llama.cpp the engine links.
//!
//! The benchmark reports the engine's speed as a ratio to `llama-bench`: how many prompt
//! (pp) and generated (tg) tokens per second the engine reaches compared with llama.cpp's
//! reference tool on the same model, threads and batch size. That ratio only means something
//! when both sides run the same llama.cpp code built the same way, so this module does not use
//! a prebuilt `llama-bench` or a fresh llama.cpp checkout:
//!
//! - The driver source (`tools/llama-bench/{llama-bench.cpp,main.cpp}`) is not shipped by the
//!   `llama-cpp-sys-2` crate, so it is taken from the `llama-cpp-python` source distribution on
//!   PyPI ([`SDIST_VERSION`], pinned by [`SDIST_SHA256`]), the release whose vendored llama.cpp
//!   is closest to the one `llama-cpp-sys-2` [`SYS_CRATE_VERSION`] vendors. Only those two files
//!   are extracted.
//! - They are compiled against the headers of the sys crate's own llama.cpp source, with the
//!   exact compiler and flags CMake used there for llama.cpp's `common` library (read from that
//!   build's `compile_commands.json`: same optimisation level, `-march`, SIMD flags, defines),
//!   and linked against the static libraries that the sys crate's build script already
//!   produced (`libllama`, `libggml*`, `libllama-common*`, ...), with OpenMP and OpenSSL as
//!   that build's `CMakeCache.txt` records them. The bench therefore runs the same object code as
//!   the engine; only the driver loop differs.
//!
//! The result is cached under `<target>/bench/llama-bench/` and rebuilt only when it is missing
//! or when the sys crate's libraries it was linked against have changed. The sdist itself is kept
//! in `<target>/bench/sdist/`, shared with [`crate::llama_server`], which builds llama.cpp's
//! `llama-server` the same way with the helpers this module lends it (`pub(crate)` below).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

/// The `llama-cpp-sys-2` release whose llama.cpp the bench is built against. The pinned sdist
/// below was matched to this release; a different locked version makes [`build`] fail.
pub const SYS_CRATE_VERSION: &str = "0.1.161";
/// `llama-cpp-python` release providing `tools/llama-bench`. It is the newest one on PyPI and
/// vendors llama.cpp@0c1e57098 (llama 0.5 / ggml 0.25.3); `llama-cpp-sys-2` 0.1.161 vendors a
/// slightly newer llama.cpp (llama 0.6 / ggml 0.26.0) whose `arg.h`, `download.h`, `fit.h` and
/// `build-info.h` are identical, and the driver compiles against it unchanged.
pub const SDIST_VERSION: &str = "0.3.36";
/// sha256 of `llama_cpp_python-0.3.36.tar.gz` as published on PyPI.
pub const SDIST_SHA256: &str = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e";
const SDIST_FILE: &str = "llama_cpp_python-0.3.36.tar.gz";
/// The vendored llama.cpp source tree inside the sdist.
const SDIST_LLAMA_DIR: &str = "llama_cpp_python-0.3.36/vendor/llama.cpp";
/// Where the driver lives inside [`SDIST_LLAMA_DIR`].
const BENCH_DIR: &str = "tools/llama-bench";
const BENCH_SOURCES: [&str; 2] = ["llama-bench.cpp", "main.cpp"];
/// GPU and other backends whose extra libraries this module does not know how to link.
const UNSUPPORTED_BACKENDS: &[&str] = &[
    "GGML_CUDA",
    "GGML_HIP",
    "GGML_MUSA",
    "GGML_METAL",
    "GGML_OPENCL",
    "GGML_SYCL",
    "GGML_BLAS",
    "GGML_RPC",
    "GGML_BACKEND_DL",
];

/// Tokens per second measured by `llama-bench`.
#[derive(Debug, Clone)]
pub struct LlamaBenchResult {
    /// Prompt processing: `avg_ts` of the `-p N_PROMPT` test.
    pub pp_tokens_per_s: f64,
    /// Text generation: `avg_ts` of the `-n N_GEN` test.
    pub tg_tokens_per_s: f64,
    /// Everything `llama-bench -o json` printed (an array, one object per test).
    pub raw_json: serde_json::Value,
}

/// Returns the path of a `llama-bench` executable built against the llama.cpp of the newest
/// `llama-cpp-sys-2` build under `target_dir/{debug,release}/build`, building it first when it
/// is missing or stale. Needs `python3` with `pip` (to fetch the sdist), `tar`, and the C++
/// compiler the sys crate was built with.
pub fn build(repo_root: &Path, target_dir: &Path) -> Result<PathBuf> {
    build_tool(
        repo_root,
        target_dir,
        "llama-bench",
        BENCH_DIR,
        &BENCH_SOURCES,
    )
}

/// llama.cpp's `llama-batched-bench` (`tools/batched-bench`): `parallel` sequences decoded in
/// one batch, the reference for the engine's aggregate speed with concurrent requests. Built
/// like [`build`].
pub fn build_batched_bench(repo_root: &Path, target_dir: &Path) -> Result<PathBuf> {
    build_tool(
        repo_root,
        target_dir,
        "llama-batched-bench",
        "tools/batched-bench",
        &["batched-bench.cpp", "main.cpp"],
    )
}

/// llama.cpp's `llama-lookup` (`examples/lookup`): prompt-lookup decoding as llama.cpp's own
/// example does it (`common_ngram_cache`), the reference for the engine's lookup speed-up.
/// Built like [`build`].
pub fn build_lookup(repo_root: &Path, target_dir: &Path) -> Result<PathBuf> {
    build_tool(
        repo_root,
        target_dir,
        "llama-lookup",
        "examples/lookup",
        &["lookup.cpp"],
    )
}

/// One of llama.cpp's programs from the sdist, `sources` in `dir`, compiled and linked like
/// `llama-bench` into `<target>/bench/NAME/NAME`.
fn build_tool(
    repo_root: &Path,
    target_dir: &Path,
    name: &str,
    dir: &str,
    sources: &[&str],
) -> Result<PathBuf> {
    check_locked_sys_version(repo_root)?;
    let sys = SysBuild::find(target_dir)?;

    let cache = target_dir.join("bench").join(name);
    let exe = cache.join(name);
    let stamp_path = cache.join(format!("{name}.stamp"));
    let stamp = sys.stamp()?;
    if is_fresh(&exe, &stamp_path, &stamp) {
        return Ok(exe);
    }

    println!(
        "==> building {name} (llama-cpp-python {SDIST_VERSION} sources) against {}",
        sys.out_dir.display()
    );
    let started = Instant::now();
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let sdist = fetch_sdist(target_dir)?;
    let src_dir = cache.join("src");
    extract_sdist_files(&sdist, dir, sources, &src_dir)?;

    let units = object_units(&src_dir, sources, &cache.join("obj"))?;
    compile_all(&sys, &[], &units)?;
    let objects: Vec<PathBuf> = units.into_iter().map(|(_, object)| object).collect();
    link_checked(&sys, &objects, &exe, &stamp_path, &stamp)?;
    println!(
        "    built {} in {:.1}s",
        exe.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(exe)
}

/// Runs `llama-bench -m MODEL -t THREADS -p N_PROMPT -n N_GEN -b N_BATCH -ub N_BATCH -r REPS
/// -o json` and returns the average tokens per second of its prompt and generation tests.
pub fn run(
    bin: &Path,
    model: &Path,
    threads: u32,
    n_prompt: u32,
    n_gen: u32,
    n_batch: u32,
    repetitions: u32,
) -> Result<LlamaBenchResult> {
    // llama-bench silently skips a test whose size is 0, so both must be positive.
    for (name, value) in [
        ("threads", threads),
        ("n_prompt", n_prompt),
        ("n_gen", n_gen),
        ("n_batch", n_batch),
        ("repetitions", repetitions),
    ] {
        if value == 0 {
            bail!("llama-bench: {name} must be at least 1");
        }
    }
    if !model.is_file() {
        bail!("llama-bench: model {} not found", model.display());
    }
    let n_batch = n_batch.to_string();
    let (stdout, shown) = run_json(
        bin,
        model,
        threads,
        repetitions,
        &[
            "-p",
            &n_prompt.to_string(),
            "-n",
            &n_gen.to_string(),
            "-b",
            &n_batch,
            "-ub",
            &n_batch,
        ],
    )?;
    parse_output(&stdout, n_prompt, n_gen).with_context(|| format!("reading the output of {shown}"))
}

/// Aggregate generation speed of `llama-batched-bench` at one parallelism.
#[derive(Debug, Clone)]
pub struct BatchedBenchRow {
    pub parallel: u32,
    /// `speed_tg`: all sequences' generated tokens over the generation time.
    pub tg_tokens_per_s: f64,
    pub raw_json: serde_json::Value,
}

/// Runs `llama-batched-bench -m MODEL -t THREADS -c N_CTX -b N_BATCH -ub N_BATCH -npp N_PROMPT
/// -ntg N_GEN -npl P1,P2,... --output-format jsonl`: for each parallelism, that many sequences
/// read a prompt each and then generate together, one batch per step, as the engine's slots do
/// (non-unified KV cache: each sequence has `n_ctx / max(P)` cells).
#[allow(clippy::too_many_arguments)]
pub fn run_batched(
    bin: &Path,
    model: &Path,
    threads: u32,
    n_ctx: u32,
    n_batch: u32,
    n_prompt: u32,
    n_gen: u32,
    parallel: &[u32],
) -> Result<Vec<BatchedBenchRow>> {
    let npl = parallel
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new(bin);
    cmd.arg("-m")
        .arg(model)
        .args(["-t", &threads.to_string()])
        .args(["-c", &n_ctx.to_string()])
        .args(["-b", &n_batch.to_string(), "-ub", &n_batch.to_string()])
        .args(["-npp", &n_prompt.to_string(), "-ntg", &n_gen.to_string()])
        .args(["-npl", &npl, "--output-format", "jsonl"]);
    let output = cmd
        .output()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "`{}` failed ({}):\n{}",
            show(&cmd),
            output.status,
            tail(&stderr, 40)
        );
    }
    // The JSON lines may go to either stream, among log lines.
    let rows: Vec<BatchedBenchRow> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .filter_map(|v| {
            Some(BatchedBenchRow {
                parallel: u32::try_from(v["pl"].as_u64()?).ok()?,
                tg_tokens_per_s: v["speed_tg"].as_f64()?,
                raw_json: v,
            })
        })
        .collect();
    for p in parallel {
        if !rows.iter().any(|r| r.parallel == *p) {
            bail!(
                "`{}` printed no result for {p} sequences:\n{}",
                show(&cmd),
                tail(&stderr, 20)
            );
        }
    }
    Ok(rows)
}

/// What one `llama-lookup` run reports.
#[derive(Debug, Clone)]
pub struct LookupRun {
    /// "decoded N tokens in T seconds, speed: S t/s".
    pub tokens_per_s: f64,
    pub drafted: u64,
    pub accepted: u64,
}

/// Runs `llama-lookup -m MODEL -t THREADS -f PROMPT_FILE -n N_GEN --temp 0 --spec-draft-n-max
/// DRAFT -c 4096`: greedy generation with drafts of up to `draft` tokens from the n-gram cache of
/// the prompt and the text so far (`draft` 0: plain decoding, one token per decode call).
pub fn run_lookup(
    bin: &Path,
    model: &Path,
    threads: u32,
    prompt_file: &Path,
    n_gen: u32,
    draft: u32,
) -> Result<LookupRun> {
    let mut cmd = Command::new(bin);
    cmd.arg("-m")
        .arg(model)
        .args(["-t", &threads.to_string()])
        .arg("-f")
        .arg(prompt_file)
        .args(["-n", &n_gen.to_string(), "--temp", "0"])
        .args(["--spec-draft-n-max", &draft.to_string(), "-c", "4096"]);
    let output = cmd
        .output()
        .with_context(|| format!("starting {}", bin.display()))?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!(
            "`{}` failed ({}):\n{}",
            show(&cmd),
            output.status,
            tail(&text, 40)
        );
    }
    parse_lookup_output(&text).with_context(|| {
        format!(
            "`{}` printed no decoding speed:\n{}",
            show(&cmd),
            tail(&text, 20)
        )
    })
}

/// The speed and draft counts in `llama-lookup`'s output; `None` without a speed.
fn parse_lookup_output(text: &str) -> Option<LookupRun> {
    let field = |name: &str| {
        // Log lines start with a timestamp and a level: "0.03.496 I n_drafted    = 120".
        text.lines()
            .filter_map(|l| l.split_once(name).map(|(_, rest)| rest))
            .filter_map(|rest| rest.trim().strip_prefix('='))
            .find_map(|v| v.trim().parse::<u64>().ok())
    };
    let speed = text
        .lines()
        .filter(|l| l.contains("decoded") && l.contains("speed:"))
        .find_map(|l| {
            l.rsplit("speed:")
                .next()?
                .trim()
                .trim_end_matches("t/s")
                .trim()
                .parse::<f64>()
                .ok()
        });
    Some(LookupRun {
        tokens_per_s: speed?,
        drafted: field("n_drafted").unwrap_or(0),
        accepted: field("n_accept").unwrap_or(0),
    })
}

/// Runs `llama-bench -m MODEL -t THREADS -r REPS -o json` plus `args`; returns its standard
/// output and, for errors about that output, the command with the tail of its stderr.
fn run_json(
    bin: &Path,
    model: &Path,
    threads: u32,
    repetitions: u32,
    args: &[&str],
) -> Result<(String, String)> {
    let mut cmd = Command::new(bin);
    cmd.arg("-m")
        .arg(model)
        .args(["-t", &threads.to_string()])
        .args(args)
        .args(["-r", &repetitions.to_string()])
        .args(["-o", "json"]);
    let output = cmd
        .output()
        .with_context(|| format!("starting {}", bin.display()))?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}):\n{}",
            show(&cmd),
            output.status,
            tail(&String::from_utf8_lossy(&output.stderr), 40)
        );
    }
    let shown = format!(
        "`{}`\nstderr:\n{}",
        show(&cmd),
        tail(&String::from_utf8_lossy(&output.stderr), 20)
    );
    Ok((String::from_utf8_lossy(&output.stdout).into_owned(), shown))
}

/// The JSON array `llama-bench -o json` prints (after any log lines).
fn json_rows(stdout: &str) -> Result<serde_json::Value> {
    let start = stdout
        .find('[')
        .context("no JSON array in llama-bench's output")?;
    serde_json::from_str(&stdout[start..]).context("parsing llama-bench's JSON output")
}

/// Prompt-processing tokens per second for `n_prompt` tokens read after `depth` tokens already
/// in the cache (`llama-bench -p N -n 0 -d DEPTH`): llama.cpp's own cost of a conversation's
/// next turn when the earlier turns are cached.
pub fn prompt_at_depth(
    bin: &Path,
    model: &Path,
    threads: u32,
    n_prompt: u32,
    depth: u32,
    repetitions: u32,
) -> Result<f64> {
    if n_prompt == 0 || threads == 0 || repetitions == 0 {
        bail!("llama-bench: n_prompt, threads and repetitions must be at least 1");
    }
    let (stdout, shown) = run_json(
        bin,
        model,
        threads,
        repetitions,
        &[
            "-p",
            &n_prompt.to_string(),
            "-n",
            "0",
            "-d",
            &depth.to_string(),
        ],
    )?;
    json_rows(&stdout)?
        .as_array()
        .and_then(|rows| rows.first())
        .and_then(|row| row.get("avg_ts"))
        .and_then(serde_json::Value::as_f64)
        .with_context(|| format!("no avg_ts in the output of {shown}"))
}

/// Picks the pp row (`n_prompt` = N, `n_gen` = 0) and the tg row (`n_prompt` = 0, `n_gen` = N)
/// out of `llama-bench -o json` output.
fn parse_output(stdout: &str, n_prompt: u32, n_gen: u32) -> Result<LlamaBenchResult> {
    let raw_json = json_rows(stdout)?;
    let rows = raw_json
        .as_array()
        .context("llama-bench's JSON output is not an array")?;
    let avg_ts = |want_prompt: u64, want_gen: u64| -> Result<f64> {
        let row = rows
            .iter()
            .find(|row| {
                row.get("n_prompt").and_then(serde_json::Value::as_u64) == Some(want_prompt)
                    && row.get("n_gen").and_then(serde_json::Value::as_u64) == Some(want_gen)
            })
            .with_context(|| {
                format!("no test with n_prompt={want_prompt} n_gen={want_gen} in the output")
            })?;
        row.get("avg_ts")
            .and_then(serde_json::Value::as_f64)
            .with_context(|| {
                format!("no numeric avg_ts for n_prompt={want_prompt} n_gen={want_gen}")
            })
    };
    let pp_tokens_per_s = avg_ts(u64::from(n_prompt), 0)?;
    let tg_tokens_per_s = avg_ts(0, u64::from(n_gen))?;
    Ok(LlamaBenchResult {
        pp_tokens_per_s,
        tg_tokens_per_s,
        raw_json,
    })
}

/// Whether `exe` exists and was built from the inputs `stamp` describes.
pub(crate) fn is_fresh(exe: &Path, stamp_path: &Path, stamp: &str) -> bool {
    exe.is_file() && fs::read_to_string(stamp_path).is_ok_and(|s| s == stamp)
}

/// `(dir/source, obj_dir/source.o)` for each source, creating `obj_dir`.
pub(crate) fn object_units(
    dir: &Path,
    sources: &[&str],
    obj_dir: &Path,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    fs::create_dir_all(obj_dir).with_context(|| format!("creating {}", obj_dir.display()))?;
    Ok(sources
        .iter()
        .map(|source| (dir.join(source), obj_dir.join(format!("{source}.o"))))
        .collect())
}

/// Compiles each `(source, object)` pair like a source of the sys build's `common` library
/// (its compiler and flags), with `include_dirs` searched first, as many at a time as there are
/// CPUs. Stops starting new ones after the first failure and returns it.
pub(crate) fn compile_all(
    sys: &SysBuild,
    include_dirs: &[PathBuf],
    units: &[(PathBuf, PathBuf)],
) -> Result<()> {
    let jobs = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, units.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some((source, object)) = units.get(next.fetch_add(1, Ordering::Relaxed))
                    else {
                        break;
                    };
                    let name = source.file_name().map_or_else(
                        || source.display().to_string(),
                        |n| n.to_string_lossy().into_owned(),
                    );
                    println!("    compiling {name}");
                    let mut cmd = Command::new(&sys.compiler);
                    for dir in include_dirs {
                        cmd.arg("-I").arg(dir);
                    }
                    cmd.args(&sys.compile_flags)
                        .arg("-c")
                        .arg(source)
                        .arg("-o")
                        .arg(object);
                    if let Err(e) = run_checked(&mut cmd, &format!("compiling {name}")) {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut errors) = errors.lock() {
                            errors.push(e);
                        }
                    }
                }
            });
        }
    });
    let mut errors = errors
        .into_inner()
        .map_err(|_| anyhow!("a compiler thread panicked"))?;
    if failed.load(Ordering::Relaxed) && errors.is_empty() {
        bail!("a compile failed without an error report");
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => Err(errors
            .remove(0)
            .context(format!("{n} sources failed to compile; the first"))),
    }
}

/// Links `objects` against the sys build's libraries the way CMake links an executable of that
/// build (compiler + `CMAKE_CXX_FLAGS` + `CMAKE_CXX_FLAGS_<CONFIG>` + `CMAKE_EXE_LINKER_FLAGS`,
/// the objects, then the libraries), checks that the result runs `--help`, and only then moves
/// it to `exe` and writes `stamp` to `stamp_path`.
pub(crate) fn link_checked(
    sys: &SysBuild,
    objects: &[PathBuf],
    exe: &Path,
    stamp_path: &Path,
    stamp: &str,
) -> Result<()> {
    let name = exe.file_name().map_or_else(
        || exe.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let partial = exe.with_file_name(format!("{name}.partial"));
    let mut cmd = Command::new(&sys.compiler);
    cmd.args(&sys.link_flags)
        .args(objects)
        .arg("-o")
        .arg(&partial)
        .arg("-Wl,--start-group")
        .args(&sys.archives)
        .arg("-Wl,--end-group")
        .args(&sys.system_libs);
    run_checked(&mut cmd, &format!("linking {name}"))?;
    // Fail here rather than in the middle of a benchmark or a test if the binary cannot start.
    run_checked(
        Command::new(&partial).arg("--help"),
        &format!("running the new {name} --help"),
    )?;
    fs::rename(&partial, exe)
        .with_context(|| format!("moving {} to {}", partial.display(), exe.display()))?;
    fs::write(stamp_path, stamp).with_context(|| format!("writing {}", stamp_path.display()))
}

/// What the sys crate's CMake build produced and how it compiled.
pub(crate) struct SysBuild {
    /// The build script's `OUT_DIR` (`.../llama-cpp-sys-2-*/out`).
    pub(crate) out_dir: PathBuf,
    /// The llama.cpp source tree that build was configured from (`CMAKE_HOME_DIRECTORY`): the
    /// sys crate's own copy, whose headers match the libraries.
    pub(crate) source_dir: PathBuf,
    compiler: PathBuf,
    compile_flags: Vec<String>,
    link_flags: Vec<String>,
    archives: Vec<PathBuf>,
    system_libs: Vec<String>,
}

impl SysBuild {
    /// The newest `llama-cpp-sys-2-*/out` under `target_dir/{debug,release}/build` that was
    /// configured from `llama-cpp-sys-2-<SYS_CRATE_VERSION>` and holds `libllama.a`.
    pub(crate) fn find(target_dir: &Path) -> Result<SysBuild> {
        let mut newest: Option<(SystemTime, PathBuf)> = None;
        let mut seen = Vec::new();
        for profile in ["debug", "release"] {
            let build_dir = target_dir.join(profile).join("build");
            let Ok(entries) = fs::read_dir(&build_dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("llama-cpp-sys-2-")
                {
                    continue;
                }
                let out = entry.path().join("out");
                let lib = out.join("build").join("src").join("libllama.a");
                let Ok(modified) = fs::metadata(&lib).and_then(|m| m.modified()) else {
                    continue;
                };
                let cache = read_cmake_cache(&out.join("build").join("CMakeCache.txt"));
                let source = cache
                    .as_ref()
                    .ok()
                    .and_then(|c| c.get("CMAKE_HOME_DIRECTORY").cloned())
                    .unwrap_or_default();
                seen.push(format!("{} (source {source})", out.display()));
                if !source.contains(&format!("llama-cpp-sys-2-{SYS_CRATE_VERSION}")) {
                    continue;
                }
                if newest.as_ref().is_none_or(|(t, _)| modified > *t) {
                    newest = Some((modified, out));
                }
            }
        }
        let Some((_, out_dir)) = newest else {
            bail!(
                "no build of llama-cpp-sys-2 {SYS_CRATE_VERSION} with its static libraries under \
                 {}/{{debug,release}}/build (found: {}); build the engine first, e.g. \
                 `cargo build -p deskmate-core` (or --release)",
                target_dir.display(),
                if seen.is_empty() {
                    "none".to_string()
                } else {
                    seen.join(", ")
                }
            );
        };
        SysBuild::read(out_dir)
    }

    fn read(out_dir: PathBuf) -> Result<SysBuild> {
        let build = out_dir.join("build");
        let cache = read_cmake_cache(&build.join("CMakeCache.txt"))?;
        let on = |key: &str| {
            cache
                .get(key)
                .is_some_and(|v| matches!(v.to_ascii_uppercase().as_str(), "ON" | "TRUE" | "1"))
        };
        for backend in UNSUPPORTED_BACKENDS {
            if on(backend) {
                bail!(
                    "{} was built with {backend}=ON; llama.cpp's tools (llama-bench, \
                     llama-server) can only be built here against a CPU-only llama-cpp-sys-2 \
                     build",
                    out_dir.display()
                );
            }
        }

        let source_dir = cache
            .get("CMAKE_HOME_DIRECTORY")
            .map(PathBuf::from)
            .filter(|dir| dir.join("include").join("llama.h").is_file())
            .with_context(|| {
                format!(
                    "{}: CMAKE_HOME_DIRECTORY does not name a llama.cpp source tree",
                    build.join("CMakeCache.txt").display()
                )
            })?;

        // Compile the tools exactly like a source of llama.cpp's `common` library, which is
        // what they link and include: same compiler, flags, defines, include dirs.
        let compile_commands = build.join("compile_commands.json");
        let text = fs::read_to_string(&compile_commands).with_context(|| {
            format!(
                "reading {} (llama-cpp-sys-2's build normally writes it)",
                compile_commands.display()
            )
        })?;
        let entries: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", compile_commands.display()))?;
        let entry = entries
            .as_array()
            .and_then(|all| {
                let file_ends = |e: &&serde_json::Value, suffix: &str| {
                    e.get("file")
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(|f| f.replace('\\', "/").ends_with(suffix))
                };
                all.iter()
                    .find(|e| file_ends(e, "/common/arg.cpp"))
                    .or_else(|| all.iter().find(|e| file_ends(e, "/common/common.cpp")))
            })
            .with_context(|| {
                format!(
                    "{} has no entry for llama.cpp's common/arg.cpp: llama.cpp's tools need the \
                     `common` feature of llama-cpp-sys-2 (on by default)",
                    compile_commands.display()
                )
            })?;
        let args: Vec<String> = match (entry.get("arguments"), entry.get("command")) {
            (Some(serde_json::Value::Array(a)), _) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            (_, Some(serde_json::Value::String(c))) => {
                c.split_whitespace().map(str::to_string).collect()
            }
            _ => bail!("{}: entry has no command", compile_commands.display()),
        };
        let (compiler, rest) = args
            .split_first()
            .with_context(|| format!("{}: empty command", compile_commands.display()))?;
        let mut compile_flags = Vec::new();
        let mut skip_next = false;
        for arg in rest {
            if skip_next {
                skip_next = false;
            } else if arg == "-o" || arg == "-c" {
                // The output object and the source file.
                skip_next = true;
            } else {
                compile_flags.push(arg.clone());
            }
        }

        let config = cache
            .get("CMAKE_BUILD_TYPE")
            .cloned()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let mut link_flags: Vec<String> = Vec::new();
        for key in [
            "CMAKE_CXX_FLAGS".to_string(),
            format!("CMAKE_CXX_FLAGS_{config}"),
            "CMAKE_EXE_LINKER_FLAGS".to_string(),
            format!("CMAKE_EXE_LINKER_FLAGS_{config}"),
        ] {
            if let Some(v) = cache.get(&key) {
                link_flags.extend(v.split_whitespace().map(str::to_string));
            }
        }

        let mut archives = Vec::new();
        collect_archives(&build, &mut archives)?;
        archives.sort();
        let has = |name: &str| {
            archives
                .iter()
                .any(|a| a.file_name().is_some_and(|f| f == name))
        };
        if !has("libllama.a") || !has("libggml-base.a") {
            bail!("{} lacks libllama.a or libggml-base.a", build.display());
        }
        if !has("libllama-common.a") && !has("libcommon.a") {
            bail!(
                "{} has no libllama-common.a: llama.cpp's tools need the `common` feature of \
                 llama-cpp-sys-2 (on by default)",
                build.display()
            );
        }

        let mut system_libs = Vec::new();
        if on("GGML_OPENMP_ENABLED") {
            // What CMake's OpenMP::OpenMP_CXX target adds for GCC/Clang (-fopenmp links libgomp).
            let flags = cache
                .get("OpenMP_CXX_FLAGS")
                .cloned()
                .unwrap_or_else(|| "-fopenmp".to_string());
            system_libs.extend(flags.split_whitespace().map(str::to_string));
        }
        if on("LLAMA_OPENSSL") {
            for key in ["OPENSSL_SSL_LIBRARY", "OPENSSL_CRYPTO_LIBRARY"] {
                if let Some(lib) = cache.get(key).filter(|l| !l.ends_with("NOTFOUND")) {
                    system_libs.push(lib.clone());
                }
            }
        }
        if on("GGML_VULKAN") {
            // The Vulkan loader CMake found (the provisioned SDK's link to the system loader).
            match cache
                .get("Vulkan_LIBRARY")
                .filter(|l| !l.ends_with("NOTFOUND"))
            {
                Some(lib) => system_libs.push(lib.clone()),
                None => system_libs.push("-lvulkan".to_string()),
            }
        }
        system_libs.extend(["-lpthread", "-ldl", "-lm"].map(str::to_string));

        Ok(SysBuild {
            out_dir,
            source_dir,
            compiler: PathBuf::from(compiler),
            compile_flags,
            link_flags,
            archives,
            system_libs,
        })
    }

    /// Identifies the inputs of a tool built against this build (sdist, compiler, flags, every
    /// library's size and mtime): when it changes, the tool is rebuilt.
    pub(crate) fn stamp(&self) -> Result<String> {
        let mut s = format!(
            "llama-cpp-python {SDIST_VERSION} {SDIST_SHA256}\nsys out {}\ncompile {} {}\nlink {}\n",
            self.out_dir.display(),
            self.compiler.display(),
            self.compile_flags.join(" "),
            self.link_flags.join(" "),
        );
        for archive in &self.archives {
            let meta = fs::metadata(archive)
                .with_context(|| format!("reading metadata of {}", archive.display()))?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            s.push_str(&format!(
                "archive {} {} {mtime}\n",
                archive.display(),
                meta.len()
            ));
        }
        s.push_str(&format!("libs {}\n", self.system_libs.join(" ")));
        Ok(s)
    }
}

/// `KEY:TYPE=VALUE` lines of a CMakeCache.txt.
fn read_cmake_cache(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut map = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        let Some((key_type, value)) = line.split_once('=') else {
            continue;
        };
        let key = key_type.split_once(':').map_or(key_type, |(k, _)| k);
        map.insert(key.to_string(), value.to_string());
    }
    Ok(map)
}

fn collect_archives(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if path.is_dir() {
            collect_archives(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "a") {
            out.push(path);
        }
    }
    Ok(())
}

/// Fails unless Cargo.lock pins llama-cpp-sys-2 at the version the sdist was matched to.
pub(crate) fn check_locked_sys_version(repo_root: &Path) -> Result<()> {
    let lock_path = repo_root.join("Cargo.lock");
    let lock = fs::read_to_string(&lock_path)
        .with_context(|| format!("reading {}", lock_path.display()))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"llama-cpp-sys-2\"" {
            let version = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|l| l.strip_suffix('"'))
                .unwrap_or("?");
            if version != SYS_CRATE_VERSION {
                bail!(
                    "Cargo.lock has llama-cpp-sys-2 {version}, but the llama.cpp tool sources \
                     (llama-bench, llama-server) in xtask/src/llama_bench.rs are pinned for \
                     {SYS_CRATE_VERSION}: pick the llama-cpp-python sdist whose vendored \
                     llama.cpp matches, and update SYS_CRATE_VERSION, SDIST_VERSION and \
                     SDIST_SHA256 (and check xtask/src/llama_server.rs's source patches)"
                );
            }
            return Ok(());
        }
    }
    bail!("{} does not list llama-cpp-sys-2", lock_path.display())
}

/// The pinned sdist in `<target_dir>/bench/sdist/` (shared by every tool built from it),
/// downloaded with pip unless a verified copy is already there.
pub(crate) fn fetch_sdist(target_dir: &Path) -> Result<PathBuf> {
    let dir = &target_dir.join("bench").join("sdist");
    let path = dir.join(SDIST_FILE);
    if path.is_file() && sha256_file(&path)? == SDIST_SHA256 {
        return Ok(path);
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if !Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        bail!(
            "building llama.cpp's tools needs python3 with pip to fetch the llama-cpp-python \
             {SDIST_VERSION} source from PyPI; install them (Debian/Ubuntu: \
             `sudo apt-get install python3 python3-pip`)"
        );
    }
    println!("    downloading llama-cpp-python {SDIST_VERSION} (sdist, ~77 MB) with pip");
    run_checked(
        Command::new("python3")
            .args(["-m", "pip", "download", "--disable-pip-version-check"])
            .arg(format!("llama-cpp-python=={SDIST_VERSION}"))
            .args(["--no-binary", ":all:", "--no-deps", "--dest"])
            .arg(dir),
        "downloading the llama-cpp-python sdist",
    )?;
    let actual = sha256_file(&path)
        .with_context(|| format!("pip did not leave {} behind", path.display()))?;
    if actual != SDIST_SHA256 {
        // Do not keep a file that is not the one the tools were validated with.
        let _ = fs::remove_file(&path);
        bail!(
            "{} has sha256 {actual}, expected {SDIST_SHA256}; refusing to build from it",
            path.display()
        );
    }
    Ok(path)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Extracts only the files `names` of the directory `dir` (relative to [`SDIST_LLAMA_DIR`]) of
/// the sdist into `dest`, emptied first. A name may be a shell pattern (`*.h`) for files of that
/// directory alone (not of its subdirectories); tar fails when one matches nothing.
pub(crate) fn extract_sdist_files(
    sdist: &Path,
    dir: &str,
    names: &[&str],
    dest: &Path,
) -> Result<()> {
    if dest.exists() {
        fs::remove_dir_all(dest).with_context(|| format!("removing {}", dest.display()))?;
    }
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let prefix = format!("{SDIST_LLAMA_DIR}/{dir}");
    let strip = prefix.split('/').count();
    let mut cmd = Command::new("tar");
    cmd.arg("-xzf")
        .arg(sdist)
        .arg("-C")
        .arg(dest)
        .arg(format!("--strip-components={strip}"))
        .args(["--wildcards", "--no-wildcards-match-slash"]);
    for name in names {
        cmd.arg(format!("{prefix}/{name}"));
    }
    run_checked(
        &mut cmd,
        &format!("extracting {dir} from the llama-cpp-python sdist (needs GNU tar)"),
    )?;
    for name in names.iter().filter(|n| !n.contains(['*', '?', '['])) {
        if !dest.join(name).is_file() {
            bail!("{dir}/{name} missing after extracting {}", sdist.display());
        }
    }
    Ok(())
}

pub(crate) fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let output = cmd
        .output()
        .with_context(|| format!("{what}: could not start `{}`", show(cmd)))?;
    if !output.status.success() {
        return Err(anyhow!(
            "{what}: `{}` failed ({})\n{}{}",
            show(cmd),
            output.status,
            tail(&String::from_utf8_lossy(&output.stdout), 20),
            tail(&String::from_utf8_lossy(&output.stderr), 40)
        ));
    }
    Ok(())
}

fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_speed_and_draft_counts_from_llama_lookup_log_lines() {
        let out = "0.03.081.953 I decoded  132 tokens in    1.406 seconds, speed:   93.909 t/s\n\
                   0.03.082.010 I n_drafted    = 120\n\
                   0.03.082.055 I n_accept     = 95\n\
                   0.03.082.069 I accept       = 79.167%\n";
        let run = parse_lookup_output(out).unwrap_or_else(|| panic!("not parsed"));
        assert!((run.tokens_per_s - 93.909).abs() < 1e-9);
        assert_eq!((run.drafted, run.accepted), (120, 95));
        assert!(parse_lookup_output("error: the argument has been removed").is_none());
    }

    #[test]
    fn picks_pp_and_tg_rows() -> Result<()> {
        let out = r#"[
          {"n_prompt": 128, "n_gen": 0, "avg_ts": 344.47},
          {"n_prompt": 0, "n_gen": 32, "avg_ts": 61.5}
        ]"#;
        let r = parse_output(out, 128, 32)?;
        assert!((r.pp_tokens_per_s - 344.47).abs() < 1e-9);
        assert!((r.tg_tokens_per_s - 61.5).abs() < 1e-9);
        assert!(parse_output(out, 64, 32).is_err());
        Ok(())
    }

    #[test]
    fn reads_cmake_cache_lines() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("llama-bench-test-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let path = dir.join("CMakeCache.txt");
        fs::write(
            &path,
            "// comment\nGGML_OPENMP_ENABLED:INTERNAL=ON\nCMAKE_CXX_FLAGS:STRING= -O2 -g\n",
        )?;
        let cache = read_cmake_cache(&path)?;
        fs::remove_dir_all(&dir)?;
        assert_eq!(
            cache.get("GGML_OPENMP_ENABLED").map(String::as_str),
            Some("ON")
        );
        assert_eq!(
            cache.get("CMAKE_CXX_FLAGS").map(String::as_str),
            Some(" -O2 -g")
        );
        Ok(())
    }
}
