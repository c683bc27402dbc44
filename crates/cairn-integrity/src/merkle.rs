//! The Merkle tree of RFC 6962 (Certificate Transparency) over a log of records, kept as
//! its *stored hashes*: every leaf hash and every hash of a complete subtree, in the order
//! they become known, so that appending a record appends a few hashes and never rewrites
//! one. Tree hashes, inclusion proofs and consistency proofs are read from that sequence.
//! The layout is the one Go's `golang.org/x/mod/sumdb/tlog` uses (and C2SP tiles are cut
//! from); the proofs are RFC 6962's audit and consistency paths, verified by RFC 9162's
//! algorithms.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// RFC 6962 §2.1: the hash of a leaf is SHA-256(0x00 || record).
pub fn leaf_hash(record: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(record);
    hasher.finalize().into()
}

/// RFC 6962 §2.1: an interior node is SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Where the hash of the `n`th subtree of height `level` is in the stored sequence.
pub fn stored_hash_index(level: u32, n: u64) -> u64 {
    let mut n = n;
    for _ in 0..level {
        n = 2 * n + 1;
    }
    let mut index = 0;
    let mut rest = n;
    while rest > 0 {
        index += rest;
        rest >>= 1;
    }
    index + u64::from(level)
}

/// How many hashes a tree of `size` records has stored.
pub fn stored_hash_count(size: u64) -> u64 {
    if size == 0 {
        return 0;
    }
    let mut count = stored_hash_index(0, size - 1) + 1;
    let mut last = size - 1;
    while last & 1 == 1 {
        count += 1;
        last >>= 1;
    }
    count
}

/// Reads stored hashes by index.
pub trait HashReader {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError>;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    #[error("record {index} is not in a tree of {size}")]
    OutOfRange { index: u64, size: u64 },
    #[error("stored hashes could not be read: {0}")]
    Storage(String),
    #[error("the proof does not hold")]
    Invalid,
}

/// The hashes to store after record `n`'s leaf hash `leaf`: the leaf, then each subtree it
/// completes, bottom up.
pub fn hashes_for_append(
    n: u64,
    leaf: Hash,
    reader: &dyn HashReader,
) -> Result<Vec<Hash>, MerkleError> {
    let completes = (n + 1).trailing_zeros();
    let indexes: Vec<u64> = (0..completes)
        .rev()
        .map(|level| stored_hash_index(level, (n >> level) - 1))
        .collect();
    let siblings = reader.read_hashes(&indexes)?;
    let mut hashes = vec![leaf];
    let mut hash = leaf;
    for level in 0..completes as usize {
        hash = node_hash(&siblings[completes as usize - 1 - level], &hash);
        hashes.push(hash);
    }
    Ok(hashes)
}

/// The largest power of two smaller than `n` (n ≥ 2), and its log₂.
fn split(n: u64) -> (u64, u32) {
    let level = 63 - (n - 1).leading_zeros();
    (1 << level, level)
}

/// The stored hashes whose subtrees make up records `lo..hi`, left to right.
fn subtree_indexes(mut lo: u64, hi: u64, need: &mut Vec<u64>) {
    while lo < hi {
        let (k, level) = split(hi - lo + 1);
        need.push(stored_hash_index(level, lo >> level));
        lo += k;
    }
}

/// The hash of records `lo..hi` from the hashes [`subtree_indexes`] named, which it takes.
fn subtree_hash(mut lo: u64, hi: u64, hashes: &mut std::slice::Iter<'_, Hash>) -> Hash {
    let mut parts = Vec::new();
    while lo < hi {
        let (k, _) = split(hi - lo + 1);
        lo += k;
        parts.extend(hashes.next().copied());
    }
    let mut hash = parts.pop().unwrap_or_default();
    while let Some(left) = parts.pop() {
        hash = node_hash(&left, &hash);
    }
    hash
}

/// RFC 6962's MTH of the first `size` records.
pub fn tree_hash(size: u64, reader: &dyn HashReader) -> Result<Hash, MerkleError> {
    if size == 0 {
        return Ok(Sha256::digest([]).into());
    }
    let mut need = Vec::new();
    subtree_indexes(0, size, &mut need);
    let hashes = reader.read_hashes(&need)?;
    Ok(subtree_hash(0, size, &mut hashes.iter()))
}

fn inclusion_indexes(lo: u64, hi: u64, n: u64, need: &mut Vec<u64>) {
    if lo + 1 == hi {
        return;
    }
    let (k, _) = split(hi - lo);
    if n < lo + k {
        inclusion_indexes(lo, lo + k, n, need);
        subtree_indexes(lo + k, hi, need);
    } else {
        subtree_indexes(lo, lo + k, need);
        inclusion_indexes(lo + k, hi, n, need);
    }
}

fn inclusion_path(
    lo: u64,
    hi: u64,
    n: u64,
    hashes: &mut std::slice::Iter<'_, Hash>,
    path: &mut Vec<Hash>,
) {
    if lo + 1 == hi {
        return;
    }
    let (k, _) = split(hi - lo);
    if n < lo + k {
        inclusion_path(lo, lo + k, n, hashes, path);
        path.push(subtree_hash(lo + k, hi, hashes));
    } else {
        let left = subtree_hash(lo, lo + k, hashes);
        inclusion_path(lo + k, hi, n, hashes, path);
        path.push(left);
    }
}

/// RFC 6962 §2.1.1: the audit path of record `index` in the tree of `size`, bottom up.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    reader: &dyn HashReader,
) -> Result<Vec<Hash>, MerkleError> {
    if index >= size {
        return Err(MerkleError::OutOfRange { index, size });
    }
    let mut need = Vec::new();
    inclusion_indexes(0, size, index, &mut need);
    let hashes = reader.read_hashes(&need)?;
    let mut path = Vec::new();
    inclusion_path(0, size, index, &mut hashes.iter(), &mut path);
    Ok(path)
}

fn consistency_indexes(lo: u64, hi: u64, old: u64, need: &mut Vec<u64>) {
    if old == hi {
        if lo != 0 {
            subtree_indexes(lo, hi, need);
        }
        return;
    }
    let (k, _) = split(hi - lo);
    if old <= lo + k {
        consistency_indexes(lo, lo + k, old, need);
        subtree_indexes(lo + k, hi, need);
    } else {
        subtree_indexes(lo, lo + k, need);
        consistency_indexes(lo + k, hi, old, need);
    }
}

fn consistency_path(
    lo: u64,
    hi: u64,
    old: u64,
    hashes: &mut std::slice::Iter<'_, Hash>,
    path: &mut Vec<Hash>,
) {
    if old == hi {
        if lo != 0 {
            path.push(subtree_hash(lo, hi, hashes));
        }
        return;
    }
    let (k, _) = split(hi - lo);
    if old <= lo + k {
        consistency_path(lo, lo + k, old, hashes, path);
        path.push(subtree_hash(lo + k, hi, hashes));
    } else {
        let left = subtree_hash(lo, lo + k, hashes);
        consistency_path(lo + k, hi, old, hashes, path);
        path.push(left);
    }
}

/// RFC 6962 §2.1.2: the proof that the tree of `old` records is a prefix of the tree of
/// `size`.
pub fn consistency_proof(
    old: u64,
    size: u64,
    reader: &dyn HashReader,
) -> Result<Vec<Hash>, MerkleError> {
    if old == 0 || old > size {
        return Err(MerkleError::OutOfRange { index: old, size });
    }
    let mut need = Vec::new();
    consistency_indexes(0, size, old, &mut need);
    let hashes = reader.read_hashes(&need)?;
    let mut path = Vec::new();
    consistency_path(0, size, old, &mut hashes.iter(), &mut path);
    Ok(path)
}

/// RFC 9162 §2.1.3.2: does `path` prove `leaf` is record `index` of the tree `root`?
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut hash = *leaf;
    for sibling in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            hash = node_hash(sibling, &hash);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && hash == *root
}

/// RFC 9162 §2.1.4.2: does `path` prove the tree `old_root` of `old` records is a prefix
/// of the tree `root` of `size`?
pub fn verify_consistency(
    old: u64,
    size: u64,
    old_root: &Hash,
    root: &Hash,
    path: &[Hash],
) -> bool {
    if old == 0 || old > size {
        return false;
    }
    if old == size {
        return path.is_empty() && old_root == root;
    }
    let mut path: Vec<Hash> = path.to_vec();
    if old.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fn_, mut sn) = (old - 1, size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == *old_root && sr == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Memory(std::cell::RefCell<Vec<Hash>>);

    impl HashReader for Memory {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
            let hashes = self.0.borrow();
            indexes
                .iter()
                .map(|&index| {
                    hashes
                        .get(index as usize)
                        .copied()
                        .ok_or(MerkleError::Storage(format!("no hash {index}")))
                })
                .collect()
        }
    }

    /// RFC 6962's definition, computed from the leaves directly.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let (k, _) = split(n as u64);
                node_hash(&mth(&leaves[..k as usize]), &mth(&leaves[k as usize..]))
            }
        }
    }

    fn grown(size: u64) -> (Memory, Vec<Hash>) {
        let memory = Memory(std::cell::RefCell::new(Vec::new()));
        let mut leaves = Vec::new();
        for n in 0..size {
            let leaf = leaf_hash(format!("record {n}").as_bytes());
            leaves.push(leaf);
            let hashes = hashes_for_append(n, leaf, &memory).unwrap();
            memory.0.borrow_mut().extend(hashes);
            assert_eq!(memory.0.borrow().len() as u64, stored_hash_count(n + 1));
        }
        (memory, leaves)
    }

    #[test]
    fn the_stored_tree_hashes_as_rfc_6962_defines() {
        let (memory, leaves) = grown(70);
        for size in 0..=70u64 {
            assert_eq!(
                tree_hash(size, &memory).unwrap(),
                mth(&leaves[..size as usize]),
                "{size}"
            );
        }
        // RFC 6962's empty tree and a known one-leaf value.
        assert_eq!(
            hex::encode(tree_hash(0, &memory).unwrap()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn every_inclusion_and_consistency_proof_verifies_and_a_changed_one_does_not() {
        let (memory, leaves) = grown(40);
        for size in 1..=40u64 {
            let root = tree_hash(size, &memory).unwrap();
            for index in 0..size {
                let path = inclusion_proof(index, size, &memory).unwrap();
                let leaf = leaves[index as usize];
                assert!(
                    verify_inclusion(index, size, &leaf, &path, &root),
                    "{index}/{size}"
                );
                let other = leaf_hash(b"another record");
                assert!(!verify_inclusion(index, size, &other, &path, &root));
                if let Some(first) = path.first() {
                    let mut bent = path.clone();
                    bent[0] = node_hash(first, first);
                    assert!(!verify_inclusion(index, size, &leaf, &bent, &root));
                }
            }
            for old in 1..=size {
                let old_root = tree_hash(old, &memory).unwrap();
                let path = consistency_proof(old, size, &memory).unwrap();
                assert!(
                    verify_consistency(old, size, &old_root, &root, &path),
                    "{old}->{size}"
                );
                if old < size {
                    let wrong = leaf_hash(b"forked");
                    assert!(!verify_consistency(old, size, &wrong, &root, &path));
                }
            }
        }
        assert_eq!(
            inclusion_proof(5, 5, &memory),
            Err(MerkleError::OutOfRange { index: 5, size: 5 })
        );
    }
}
