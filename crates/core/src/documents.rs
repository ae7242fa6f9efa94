//! Local documents: text extraction and chunking so far (issue 5 is in progress).
//!
//! - [`extract`] turns a txt, md, pdf, docx, html or csv file into sections of text with their
//!   page or heading; every unreadable, encrypted, binary or oversized file is an error naming
//!   it, so a batch can report it and go on.
//! - [`chunk`] cuts the sections into chunks sized in the embedding model's tokens, between
//!   sentences, with overlap.
//!
//! Still to come (see the issue): the import job, embeddings, the vector and keyword indexes,
//! hybrid search, access levels, grounded answers, the Documents page and the CLI.
//!
//! Everything here is blocking and CPU-bound: call it from a worker thread or `spawn_blocking`.

pub mod chunk;
pub mod extract;
