//! Webhook signatures, as the Standard Webhooks spec describes: the
//! `webhook-signature` header holds `v1,` + base64(HMAC-SHA256(key,
//! "{id}.{timestamp}.{body}")), one per key, space-separated. Keys are
//! written `whsec_` + base64 of the key bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

/// A webhook signing key: never printed, wiped from memory when dropped.
#[derive(Clone)]
pub struct WebhookKey(SecretSlice<u8>);

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey(***)")
    }
}

/// Keys compare without an early exit on the first differing byte.
impl PartialEq for WebhookKey {
    fn eq(&self, other: &WebhookKey) -> bool {
        let (a, b) = (self.0.expose_secret(), other.0.expose_secret());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for WebhookKey {}

impl WebhookKey {
    /// Parses `whsec_<base64>` (24 to 64 key bytes).
    pub fn parse(s: &str) -> Result<WebhookKey, String> {
        let b64 = s
            .strip_prefix("whsec_")
            .ok_or_else(|| "must start with whsec_".to_string())?;
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| "must be whsec_ followed by base64".to_string())?;
        if !(24..=64).contains(&bytes.len()) {
            return Err("key must be 24 to 64 bytes".into());
        }
        Ok(WebhookKey(bytes.into()))
    }

    /// The key written as it is parsed: `whsec_<base64>`.
    pub fn encode(&self) -> String {
        format!("whsec_{}", STANDARD.encode(self.0.expose_secret()))
    }

    /// `v1,<base64 signature>` of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret())
            .expect("hmac takes any key length");
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header value for all the given keys.
pub fn signature_header(keys: &[&WebhookKey], id: &str, timestamp: i64, body: &str) -> String {
    keys.iter()
        .map(|k| k.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_example() {
        // The example in the Standard Webhooks specification.
        let key = WebhookKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = key.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(WebhookKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookKey::parse("whsec_!!!").is_err());
        assert!(WebhookKey::parse("whsec_c2hvcnQ=").is_err(), "too short");
    }

    #[test]
    fn several_keys_give_several_signatures() {
        let a = WebhookKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let header = signature_header(&[&a, &a], "id", 1, "{}");
        assert_eq!(header.split(' ').count(), 2);
    }

    #[test]
    fn a_key_is_never_printed_and_compares_by_its_bytes() {
        let raw = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let a = WebhookKey::parse(raw).unwrap();
        let shown = format!("{a:?} {:?}", Some(a.clone()));
        assert!(!shown.contains("MfKQ9r8G"), "{shown}");
        assert_eq!(a.encode(), raw);
        assert_eq!(a, WebhookKey::parse(raw).unwrap());
        let other = WebhookKey::parse("whsec_AfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_ne!(a, other);
    }
}
