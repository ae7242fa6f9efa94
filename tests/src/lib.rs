//! Support for Deskmate's end-to-end tests: a small W3C WebDriver client that drives the built
//! app through `tauri-driver` (which starts `WebKitWebDriver`, which starts the app).
//!
//! Each [`App`] owns one `tauri-driver` process on free ports and one WebDriver session; dropping
//! it ends the session (closing the app) and kills the driver, so a failed test leaves nothing
//! running. The app's environment (config, data and models directories, locale) is the driver's.

pub mod llama_server;

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The W3C key under which an element reference is returned.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The app binary built by `cargo xtask e2e` (`DESKMATE_APP_BIN`).
pub fn app_binary() -> Result<PathBuf> {
    let path = std::env::var_os("DESKMATE_APP_BIN")
        .map(PathBuf::from)
        .ok_or("DESKMATE_APP_BIN is not set: run the end-to-end tests through `cargo xtask e2e`")?;
    if !path.is_file() {
        return Err(format!(
            "DESKMATE_APP_BIN names {}, which does not exist",
            path.display()
        )
        .into());
    }
    Ok(path)
}

/// Where screenshots go: `DESKMATE_E2E_OUT`, else `target/e2e` in the repository.
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("DESKMATE_E2E_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join("e2e")
        })
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub struct App {
    agent: ureq::Agent,
    base: String,
    session: String,
    driver: Child,
}

impl App {
    /// Starts `tauri-driver` with `env` added to its environment and opens the app in a session.
    pub fn launch(binary: &Path, env: &[(&str, OsString)]) -> Result<App> {
        let port = free_port()?;
        let native_port = free_port()?;
        let mut cmd = Command::new("tauri-driver");
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native_port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        for (key, value) in env {
            cmd.env(key, value);
        }
        // Its own process group, so that Drop can end tauri-driver together with the
        // WebKitWebDriver and app processes it starts.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd
            .spawn()
            .map_err(|e| format!("could not start tauri-driver (install it: cargo install tauri-driver --locked): {e}"))?;

        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let mut app = App {
            agent,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            driver,
        };
        app.wait_until_driver_answers()?;
        let created = app.request(
            "POST",
            "/session",
            Some(json!({
                "capabilities": {
                    "alwaysMatch": {
                        "tauri:options": { "application": binary }
                    }
                }
            })),
        )?;
        app.session = created["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {created}"))?
            .to_owned();
        Ok(app)
    }

    fn wait_until_driver_answers(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.driver.try_wait()? {
                return Err(format!("tauri-driver exited at start ({status})").into());
            }
            if self
                .agent
                .get(format!("{}/status", self.base))
                .call()
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("tauri-driver did not answer within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends one WebDriver command and returns its `value`, or the driver's error message.
    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call()?,
            ("DELETE", _) => self.agent.delete(&url).call()?,
            (_, body) => self
                .agent
                .post(&url)
                .send_json(body.unwrap_or_else(|| json!({})))?,
        };
        let status = response.status();
        let reply: Value = response.body_mut().read_json()?;
        let value = reply.get("value").cloned().unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!(
                "{method} {path}: {status}: {} {}",
                value["error"].as_str().unwrap_or(""),
                value["message"].as_str().unwrap_or("")
            )
            .into());
        }
        Ok(value)
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Runs JavaScript in the page and returns its result.
    pub fn script(&self, source: &str, args: Value) -> Result<Value> {
        self.request(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({ "script": source, "args": args })),
        )
    }

    /// Waits until `condition` (a JavaScript expression) is truthy.
    pub fn wait_until(&self, condition: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let script = format!("return Boolean({condition});");
        loop {
            if self.script(&script, json!([]))? == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(
                    format!("timed out after {timeout:?} waiting for `{condition}`").into(),
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the UI has loaded its start-up status.
    pub fn wait_ready(&self) -> Result<()> {
        self.wait_until(
            "document.querySelector('[data-testid=\"app-ready\"]')?.dataset.ready === 'true'",
            Duration::from_secs(60),
        )
    }

    fn find(&self, css: &str) -> Result<String> {
        let found = self.request(
            "POST",
            &self.session_path("/element"),
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        found[ELEMENT_KEY]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element reference for `{css}` in {found}").into())
    }

    /// Waits for an element to exist, then returns its reference.
    pub fn wait_for(&self, css: &str) -> Result<String> {
        let selector = serde_json::to_string(css)?;
        self.wait_until(
            &format!("document.querySelector({selector})"),
            Duration::from_secs(20),
        )?;
        self.find(css)
    }

    pub fn exists(&self, css: &str) -> Result<bool> {
        Ok(self.script(
            "return document.querySelector(arguments[0]) !== null;",
            json!([css]),
        )? == Value::Bool(true))
    }

    pub fn click(&self, css: &str) -> Result<()> {
        let element = self.wait_for(css)?;
        self.request(
            "POST",
            &self.session_path(&format!("/element/{element}/click")),
            None,
        )?;
        Ok(())
    }

    /// Types `text` into the first element matching `css` (an input or textarea).
    pub fn type_text(&self, css: &str, text: &str) -> Result<()> {
        let element = self.wait_for(css)?;
        self.request(
            "POST",
            &self.session_path(&format!("/element/{element}/value")),
            Some(json!({ "text": text })),
        )?;
        Ok(())
    }

    /// Clears an input or textarea.
    pub fn clear(&self, css: &str) -> Result<()> {
        let element = self.wait_for(css)?;
        self.request(
            "POST",
            &self.session_path(&format!("/element/{element}/clear")),
            None,
        )?;
        Ok(())
    }

    /// The rendered text of the first element matching `css`.
    pub fn text(&self, css: &str) -> Result<String> {
        let element = self.wait_for(css)?;
        let value = self.request(
            "GET",
            &self.session_path(&format!("/element/{element}/text")),
            None,
        )?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Saves a PNG of the window to `screenshot_dir()/name`.
    pub fn screenshot(&self, name: &str) -> Result<PathBuf> {
        // Let CSS transitions (the navigation highlight) finish so the picture shows the settled UI.
        std::thread::sleep(Duration::from_millis(400));
        let value = self.request("GET", &self.session_path("/screenshot"), None)?;
        let png =
            base64::engine::general_purpose::STANDARD.decode(value.as_str().unwrap_or_default())?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(name);
        std::fs::write(&path, png)?;
        Ok(path)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.request("DELETE", &self.session_path(""), None);
        }
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
