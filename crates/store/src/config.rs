//! Connection strings: parsing the ClickHouse DSN, and showing URLs in logs
//! without their passwords.

use std::fmt;

use secrecy::SecretString;
use url::Url;

use crate::StoreError;

/// A URL shown with its password replaced by `***`.
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Url::parse(self.0) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                write!(f, "{url}")
            }
            Err(_) => f.write_str("<unparsable url>"),
        }
    }
}

/// `CLICKHOUSE_DSN`, parsed: the HTTP interface's base URL, credentials and
/// database.
///
/// The accepted form is `http(s)://[user[:password]@]host:port[/database]`.
/// A native-protocol DSN as the original design used,
/// `clickhouse://user:password@host:9000/db`, is translated to the HTTP
/// interface on the same host: port 9000 (or none) becomes 8123, 9440
/// becomes https on 8443. Any other native port is refused with a message
/// naming the HTTP form, since we cannot guess its HTTP port.
#[derive(Clone)]
pub struct ClickHouseDsn {
    pub url: String,
    pub user: String,
    /// Kept as a secret: never printed, wiped from memory when dropped.
    pub password: SecretString,
    pub database: String,
}

impl fmt::Debug for ClickHouseDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseDsn")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &"***")
            .field("database", &self.database)
            .finish()
    }
}

const HTTP_FORM: &str = "use the HTTP interface: http(s)://[user[:password]@]host:port[/database], e.g. http://default@localhost:8123/default";

impl ClickHouseDsn {
    pub fn parse(raw: &str) -> Result<ClickHouseDsn, StoreError> {
        let bad = |why: &str| StoreError::Config(format!("CLICKHOUSE_DSN {why}; {HTTP_FORM}"));
        let url = Url::parse(raw).map_err(|_| bad("is not a URL"))?;
        let host = url.host_str().ok_or_else(|| bad("has no host"))?;
        let (scheme, port) = match (url.scheme(), url.port()) {
            ("http", p) => ("http", p.unwrap_or(8123)),
            ("https", p) => ("https", p.unwrap_or(8443)),
            ("clickhouse" | "tcp", None | Some(9000)) => ("http", 8123),
            ("clickhouse" | "tcp", Some(9440)) => ("https", 8443),
            ("clickhouse" | "tcp", Some(_)) => {
                return Err(bad("uses the native protocol on a non-standard port"))
            }
            _ => return Err(bad("has an unsupported scheme")),
        };
        let database = url.path().trim_matches('/');
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        Ok(ClickHouseDsn {
            url: format!("{scheme}://{host}:{port}"),
            user: if url.username().is_empty() {
                "default".into()
            } else {
                decode(url.username())
            },
            password: url.password().map(decode).unwrap_or_default().into(),
            database: if database.is_empty() {
                "default".into()
            } else {
                database.to_string()
            },
        })
    }
}

/// `REDIS_URL` may be given bare (`localhost:6379`), as the original's
/// README did; a scheme is added when missing.
pub fn normalize_redis_url(raw: &str) -> String {
    if raw.contains("://") {
        raw.to_string()
    } else {
        format!("redis://{raw}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn http_dsn_is_split_into_parts() {
        let dsn = ClickHouseDsn::parse("http://pulse:s3cret@ch:8123/metrics").unwrap();
        assert_eq!(dsn.url, "http://ch:8123");
        assert_eq!(dsn.user, "pulse");
        assert_eq!(dsn.password.expose_secret(), "s3cret");
        assert_eq!(dsn.database, "metrics");
    }

    #[test]
    fn bare_http_dsn_uses_default_user_and_database() {
        let dsn = ClickHouseDsn::parse("http://localhost:8123").unwrap();
        assert_eq!(dsn.user, "default");
        assert_eq!(dsn.database, "default");
    }

    #[test]
    fn the_originals_native_dsn_is_translated() {
        let dsn = ClickHouseDsn::parse("clickhouse://default@localhost:9000/default").unwrap();
        assert_eq!(dsn.url, "http://localhost:8123");
        assert_eq!(dsn.database, "default");
    }

    #[test]
    fn an_unknown_native_port_is_refused_naming_the_http_form() {
        let err = ClickHouseDsn::parse("clickhouse://localhost:9999/x").unwrap_err();
        assert!(err.to_string().contains("http(s)://"));
    }

    #[test]
    fn debug_and_redaction_hide_passwords() {
        let dsn = ClickHouseDsn::parse("http://u:hunter2@h:8123/d").unwrap();
        assert!(!format!("{dsn:?}").contains("hunter2"));
        let shown = Redacted("postgres://u:hunter2@h/db").to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn bare_redis_address_gets_a_scheme() {
        assert_eq!(
            normalize_redis_url("localhost:6379"),
            "redis://localhost:6379"
        );
        assert_eq!(normalize_redis_url("redis://r:1"), "redis://r:1");
    }
}
