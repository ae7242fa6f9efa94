//! `cargo xtask gpu-check`: one prepared check for a lent NVIDIA machine (the `device` tool of
//! the workplace library).
//!
//! That machine has CUDA, CMake and Python but no Rust toolchain and no network, and one call
//! carries at most 64 MiB. So the check is built here and travels in two folders under
//! `gpu-check/` (ignored by git), each under 60 MiB:
//! - `a/`: the CLI and `llama-bench` (stripped, xz), the shared libraries they load that such a
//!   machine may lack (the Vulkan loader, ALSA, OpenMP), the check script (`gpu_check.py`) and
//!   the first part of the test model;
//! - `b/`: the rest of the model (the test model, 94 MiB: the default model, 1.1 GB, cannot
//!   travel in calls of 64 MiB within the 15 minutes a session is lent a device).
//!
//! The first call copies `a/` into /tmp/gc; the machine stays warm for 30 s, and the second call
//! copies `b/` and runs the script, which prints one table and writes `$OUT/gpu-check.json`.
//! With `--dry-run` the bundle is made and the two calls are printed; without it, the script is
//! also rehearsed here on the unpacked bundle with Mesa's software Vulkan device and small sizes,
//! so a broken bundle is found before device time is spent on it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::{run, step, Repo, BENCH_MODEL};

const SCRIPT: &str = include_str!("gpu_check.py");
/// What one `run` call may carry is 64 MiB; this leaves room for the rest of the checkout.
const PART_LIMIT: u64 = 60 << 20;
/// The libraries the binaries link that a CUDA image may not have.
const LIBRARIES: &[&str] = &["libvulkan.so.1", "libasound.so.2", "libgomp.so.1"];

pub fn prepare(repo: &Repo, dry_run: bool) -> Result<()> {
    step("building the CLI (Vulkan) and llama-bench against the same llama.cpp");
    run(repo.cargo().args(["build", "--workspace", "--all-targets"]))?;
    let cli = repo.target_dir().join("debug").join("deskmate");
    let llama_bench = super::llama_bench::build(&repo.root, &repo.target_dir())?;
    let model = repo.models_dir().join(BENCH_MODEL);
    if !model.is_file() {
        repo.fetch_models("test")?;
    }

    step("staging gpu-check/a and gpu-check/b");
    let root = repo.root.join("gpu-check");
    let _ = fs::remove_dir_all(&root);
    let (a, b) = (root.join("a"), root.join("b"));
    for dir in [a.join("bin"), a.join("lib"), b.clone()] {
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for (exe, name) in [(&cli, "deskmate"), (&llama_bench, "llama-bench")] {
        let stripped = a.join("bin").join(name);
        run(Command::new("strip").arg("-o").arg(&stripped).arg(exe))?;
        run(Command::new("xz").args(["-6", "-T2"]).arg(&stripped))?;
    }
    for lib in LIBRARIES {
        let found = system_library(lib)
            .with_context(|| format!("{lib} is not installed here, so it cannot travel"))?;
        fs::copy(&found, a.join("lib").join(lib))
            .with_context(|| format!("copying {}", found.display()))?;
    }
    fs::write(a.join("gpu_check.py"), SCRIPT)?;
    // The grounded task of the lookup-decoding rows repeats a section of it.
    let text = "debian-constitution.txt";
    fs::copy(
        repo.root
            .join("xtask/bench-data/documents/corpus")
            .join(text),
        a.join(text),
    )
    .with_context(|| format!("copying {text}"))?;
    let bytes = fs::read(&model).with_context(|| format!("reading {}", model.display()))?;
    // `b` carries as much of the model as fits; `a` the binaries and the rest.
    let cut = bytes.len().saturating_sub(56 << 20);
    fs::write(a.join("model.part-a"), &bytes[..cut])?;
    fs::write(b.join("model.part-b"), &bytes[cut..])?;
    for part in [&a, &b] {
        let size = folder_size(part)?;
        println!(
            "{}: {:.1} MiB",
            part.display(),
            size as f64 / f64::from(1 << 20)
        );
        if size > PART_LIMIT {
            bail!(
                "{} is {size} bytes, over the {PART_LIMIT} a device call can carry",
                part.display()
            );
        }
    }

    println!(
        "\nOn a session lent a device (its `status` says can_start_another), make these two `run` \
         calls one right after the other (the machine stays warm for 30 s between them):\n\n\
         1. carry [\"gpu-check/a\"], timeout_s 120:\n   \
            mkdir -p /tmp/gc && cp -r gpu-check/a/. /tmp/gc/ && du -sh /tmp/gc\n\n\
         2. carry [\"gpu-check/b\"], timeout_s 540:\n   \
            cp -r gpu-check/b/. /tmp/gc/ && PYTHONUNBUFFERED=1 python3 /tmp/gc/gpu_check.py\n\n\
         The second prints the table; $OUT/gpu-check.json comes back with every step's output. \
         Put the table in the README's GPU section and call give_back."
    );
    if dry_run {
        return Ok(());
    }
    rehearse(&a, &b)
}

/// Unpacks the bundle into a temporary /tmp/gc-like folder and runs the script there against
/// Mesa's software Vulkan device, with small sizes.
fn rehearse(a: &Path, b: &Path) -> Result<()> {
    step("rehearsing the check here (Mesa's software Vulkan device, small sizes)");
    let gc = Path::new("/tmp/gc");
    let _ = fs::remove_dir_all(gc);
    fs::create_dir_all(gc)?;
    run(Command::new("cp").arg("-r").arg(a.join(".")).arg(gc))?;
    run(Command::new("cp").arg("-r").arg(b.join(".")).arg(gc))?;
    run(Command::new("python3")
        .arg(gc.join("gpu_check.py"))
        .env("GGML_VK_VISIBLE_DEVICES", "0")
        .env("DESKMATE_GPU_CHECK_QUICK", "1")
        .env("OUT", "/tmp/gc-out"))?;
    println!("rehearsal results: /tmp/gc-out/gpu-check.json");
    Ok(())
}

fn system_library(name: &str) -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ]
    .iter()
    .map(|dir| Path::new(dir).join(name))
    .find(|p| p.exists())
    .and_then(|p| p.canonicalize().ok())
}

fn folder_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            folder_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
