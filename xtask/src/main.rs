//! `cargo xtask`: the project's two front doors and their helpers.
//!
//! - `cargo xtask run`: installs or checks what the app needs, builds it and opens it (or, with
//!   no display, starts the terminal chat).
//! - `cargo xtask test`: installs or checks what the tests need, then runs every test: formatting
//!   and lints, Rust unit and scenario tests, the UI's type check and unit tests, and the
//!   end-to-end tests of the built app under Xvfb.
//! - `cargo xtask models [--set default|test|all]`: installs model files into `models/`.
//! - `cargo xtask e2e`: only the end-to-end tests (builds the app first).
//! - `cargo xtask bench engine [--model PATH] [--quick]`: the engine benchmark against
//!   llama.cpp's `llama-bench` (see [`llama_bench`]).
//! - `cargo xtask bench api [--model PATH]`: the local API under 16 concurrent streams.
//! - `cargo xtask llama-server`: builds llama.cpp's `llama-server` against the engine's llama.cpp
//!   (see [`llama_server`]) and prints its path; `test` and `e2e` hand it to the tests.
//!
//! Every step says what it is doing; a missing prerequisite fails with the exact command that
//! installs it. Work happens in the repository root; `models/` there holds the model files.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

mod gpu_check;
mod llama_bench;
mod llama_server;
mod package;
mod vulkan_sdk;

/// Debian packages the app needs to build and run.
const APP_PACKAGES: &[&str] = &[
    "libwebkit2gtk-4.1-dev",
    "libasound2-dev",
    "cmake",
    "pkg-config",
    "build-essential",
    // llama-cpp-sys-2 generates its bindings with bindgen, which needs libclang.
    "clang",
    "libclang-dev",
    // llama.cpp's Vulkan backend (the default GPU backend): the loader, the shader compiler and
    // SPIR-V headers; the Vulkan headers themselves may be newer than the system's (vulkan_sdk.rs).
    "libvulkan-dev",
    "glslc",
    "spirv-headers",
    "curl",
    // Scanned PDFs and the text in attached images are read by Tesseract (Korean and English);
    // pdftoppm (poppler) renders a PDF page for it.
    "tesseract-ocr",
    "tesseract-ocr-kor",
    "poppler-utils",
];
/// The cargo packages of what a user runs: the window, the CLI and the speech helper. `run`
/// and `package` always build this selection, so each profile compiles llama.cpp once.
const SHIPPED_PACKAGES: &[&str] = &[
    "-p",
    "deskmate",
    "-p",
    "deskmate-cli",
    "-p",
    "deskmate-whisper",
];

/// Extra Debian packages for the end-to-end tests (the CJK fonts make Korean screenshots legible).
// espeak-ng speaks the sentences the speech tests transcribe.
const TEST_PACKAGES: &[&str] = &[
    "webkit2gtk-driver",
    "xvfb",
    "xauth",
    "fonts-noto-cjk",
    "espeak-ng",
    // Mesa's software Vulkan device (llvmpipe): the GPU tests run the real Vulkan code path on it.
    "mesa-vulkan-drivers",
    // pango-view renders Korean text into the "scanned" pages the OCR tests and benchmark read.
    "pango1.0-tools",
];

const USAGE: &str = "usage: cargo xtask <command>

commands:
  run                 check/install prerequisites, fetch the default models, build and open the app
                      (no display: start the terminal chat instead)
  test [--skip-lint]  check/install prerequisites and the test models, then run every test
  models [--set default|test|all]
                      install model files into models/ (mirror: DESKMATE_MODEL_MIRROR)
  e2e                 build the app and run only the end-to-end tests under Xvfb
  bench engine [--model PATH] [--quick] [--vulkan]
                      the engine's speed against llama.cpp's llama-bench, concurrency and the
                      prompt cache; writes target/bench/engine.json and engine.md. --vulkan: the
                      speed ratios with every layer on Vulkan device 0 (here Mesa's software
                      device), written to engine-vulkan.json and .md
  bench documents [--quick]
                      document ingest speed, query latency at 10k/100k chunks, HNSW recall and
                      retrieval quality (hybrid vs keyword vs vector) on a labeled ko+en set;
                      writes target/bench/documents.json and documents.md
  bench api [--model PATH]
                      16 concurrent streamed requests against 4 slots through the local API:
                      time to first token p50/p95 and throughput against one request alone;
                      writes target/bench/api.json and api.md
  gpu-check [--dry-run]
                      build the bundle for a lent NVIDIA machine (gpu-check/a and b) and print
                      the two device calls that run it; without --dry-run, also rehearse it here
                      on Mesa's software Vulkan device
  package [--test]    release build and Tauri's bundler: a .deb and an .rpm in
                      <target>/release/bundle; --test installs the .deb (root), runs the
                      installed app's first run through the UI, uninstalls and reinstalls it
                      (the user's data stays), and times its start-up
  vulkan-sdk          provision the Vulkan headers llama.cpp's Vulkan backend compiles against
                      (.vulkan-sdk/; `run` and `test` do it too)
  llama-server        build llama.cpp's llama-server against the engine's llama.cpp (the tests
                      run Deskmate against it) and print its path";

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run_app(),
        Some("test") => test_all(args.iter().any(|a| a == "--skip-lint")),
        Some("models") => {
            let set = flag_value(&args, "--set").unwrap_or("default");
            Repo::locate().and_then(|repo| repo.fetch_models(set))
        }
        Some("e2e") => Repo::locate().and_then(|repo| {
            repo.prerequisites(true)?;
            repo.build_app(true)?;
            let llama_server = repo.llama_server_for_tests();
            repo.e2e(llama_server.as_deref())
        }),
        Some("gpu-check") => Repo::locate().and_then(|repo| {
            repo.prerequisites(false)?;
            gpu_check::prepare(&repo, args.iter().any(|a| a == "--dry-run"))
        }),
        Some("package") => Repo::locate()
            .and_then(|repo| package::package(&repo, args.iter().any(|a| a == "--test"))),
        Some("vulkan-sdk") => Repo::locate().and_then(|repo| vulkan_sdk::ensure(&repo.root)),
        Some("llama-server") => Repo::locate().and_then(|repo| {
            let exe = llama_server::build(&repo.root, &repo.target_dir())?;
            println!("{}", exe.display());
            Ok(())
        }),
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("engine") => bench_engine(&args[2..]),
            Some("documents") => bench_documents(&args[2..]),
            Some("api") => bench_api(&args[2..]),
            _ => Err(anyhow::anyhow!(
                "usage: cargo xtask bench engine [--model PATH] [--quick]\n       cargo xtask bench documents [--quick]\n       cargo xtask bench api [--model PATH]"
            )),
        },
        Some("help" | "--help" | "-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command `{other}`\n\n{USAGE}")),
    };
    if let Err(e) = result {
        eprintln!("\nxtask: {e:#}");
        std::process::exit(1);
    }
}

fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// npm packages with real Korean office documents (see `Repo::test_documents`): the package,
/// its tarball's sha256 and the members the tests read.
const TEST_DOCUMENT_PACKAGES: &[(&str, &str, &[&str])] = &[
    (
        "node-hwp@0.1.0-alpha",
        "78dbb6b01246126f81f7f9319b8a2de18ee8fb49d277d76f85e464e0fcaaae5d",
        &[
            "package/test/files/kaist/kaist-055.hwp",
            "package/test/files/kaist/kaist-055.hml",
            "package/test/files/naver/contract.hwp",
        ],
    ),
    (
        "kordoc@4.14.1",
        "c8caa0028a473ab135d0463c72abc2043ddf104bf8beba5d75b25e28ad60e97b",
        &["package/templates/일반기안문_서식.hwpx"],
    ),
];

/// The client the local API is tested with, pinned so a new release cannot change a test's result.
const OPENAI_PACKAGE: &str = "openai==3.60.0";

fn step(what: &str) {
    println!("\n==> {what}");
}

struct Repo {
    root: PathBuf,
}

impl Repo {
    fn locate() -> Result<Repo> {
        let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .context("run this through `cargo xtask`")?;
        let root = manifest_dir
            .parent()
            .context("xtask must live one level below the repository root")?
            .to_path_buf();
        Ok(Repo { root })
    }

    fn ui(&self) -> PathBuf {
        self.root.join("ui")
    }

    fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    /// Where cargo puts binaries, honouring CARGO_TARGET_DIR.
    fn target_dir(&self) -> PathBuf {
        env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|p| {
                if p.is_absolute() {
                    p
                } else {
                    self.root.join(p)
                }
            })
            .unwrap_or_else(|| self.root.join("target"))
    }

    fn cargo(&self) -> Command {
        let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(&self.root);
        cmd
    }

    /// A Python with the pinned `openai` package, for the local API's client tests: a virtual
    /// environment in the target directory, made once.
    fn test_python(&self) -> Result<PathBuf> {
        step(&format!(
            "the openai package for the API tests ({OPENAI_PACKAGE})"
        ));
        let venv = self.target_dir().join("test-python");
        let python = venv.join("bin").join("python");
        let has_it = Command::new(&python)
            .args([
                "-c",
                "import importlib.metadata as m; print(m.version('openai'))",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        if has_it.as_deref() == OPENAI_PACKAGE.strip_prefix("openai==") {
            return Ok(python);
        }
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv)).context(
            "python3 -m venv failed: install python3 and python3-venv (Debian: apt install python3-venv)",
        )?;
        run(Command::new(&python).args(["-m", "pip", "install", "--quiet", OPENAI_PACKAGE]))
            .context("installing the openai package from the Python package index")?;
        Ok(python)
    }

    /// Real Korean office documents for the import tests, from public npm packages pinned by
    /// the sha256 of their tarballs: HWP 5 forms of KAIST (with their HML exports) from
    /// `node-hwp`, and government draft-document HWPX forms from `kordoc`. Unpacked once into
    /// `<target>/test-docs`.
    fn test_documents(&self) -> Result<PathBuf> {
        step("real HWP and HWPX files for the document tests (npm packages)");
        let dir = self.target_dir().join("test-docs");
        for (spec, sha, members) in TEST_DOCUMENT_PACKAGES {
            if members.iter().all(|m| dir.join(m).is_file()) {
                continue;
            }
            let tarballs = dir.join("tarballs");
            std::fs::create_dir_all(&tarballs)?;
            let name = capture(
                Command::new("npm")
                    .args(["pack", spec, "--silent", "--pack-destination"])
                    .arg(&tarballs),
            )
            .with_context(|| format!("npm pack {spec} (needs the npm registry)"))?;
            let tarball = tarballs.join(name.trim().lines().last().unwrap_or_default());
            let bytes = std::fs::read(&tarball)
                .with_context(|| format!("reading {}", tarball.display()))?;
            let got = {
                use sha2::Digest;
                let digest = sha2::Sha256::digest(&bytes);
                digest
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            };
            if got != *sha {
                bail!("{spec}: sha256 {got}, expected {sha}");
            }
            run(Command::new("tar")
                .arg("xzf")
                .arg(&tarball)
                .arg("-C")
                .arg(&dir)
                .args(members.iter()))?;
        }
        println!("test documents: {}", dir.display());
        Ok(dir)
    }

    /// Writes a benchmark's `target/bench/<stem>.json` and `<stem>.md` and prints the table.
    fn write_bench_report(&self, stem: &str, report: &serde_json::Value, md: &str) -> Result<()> {
        let out_dir = self.root.join("target").join("bench");
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("creating {}", out_dir.display()))?;
        let json_path = out_dir.join(format!("{stem}.json"));
        std::fs::write(&json_path, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("writing {}", json_path.display()))?;
        let md_path = out_dir.join(format!("{stem}.md"));
        std::fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
        println!(
            "\n{md}\nwritten: {} and {}",
            json_path.display(),
            md_path.display()
        );
        Ok(())
    }

    /// llama.cpp's `llama-server` for the tests that run Deskmate against a real
    /// OpenAI-compatible server, built after the app (it links the libraries that build made).
    /// Without it (no pip or PyPI for the source, a GPU build of llama.cpp, a compile error)
    /// those tests are skipped, saying why, and everything else still runs.
    fn llama_server_for_tests(&self) -> Option<PathBuf> {
        step("llama.cpp's llama-server (for the tests against a real OpenAI-compatible server)");
        match llama_server::build(&self.root, &self.target_dir()) {
            Ok(exe) => {
                println!("llama-server: {}", exe.display());
                Some(exe)
            }
            Err(e) => {
                println!("skipped: the tests against llama.cpp's llama-server ({e:#})");
                None
            }
        }
    }

    fn prerequisites(&self, for_tests: bool) -> Result<()> {
        step("checking system packages");
        let mut packages: Vec<&str> = APP_PACKAGES.to_vec();
        if for_tests {
            packages.extend_from_slice(TEST_PACKAGES);
        }
        ensure_debian_packages(&packages)?;
        step("checking the Vulkan headers");
        vulkan_sdk::ensure(&self.root)?;

        step("checking Node.js and the UI's packages");
        let npm_version = capture(Command::new("npm").arg("--version")).context(
            "npm was not found: install Node.js 20 or newer with npm (Debian/Ubuntu: `sudo apt-get install nodejs npm`)",
        )?;
        let node_version = capture(Command::new("node").arg("--version")).unwrap_or_default();
        println!("node {} / npm {}", node_version.trim(), npm_version.trim());
        self.npm_install()?;

        if for_tests {
            step("checking tauri-driver (WebDriver for the end-to-end tests)");
            if which("tauri-driver").is_none() {
                println!("tauri-driver not found: installing it with `cargo install tauri-driver --locked`");
                run(
                    Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into())).args([
                        "install",
                        "tauri-driver",
                        "--locked",
                    ]),
                )
                .context("installing tauri-driver (needs crates.io)")?;
            }
            which("tauri-driver").context(
                "tauri-driver was installed but is not on PATH: add ~/.cargo/bin to PATH",
            )?;
            which("WebKitWebDriver").context(
                "WebKitWebDriver not found: install the Debian package webkit2gtk-driver",
            )?;
        }
        Ok(())
    }

    /// `npm ci` when node_modules is missing or older than the lock file.
    fn npm_install(&self) -> Result<()> {
        let lock = self.ui().join("package-lock.json");
        let installed = self.ui().join("node_modules").join(".package-lock.json");
        let fresh = match (modified(&lock), modified(&installed)) {
            (Some(lock), Some(installed)) => installed >= lock,
            _ => false,
        };
        if fresh {
            println!("UI packages are installed");
            return Ok(());
        }
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(self.ui()))
        .context("installing the UI's npm packages (needs the npm registry)")
    }

    fn fetch_models(&self, set: &str) -> Result<()> {
        step(&format!(
            "installing the {set} models into {}",
            self.models_dir().display()
        ));
        match env::var_os("DESKMATE_MODEL_MIRROR") {
            Some(m) => println!("model mirror: {}", PathBuf::from(m).display()),
            None => println!(
                "no DESKMATE_MODEL_MIRROR set: models come from the Python package index or their public URLs"
            ),
        }
        // The CLI built with the rest of the workspace when there is one: `cargo run -p
        // deskmate-cli` would resolve features for that package alone and compile llama.cpp a
        // second time (minutes on a clean machine).
        let built = self.target_dir().join("debug").join(exe("deskmate"));
        let mut fetch = if built.is_file() {
            Command::new(&built)
        } else {
            let mut c = self.cargo();
            c.args(["run", "--quiet", "-p", "deskmate-cli", "--"]);
            c
        };
        run(fetch
            .args(["models", "fetch", "--set", set])
            .current_dir(&self.root)
            .env("DESKMATE_MODELS_DIR", self.models_dir()))
        .with_context(|| {
            format!(
                "the {set} models could not be installed; set DESKMATE_MODEL_MIRROR to a model mirror \
                 (build one with `../shared/models/provision DIR`) or check the network"
            )
        })
    }

    fn build_ui(&self) -> Result<()> {
        step("building the UI (ui/dist)");
        run(Command::new("npm")
            .args(["run", "build"])
            .current_dir(self.ui()))
    }

    /// Builds the UI, the app and the CLI. For the tests everything is built the way
    /// `cargo test --workspace` and clippy resolve features (`--workspace --all-targets`):
    /// a different package selection would unify build-dependency features differently and
    /// compile llama.cpp a second time.
    fn build_app(&self, for_tests: bool) -> Result<PathBuf> {
        self.build_ui()?;
        step("building the desktop app and the CLI");
        if for_tests {
            run(self.cargo().args(["build", "--workspace", "--all-targets"]))?;
        } else {
            run(self.cargo().arg("build").args(SHIPPED_PACKAGES))?;
        }
        let bin = self.target_dir().join("debug").join(exe("deskmate-app"));
        if !bin.is_file() {
            bail!("the build finished but {} is missing", bin.display());
        }
        Ok(bin)
    }

    /// `llama_server`: passed to the tests as `DESKMATE_TEST_LLAMA_SERVER` when there is one.
    fn e2e(&self, llama_server: Option<&Path>) -> Result<()> {
        step("end-to-end tests (the built app through tauri-driver)");
        let bin = self.target_dir().join("debug").join(exe("deskmate-app"));
        // The e2e tests are the workspace's only `#[ignore]`d tests. Selecting them with
        // `--test e2e` would resolve features differently from `cargo test --workspace` and
        // compile llama.cpp again, so every test binary runs with `--ignored` instead.
        let mut cargo_test = vec!["test", "--workspace", "--", "--ignored", "--test-threads=1"];
        let mut cmd = if has_display() {
            let mut c = self.cargo();
            c.args(&cargo_test);
            c
        } else {
            println!("no display: running under xvfb-run");
            let mut c = Command::new("xvfb-run");
            c.current_dir(&self.root)
                .args(["--auto-servernum", "--server-args=-screen 0 1280x860x24"]);
            c.arg(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            c.args(cargo_test.drain(..));
            c
        };
        cmd.env("DESKMATE_APP_BIN", &bin)
            .env("DESKMATE_E2E_OUT", self.root.join("target").join("e2e"));
        // Set on xvfb-run too: it hands its environment to cargo and the tests.
        if let Some(exe) = llama_server {
            cmd.env("DESKMATE_TEST_LLAMA_SERVER", exe);
        }
        run(&mut cmd)?;
        println!(
            "screenshots: {}",
            self.root.join("target").join("e2e").display()
        );
        Ok(())
    }
}

fn run_app() -> Result<()> {
    let repo = Repo::locate()?;
    repo.prerequisites(false)?;
    let bin = repo.build_app(false)?;
    // The app opens without its models and shows which are missing, so a failed download is a
    // warning here, not the end of the run.
    if let Err(e) = repo.fetch_models("default") {
        println!("warning: {e:#}\nThe app will open and show which models are missing.");
    }
    let models_dir = repo.models_dir();
    if has_display() {
        step("opening Deskmate");
        run(Command::new(&bin).env("DESKMATE_MODELS_DIR", &models_dir))
    } else {
        step(
            "no display found (DISPLAY and WAYLAND_DISPLAY are unset): starting the terminal chat",
        );
        println!("The desktop window needs a display; `deskmate chat` talks to the same models and database.");
        let cli = repo.target_dir().join("debug").join(exe("deskmate"));
        run(Command::new(&cli)
            .args(["chat", "--persona", "office"])
            .env("DESKMATE_MODELS_DIR", &models_dir))
    }
}

fn test_all(skip_lint: bool) -> Result<()> {
    let repo = Repo::locate()?;
    repo.prerequisites(true)?;

    if !skip_lint {
        step("formatting (cargo fmt --check)");
        run(repo.cargo().args(["fmt", "--all", "--check"]))
            .context("code is not formatted: run `cargo fmt --all`")?;
    }

    step("UI type check, lint and unit tests");
    run(Command::new("npm")
        .args(["run", "lint"])
        .current_dir(repo.ui()))?;
    run(Command::new("npm").args(["test"]).current_dir(repo.ui()))?;

    // The Tauri crate embeds ui/dist at compile time, so the UI is built before any cargo step
    // that compiles it (clippy included).
    repo.build_app(true)?;
    // After the build, so the models are fetched with the CLI it just made.
    repo.fetch_models("test")?;

    if !skip_lint {
        step("lints (cargo clippy --all-targets -D warnings)");
        run(repo.cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }

    let llama_server = repo.llama_server_for_tests();

    step("Rust tests (unit and cross-crate scenarios)");
    // cargo test hides what a passing test prints, so optional tests are announced here.
    if !repo.models_dir().join("ggml-base.bin").is_file() {
        println!(
            "skipped: the Korean speech test (ggml-base.bin is not in models/; \
             `cargo xtask models --set default` or a full mirror provides it)"
        );
    }
    let mut tests = repo.cargo();
    tests.args(["test", "--workspace"]);
    if let Some(exe) = &llama_server {
        tests.env("DESKMATE_TEST_LLAMA_SERVER", exe);
    }
    // Without the package (no venv module, no package index) the API's client test is
    // skipped, saying why; the curl tests still run.
    match repo.test_python() {
        Ok(python) => {
            tests.env("DESKMATE_TEST_PYTHON", python);
        }
        Err(e) => println!("skipped: the openai-package test of the local API ({e:#})"),
    }
    match repo.test_documents() {
        Ok(dir) => {
            tests.env("DESKMATE_TEST_DOCS", dir);
        }
        Err(e) => println!("skipped: the tests on real HWP and HWPX files ({e:#})"),
    }
    run(&mut tests)?;

    repo.e2e(llama_server.as_deref())?;
    step("all tests passed");
    Ok(())
}

fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| env::var_os(v).is_some_and(|s| !s.is_empty()))
}

fn exe(name: &str) -> String {
    format!("{name}{}", env::consts::EXE_SUFFIX)
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn which(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo").join("bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = show(cmd);
    println!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

fn capture(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start `{}`", show(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}):\n{}",
            show(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Installs missing Debian packages when we are root or have password-less sudo; otherwise
/// fails with the exact command to run.
fn ensure_debian_packages(packages: &[&str]) -> Result<()> {
    if which("dpkg-query").is_none() {
        println!(
            "not a Debian/Ubuntu system: make sure the equivalents of these are installed: {}",
            packages.join(" ")
        );
        return Ok(());
    }
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            capture(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .map(|s| !s.contains("install ok installed"))
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        println!("all present: {}", packages.join(" "));
        return Ok(());
    }
    let install = format!("apt-get install -y {}", missing.join(" "));
    println!("missing: {}", missing.join(" "));
    let is_root = capture(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0");
    let sudo = !is_root
        && which("sudo").is_some()
        && Command::new("sudo")
            .args(["-n", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if !is_root && !sudo {
        bail!("these system packages are missing: {}\ninstall them with:\n  sudo apt-get update && sudo {install}", missing.join(" "));
    }
    let apt = |args: &[&str]| {
        let mut cmd = if is_root {
            Command::new("apt-get")
        } else {
            Command::new("sudo")
        };
        if !is_root {
            cmd.arg("apt-get");
        }
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(&mut apt(&["update", "-q"]))?;
    let mut args = vec!["install", "-y", "-q"];
    args.extend_from_slice(&missing);
    run(&mut apt(&args))
        .with_context(|| format!("installing system packages; try `sudo {install}`"))
}

/// The test model the engine benchmark uses by default.
const BENCH_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// `cargo xtask bench engine`: our engine against `llama-bench` on the same model, threads and
/// batch, measured in one run; then concurrency and the prompt cache.
fn bench_engine(args: &[String]) -> Result<()> {
    let repo = Repo::locate()?;
    let quick = args.iter().any(|a| a == "--quick");
    // Mesa's software Vulkan device computes slowly: small sizes, and only the speed rounds.
    let vulkan = args.iter().any(|a| a == "--vulkan");
    if vulkan {
        // llama-bench and the engine both read it when ggml lists its devices; llama-bench
        // offloads every layer by default and the engine's fit puts them all on the device.
        env::set_var("GGML_VK_VISIBLE_DEVICES", "0");
    }
    let model = match flag_value(args, "--model") {
        Some(p) => {
            let p = PathBuf::from(p);
            if !p.is_file() {
                bail!("--model {}: no such file", p.display());
            }
            p
        }
        None => {
            let p = repo.models_dir().join(BENCH_MODEL);
            if !p.is_file() {
                repo.fetch_models("test")?;
            }
            p
        }
    };
    let (n_prompt, n_gen, reps) = if vulkan {
        (64, 16, 2)
    } else if quick {
        (256, 128, 5)
    } else {
        (512, 256, 7)
    };
    let batch = 512;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;

    step("building the CLI (the engine's side of the benchmark)");
    // The workspace selection `cargo xtask test` builds: another one compiles llama.cpp again.
    run(repo.cargo().args(["build", "--workspace", "--all-targets"]))?;
    let cli = repo.target_dir().join("debug").join(exe("deskmate"));
    let llama_bench = llama_bench::build(&repo.root, &repo.target_dir())?;
    let (batched_bench, llama_lookup) = if vulkan {
        (None, None)
    } else {
        (
            Some(llama_bench::build_batched_bench(
                &repo.root,
                &repo.target_dir(),
            )?),
            Some(llama_bench::build_lookup(&repo.root, &repo.target_dir())?),
        )
    };
    let grounded_text = repo
        .root
        .join("xtask/bench-data/documents/corpus/debian-constitution.txt");

    // The machine is shared and its load drifts, so llama-bench and the engine run in
    // alternating rounds; each round's ratio compares two measurements taken seconds apart,
    // and the median round is reported.
    let rounds = if quick || vulkan { 3 } else { 5 };
    let engine_cmd = |speed_only: bool| {
        let mut cmd = Command::new(&cli);
        cmd.args([
            "bench-engine",
            "--model",
            &model.to_string_lossy(),
            "--threads",
            &threads.to_string(),
            "--prompt-tokens",
            &n_prompt.to_string(),
            "--gen-tokens",
            &n_gen.to_string(),
            "--batch",
            &batch.to_string(),
            "--repetitions",
            &reps.to_string(),
        ]);
        if speed_only {
            cmd.arg("--speed-only");
        } else {
            cmd.arg("--grounded-text").arg(&grounded_text);
        }
        cmd
    };
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let mut round_results = Vec::new();
    for round in 1..=rounds {
        step(&format!(
            "round {round}/{rounds}: llama-bench ({threads} threads, pp{n_prompt}, tg{n_gen}, batch {batch}, {reps} repetitions), then the engine with the same settings"
        ));
        let base = llama_bench::run(&llama_bench, &model, threads, n_prompt, n_gen, batch, reps)?;
        let ours: serde_json::Value = serde_json::from_str(&capture(&mut engine_cmd(true))?)
            .context("reading the engine benchmark's JSON")?;
        round_results.push((base, ours));
    }
    if vulkan {
        return vulkan_report(
            &repo,
            &model,
            threads,
            (n_prompt, n_gen, batch),
            &round_results,
        );
    }
    step("the engine: concurrency and the conversation");
    let engine: serde_json::Value = serde_json::from_str(&capture(&mut engine_cmd(false))?)
        .context("reading the engine benchmark's JSON")?;

    let (pp_rounds, tg_rounds) = round_ratios(&round_results);
    let (pp_ratio, tg_ratio) = (median(pp_rounds.clone()), median(tg_rounds.clone()));
    let base_pp = median(
        round_results
            .iter()
            .map(|(b, _)| b.pp_tokens_per_s)
            .collect(),
    );
    let base_tg = median(
        round_results
            .iter()
            .map(|(b, _)| b.tg_tokens_per_s)
            .collect(),
    );
    let ours_pp = median(
        round_results
            .iter()
            .map(|(_, o)| num(&o["prompt"]["tokens_per_s"]))
            .collect(),
    );
    let ours_tg = median(
        round_results
            .iter()
            .map(|(_, o)| num(&o["generation"]["tokens_per_s"]))
            .collect(),
    );
    let aggregate: Vec<(u64, f64)> = engine["aggregate"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["concurrent"].as_u64().unwrap_or(0),
                        num(&r["tokens_per_s"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let single = aggregate
        .iter()
        .find(|(k, _)| *k == 1)
        .map_or(0.0, |(_, t)| *t);
    // llama.cpp's own batched decoding with the engine's context, batch and reply length: the
    // reference for the aggregate rows (the engine's slots split the context the same way).
    step("llama-batched-bench: 1, 2, 4 and 8 sequences generating together");
    let parallel: Vec<u32> = aggregate.iter().map(|(k, _)| *k as u32).collect();
    let max_parallel = parallel.iter().copied().max().unwrap_or(1);
    let slot_ctx = (n_prompt + n_gen + 64).max(2048);
    let batched = match &batched_bench {
        Some(bin) => llama_bench::run_batched(
            bin,
            &model,
            threads,
            slot_ctx * max_parallel,
            batch,
            32,
            n_gen,
            &parallel,
        )?,
        None => Vec::new(),
    };
    let batched_tps = |k: u64| {
        batched
            .iter()
            .find(|r| u64::from(r.parallel) == k)
            .map_or(0.0, |r| r.tg_tokens_per_s)
    };
    let vs_batched: Vec<(u64, f64)> = aggregate
        .iter()
        .map(|(k, t)| (*k, t / batched_tps(*k)))
        .collect();
    let lookup_row = |name: &str| {
        let r = &engine["lookup"][name];
        (
            num(&r["ratio"]),
            num(&r["plain_tokens_per_s"]),
            num(&r["lookup_tokens_per_s"]),
            r,
        )
    };
    let (grounded_ratio, grounded_plain, grounded_fast, grounded) = lookup_row("grounded");
    // llama.cpp's own lookup decoding on the same request: its speed with drafts of up to 6
    // tokens (the engine's longest) over its speed without, in alternating pairs.
    let reference = match &llama_lookup {
        Some(bin) => {
            step("llama-lookup: the grounded request with drafts of up to 6 tokens and without");
            Some(llama_lookup_ratio(
                &repo,
                bin,
                &model,
                threads,
                &grounded_text,
                n_gen,
                rounds,
            )?)
        }
        None => None,
    };
    let (chat_ratio, chat_plain, chat_fast, chat) = lookup_row("chat");
    let ttft: Vec<f64> = engine["conversation"]["ttft_ms"]
        .as_array()
        .map(|a| a.iter().map(num).collect())
        .unwrap_or_default();
    let (turn1, turn_last) = (
        ttft.first().copied().unwrap_or(0.0),
        ttft.last().copied().unwrap_or(0.0),
    );
    let ttft_ratio = turn_last / turn1;
    let turns = &engine["conversation"]["turns"];
    let read = |t: &serde_json::Value| {
        let prompt = t["prompt_tokens"].as_u64().unwrap_or(0);
        let cached = t["cached_tokens"].as_u64().unwrap_or(0);
        (prompt.saturating_sub(cached).max(1) as u32, cached as u32)
    };
    let (read_1, _) = read(&turns[0]);
    let last_index = turns.as_array().map_or(0, |a| a.len().saturating_sub(1));
    let (read_last, depth_last) = read(&turns[last_index]);
    let cold_ttft = num(&engine["conversation"]["last_turn_without_cache"]["ttft_ms"]);
    // llama.cpp's own time for the same two prompt reads: the floor under our ratio.
    step("llama-bench: the two turns' prompt reads (turn 1 at depth 0, the last at its cached depth)");
    let tps_1 = llama_bench::prompt_at_depth(&llama_bench, &model, threads, read_1, 0, reps)?;
    let tps_last =
        llama_bench::prompt_at_depth(&llama_bench, &model, threads, read_last, depth_last, reps)?;
    let llama_ttft_ratio = (f64::from(read_last) / tps_last) / (f64::from(read_1) / tps_1);
    let growth = ttft_ratio / llama_ttft_ratio;

    let mut md = String::new();
    md.push_str(&format!(
        "# Engine benchmark\n\nModel `{}`, {threads} threads, batch {batch}, {}: {rounds} alternating rounds of llama-bench and the engine; each ratio is the median of the rounds' ratios (speeds are medians too).\n\n",
        model.display(),
        if quick { "quick run" } else { "full run" }
    ));
    md.push_str(
        "| measure | llama-bench | Deskmate engine | ratio | target |\n|---|---|---|---|---|\n",
    );
    md.push_str(&format!(
        "| prompt processing (pp{n_prompt}), tokens/s | {base_pp:.1} | {ours_pp:.1} | {pp_ratio:.3} | ≥ 0.97 {} |\n",
        verdict(pp_ratio >= 0.97)
    ));
    md.push_str(&format!(
        "| generation (tg{n_gen}), tokens/s | {base_tg:.1} | {ours_tg:.1} | {tg_ratio:.3} | ≥ 0.97 {} |\n",
        verdict(tg_ratio >= 0.97)
    ));
    md.push_str("\n| concurrent requests | llama-batched-bench tokens/s | engine aggregate tokens/s | ratio | engine × single | target |\n|---|---|---|---|---|---|\n");
    for ((k, tps), (_, ratio)) in aggregate.iter().zip(&vs_batched) {
        let gain = tps / single;
        let target = if *k >= 4 {
            format!("≥ 0.95 {}", verdict(*ratio >= 0.95))
        } else {
            String::new()
        };
        md.push_str(&format!(
            "| {k} | {:.1} | {tps:.1} | {ratio:.3} | {gain:.2} | {target} |\n",
            batched_tps(*k)
        ));
    }
    let lookup_line = |label: &str,
                       r: &serde_json::Value,
                       plain: f64,
                       fast: f64,
                       ratio: f64,
                       target: String| {
        format!(
            "| {label} | {plain:.1} | {fast:.1} | {ratio:.3} | {:.2} | {:.0}% | {} of {} | {target} |\n",
            num(&r["tokens_per_step"]),
            num(&r["acceptance"]) * 100.0,
            r["identical_replies"].as_u64().unwrap_or(0),
            r["pairs"].as_u64().unwrap_or(0),
        )
    };
    md.push_str(&format!(
        "\n| prompt-lookup decoding (greedy, {} alternating pairs) | plain tokens/s | lookup tokens/s | ratio | tokens per decode | drafts confirmed | identical replies | target |\n|---|---|---|---|---|---|---|---|\n",
        chat["pairs"].as_u64().unwrap_or(0)
    ));
    if !grounded.is_null() {
        md.push_str(&lookup_line(
            "grounded: repeat section 7 of the Debian constitution",
            grounded,
            grounded_plain,
            grounded_fast,
            grounded_ratio,
            format!("≥ 1.3 {}", verdict(grounded_ratio >= 1.3)),
        ));
    }
    if let Some(r) = &reference {
        md.push_str(&format!(
            "| llama-lookup, the grounded request (ChatML) | {:.1} | {:.1} | {:.3} | {:.2} | {:.0}% | | |\n",
            num(&r["plain_tokens_per_s"]),
            num(&r["lookup_tokens_per_s"]),
            num(&r["ratio"]),
            num(&r["tokens_per_step"]),
            num(&r["acceptance"]) * 100.0,
        ));
    }
    md.push_str(&lookup_line(
        "open chat: a note inviting the team to lunch",
        chat,
        chat_plain,
        chat_fast,
        chat_ratio,
        format!("≥ 0.97 {}", verdict(chat_ratio >= 0.97)),
    ));
    md.push_str(&format!(
        "\n| conversation | time to first token | prompt tokens read (cached) |\n|---|---|---|\n\
         | turn 1 | {turn1:.1} ms | {read_1} (0) |\n\
         | turn {n} | {turn_last:.1} ms | {read_last} ({depth_last}) |\n\
         | turn {n} without the prompt cache | {cold_ttft:.1} ms | all |\n\
         | ratio turn {n} / turn 1 | {ttft_ratio:.2} | |\n\
         | llama-bench, same reads at the same depths | {llama_ttft_ratio:.2} | |\n\
         | engine's growth ÷ llama-bench's | {growth:.2} (target ≤ 1.1 {}) | |\n",
        verdict(growth <= 1.1),
        n = ttft.len(),
    ));

    // The prompt cache on disk: turn 11 after a restart against warm and cold.
    let restore = &engine["restore"];
    let restore_ttft = |row: &str| num(&restore[row]["ttft_ms"]);
    let (restarted, warm, cold_read, cycled) = (
        restore_ttft("after_restart"),
        restore_ttft("warm"),
        restore_ttft("cold"),
        restore_ttft("after_cycling"),
    );
    let restart_vs_warm = restarted / warm;
    let restart_vs_cold = restarted / cold_read;
    let cycled_vs_warm = cycled / warm;
    let cycled_vs_cold = cycled / cold_read;
    let row = |name: &str, label: &str, ttft: f64| {
        let r = &restore[name];
        format!(
            "| {label} | {ttft:.1} ms | {} ({} cached, {} of them restored from disk) |\n",
            r["prompt_tokens"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(r["cached_tokens"].as_u64().unwrap_or(0)),
            r["cached_tokens"].as_u64().unwrap_or(0),
            r["restored_tokens"].as_u64().unwrap_or(0),
        )
    };
    let turn = restore["turn"].as_u64().unwrap_or(11);
    md.push_str(&format!(
        "\n| turn {turn} of a conversation | time to first token | prompt tokens read |\n|---|---|---|\n"
    ));
    md.push_str(&row("warm", "warm (in its slot)", warm));
    md.push_str(&row(
        "after_restart",
        "after a restart (from disk)",
        restarted,
    ));
    md.push_str(&row(
        "after_cycling",
        &format!(
            "after {} other conversations took the slots (from disk)",
            restore["cycled_conversations"].as_u64().unwrap_or(0)
        ),
        cycled,
    ));
    md.push_str(&row("cold", "cold (read from scratch)", cold_read));
    md.push_str(&format!(
        "| after a restart ÷ warm | {restart_vs_warm:.2} (target ≤ 1.5 {}) | |\n\
         | after a restart ÷ cold | {restart_vs_cold:.2} (target ≤ 0.25 {}) | |\n\
         | after cycling ÷ warm, ÷ cold | {cycled_vs_warm:.2}, {cycled_vs_cold:.2} | |\n\
         | disk written per conversation | {:.1} MB | |\n",
        verdict(restart_vs_warm <= 1.5),
        verdict(restart_vs_cold <= 0.25),
        num(&restore["bytes_per_conversation"]) / 1e6,
    ));

    let report = serde_json::json!({
        "model": model,
        "threads": threads,
        "batch": batch,
        "quick": quick,
        "rounds": round_results.iter().zip(pp_rounds.iter().zip(&tg_rounds)).map(|((b, o), (pp, tg))| serde_json::json!({
            "llama_bench": b.raw_json, "engine": o,
            "prompt_ratio": pp,
            "generation_ratio": tg,
        })).collect::<Vec<_>>(),
        "llama_bench": { "pp_tokens_per_s": base_pp, "tg_tokens_per_s": base_tg },
        "llama_batched_bench": batched.iter().map(|r| r.raw_json.clone()).collect::<Vec<_>>(),
        "llama_lookup": reference,
        "engine": engine,
        "ratios": { "prompt": pp_ratio, "generation": tg_ratio,
                    "aggregate_vs_single": aggregate.iter().map(|(k, t)| serde_json::json!({"concurrent": k, "ratio": t / single})).collect::<Vec<_>>(),
                    "aggregate_vs_batched_bench": vs_batched.iter().map(|(k, r)| serde_json::json!({"concurrent": k, "ratio": r})).collect::<Vec<_>>(),
                    "lookup_decoding_grounded": grounded_ratio,
                    "lookup_decoding_chat": chat_ratio,
                    "llama_lookup_grounded": reference.as_ref().map(|r| r["ratio"].clone()),
                    "ttft_turn_last_vs_turn_1": ttft_ratio,
                    "llama_bench_same_reads_last_vs_1": llama_ttft_ratio,
                    "ttft_growth_vs_llama_bench": growth,
                    "restored_after_restart_vs_warm": restart_vs_warm,
                    "restored_after_restart_vs_cold": restart_vs_cold,
                    "restored_after_cycling_vs_warm": cycled_vs_warm,
                    "restored_after_cycling_vs_cold": cycled_vs_cold },
    });
    repo.write_bench_report("engine", &report, &md)
}

/// `llama-lookup` on the engine's grounded request (the user message of `bench-engine
/// --grounded-text`, in ChatML, the template of both test models): greedy, `n_gen` tokens,
/// drafts of up to 6 tokens against none, in `rounds` alternating pairs.
fn llama_lookup_ratio(
    repo: &Repo,
    bin: &Path,
    model: &Path,
    threads: u32,
    text: &Path,
    n_gen: u32,
    rounds: u32,
) -> Result<serde_json::Value> {
    let source = fs::read_to_string(text).with_context(|| format!("reading {}", text.display()))?;
    let section = source
        .find("7. The Project Secretary")
        .zip(source.find("8. The Project Leader's Delegates"))
        .map(|(start, end)| &source[start..end])
        .with_context(|| format!("{}: section 7 not found", text.display()))?;
    let prompt_file = repo.target_dir().join("bench").join("lookup-prompt.txt");
    fs::write(
        &prompt_file,
        format!(
            "<|im_start|>user\nRepeat the following text exactly.\n\n{section}<|im_end|>\n<|im_start|>assistant\n"
        ),
    )
    .with_context(|| format!("writing {}", prompt_file.display()))?;
    let (mut plain, mut fast, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut drafted, mut accepted, mut tokens) = (0, 0, 0.0);
    for _ in 0..rounds {
        let p = llama_bench::run_lookup(bin, model, threads, &prompt_file, n_gen, 0)?;
        let f = llama_bench::run_lookup(bin, model, threads, &prompt_file, n_gen, 6)?;
        ratios.push(f.tokens_per_s / p.tokens_per_s);
        plain.push(p.tokens_per_s);
        fast.push(f.tokens_per_s);
        drafted += f.drafted;
        accepted += f.accepted;
        tokens += f64::from(n_gen);
    }
    // llama-lookup decodes every step with a draft when its cache offers one: tokens per decode
    // call from its counts, as the engine reports them.
    let steps = (tokens - accepted as f64).max(1.0);
    Ok(serde_json::json!({
        "plain_tokens_per_s": median(plain.clone()),
        "lookup_tokens_per_s": median(fast.clone()),
        "plain_tokens_per_s_runs": plain,
        "lookup_tokens_per_s_runs": fast,
        "ratio_runs": ratios,
        "ratio": median(ratios.clone()),
        "acceptance": if drafted > 0 { accepted as f64 / drafted as f64 } else { 0.0 },
        "tokens_per_step": tokens / steps,
    }))
}

/// The median of the rounds' figures (the upper one of an even count); 0 for none.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Each alternating round's engine speed over llama-bench's: (prompt, generation).
fn round_ratios(
    rounds: &[(llama_bench::LlamaBenchResult, serde_json::Value)],
) -> (Vec<f64>, Vec<f64>) {
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    rounds
        .iter()
        .map(|(b, o)| {
            (
                num(&o["prompt"]["tokens_per_s"]) / b.pp_tokens_per_s,
                num(&o["generation"]["tokens_per_s"]) / b.tg_tokens_per_s,
            )
        })
        .unzip()
}

/// `bench engine --vulkan`: the speed rounds' ratios on the Vulkan device.
fn vulkan_report(
    repo: &Repo,
    model: &Path,
    threads: u32,
    (n_prompt, n_gen, batch): (u32, u32, u32),
    rounds: &[(llama_bench::LlamaBenchResult, serde_json::Value)],
) -> Result<()> {
    let (pp, tg) = round_ratios(rounds);
    let (pp_ratio, tg_ratio) = (median(pp.clone()), median(tg.clone()));
    // The engine's benchmark output does not name its device; GGML_VK_VISIBLE_DEVICES does.
    let device = "Vulkan device 0";
    let md = format!(
        "# Engine benchmark on the Vulkan device\n\nModel `{}`, every layer on {device} \
         (`GGML_VK_VISIBLE_DEVICES=0`), {threads} threads, batch {batch}, {} alternating rounds \
         of `llama-bench -ngl 99` and the engine; each ratio is the median of the rounds'.\n\n\
         | measure | rounds (engine / llama-bench) | ratio |\n|---|---|---|\n\
         | prompt (pp{n_prompt}) | {} | {pp_ratio:.3} |\n\
         | generation (tg{n_gen}) | {} | {tg_ratio:.3} |\n",
        model.display(),
        rounds.len(),
        pp.iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
        tg.iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let report = serde_json::json!({
        "model": model,
        "device": device,
        "threads": threads,
        "batch": batch,
        "rounds": rounds.iter().map(|(b, o)| serde_json::json!({
            "llama_bench": b.raw_json, "engine": o,
        })).collect::<Vec<_>>(),
        "ratios": { "prompt": pp_ratio, "generation": tg_ratio },
    });
    repo.write_bench_report("engine-vulkan", &report, &md)
}

/// 16 concurrent streamed chat completions against 4 slots through the local API, as a client
/// sees them: time to first token (p50, p95) and throughput, as ratios against one request
/// alone in the same run.
fn bench_api(args: &[String]) -> Result<()> {
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let repo = Repo::locate()?;
    let model = match flag_value(args, "--model") {
        Some(m) => PathBuf::from(m),
        None => {
            repo.fetch_models("test")?;
            repo.models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")
        }
    };
    step("building the CLI (the server and the client of the benchmark)");
    run(repo.cargo().args(["build", "--workspace", "--all-targets"]))?;
    let cli = repo.target_dir().join("debug").join(exe("deskmate"));
    step("16 concurrent streamed requests against 4 slots (queue of 12)");
    let raw = capture(
        Command::new(&cli)
            .args(["bench-api", "--model"])
            .arg(&model)
            .args(["--concurrency", "16", "--slots", "4", "--max-queue", "12"]),
    )?;
    let report: serde_json::Value =
        serde_json::from_str(raw.trim()).context("reading the API benchmark's JSON")?;
    let (s, c, r) = (&report["single"], &report["concurrent"], &report["ratios"]);
    let md = format!(
        "# API benchmark\n\nModel `{}`, {} slots, queue {}, {} concurrent streamed requests of {} tokens, through `deskmate serve`'s HTTP API.\n\n\
         | | one request alone | {} at once | ratio |\n|---|---|---|---|\n\
         | time to first token, p50 | {:.0} ms | {:.0} ms | {:.1}× |\n\
         | time to first token, p95 | | {:.0} ms | {:.1}× |\n\
         | generation, tokens/s | {:.1} | {:.1} (all requests together) | {:.2}× |\n\n\
         Finished {}, refused with 429 {}, lost {}.\n",
        report["model"].as_str().unwrap_or("?"),
        report["slots"], report["max_queue"], report["concurrency"], report["max_tokens"],
        report["concurrency"],
        num(&s["ttft_ms"]), num(&c["p50_ttft_ms"]), num(&r["p50_ttft_vs_single"]),
        num(&c["p95_ttft_ms"]), num(&r["p95_ttft_vs_single"]),
        num(&s["tokens_per_s"]), num(&c["aggregate_tokens_per_s"]), num(&r["aggregate_tokens_per_s_vs_single"]),
        c["finished"], c["refused_429"], c["lost"],
    );
    repo.write_bench_report("api", &report, &md)
}

/// The search methods the documents benchmark compares, as its JSON names them.
const METHODS: [&str; 5] = [
    "hybrid",
    "hybrid_without_rerank",
    "keyword",
    "vector",
    "vector_without_rerank",
];

/// `cargo xtask bench documents`: see `crates/cli/src/bench_docs_cmd.rs` for what is measured.
fn bench_documents(args: &[String]) -> Result<()> {
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let repo = Repo::locate()?;
    let quick = args.iter().any(|a| a == "--quick");
    let models = repo.models_dir();
    if !models
        .join("multilingual-e5-small-onnx")
        .join("model.onnx")
        .is_file()
    {
        repo.fetch_models("test")?;
    }
    // The same package selection as `cargo xtask test`, so a benchmark after the tests starts
    // at once instead of compiling llama.cpp again for `-p deskmate-cli` alone.
    step("building the CLI (the library's side of the benchmark)");
    run(repo.cargo().args(["build", "--workspace", "--all-targets"]))?;
    let cli = repo.target_dir().join("debug").join(exe("deskmate"));
    let data = repo.root.join("xtask").join("bench-data").join("documents");
    let out_dir = repo.root.join("target").join("bench");
    let work = out_dir.join("documents-work");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    step("ingest, retrieval quality, then 10k and 100k chunk libraries (several minutes)");
    let sizes = if quick { "2000,10000" } else { "10000,100000" };
    let raw = capture(
        Command::new(&cli)
            .args([
                "bench-documents",
                "--data",
                &data.to_string_lossy(),
                "--models",
                &models.to_string_lossy(),
                "--work",
                &work.to_string_lossy(),
                "--sizes",
                sizes,
                "--unbroken-bytes",
                if quick { "300000" } else { "1000000" },
            ])
            .args(if quick {
                &["--korean-scan-pages", "8"][..]
            } else {
                &[][..]
            }),
    )?;
    let report: serde_json::Value =
        serde_json::from_str(raw.trim()).context("reading the documents benchmark's JSON")?;
    let _ = std::fs::remove_dir_all(&work);
    let c = &report["corpus"];
    let i = &report["ingest"];
    let mut md = format!(
        "# Documents benchmark\n\nCorpus: {} files, {} bytes, {} chunks, {} labeled questions (`xtask/bench-data/documents`, sources and licences in SOURCES.md). Machine: {} threads.\n\n",
        c["files"], c["bytes"], c["chunks"], c["questions"],
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    md.push_str("## Ingest\n\nImport (extract, chunk, embed, store) against the embedding model alone on the same chunks and their sentences (the baseline, same batch size, same run). Target: the import's rate ≥ 0.8 of the model's.\n\n| input | bytes | chunks | import | chunks/s | MB/min | model alone | model chunks/s | import rate / model rate |\n|---|---|---|---|---|---|---|---|---|\n");
    for (name, row) in [
        ("corpus", i),
        (
            "one text without sentence breaks",
            &report["ingest_unbroken"],
        ),
    ] {
        let rate = num(&row["rate_vs_embed_only"]);
        md.push_str(&format!(
            "| {name} | {} | {} | {:.1} s | {:.1} | {:.3} | {:.1} s | {:.1} | {:.2} {} |\n",
            row["bytes"],
            row["chunks"],
            num(&row["seconds"]),
            num(&row["chunks_per_s"]),
            num(&row["mb_per_min"]),
            num(&row["embed_only_seconds"]),
            num(&row["embed_only_chunks_per_s"]),
            rate,
            verdict(rate >= 0.8)
        ));
    }
    md.push('\n');
    md.push_str("## Retrieval quality\n\n| method | recall@5 | MRR@10 | recall@5 ko | recall@5 en |\n|---|---|---|---|---|\n");
    let q = &report["quality"];
    for m in METHODS {
        md.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            m.replace('_', " "),
            num(&q[m]["recall_at_5"]),
            num(&q[m]["mrr_at_10"]),
            num(&q[m]["recall_at_5_by_language"]["ko"]),
            num(&q[m]["recall_at_5_by_language"]["en"])
        ));
    }
    // The fusion's target, with the rerank on both sides and with it off on both sides.
    let fusion_met = |hybrid: &str, vector: &str| {
        num(&q[hybrid]["recall_at_5"])
            >= num(&q["keyword"]["recall_at_5"]).max(num(&q[vector]["recall_at_5"]))
    };
    md.push_str(&format!(
        "\nTarget: hybrid ≥ both single methods on recall@5: with the sentence rerank {}, without it {}.\n\n",
        verdict(fusion_met("hybrid", "vector")),
        verdict(fusion_met("hybrid_without_rerank", "vector_without_rerank")),
    ));
    let p = &report["paraphrase"];
    md.push_str(&format!(
        "### Paraphrased Korean questions\n\n{} questions in everyday words over the constitution, whose text uses formal ones (`paraphrases.json`).\n\n| method | recall@5 | query p50 |\n|---|---|---|\n",
        p["hybrid"]["questions"]
    ));
    for m in METHODS {
        md.push_str(&format!(
            "| {} | {:.3} | {:.1} ms |\n",
            m.replace('_', " "),
            num(&p[m]["recall_at_5"]),
            num(&p[m]["query_ms_p50"])
        ));
    }
    let (with, without) = (
        num(&p["hybrid"]["recall_at_5"]),
        num(&p["hybrid_without_rerank"]["recall_at_5"]),
    );
    md.push_str(&format!(
        "\nThe sentence rerank (`documents.sentence_rerank`): hybrid recall@5 {without:.3} → {with:.3} on these questions, {:+.1} ms per query (p50). Its cost at import: the sentences took {:.0}% of the embedding time in the ingest above.\n",
        num(&p["hybrid"]["query_ms_p50"]) - num(&p["hybrid_without_rerank"]["query_ms_p50"]),
        100.0 * num(&i["sentence_share_of_embedding"]),
    ));
    md.push('\n');
    let k = &report["korean_formats"];
    md.push_str(&format!(
        "## Korean office formats\n\nThe Korean constitution (`{}`, real public text) in each format, in a library beside the five Korean bills of the corpus; its labeled questions searched hybrid. The scan is the text rendered by Pango at 11 pt, stored as {}-dpi page images without a text layer, read by Tesseract (kor+eng) through poppler, as the import does.\n\n| format | questions | recall@5 | MRR@10 | import |\n|---|---|---|---|---|\n",
        k["source"].as_str().unwrap_or("?"),
        k["ocr"]["dpi"]
    ));
    for f in k["formats"].as_array().into_iter().flatten() {
        md.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {:.1} s |\n",
            f["format"].as_str().unwrap_or("?"),
            f["questions"],
            num(&f["recall_at_5"]),
            num(&f["mrr_at_10"]),
            num(&f["import_s"]),
        ));
    }
    let o = &k["ocr"];
    md.push_str(&format!(
        "\nOCR: {} pages, character error rate {:.3} (edit distance over {} source characters, whitespace ignored), {:.1} pages per minute (one Tesseract thread).\n\n",
        o["pages"],
        num(&o["character_error_rate"]),
        o["source_characters"],
        num(&o["pages_per_minute"]),
    ));
    md.push_str("## Scale\n\n| chunks | fill | index ready (incl. model load) | query p50 | query p95 | HNSW recall@10 |\n|---|---|---|---|---|---|\n");
    for s in report["scale"].as_array().into_iter().flatten() {
        md.push_str(&format!(
            "| {} | {:.1} s | {:.1} s | {:.1} ms | {:.1} ms {} | {:.3} {} |\n",
            s["chunks"],
            num(&s["fill_s"]),
            num(&s["index_build_s"]),
            num(&s["query_ms_p50"]),
            num(&s["query_ms_p95"]),
            verdict(num(&s["query_ms_p95"]) < 50.0),
            num(&s["hnsw_recall_at_10"]),
            verdict(num(&s["hnsw_recall_at_10"]) >= 0.98),
        ));
    }
    md.push_str("\nEach half alone:\n\n| chunks | keyword p50 | keyword p95 | vector p50 | vector p95 |\n|---|---|---|---|---|\n");
    for s in report["scale"].as_array().into_iter().flatten() {
        let m = &s["query_ms_by_mode"];
        md.push_str(&format!(
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |\n",
            s["chunks"],
            num(&m["keyword"]["p50"]),
            num(&m["keyword"]["p95"]),
            num(&m["vector"]["p50"]),
            num(&m["vector"]["p95"]),
        ));
    }
    md.push_str("\nQuery latency is the whole hybrid search: embedding the query, keyword and vector search, fusion and reading the passages. Targets: p95 < 50 ms, HNSW recall@10 ≥ 0.98 against exact search over the same vectors. The scale libraries use recombined corpus sentences and mixed real embeddings (see bench_docs_cmd.rs).\n");
    repo.write_bench_report("documents", &report, &md)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "(met)"
    } else {
        "(missed)"
    }
}
