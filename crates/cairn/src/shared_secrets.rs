//! What nodes on one shared store must agree on and keep secret: the keys that seal
//! NextTokens and STS session tokens, the identities (access keys), and the digest signing
//! keys. Each lives as a file in the node's data directory, as on a single node; on a shared
//! store the files are also kept in the store, sealed (AES-256-GCM) under the store key, a
//! file every node is given and the database never sees. A database reader (or a backup of
//! it) holds only ciphertext.
//!
//! The first node to offer a file sets it (a put-if-absent); every other node adopts that
//! one, so two nodes started at once still end up with the same keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use aws_lc_rs::aead::{Aad, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_model::StateChange;
use cairn_store::EventStore;

/// The state namespace of sealed shared files, keyed by their path in the data directory.
pub const SHARED_FILES: &str = "shared-files";
const SEALED_PREFIX: &str = "aes-256-gcm:";
/// Digest signing keys, one directory per region.
pub const DIGEST_KEYS_DIR: &str = "digest-keys";

pub struct SharedSecrets {
    store: Arc<dyn EventStore>,
    data_dir: PathBuf,
    key: RandomizedNonceKey,
}

/// Reads the store key from `path`, making one (32 random bytes, hex, mode 0600) if there is
/// none: the first node makes it, and the others must be given a copy.
pub fn load_or_create_store_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim())
                .ok()
                .filter(|bytes| bytes.len() == 32)
                .with_context(|| {
                    format!(
                        "{} must hold 64 hexadecimal digits (32 bytes)",
                        path.display()
                    )
                })?;
            let mut key = [0u8; 32];
            key.copy_from_slice(&bytes);
            Ok(key)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            aws_lc_rs::rand::fill(&mut key).map_err(|_| anyhow::anyhow!("no randomness"))?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            cairn_auth::write_private(path, hex::encode(key).as_bytes())?;
            tracing::info!(path = %path.display(), "made the store key; give every node a copy");
            Ok(key)
        }
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

impl SharedSecrets {
    pub fn new(
        store: Arc<dyn EventStore>,
        data_dir: &Path,
        key: &[u8; 32],
    ) -> anyhow::Result<Self> {
        Ok(Self {
            store,
            data_dir: data_dir.to_owned(),
            key: RandomizedNonceKey::new(&AES_256_GCM, key)
                .map_err(|_| anyhow::anyhow!("the store key is not an AES-256 key"))?,
        })
    }

    fn seal(&self, name: &str, plain: &[u8]) -> anyhow::Result<String> {
        let mut sealed = plain.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(name.as_bytes()), &mut sealed)
            .map_err(|_| anyhow::anyhow!("cannot seal {name}"))?;
        let mut framed = nonce.as_ref().to_vec();
        framed.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(framed)))
    }

    fn open(&self, name: &str, text: &str) -> anyhow::Result<Vec<u8>> {
        let refused = || {
            anyhow::anyhow!(
                "the store's copy of {name} does not open with this node's store key: \
                 every node must be given the same store key file"
            )
        };
        let framed = text
            .strip_prefix(SEALED_PREFIX)
            .and_then(|encoded| STANDARD.decode(encoded).ok())
            .filter(|framed| framed.len() > NONCE_LEN)
            .ok_or_else(refused)?;
        let (nonce, sealed) = framed.split_at(NONCE_LEN);
        let nonce =
            aws_lc_rs::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut sealed)
            .map_err(|_| refused())?;
        Ok(plain.to_vec())
    }

    /// Makes the data directory's `name` and the store's agree: the store's copy wins; a file
    /// the store does not hold yet is offered to it. Returns whether the local file changed.
    pub fn sync_file(&self, name: &str) -> anyhow::Result<bool> {
        let path = self.data_dir.join(name);
        let local = match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()))
            }
        };
        let mut stored = self.store.state_value(SHARED_FILES, name)?;
        if stored.is_none() {
            let Some(local) = &local else {
                return Ok(false);
            };
            let sealed = self.seal(name, local)?;
            self.store
                .submit_with_state(
                    Vec::new(),
                    vec![StateChange::put_if_absent(SHARED_FILES, name, sealed)],
                )?
                .wait()?;
            stored = self.store.state_value(SHARED_FILES, name)?;
        }
        let Some(stored) = stored else {
            return Ok(false);
        };
        let shared = self.open(name, &stored)?;
        if local.as_deref() == Some(shared.as_slice()) {
            return Ok(false);
        }
        if let Some(parent) = path.parent() {
            create_private_dirs(parent)?;
        }
        cairn_auth::write_private(&path, &shared)?;
        tracing::info!(file = name, "took the shared copy from the store");
        Ok(true)
    }

    /// Where `name` is kept in this node's data directory.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }

    /// Makes the data directory's `name` the shared copy if it differs from the store's (a
    /// node whose configuration declares users the store does not hold yet brings them
    /// in). Compare-and-set against the copy this node last read: returns `false`, changing
    /// nothing, when another node changed it meanwhile; the caller syncs and merges again.
    pub fn offer_file(&self, name: &str) -> anyhow::Result<bool> {
        let path = self.data_dir.join(name);
        let local =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let stored = self.store.state_value(SHARED_FILES, name)?;
        if let Some(stored) = &stored {
            if self.open(name, stored)? == local {
                return Ok(true);
            }
        }
        let sealed = self.seal(name, &local)?;
        let offer = match &stored {
            Some(stored) => {
                StateChange::put_if_unchanged(SHARED_FILES, name, sealed.clone(), stored.clone())
            }
            None => StateChange::put_if_absent(SHARED_FILES, name, sealed.clone()),
        };
        self.store
            .submit_with_state(Vec::new(), vec![offer])?
            .wait()?;
        let taken = self.store.state_value(SHARED_FILES, name)?.as_deref() == Some(sealed.as_str());
        if taken {
            tracing::info!(file = name, "offered this node's copy to the store");
        }
        Ok(taken)
    }

    /// Syncs every digest signing key, both ways; returns whether a key arrived.
    pub fn sync_digest_keys(&self) -> anyhow::Result<bool> {
        let mut names: Vec<String> = self
            .store
            .state(SHARED_FILES)?
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| name.starts_with(&format!("{DIGEST_KEYS_DIR}/")))
            .collect();
        let root = self.data_dir.join(DIGEST_KEYS_DIR);
        if let Ok(regions) = std::fs::read_dir(&root) {
            for region in regions.flatten() {
                let Ok(files) = std::fs::read_dir(region.path()) else {
                    continue;
                };
                for file in files.flatten() {
                    let file_name = file.file_name().to_string_lossy().into_owned();
                    if !file_name.ends_with(".json") {
                        continue;
                    }
                    let name = format!(
                        "{DIGEST_KEYS_DIR}/{}/{file_name}",
                        region.file_name().to_string_lossy()
                    );
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        let mut arrived = false;
        for name in names {
            if name.split('/').any(|part| part.is_empty() || part == "..") {
                continue;
            }
            arrived |= self.sync_file(&name)?;
        }
        Ok(arrived)
    }
}

/// What the nodes keep in the store's state beside the shared files (the rotation watches)
/// is sealed with the same key.
impl cairn_capture::services::Sealer for SharedSecrets {
    fn seal(&self, name: &str, plain: &[u8]) -> Result<String, String> {
        SharedSecrets::seal(self, name, plain).map_err(|error| error.to_string())
    }

    fn open(&self, name: &str, sealed: &str) -> Result<Vec<u8>, String> {
        SharedSecrets::open(self, name, sealed).map_err(|error| error.to_string())
    }
}

fn create_private_dirs(path: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .with_context(|| format!("cannot make {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_store::SqliteEventStore;

    #[test]
    fn nodes_agree_on_the_first_offered_file_and_the_store_holds_only_ciphertext() {
        let shared = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(shared.path()).unwrap());
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let key = [7u8; 32];
        let a = SharedSecrets::new(store.clone(), a_dir.path(), &key).unwrap();
        let b = SharedSecrets::new(store.clone(), b_dir.path(), &key).unwrap();
        std::fs::write(a_dir.path().join("token.key"), b"secret-of-a").unwrap();
        std::fs::write(b_dir.path().join("token.key"), b"secret-of-b").unwrap();
        assert!(!a.sync_file("token.key").unwrap());
        assert!(b.sync_file("token.key").unwrap(), "b adopts a's key");
        assert_eq!(
            std::fs::read(b_dir.path().join("token.key")).unwrap(),
            b"secret-of-a"
        );
        let stored = store
            .state_value(SHARED_FILES, "token.key")
            .unwrap()
            .unwrap();
        assert!(!stored.contains("secret-of-a"));
        assert!(!String::from_utf8_lossy(
            &STANDARD.decode(&stored[SEALED_PREFIX.len()..]).unwrap()
        )
        .contains("secret-of-a"));
        // A node given another store key cannot open it, and says why.
        let stranger = tempfile::tempdir().unwrap();
        let c = SharedSecrets::new(store.clone(), stranger.path(), &[8u8; 32]).unwrap();
        let refused = c.sync_file("token.key").unwrap_err().to_string();
        assert!(refused.contains("same store key"), "{refused}");
        // A sealed copy moved to another name does not open either.
        let moved = StateChange::put(SHARED_FILES, "session.key", stored);
        store
            .submit_with_state(Vec::new(), vec![moved])
            .unwrap()
            .wait()
            .unwrap();
        assert!(b.sync_file("session.key").is_err());
    }

    #[test]
    fn a_changed_file_is_offered_unless_another_node_changed_it_first() {
        let shared = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(shared.path()).unwrap());
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = SharedSecrets::new(store.clone(), a_dir.path(), &[3u8; 32]).unwrap();
        let b = SharedSecrets::new(store.clone(), b_dir.path(), &[3u8; 32]).unwrap();
        std::fs::write(a_dir.path().join("identities.json"), b"admin").unwrap();
        assert!(
            a.offer_file("identities.json").unwrap(),
            "the first offer sets it"
        );
        assert!(b.sync_file("identities.json").unwrap());
        // b's configuration declares one more user: merged locally, then offered.
        std::fs::write(b_dir.path().join("identities.json"), b"admin + ci").unwrap();
        assert!(b.offer_file("identities.json").unwrap());
        assert!(a.sync_file("identities.json").unwrap(), "a takes b's users");
        assert_eq!(
            std::fs::read(a_dir.path().join("identities.json")).unwrap(),
            b"admin + ci"
        );
        assert!(a.offer_file("identities.json").unwrap(), "nothing to offer");
        // An offer made from a stale read loses to the change made since, and says so.
        std::fs::write(a_dir.path().join("identities.json"), b"admin + ci + ops").unwrap();
        let stale = store.state_value(SHARED_FILES, "identities.json").unwrap();
        std::fs::write(b_dir.path().join("identities.json"), b"admin + ci + qa").unwrap();
        assert!(b.offer_file("identities.json").unwrap());
        let racing = StateChange::put_if_unchanged(
            SHARED_FILES,
            "identities.json",
            a.seal("identities.json", b"admin + ci + ops").unwrap(),
            stale.unwrap(),
        );
        store
            .submit_with_state(Vec::new(), vec![racing])
            .unwrap()
            .wait()
            .unwrap();
        assert!(a.sync_file("identities.json").unwrap());
        assert_eq!(
            std::fs::read(a_dir.path().join("identities.json")).unwrap(),
            b"admin + ci + qa",
            "the stale offer changed nothing"
        );
    }

    #[test]
    fn digest_keys_travel_both_ways() {
        let shared = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(shared.path()).unwrap());
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = SharedSecrets::new(store.clone(), a_dir.path(), &[1u8; 32]).unwrap();
        let b = SharedSecrets::new(store, b_dir.path(), &[1u8; 32]).unwrap();
        let keys = cairn_integrity::DigestKeys::open(a_dir.path(), 60_000).unwrap();
        let made = keys.signing_key("us-east-1", 1_000).unwrap();
        assert!(!a.sync_digest_keys().unwrap());
        assert!(b.sync_digest_keys().unwrap());
        let seen = cairn_integrity::DigestKeys::read_only(b_dir.path());
        let listed = seen.public_keys("us-east-1", 0, 2_000).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].fingerprint, made.fingerprint);
        assert!(
            !b.sync_digest_keys().unwrap(),
            "nothing new the second time"
        );
    }
}
