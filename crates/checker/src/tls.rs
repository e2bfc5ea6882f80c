//! TLS for checks: which roots are trusted, an option to skip verification
//! (the certificate is still recorded), what a certificate says, and what
//! a refused one was refused for, in words.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use pulse_core::run::Certificate;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// The web PKI verifier over the trusted roots: the built-in Mozilla set,
/// the system store and any extra CAs (`EXTRA_CA_FILE`).
pub fn webpki(
    extra: &[CertificateDer<'static>],
) -> Result<Arc<WebPkiServerVerifier>, rustls::Error> {
    WebPkiServerVerifier::builder_with_provider(
        roots(extra),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| rustls::Error::General(e.to_string()))
}

fn roots(extra: &[CertificateDer<'static>]) -> Arc<RootCertStore> {
    let mut store = RootCertStore::empty();
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let (added, ignored) =
        store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    tracing::debug!(added, ignored, "system certificate store loaded");
    for cert in extra {
        let _ = store.add(cert.clone());
    }
    Arc::new(store)
}

/// The certificates a server presented during one handshake.
pub type Presented = Arc<Mutex<Vec<CertificateDer<'static>>>>;

/// Verifies like the web PKI (or not at all with `verify` off), and keeps
/// what the server presented either way.
#[derive(Debug)]
pub struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    verify: bool,
    pub presented: Presented,
}

impl Recording {
    pub fn new(inner: Arc<WebPkiServerVerifier>, verify: bool) -> Recording {
        Recording {
            inner,
            verify,
            presented: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut p) = self.presented.lock() {
            *p = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        }
        if !self.verify {
            return Ok(ServerCertVerified::assertion());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn time(t: x509_parser::time::ASN1Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or_default()
}

/// What the presented chain says: the leaf's dates, names and fingerprint,
/// and the chain's earliest expiry.
pub fn describe(chain: &[CertificateDer<'_>], now: DateTime<Utc>) -> Option<Certificate> {
    let leaf_der = chain.first()?;
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf_der).ok()?;
    let not_after = time(leaf.validity().not_after);
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = leaf.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n) => sans.push(n.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let chain_not_after = chain
        .iter()
        .filter_map(|c| x509_parser::parse_x509_certificate(c).ok())
        .map(|(_, c)| time(c.validity().not_after))
        .min()
        .unwrap_or(not_after);
    Some(Certificate {
        not_after,
        days_left: days_left(not_after - now),
        issuer: leaf.issuer().to_string(),
        subject: leaf.subject().to_string(),
        sans,
        chain_not_after,
        fingerprint: hex(&Sha256::digest(leaf_der.as_ref())),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix(t: UnixTime) -> String {
    DateTime::from_timestamp(t.as_secs() as i64, 0)
        .map(|t| pulse_core::time::format(&t))
        .unwrap_or_default()
}

/// A refused certificate in words: expired (since when), not yet valid,
/// unknown issuer, self-signed, name mismatch.
pub fn explain(e: &rustls::Error, presented: &[CertificateDer<'_>]) -> String {
    let self_signed = || {
        presented.len() == 1
            && presented
                .first()
                .and_then(|c| x509_parser::parse_x509_certificate(c).ok())
                .is_some_and(|(_, c)| c.issuer() == c.subject())
    };
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::ExpiredContext { not_after, .. } => {
                format!("certificate expired: not valid after {}", unix(*not_after))
            }
            CertificateError::Expired => "certificate expired".into(),
            CertificateError::NotValidYetContext { not_before, .. } => format!(
                "certificate not yet valid: not valid before {}",
                unix(*not_before)
            ),
            CertificateError::NotValidYet => "certificate not yet valid".into(),
            CertificateError::UnknownIssuer if self_signed() => {
                "certificate is self-signed (not issued by a trusted CA)".into()
            }
            CertificateError::UnknownIssuer => {
                "certificate issued by an unknown CA (not in the trusted roots)".into()
            }
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => format!(
                "certificate name mismatch: it is for {}, not {}",
                presented
                    .iter()
                    .map(|p| bare_name(p))
                    .collect::<Vec<_>>()
                    .join(", "),
                expected.to_str()
            ),
            CertificateError::NotValidForName => "certificate name mismatch".into(),
            other => format!("invalid certificate: {other:?}"),
        },
        other => format!("TLS handshake failed: {other}"),
    }
}

/// `wrong.example` from rustls's `DnsName("wrong.example")` (its names
/// come in their Debug form); anything else as it is.
fn bare_name(presented: &str) -> &str {
    presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map(|inner| inner.trim_matches('"'))
        .unwrap_or(presented)
}

/// Whole days left, counting a started day: 4 days 23 hours is 5 days
/// left (as monitors and browsers show it), 1 second is 1; once expired,
/// -1 for the first day past, and so on.
fn days_left(left: chrono::TimeDelta) -> i64 {
    let secs = left.num_seconds();
    if secs > 0 {
        (secs + 86_399) / 86_400
    } else {
        secs.div_euclid(86_400)
    }
}

#[cfg(test)]
mod days_left_tests {
    use super::days_left;
    use chrono::TimeDelta;

    #[test]
    fn a_presented_name_reads_bare() {
        assert_eq!(
            super::bare_name("DnsName(\"wrong.example\")"),
            "wrong.example"
        );
        assert_eq!(super::bare_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(super::bare_name("plain.example"), "plain.example");
    }

    #[test]
    fn a_started_day_counts_and_an_expired_certificate_is_negative() {
        let h = TimeDelta::hours;
        assert_eq!(days_left(h(4 * 24 + 23)), 5);
        assert_eq!(days_left(h(5 * 24)), 5);
        assert_eq!(days_left(TimeDelta::seconds(1)), 1);
        assert_eq!(days_left(TimeDelta::zero()), 0);
        assert_eq!(days_left(TimeDelta::seconds(-1)), -1);
        assert_eq!(days_left(h(-25)), -2);
    }
}
