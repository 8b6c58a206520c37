//! The serialized-module format: `MAGIC`, a BLAKE3 digest of the payload,
//! then Wasmtime's own artifact. The digest catches truncation and
//! corruption before Wasmtime maps the bytes as native code; Wasmtime's
//! header then checks that the artifact fits this engine's configuration
//! and version. A digest is not a signature: only load artifacts you
//! produced yourself (see `Wasmbeam.Module.deserialize/2`).

pub const MAGIC: &[u8; 12] = b"WASMBEAM-M1\n";
const DIGEST_LEN: usize = 32;

pub fn wrap(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + DIGEST_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(blake3::hash(payload).as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Returns the Wasmtime payload when the envelope is intact.
pub fn unwrap(bytes: &[u8]) -> Result<&[u8], &'static str> {
    let header = MAGIC.len() + DIGEST_LEN;
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a Wasmbeam serialized module (bad magic)");
    }
    if bytes.len() < header {
        return Err("serialized module is truncated");
    }
    let (digest, payload) = bytes[MAGIC.len()..].split_at(DIGEST_LEN);
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
}
