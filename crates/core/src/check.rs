//! What a check is, and the rules its user-supplied fields must follow.
//!
//! [`CheckInput`] is the JSON a client sends to create (`POST`) or change
//! (`PATCH`) a check; [`CheckInput::apply`] validates it over a base spec
//! (the defaults, or the stored check) and returns a [`CheckSpec`]. A `url`
//! or `webhook_url` whose host is an IP literal the target policy refuses
//! is invalid: it could never be reached (names are judged when resolved).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::assertion::{Assertion, Source, MAX_ASSERTIONS};

use crate::location::{LocationStrategy, Quorum, DEFAULT_LOCATION, MAX_LOCATIONS};
use crate::policy::TargetPolicy;

pub const MAX_NAME_LEN: usize = 200;
/// Characters in a check's `description`.
pub const MAX_DESCRIPTION_LEN: usize = 1000;
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_HEADERS: usize = 50;
/// Largest request body a check may send.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const MAX_BODY_CONTAINS_LEN: usize = 4096;
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// What a check probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// An HTTP(S) request to `url`.
    #[default]
    Http,
    /// A TCP connection to `host`:`port` (optionally TLS), optionally
    /// sending `send` and expecting `expect` back.
    Tcp,
    /// A DNS query for `host`'s `record_type` records.
    Dns,
}

impl CheckType {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckType::Http => "http",
            CheckType::Tcp => "tcp",
            CheckType::Dns => "dns",
        }
    }
}

/// DNS record types a `dns` check may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordType {
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[serde(rename = "CNAME")]
    Cname,
    #[serde(rename = "MX")]
    Mx,
    #[serde(rename = "TXT")]
    Txt,
    #[serde(rename = "NS")]
    Ns,
}

impl RecordType {
    pub const ALL: [RecordType; 6] = [
        RecordType::A,
        RecordType::Aaaa,
        RecordType::Cname,
        RecordType::Mx,
        RecordType::Txt,
        RecordType::Ns,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
            RecordType::Mx => "MX",
            RecordType::Txt => "TXT",
            RecordType::Ns => "NS",
        }
    }

    pub fn parse(s: &str) -> Option<RecordType> {
        RecordType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// A validated check definition: everything a user controls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    pub name: String,
    /// Free text for people: what the check watches, whom to call.
    #[serde(default)]
    pub description: String,
    pub url: String,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    /// Names of more headers (any case) whose values are write-only, as
    /// `Authorization`, `Proxy-Authorization` and `Cookie` always are.
    #[serde(default)]
    pub secret_headers: Vec<String>,
    pub body: Option<String>,
    pub expected_status: u16,
    pub body_contains: Option<String>,
    pub interval_seconds: i32,
    pub timeout_ms: i32,
    pub alert_threshold: i32,
    /// Attempts after a failed one before the run counts as failed (0..=5).
    #[serde(default)]
    pub retries: i32,
    pub webhook_url: Option<String>,
    /// Signing key for this check's webhooks (`whsec_...`), used beside the
    /// global `WEBHOOK_SECRET`. Write-only: never shown by the API, never
    /// put on the queue.
    #[serde(skip)]
    pub webhook_secret: Option<crate::webhook::WebhookKey>,
    pub enabled: bool,
    /// What the response must satisfy, beside `expected_status` and
    /// `body_contains` (which stay as shorthands).
    #[serde(default)]
    pub assertions: Vec<Assertion>,
    /// A run that passes but takes longer than this is `degraded`.
    #[serde(default)]
    pub degraded_ms: Option<i32>,
    /// A run that takes longer than this fails (reason `slow`).
    #[serde(default)]
    pub max_response_ms: Option<i32>,
    /// Whether a streak of `alert_threshold` degraded runs sends a
    /// `degraded` alert (and fast runs after it a `recovery`).
    #[serde(default)]
    pub alert_on_degraded: bool,
    /// Verify the server's certificate; off for internal targets with
    /// private certificates (it is still recorded).
    #[serde(default = "yes")]
    pub tls_verify: bool,
    /// A certificate expiring within this many days raises a `tls_expiry`
    /// alert (once per certificate); 0 turns it off.
    #[serde(default = "default_tls_expiry_days")]
    pub tls_expiry_days: i32,
    /// `http` (default), `tcp` or `dns`. For `tcp` and `dns` the `url` is
    /// derived (`tcp://host:port`, `dns://host/TYPE`).
    #[serde(rename = "type", default)]
    pub check_type: CheckType,
    /// `tcp` and `dns`: the host to connect to, or the name to resolve.
    #[serde(default)]
    pub host: Option<String>,
    /// `tcp`: the port.
    #[serde(default)]
    pub port: Option<u16>,
    /// `tcp`: a TLS handshake after connecting.
    #[serde(default)]
    pub tls: bool,
    /// `tcp`: text sent after connecting.
    #[serde(default)]
    pub send: Option<String>,
    /// `tcp`: text the answer must contain.
    #[serde(default)]
    pub expect: Option<String>,
    /// `dns`: which records (A, AAAA, CNAME, MX, TXT, NS; default A).
    #[serde(default)]
    pub record_type: Option<RecordType>,
    /// `dns`: the resolver to ask, `ip:port` (default: the system's).
    #[serde(default)]
    pub resolver: Option<String>,
    /// Where the check runs from (default `["default"]`).
    #[serde(default = "default_locations")]
    pub locations: Vec<String>,
    /// `all`: every slot in every location; `round_robin`: one location per
    /// slot, in turn.
    #[serde(default)]
    pub location_strategy: LocationStrategy,
    /// How many locations must be failing to open an incident.
    #[serde(default)]
    pub alert_locations: Quorum,
    /// Shown on the public status page (`/status`).
    #[serde(default)]
    pub public: bool,
    /// The check's service level objective, if it has one.
    #[serde(default)]
    pub slo: Option<crate::slo::Slo>,
    /// Burn-rate alerts (`slo_burn`, `slo_recovered`) for `slo`.
    #[serde(default)]
    pub slo_alerts: bool,
}

fn default_locations() -> Vec<String> {
    vec![DEFAULT_LOCATION.to_string()]
}

fn yes() -> bool {
    true
}

fn default_tls_expiry_days() -> i32 {
    14
}

impl CheckSpec {
    /// The original design's defaults; `name` and `url` have none.
    pub fn defaults() -> CheckSpec {
        CheckSpec {
            name: String::new(),
            url: String::new(),
            method: "GET".into(),
            description: String::new(),
            headers: BTreeMap::new(),
            secret_headers: Vec::new(),
            body: None,
            expected_status: 200,
            body_contains: None,
            interval_seconds: 60,
            timeout_ms: 10_000,
            alert_threshold: 3,
            retries: 0,
            webhook_url: None,
            webhook_secret: None,
            enabled: true,
            assertions: Vec::new(),
            degraded_ms: None,
            max_response_ms: None,
            alert_on_degraded: false,
            tls_verify: true,
            tls_expiry_days: 14,
            check_type: CheckType::Http,
            host: None,
            port: None,
            tls: false,
            send: None,
            expect: None,
            record_type: None,
            resolver: None,
            locations: default_locations(),
            location_strategy: LocationStrategy::All,
            alert_locations: Quorum::Any,
            public: false,
            slo: None,
            slo_alerts: false,
        }
    }
}

/// A client's mistake, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field, or the part of it (`assertions[2].target`).
    pub field: std::borrow::Cow<'static, str>,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field: field.into(),
        message: message.into(),
    }
}

/// The body of `POST /checks` and `PATCH /checks/:id`. Every field is
/// optional here; absent fields keep the base value. For the nullable
/// fields (`body`, `body_contains`, `webhook_url`, `webhook_secret`) an
/// explicit `null` clears the value; `null` on any other field is an error
/// naming it. Unknown fields are rejected, so a typo is an error rather
/// than a silently ignored setting.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInput {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub method: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub headers: Option<Option<BTreeMap<String, String>>>,
    #[serde(default, deserialize_with = "present")]
    pub secret_headers: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub body: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub expected_status: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub body_contains: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub interval_seconds: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub timeout_ms: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub alert_threshold: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub retries: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub webhook_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub webhook_secret: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub enabled: Option<Option<bool>>,
    /// Kept as JSON until validated, so a bad assertion is named by index.
    #[serde(default, deserialize_with = "present")]
    pub assertions: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "present")]
    pub degraded_ms: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub max_response_ms: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub alert_on_degraded: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    pub tls_verify: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    pub tls_expiry_days: Option<Option<i64>>,
    #[serde(default, rename = "type", deserialize_with = "present")]
    pub check_type: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub host: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub port: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub tls: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    pub send: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub expect: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub record_type: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub resolver: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub locations: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub location_strategy: Option<Option<String>>,
    /// Kept as JSON until validated: a number or a word.
    #[serde(default, deserialize_with = "present")]
    pub alert_locations: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "present")]
    pub public: Option<Option<bool>>,
    /// `null` removes the objective.
    #[serde(default, deserialize_with = "present")]
    pub slo: Option<Option<crate::slo::Slo>>,
    #[serde(default, deserialize_with = "present")]
    pub slo_alerts: Option<Option<bool>>,
}

/// Every field [`CheckInput`] accepts (the API names an unknown one).
pub const INPUT_FIELDS: &[&str] = &[
    "name",
    "description",
    "url",
    "method",
    "headers",
    "secret_headers",
    "body",
    "expected_status",
    "body_contains",
    "interval_seconds",
    "timeout_ms",
    "alert_threshold",
    "retries",
    "webhook_url",
    "webhook_secret",
    "enabled",
    "assertions",
    "degraded_ms",
    "max_response_ms",
    "alert_on_degraded",
    "tls_verify",
    "tls_expiry_days",
    "type",
    "host",
    "port",
    "tls",
    "send",
    "expect",
    "record_type",
    "resolver",
    "locations",
    "location_strategy",
    "alert_locations",
    "public",
    "slo",
    "slo_alerts",
];

/// Marks a field that was present in the JSON, even when it was `null`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A field that may be left out but, when sent, may not be `null`.
fn not_null<T>(field: &'static str, v: Option<Option<T>>) -> Result<Option<T>, ValidationError> {
    match v {
        None => Ok(None),
        Some(None) => Err(invalid(field, "must not be null")),
        Some(Some(v)) => Ok(Some(v)),
    }
}

/// Text that Postgres can store and a person can read: no NUL bytes.
fn no_nul(field: &'static str, s: &str) -> Result<(), ValidationError> {
    if s.contains('\0') {
        return Err(invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

impl CheckInput {
    /// Validates a new check: `name` and `url` are required, everything else
    /// falls back to the defaults.
    pub fn create(self, policy: TargetPolicy) -> Result<CheckSpec, ValidationError> {
        if self.name.is_none() {
            return Err(invalid("name", "is required"));
        }
        let http = matches!(self.check_type, None | Some(None))
            || matches!(&self.check_type, Some(Some(t)) if t == "http");
        if http && self.url.is_none() {
            return Err(invalid("url", "is required"));
        }
        self.apply(CheckSpec::defaults(), policy)
    }

    /// Applies the given fields over `base` and validates the result.
    pub fn apply(
        self,
        base: CheckSpec,
        policy: TargetPolicy,
    ) -> Result<CheckSpec, ValidationError> {
        let mut spec = base;
        if let Some(name) = not_null("name", self.name)? {
            spec.name = name.trim().to_string();
        }
        if let Some(description) = self.description {
            // null clears it, as "" does.
            spec.description = description.unwrap_or_default().trim().to_string();
        }
        if let Some(url) = not_null("url", self.url)? {
            spec.url = url.trim().to_string();
        }
        if let Some(method) = not_null("method", self.method)? {
            spec.method = method.trim().to_ascii_uppercase();
        }
        // The secret names first: a header they name may be sent back
        // masked in the same request.
        let stored_secrets = spec.secret_headers.clone();
        if let Some(names) = not_null("secret_headers", self.secret_headers)? {
            spec.secret_headers = names.into_iter().map(|n| n.trim().to_string()).collect();
        }
        if let Some(headers) = not_null("headers", self.headers)? {
            let secret: Vec<String> = stored_secrets
                .into_iter()
                .chain(spec.secret_headers.iter().cloned())
                .collect();
            spec.headers = keep_secret_headers(headers, &spec.headers, &secret)?;
        }
        if let Some(body) = self.body {
            spec.body = body;
        }
        if let Some(v) = not_null("expected_status", self.expected_status)? {
            spec.expected_status = in_range("expected_status", v, 100, 599)? as u16;
        }
        if let Some(v) = self.body_contains {
            spec.body_contains = v;
        }
        if let Some(v) = not_null("interval_seconds", self.interval_seconds)? {
            spec.interval_seconds = in_range("interval_seconds", v, 1, 86_400)? as i32;
        }
        if let Some(v) = not_null("timeout_ms", self.timeout_ms)? {
            spec.timeout_ms = in_range("timeout_ms", v, 1, 120_000)? as i32;
        }
        if let Some(v) = not_null("alert_threshold", self.alert_threshold)? {
            spec.alert_threshold = in_range("alert_threshold", v, 1, 1000)? as i32;
        }
        if let Some(v) = not_null("retries", self.retries)? {
            spec.retries = in_range("retries", v, 0, 5)? as i32;
        }
        if let Some(v) = self.webhook_url {
            spec.webhook_url = v.map(|u| u.trim().to_string());
        }
        if let Some(v) = self.webhook_secret {
            spec.webhook_secret = match v {
                None => None,
                Some(raw) => {
                    no_nul("webhook_secret", &raw)?;
                    Some(
                        crate::webhook::WebhookKey::parse(raw.trim())
                            .map_err(|m| invalid("webhook_secret", m))?,
                    )
                }
            };
        }
        if let Some(v) = not_null("enabled", self.enabled)? {
            spec.enabled = v;
        }
        if let Some(v) = self.assertions {
            spec.assertions = parse_assertions(v.unwrap_or_default())?;
        }
        if let Some(v) = self.degraded_ms {
            spec.degraded_ms = v
                .map(|ms| in_range("degraded_ms", ms, 1, 120_000))
                .transpose()?
                .map(|ms| ms as i32);
        }
        if let Some(v) = self.max_response_ms {
            spec.max_response_ms = v
                .map(|ms| in_range("max_response_ms", ms, 1, 120_000))
                .transpose()?
                .map(|ms| ms as i32);
        }
        if let Some(v) = not_null("alert_on_degraded", self.alert_on_degraded)? {
            spec.alert_on_degraded = v;
        }
        if let Some(v) = not_null("tls_verify", self.tls_verify)? {
            spec.tls_verify = v;
        }
        if let Some(v) = not_null("tls_expiry_days", self.tls_expiry_days)? {
            spec.tls_expiry_days = in_range("tls_expiry_days", v, 0, 365)? as i32;
        }
        if let Some(v) = not_null("type", self.check_type)? {
            spec.check_type = match v.trim() {
                "http" => CheckType::Http,
                "tcp" => CheckType::Tcp,
                "dns" => CheckType::Dns,
                _ => return Err(invalid("type", "must be http, tcp or dns")),
            };
        }
        if let Some(v) = self.host {
            spec.host = v.map(|h| h.trim().to_string());
        }
        if let Some(v) = self.port {
            spec.port = v
                .map(|p| in_range("port", p, 1, 65535))
                .transpose()?
                .map(|p| p as u16);
        }
        if let Some(v) = not_null("tls", self.tls)? {
            spec.tls = v;
        }
        if let Some(v) = self.send {
            spec.send = v;
        }
        if let Some(v) = self.expect {
            spec.expect = v;
        }
        if let Some(v) = self.record_type {
            spec.record_type = v
                .map(|t| {
                    RecordType::parse(&t).ok_or_else(|| {
                        invalid("record_type", "must be A, AAAA, CNAME, MX, TXT or NS")
                    })
                })
                .transpose()?;
        }
        if let Some(v) = self.resolver {
            spec.resolver = v.map(|r| r.trim().to_string());
        }
        if let Some(v) = not_null("locations", self.locations)? {
            spec.locations = v.iter().map(|l| l.trim().to_string()).collect();
        }
        if let Some(v) = not_null("location_strategy", self.location_strategy)? {
            spec.location_strategy = LocationStrategy::parse(v.trim())
                .ok_or_else(|| invalid("location_strategy", "must be all or round_robin"))?;
        }
        if let Some(v) = not_null("alert_locations", self.alert_locations)? {
            spec.alert_locations =
                serde_json::from_value(v).map_err(|e| invalid("alert_locations", e.to_string()))?;
        }
        if let Some(v) = not_null("public", self.public)? {
            spec.public = v;
        }
        if let Some(v) = self.slo {
            spec.slo = v;
        }
        if let Some(v) = not_null("slo_alerts", self.slo_alerts)? {
            spec.slo_alerts = v;
        }
        // A tcp or dns check's URL is derived from what it probes.
        match spec.check_type {
            CheckType::Http => {}
            CheckType::Tcp => {
                spec.host = spec.host.take().map(normal_host).transpose()?;
                spec.url = format!(
                    "tcp://{}:{}",
                    spec.host.as_deref().unwrap_or_default(),
                    spec.port.unwrap_or_default()
                );
            }
            CheckType::Dns => {
                spec.url = format!(
                    "dns://{}/{}",
                    spec.host.as_deref().unwrap_or_default(),
                    spec.record_type.unwrap_or(RecordType::A).as_str()
                );
            }
        }
        spec.validate(policy)?;
        Ok(spec)
    }
}

/// A TCP host as a URL's host is read (WHATWG): a name lower-cased and in
/// punycode, and an IPv4 address in any spelling (`2852039166`,
/// `0x7f.0.0.1`) written as four decimals, so the target policy judges at
/// create what the run will connect to. IPv6 addresses are kept as given.
fn normal_host(host: String) -> Result<String, ValidationError> {
    if host.is_empty()
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok()
    {
        return Ok(host);
    }
    match url::Host::parse(&host) {
        Ok(url::Host::Ipv4(ip)) => Ok(ip.to_string()),
        Ok(url::Host::Domain(name)) => Ok(name),
        Ok(url::Host::Ipv6(_)) => Ok(host),
        Err(_) => Err(invalid("host", "must be a host name or an IP address")),
    }
}

/// Reads `assertions`: a list of at most [`MAX_ASSERTIONS`], each naming
/// its fault as `assertions[i].field`.
fn parse_assertions(v: serde_json::Value) -> Result<Vec<Assertion>, ValidationError> {
    let items = match v {
        serde_json::Value::Null => return Ok(Vec::new()),
        serde_json::Value::Array(items) => items,
        _ => return Err(invalid("assertions", "must be a list")),
    };
    if items.len() > MAX_ASSERTIONS {
        return Err(invalid(
            "assertions",
            format!("at most {MAX_ASSERTIONS} assertions"),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let at = |part: &str, message: String| ValidationError {
                field: format!("assertions[{i}].{part}").into(),
                message,
            };
            let Some(object) = item.as_object() else {
                return Err(ValidationError {
                    field: format!("assertions[{i}]").into(),
                    message: "must be an object".into(),
                });
            };
            for key in object.keys() {
                if !["source", "property", "comparison", "target"].contains(&key.as_str()) {
                    return Err(at(key, "unknown field".into()));
                }
            }
            for part in ["source", "comparison"] {
                if !object.contains_key(part) {
                    return Err(at(part, "is required".into()));
                }
            }
            for part in ["source", "property", "comparison", "target"] {
                if let Some(v) = object.get(part) {
                    if !(v.is_string() || v.is_null() || (part == "target" && v.is_number())) {
                        return Err(at(part, "must be a string".into()));
                    }
                }
            }
            let mut object = object.clone();
            if let Some(n) = object.get("target").filter(|t| t.is_number()).cloned() {
                object.insert("target".into(), serde_json::Value::String(n.to_string()));
            }
            let assertion: Assertion =
                match serde_json::from_value(serde_json::Value::Object(object.clone())) {
                    Ok(a) => a,
                    Err(e) => {
                        let part = if serde_json::from_value::<crate::assertion::Source>(
                            object.get("source").cloned().unwrap_or_default(),
                        )
                        .is_err()
                        {
                            "source"
                        } else {
                            "comparison"
                        };
                        return Err(at(part, format!("is not one this API knows ({e})")));
                    }
                };
            assertion.validate().map_err(|e| at(e.field, e.message))?;
            Ok(assertion)
        })
        .collect()
}

impl CheckSpec {
    /// A `tcp` or `dns` check's own fields.
    fn validate_target(&self, policy: TargetPolicy) -> Result<(), ValidationError> {
        let host = self.host.as_deref().unwrap_or_default();
        if host.is_empty() {
            return Err(invalid("host", "is required"));
        }
        if host.len() > 253 || host.contains(['/', ' ', '\0', '@', '?', '#']) {
            return Err(invalid("host", "must be a host name or an IP address"));
        }
        let parsed = match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) => url::Host::Ipv4(v4),
            Ok(std::net::IpAddr::V6(v6)) => url::Host::Ipv6(v6),
            Err(_) => url::Host::Domain(host),
        };
        let port = self.port.filter(|_| self.check_type == CheckType::Tcp);
        if let Some(why) = policy.blocks_host(&parsed, port) {
            return Err(invalid("host", why));
        }
        match self.check_type {
            CheckType::Tcp => {
                if self.port.is_none() {
                    return Err(invalid("port", "is required"));
                }
                for (field, text) in [("send", &self.send), ("expect", &self.expect)] {
                    if let Some(t) = text {
                        if t.len() > MAX_BODY_CONTAINS_LEN || t.contains('\0') {
                            return Err(invalid(
                                field,
                                format!(
                                    "must be at most {MAX_BODY_CONTAINS_LEN} bytes, without NUL"
                                ),
                            ));
                        }
                    }
                }
            }
            CheckType::Dns => {
                if let Some(r) = &self.resolver {
                    let addr: std::net::SocketAddr = r
                        .parse()
                        .map_err(|_| invalid("resolver", "must be ip:port, e.g. 127.0.0.1:53"))?;
                    if let Some(why) = policy.blocks_socket(addr) {
                        return Err(invalid("resolver", why));
                    }
                }
            }
            CheckType::Http => {}
        }
        let allowed: &[Source] = match self.check_type {
            CheckType::Http => &[
                Source::StatusCode,
                Source::Header,
                Source::JsonBody,
                Source::TextBody,
                Source::ResponseTime,
            ],
            CheckType::Tcp => &[Source::TextBody, Source::ResponseTime],
            CheckType::Dns => &[Source::DnsAnswer, Source::Rcode, Source::ResponseTime],
        };
        if let Some(i) = self
            .assertions
            .iter()
            .position(|a| !allowed.contains(&a.source))
        {
            return Err(ValidationError {
                field: format!("assertions[{i}].source").into(),
                message: format!(
                    "{} is not a source of {} checks",
                    self.assertions[i].source.as_str(),
                    self.check_type.as_str()
                ),
            });
        }
        Ok(())
    }
}

fn in_range(field: &'static str, v: i64, min: i64, max: i64) -> Result<i64, ValidationError> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(field, format!("must be between {min} and {max}")))
    }
}

fn http_url(field: &'static str, raw: &str, policy: TargetPolicy) -> Result<(), ValidationError> {
    if raw.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if raw.len() > MAX_URL_LEN {
        return Err(invalid(
            field,
            format!("must be at most {MAX_URL_LEN} characters"),
        ));
    }
    let url =
        url::Url::parse(raw).map_err(|e| invalid(field, format!("is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(field, "must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "must name a host"));
    }
    if let Some(why) = policy.blocks_url(&url) {
        return Err(invalid(field, why));
    }
    Ok(())
}

impl CheckSpec {
    /// Checks the rules that span the whole spec (ranges are checked as
    /// fields are read); URLs against the target `policy`.
    pub fn validate(&self, policy: TargetPolicy) -> Result<(), ValidationError> {
        if let Some(slo) = &self.slo {
            slo.validate()?;
        }
        if self.slo_alerts && self.slo.is_none() {
            return Err(invalid("slo_alerts", "needs an slo"));
        }
        no_nul("name", &self.name)?;
        no_nul("description", &self.description)?;
        if self.description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(invalid(
                "description",
                format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
            ));
        }
        no_nul("url", &self.url)?;
        no_nul("method", &self.method)?;
        for field in [
            ("body", &self.body),
            ("body_contains", &self.body_contains),
            ("webhook_url", &self.webhook_url),
        ] {
            if let (name, Some(v)) = field {
                no_nul(name, v)?;
            }
        }
        for (name, value) in &self.headers {
            no_nul("headers", name)?;
            no_nul("headers", value)?;
        }
        if self.name.is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if self.name.chars().count() > MAX_NAME_LEN {
            return Err(invalid(
                "name",
                format!("must be at most {MAX_NAME_LEN} characters"),
            ));
        }
        match self.check_type {
            CheckType::Http => http_url("url", &self.url, policy)?,
            CheckType::Tcp | CheckType::Dns => self.validate_target(policy)?,
        }
        if !METHODS.contains(&self.method.as_str()) {
            return Err(invalid(
                "method",
                format!("must be one of {}", METHODS.join(", ")),
            ));
        }
        if self.headers.len() > MAX_HEADERS {
            return Err(invalid("headers", format!("at most {MAX_HEADERS} headers")));
        }
        if self.secret_headers.len() > MAX_HEADERS {
            return Err(invalid(
                "secret_headers",
                format!("at most {MAX_HEADERS} names"),
            ));
        }
        for name in &self.secret_headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(
                    "secret_headers",
                    format!("{name:?} is not a valid HTTP header name"),
                ));
            }
        }
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(
                    "headers",
                    format!("{name:?} is not a valid HTTP header name"),
                ));
            }
            if http::HeaderValue::from_str(value).is_err() {
                return Err(invalid(
                    "headers",
                    format!("value of {name:?} is not a valid HTTP header value"),
                ));
            }
        }
        if let Some(body) = &self.body {
            if body.len() > MAX_BODY_BYTES {
                return Err(invalid(
                    "body",
                    format!("must be at most {MAX_BODY_BYTES} bytes"),
                ));
            }
        }
        if let Some(needle) = &self.body_contains {
            if needle.is_empty() || needle.len() > MAX_BODY_CONTAINS_LEN {
                return Err(invalid(
                    "body_contains",
                    format!("must be 1 to {MAX_BODY_CONTAINS_LEN} bytes"),
                ));
            }
        }
        if let Some(hook) = &self.webhook_url {
            http_url("webhook_url", hook, policy)?;
        }
        if let (Some(d), Some(m)) = (self.degraded_ms, self.max_response_ms) {
            if d >= m {
                return Err(invalid("degraded_ms", "must be below max_response_ms"));
            }
        }
        self.validate_locations()
    }

    /// `locations` is a list of 1 to [`MAX_LOCATIONS`] distinct names, and a
    /// numeric `alert_locations` is at most their count.
    fn validate_locations(&self) -> Result<(), ValidationError> {
        if self.locations.is_empty() || self.locations.len() > MAX_LOCATIONS {
            return Err(invalid(
                "locations",
                format!("must list 1 to {MAX_LOCATIONS} locations"),
            ));
        }
        for (i, name) in self.locations.iter().enumerate() {
            crate::location::valid_name(name).map_err(|m| invalid("locations", m))?;
            if self.locations[..i].contains(name) {
                return Err(invalid("locations", format!("{name:?} is listed twice")));
            }
        }
        if let Quorum::AtLeast(n) = self.alert_locations {
            if usize::from(n) > self.locations.len() {
                return Err(invalid(
                    "alert_locations",
                    format!(
                        "must be at most the number of locations ({})",
                        self.locations.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn last_status<S: serde::Serializer>(
    v: &Option<crate::RunStatus>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.map_or("unknown", crate::RunStatus::as_str))
}

/// Request headers whose values are write-only: reads show [`MASK`].
pub const SECRET_HEADERS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// What a read shows instead of a secret header's value; sent back in a
/// PATCH or the form, it keeps the stored value.
pub const MASK: &str = "***";

/// Whether `name` is a header whose value is never shown: one of
/// [`SECRET_HEADERS`], or named in `also` (a check's `secret_headers`), in
/// any case.
pub fn is_secret_header(name: &str, also: &[String]) -> bool {
    SECRET_HEADERS.contains(&name.to_ascii_lowercase().as_str())
        || also.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// `headers` with every secret header's value (see [`is_secret_header`])
/// replaced by [`MASK`].
pub fn masked_headers(
    headers: &BTreeMap<String, String>,
    also: &[String],
) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| {
            let v = if is_secret_header(k, also) {
                MASK.to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// New headers, where a secret header sent as [`MASK`] keeps the value
/// stored under the same name (any case); with none stored it is refused.
fn keep_secret_headers(
    new: BTreeMap<String, String>,
    old: &BTreeMap<String, String>,
    also: &[String],
) -> Result<BTreeMap<String, String>, ValidationError> {
    new.into_iter()
        .map(|(k, v)| {
            if v != MASK || !is_secret_header(&k, also) {
                return Ok((k, v));
            }
            match old.iter().find(|(o, _)| o.eq_ignore_ascii_case(&k)) {
                Some((_, stored)) => Ok((k, stored.clone())),
                None => Err(invalid(
                    "headers",
                    format!("{k}: {MASK} keeps a stored value, and there is none"),
                )),
            }
        })
        .collect()
}

fn masked_spec<S: serde::Serializer>(spec: &CheckSpec, s: S) -> Result<S::Ok, S::Error> {
    if !spec
        .headers
        .keys()
        .any(|k| is_secret_header(k, &spec.secret_headers))
    {
        return spec.serialize(s);
    }
    let mut shown = spec.clone();
    shown.headers = masked_headers(&spec.headers, &spec.secret_headers);
    shown.serialize(s)
}

/// A stored check as the API shows it: its definition, identity, schedule
/// and the summary of its last run.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: uuid::Uuid,
    /// Read with secret header values masked ([`masked_headers`]).
    #[serde(flatten, serialize_with = "masked_spec")]
    pub spec: CheckSpec,
    /// The last run's status; `unknown` before the first run.
    #[serde(serialize_with = "last_status")]
    pub last_status: Option<crate::RunStatus>,
    #[serde(serialize_with = "crate::time::ms_opt")]
    pub last_run_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_latency_ms: Option<i32>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub consecutive_fails: i32,
    #[serde(serialize_with = "crate::time::ms")]
    pub next_run_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "crate::time::ms")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "crate::time::ms")]
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Bumped by every change; the API's `ETag`.
    #[serde(skip)]
    pub version: i64,
    /// Whether an incident is open (the quorum of `alert_locations` fails).
    pub incident_open: bool,
    /// The last run in each of the check's locations.
    pub by_location: Vec<LocationState>,
}

/// A check's last run in one location, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationState {
    pub location: String,
    /// `unknown` before the first run here.
    pub last_status: String,
    #[serde(serialize_with = "crate::time::ms_opt")]
    pub last_run_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_latency_ms: Option<i32>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub consecutive_fails: i32,
    #[serde(serialize_with = "crate::time::ms")]
    pub next_run_at: chrono::DateTime<chrono::Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(v: serde_json::Value) -> Result<CheckSpec, ValidationError> {
        serde_json::from_value::<CheckInput>(v)
            .unwrap()
            .create(TargetPolicy::Default)
    }

    fn field_of(v: serde_json::Value) -> String {
        create(v).unwrap_err().field.into_owned()
    }

    /// The smallest valid check input.
    fn minimal() -> serde_json::Value {
        json!({"name": "n", "url": "http://127.0.0.1:1/"})
    }

    /// [`minimal`] with `extra`'s fields added.
    fn with(extra: serde_json::Value) -> serde_json::Value {
        let mut v = minimal();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn a_tcp_host_in_any_ipv4_spelling_is_normalised_and_judged_at_create() {
        let tcp = |host: &str| json!({"name": "n", "type": "tcp", "host": host, "port": 80});
        // 2852039166 is 169.254.169.254, the metadata address.
        for host in [
            "2852039166",
            "0xA9FEA9FE",
            "0251.0376.0251.0376",
            "169.254.43518",
        ] {
            let err = create(tcp(host)).unwrap_err();
            assert_eq!(err.field, "host", "{host}");
            assert!(err.message.contains("169.254.169.254"), "{host}: {err}");
        }
        let input: CheckInput = serde_json::from_value(tcp("0x7f.0.0.1")).unwrap();
        let err = input.create(TargetPolicy::PublicOnly).unwrap_err();
        assert!(err.message.contains("127.0.0.1 is a loopback"), "{err}");
        let spec = create(tcp("0x7f.0.0.1")).unwrap();
        assert_eq!(spec.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(spec.url, "tcp://127.0.0.1:80");
        let spec = create(tcp("DB.Example.TEST")).unwrap();
        assert_eq!(spec.host.as_deref(), Some("db.example.test"));
        let spec = create(tcp("::1")).unwrap();
        assert_eq!(spec.host.as_deref(), Some("::1"));
    }

    #[test]
    fn a_check_aimed_at_pulse_own_services_is_refused_at_create() {
        // A port no other test in this crate uses: the set is process-wide.
        let _own = crate::policy::protect_own(["127.0.0.1:59996".parse().unwrap()]);
        for host in ["127.0.0.1", "localhost", "::1", "0x7f.0.0.1"] {
            let tcp = json!({"name": "n", "type": "tcp", "host": host, "port": 59996});
            let input: CheckInput = serde_json::from_value(tcp).unwrap();
            let err = input.create(TargetPolicy::Default).unwrap_err();
            assert_eq!(err.field, "host", "{host}");
            assert!(
                err.message.contains("Pulse's own services"),
                "{host}: {err}"
            );
        }
        let http = json!({"name": "n", "url": "http://localhost:59996/?query=DROP"});
        let input: CheckInput = serde_json::from_value(http).unwrap();
        let err = input.create(TargetPolicy::Default).unwrap_err();
        assert_eq!(err.field, "url");
        let tcp = json!({"name": "n", "type": "tcp", "host": "127.0.0.1", "port": 59995});
        let input: CheckInput = serde_json::from_value(tcp).unwrap();
        assert!(input.create(TargetPolicy::Default).is_ok());
    }

    #[test]
    fn the_original_example_body_is_accepted_with_its_values() {
        let spec = create(json!({
            "name": "Google Homepage", "url": "https://www.google.com", "method": "GET",
            "expected_status": 200, "interval_seconds": 60, "alert_threshold": 3,
            "timeout_ms": 10000, "webhook_url": "https://your-webhook-url.com/alerts"
        }))
        .unwrap();
        assert_eq!(spec.name, "Google Homepage");
        assert_eq!(
            spec.webhook_url.as_deref(),
            Some("https://your-webhook-url.com/alerts")
        );
    }

    #[test]
    fn defaults_match_the_original() {
        let spec = create(json!({"name": "x", "url": "http://a.test"})).unwrap();
        assert_eq!(spec.method, "GET");
        assert_eq!(spec.expected_status, 200);
        assert_eq!(spec.timeout_ms, 10_000);
        assert_eq!(spec.alert_threshold, 3);
        assert_eq!(spec.interval_seconds, 60);
        assert!(spec.enabled);
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(field_of(json!({"url": "http://a"})), "name");
        assert_eq!(field_of(json!({"name": "x"})), "url");
        assert_eq!(field_of(json!({"name": "x", "url": "ftp://a"})), "url");
        assert_eq!(field_of(json!({"name": "x", "url": "not a url"})), "url");
        let ok = json!({"name": "x", "url": "http://a"});
        let with = |k: &str, v: serde_json::Value| {
            let mut o = ok.clone();
            o[k] = v;
            o
        };
        assert_eq!(field_of(with("method", json!("FETCH"))), "method");
        assert_eq!(
            field_of(with("interval_seconds", json!(0))),
            "interval_seconds"
        );
        assert_eq!(
            field_of(with("interval_seconds", json!(86_401))),
            "interval_seconds"
        );
        assert_eq!(field_of(with("timeout_ms", json!(0))), "timeout_ms");
        assert_eq!(field_of(with("timeout_ms", json!(120_001))), "timeout_ms");
        assert_eq!(
            field_of(with("alert_threshold", json!(0))),
            "alert_threshold"
        );
        assert_eq!(
            field_of(with("expected_status", json!(99))),
            "expected_status"
        );
        assert_eq!(
            field_of(with("expected_status", json!(600))),
            "expected_status"
        );
        assert_eq!(field_of(with("webhook_url", json!("nope"))), "webhook_url");
        assert_eq!(
            field_of(with("webhook_secret", json!("hunter2"))),
            "webhook_secret"
        );
        assert_eq!(
            field_of(with("headers", json!({"bad name": "v"}))),
            "headers"
        );
        assert_eq!(field_of(with("headers", json!({"x": "a\nb"}))), "headers");
        assert_eq!(
            field_of(with("body", json!("x".repeat(MAX_BODY_BYTES + 1)))),
            "body"
        );
    }

    #[test]
    fn method_is_case_insensitive() {
        let spec = create(json!({"name": "x", "url": "http://a", "method": "post"})).unwrap();
        assert_eq!(spec.method, "POST");
    }

    #[test]
    fn patch_keeps_absent_fields_and_null_clears_nullable_ones() {
        let base = create(json!({
            "name": "x", "url": "http://a", "webhook_url": "http://hook", "body_contains": "ok"
        }))
        .unwrap();
        let patch: CheckInput =
            serde_json::from_value(json!({"interval_seconds": 5, "webhook_url": null})).unwrap();
        let spec = patch.apply(base, TargetPolicy::Default).unwrap();
        assert_eq!(spec.interval_seconds, 5);
        assert_eq!(spec.webhook_url, None);
        assert_eq!(spec.body_contains.as_deref(), Some("ok"));
    }

    #[test]
    fn null_on_a_field_that_cannot_be_empty_is_named() {
        let base = create(json!({"name": "x", "url": "http://a"})).unwrap();
        for field in [
            "name",
            "url",
            "method",
            "headers",
            "interval_seconds",
            "enabled",
            "retries",
        ] {
            let patch: CheckInput = serde_json::from_value(json!({ field: null })).unwrap();
            assert_eq!(
                patch
                    .apply(base.clone(), TargetPolicy::Default)
                    .unwrap_err()
                    .field,
                field
            );
        }
    }

    #[test]
    fn a_nul_character_in_any_text_is_named() {
        let ok = json!({"name": "x", "url": "http://a"});
        for (field, value) in [
            ("name", json!("a\0b")),
            ("url", json!("http://a/\0")),
            ("body", json!("a\0")),
            ("body_contains", json!("\0")),
            ("webhook_url", json!("http://h/\0")),
        ] {
            let mut o = ok.clone();
            o[field] = value;
            assert_eq!(field_of(o), field);
        }
    }

    #[test]
    fn a_bad_assertion_is_named_by_its_index_and_part() {
        let ok = json!({"source": "status_code", "comparison": "equals", "target": 200});
        let with = |list: serde_json::Value| {
            create(json!({"name": "x", "url": "http://a", "assertions": list}))
        };
        let spec = with(json!([ok.clone()])).unwrap();
        assert_eq!(spec.assertions[0].target.as_deref(), Some("200"));
        let field = |list: serde_json::Value| with(list).unwrap_err().field.to_string();
        assert_eq!(
            field(json!([ok.clone(), {"source": "cookie", "comparison": "exists"}])),
            "assertions[1].source"
        );
        assert_eq!(
            field(json!([{"source": "text_body", "comparison": "resembles", "target": "a"}])),
            "assertions[0].comparison"
        );
        assert_eq!(
            field(json!([{"source": "json_body", "property": "$[", "comparison": "exists"}])),
            "assertions[0].property"
        );
        assert_eq!(
            field(json!([{"source": "text_body", "comparison": "matches", "target": "("}])),
            "assertions[0].target"
        );
        assert_eq!(
            field(json!([{"source": "text_body", "comparison": "contains"}])),
            "assertions[0].target"
        );
        assert_eq!(
            field(json!([{"comparison": "exists"}])),
            "assertions[0].source"
        );
        assert_eq!(field(serde_json::Value::Array(vec![ok; 21])), "assertions");
        assert_eq!(field(json!("all")), "assertions");
    }

    #[test]
    fn degraded_must_be_below_the_failure_limit() {
        let c = |d: i64, m: i64| {
            create(json!({"name": "x", "url": "http://a", "degraded_ms": d, "max_response_ms": m}))
        };
        assert!(c(500, 2000).is_ok());
        assert_eq!(c(2000, 500).unwrap_err().field, "degraded_ms");
        assert_eq!(c(0, 500).unwrap_err().field, "degraded_ms");
    }

    #[test]
    fn locations_and_quorums_are_checked_and_named() {
        let base = minimal();
        let spec = create(base.clone()).unwrap();
        assert_eq!(spec.locations, vec!["default".to_string()]);
        assert_eq!(spec.alert_locations, Quorum::Any);
        assert!(!spec.public);
        let spec = create(with(json!({"locations": ["a", "b", "c"],
            "location_strategy": "round_robin", "alert_locations": "majority", "public": true})))
        .unwrap();
        assert_eq!(spec.locations.len(), 3);
        assert_eq!(spec.location_strategy, LocationStrategy::RoundRobin);
        assert_eq!(spec.alert_locations, Quorum::Majority);
        assert!(spec.public);
        let spec = create(with(json!({"locations": ["a", "b"], "alert_locations": 2}))).unwrap();
        assert_eq!(spec.alert_locations, Quorum::AtLeast(2));
        for (bad, field) in [
            (json!({"locations": []}), "locations"),
            (json!({"locations": ["a", "a"]}), "locations"),
            (json!({"locations": ["Not Valid"]}), "locations"),
            (json!({"locations": null}), "locations"),
            (json!({"location_strategy": "random"}), "location_strategy"),
            (json!({"alert_locations": 0}), "alert_locations"),
            (json!({"alert_locations": "most"}), "alert_locations"),
            (
                json!({"locations": ["a"], "alert_locations": 2}),
                "alert_locations",
            ),
            (json!({"public": null}), "public"),
        ] {
            let err = create(with(bad.clone())).unwrap_err();
            assert_eq!(err.field, field, "{bad}");
        }
    }

    #[test]
    fn every_input_field_is_listed() {
        for field in INPUT_FIELDS {
            let v = json!({ *field: null });
            assert!(serde_json::from_value::<CheckInput>(v).is_ok(), "{field}");
        }
        assert!(serde_json::from_value::<CheckInput>(json!({"nope": 1})).is_err());
    }

    #[test]
    fn urls_the_policy_can_never_reach_are_refused_naming_the_field() {
        for blocked in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            assert_eq!(field_of(json!({"name": "x", "url": blocked})), "url");
            let err = create(json!({"name": "x", "url": "http://a", "webhook_url": blocked}))
                .unwrap_err();
            assert_eq!(err.field, "webhook_url", "{blocked}");
            assert!(err.message.contains("target policy"), "{err}");
        }
        // Loopback: allowed by default, refused by public-only.
        let local = json!({"name": "x", "url": "http://127.0.0.1:9/"});
        assert!(create(local.clone()).is_ok());
        let input = serde_json::from_value::<CheckInput>(local).unwrap();
        assert_eq!(
            input.create(TargetPolicy::PublicOnly).unwrap_err().field,
            "url"
        );
        // Names are judged when they resolve, not here.
        let named = json!({"name": "x", "url": "http://localhost:9/"});
        let input = serde_json::from_value::<CheckInput>(named).unwrap();
        assert!(input.create(TargetPolicy::PublicOnly).is_ok());
    }

    #[test]
    fn a_patch_to_a_blocked_url_is_refused() {
        let base = create(json!({"name": "x", "url": "http://a"})).unwrap();
        let patch: CheckInput =
            serde_json::from_value(json!({"webhook_url": "http://169.254.169.254/"})).unwrap();
        let err = patch.apply(base, TargetPolicy::Default).unwrap_err();
        assert_eq!(err.field, "webhook_url");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_value::<CheckInput>(json!({"expected_staus": 200})).unwrap_err();
        assert!(err.to_string().contains("expected_staus"));
    }

    #[test]
    fn an_slo_is_validated_and_slo_alerts_need_one() {
        let base = minimal();
        assert_eq!(create(base.clone()).unwrap().slo, None);
        let spec = create(with(
            json!({"slo": {"objective": 99.9}, "slo_alerts": true}),
        ))
        .unwrap();
        assert_eq!(spec.slo.unwrap().window_days, 30);
        assert!(spec.slo_alerts);
        for (bad, field) in [
            (json!({"slo": {"objective": 100}}), "slo.objective"),
            (
                json!({"slo": {"objective": 99, "window_days": 0}}),
                "slo.window_days",
            ),
            (json!({"slo_alerts": true}), "slo_alerts"),
            (json!({"slo_alerts": null}), "slo_alerts"),
        ] {
            assert_eq!(create(with(bad.clone())).unwrap_err().field, field, "{bad}");
        }
        // PATCH with `"slo": null` removes the objective.
        let spec = create(with(json!({"slo": {"objective": 99.0}}))).unwrap();
        let input: CheckInput = serde_json::from_value(json!({"slo": null})).unwrap();
        assert_eq!(input.apply(spec, TargetPolicy::Default).unwrap().slo, None);
    }
}
