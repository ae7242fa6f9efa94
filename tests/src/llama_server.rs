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

/// The executable for a test that needs one; without it, says on stderr that the test is
/// skipped and why, and gives `None`.
pub fn executable_or_skip() -> Option<PathBuf> {
    executable()
        .map_err(|reason| eprintln!("skipped: {reason}"))
        .ok()
}

/// A running `llama-server` on a free loopback port; killed when dropped.
pub struct LlamaServer {
    child: Child,
    pub port: u16,
    /// Its stderr, kept for the reason when it does not start.
    log: tempfile_log::Log,
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
        let log = tempfile_log::Log::new()?;
        let child = Command::new(exe)
            .arg("-m")
            .arg(model)
            .args(["--alias", MODEL_ALIAS, "-c", "2048", "-np", "2", "-t", "2"])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log.file()?)
            .spawn()?;
        let mut server = LlamaServer { child, port, log };
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait()? {
                return Err(format!(
                    "llama-server exited ({status}) before it was ready: {}",
                    server.log.tail()
                )
                .into());
            }
            let health = ureq::get(format!("http://127.0.0.1:{port}/health"))
                .config()
                .http_status_as_error(false)
                .build()
                .call();
            if health.is_ok_and(|r| r.status() == 200) {
                return Ok(server);
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err(format!(
                    "llama-server did not become ready in 120 s: {}",
                    server.log.tail()
                )
                .into());
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

/// A file in the temporary directory for a child's stderr, removed when dropped.
mod tempfile_log {
    use std::fs::File;
    use std::path::PathBuf;

    pub struct Log(PathBuf);

    impl Log {
        pub fn new() -> std::io::Result<Log> {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "deskmate-llama-server-{}-{n}.log",
                std::process::id()
            ));
            File::create(&path)?;
            Ok(Log(path))
        }

        pub fn file(&self) -> std::io::Result<File> {
            File::options().append(true).open(&self.0)
        }

        /// The last lines written, for an error message.
        pub fn tail(&self) -> String {
            let text = std::fs::read_to_string(&self.0).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(8)..].join("\n")
        }
    }

    impl Drop for Log {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
