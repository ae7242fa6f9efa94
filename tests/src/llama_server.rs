//! llama.cpp's own `llama-server`, run for a test as the OpenAI-compatible server a persona
//! uses. `cargo xtask test` builds it from the llama.cpp source of the benchmarks and passes
//! its path in `DESKMATE_TEST_LLAMA_SERVER`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

/// The model id the server announces (`--alias`), which the persona's config names.
pub const MODEL_ALIAS: &str = "smollm";

/// The `llama-server` executable, or why there is none (the test then says it is skipped).
pub fn executable() -> std::result::Result<PathBuf, String> {
    match std::env::var_os("DESKMATE_TEST_LLAMA_SERVER") {
        Some(exe) if Path::new(&exe).is_file() => Ok(PathBuf::from(exe)),
        Some(exe) => Err(format!(
            "DESKMATE_TEST_LLAMA_SERVER names {}, which does not exist",
            Path::new(&exe).display()
        )),
        None => Err(
            "DESKMATE_TEST_LLAMA_SERVER is not set (`cargo xtask test` builds llama.cpp's \
                     llama-server and sets it; `cargo xtask llama-server` prints its path)"
                .to_owned(),
        ),
    }
}

/// A running `llama-server` on a free loopback port; killed when dropped.
pub struct LlamaServer {
    child: Child,
    pub port: u16,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LlamaServer {
    /// Starts `exe` with `model` (two slots of 1024 tokens, two threads) and waits until
    /// `/health` says the model is loaded.
    pub fn start(exe: &Path, model: &Path) -> Result<LlamaServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(exe)
            .arg("-m")
            .arg(model)
            .args(["--alias", MODEL_ALIAS, "-c", "2048", "-np", "2", "-t", "2"])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = LlamaServer { child, port };
        let started = Instant::now();
        loop {
            let health = ureq::get(format!("http://127.0.0.1:{port}/health"))
                .config()
                .http_status_as_error(false)
                .build()
                .call();
            if health.is_ok_and(|r| r.status() == 200) {
                return Ok(server);
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err("llama-server did not become ready in 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The OpenAI API's base, as `models.<persona>.backend.base_url` takes it.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// `host:port`, as the "remote: host" badge shows it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
