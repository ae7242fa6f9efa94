//! Opening an original file in the system's viewer, at a page for PDFs where the viewer can.
//!
//! `xdg-open` (and `open` on macOS) cannot pass a page, so for a PDF with a page the known
//! viewers that take one on their command line are tried first: Evince (`--page-index`), Okular
//! (`--page`), Zathura (`--page`), qpdfview (`FILE#PAGE`). The viewer is started detached; its
//! exit is not waited for.

use crate::error::DocumentsError;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Opened {
    pub program: String,
    /// Whether the viewer was asked for the page (false: opened at its start).
    pub at_page: bool,
}

/// The command line that opens `file` (at `page` when it is a PDF and a viewer that takes a page
/// is installed); `find` looks a program up on the PATH.
pub fn viewer_command(
    file: &Path,
    page: Option<u32>,
    find: &dyn Fn(&str) -> Option<PathBuf>,
) -> Option<(PathBuf, Vec<String>, bool)> {
    let file_arg = file.to_string_lossy().into_owned();
    let is_pdf = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pdf"));
    if let (true, Some(page)) = (is_pdf, page) {
        let candidates: [(&str, Vec<String>); 4] = [
            (
                "evince",
                vec![format!("--page-index={page}"), file_arg.clone()],
            ),
            (
                "okular",
                vec!["--page".into(), page.to_string(), file_arg.clone()],
            ),
            (
                "zathura",
                vec!["--page".into(), page.to_string(), file_arg.clone()],
            ),
            ("qpdfview", vec![format!("{file_arg}#{page}")]),
        ];
        for (name, args) in candidates {
            if let Some(program) = find(name) {
                return Some((program, args, true));
            }
        }
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    find(opener).map(|program| (program, vec![file_arg], false))
}

/// A program on the PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Opens `file` in the system viewer.
pub fn open_original(file: &Path, page: Option<u32>) -> Result<Opened> {
    if !file.is_file() {
        return Err(Error::Documents(DocumentsError::OpenFailed {
            path: file.to_path_buf(),
            reason: "the file is no longer there (moved or deleted since it was imported)".into(),
        }));
    }
    let Some((program, args, at_page)) = viewer_command(file, page, &find_on_path) else {
        return Err(Error::Documents(DocumentsError::OpenFailed {
            path: file.to_path_buf(),
            reason: "no program to open files was found (install xdg-utils)".into(),
        }));
    };
    Command::new(&program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            Error::Documents(DocumentsError::OpenFailed {
                path: file.to_path_buf(),
                reason: format!("{}: {e}", program.display()),
            })
        })?;
    Ok(Opened {
        program: program.to_string_lossy().into_owned(),
        at_page,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_pdf_page_goes_to_a_viewer_that_takes_one_and_everything_else_to_the_opener() {
        let only = |names: &'static [&'static str]| {
            move |n: &str| {
                names
                    .contains(&n)
                    .then(|| PathBuf::from(format!("/usr/bin/{n}")))
            }
        };
        let file = Path::new("/docs/report.PDF");
        let (program, args, at_page) =
            viewer_command(file, Some(3), &only(&["okular", "xdg-open", "open"])).unwrap();
        assert_eq!(program, PathBuf::from("/usr/bin/okular"));
        assert_eq!(args, ["--page", "3", "/docs/report.PDF"]);
        assert!(at_page);
        let (program, args, _) = viewer_command(file, Some(3), &only(&["evince"])).unwrap();
        assert_eq!(program, PathBuf::from("/usr/bin/evince"));
        assert_eq!(args, ["--page-index=3", "/docs/report.PDF"]);
        // No page-capable viewer: the system opener, at the start.
        let (_, args, at_page) =
            viewer_command(file, Some(3), &only(&["xdg-open", "open"])).unwrap();
        assert_eq!(args, ["/docs/report.PDF"]);
        assert!(!at_page);
        // Not a PDF: never a PDF viewer.
        let (program, _, _) = viewer_command(
            Path::new("/docs/a.docx"),
            Some(2),
            &only(&["evince", "xdg-open", "open"]),
        )
        .unwrap();
        assert!(program.ends_with("xdg-open") || program.ends_with("open"));
        assert!(viewer_command(file, None, &only(&[])).is_none());
    }

    #[test]
    fn a_file_that_is_gone_is_a_clear_error() {
        let err = open_original(Path::new("/nowhere/gone.pdf"), Some(1)).unwrap_err();
        assert_eq!(err.code(), "open_failed");
        assert!(err.to_string().contains("gone.pdf"));
    }
}
