//! Optical character recognition: the text of a scanned PDF page or of an attached image, read
//! by Tesseract in Korean and English; a PDF page is rendered for it by poppler's `pdftoppm`.
//!
//! Why child processes and not bindings: Tesseract and poppler are C++ libraries with their own
//! threads and failure modes. A process per page keeps a crash on one bad scan from taking the
//! app down, can be killed the moment the user cancels, and needs nothing at build time: the
//! Debian packages (`tesseract-ocr`, `tesseract-ocr-kor`, `poppler-utils`) are run-time
//! dependencies of the `.deb`, and a machine without them gets [`OcrError`]s that say what to
//! install.
//!
//! Invariants:
//! - Tesseract runs with one OpenMP thread (`OMP_THREAD_LIMIT=1`): OCR is background work and
//!   must leave cores to chat and search, which never wait for it.
//! - Every call checks `cancelled` while its child runs (every [`POLL`]) and kills the child
//!   when it says so; a page that runs past [`PAGE_TIMEOUT`] is killed and reported.
//! - The page image goes from `pdftoppm` to `tesseract` through a temporary file that is
//!   removed with its folder, also on error.
//!
//! Everything here blocks: call it from the import worker or `spawn_blocking`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{DocumentsError, Error, Result};

/// How often a running child is checked for cancellation.
const POLL: Duration = Duration::from_millis(25);

/// A page that takes longer than this is given up (a 300-dpi A4 page takes a few seconds).
const PAGE_TIMEOUT: Duration = Duration::from_secs(180);

/// What the page is rendered at: Tesseract reads body text best at 200–300 dpi.
pub const DEFAULT_DPI: u32 = 250;

/// The resolution Tesseract is told an image without one has (see [`Ocr::read_image`]).
const SCREENSHOT_DPI: u32 = 300;

/// The Tesseract language set for Korean office documents with English words in them.
pub const DEFAULT_LANGUAGES: &str = "kor+eng";

/// Reads text out of images and PDF pages.
#[derive(Debug, Clone)]
pub struct Ocr {
    tesseract: PathBuf,
    pdftoppm: PathBuf,
    languages: String,
    dpi: u32,
}

/// The outcome of one call: the text, or `Cancelled` when `cancelled` said so first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OcrRead {
    Text(String),
    Cancelled,
}

impl Default for Ocr {
    fn default() -> Self {
        Ocr::new(DEFAULT_LANGUAGES)
    }
}

impl Ocr {
    /// OCR in `languages` (Tesseract's `kor+eng` form) with the tools found on `PATH`.
    pub fn new(languages: &str) -> Ocr {
        Ocr {
            tesseract: PathBuf::from("tesseract"),
            pdftoppm: PathBuf::from("pdftoppm"),
            languages: languages.trim().to_owned(),
            dpi: DEFAULT_DPI,
        }
    }

    /// The same, with the two programs at these paths (tests use this for a missing tool).
    pub fn with_programs(languages: &str, tesseract: &Path, pdftoppm: &Path) -> Ocr {
        Ocr {
            tesseract: tesseract.to_path_buf(),
            pdftoppm: pdftoppm.to_path_buf(),
            ..Ocr::new(languages)
        }
    }

    pub fn languages(&self) -> &str {
        &self.languages
    }

    /// Whether Tesseract runs and has every language asked for; the error says what to install.
    /// The answer for the default programs is probed once per process.
    pub fn check(&self) -> Result<()> {
        static DEFAULT_LANGS: OnceLock<std::result::Result<Vec<String>, String>> = OnceLock::new();
        let installed = if self.tesseract == Path::new("tesseract") {
            DEFAULT_LANGS
                .get_or_init(|| installed_languages(&self.tesseract))
                .clone()
        } else {
            installed_languages(&self.tesseract)
        };
        let installed = installed.map_err(unavailable)?;
        let missing: Vec<&str> = self
            .languages
            .split('+')
            .map(str::trim)
            .filter(|l| !l.is_empty() && !installed.iter().any(|i| i == l))
            .collect();
        if !missing.is_empty() {
            return Err(unavailable(format!(
                "Tesseract has no data for {} (installed: {}); install {}",
                missing.join(", "),
                installed.join(", "),
                missing
                    .iter()
                    .map(|l| format!("tesseract-ocr-{l}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
        Ok(())
    }

    /// The text in an image file (PNG, JPEG, TIFF, …: whatever Leptonica reads), such as an
    /// attached screenshot. Its resolution is given to Tesseract as 300 dpi: screenshots carry
    /// none, and Tesseract's own estimate makes it find no text at all in a sparse image (two
    /// lines of an error message), which it reads word for word at 300.
    pub fn read_image(&self, image: &Path, cancelled: &dyn Fn() -> bool) -> Result<OcrRead> {
        self.read_image_at(image, SCREENSHOT_DPI, cancelled)
    }

    fn read_image_at(
        &self,
        image: &Path,
        dpi: u32,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<OcrRead> {
        let mut command = Command::new(&self.tesseract);
        command
            .arg(image)
            .arg("stdout")
            .args(["-l", &self.languages])
            .args(["--dpi", &dpi.to_string()])
            // Page segmentation 3: find the columns and blocks of a page or a screenshot.
            .args(["--psm", "3"])
            .env("OMP_THREAD_LIMIT", "1");
        match run(command, cancelled, "tesseract")? {
            Ran::Cancelled => Ok(OcrRead::Cancelled),
            Ran::Output(bytes) => Ok(OcrRead::Text(clean_ocr_text(&String::from_utf8_lossy(
                &bytes,
            )))),
        }
    }

    /// The text of page `page` (1-based) of the PDF at `pdf`, rendered and then read.
    pub fn read_pdf_page(
        &self,
        pdf: &Path,
        page: u32,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<OcrRead> {
        let dir = ScratchDir::new()?;
        let root = dir.0.join("page");
        let mut command = Command::new(&self.pdftoppm);
        command
            .args(["-f", &page.to_string(), "-l", &page.to_string()])
            .args(["-r", &self.dpi.to_string()])
            .args(["-gray", "-png", "-singlefile"])
            .arg(pdf)
            .arg(&root);
        if let Ran::Cancelled = run(command, cancelled, "pdftoppm")? {
            return Ok(OcrRead::Cancelled);
        }
        let image = root.with_extension("png");
        if !image.is_file() {
            return Err(Error::Documents(DocumentsError::OcrFailed {
                path: pdf.to_path_buf(),
                page: Some(page),
                reason: "pdftoppm rendered no image".into(),
            }));
        }
        self.read_image_at(&image, self.dpi, cancelled)
    }
}

/// Tesseract's output tidied for indexing: form feeds and trailing spaces removed, runs of
/// blank lines collapsed, and the spaces Tesseract puts around the Korean middle dot dropped.
pub fn clean_ocr_text(raw: &str) -> String {
    // Each line trimmed first (Tesseract indents and pads them), so the interpunct fix below
    // sees the same text it would line by line; blank runs are then the documents' own tidy.
    let pages = raw.replace('\u{c}', "\n");
    let trimmed: Vec<&str> = pages.lines().map(str::trim).collect();
    // Tesseract reads the interpunct (·, U+00B7) as the Hangul-compatible U+318D.
    let text = trimmed
        .join("\n")
        .replace(" \u{318d} ", "·")
        .replace('\u{318d}', "·");
    crate::documents::extract::tidy(&text)
}

/// A private folder for one page's image, removed when dropped (also on error or cancel).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<ScratchDir> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("deskmate-ocr-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unavailable(reason: impl Into<String>) -> Error {
    Error::Documents(DocumentsError::OcrUnavailable {
        reason: reason.into(),
    })
}

fn installed_languages(tesseract: &Path) -> std::result::Result<Vec<String>, String> {
    let output = Command::new(tesseract)
        .arg("--list-langs")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "{} cannot be run ({e}); install tesseract-ocr and tesseract-ocr-kor",
                tesseract.display()
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "`{} --list-langs` failed: {}",
            tesseract.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    // Tesseract 4 printed the list on stderr, 5 on stdout; the first line is a header.
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("List of") && !l.contains(' '))
        .map(str::to_owned)
        .collect())
}

enum Ran {
    Output(Vec<u8>),
    Cancelled,
}

/// Runs `command` to the end, reading its stdout; kills it on cancel or past the timeout.
fn run(mut command: Command, cancelled: &dyn Fn() -> bool, name: &str) -> Result<Ran> {
    let failed = |reason: String| {
        Error::Documents(DocumentsError::OcrFailed {
            path: PathBuf::from(name),
            page: None,
            reason,
        })
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            unavailable(format!(
                "{name} cannot be run ({e}); install tesseract-ocr, tesseract-ocr-kor and poppler-utils"
            ))
        })?;
    // The pipes are drained on threads so that a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| failed(e.to_string()))? {
            break status;
        }
        if cancelled() || started.elapsed() > PAGE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let _ = stdout.join();
            let _ = stderr.join();
            if cancelled() {
                return Ok(Ran::Cancelled);
            }
            return Err(failed(format!(
                "stopped after {} s",
                PAGE_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    };
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(failed(format!("{status}: {}", last.trim())));
    }
    Ok(Ran::Output(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tesseract_output_is_tidied_and_the_middle_dot_restored() {
        let raw = "  3\u{318d}1운동으로  \n\n\n정의 \u{318d} 인도와\n\u{c}";
        assert_eq!(clean_ocr_text(raw), "3·1운동으로\n\n정의·인도와");
    }

    #[test]
    fn a_missing_tesseract_says_what_to_install() {
        let ocr = Ocr::with_programs(
            "kor+eng",
            Path::new("/nonexistent/tesseract"),
            Path::new("/nonexistent/pdftoppm"),
        );
        let err = ocr.check().unwrap_err();
        assert_eq!(err.code(), "ocr_unavailable");
        assert!(err.to_string().contains("tesseract-ocr-kor"), "{err}");
        let err = ocr
            .read_image(Path::new("/tmp/x.png"), &|| false)
            .unwrap_err();
        assert_eq!(err.code(), "ocr_unavailable");
    }

    #[test]
    fn cancelling_kills_the_running_child() {
        // `sleep` stands in for a slow page: cancel must not wait for it to finish.
        let mut command = Command::new("sleep");
        command.arg("30");
        let started = Instant::now();
        let ran = run(
            command,
            &|| started.elapsed() > Duration::from_millis(100),
            "sleep",
        )
        .unwrap();
        assert!(matches!(ran, Ran::Cancelled));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_failing_child_reports_its_last_error_line() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo first >&2; echo 'Error: bad page' >&2; exit 3"]);
        let Err(err) = run(command, &|| false, "pdftoppm") else {
            panic!("a failing child is an error");
        };
        assert_eq!(err.code(), "ocr_failed");
        assert!(err.to_string().contains("bad page"), "{err}");
    }
}
