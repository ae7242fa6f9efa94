//! The prompt cache on disk: a slot's KV cache saved when the slot is about to drop its
//! conversation and when the model unloads, and restored by the next turn of that conversation in
//! any slot, also after a restart, so only what is new is read.
//!
//! **Layout.** One folder per model identity and load parameters ([`store_dir`]): the model
//! file's path, size and modification time, the context size, the slot count and the flash
//! attention setting, all of which the KV cache's bytes depend on. A state saved under other
//! parameters is never in the folder that is looked at, so it cannot be mistaken for this one.
//! In the folder:
//!
//! ```text
//! <hash>.kv       llama.cpp's sequence state file (llama_state_seq_save_file): tokens + KV cells
//! <hash>.tokens   the same tokens, little-endian i32, read at start to match prompts
//! index.json      every entry: name, token count, bytes, sha256 of the .kv, last use
//! ```
//!
//! **Trust.** A `.kv` is written to a temporary name, hashed, then renamed; the index is written
//! atomically after it. Before a restore the file's sha256 must equal the index's, and llama.cpp
//! must accept it and give back exactly the indexed tokens; anything else (a corrupt, truncated,
//! foreign or vanished file) is deleted and the turn reads its prompt as if nothing was saved.
//!
//! **Budget.** The entries' bytes never exceed the budget (`models.prompt_cache_mb`): the least
//! recently used go first, and a state larger than the whole budget is not kept.
//!
//! **Images.** A sequence with image positions (`slots::NO_TOKEN`) is never saved, so image
//! embeddings never come back from disk; the same images attached again are read again.
//!
//! Threading: a store belongs to one model worker thread (the folder also names the persona),
//! which does all its I/O. Two processes on one data folder each keep their own index in memory;
//! the last index written wins, and an entry whose file another process deleted fails its check
//! and is dropped.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use llama_cpp_2::token::LlamaToken;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::worker::{common_prefix, NO_TOKEN};

/// Shorter conversations are read again faster than a file is found, hashed and loaded.
pub(crate) const MIN_SAVED_TOKENS: usize = 64;

const INDEX_FILE: &str = "index.json";

/// One saved sequence.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexEntry {
    name: String,
    tokens: usize,
    bytes: u64,
    sha256: String,
    last_used_ms: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    meta: IndexEntry,
    tokens: Vec<LlamaToken>,
}

/// What a restore found.
#[derive(Debug)]
pub(crate) struct Found {
    index: usize,
    /// Leading prompt tokens the saved state holds.
    pub(crate) prefix: usize,
}

/// The disk cache of one model worker.
pub(crate) struct PromptStore {
    dir: PathBuf,
    budget: u64,
    entries: Vec<Entry>,
}

/// What a state's bytes depend on, hashed into its folder's name.
pub(crate) struct StoreKey<'a> {
    pub(crate) persona: &'a str,
    pub(crate) model: &'a Path,
    pub(crate) n_ctx: u32,
    pub(crate) parallel: u32,
    pub(crate) flash_attn: &'a str,
}

/// The folder of `key` under `root`.
pub(crate) fn store_dir(root: &Path, key: &StoreKey<'_>) -> PathBuf {
    let meta = fs::metadata(key.model).ok();
    let modified = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let identity = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}",
        key.model.display(),
        meta.as_ref().map_or(0, fs::Metadata::len),
        modified,
        key.n_ctx,
        key.parallel,
        key.flash_attn,
        // A new build may bring another llama.cpp, whose state layout may differ.
        env!("CARGO_PKG_VERSION"),
    );
    let hash = hex::encode(Sha256::digest(identity.as_bytes()));
    let stem = key
        .model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    root.join(format!("{}-{stem}-{}", key.persona, &hash[..16]))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn tokens_to_bytes(tokens: &[LlamaToken]) -> Vec<u8> {
    tokens.iter().flat_map(|t| t.0.to_le_bytes()).collect()
}

fn tokens_from_bytes(bytes: &[u8]) -> Option<Vec<LlamaToken>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| LlamaToken(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
    )
}

impl PromptStore {
    /// Opens (creating) the store in `dir`. Entries whose files are missing or of the wrong size
    /// are deleted; files the index does not name (a crash between writes) too.
    pub(crate) fn open(dir: PathBuf, budget: u64) -> PromptStore {
        let mut store = PromptStore {
            dir,
            budget,
            entries: Vec::new(),
        };
        if let Err(e) = fs::create_dir_all(&store.dir) {
            tracing::warn!(dir = %store.dir.display(), error = %e, "prompt cache folder not created; nothing is saved");
            return store;
        }
        let index: Vec<IndexEntry> = fs::read(store.dir.join(INDEX_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for meta in index {
            let kv = store.kv_path(&meta.name);
            let tokens = fs::read(store.tokens_path(&meta.name))
                .ok()
                .and_then(|b| tokens_from_bytes(&b));
            let size_ok = fs::metadata(&kv).is_ok_and(|m| m.len() == meta.bytes);
            match tokens {
                Some(tokens) if size_ok && tokens.len() == meta.tokens => {
                    store.entries.push(Entry { meta, tokens })
                }
                _ => store.delete_files(&meta.name),
            }
        }
        // Files no entry names.
        if let Ok(read) = fs::read_dir(&store.dir) {
            for file in read.filter_map(|e| e.ok()) {
                let name = file.file_name().to_string_lossy().into_owned();
                let stem = name.split('.').next().unwrap_or_default().to_owned();
                if name != INDEX_FILE && !store.entries.iter().any(|e| e.meta.name == stem) {
                    let _ = fs::remove_file(file.path());
                }
            }
        }
        store.enforce_budget();
        store.write_index();
        store
    }

    fn kv_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.kv"))
    }

    fn tokens_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.tokens"))
    }

    fn delete_files(&self, name: &str) {
        let _ = fs::remove_file(self.kv_path(name));
        let _ = fs::remove_file(self.tokens_path(name));
    }

    fn write_index(&self) {
        let index: Vec<&IndexEntry> = self.entries.iter().map(|e| &e.meta).collect();
        let result = serde_json::to_vec_pretty(&index)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                crate::atomic_file::write(&self.dir.join(INDEX_FILE), &bytes)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), error = %e, "prompt cache index not written");
        }
    }

    /// A use time later than every entry's, so the order of uses is kept within a millisecond.
    fn tick(&self) -> u64 {
        let latest = self.entries.iter().map(|e| e.meta.last_used_ms).max();
        now_ms().max(latest.map_or(0, |l| l + 1))
    }

    /// Bytes of all entries.
    pub(crate) fn used_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.meta.bytes).sum()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Deletes the least recently used entries until the rest fit the budget.
    fn enforce_budget(&mut self) {
        while self.used_bytes() > self.budget {
            let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.meta.last_used_ms)
                .map(|(i, _)| i)
            else {
                break;
            };
            let gone = self.entries.remove(oldest);
            self.delete_files(&gone.meta.name);
        }
    }

    /// Whether saving `tokens` adds anything: long enough, no image positions, and not already
    /// held by an entry that starts with all of them.
    pub(crate) fn worth_saving(&self, tokens: &[LlamaToken]) -> bool {
        self.budget > 0
            && tokens.len() >= MIN_SAVED_TOKENS
            && !tokens.contains(&NO_TOKEN)
            && !self
                .entries
                .iter()
                .any(|e| e.tokens.len() >= tokens.len() && e.tokens[..tokens.len()] == *tokens)
    }

    /// Saves `tokens` with `write`, which writes llama.cpp's state file at the path it is given
    /// and returns its size. Entries that are a prefix of `tokens` are replaced by it. Returns
    /// the bytes written, or why nothing was kept.
    pub(crate) fn save(
        &mut self,
        tokens: &[LlamaToken],
        write: impl FnOnce(&Path) -> Result<usize, String>,
    ) -> Result<u64, String> {
        if !self.worth_saving(tokens) {
            return Err("not worth saving".into());
        }
        let name = hex::encode(&Sha256::digest(tokens_to_bytes(tokens))[..12]);
        let tmp = self.dir.join(format!("{name}.kv.tmp"));
        let written = write(&tmp);
        let checked = written.and_then(|_| {
            let bytes = fs::metadata(&tmp).map_err(|e| e.to_string())?.len();
            let sha256 = sha256_file(&tmp).map_err(|e| e.to_string())?;
            fs::write(self.tokens_path(&name), tokens_to_bytes(tokens))
                .map_err(|e| e.to_string())?;
            fs::rename(&tmp, self.kv_path(&name)).map_err(|e| e.to_string())?;
            Ok((bytes, sha256))
        });
        let (bytes, sha256) = match checked {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                self.delete_files(&name);
                return Err(e);
            }
        };
        if bytes > self.budget {
            self.delete_files(&name);
            return Err(format!(
                "{bytes} bytes is more than the whole budget of {}",
                self.budget
            ));
        }
        // Entries the new one covers (earlier turns of the same conversation) go.
        let covered: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.tokens.len() <= tokens.len() && tokens[..e.tokens.len()] == *e.tokens)
            .map(|e| e.meta.name.clone())
            .collect();
        for old in &covered {
            if *old != name {
                self.delete_files(old);
            }
        }
        self.entries.retain(|e| !covered.contains(&e.meta.name));
        self.entries.push(Entry {
            meta: IndexEntry {
                name,
                tokens: tokens.len(),
                bytes,
                sha256,
                last_used_ms: self.tick(),
            },
            tokens: tokens.to_vec(),
        });
        self.enforce_budget();
        self.write_index();
        Ok(bytes)
    }

    /// The entry sharing the longest prefix with `prompt`, if it is longer than `at_least`.
    pub(crate) fn best(&self, prompt: &[LlamaToken], at_least: usize) -> Option<Found> {
        self.entries
            .iter()
            .enumerate()
            .map(|(index, e)| Found {
                index,
                prefix: common_prefix(&e.tokens, prompt),
            })
            .filter(|f| f.prefix > at_least)
            .max_by_key(|f| f.prefix)
    }

    /// Restores `found` with `read`, which loads llama.cpp's state file at the path it is given
    /// and returns the tokens it holds. The file must have the indexed sha256 and give back the
    /// indexed tokens; otherwise it is deleted and the reason returned.
    pub(crate) fn restore(
        &mut self,
        found: Found,
        read: impl FnOnce(&Path) -> Result<Vec<LlamaToken>, String>,
    ) -> Result<Vec<LlamaToken>, String> {
        let Some(entry) = self.entries.get(found.index) else {
            return Err("no such entry".into());
        };
        let path = self.kv_path(&entry.meta.name);
        let checked = match sha256_file(&path) {
            Ok(sha) if sha == entry.meta.sha256 => read(&path).and_then(|tokens| {
                if tokens == entry.tokens {
                    Ok(tokens)
                } else {
                    Err(format!(
                        "the file holds {} tokens that are not the {} indexed",
                        tokens.len(),
                        entry.tokens.len()
                    ))
                }
            }),
            Ok(_) => Err("its sha256 does not match the index (corrupt or truncated)".into()),
            Err(e) => Err(e.to_string()),
        };
        match checked {
            Ok(tokens) => {
                let now = self.tick();
                if let Some(entry) = self.entries.get_mut(found.index) {
                    entry.meta.last_used_ms = now;
                }
                self.write_index();
                Ok(tokens)
            }
            Err(reason) => {
                let gone = self.entries.remove(found.index);
                self.delete_files(&gone.meta.name);
                self.write_index();
                tracing::warn!(file = %path.display(), %reason, "a saved prompt cache was not used and is deleted");
                Err(reason)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn toks(n: usize, seed: i32) -> Vec<LlamaToken> {
        (0..n).map(|i| LlamaToken(seed * 1000 + i as i32)).collect()
    }

    /// Stands in for llama.cpp's writer: the tokens and `pad` bytes of "state".
    fn fake_write(
        tokens: &[LlamaToken],
        pad: usize,
    ) -> impl FnOnce(&Path) -> Result<usize, String> {
        let mut bytes = tokens_to_bytes(tokens);
        bytes.extend(std::iter::repeat_n(7u8, pad));
        move |path: &Path| {
            fs::write(path, &bytes).map_err(|e| e.to_string())?;
            Ok(bytes.len())
        }
    }

    fn fake_read(n: usize) -> impl FnOnce(&Path) -> Result<Vec<LlamaToken>, String> {
        move |path: &Path| {
            let bytes = fs::read(path).map_err(|e| e.to_string())?;
            tokens_from_bytes(&bytes[..n * 4]).ok_or_else(|| "bad".to_owned())
        }
    }

    #[test]
    fn a_saved_conversation_is_found_by_its_next_turn_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let turn = toks(200, 1);
        {
            let mut store = PromptStore::open(dir.path().to_path_buf(), 1 << 20);
            store.save(&turn, fake_write(&turn, 1000)).unwrap();
        }
        let mut store = PromptStore::open(dir.path().to_path_buf(), 1 << 20);
        let mut next = turn.clone();
        next.extend(toks(30, 2));
        let found = store.best(&next, 0).unwrap();
        assert_eq!(found.prefix, 200);
        assert!(store.best(&next, 200).is_none(), "nothing better than 200");
        assert_eq!(store.restore(found, fake_read(200)).unwrap(), turn);
        // Another conversation finds nothing.
        assert!(store.best(&toks(300, 3), 0).is_none());
    }

    #[test]
    fn corrupt_truncated_and_mismatched_files_are_deleted_and_never_used() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = PromptStore::open(dir.path().to_path_buf(), 1 << 20);
        let (a, b, c) = (toks(100, 1), toks(100, 2), toks(100, 3));
        for t in [&a, &b, &c] {
            store.save(t, fake_write(t, 500)).unwrap();
        }
        let kv = |t: &[LlamaToken]| {
            dir.path().join(format!(
                "{}.kv",
                hex::encode(&Sha256::digest(tokens_to_bytes(t))[..12])
            ))
        };
        // a: one byte changed. b: cut short. c: llama.cpp refuses it.
        let mut bytes = fs::read(kv(&a)).unwrap();
        bytes[450] ^= 0xff;
        fs::write(kv(&a), bytes).unwrap();
        let bytes = fs::read(kv(&b)).unwrap();
        fs::write(kv(&b), &bytes[..300]).unwrap();
        for (t, read) in [
            (
                &a,
                Box::new(fake_read(100))
                    as Box<dyn FnOnce(&Path) -> Result<Vec<LlamaToken>, String>>,
            ),
            (&b, Box::new(fake_read(100))),
            (
                &c,
                Box::new(|_: &Path| Err("llama.cpp could not load it".to_owned())),
            ),
        ] {
            let found = store.best(t, 0).unwrap();
            assert!(store.restore(found, read).is_err());
            assert!(!kv(t).exists(), "deleted");
            assert!(store.best(t, 0).is_none(), "forgotten");
        }
        assert_eq!(store.len(), 0);
        // A reopen does not bring them back either.
        assert_eq!(
            PromptStore::open(dir.path().to_path_buf(), 1 << 20).len(),
            0
        );
    }

    #[test]
    fn the_cache_never_grows_past_its_budget_and_the_least_recently_used_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 10_000;
        let mut store = PromptStore::open(dir.path().to_path_buf(), budget);
        let convs: Vec<Vec<LlamaToken>> = (1..=11).map(|s| toks(100, s)).collect();
        for (i, t) in convs.iter().enumerate() {
            store.save(t, fake_write(t, 2000)).unwrap();
            assert!(
                store.used_bytes() <= budget,
                "after {i}: {}",
                store.used_bytes()
            );
            let on_disk: u64 = fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".kv"))
                .map(|e| e.metadata().unwrap().len())
                .sum();
            assert!(on_disk <= budget, "on disk after {i}: {on_disk}");
            if i == 7 {
                // 4, 5, 6 and 7 are held; using 4 makes it the most recent.
                let found = store.best(&convs[4], 0).unwrap();
                store.restore(found, fake_read(100)).unwrap();
            }
        }
        // 2400 bytes each: four fit. 8, 9 and 10 pushed out 5, 6 and 7, not the used 4.
        assert_eq!(store.len(), 4);
        for kept in [4, 8, 9, 10] {
            assert!(store.best(&convs[kept], 0).is_some(), "{kept} kept");
        }
        for gone in [0, 5, 6, 7] {
            assert!(store.best(&convs[gone], 0).is_none(), "{gone} gone");
        }
        // A state bigger than the whole budget is not kept.
        let big = toks(100, 99);
        assert!(store.save(&big, fake_write(&big, 20_000)).is_err());
        assert!(store.used_bytes() <= budget);
    }

    #[test]
    fn a_longer_turn_replaces_the_earlier_one_and_short_or_image_sequences_are_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = PromptStore::open(dir.path().to_path_buf(), 1 << 20);
        let first = toks(100, 1);
        store.save(&first, fake_write(&first, 10)).unwrap();
        let mut second = first.clone();
        second.extend(toks(50, 2));
        store.save(&second, fake_write(&second, 10)).unwrap();
        assert_eq!(store.len(), 1);
        assert!(
            !store.worth_saving(&first),
            "already held by the longer one"
        );
        assert!(!store.worth_saving(&toks(MIN_SAVED_TOKENS - 1, 3)));
        let mut with_image = toks(100, 4);
        with_image[10] = NO_TOKEN;
        assert!(!store.worth_saving(&with_image));
    }
}
