//! The transparency log's checkpoints as C2SP signed notes (`c2sp.org/signed-note`,
//! `c2sp.org/tlog-checkpoint`): the text `<origin>\n<size>\n<base64 root>\n`, then a blank
//! line and `— <name> <base64(key ID ‖ Ed25519 signature)>`. The key ID is the first four
//! bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key), so any note verifier (Go's
//! `sumdb/note`, the Python in the test suite) checks it with the verifier key alone.
//!
//! The Ed25519 key is made on first need in `<data>/transparency-key/signer.json` (0600 in
//! a 0700 directory) and never logged.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::keys::{create_private_dir, write_private};
use crate::merkle::Hash;
use crate::IntegrityError;

const ED25519_TYPE: u8 = 0x01;

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSigner {
    name: String,
    pkcs8: String,
}

/// Signs checkpoints under one name.
pub struct NoteSigner {
    name: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NoteSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ED25519_TYPE]);
    hasher.update(public);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The signing key's file, under the data directory.
pub const SIGNER_FILE: &str = "transparency-key/signer.json";

impl NoteSigner {
    /// The data directory's signer, made on first need; its name is unique to the key.
    pub fn open(data_dir: &Path) -> Result<Self, IntegrityError> {
        let path = data_dir.join(SIGNER_FILE);
        let dir = path.parent().unwrap_or(data_dir).to_owned();
        let bad = |why: String| IntegrityError::Key(format!("{}: {why}", path.display()));
        if path.exists() {
            let stored: StoredSigner = serde_json::from_slice(&std::fs::read(&path)?)
                .map_err(|error| bad(error.to_string()))?;
            let pkcs8 = STANDARD
                .decode(&stored.pkcs8)
                .map_err(|error| bad(error.to_string()))?;
            let pair =
                Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|error| bad(error.to_string()))?;
            return Ok(Self {
                name: stored.name,
                pair,
            });
        }
        create_private_dir(&dir)?;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|error| bad(error.to_string()))?;
        let pair =
            Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|error| bad(error.to_string()))?;
        let public = hex::encode(Sha256::digest(pair.public_key().as_ref()));
        let name = format!("cairn.transparency/{}", &public[..16]);
        let stored = StoredSigner {
            name: name.clone(),
            pkcs8: STANDARD.encode(pkcs8.as_ref()),
        };
        let text = serde_json::to_vec(&stored).map_err(|error| bad(error.to_string()))?;
        write_private(&path, &text)?;
        Ok(Self { name, pair })
    }

    /// The checkpoints' origin and the signature's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `<name>+<key ID hex>+<base64(0x01 ‖ public key)>`: what a verifier is given.
    pub fn verifier_key(&self) -> String {
        let public = self.pair.public_key().as_ref();
        let mut typed = vec![ED25519_TYPE];
        typed.extend_from_slice(public);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(key_id(&self.name, public)),
            STANDARD.encode(typed)
        )
    }

    /// The signed note of `text` (which ends with a newline).
    pub fn sign(&self, text: &str) -> String {
        let signature = self.pair.sign(text.as_bytes());
        let mut signed = key_id(&self.name, self.pair.public_key().as_ref()).to_vec();
        signed.extend_from_slice(signature.as_ref());
        format!(
            "{text}\n\u{2014} {} {}\n",
            self.name,
            STANDARD.encode(signed)
        )
    }
}

/// A checkpoint's text: origin, tree size, root hash.
pub fn checkpoint_text(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", STANDARD.encode(root))
}

/// A verified checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// The checkpoint `note` holds, if `verifier_key` signed it.
pub fn verify_checkpoint(note: &str, verifier_key: &str) -> Option<Checkpoint> {
    let mut parts = verifier_key.splitn(3, '+');
    let (name, id, key) = (parts.next()?, parts.next()?, parts.next()?);
    let typed = STANDARD.decode(key).ok()?;
    let (&kind, public) = typed.split_first()?;
    if kind != ED25519_TYPE || hex::encode(key_id(name, public)) != id {
        return None;
    }
    let (text, signatures) = note.split_once("\n\n")?;
    let text = format!("{text}\n");
    let verified = signatures.lines().any(|line| {
        let Some((signer, signature)) = line
            .strip_prefix("\u{2014} ")
            .and_then(|rest| rest.split_once(' '))
        else {
            return false;
        };
        let Ok(signed) = STANDARD.decode(signature) else {
            return false;
        };
        signer == name
            && signed.len() == 68
            && signed[..4] == key_id(name, public)
            && UnparsedPublicKey::new(&ED25519, public)
                .verify(text.as_bytes(), &signed[4..])
                .is_ok()
    });
    if !verified {
        return None;
    }
    let mut lines = text.lines();
    let origin = lines.next()?.to_owned();
    // A checkpoint is the log's own only if it names the log the key signs for.
    if origin != name {
        return None;
    }
    let size = lines.next()?.parse().ok()?;
    let root: Hash = STANDARD.decode(lines.next()?).ok()?.try_into().ok()?;
    Some(Checkpoint { origin, size, root })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_verify_with_the_verifier_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let signer = NoteSigner::open(dir.path()).unwrap();
        let again = NoteSigner::open(dir.path()).unwrap();
        assert_eq!(signer.verifier_key(), again.verifier_key());
        let root = [7u8; 32];
        let note = signer.sign(&checkpoint_text(signer.name(), 42, &root));
        assert!(note.starts_with(&format!("{}\n42\n", signer.name())));
        let checkpoint = verify_checkpoint(&note, &signer.verifier_key()).unwrap();
        assert_eq!((checkpoint.size, checkpoint.root), (42, root));
        // Another size under the same signature, or another key, does not verify.
        // Signed by the key, but for another log's name.
        let elsewhere = signer.sign(&checkpoint_text("another.log/x", 42, &root));
        assert_eq!(verify_checkpoint(&elsewhere, &signer.verifier_key()), None);
        let forged = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(verify_checkpoint(&forged, &signer.verifier_key()), None);
        let other = tempfile::tempdir().unwrap();
        let stranger = NoteSigner::open(other.path()).unwrap();
        assert_eq!(verify_checkpoint(&note, &stranger.verifier_key()), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("transparency-key/signer.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
