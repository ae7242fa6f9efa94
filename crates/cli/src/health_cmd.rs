//! `deskmate gpu` and `deskmate info`: the GPU monitor's samples and what this installation is.

use std::io::Write;
use std::time::Duration;

use deskmate_core::gpu::{MonitorSample, Sampler, WarningKind, CPU_WARMUP};
use deskmate_core::paths::Paths;
use deskmate_core::startup::Startup;

const GIB: f64 = (1u64 << 30) as f64;

fn gib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / GIB)
}

fn or_dash<T: std::fmt::Display>(value: Option<T>, unit: &str) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{v}{unit}"))
}

/// Prints one sample (or one per interval with `watch`, until interrupted).
pub fn gpu(paths: &Paths, json: bool, watch: bool) -> anyhow::Result<()> {
    let config = deskmate_core::config::load_or_init(&paths.config_file)?;
    for problem in &config.problems {
        eprintln!(
            "warning: {}: {problem} (using the default)",
            paths.config_file.display()
        );
    }
    let monitor = config.config.monitor.clone();
    let interval = Duration::from_millis(u64::from(monitor.interval_ms));
    let mut sampler = Sampler::nvml(monitor);
    std::thread::sleep(CPU_WARMUP);
    let mut out = std::io::stdout().lock();
    loop {
        let sample = sampler.sample();
        if json {
            // One JSON document per line, so `--watch --json` is a stream a program can read.
            writeln!(out, "{}", serde_json::to_string(&sample)?)?;
        } else {
            write_sample(&mut out, &sample)?;
        }
        out.flush()?;
        if !watch {
            return Ok(());
        }
        std::thread::sleep(interval);
        if !json {
            writeln!(out)?;
        }
    }
}

fn write_sample(out: &mut impl Write, s: &MonitorSample) -> std::io::Result<()> {
    if !s.available {
        writeln!(
            out,
            "GPU   not available: {}",
            s.reason.as_deref().unwrap_or("unknown reason")
        )?;
    } else if s.gpus.is_empty() {
        writeln!(out, "GPU   NVML found no GPU")?;
    }
    for g in &s.gpus {
        let vram = match (g.vram_used_bytes, g.vram_total_bytes) {
            (Some(used), Some(total)) if total > 0 => {
                format!(
                    "{} / {} GiB ({:.0}%)",
                    gib(used),
                    gib(total),
                    used as f64 * 100.0 / total as f64
                )
            }
            _ => "—".to_owned(),
        };
        writeln!(out, "GPU {}  {}", g.index, g.name)?;
        writeln!(
            out,
            "      VRAM {vram}, used by Deskmate {}",
            g.process_vram_bytes.map_or("—".into(), gib)
        )?;
        writeln!(
            out,
            "      util {} (memory {}), power {} / {}, {}, fan {}",
            or_dash(g.gpu_util_percent, "%"),
            or_dash(g.mem_util_percent, "%"),
            or_dash(g.power_watts.map(|w| format!("{w:.0}")), " W"),
            or_dash(g.power_limit_watts.map(|w| format!("{w:.0}")), " W"),
            or_dash(g.temperature_c, " °C"),
            or_dash(g.fan_percent, "%"),
        )?;
        writeln!(
            out,
            "      clocks graphics {}, SM {}, memory {}",
            or_dash(g.clock_graphics_mhz, " MHz"),
            or_dash(g.clock_sm_mhz, " MHz"),
            or_dash(g.clock_memory_mhz, " MHz"),
        )?;
    }
    let sys = &s.system;
    writeln!(
        out,
        "CPU   {:.1}% of {} cores",
        sys.cpu_percent, sys.cpu_count
    )?;
    let ram_percent = if sys.ram_total_bytes > 0 {
        sys.ram_used_bytes as f64 * 100.0 / sys.ram_total_bytes as f64
    } else {
        0.0
    };
    writeln!(
        out,
        "RAM   {} / {} GiB ({ram_percent:.0}%)",
        gib(sys.ram_used_bytes),
        gib(sys.ram_total_bytes)
    )?;
    for w in &s.warnings {
        match w.kind {
            WarningKind::Temperature => writeln!(
                out,
                "warning: GPU {} is at {:.0} °C (warning at {:.0} °C)",
                w.gpu_index, w.value, w.threshold
            )?,
            WarningKind::Vram => writeln!(
                out,
                "warning: GPU {} VRAM is {:.1}% full (warning at {:.0}%)",
                w.gpu_index, w.value, w.threshold
            )?,
        }
    }
    Ok(())
}

/// Versions, compiled-in backends, models, data paths and the GPUs.
pub fn info(paths: &Paths, json: bool) -> anyhow::Result<()> {
    let startup = Startup::open_paths(paths.clone())?;
    let status = startup.status();
    let mut sampler = Sampler::nvml(startup.config.config.monitor.clone());
    let gpu = sampler.sample();
    let backends = deskmate_core::compiled_backends();
    let devices = deskmate_core::engine::devices::list();
    if json {
        let report = serde_json::json!({
            "version": status.version,
            "backends": backends,
            "devices": devices,
            "paths": status.paths,
            "config": {
                "source": status.config_source,
                "problems": status.config_problems,
            },
            "store": status.store,
            "models": status.models.iter().map(|m| serde_json::json!({
                "role": m.role,
                "configured": m.configured,
                "path": m.resolved_path,
                "installed": m.installed,
                "size_bytes": m.size_bytes,
                "load_report": serde_json::Value::Null,
            })).collect::<Vec<_>>(),
            "gpu": {
                "available": gpu.available,
                "reason": gpu.reason,
                "gpus": gpu.gpus.iter().map(|g| serde_json::json!({
                    "index": g.index,
                    "name": g.name,
                    "vram_total_bytes": g.vram_total_bytes,
                })).collect::<Vec<_>>(),
            },
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("Deskmate {}", status.version);
    println!("backends     {}", backends.join(", "));
    println!("devices      (llama.cpp's device list; main_gpu numbers the offload targets)");
    for d in &devices {
        let target = d
            .gpu_index
            .map_or_else(|| "  ".to_owned(), |i| format!("#{i}"));
        let memory = if d.memory_total_bytes > 0 {
            format!(
                "{} GiB free of {} GiB",
                gib(d.memory_free_bytes),
                gib(d.memory_total_bytes)
            )
        } else {
            "memory not reported".to_owned()
        };
        println!(
            "  {target} {:<8} {:<8} {:<4} {memory}  {}",
            d.name,
            d.backend,
            d.kind.as_str(),
            d.description
        );
    }
    if !devices.iter().any(|d| d.gpu_index.is_some()) {
        println!("  no GPU for llama.cpp: the models run on the CPU");
    }
    let source = match status.config_source {
        deskmate_core::config::ConfigSource::User => "in use",
        deskmate_core::config::ConfigSource::CreatedFromDefault => "just created from the default",
        deskmate_core::config::ConfigSource::BuiltinDefault => {
            "has problems: running on the defaults"
        }
    };
    println!(
        "config file  {} ({source})",
        status.paths.config_file.display()
    );
    for problem in &status.config_problems {
        println!("  problem: {problem}");
    }
    println!("data dir     {}", status.paths.data_dir.display());
    println!("models dir   {}", status.paths.models_dir.display());
    match (&status.store.error, status.store.schema_version) {
        (Some(e), _) => println!(
            "database     {} (cannot open: {})",
            status.paths.database.display(),
            e
        ),
        (None, Some(v)) => println!(
            "database     {} (schema {v})",
            status.paths.database.display()
        ),
        (None, None) => println!("database     {}", status.paths.database.display()),
    }
    println!("models:");
    for m in &status.models {
        let state = match m.size_bytes {
            Some(bytes) if m.installed => format!("installed, {:.0} MB", bytes as f64 / 1e6),
            _ => "missing".to_owned(),
        };
        println!(
            "  {:<10} {} ({state})",
            format!("{:?}", m.role).to_lowercase(),
            m.resolved_path
        );
    }
    if gpu.available {
        for g in &gpu.gpus {
            println!(
                "GPU {}        {} ({} GiB)",
                g.index,
                g.name,
                g.vram_total_bytes.map_or("—".into(), gib)
            );
        }
    } else {
        println!(
            "GPU          none: {}",
            gpu.reason.as_deref().unwrap_or("unknown reason")
        );
    }
    Ok(())
}
