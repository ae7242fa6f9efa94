//! The Vulkan headers llama.cpp's Vulkan backend compiles against.
//!
//! ggml-vulkan uses Vulkan-Hpp types newer than Debian 12's headers (1.3.239 lacks
//! `vk::LayerSettingEXT`). `.cargo/config.toml` points `VULKAN_SDK` at `<repo>/.vulkan-sdk`, where
//! CMake's FindVulkan looks first; this module fills it:
//! - `include/`: the system's headers when they are new enough, otherwise the headers of Debian
//!   13's `libvulkan-dev` (pinned by version and sha256, from the Debian archive);
//! - `lib/libvulkan.so`: a link to the system's Vulkan loader, which is what the binaries load at
//!   run time (any loader ≥ 1.1 serves the newer headers; only the headers are pinned).
//!
//! glslc and SPIRV-Headers come from the system (`glslc`, `spirv-headers` packages).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// The oldest `VK_HEADER_VERSION` (of 1.3/1.4) the vendored ggml-vulkan compiles with: the
/// version that added `VK_EXT_layer_settings`.
const MIN_HEADER_VERSION: u32 = 261;
const PINNED_VERSION: &str = "1.4.309.0-1";
const PINNED_URL: &str =
    "http://deb.debian.org/debian/pool/main/v/vulkan-loader/libvulkan-dev_1.4.309.0-1_amd64.deb";
const PINNED_SHA256: &str = "8d329d465e16168afff58b1bd0dd6db46aac2cc3f56054a481b25a04e90b345a";

/// Makes `<root>/.vulkan-sdk` ready; quick when it already is.
pub fn ensure(root: &Path) -> Result<()> {
    let sdk = root.join(".vulkan-sdk");
    let stamp = sdk.join("SOURCE");
    let loader = system_loader().context(
        "the Vulkan loader (libvulkan.so.1) was not found: install it (Debian/Ubuntu: `sudo apt-get install libvulkan-dev`)",
    )?;
    let system_headers = Path::new("/usr/include/vulkan/vulkan_core.h");
    let wanted = match header_version(system_headers) {
        Some(v) if v >= MIN_HEADER_VERSION => "system".to_string(),
        _ => format!("debian libvulkan-dev {PINNED_VERSION}"),
    };
    let current = std::fs::read_to_string(&stamp).unwrap_or_default();
    let lib = sdk.join("lib").join("libvulkan.so");
    if current.trim() == wanted
        && sdk.join("include/vulkan/vulkan.hpp").is_file()
        && std::fs::read_link(&lib).is_ok_and(|l| l == loader)
    {
        println!("Vulkan headers: {wanted} in {}", sdk.display());
        return Ok(());
    }

    let _ = std::fs::remove_dir_all(&sdk);
    std::fs::create_dir_all(sdk.join("lib"))?;
    if wanted == "system" {
        std::os::unix::fs::symlink("/usr/include", sdk.join("include"))?;
    } else {
        println!(
            "the system's Vulkan headers are older than 1.3.{MIN_HEADER_VERSION}: \
             fetching {PINNED_URL}"
        );
        let deb = download_pinned(&sdk)?;
        let unpacked = sdk.join("unpacked");
        super::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked)).context(
            "dpkg-deb could not unpack the Vulkan headers; on a non-Debian system install \
             Vulkan headers 1.3.261 or newer, or set VULKAN_SDK in .cargo/config.toml",
        )?;
        std::fs::rename(unpacked.join("usr/include"), sdk.join("include"))?;
        let _ = std::fs::remove_dir_all(&unpacked);
        let _ = std::fs::remove_file(&deb);
    }
    std::os::unix::fs::symlink(&loader, &lib)?;
    std::fs::write(&stamp, format!("{wanted}\n"))?;
    println!("Vulkan headers: {wanted} in {}", sdk.display());
    Ok(())
}

fn download_pinned(dir: &Path) -> Result<PathBuf> {
    let deb = dir.join("libvulkan-dev.deb");
    super::run(
        Command::new("curl")
            .args(["--fail", "--silent", "--show-error", "--location"])
            .args(["--retry", "3", "--max-time", "300", "-o"])
            .arg(&deb)
            .arg(PINNED_URL),
    )
    .context(
        "downloading the Vulkan headers from the Debian archive (needs curl and deb.debian.org)",
    )?;
    let bytes = std::fs::read(&deb)?;
    let digest = hex(&Sha256::digest(&bytes));
    if digest != PINNED_SHA256 {
        let _ = std::fs::remove_file(&deb);
        bail!("{PINNED_URL} has sha256 {digest}, expected {PINNED_SHA256}: not used");
    }
    Ok(deb)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `VK_HEADER_VERSION` of a `vulkan_core.h`.
fn header_version(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        line.strip_prefix("#define VK_HEADER_VERSION ")
            .and_then(|v| v.trim().parse().ok())
    })
}

fn system_loader() -> Option<PathBuf> {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/libvulkan.so.1",
        "/usr/lib/aarch64-linux-gnu/libvulkan.so.1",
        "/usr/lib64/libvulkan.so.1",
        "/usr/lib/libvulkan.so.1",
    ];
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}
