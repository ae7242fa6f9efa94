//! llama.cpp's own `llama-server`, built against the very llama.cpp the engine links.
//!
//! Some tests run Deskmate against a real OpenAI-compatible server (`DESKMATE_TEST_LLAMA_SERVER`
//! names the executable). llama.cpp's `llama-server` is the reference implementation of that
//! API for GGUF models, and building it here, from the same source as [`crate::llama_bench`],
//! keeps those tests offline and reproducible: no prebuilt binary, no second llama.cpp checkout
//! or CMake build, and the server runs the same llama/ggml/common object code as the engine.
//!
//! - The server sources (`tools/server`: the `server-context` library's `server-*.cpp`, plus
//!   `server.cpp`, `server-http.cpp`, `server-models.cpp` and `main.cpp`, as its
//!   `CMakeLists.txt` lists them, and its headers) are not shipped by `llama-cpp-sys-2`; they are
//!   extracted from the pinned `llama-cpp-python` sdist that [`crate::llama_bench`] fetches (one
//!   shared download under `<target>/bench/sdist/`).
//! - The web UI (`llama-ui`, built with npm or downloaded at CMake time) is left out: `ui.h` and
//!   `ui.cpp` are generated from the sdist's `tools/ui/{ui.h.in,ui.cpp.in}` the way
//!   `scripts/ui-assets.cmake` generates them for an empty asset directory, so the server serves
//!   the API only.
//! - They are compiled against the headers of the sys crate's own llama.cpp (plus
//!   `tools/server`, the sys crate's `tools/mtmd` and the generated UI directory), with the
//!   compiler and flags of that build's `common` library, and linked against the sys crate's
//!   static libraries (`libllama`, `libggml*`, `libllama-common*`, `libmtmd`, `libcpp-httplib`,
//!   ...), exactly as `llama-bench` is.
//! - The sdist's llama.cpp is slightly older than the sys crate's, and two lines of the server
//!   do not compile against the newer headers. They are rewritten before compiling
//!   ([`PATCHES`]); each rewrite must match exactly once, so a new sdist fails loudly instead of
//!   being patched blindly. Taking the sdist's own header instead would not do: the sys
//!   crate's `libmtmd` returns a different type from `mtmd_get_memory_usage`.
//!
//! The result is cached under `<target>/bench/llama-server/` and rebuilt only when it is missing
//! or when the sys crate's libraries it was linked against (or this recipe) have changed.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::llama_bench::{self, SysBuild, SDIST_VERSION};

/// `tools/server` sources of the `server-context`, `llama-server-impl` and `llama-server`
/// targets of the sdist's `tools/server/CMakeLists.txt`, the slowest to compile first so that
/// parallel compilers finish together.
const SERVER_SOURCES: [&str; 13] = [
    "server-context.cpp",
    "server-tools.cpp",
    "server-models.cpp",
    "server-task.cpp",
    "server-common.cpp",
    "server-http.cpp",
    "server.cpp",
    "server-stream.cpp",
    "server-queue.cpp",
    "server-schema.cpp",
    "server-chat.cpp",
    "server-mcp.cpp",
    "main.cpp",
];
/// The templates `scripts/ui-assets.cmake` fills in, in the sdist's `tools/ui`.
const UI_TEMPLATES: [&str; 2] = ["ui.h.in", "ui.cpp.in"];
/// `@VAR@` values `scripts/ui-assets.cmake` sets for an asset directory without `index.html`
/// (no assets, no gzip). Its one `#cmakedefine` (`LLAMA_UI_HAS_ASSETS`) is then false.
const EMPTY_UI_VARS: [(&str, &str); 4] = [
    ("N_ASSETS", "0"),
    ("ASSET_ARRAYS", ""),
    ("ASSET_TABLE", ""),
    ("USE_GZIP", "false"),
];

/// A source line of the sdist rewritten so that it compiles against the sys crate's headers.
struct Patch {
    file: &'static str,
    from: &'static str,
    to: &'static str,
}

/// Where the sdist's server (llama.cpp 0.5) and the sys crate's llama.cpp (0.6) disagree.
const PATCHES: [Patch; 2] = [
    // The sys crate's mtmd.h returns `struct mtmd_memory_usage`, whose `backend_mem_usage` is
    // the per-device map the sdist's mtmd.h returned directly (only read with --mmproj and
    // --fit).
    Patch {
        file: "server-context.cpp",
        from: "auto mmproj_mem = mtmd_get_memory_usage(mmproj_path.c_str(), mparams);",
        to: "auto mmproj_mem = mtmd_get_memory_usage(mmproj_path.c_str(), mparams)\
             .backend_mem_usage;",
    },
    // `fs_open_ifstream` (the sdist's common.h) is not in the sys crate's common; off Windows
    // it is exactly `std::ifstream(fname, mode)` (only used with --mcp-config).
    Patch {
        file: "server-mcp.cpp",
        from: "std::ifstream f = fs_open_ifstream(params.mcp_servers_config, std::ios::in);",
        to: "std::ifstream f(params.mcp_servers_config, std::ios::in);",
    },
];

/// Returns the path of a `llama-server` executable built against the llama.cpp of the newest
/// `llama-cpp-sys-2` build under `target_dir/{debug,release}/build`, building it first when it
/// is missing or stale. Needs what [`llama_bench::build`] needs: `python3` with `pip` (to fetch
/// the sdist), GNU `tar`, and the C++ compiler the sys crate was built with.
pub fn build(repo_root: &Path, target_dir: &Path) -> Result<PathBuf> {
    llama_bench::check_locked_sys_version(repo_root)?;
    let sys = SysBuild::find(target_dir)?;

    let cache = target_dir.join("bench").join("llama-server");
    let exe = cache.join("llama-server");
    let stamp_path = cache.join("llama-server.stamp");
    let src_dir = cache.join("src");
    let ui_dir = cache.join("ui");
    // Searched before the `common` library's own include directories, as CMake orders them for
    // the server's targets.
    let include_dirs = [
        src_dir.clone(),
        ui_dir.clone(),
        sys.source_dir.join("tools").join("mtmd"),
        sys.source_dir.clone(),
    ];
    let stamp = stamp(&sys, &include_dirs)?;
    if llama_bench::is_fresh(&exe, &stamp_path, &stamp) {
        return Ok(exe);
    }

    println!(
        "==> building llama-server (llama-cpp-python {SDIST_VERSION} server, no web UI) against {}",
        sys.out_dir.display()
    );
    let started = Instant::now();
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let sdist = llama_bench::fetch_sdist(target_dir)?;

    let mut names: Vec<&str> = SERVER_SOURCES.to_vec();
    names.push("*.h");
    llama_bench::extract_sdist_files(&sdist, "tools/server", &names, &src_dir)?;
    for patch in &PATCHES {
        let path = src_dir.join(patch.file);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        fs::write(&path, patched(&text, patch)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }

    let templates = cache.join("ui-templates");
    llama_bench::extract_sdist_files(&sdist, "tools/ui", &UI_TEMPLATES, &templates)?;
    fs::create_dir_all(&ui_dir).with_context(|| format!("creating {}", ui_dir.display()))?;
    for template in UI_TEMPLATES {
        let from = templates.join(template);
        let text =
            fs::read_to_string(&from).with_context(|| format!("reading {}", from.display()))?;
        let to = ui_dir.join(template.trim_end_matches(".in"));
        let text = configure_empty_ui(&text).with_context(|| format!("filling {template}"))?;
        fs::write(&to, text).with_context(|| format!("writing {}", to.display()))?;
    }

    let obj_dir = cache.join("obj");
    let mut units = llama_bench::object_units(&src_dir, &SERVER_SOURCES, &obj_dir)?;
    units.extend(llama_bench::object_units(&ui_dir, &["ui.cpp"], &obj_dir)?);
    llama_bench::compile_all(&sys, &include_dirs, &units)?;
    let objects: Vec<PathBuf> = units.into_iter().map(|(_, object)| object).collect();
    llama_bench::link_checked(&sys, &objects, &exe, &stamp_path, &stamp)?;
    println!(
        "    built {} in {:.1}s",
        exe.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(exe)
}

/// The sys build's stamp plus everything this module adds to the recipe.
fn stamp(sys: &SysBuild, include_dirs: &[PathBuf]) -> Result<String> {
    let mut s = sys.stamp()?;
    s.push_str(&format!("llama-server {}\n", SERVER_SOURCES.join(" ")));
    for dir in include_dirs {
        s.push_str(&format!("include {}\n", dir.display()));
    }
    for patch in &PATCHES {
        s.push_str(&format!(
            "patch {}: {} => {}\n",
            patch.file, patch.from, patch.to
        ));
    }
    for (var, value) in EMPTY_UI_VARS {
        s.push_str(&format!("ui {var}={value}\n"));
    }
    Ok(s)
}

/// `text` with `patch.from` replaced by `patch.to`; fails unless it occurs exactly once.
fn patched(text: &str, patch: &Patch) -> Result<String> {
    let found = text.matches(patch.from).count();
    if found != 1 {
        bail!(
            "the sdist's tools/server/{} has `{}` {found} times instead of once: the \
             llama-cpp-python sdist changed, so review PATCHES in xtask/src/llama_server.rs",
            patch.file,
            patch.from
        );
    }
    Ok(text.replacen(patch.from, patch.to, 1))
}

/// CMake's `configure_file(... @ONLY)` of a UI template with [`EMPTY_UI_VARS`]: `@VAR@` becomes
/// its value and `#cmakedefine VAR ...` becomes `/* #undef VAR */` (no such variable is true for
/// zero assets). Fails on a placeholder it does not know.
fn configure_empty_ui(template: &str) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    for line in template.split_inclusive('\n') {
        match line.trim_start().strip_prefix("#cmakedefine ") {
            Some(rest) => {
                let var = rest
                    .split_whitespace()
                    .next()
                    .with_context(|| format!("`{}` names no variable", line.trim_end()))?;
                out.push_str(&format!("/* #undef {var} */"));
                if line.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    for (var, value) in EMPTY_UI_VARS {
        out = out.replace(&format!("@{var}@"), value);
    }
    if let Some(left) = placeholder(&out) {
        bail!("unknown placeholder @{left}@ (scripts/ui-assets.cmake changed?)");
    }
    Ok(out)
}

/// The name of the first `@NAME@` left in `text`, if any.
fn placeholder(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(start) = rest.find('@') {
        let after = &rest[start + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if len > 0 && after[len..].starts_with('@') {
            return Some(&after[..len]);
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_ui_templates_for_no_assets() -> Result<()> {
        let h = "#pragma once\n#cmakedefine LLAMA_UI_HAS_ASSETS 1\n\
                 const std::array<llama_ui_asset, @N_ASSETS@> & llama_ui_get_assets();\n";
        assert_eq!(
            configure_empty_ui(h)?,
            "#pragma once\n/* #undef LLAMA_UI_HAS_ASSETS */\n\
             const std::array<llama_ui_asset, 0> & llama_ui_get_assets();\n"
        );
        let cpp = "@ASSET_ARRAYS@\n{{\n@ASSET_TABLE@\n}};\nreturn @USE_GZIP@;";
        assert_eq!(configure_empty_ui(cpp)?, "\n{{\n\n}};\nreturn false;");
        assert!(configure_empty_ui("x = @NEW_THING@;\n").is_err());
        // An e-mail address or a lone @ is not a placeholder.
        assert_eq!(configure_empty_ui("// a@b.c @ x\n")?, "// a@b.c @ x\n");
        Ok(())
    }

    #[test]
    fn patches_apply_exactly_once() -> Result<()> {
        let patch = &PATCHES[1];
        let text = format!("a\n        {}\nb\n", patch.from);
        assert_eq!(
            patched(&text, patch)?,
            format!("a\n        {}\nb\n", patch.to)
        );
        assert!(patched("nothing here", patch).is_err());
        assert!(patched(&format!("{0}\n{0}\n", patch.from), patch).is_err());
        Ok(())
    }
}
