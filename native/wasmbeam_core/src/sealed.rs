//! Sealed cache files: the module cache's on-disk format.
//!
//! A sealed file is Wasmtime's own compiled artifact (an ELF image that
//! Wasmtime maps straight from the file) followed by a fixed-size trailer:
//!
//! ```text
//! [ Wasmtime artifact ][ keyed BLAKE3 MAC (32) ][ artifact length, u64 LE ][ TRAILER_MAGIC (16) ]
//! ```
//!
//! The trailer goes at the end, not the front, because Wasmtime parses the
//! mapped file from offset 0; the bytes after the artifact are never read
//! by it. The MAC covers the entry id (the file's cache key) and the
//! artifact, under a secret key that only the cache holds: a file the cache
//! did not write, a file renamed to another entry, and any damage or
//! truncation all fail verification before a single byte is mapped as
//! code.

use std::fmt;

/// Marks the end of a sealed file, so that a file that is not one is
/// reported as foreign rather than as damaged.
pub const TRAILER_MAGIC: &[u8; 16] = b"WASMBEAM-SEAL-1\n";
pub const KEY_LEN: usize = 32;
const MAC_LEN: usize = 32;
pub const TRAILER_LEN: usize = MAC_LEN + 8 + TRAILER_MAGIC.len();

/// Why a file was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SealError {
    /// Too short to hold a trailer, or the length in the trailer does not
    /// match the file: cut off while written or damaged.
    Truncated,
    /// No trailer magic: not a file this cache format produced.
    Foreign,
    /// The MAC does not match: damaged, tampered with, written under
    /// another key, or stored under another entry's name.
    BadMac,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SealError::Truncated => "cache file is truncated",
            SealError::Foreign => "not a Wasmbeam cache file (no seal trailer)",
            SealError::BadMac => {
                "cache file failed its keyed-hash check (damaged, tampered with, written under another key or renamed)"
            }
        })
    }
}

fn mac(key: &[u8; KEY_LEN], entry: &[u8], artifact: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(&(entry.len() as u64).to_le_bytes());
    hasher.update(entry);
    hasher.update(artifact);
    hasher.finalize()
}

/// The trailer to append to `artifact` for the cache entry `entry`.
pub fn trailer(key: &[u8; KEY_LEN], entry: &[u8], artifact: &[u8]) -> [u8; TRAILER_LEN] {
    let mut out = [0u8; TRAILER_LEN];
    out[..MAC_LEN].copy_from_slice(mac(key, entry, artifact).as_bytes());
    out[MAC_LEN..MAC_LEN + 8].copy_from_slice(&(artifact.len() as u64).to_le_bytes());
    out[MAC_LEN + 8..].copy_from_slice(TRAILER_MAGIC);
    out
}

/// Checks a whole sealed file and returns the length of its artifact.
pub fn verify(key: &[u8; KEY_LEN], entry: &[u8], file: &[u8]) -> Result<usize, SealError> {
    if file.len() < TRAILER_LEN {
        return Err(SealError::Truncated);
    }
    let (artifact, trailer) = file.split_at(file.len() - TRAILER_LEN);
    if &trailer[MAC_LEN + 8..] != TRAILER_MAGIC {
        return Err(SealError::Foreign);
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&trailer[MAC_LEN..MAC_LEN + 8]);
    if u64::from_le_bytes(len) != artifact.len() as u64 {
        return Err(SealError::Truncated);
    }
    let mut expected = [0u8; MAC_LEN];
    expected.copy_from_slice(&trailer[..MAC_LEN]);
    // `blake3::Hash` compares in constant time.
    if mac(key, entry, artifact) != blake3::Hash::from(expected) {
        return Err(SealError::BadMac);
    }
    Ok(artifact.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; KEY_LEN] = [7; KEY_LEN];

    fn sealed(entry: &[u8], artifact: &[u8]) -> Vec<u8> {
        let mut file = artifact.to_vec();
        file.extend_from_slice(&trailer(&KEY, entry, artifact));
        file
    }

    #[test]
    fn accepts_what_it_sealed() {
        let file = sealed(b"entry", b"artifact bytes");
        assert_eq!(verify(&KEY, b"entry", &file), Ok(14));
    }

    #[test]
    fn refuses_damage_truncation_other_keys_and_entries() {
        let file = sealed(b"entry", b"artifact bytes");
        let mut flipped = file.clone();
        flipped[3] ^= 1;
        assert_eq!(verify(&KEY, b"entry", &flipped), Err(SealError::BadMac));
        let mut flipped_mac = file.clone();
        flipped_mac[14] ^= 0x80;
        assert_eq!(verify(&KEY, b"entry", &flipped_mac), Err(SealError::BadMac));
        assert_eq!(
            verify(&KEY, b"entry", &file[..file.len() - 1]),
            Err(SealError::Foreign)
        );
        assert_eq!(
            verify(&KEY, b"entry", &file[1..]),
            Err(SealError::Truncated)
        );
        assert_eq!(verify(&KEY, b"entry", b""), Err(SealError::Truncated));
        assert_eq!(
            verify(&[8; KEY_LEN], b"entry", &file),
            Err(SealError::BadMac)
        );
        assert_eq!(verify(&KEY, b"other", &file), Err(SealError::BadMac));
        assert_eq!(
            verify(&KEY, b"entry", &[0x7f; 100]),
            Err(SealError::Foreign)
        );
    }
}
