#!/usr/bin/env python3
"""Deskmate's GPU check, run on a lent NVIDIA machine by `cargo xtask gpu-check`'s second call.

It expects the bundle in /tmp/gc (bin/*.xz, lib/, the model in two parts) and $OUT for the
results. Each step has its own time limit and is recorded whether it passes or not; the whole
check is sized to end within 8 minutes. It prints one table and writes $OUT/gpu-check.json.
"""
import glob
import json
import lzma
import os
import shutil
import subprocess
import sys
import time

GC = "/tmp/gc"
OUT = os.environ.get("OUT", "/tmp/gc-out")
MODEL = os.path.join(GC, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
# KV cache bytes per token of the test model: 30 layers x (K + V) x 192 x f16.
KV_BYTES_PER_TOKEN = 30 * 2 * 192 * 2
THREADS = str(os.cpu_count() or 4)
# The rehearsal on a machine without a GPU (`cargo xtask gpu-check` without --dry-run): Mesa's
# software device computes slowly, so the sizes shrink and the forced out-of-memory is skipped.
QUICK = os.environ.get("DESKMATE_GPU_CHECK_QUICK") == "1"
PP, TG, REPS = ("32", "8", "1") if QUICK else ("512", "128", "3")

results = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "steps": {}}


def unpack():
    os.makedirs(os.path.join(GC, "models"), exist_ok=True)
    for packed in glob.glob(os.path.join(GC, "bin", "*.xz")):
        exe = packed[: -len(".xz")]
        with lzma.open(packed) as src, open(exe, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(exe, 0o755)
        os.remove(packed)
    parts = sorted(glob.glob(os.path.join(GC, "model.part-*")))
    if parts:
        with open(MODEL, "wb") as dst:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, dst)
                os.remove(part)


def environment(visible_vulkan=True):
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.path.join(GC, "lib") + ":" + env.get("LD_LIBRARY_PATH", "")
    icd = "/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json"
    if os.path.exists(icd) and "VK_DRIVER_FILES" not in env:
        env["VK_DRIVER_FILES"] = icd
    home = os.path.join(GC, "home")
    env["DESKMATE_CONFIG"] = os.path.join(home, "config.json")
    env["DESKMATE_DATA_DIR"] = os.path.join(home, "data")
    env["DESKMATE_MODELS_DIR"] = os.path.join(GC, "models")
    return env


def step(name, argv, timeout, env=None, parse_json=True):
    started = time.time()
    record = {"command": " ".join(argv)}
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           env=env or environment())
        record["exit"] = p.returncode
        record["stderr_tail"] = p.stderr[-3000:]
        if parse_json:
            try:
                start = min(i for i in (p.stdout.find("{"), p.stdout.find("[")) if i >= 0)
                record["json"] = json.loads(p.stdout[start:])
            except (ValueError, json.JSONDecodeError):
                record["stdout_tail"] = p.stdout[-3000:]
        else:
            record["stdout_tail"] = p.stdout[-3000:]
    except subprocess.TimeoutExpired:
        record["exit"] = "timeout"
    except OSError as e:
        record["exit"] = f"could not start: {e}"
    record["seconds"] = round(time.time() - started, 1)
    results["steps"][name] = record
    print(f"[{record['seconds']:6.1f}s] {name}: exit {record['exit']}", flush=True)
    return record.get("json")


def write_config(persona_overrides):
    base = {"path": MODEL, "n_ctx": 4096, "parallel": 2, "threads": int(THREADS),
            "sampling": {"temperature": 0.0, "max_tokens": 32}}
    models = {p: dict(base, **persona_overrides.get(p, {})) for p in ("office", "character")}
    home = os.path.join(GC, "home")
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "config.json"), "w") as f:
        json.dump({"models": models}, f)


def main():
    unpack()
    dm = os.path.join(GC, "bin", "deskmate")
    bench = os.path.join(GC, "bin", "llama-bench")
    write_config({})
    step("nvidia-smi", ["nvidia-smi", "--query-gpu=name,memory.total,memory.free,driver_version",
                        "--format=csv"], 30, parse_json=False)
    info = step("deskmate info", [dm, "info", "--json"], 60)
    gpu = step("deskmate gpu (NVML)", [dm, "gpu", "--json"], 60)
    models = step("both personas on the GPU", [dm, "models", "--json"], 120)

    vulkan = next((d for d in (info or {}).get("devices", [])
                   if d.get("gpu_index") == 0), None)
    free = (vulkan or {}).get("memory_free_bytes") or 0
    if free and not QUICK:
        # A context whose KV cache is 15% larger than the free memory: only part of the model
        # fits. With "auto" both fit predictions are made and the first attempt shows whether
        # the chosen one was right; with every layer asked for, the first attempt must fail on
        # the device and the back-off must find a placement.
        n_ctx = int(free * 1.15 / KV_BYTES_PER_TOKEN) // 1024 * 1024
        big = {"n_ctx": n_ctx, "parallel": 1, "flash_attn": True}
        write_config({"office": dict(big, n_gpu_layers="auto"),
                      "character": {"path": MODEL, "n_ctx": 1024}})
        step("partial fit: predictions against what loads", [dm, "models", "--json"], 180)
        write_config({"office": dict(big, n_gpu_layers=30),
                      "character": {"path": MODEL, "n_ctx": 1024}})
        step("forced out-of-memory back-off", [dm, "models", "--json"], 180)
        write_config({})

    bench_args = ["-m", MODEL, "-t", THREADS, "-p", PP, "-n", TG, "-b", "512",
                  "-ub", "512", "-r", REPS, "-o", "json", "-ngl", "99"]
    reference = step("llama-bench (Vulkan)", [bench] + bench_args, 180)
    engine = step("engine benchmark (Vulkan)",
                  [dm, "bench-engine", "--model", MODEL, "--threads", THREADS,
                   "--prompt-tokens", PP, "--gen-tokens", TG, "--batch", "512",
                   "--repetitions", REPS, "--speed-only"], 180)
    # Prompt-lookup decoding where a drafted row costs little: greedy, with and without, on the
    # grounded task (repeat a section of the Debian constitution) and open chat.
    lookup = step("lookup decoding (GPU)",
                  [dm, "bench-engine", "--model", MODEL, "--threads", THREADS,
                   "--gen-tokens", TG, "--repetitions", REPS, "--lookup-only",
                   "--grounded-text", os.path.join(GC, "debian-constitution.txt")], 240)

    table = []

    def row(what, value):
        table.append((what, value))

    if vulkan:
        row("device (llama.cpp)", f"{vulkan['name']} {vulkan['description']}, "
            f"{vulkan['memory_free_bytes'] / 2**30:.1f} of {vulkan['memory_total_bytes'] / 2**30:.1f} GiB free")
    else:
        row("device (llama.cpp)", "no GPU listed")
    for g in (gpu or {}).get("gpus", []):
        source = f"listed by {g['listed_by']}" if g.get("listed_by") else "NVML"
        row(f"GPU {g.get('index')} ({source})", f"{g.get('name')}, {g.get('temperature_c')} C, "
            f"{g.get('power_watts')} W")
    for m in models or []:
        r = m.get("report") or {}
        row(f"{m.get('persona')} model", f"{r.get('layers_on_gpu')}/{r.get('layers_total')} layers on "
            f"{r.get('device')}, fit {r.get('fit')}")
    partial = results["steps"].get("partial fit: predictions against what loads", {}).get("json") or []
    for m in partial[:1]:
        r = m.get("report") or {}
        row("partial fit", f"predicted {r.get('fit')}; attempts "
            + ", ".join(f"{a['gpu_layers']}:{'ok' if not a.get('failure') else 'oom'}"
                        for a in r.get("attempts", [])))
    oom = results["steps"].get("forced out-of-memory back-off", {}).get("json") or []
    for m in oom[:1]:
        for i, a in enumerate((m.get("report") or {}).get("attempts", []), 1):
            failure = a.get("failure") or {}
            row(f"OOM attempt {i}", f"{a['gpu_layers']} layers, n_ctx {a['n_ctx']}: "
                f"{failure.get('reason', 'loaded')[:120]}")
    try:
        pp = next(r["avg_ts"] for r in reference if r.get("n_prompt") and not r.get("n_gen"))
        tg = next(r["avg_ts"] for r in reference if r.get("n_gen") and not r.get("n_prompt"))
        ours_pp = engine["prompt"]["tokens_per_s"]
        ours_tg = engine["generation"]["tokens_per_s"]
        row(f"prompt pp{PP} (engine / llama-bench)", f"{ours_pp:.0f} / {pp:.0f} t/s = {ours_pp / pp:.3f}")
        row(f"generation tg{TG} (engine / llama-bench)", f"{ours_tg:.0f} / {tg:.0f} t/s = {ours_tg / tg:.3f}")
        results["ratios"] = {"prompt": ours_pp / pp, "generation": ours_tg / tg}
    except (TypeError, KeyError, StopIteration):
        row("benchmark", "incomplete: see gpu-check.json")
    for task in ("grounded", "chat"):
        r = ((lookup or {}).get("lookup") or {}).get(task)
        if r:
            row(f"lookup decoding, {task} (with / without)",
                f"{r['lookup_tokens_per_s']:.0f} / {r['plain_tokens_per_s']:.0f} t/s = {r['ratio']:.3f}, "
                f"{r['tokens_per_step']:.2f} tokens per decode, {r['identical_replies']} of {r['pairs']} identical")
            results.setdefault("ratios", {})[f"lookup_decoding_{task}"] = r["ratio"]
        else:
            row(f"lookup decoding, {task}", "incomplete: see gpu-check.json")

    results["table"] = table
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "gpu-check.json"), "w") as f:
        json.dump(results, f, indent=2)
    width = max(len(w) for w, _ in table)
    print()
    for what, value in table:
        print(f"| {what:<{width}} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
