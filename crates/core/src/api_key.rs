//! The API key format: `pulse_<lookup>_<secret>`, where `lookup` (8 hex
//! characters) finds the stored key and `secret` is 256 random bits in
//! base64url. Only a hash of the whole key is stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

const PREFIX: &str = "pulse_";
pub const LOOKUP_LEN: usize = 8;

/// Writes a key from its lookup id and secret bytes.
pub fn format(lookup: &str, secret: &[u8; 32]) -> String {
    format!("{PREFIX}{lookup}_{}", URL_SAFE_NO_PAD.encode(secret))
}

/// The lookup id of a presented key, if it has the key's shape.
pub fn lookup(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (lookup, secret) = rest.split_once('_')?;
    let hex = lookup.len() == LOOKUP_LEN && lookup.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && !secret.is_empty()).then_some(lookup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_carries_its_lookup_id() {
        let key = format("0a1b2c3d", &[7u8; 32]);
        assert!(key.starts_with("pulse_0a1b2c3d_"));
        assert_eq!(key.len(), "pulse_".len() + 8 + 1 + 43);
        assert_eq!(lookup(&key), Some("0a1b2c3d"));
    }

    #[test]
    fn anything_else_has_no_lookup() {
        for bad in [
            "",
            "pulse_",
            "pulse_0a1b2c3d",
            "pulse_0a1b2c3d_",
            "pulse_0a1b2c_secret",
            "pulse_zzzzzzzz_secret",
            "other_0a1b2c3d_secret",
        ] {
            assert_eq!(lookup(bad), None, "{bad}");
        }
    }
}
