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
use serde_json_path::functions::{LogicalType, ValueType};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

/// Most assertions a check may have.
pub const MAX_ASSERTIONS: usize = 20;
/// Longest `target` or `property`.
pub const MAX_TEXT: usize = 1024;
/// An actual value is kept up to this many characters.
pub const MAX_ACTUAL_CHARS: usize = 200;
/// Largest compiled regex (bytes), so a pattern cannot eat memory. The
/// same limit applies to the patterns of JSONPath's `match()` and
/// `search()`.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Deepest nesting of brackets and parentheses in a JSONPath. Parsing cost
/// grows about fourfold per level of nested filters (`$[?@[?@[?@]]]`), so
/// the depth is checked before the parser sees the text; 8 levels parse in
/// under a millisecond.
pub const MAX_JSONPATH_NESTING: usize = 8;
/// Most text a JSONPath's matches may produce for judging: `$..*` on a
/// deeply nested document would otherwise copy each subtree once per
/// ancestor. Past this the value is cut (and still compared).
pub const MAX_JUDGED_BYTES: usize = 64 * 1024;
/// Compiled JSONPaths and regexes kept, by their text, so a check's
/// patterns are compiled once, not on every run or every value.
const COMPILED_CACHE: usize = 4096;

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

/// A bounded map from a pattern's text to what it compiled to (or why it
/// did not), shared by every check in the process.
struct Compiled<T> {
    map: Mutex<HashMap<String, Result<Arc<T>, String>>>,
}

impl<T> Compiled<T> {
    fn new() -> Compiled<T> {
        Compiled {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn get(
        &self,
        text: &str,
        compile: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Arc<T>, String> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = map.get(text) {
            return found.clone();
        }
        let compiled = compile(text).map(Arc::new);
        if map.len() >= COMPILED_CACHE {
            map.clear();
        }
        map.insert(text.to_string(), compiled.clone());
        compiled
    }
}

static REGEXES: LazyLock<Compiled<regex::Regex>> = LazyLock::new(Compiled::new);
static PATHS: LazyLock<Compiled<serde_json_path::JsonPath>> = LazyLock::new(Compiled::new);

fn regex(pattern: &str) -> Result<Arc<regex::Regex>, String> {
    REGEXES.get(pattern, |p| {
        regex::RegexBuilder::new(p)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| e.to_string())
    })
}

/// How deep brackets and parentheses nest in a JSONPath, outside its
/// string literals.
fn nesting(path: &str) -> usize {
    let (mut depth, mut deepest, mut quote, mut escaped) = (0usize, 0usize, None, false);
    for c in path.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => quote = Some(c),
                '[' | '(' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ']' | ')' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    deepest
}

/// A JSONPath, compiled once per text; its size and nesting are checked
/// before it is parsed.
fn json_path(path: &str) -> Result<Arc<serde_json_path::JsonPath>, String> {
    if path.len() > MAX_TEXT {
        return Err(format!("is longer than {MAX_TEXT} bytes"));
    }
    if nesting(path) > MAX_JSONPATH_NESTING {
        return Err(format!(
            "nests brackets and parentheses more than {MAX_JSONPATH_NESTING} deep"
        ));
    }
    PATHS.get(path, |p| {
        serde_json_path::JsonPath::parse(p).map_err(|e| format!("is not a valid JSONPath: {e}"))
    })
}

/// JSONPath's `match()` (RFC 9535 2.4.6), in place of the library's: the
/// pattern is compiled once and under the same size limit as any other.
#[serde_json_path::function(name = "match")]
fn match_func(value: ValueType, pattern: ValueType) -> LogicalType {
    jsonpath_regex(value, pattern, |p| format!("(?R)^({p})$"))
}

/// JSONPath's `search()` (RFC 9535 2.4.7), compiled once and bounded.
#[serde_json_path::function(name = "search")]
fn search_func(value: ValueType, pattern: ValueType) -> LogicalType {
    jsonpath_regex(value, pattern, |p| format!("(?R)({p})"))
}

fn jsonpath_regex(
    value: ValueType,
    pattern: ValueType,
    wrap: impl Fn(&str) -> String,
) -> LogicalType {
    match (value.as_value(), pattern.as_value()) {
        (Some(serde_json::Value::String(s)), Some(serde_json::Value::String(p)))
            if p.len() <= MAX_TEXT =>
        {
            regex(&wrap(p)).is_ok_and(|re| re.is_match(s)).into()
        }
        _ => LogicalType::False,
    }
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
            json_path(p).map_err(|e| bad("property", e))?;
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

/// Compiles the JSONPaths and regexes of a check input's `assertions`
/// (the raw JSON) into the shared cache, ignoring what does not parse:
/// validation then finds them compiled. This is the costly part of
/// validating a check, for callers to run off their async threads.
pub fn precompile(assertions: &serde_json::Value) {
    let Some(list) = assertions.as_array() else {
        return;
    };
    for item in list.iter().take(MAX_ASSERTIONS) {
        if let Ok(a) = serde_json::from_value::<Assertion>(item.clone()) {
            let _ = a.validate();
        }
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
            let path = json_path(property).ok()?;
            let nodes = path.query(doc.as_ref()?).all();
            match nodes.as_slice() {
                [] => None,
                [serde_json::Value::String(s)] => Some(s.clone()),
                [one] => Some(bounded_json(|w| Ok(serde_json::to_writer(w, one)?))),
                many => Some(bounded_json(|w| {
                    w.write_all(b"[")?;
                    for (i, v) in many.iter().enumerate() {
                        if i > 0 {
                            w.write_all(b",")?;
                        }
                        serde_json::to_writer(&mut *w, v)?;
                    }
                    w.write_all(b"]")
                })),
            }
        }
    }
}

/// Writes JSON text up to [`MAX_JUDGED_BYTES`] and stops there, so what a
/// JSONPath matched is never copied whole.
fn bounded_json(write: impl FnOnce(&mut Bounded) -> std::io::Result<()>) -> String {
    let mut out = Bounded(Vec::new());
    // A full writer ends the serialisation early; what was written stays.
    let _ = write(&mut out);
    String::from_utf8_lossy(&out.0).into_owned()
}

/// A writer that takes [`MAX_JUDGED_BYTES`] and then refuses.
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = MAX_JUDGED_BYTES - self.0.len();
        if room == 0 {
            return Err(std::io::Error::other("judged value is full"));
        }
        let n = buf.len().min(room);
        self.0.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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

    #[test]
    fn deeply_nested_jsonpath_filters_are_refused_before_parsing() {
        // 85 bytes took 4.3 s to parse (n=21); n=50 never finished.
        for n in [9, 21, 50, 200] {
            let path = format!("${}{}", "[?@".repeat(n), "]".repeat(n));
            let err = a(json!({"source": "json_body", "property": path,
                               "comparison": "exists"}))
            .validate()
            .unwrap_err();
            assert_eq!(err.field, "property");
            assert!(err.message.contains("more than 8 deep"), "{}", err.message);
        }
        // Brackets inside a string literal are text, not nesting.
        let quoted = format!("$[?@.name == '{}']", "[".repeat(40));
        a(json!({"source": "json_body", "property": quoted, "comparison": "exists"}))
            .validate()
            .unwrap();
        let eight = format!("${}{}", "[?@".repeat(8), "]".repeat(8));
        a(json!({"source": "json_body", "property": eight, "comparison": "exists"}))
            .validate()
            .unwrap();
    }

    #[test]
    fn what_a_descendant_query_copies_is_bounded() {
        // Each level holds a wide array, so `$..*` matches every subtree and
        // a copy of each would be quadratic in the depth.
        let mut doc = String::new();
        let wide = vec!["1234567890"; 200].join(",");
        for _ in 0..100 {
            doc.push_str(&format!("{{\"wide\":[{wide}],\"next\":"));
        }
        doc.push_str("null");
        doc.push_str(&"}".repeat(100));
        let full: usize = {
            let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
            let p = serde_json_path::JsonPath::parse("$..*").unwrap();
            p.query(&v).all().iter().map(|n| n.to_string().len()).sum()
        };
        assert!(
            full > 20 * MAX_JUDGED_BYTES,
            "the test's document is too small: {full}"
        );
        let headers = Vec::new();
        let r = Response {
            status: 200,
            headers: &headers,
            body: doc.as_bytes(),
            latency_ms: 1,
        };
        let all = a(json!({"source": "json_body", "property": "$..*", "comparison": "not_empty"}));
        let seen = actual(&all, &r, &mut None).unwrap();
        assert!(seen.len() <= MAX_JUDGED_BYTES, "{}", seen.len());
        assert!(seen.starts_with("[{\"next\":{"), "{}", &seen[..40]);
        assert!(
            judge(
                json!({"source": "json_body", "property": "$..*",
                             "comparison": "not_empty"}),
                &doc
            )
            .passed
        );
    }

    #[test]
    fn jsonpath_match_and_search_obey_the_regex_size_limit_and_compile_once() {
        // Compiles under the regex crate's default limit (10 MB), not under
        // Pulse's 1 MB.
        let big = r"\w{60}";
        assert!(regex::Regex::new(big).is_ok());
        assert!(regex(big).is_err());
        let body = format!(r#"{{"a": "{}"}}"#, "x".repeat(60));
        for f in ["match", "search"] {
            let path = format!("$[?{f}(@, '{}')]", big.replace('\\', "\\\\"));
            let r = judge(
                json!({"source": "json_body", "property": path,
                                 "comparison": "exists"}),
                &body,
            );
            assert!(!r.passed, "{f}() compiled a pattern over the limit");
            let small = format!("$[?{f}(@, 'x+')]");
            let r = judge(
                json!({"source": "json_body", "property": small,
                                 "comparison": "exists"}),
                &body,
            );
            assert!(r.passed, "{f}() with a small pattern");
        }
        let once = regex("(?R)^(x+)$").unwrap();
        assert!(Arc::ptr_eq(&once, &regex("(?R)^(x+)$").unwrap()));
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
