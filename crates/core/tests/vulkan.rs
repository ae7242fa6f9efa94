//! The real GPU code path, without a GPU: llama.cpp's Vulkan backend on Mesa's software Vulkan
//! device (llvmpipe, Debian `mesa-vulkan-drivers`). Weights, KV cache and compute go through the
//! same Vulkan buffers, shaders and queues as on a graphics card; only the speed differs.
//!
//! llama.cpp skips CPU-type Vulkan devices unless `GGML_VK_VISIBLE_DEVICES` names them (its own
//! CI runs its Vulkan tests the same way), so [`lavapipe`] names device 0 before ggml builds its
//! device registry. Where the build has no Vulkan backend or Mesa's drivers are not installed,
//! each test says it was skipped; where they are, a missing device fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Once;

use deskmate_core::config::{AutoOr, ModelConfig, Sampling};
use deskmate_core::engine::devices::{self, ComputeDevice};
use deskmate_core::engine::fit::FitSource;
use deskmate_core::engine::{ChatMessage, ChatRequest, Engine, GenerationEvent};
use deskmate_core::store::{Persona, Role};

mod common;
use common::model;

const SMOL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

static NAME_LAVAPIPE: Once = Once::new();

/// llvmpipe as llama.cpp's Vulkan device 0, or `None` (and a line saying why) where this build or
/// machine cannot have it.
///
/// ggml reads both variables once, when it builds its device registry; every test calls this
/// before touching the engine, so the registry is built after they are set.
/// `GGML_OP_OFFLOAD_MIN_BATCH` keeps the big batches of layers left on the CPU off the device, so
/// a CPU-only load in this process is a true CPU reference.
fn lavapipe() -> Option<ComputeDevice> {
    NAME_LAVAPIPE.call_once(|| {
        std::env::set_var("GGML_VK_VISIBLE_DEVICES", "0");
        std::env::set_var("GGML_OP_OFFLOAD_MIN_BATCH", "1000000000");
    });
    let listed = devices::list();
    if let Some(device) = listed
        .iter()
        .find(|d| d.backend == "Vulkan" && d.gpu_index == Some(0))
    {
        return Some(device.clone());
    }
    if !deskmate_core::compiled_backends().contains(&"vulkan") {
        eprintln!("skipped: this build has no Vulkan backend (feature `vulkan`)");
        return None;
    }
    let lavapipe_installed = std::fs::read_dir("/usr/share/vulkan/icd.d")
        .map(|dir| {
            dir.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("lvp_icd"))
        })
        .unwrap_or(false);
    if !lavapipe_installed {
        eprintln!(
            "skipped: Mesa's software Vulkan device is not installed (Debian: mesa-vulkan-drivers)"
        );
        return None;
    }
    panic!("llvmpipe is installed but llama.cpp lists no Vulkan device: {listed:?}");
}

fn config(n_gpu_layers: AutoOr<u32>, max_tokens: u32) -> ModelConfig {
    ModelConfig {
        n_ctx: 1024,
        n_batch: 256,
        parallel: 1,
        threads: AutoOr::Value(2),
        n_gpu_layers,
        sampling: Sampling {
            temperature: 0.0,
            max_tokens,
            ..Sampling::default()
        },
        ..ModelConfig::default()
    }
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::User, text)],
        sampling: None,
        ignore_eos: false,
        local_only: false,
    }
}

/// The reply's pieces as they streamed (one per token, except where a character spans tokens).
fn pieces(engine: &Engine, text: &str) -> Vec<String> {
    let mut generation = engine.submit(Persona::Office, ask(text)).unwrap();
    let mut pieces = Vec::new();
    loop {
        match generation.blocking_next().expect("the stream ended early") {
            GenerationEvent::Started { .. } => {}
            GenerationEvent::Text(t) => pieces.push(t),
            GenerationEvent::Finished(c) => {
                assert_eq!(pieces.concat(), c.text);
                return pieces;
            }
            GenerationEvent::Failed(e) => panic!("{e}"),
        }
    }
}

#[test]
fn every_layer_loads_on_the_vulkan_device_and_a_reply_streams() {
    let Some(device) = lavapipe() else { return };
    assert!(device.memory_total_bytes > 0, "{device:?}");
    let engine = Engine::new(None).unwrap();
    let report = engine
        .load(Persona::Office, &model(SMOL), &config(AutoOr::Auto, 12))
        .unwrap();
    assert_eq!(report.layers_total, 30);
    assert_eq!(report.layers_on_gpu, 30, "{report:?}");
    assert_eq!(report.gpu, Some(0));
    let on = report.device.clone().unwrap();
    assert!(on.starts_with("Vulkan0") && on.contains("llvmpipe"), "{on}");
    assert!(report.backend.contains("vulkan"), "{}", report.backend);
    assert_eq!(report.free_vram_bytes, Some(device.memory_free_bytes));
    // Both predictions were made and llama.cpp's gave the first attempt, which loaded.
    let fit = report.fit.unwrap();
    assert_eq!(fit.llama_cpp_layers, Some(30), "{fit:?}");
    assert_eq!(fit.deskmate_layers, 30, "{fit:?}");
    assert_eq!(fit.first_attempt, FitSource::LlamaCpp);
    assert_eq!(report.attempts.len(), 1, "{:?}", report.attempts);

    let streamed = pieces(&engine, "Count from 1 to 10.");
    assert!(streamed.len() >= 6, "{streamed:?}");
    assert!(streamed.concat().contains('3'), "{streamed:?}");
}

/// Greedy decoding on the Vulkan device against the CPU backend, same file and prompt.
///
/// Measured on llvmpipe (Mesa 22.3, 2 cores): with this test's settings both replies are
/// identical (24 of 24 tokens). Through `deskmate chat` (its system prompt, 48 tokens) the open
/// answer agreed for its first sentence and a half (about 20 tokens), then a near tie between two
/// words fell the other way: the shaders sum in a different order and precision than the CPU.
/// The tolerance is therefore: identical where the answer is determined, and a common prefix of
/// at least 16 tokens otherwise.
#[test]
fn greedy_tokens_on_the_vulkan_device_match_the_cpu() {
    if lavapipe().is_none() {
        return;
    }
    let determined = "Count from 1 to 10.";
    let open = "Write three sentences about the history of Paris.";

    let engine = Engine::new(None).unwrap();
    let cpu = engine
        .load(Persona::Office, &model(SMOL), &config(AutoOr::Value(0), 24))
        .unwrap();
    assert_eq!(cpu.layers_on_gpu, 0);
    let cpu_determined = pieces(&engine, determined);
    let cpu_open = pieces(&engine, open);

    let gpu = engine
        .load(Persona::Office, &model(SMOL), &config(AutoOr::Auto, 24))
        .unwrap();
    assert_eq!(gpu.layers_on_gpu, 30);
    let gpu_determined = pieces(&engine, determined);
    let gpu_open = pieces(&engine, open);

    assert_eq!(gpu_determined, cpu_determined);
    let common = cpu_open
        .iter()
        .zip(&gpu_open)
        .take_while(|(a, b)| a == b)
        .count();
    eprintln!(
        "greedy on Vulkan vs CPU: {common} of {} tokens in common on the open question",
        cpu_open.len()
    );
    assert!(
        common >= 16.min(cpu_open.len()),
        "only {common} tokens in common:\nCPU:    {:?}\nVulkan: {:?}",
        cpu_open.concat(),
        gpu_open.concat()
    );
}

const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";
/// The character's context in the out-of-memory test: its KV cache (about 400 MiB for Gemma 3
/// 270M, whose sliding-window layers keep only their window) is what the limit cannot hold.
const BIG_CONTEXT: u32 = 131_072;

/// The office model with every layer on the device, then a second, different model as the
/// character in what it left, then a short reply from the character. Prints the reports, the
/// reply and the process's peak virtual memory on one `OOM-RESULT` line: the out-of-memory test
/// ([`a_real_out_of_memory_backs_off_until_both_models_fit_and_a_reply_streams`]) runs this test
/// in processes of its own, with the character's context in `DESKMATE_OOM_CHARACTER_CTX` and
/// under a memory limit or not.
#[test]
fn two_different_models_share_the_device_and_the_character_answers() {
    if lavapipe().is_none() {
        return;
    }
    let scenario_ctx = std::env::var("DESKMATE_OOM_CHARACTER_CTX")
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    let character_ctx = scenario_ctx.unwrap_or(2048);
    let engine = Engine::new(None).unwrap();
    let office = engine
        .load(
            Persona::Office,
            &model(SMOL),
            &ModelConfig {
                n_ctx: 4096,
                ..config(AutoOr::Auto, 8)
            },
        )
        .unwrap();
    let character = engine
        .load(
            Persona::Character,
            &model(GEMMA),
            &ModelConfig {
                n_ctx: character_ctx,
                ..config(AutoOr::Auto, 4)
            },
        )
        .unwrap();
    // The measuring runs of the out-of-memory test skip the reply: on Mesa's device its first
    // decode compiles Gemma's shaders, which takes a minute on two cores.
    let reply = if std::env::var_os("DESKMATE_OOM_SKIP_REPLY").is_some() {
        String::new()
    } else {
        let mut generation = engine
            .submit(Persona::Character, ask("Say hello."))
            .unwrap();
        loop {
            match generation.blocking_next().expect("the stream ended early") {
                GenerationEvent::Finished(c) => break c.text,
                GenerationEvent::Failed(e) => panic!("{e}"),
                _ => {}
            }
        }
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let vm_peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    if scenario_ctx.is_none() {
        // On its own, with room to spare: both models wholly on the device at the first attempt.
        assert_eq!(office.layers_on_gpu, office.layers_total, "{office:?}");
        assert_eq!(
            character.layers_on_gpu, character.layers_total,
            "{character:?}"
        );
        assert_eq!(character.attempts.len(), 1, "{character:?}");
        assert!(character.shared_with.is_none());
        assert!(!reply.trim().is_empty());
    }
    let result = serde_json::json!({
        "office": office,
        "character": character,
        "reply": reply,
        "vm_peak_bytes": vm_peak_kib * 1024,
    });
    println!("OOM-RESULT {result}");
}

/// Runs [`two_different_models_share_the_device_and_the_character_answers`] in a new process,
/// under `prlimit --as` and with the character's reply when `limit` is given (the measuring runs
/// without a limit skip it).
fn scenario(character_ctx: u32, limit: Option<u64>) -> serde_json::Value {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match limit {
        Some(bytes) => {
            let mut cmd = std::process::Command::new("prlimit");
            cmd.arg(format!("--as={bytes}")).arg("--").arg(&exe);
            cmd
        }
        None => {
            let mut cmd = std::process::Command::new(&exe);
            cmd.env("DESKMATE_OOM_SKIP_REPLY", "1");
            cmd
        }
    };
    cmd.args([
        "--exact",
        "two_different_models_share_the_device_and_the_character_answers",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("DESKMATE_OOM_CHARACTER_CTX", character_ctx.to_string())
    // glibc reserves 128 MiB of address space per malloc arena; two arenas keep the process's
    // address space, which the limit counts, the same from run to run.
    .env("MALLOC_ARENA_MAX", "2");
    let out = cmd.output().expect("prlimit (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("OOM-RESULT ").map(|(_, json)| json))
        .unwrap_or_else(|| {
            panic!(
                "the scenario (context {character_ctx}, limit {limit:?}) printed no result:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).unwrap()
}

/// A real out-of-memory: the kernel refuses the allocation (an address-space limit on the
/// process, `prlimit --as`), so Mesa's Vulkan driver fails `vkAllocateMemory` and llama.cpp
/// reports it in its own words. Mesa's software device does not enforce its 2 GiB heap, so the
/// limit is what makes the device run out, as VRAM would.
///
/// The limit is measured, not guessed: the same scenario runs once with a small character
/// context and once with the big one, and the limit is set 70% of the way between their peaks.
/// The office model then loads whole, and the character's first attempt (every layer, the big
/// context) fails; the back-off goes down to the CPU and then halves the context, and the
/// character loads in what the office model left and answers.
#[test]
fn a_real_out_of_memory_backs_off_until_both_models_fit_and_a_reply_streams() {
    if lavapipe().is_none() {
        return;
    }
    let small = scenario(2048, None);
    let big = scenario(BIG_CONTEXT, None);
    assert_eq!(
        big["character"]["attempts"].as_array().unwrap().len(),
        1,
        "without a limit the big context loads at once: {}",
        big["character"]
    );
    let (low, high) = (
        small["vm_peak_bytes"].as_u64().unwrap(),
        big["vm_peak_bytes"].as_u64().unwrap(),
    );
    assert!(high > low + (100 << 20), "peaks {low} and {high}");
    let limit = low + (high - low) * 7 / 10;
    let limited = scenario(BIG_CONTEXT, Some(limit));

    let office = &limited["office"];
    assert_eq!(office["attempts"].as_array().unwrap().len(), 1, "{office}");
    assert_eq!(office["layers_on_gpu"], 30, "{office}");

    let character = &limited["character"];
    let attempts = character["attempts"].as_array().unwrap();
    eprintln!(
        "limit {} MiB (peaks {} and {} MiB); the character's attempts:",
        limit >> 20,
        low >> 20,
        high >> 20
    );
    for a in attempts {
        eprintln!(
            "  {} GPU layers, context {}: {}",
            a["gpu_layers"],
            a["n_ctx"],
            a["failure"]["reason"].as_str().unwrap_or("loaded")
        );
    }
    assert!(attempts.len() > 1, "{character}");
    let first = &attempts[0]["failure"];
    assert_eq!(first["out_of_memory"], true, "{first}");
    let reason = first["reason"].as_str().unwrap().to_ascii_lowercase();
    assert!(
        reason.contains("allocate") || reason.contains("memory"),
        "llama.cpp's words for the failure: {reason}"
    );
    let last = attempts.last().unwrap();
    assert!(last["failure"].is_null(), "{last}");
    assert!(
        last["n_ctx"].as_u64().unwrap() < u64::from(BIG_CONTEXT),
        "{last}"
    );
    assert!(
        !limited["reply"].as_str().unwrap().trim().is_empty(),
        "{limited}"
    );
}
