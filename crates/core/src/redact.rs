//! Keeping the secrets URLs carry out of payloads, logs and stored errors.
//!
//! - A URL's userinfo (`user:password@`) becomes `***@`: the reader sees
//!   that credentials were sent, not which (`http://alice:pw@host/` shows
//!   as `http://***@host/`).
//! - A webhook URL is shown as its origin only (scheme, host, port): a
//!   Slack-style URL carries its token in the path.

/// `url` with its userinfo, if any, replaced by `***`.
pub fn redact_url(url: &url::Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Only URLs that cannot have credentials refuse these, and those have
    // none to hide.
    let _ = shown.set_password(None);
    let _ = shown.set_username("***");
    shown.to_string()
}

/// A URL given as text, redacted as [`redact_url`]; text that does not
/// parse as a URL is redacted as [`redact_text`].
pub fn redact_url_str(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(url) => redact_url(&url),
        Err(_) => redact_text(raw),
    }
}

/// Free text (an error message and its causes) with the userinfo of every
/// URL in it replaced by `***`.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| {
                c.is_whitespace()
                    || matches!(c, '/' | '?' | '#' | '(' | ')' | '"' | '\'' | '<' | '>')
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Where a webhook goes, without its path, query or credentials:
/// `https://hooks.example.com` (with the port when it is not the default).
pub fn webhook_origin(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(url) => match url.origin() {
            origin @ url::Origin::Tuple(..) => origin.ascii_serialization(),
            url::Origin::Opaque(_) => format!("{}:", url.scheme()),
        },
        Err(_) => "an invalid URL".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn userinfo_is_replaced_by_stars() {
        assert_eq!(
            redact_url(&url("http://alice:pw@host/")),
            "http://***@host/"
        );
        assert_eq!(
            redact_url(&url("https://alice@host:8443/a?b=c")),
            "https://***@host:8443/a?b=c"
        );
        assert_eq!(redact_url(&url("http://:pw@host/")), "http://***@host/");
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        assert_eq!(
            redact_url(&url("http://host:81/p?q=1#f")),
            "http://host:81/p?q=1#f"
        );
        assert_eq!(redact_url_str("http://host/"), "http://host/");
    }

    #[test]
    fn every_url_in_an_error_text_loses_its_userinfo() {
        let text = "error sending request for url (http://alice:s3cret@10.0.0.1:81/x?y=1): \
                    redirect to https://bob:hunter2@example.com/next failed";
        let shown = redact_text(text);
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(
            !shown.contains("alice") && !shown.contains("bob"),
            "{shown}"
        );
        assert_eq!(
            shown,
            "error sending request for url (http://***@10.0.0.1:81/x?y=1): \
             redirect to https://***@example.com/next failed"
        );
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        for text in [
            "tcp connect error: Connection refused (os error 111)",
            "error sending request for url (http://127.0.0.1:9/)",
            "an @ sign alone, and a mail@example.com address",
            "scheme only ://",
        ] {
            assert_eq!(redact_text(text), text);
        }
    }

    #[test]
    fn a_webhook_shows_scheme_and_host_only() {
        assert_eq!(
            webhook_origin("https://hooks.slack.com/services/T000/B000/XXXX"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            webhook_origin("http://user:pw@127.0.0.1:8080/hook?token=abc"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(webhook_origin("not a url"), "an invalid URL");
    }
}
