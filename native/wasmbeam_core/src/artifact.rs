//! The serialized-module formats: Wasmtime's own artifact behind a header.
//!
//! ```text
//! keyed:   "WASMBEAM-M2\n" [ keyed BLAKE3 MAC of the payload (32) ] [ Wasmtime artifact ]
//! unkeyed: "WASMBEAM-M1\n" [ BLAKE3 digest of the payload (32) ]    [ Wasmtime artifact ]
//! ```
//!
//! A serialized module is native code that Wasmtime maps and runs without
//! validating it again. The keyed format is the safe one: its MAC is made
//! with a 32-byte key the application holds, so bytes that someone else
//! wrote or changed fail the check before Wasmtime sees them. The unkeyed
//! digest only catches accidents (truncation, damage); whoever can write
//! such bytes can run native code in the VM, so they are loaded only by a
//! function whose name says so (`Wasmbeam.Module.deserialize_unsafe/2`).
//! Wasmtime's header then checks that the artifact fits the engine's
//! configuration and version.

pub const MAGIC: &[u8; 12] = b"WASMBEAM-M1\n";
pub const KEYED_MAGIC: &[u8; 12] = b"WASMBEAM-M2\n";
pub const KEY_LEN: usize = 32;
const DIGEST_LEN: usize = 32;

/// Wraps `payload` with an unkeyed digest (for `deserialize_unsafe`).
pub fn wrap(payload: &[u8]) -> Vec<u8> {
    envelope(MAGIC, blake3::hash(payload), payload)
}

/// Seals `payload` with a MAC under `key`.
pub fn seal(key: &[u8; KEY_LEN], payload: &[u8]) -> Vec<u8> {
    envelope(KEYED_MAGIC, blake3::keyed_hash(key, payload), payload)
}

fn envelope(magic: &[u8; 12], check: blake3::Hash, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(magic.len() + DIGEST_LEN + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(check.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits an envelope with `magic` into its check value and payload.
fn split<'a>(magic: &[u8; 12], bytes: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), &'static str> {
    if bytes.len() < magic.len() || &bytes[..magic.len()] != magic {
        return Err(
            if bytes.starts_with(KEYED_MAGIC) || bytes.starts_with(MAGIC) {
                "the serialized module is in the other format (sealed with a key, or unkeyed)"
            } else {
                "not a Wasmbeam serialized module (bad magic)"
            },
        );
    }
    if bytes.len() < magic.len() + DIGEST_LEN {
        return Err("serialized module is truncated");
    }
    Ok(bytes[magic.len()..].split_at(DIGEST_LEN))
}

/// The Wasmtime payload of a keyed envelope whose MAC checks out under
/// `key` (compared in constant time).
pub fn open_sealed<'a>(key: &[u8; KEY_LEN], bytes: &'a [u8]) -> Result<&'a [u8], &'static str> {
    if bytes.starts_with(MAGIC) {
        return Err(
            "the serialized module is not sealed with a key (made by serialize/1 \
                    without :key); only deserialize_unsafe/2 loads it",
        );
    }
    let (mac, payload) = split(KEYED_MAGIC, bytes)?;
    // `Hash`'s equality is constant-time.
    let expected = blake3::keyed_hash(key, payload);
    match <[u8; DIGEST_LEN]>::try_from(mac) {
        Ok(mac) if expected == blake3::Hash::from(mac) => Ok(payload),
        _ => Err("the serialized module failed its keyed check \
                  (another key, damaged, truncated or tampered with)"),
    }
}

/// The Wasmtime payload of an unkeyed envelope whose digest checks out,
/// or of a keyed one without checking its MAC: for bytes whose source the
/// caller vouches for.
pub fn unwrap(bytes: &[u8]) -> Result<&[u8], &'static str> {
    if bytes.starts_with(KEYED_MAGIC) {
        return split(KEYED_MAGIC, bytes).map(|(_, payload)| payload);
    }
    let (digest, payload) = split(MAGIC, bytes)?;
    if blake3::hash(payload).as_bytes() != digest {
        return Err("serialized module is corrupt or truncated (digest mismatch)");
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_detects_damage() {
        let wrapped = wrap(b"payload bytes");
        assert_eq!(unwrap(&wrapped).unwrap(), b"payload bytes");
        let mut flipped = wrapped.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(unwrap(&flipped).is_err());
        assert!(unwrap(&wrapped[..wrapped.len() - 1]).is_err());
        assert!(unwrap(&wrapped[..20]).is_err());
        assert!(unwrap(b"\0asm\x01\0\0\0").is_err());
    }

    #[test]
    fn sealed_bytes_open_only_under_their_key_and_intact() {
        let key = [7u8; KEY_LEN];
        let sealed = seal(&key, b"payload bytes");
        assert_eq!(open_sealed(&key, &sealed).unwrap(), b"payload bytes");
        assert!(open_sealed(&[8u8; KEY_LEN], &sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open_sealed(&key, &flipped).is_err());
        assert!(open_sealed(&key, &sealed[..sealed.len() - 1]).is_err());
        assert!(open_sealed(&key, &sealed[..20]).is_err());
        // A forger without the key can only make the unkeyed format: refused.
        assert!(open_sealed(&key, &wrap(b"payload bytes")).is_err());
        // The unsafe path reads both.
        assert_eq!(unwrap(&sealed).unwrap(), b"payload bytes");
    }
}
