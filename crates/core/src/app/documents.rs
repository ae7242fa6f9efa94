//! The document use cases of [`App`]: import, list, search, levels, open.
//!
//! Imports run on one background runner per app ([`ImportRunner`]): it takes every unfinished
//! job of this app's library (and orphans of processes that ended), so an import started while
//! one is running is picked up before the runner ends. Its progress goes to the observer a front
//! end registered ([`App::on_import_events`]); the window forwards it to every page, so a page
//! opened mid-import, or an import resumed at start, shows it too. The active profile's
//! clearance is applied by the library, never here.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;

use super::App;
use crate::documents::open::Opened;
use crate::documents::{Document, ImportProgress, Library, SearchResult};
use crate::error::ErrorCode;
use crate::store::AccessLevel;
use crate::{Error, Result};

/// What the import runner reports.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImportEvent {
    Progress(ImportProgress),
    /// A run of imports ended: all jobs done, or stopped by `error`.
    Finished {
        error: Option<Error>,
    },
}

type Observer = Arc<dyn Fn(&ImportEvent) + Send + Sync>;

/// Where the runner's events go. Whether a runner runs is the library's own flag.
#[derive(Default)]
pub(super) struct ImportRunner {
    observer: RwLock<Option<Observer>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DocumentsStatus {
    pub importing: bool,
    /// Why search is keyword-only (no embedding model or ONNX Runtime), if it is.
    pub vector_notice: Option<Error>,
}

impl App {
    /// Where the import runner's progress goes from now on.
    pub fn on_import_events(&self, observer: impl Fn(&ImportEvent) + Send + Sync + 'static) {
        *self
            .imports
            .observer
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(observer));
    }

    /// Carries on with imports cut off by the last exit (and makes the embeddings missing while
    /// the model was absent), in the background.
    pub fn resume_imports(&self) -> Result<()> {
        let library = Arc::clone(self.library()?);
        self.run_imports(library)
    }

    /// Records an import of files and folders and starts it; returns the job id. Progress goes
    /// to the import observer.
    pub fn import_documents(&self, paths: &[PathBuf], level: Option<AccessLevel>) -> Result<i64> {
        if paths.is_empty() {
            return Err(Error::InvalidInput {
                field: "paths",
                message: "choose at least one file or folder".into(),
            });
        }
        let library = Arc::clone(self.library()?);
        let job = library.create_job(paths, level)?;
        self.run_imports(library)?;
        Ok(job)
    }

    /// Imports a document's file again (after it changed, or to fix its passages).
    pub fn reindex_document(&self, id: i64) -> Result<i64> {
        let library = Arc::clone(self.library()?);
        let job = library.reindex_document(id)?;
        self.run_imports(library)?;
        Ok(job)
    }

    pub fn cancel_import(&self) -> Result<()> {
        self.library()?.cancel_import();
        Ok(())
    }

    pub fn documents(&self) -> Result<Vec<Document>> {
        self.library()?.documents()
    }

    pub fn documents_status(&self) -> Result<DocumentsStatus> {
        let library = self.library()?;
        Ok(DocumentsStatus {
            importing: library.is_importing(),
            vector_notice: library.vector_notice(),
        })
    }

    pub fn delete_document(&self, id: i64) -> Result<()> {
        self.library()?.delete_document(id)
    }

    pub fn set_document_level(&self, id: i64, level: AccessLevel) -> Result<Document> {
        self.library()?.set_level(id, level)
    }

    /// Passages for `query` that the active profile may read, best first.
    pub fn search_documents(&self, query: &str, k: Option<usize>) -> Result<SearchResult> {
        self.library()?.search(query, k.unwrap_or(10))
    }

    /// Opens a document's original file in the system viewer, at `page` for PDFs where it can.
    pub fn open_document(&self, id: i64, page: Option<u32>) -> Result<Opened> {
        self.library()?.open_original(id, page)
    }

    /// Runs every unfinished import job on a thread of its own, unless a runner is running (it
    /// picks up new jobs before it ends).
    fn run_imports(&self, library: Arc<Library>) -> Result<()> {
        if library.is_importing() {
            return Ok(());
        }
        let observer = self
            .imports
            .observer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let notify = move |event: ImportEvent| {
            if let Some(observer) = &observer {
                observer(&event);
            }
        };
        let spawned = std::thread::Builder::new()
            .name("deskmate-import".into())
            .spawn(move || {
                let result = library.run_jobs(&mut |p| notify(ImportEvent::Progress(p.clone())));
                let error = match result {
                    Ok(_) => None,
                    // Another runner got there first: it will do the job.
                    Err(e) if e.code() == ErrorCode::ImportInProgress => return,
                    Err(e) => {
                        tracing::error!(error = %e, "import stopped");
                        Some(e)
                    }
                };
                notify(ImportEvent::Finished { error });
            });
        spawned.map(|_| ()).map_err(|e| Error::Internal {
            what: "the import thread",
            reason: e.to_string(),
        })
    }
}
