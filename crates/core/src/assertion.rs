//! Assertions: what a check expects of a response, judged one by one so a
//! run says which expectation failed and with what value.
//!
//! An assertion is `{"source", "property", "comparison", "target"}`:
//! - `source`: `status_code`, `header` (property: the header name, any
//!   case), `json_body` (property: an RFC 9535 JSONPath), `text_body`,
//!   `response_time` (ms).
//! - `comparison`: equals, not_equals, greater_than, less_than,
//!   greater_or_equal, less_or_equal, contains, not_contains, matches,
//!   not_matches (a regex, linear time), is_empty, not_empty, exists,
//!   not_exists. Both sides compare as numbers when both parse as numbers.

use serde::{Deserialize, Serialize};

/// Most assertions a check may have.
pub const MAX_ASSERTIONS: usize = 20;
/// Longest `target` or `property`.
pub const MAX_TEXT: usize = 1024;
/// An actual value is kept up to this many characters.
pub const MAX_ACTUAL_CHARS: usize = 200;
/// Largest compiled regex (bytes), so a pattern cannot eat memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    StatusCode,
    Header,
    JsonBody,
    TextBody,
    ResponseTime,
    /// A DNS check's answers, one per line (`contains`, `equals`,
    /// `is_empty`...).
    DnsAnswer,
    /// A DNS check's response code (`NOERROR`, `NXDOMAIN`, ...).
    Rcode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Equals,
    NotEquals,
    GreaterThan,
    LessThan,
    GreaterOrEqual,
    LessOrEqual,
    Contains,
    NotContains,
    Matches,
    NotMatches,
    IsEmpty,
    NotEmpty,
    Exists,
    NotExists,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::StatusCode => "status_code",
            Source::Header => "header",
            Source::JsonBody => "json_body",
            Source::TextBody => "text_body",
            Source::ResponseTime => "response_time",
            Source::DnsAnswer => "dns_answer",
            Source::Rcode => "rcode",
        }
    }

    /// Whether the source needs a `property` (a header name, a JSONPath).
    fn needs_property(self) -> bool {
        matches!(self, Source::Header | Source::JsonBody)
    }
}

impl Comparison {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Equals => "equals",
            Comparison::NotEquals => "not_equals",
            Comparison::GreaterThan => "greater_than",
            Comparison::LessThan => "less_than",
            Comparison::GreaterOrEqual => "greater_or_equal",
            Comparison::LessOrEqual => "less_or_equal",
            Comparison::Contains => "contains",
            Comparison::NotContains => "not_contains",
            Comparison::Matches => "matches",
            Comparison::NotMatches => "not_matches",
            Comparison::IsEmpty => "is_empty",
            Comparison::NotEmpty => "not_empty",
            Comparison::Exists => "exists",
            Comparison::NotExists => "not_exists",
        }
    }

    /// Whether the comparison needs a `target`.
    fn needs_target(self) -> bool {
        !matches!(
            self,
            Comparison::IsEmpty | Comparison::NotEmpty | Comparison::Exists | Comparison::NotExists
        )
    }

    fn is_ordering(self) -> bool {
        matches!(
            self,
            Comparison::GreaterThan
                | Comparison::LessThan
                | Comparison::GreaterOrEqual
                | Comparison::LessOrEqual
        )
    }
}

/// One expectation of a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    pub comparison: Comparison,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// What is wrong with an assertion: the sub-field at fault (`source`,
/// `property`, `comparison`, `target`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> AssertionError {
    AssertionError {
        field,
        message: message.into(),
    }
}

fn regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

impl Assertion {
    /// Checks that the assertion can be judged: its property and target are
    /// there when needed and compile (a JSONPath, a regex).
    pub fn validate(&self) -> Result<(), AssertionError> {
        let property = self.property.as_deref().map(str::trim);
        match (self.source.needs_property(), property) {
            (true, None | Some("")) => {
                return Err(bad(
                    "property",
                    format!("is required for source {}", self.source.as_str()),
                ))
            }
            (false, Some(p)) if !p.is_empty() => {
                return Err(bad(
                    "property",
                    format!("is not used by source {}", self.source.as_str()),
                ))
            }
            _ => {}
        }
        for (field, text) in [("property", &self.property), ("target", &self.target)] {
            if let Some(t) = text {
                if t.len() > MAX_TEXT || t.contains('\0') {
                    return Err(bad(
                        field,
                        format!("must be at most {MAX_TEXT} bytes, without NUL"),
                    ));
                }
            }
        }
        if let (Source::Header, Some(p)) = (self.source, property) {
            if http::HeaderName::from_bytes(p.as_bytes()).is_err() {
                return Err(bad("property", format!("{p:?} is not a header name")));
            }
        }
        if let (Source::JsonBody, Some(p)) = (self.source, property) {
            serde_json_path::JsonPath::parse(p)
                .map_err(|e| bad("property", format!("is not a valid JSONPath: {e}")))?;
        }
        let target = self.target.as_deref();
        if self.comparison.needs_target() && target.is_none() {
            return Err(bad(
                "target",
                format!("is required for comparison {}", self.comparison.as_str()),
            ));
        }
        if !self.comparison.needs_target() && target.is_some() {
            return Err(bad(
                "target",
                format!("is not used by comparison {}", self.comparison.as_str()),
            ));
        }
        if matches!(
            self.comparison,
            Comparison::Matches | Comparison::NotMatches
        ) {
            regex(target.unwrap_or_default())
                .map_err(|e| bad("target", format!("is not a valid regex: {e}")))?;
        }
        if self.comparison.is_ordering() && number(target.unwrap_or_default()).is_none() {
            return Err(bad(
                "target",
                format!("must be a number for {}", self.comparison.as_str()),
            ));
        }
        if matches!(self.source, Source::StatusCode | Source::ResponseTime)
            && matches!(self.comparison, Comparison::Equals | Comparison::NotEquals)
            && number(target.unwrap_or_default()).is_none()
        {
            return Err(bad(
                "target",
                format!("must be a number for source {}", self.source.as_str()),
            ));
        }
        Ok(())
    }

    /// The assertion in plain words: `json_body $.status equals "ok"`.
    pub fn describe(&self) -> String {
        let mut s = self.source.as_str().to_string();
        if let Some(p) = &self.property {
            s.push(' ');
            s.push_str(p);
        }
        s.push(' ');
        s.push_str(self.comparison.as_str());
        if let Some(t) = &self.target {
            s.push_str(&format!(" {t:?}"));
        }
        s
    }
}

/// The response as the assertions see it.
pub struct Response<'a> {
    /// The HTTP status; for DNS checks, the response code's number.
    pub status: u16,
    /// Header names in any case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    pub latency_ms: u32,
}

/// One assertion's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionResult {
    pub index: usize,
    pub passed: bool,
    /// The value the assertion saw, cut at [`MAX_ACTUAL_CHARS`]; `null` when
    /// there was none (a missing header, a JSONPath that matched nothing).
    pub actual: Option<String>,
}

fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn cut(s: String) -> String {
    match s.char_indices().nth(MAX_ACTUAL_CHARS) {
        Some((i, _)) => s[..i].to_string(),
        None => s,
    }
}

/// Judges every assertion against one response. The body is parsed as JSON
/// at most once.
pub fn evaluate(assertions: &[Assertion], response: &Response<'_>) -> Vec<AssertionResult> {
    let mut json: Option<Option<serde_json::Value>> = None;
    assertions
        .iter()
        .enumerate()
        .map(|(index, a)| {
            let actual = actual(a, response, &mut json);
            let passed = compare(a, actual.as_deref());
            AssertionResult {
                index,
                passed,
                actual: actual.map(cut),
            }
        })
        .collect()
}

fn actual(
    a: &Assertion,
    r: &Response<'_>,
    json: &mut Option<Option<serde_json::Value>>,
) -> Option<String> {
    let property = a.property.as_deref().map(str::trim).unwrap_or_default();
    match a.source {
        Source::StatusCode => Some(r.status.to_string()),
        Source::ResponseTime => Some(r.latency_ms.to_string()),
        // A DNS check's body is its answers, one per line, and its
        // response code is its first header.
        Source::TextBody | Source::DnsAnswer => Some(String::from_utf8_lossy(r.body).into_owned()),
        Source::Rcode => r
            .headers
            .iter()
            .find(|(k, _)| k == "rcode")
            .map(|(_, v)| v.clone()),
        Source::Header => {
            let values: Vec<&str> = r
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(property))
                .map(|(_, v)| v.as_str())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        }
        Source::JsonBody => {
            let doc = json.get_or_insert_with(|| serde_json::from_slice(r.body).ok());
            let path = serde_json_path::JsonPath::parse(property).ok()?;
            let nodes = path.query(doc.as_ref()?).all();
            match nodes.as_slice() {
                [] => None,
                [one] => Some(json_text(one)),
                many => Some(
                    serde_json::Value::Array(many.iter().map(|v| (*v).clone()).collect())
                        .to_string(),
                ),
            }
        }
    }
}

/// A JSON value as text: strings without their quotes.
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_empty(v: &str) -> bool {
    matches!(v.trim(), "" | "null" | "[]" | "{}")
}

fn compare(a: &Assertion, actual: Option<&str>) -> bool {
    use std::cmp::Ordering;
    let target = a.target.as_deref().unwrap_or_default();
    let Some(actual) = actual else {
        return matches!(
            a.comparison,
            Comparison::NotExists
                | Comparison::IsEmpty
                | Comparison::NotEquals
                | Comparison::NotContains
                | Comparison::NotMatches
        );
    };
    let ordering = || -> Option<Ordering> {
        match (number(actual), number(target)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        }
    };
    let equal = || match (number(actual), number(target)) {
        (Some(x), Some(y)) => x == y,
        _ => actual == target,
    };
    match a.comparison {
        Comparison::Equals => equal(),
        Comparison::NotEquals => !equal(),
        Comparison::GreaterThan => ordering() == Some(Ordering::Greater),
        Comparison::LessThan => ordering() == Some(Ordering::Less),
        Comparison::GreaterOrEqual => {
            matches!(ordering(), Some(Ordering::Greater | Ordering::Equal))
        }
        Comparison::LessOrEqual => matches!(ordering(), Some(Ordering::Less | Ordering::Equal)),
        Comparison::Contains => actual.contains(target),
        Comparison::NotContains => !actual.contains(target),
        Comparison::Matches => regex(target).is_ok_and(|re| re.is_match(actual)),
        Comparison::NotMatches => regex(target).is_ok_and(|re| !re.is_match(actual)),
        Comparison::IsEmpty => is_empty(actual),
        Comparison::NotEmpty => !is_empty(actual),
        Comparison::Exists => true,
        Comparison::NotExists => false,
    }
}

/// The first failed assertion in plain words, for the run's `error`:
/// `json_body $.status equals "ok": got "down"`.
pub fn first_failure(assertions: &[Assertion], results: &[AssertionResult]) -> Option<String> {
    let failed = results.iter().find(|r| !r.passed)?;
    let a = assertions.get(failed.index)?;
    let got = match &failed.actual {
        Some(v) => format!("got {v:?}"),
        None => "got nothing".to_string(),
    };
    Some(format!("{}: {got}", a.describe()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a(v: serde_json::Value) -> Assertion {
        serde_json::from_value(v).unwrap()
    }

    fn judge(assertion: serde_json::Value, body: &str) -> AssertionResult {
        let headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("X-Version".to_string(), "42".to_string()),
        ];
        let r = Response {
            status: 200,
            headers: &headers,
            body: body.as_bytes(),
            latency_ms: 120,
        };
        evaluate(&[a(assertion)], &r).remove(0)
    }

    const BODY: &str =
        r#"{"status": "down", "count": 10, "items": [1, 2], "empty": [], "name": null}"#;

    #[test]
    fn a_jsonpath_assertion_reports_the_value_it_saw() {
        let r = judge(
            json!({"source": "json_body", "property": "$.status", "comparison": "equals", "target": "ok"}),
            BODY,
        );
        assert!(!r.passed);
        assert_eq!(r.actual.as_deref(), Some("down"));
        let assertions = vec![a(
            json!({"source": "json_body", "property": "$.status", "comparison": "equals", "target": "ok"}),
        )];
        assert_eq!(
            first_failure(&assertions, &[r]).unwrap(),
            r#"json_body $.status equals "ok": got "down""#
        );
    }

    #[test]
    fn numbers_compare_as_numbers_when_both_sides_are_numbers() {
        let gt = |t: &str| {
            judge(json!({"source": "json_body", "property": "$.count", "comparison": "greater_than", "target": t}), BODY).passed
        };
        assert!(gt("9"));
        assert!(!gt("10"));
        assert!(gt("9.5"));
        assert!(judge(json!({"source": "json_body", "property": "$.count", "comparison": "equals", "target": "10.0"}), BODY).passed);
        assert!(
            judge(
                json!({"source": "status_code", "comparison": "less_than", "target": "300"}),
                BODY
            )
            .passed
        );
        assert!(
            judge(
                json!({"source": "response_time", "comparison": "less_or_equal", "target": "120"}),
                BODY
            )
            .passed
        );
        assert!(
            !judge(
                json!({"source": "response_time", "comparison": "less_than", "target": "100"}),
                BODY
            )
            .passed
        );
    }

    #[test]
    fn headers_match_in_any_case() {
        let r = judge(
            json!({"source": "header", "property": "content-type", "comparison": "contains", "target": "json"}),
            BODY,
        );
        assert!(r.passed);
        assert_eq!(r.actual.as_deref(), Some("application/json"));
        let missing = judge(
            json!({"source": "header", "property": "x-nope", "comparison": "exists"}),
            BODY,
        );
        assert!(!missing.passed);
        assert_eq!(missing.actual, None);
        assert!(
            judge(
                json!({"source": "header", "property": "x-nope", "comparison": "not_exists"}),
                BODY
            )
            .passed
        );
    }

    #[test]
    fn emptiness_existence_and_regexes() {
        assert!(
            judge(
                json!({"source": "json_body", "property": "$.empty", "comparison": "is_empty"}),
                BODY
            )
            .passed
        );
        assert!(
            judge(
                json!({"source": "json_body", "property": "$.items", "comparison": "not_empty"}),
                BODY
            )
            .passed
        );
        assert!(
            judge(
                json!({"source": "json_body", "property": "$.nothing", "comparison": "not_exists"}),
                BODY
            )
            .passed
        );
        assert!(judge(json!({"source": "text_body", "comparison": "matches", "target": "\"count\":\\s*\\d+"}), BODY).passed);
        assert!(
            judge(
                json!({"source": "text_body", "comparison": "not_matches", "target": "^<html"}),
                BODY
            )
            .passed
        );
        assert!(
            judge(
                json!({"source": "text_body", "comparison": "not_contains", "target": "error"}),
                BODY
            )
            .passed
        );
    }

    #[test]
    fn a_body_that_is_not_json_has_no_json_values() {
        let r = judge(
            json!({"source": "json_body", "property": "$.status", "comparison": "exists"}),
            "<html>",
        );
        assert!(!r.passed);
        assert_eq!(r.actual, None);
    }

    #[test]
    fn actual_values_are_cut_at_200_characters() {
        let long = "x".repeat(1000);
        let r = judge(
            json!({"source": "text_body", "comparison": "equals", "target": "y"}),
            &long,
        );
        assert_eq!(r.actual.unwrap().chars().count(), MAX_ACTUAL_CHARS);
    }

    #[test]
    fn assertions_that_cannot_be_judged_are_refused_naming_the_part() {
        let field = |v: serde_json::Value| a(v).validate().unwrap_err().field;
        assert_eq!(
            field(json!({"source": "json_body", "property": "$[", "comparison": "exists"})),
            "property"
        );
        assert_eq!(
            field(json!({"source": "json_body", "comparison": "exists"})),
            "property"
        );
        assert_eq!(
            field(json!({"source": "header", "property": "bad header", "comparison": "exists"})),
            "property"
        );
        assert_eq!(
            field(json!({"source": "text_body", "comparison": "matches", "target": "("})),
            "target"
        );
        assert_eq!(
            field(json!({"source": "text_body", "comparison": "equals"})),
            "target"
        );
        assert_eq!(
            field(json!({"source": "status_code", "comparison": "greater_than", "target": "abc"})),
            "target"
        );
        assert_eq!(
            field(json!({"source": "status_code", "comparison": "is_empty", "target": "1"})),
            "target"
        );
        assert!(serde_json::from_value::<Assertion>(
            json!({"source": "cookie", "comparison": "exists"})
        )
        .is_err());
        assert!(a(
            json!({"source": "json_body", "property": "$.a[?@.b == 1]", "comparison": "exists"})
        )
        .validate()
        .is_ok());
    }
}
