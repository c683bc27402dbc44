//! The RSA keys that sign digest files, one current key per region, as CloudTrail keeps
//! them. A key is made on first need, kept in the data directory in a file only its owner
//! can read, and replaced after the rotation period; the replaced key stays valid for an
//! overlap (the smaller of the period and an hour), so a digest signed just before a
//! rotation still finds its key in `ListPublicKeys` for the time it was signed. Private
//! parts never leave this module: not in a log, a record or an answer.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::IntegrityError;

/// The longest a replaced key stays valid after its successor starts.
const MAX_OVERLAP_MILLIS: i64 = 3_600_000;

/// One signing key.
pub struct SigningKey {
    pub fingerprint: String,
    pub validity_start_millis: i64,
    pub validity_end_millis: i64,
    public_der: Vec<u8>,
    pair: KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SigningKey")
            .field("fingerprint", &self.fingerprint)
            .field("validity_start_millis", &self.validity_start_millis)
            .field("validity_end_millis", &self.validity_end_millis)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The DER PKCS#1 `RSAPublicKey`: what `ListPublicKeys` answers as `Value`.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_der
    }

    /// SHA256withRSA (PKCS#1 v1.5) over `data`.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, IntegrityError> {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                data,
                &mut signature,
            )
            .map_err(|_| IntegrityError::Key("signing failed".into()))?;
        Ok(signature)
    }

    pub fn is_valid_at(&self, millis: i64) -> bool {
        self.validity_start_millis <= millis && millis < self.validity_end_millis
    }
}

/// A key's fingerprint: the lower-case hex MD5 of its DER public key, as CloudTrail's.
pub fn fingerprint(public_der: &[u8]) -> String {
    hex::encode(Md5::digest(public_der))
}

/// How a key is kept on disk.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    fingerprint: String,
    validity_start_millis: i64,
    validity_end_millis: i64,
    /// PKCS#8 DER of the private key, base64.
    pkcs8: String,
}

/// Every region's signing keys, under `<data dir>/digest-keys/<region>/`.
pub struct DigestKeys {
    dir: PathBuf,
    rotation_millis: i64,
    regions: Mutex<HashMap<String, Vec<Arc<SigningKey>>>>,
    /// Runs after a key is made and before it signs anything: where keys are shared
    /// between nodes, it hands the new key on, so no digest is signed by a key only one
    /// node knows.
    on_new_key: Option<NewKeyHook>,
}

/// See [`DigestKeys::with_new_key_hook`].
pub type NewKeyHook = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

impl fmt::Debug for DigestKeys {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("DigestKeys")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl DigestKeys {
    /// The keys of `data_dir`; a key is replaced `rotation_millis` after it starts.
    pub fn open(data_dir: &Path, rotation_millis: i64) -> Result<Self, IntegrityError> {
        let dir = data_dir.join("digest-keys");
        create_private_dir(&dir)?;
        Ok(Self {
            dir,
            rotation_millis: rotation_millis.max(1_000),
            regions: Mutex::default(),
            on_new_key: None,
        })
    }

    /// Runs `hook` after each new key is written and before it is used; a hook that fails
    /// fails the signing.
    pub fn with_new_key_hook(mut self, hook: NewKeyHook) -> Self {
        self.on_new_key = Some(hook);
        self
    }

    /// The keys as they are on disk, without making any: for a reader such as
    /// `cairn validate-logs` next to a running server.
    pub fn read_only(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("digest-keys"),
            rotation_millis: i64::MAX,
            regions: Mutex::default(),
            on_new_key: None,
        }
    }

    fn region_dir(&self, region: &str) -> Result<PathBuf, IntegrityError> {
        let plain = !region.is_empty()
            && region.len() <= 64
            && region
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if !plain {
            return Err(IntegrityError::Key(format!(
                "not a region name: {region:?}"
            )));
        }
        Ok(self.dir.join(region))
    }

    fn load(&self, region: &str) -> Result<Vec<Arc<SigningKey>>, IntegrityError> {
        let dir = self.region_dir(region)?;
        let mut keys = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
            Err(error) => return Err(IntegrityError::Io(error)),
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().and_then(|ext| ext.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read(&path)?;
            let file: KeyFile = serde_json::from_slice(&text).map_err(|error| {
                IntegrityError::Key(format!("{} does not parse: {error}", path.display()))
            })?;
            let pkcs8 = base64::engine::general_purpose::STANDARD
                .decode(&file.pkcs8)
                .map_err(|_| IntegrityError::Key(format!("{} is damaged", path.display())))?;
            let pair = KeyPair::from_pkcs8(&pkcs8)
                .map_err(|_| IntegrityError::Key(format!("{} is damaged", path.display())))?;
            let public_der = pair.public_key().as_ref().to_vec();
            if fingerprint(&public_der) != file.fingerprint {
                return Err(IntegrityError::Key(format!(
                    "{} holds another key than its fingerprint says",
                    path.display()
                )));
            }
            keys.push(Arc::new(SigningKey {
                fingerprint: file.fingerprint,
                validity_start_millis: file.validity_start_millis,
                validity_end_millis: file.validity_end_millis,
                public_der,
                pair,
            }));
        }
        keys.sort_by_key(|key| key.validity_start_millis);
        Ok(keys)
    }

    fn with_region<T>(
        &self,
        region: &str,
        work: impl FnOnce(&mut Vec<Arc<SigningKey>>) -> Result<T, IntegrityError>,
    ) -> Result<T, IntegrityError> {
        let mut regions = self
            .regions
            .lock()
            .map_err(|_| IntegrityError::Key("key cache poisoned".into()))?;
        if !regions.contains_key(region) {
            let loaded = self.load(region)?;
            regions.insert(region.to_owned(), loaded);
        }
        let keys = regions.get_mut(region).expect("inserted above");
        work(keys)
    }

    /// The key that signs in `region` at `now_millis`, made if there is none yet or the
    /// newest is due for rotation.
    pub fn signing_key(
        &self,
        region: &str,
        now_millis: i64,
    ) -> Result<Arc<SigningKey>, IntegrityError> {
        let dir = self.region_dir(region)?;
        let rotation = self.rotation_millis;
        self.with_region(region, |keys| {
            if let Some(newest) = keys.last() {
                let rotates_at = newest.validity_start_millis.saturating_add(rotation);
                if newest.validity_start_millis <= now_millis && now_millis < rotates_at {
                    return Ok(newest.clone());
                }
            }
            if rotation == i64::MAX {
                return Err(IntegrityError::Key(format!(
                    "no signing key for {region} (read only)"
                )));
            }
            let key = Arc::new(generate(&dir, now_millis, rotation)?);
            tracing::info!(region, fingerprint = %key.fingerprint, "made a digest signing key");
            if let Some(hook) = &self.on_new_key {
                hook().map_err(|why| {
                    IntegrityError::Key(format!("the new signing key was not shared: {why}"))
                })?;
            }
            keys.push(key.clone());
            Ok(key)
        })
    }

    /// Forgets the keys read so far, so the next use reads the directory again: another
    /// node sharing the keys may have added one.
    pub fn forget_loaded(&self) {
        if let Ok(mut regions) = self.regions.lock() {
            regions.clear();
        }
    }

    /// Every key of `region` valid at some moment of `[from_millis, to_millis]`.
    pub fn public_keys(
        &self,
        region: &str,
        from_millis: i64,
        to_millis: i64,
    ) -> Result<Vec<Arc<SigningKey>>, IntegrityError> {
        self.with_region(region, |keys| {
            Ok(keys
                .iter()
                .filter(|key| {
                    key.validity_start_millis <= to_millis && from_millis < key.validity_end_millis
                })
                .cloned()
                .collect())
        })
    }

    /// Forgets what was read, so keys another process made are seen.
    pub fn reload(&self) {
        if let Ok(mut regions) = self.regions.lock() {
            regions.clear();
        }
    }
}

fn generate(dir: &Path, now_millis: i64, rotation: i64) -> Result<SigningKey, IntegrityError> {
    create_private_dir(dir)?;
    let pair = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|_| IntegrityError::Key("cannot generate an RSA key".into()))?;
    let pkcs8 = pair
        .as_der()
        .map_err(|_| IntegrityError::Key("cannot encode the RSA key".into()))?;
    let public_der = pair.public_key().as_ref().to_vec();
    let fingerprint = fingerprint(&public_der);
    let overlap = rotation.min(MAX_OVERLAP_MILLIS);
    let file = KeyFile {
        fingerprint: fingerprint.clone(),
        validity_start_millis: now_millis,
        validity_end_millis: now_millis.saturating_add(rotation).saturating_add(overlap),
        pkcs8: base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref()),
    };
    let text = serde_json::to_vec(&file).map_err(|error| IntegrityError::Key(error.to_string()))?;
    write_private(
        &dir.join(format!("{now_millis:015}-{fingerprint}.json")),
        &text,
    )?;
    Ok(SigningKey {
        fingerprint,
        validity_start_millis: file.validity_start_millis,
        validity_end_millis: file.validity_end_millis,
        public_der,
        pair,
    })
}

pub(crate) fn create_private_dir(dir: &Path) -> Result<(), IntegrityError> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Written whole or not at all, readable by the owner only.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<(), IntegrityError> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    use super::*;

    #[test]
    fn keys_sign_rotate_with_overlap_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let keys = DigestKeys::open(dir.path(), 60_000).unwrap();
        let first = keys.signing_key("us-east-1", 1_000_000).unwrap();
        assert_eq!(first.fingerprint.len(), 32);
        assert_eq!(
            keys.signing_key("us-east-1", 1_059_999)
                .unwrap()
                .fingerprint,
            first.fingerprint
        );
        let second = keys.signing_key("us-east-1", 1_060_000).unwrap();
        assert_ne!(second.fingerprint, first.fingerprint);
        assert!(
            first.is_valid_at(1_060_000),
            "the old key overlaps its successor"
        );
        assert!(!first.is_valid_at(1_120_000));

        let signature = second.sign(b"data").unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, second.public_key_der())
            .verify(b"data", &signature)
            .unwrap();
        assert!(
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, first.public_key_der())
                .verify(b"data", &signature)
                .is_err()
        );

        let reopened = DigestKeys::open(dir.path(), 60_000).unwrap();
        let listed = reopened.public_keys("us-east-1", 0, i64::MAX).unwrap();
        let prints: Vec<_> = listed.iter().map(|key| key.fingerprint.clone()).collect();
        assert_eq!(
            prints,
            [first.fingerprint.clone(), second.fingerprint.clone()]
        );
        assert_eq!(
            reopened
                .public_keys("us-east-1", 1_130_000, 1_140_000)
                .unwrap()
                .len(),
            1
        );
        assert!(reopened
            .public_keys("eu-west-1", 0, i64::MAX)
            .unwrap()
            .is_empty());
        assert!(keys.signing_key("../etc", 0).is_err());

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for entry in std::fs::read_dir(dir.path().join("digest-keys/us-east-1")).unwrap() {
                let mode = entry.unwrap().metadata().unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "key files are the owner's only");
            }
        }
    }

    #[test]
    fn the_fingerprint_is_the_md5_of_the_der_public_key() {
        assert_eq!(fingerprint(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
