//! `deskmate` on llama.cpp's Vulkan backend, on Mesa's software Vulkan device (llvmpipe) where
//! the machine has no GPU: `GGML_VK_VISIBLE_DEVICES=0` names it, as llama.cpp skips CPU-type
//! Vulkan devices otherwise. Skipped, saying why, where the build or the machine has no Vulkan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, repo_models};

/// `deskmate ARGS` on `home` with Vulkan device 0 visible.
fn on_vulkan(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    command(home, args)
        .env("GGML_VK_VISIBLE_DEVICES", "0")
        .output()
        .unwrap()
}

#[test]
fn with_the_vulkan_device_named_every_layer_of_both_personas_is_on_it() {
    let home = tempfile::tempdir().unwrap();
    let persona = serde_json::json!({
        "path": repo_models().join("SmolLM2-135M-Instruct.Q4_1.gguf"),
        "n_ctx": 2048, "parallel": 2, "threads": 2
    });
    let config = serde_json::json!({"models": {"office": persona, "character": persona}});
    std::fs::write(home.path().join("config.json"), config.to_string()).unwrap();

    let info = on_vulkan(home.path(), &["info", "--json"]);
    assert!(info.status.success());
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let Some(device) = info["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["backend"] == "Vulkan" && d["gpu_index"] == 0)
        .cloned()
    else {
        let backends = info["backends"].to_string();
        assert!(
            !backends.contains("vulkan")
                || !std::path::Path::new("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json").exists(),
            "Vulkan is built in and Mesa's device is installed, yet llama.cpp lists none: {info}"
        );
        eprintln!("skipped: no Vulkan device (backends {backends}; Debian: mesa-vulkan-drivers)");
        return;
    };
    assert!(
        device["memory_total_bytes"].as_u64().unwrap() > 0,
        "{device}"
    );

    let out = on_vulkan(home.path(), &["models", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for entry in reports.as_array().unwrap() {
        let r = &entry["report"];
        assert_eq!(r["layers_on_gpu"], 30, "{r}");
        assert_eq!(r["layers_total"], 30, "{r}");
        let on = r["device"].as_str().unwrap();
        assert!(
            on.starts_with(device["name"].as_str().unwrap()),
            "{on} is not {device}"
        );
    }
    // Both personas name the same file with the same parameters: one copy on the device.
    assert_eq!(reports[1]["report"]["shared_with"], "office");

    // And the text report says so too.
    let out = on_vulkan(home.path(), &["models"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("30/30 on the GPU (on Vulkan0"), "{text}");
}
