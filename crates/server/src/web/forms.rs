//! Creating, editing, pausing, resuming and deleting checks through forms.
//! A form is read into the API's own input ([`CheckInput`]) and validated
//! by the same rules ([`CheckInput::create`] / [`CheckInput::apply`]); a
//! mistake is shown next to the field it names.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use pulse_core::assertion::MAX_ASSERTIONS;
use pulse_core::check::{CheckType, RecordType, METHODS};
use pulse_core::{CheckInput, CheckSpec, ValidationError};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::pages::Chrome;
use super::session::{FormData, SignedIn};
use super::{html, WebError, WebState};

pub const SOURCES: &[&str] = &[
    "status_code",
    "header",
    "json_body",
    "text_body",
    "response_time",
    "dns_answer",
    "rcode",
];
pub const COMPARISONS: &[&str] = &[
    "equals",
    "not_equals",
    "greater_than",
    "less_than",
    "greater_or_equal",
    "less_or_equal",
    "contains",
    "not_contains",
    "matches",
    "not_matches",
    "is_empty",
    "not_empty",
    "exists",
    "not_exists",
];

/// One assertion row of the form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssertionRow {
    pub source: String,
    pub property: String,
    pub comparison: String,
    pub target: String,
}

/// The names in a list typed as text: separated by commas, spaces or
/// lines.
fn names(text: &str) -> Vec<&str> {
    text.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect()
}

/// The form's fields as text, as shown in the inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    pub name: String,
    pub description: String,
    pub check_type: String,
    pub url: String,
    pub method: String,
    pub expected_status: String,
    pub body_contains: String,
    pub headers: String,
    pub secret_headers: String,
    pub body: String,
    pub interval_seconds: String,
    pub timeout_ms: String,
    pub retries: String,
    pub alert_threshold: String,
    pub degraded_ms: String,
    pub max_response_ms: String,
    pub alert_on_degraded: bool,
    pub webhook_url: String,
    pub tls_verify: bool,
    pub tls_expiry_days: String,
    pub host: String,
    pub port: String,
    pub tls: bool,
    pub send: String,
    pub expect: String,
    pub record_type: String,
    pub resolver: String,
    pub locations: String,
    pub location_strategy: String,
    pub alert_locations: String,
    pub public: bool,
    /// The SLO objective, a percentage (empty: no SLO).
    pub slo_objective: String,
    pub slo_window_days: String,
    pub slo_alerts: bool,
    pub assertions: Vec<AssertionRow>,
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn opt_num<T: ToString>(v: Option<T>) -> String {
    v.map(|n| n.to_string()).unwrap_or_default()
}

impl Values {
    pub fn from_spec(s: &CheckSpec) -> Values {
        let url = if s.check_type == CheckType::Http {
            s.url.clone()
        } else {
            String::new()
        };
        Values {
            name: s.name.clone(),
            description: s.description.clone(),
            check_type: s.check_type.as_str().into(),
            url,
            method: s.method.clone(),
            expected_status: s.expected_status.to_string(),
            body_contains: opt(&s.body_contains),
            headers: pulse_core::check::masked_headers(&s.headers, &s.secret_headers)
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            secret_headers: s.secret_headers.join(", "),
            body: opt(&s.body),
            interval_seconds: s.interval_seconds.to_string(),
            timeout_ms: s.timeout_ms.to_string(),
            retries: s.retries.to_string(),
            alert_threshold: s.alert_threshold.to_string(),
            degraded_ms: opt_num(s.degraded_ms),
            max_response_ms: opt_num(s.max_response_ms),
            alert_on_degraded: s.alert_on_degraded,
            webhook_url: opt(&s.webhook_url),
            tls_verify: s.tls_verify,
            tls_expiry_days: s.tls_expiry_days.to_string(),
            host: opt(&s.host),
            port: opt_num(s.port),
            tls: s.tls,
            send: opt(&s.send),
            expect: opt(&s.expect),
            record_type: s
                .record_type
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
            resolver: opt(&s.resolver),
            locations: s.locations.join(", "),
            location_strategy: s.location_strategy.as_str().into(),
            alert_locations: s.alert_locations.encode(),
            public: s.public,
            slo_objective: s.slo.map(|o| o.objective.to_string()).unwrap_or_default(),
            slo_window_days: s.slo.map(|o| o.window_days.to_string()).unwrap_or_default(),
            slo_alerts: s.slo_alerts,
            assertions: s
                .assertions
                .iter()
                .map(|a| AssertionRow {
                    source: a.source.as_str().into(),
                    property: a.property.clone().unwrap_or_default(),
                    comparison: a.comparison.as_str().into(),
                    target: a.target.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }

    pub fn from_form(f: &FormData) -> Values {
        let t = |k: &str| f.get(k).unwrap_or_default().to_string();
        let on = |k: &str| f.get(k).is_some();
        let assertions = (0..MAX_ASSERTIONS)
            .map(|i| AssertionRow {
                source: t(&format!("a{i}_source")),
                property: t(&format!("a{i}_property")),
                comparison: t(&format!("a{i}_comparison")),
                target: t(&format!("a{i}_target")),
            })
            .collect::<Vec<_>>();
        let last = assertions
            .iter()
            .rposition(|r| *r != AssertionRow::default())
            .map_or(0, |i| i + 1);
        Values {
            name: t("name"),
            description: t("description"),
            check_type: t("type"),
            url: t("url"),
            method: t("method"),
            expected_status: t("expected_status"),
            body_contains: t("body_contains"),
            headers: t("headers"),
            secret_headers: t("secret_headers"),
            body: t("body"),
            interval_seconds: t("interval_seconds"),
            timeout_ms: t("timeout_ms"),
            retries: t("retries"),
            alert_threshold: t("alert_threshold"),
            degraded_ms: t("degraded_ms"),
            max_response_ms: t("max_response_ms"),
            alert_on_degraded: on("alert_on_degraded"),
            webhook_url: t("webhook_url"),
            tls_verify: on("tls_verify"),
            tls_expiry_days: t("tls_expiry_days"),
            host: t("host"),
            port: t("port"),
            tls: on("tls"),
            send: t("send"),
            expect: t("expect"),
            record_type: t("record_type"),
            resolver: t("resolver"),
            locations: t("locations"),
            location_strategy: t("location_strategy"),
            alert_locations: t("alert_locations"),
            public: on("public"),
            slo_objective: t("slo_objective"),
            slo_window_days: t("slo_window_days"),
            slo_alerts: on("slo_alerts"),
            assertions: assertions.into_iter().take(last).collect(),
        }
    }

    /// The API input these values ask for, or every field that is not even
    /// of the right kind (a number that is not one, a header line without
    /// a colon). `webhook_secret` is sent only when typed. The second value
    /// maps the input's assertion indexes to the form's rows.
    pub fn input(
        &self,
        webhook_secret: Option<&str>,
    ) -> Result<(CheckInput, Vec<usize>), Vec<ValidationError>> {
        let mut errors = Vec::new();
        let mut o = Map::new();
        let mut bad = |field: &'static str, message: &str| {
            errors.push(ValidationError {
                field: field.into(),
                message: message.into(),
            })
        };
        o.insert("name".into(), json!(self.name));
        let kind = if self.check_type.is_empty() {
            "http"
        } else {
            self.check_type.as_str()
        };
        o.insert("type".into(), json!(kind));
        if kind == "http" {
            o.insert("url".into(), json!(self.url));
        }
        if !self.method.is_empty() {
            o.insert("method".into(), json!(self.method));
        }
        let mut int =
            |o: &mut Map<String, Value>, field: &'static str, raw: &str, nullable: bool| {
                let raw = raw.trim();
                if raw.is_empty() {
                    if nullable {
                        o.insert(field.into(), Value::Null);
                    }
                    return;
                }
                match raw.parse::<i64>() {
                    Ok(n) => {
                        o.insert(field.into(), json!(n));
                    }
                    Err(_) => bad(field, "must be a whole number"),
                }
            };
        int(&mut o, "expected_status", &self.expected_status, false);
        int(&mut o, "interval_seconds", &self.interval_seconds, false);
        int(&mut o, "timeout_ms", &self.timeout_ms, false);
        int(&mut o, "retries", &self.retries, false);
        int(&mut o, "alert_threshold", &self.alert_threshold, false);
        int(&mut o, "tls_expiry_days", &self.tls_expiry_days, false);
        int(&mut o, "degraded_ms", &self.degraded_ms, true);
        int(&mut o, "max_response_ms", &self.max_response_ms, true);
        int(&mut o, "port", &self.port, true);
        let text = |o: &mut Map<String, Value>, field: &str, raw: &str| {
            let v = if raw.trim().is_empty() {
                Value::Null
            } else {
                json!(raw)
            };
            o.insert(field.into(), v);
        };
        o.insert("description".into(), json!(self.description));
        text(&mut o, "body_contains", &self.body_contains);
        text(&mut o, "body", &self.body);
        text(&mut o, "webhook_url", &self.webhook_url);
        text(&mut o, "host", &self.host);
        text(&mut o, "send", &self.send);
        text(&mut o, "expect", &self.expect);
        text(&mut o, "record_type", &self.record_type);
        text(&mut o, "resolver", &self.resolver);
        for (field, v) in [
            ("alert_on_degraded", self.alert_on_degraded),
            ("tls_verify", self.tls_verify),
            ("tls", self.tls),
            ("public", self.public),
        ] {
            o.insert(field.into(), json!(v));
        }
        let mut headers = BTreeMap::new();
        for line in self.headers.lines().filter(|l| !l.trim().is_empty()) {
            match line.split_once(':') {
                Some((k, v)) => {
                    headers.insert(k.trim().to_string(), v.trim().to_string());
                }
                None => {
                    errors.push(ValidationError {
                        field: "headers".into(),
                        message: format!("{:?} is not a `Name: value` line", line.trim()),
                    });
                    break;
                }
            }
        }
        o.insert("headers".into(), json!(headers));
        o.insert("secret_headers".into(), json!(names(&self.secret_headers)));
        let locations = names(&self.locations);
        if !locations.is_empty() {
            o.insert("locations".into(), json!(locations));
        }
        if !self.location_strategy.is_empty() {
            o.insert("location_strategy".into(), json!(self.location_strategy));
        }
        let quorum = self.alert_locations.trim();
        if !quorum.is_empty() {
            let v = quorum
                .parse::<u64>()
                .map_or_else(|_| json!(quorum), |n| json!(n));
            o.insert("alert_locations".into(), v);
        }
        let objective = self.slo_objective.trim().trim_end_matches('%').trim();
        if objective.is_empty() {
            o.insert("slo".into(), Value::Null);
        } else {
            match objective.parse::<f64>() {
                Ok(pct) if pct.is_finite() => {
                    let mut slo = Map::new();
                    slo.insert("objective".into(), json!(pct));
                    let days = self.slo_window_days.trim();
                    if !days.is_empty() {
                        match days.parse::<u32>() {
                            Ok(d) => {
                                slo.insert("window_days".into(), json!(d));
                            }
                            Err(_) => errors.push(ValidationError {
                                field: "slo.window_days".into(),
                                message: "must be a whole number".into(),
                            }),
                        }
                    }
                    o.insert("slo".into(), Value::Object(slo));
                }
                _ => errors.push(ValidationError {
                    field: "slo.objective".into(),
                    message: "must be a percentage, e.g. 99.9".into(),
                }),
            }
        }
        o.insert("slo_alerts".into(), json!(self.slo_alerts));
        if let Some(secret) = webhook_secret.filter(|s| !s.trim().is_empty()) {
            o.insert("webhook_secret".into(), json!(secret));
        }
        let mut rows = Vec::new();
        let mut list = Vec::new();
        for (i, r) in self.assertions.iter().enumerate() {
            if r.source.trim().is_empty() {
                continue;
            }
            let mut a = Map::new();
            a.insert("source".into(), json!(r.source));
            a.insert("comparison".into(), json!(r.comparison));
            if !r.property.trim().is_empty() {
                a.insert("property".into(), json!(r.property));
            }
            if !r.target.is_empty() {
                a.insert("target".into(), json!(r.target));
            }
            rows.push(i);
            list.push(Value::Object(a));
        }
        o.insert("assertions".into(), Value::Array(list));
        if !errors.is_empty() {
            return Err(errors);
        }
        serde_json::from_value::<CheckInput>(Value::Object(o))
            .map(|input| (input, rows))
            .map_err(|e| {
                vec![ValidationError {
                    field: "form".into(),
                    message: e.to_string(),
                }]
            })
    }
}

/// The form key an error belongs next to: `assertions[2].target` is row
/// `rows[2]`'s target input, `type` is the type select.
pub fn error_key(field: &str, rows: &[usize]) -> String {
    if let Some(rest) = field.strip_prefix("assertions[") {
        if let Some((i, part)) = rest.split_once(']') {
            if let Ok(i) = i.parse::<usize>() {
                let row = rows.get(i).copied().unwrap_or(i);
                let part = part.trim_start_matches('.');
                let part = if part.is_empty() { "source" } else { part };
                return format!("a{row}_{part}");
            }
        }
        return "assertions".into();
    }
    match field {
        "slo" | "slo.objective" => "slo_objective".into(),
        "slo.window_days" => "slo_window_days".into(),
        _ => field.to_string(),
    }
}

#[derive(Template)]
#[template(path = "form.html")]
pub struct FormPage {
    pub chrome: Chrome,
    pub title: String,
    pub action: String,
    /// Where "Cancel" goes.
    pub back: String,
    pub v: Values,
    pub errors: HashMap<String, String>,
    /// Rows shown: the check's assertions and two empty ones.
    pub rows: Vec<AssertionRow>,
    pub has_secret: bool,
}

impl FormPage {
    pub fn new(
        chrome: Chrome,
        title: String,
        action: String,
        back: String,
        v: Values,
        errors: HashMap<String, String>,
        has_secret: bool,
    ) -> FormPage {
        let mut rows = v.assertions.clone();
        let want = (rows.len() + 2).clamp(3, MAX_ASSERTIONS);
        rows.resize(want, AssertionRow::default());
        FormPage {
            chrome,
            title,
            action,
            back,
            v,
            errors,
            rows,
            has_secret,
        }
    }

    /// The message for form key `key`, or "".
    pub fn err(&self, key: &str) -> &str {
        self.errors.get(key).map_or("", String::as_str)
    }

    pub fn row_err(&self, row: &usize, part: &str) -> &str {
        self.err(&format!("a{row}_{part}"))
    }

    pub fn methods(&self) -> &'static [&'static str] {
        METHODS
    }

    pub fn sources(&self) -> &'static [&'static str] {
        SOURCES
    }

    pub fn comparisons(&self) -> &'static [&'static str] {
        COMPARISONS
    }

    pub fn record_types(&self) -> Vec<&'static str> {
        RecordType::ALL.iter().map(|r| r.as_str()).collect()
    }

    /// Whether form-level errors (not tied to a shown field) exist.
    pub fn other_errors(&self) -> Vec<(String, String)> {
        let shown = [
            "name",
            "description",
            "type",
            "url",
            "method",
            "expected_status",
            "body_contains",
            "headers",
            "secret_headers",
            "body",
            "interval_seconds",
            "timeout_ms",
            "retries",
            "alert_threshold",
            "degraded_ms",
            "max_response_ms",
            "webhook_url",
            "webhook_secret",
            "tls_expiry_days",
            "host",
            "port",
            "send",
            "expect",
            "record_type",
            "resolver",
            "locations",
            "location_strategy",
            "alert_locations",
            "slo_objective",
            "slo_window_days",
            "slo_alerts",
        ];
        let mut out: Vec<(String, String)> = self
            .errors
            .iter()
            .filter(|(k, _)| !shown.contains(&k.as_str()) && !is_row_key(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.sort();
        out
    }
}

/// Whether `k` names an assertion row's input (`a3_target`).
fn is_row_key(k: &str) -> bool {
    k.strip_prefix('a')
        .and_then(|rest| rest.split_once('_'))
        .is_some_and(|(n, _)| n.parse::<usize>().is_ok())
}

fn errors_of(list: Vec<ValidationError>, rows: &[usize]) -> HashMap<String, String> {
    list.into_iter()
        .map(|e| (error_key(&e.field, rows), e.message))
        .collect()
}

fn invalid(page: &FormPage) -> Result<Response, WebError> {
    Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
}

fn parse_id(raw: &str) -> Result<Uuid, WebError> {
    Uuid::parse_str(raw).map_err(|_| WebError::NotFound)
}

pub async fn new_form(signed_in: SignedIn) -> Result<Response, WebError> {
    let v = Values::from_spec(&CheckSpec::defaults());
    html(&FormPage::new(
        signed_in.chrome(),
        "New check".into(),
        "/checks/new".into(),
        "/".into(),
        v,
        HashMap::new(),
        false,
    ))
}

pub async fn create(
    State(state): State<WebState>,
    signed_in: SignedIn,
    form: FormData,
) -> Result<Response, WebError> {
    signed_in.check_csrf(&form)?;
    let v = Values::from_form(&form);
    let page = |errors| {
        FormPage::new(
            signed_in.chrome(),
            "New check".into(),
            "/checks/new".into(),
            "/".into(),
            v.clone(),
            errors,
            false,
        )
    };
    let (input, rows) = match v.input(form.get("webhook_secret")) {
        Ok(ok) => ok,
        Err(list) => return invalid(&page(errors_of(list, &[]))),
    };
    crate::app::checks::precompile(&input).await;
    let spec = match input.create(state.app.target_policy) {
        Ok(spec) => spec,
        Err(e) => return invalid(&page(errors_of(vec![e], &rows))),
    };
    let check = state.app.checks.create(&spec).await?;
    tracing::info!(check_id = %check.id, "check created from the dashboard");
    Ok(Redirect::to(&format!("/checks/{}", check.id)).into_response())
}

pub async fn edit_form(
    State(state): State<WebState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id = parse_id(&id)?;
    let check = state.app.checks.get(id).await?;
    html(&FormPage::new(
        signed_in.chrome(),
        format!("Edit {}", check.spec.name),
        format!("/checks/{id}/edit"),
        format!("/checks/{id}"),
        Values::from_spec(&check.spec),
        HashMap::new(),
        check.spec.webhook_secret.is_some(),
    ))
}

/// Why an edit did not happen: the form's fault, or ours.
enum EditError {
    Invalid(Vec<ValidationError>),
    Store(pulse_store::StoreError),
}

impl From<pulse_store::StoreError> for EditError {
    fn from(e: pulse_store::StoreError) -> Self {
        EditError::Store(e)
    }
}

pub async fn update(
    State(state): State<WebState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    signed_in.check_csrf(&form)?;
    let id = parse_id(&id)?;
    let v = Values::from_form(&form);
    if let Ok((input, _)) = v.input(form.get("webhook_secret")) {
        crate::app::checks::precompile(&input).await;
    }
    let mut rows = Vec::new();
    let result = state
        .app
        .checks
        .update_with(id, None, |current| {
            let (input, r) = v
                .input(form.get("webhook_secret"))
                .map_err(EditError::Invalid)?;
            rows = r;
            input
                .apply(current, state.app.target_policy)
                .map_err(|e| EditError::Invalid(vec![e]))
        })
        .await;
    match result {
        Ok(check) => {
            if !check.spec.enabled {
                state.app.cancel_queued(id).await;
            }
            tracing::info!(check_id = %id, version = check.version, "check updated from the dashboard");
            Ok(Redirect::to(&format!("/checks/{id}")).into_response())
        }
        Err(EditError::Invalid(list)) => {
            let check = state.app.checks.get(id).await?;
            invalid(&FormPage::new(
                signed_in.chrome(),
                format!("Edit {}", check.spec.name),
                format!("/checks/{id}/edit"),
                format!("/checks/{id}"),
                v,
                errors_of(list, &rows),
                check.spec.webhook_secret.is_some(),
            ))
        }
        Err(EditError::Store(e)) => Err(e.into()),
    }
}

/// Pauses or resumes a check through the API's rules (`enabled`).
async fn set_enabled(
    state: &WebState,
    signed_in: &SignedIn,
    id: &str,
    form: &FormData,
    enabled: bool,
) -> Result<Response, WebError> {
    signed_in.check_csrf(form)?;
    let id = parse_id(id)?;
    let input = CheckInput {
        enabled: Some(Some(enabled)),
        ..Default::default()
    };
    let policy = state.app.target_policy;
    let result = state
        .app
        .checks
        .update_with(id, None, |current| {
            input.apply(current, policy).map_err(EditError::from)
        })
        .await;
    match result {
        Ok(_) => {}
        Err(EditError::Store(e)) => return Err(e.into()),
        // A stored check stays valid; a rule added since it was stored
        // is shown rather than hidden.
        Err(EditError::Invalid(e)) => {
            return Err(WebError::BadRequest(format!(
                "This check no longer passes validation: {}",
                e.first().map(ToString::to_string).unwrap_or_default()
            )))
        }
    }
    if !enabled {
        state.app.cancel_queued(id).await;
    }
    tracing::info!(check_id = %id, enabled, "check paused or resumed from the dashboard");
    Ok(Redirect::to(&format!("/checks/{id}")).into_response())
}

impl From<ValidationError> for EditError {
    fn from(e: ValidationError) -> Self {
        EditError::Invalid(vec![e])
    }
}

pub async fn pause(
    State(state): State<WebState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    set_enabled(&state, &signed_in, &id, &form, false).await
}

pub async fn resume(
    State(state): State<WebState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    set_enabled(&state, &signed_in, &id, &form, true).await
}

pub async fn delete(
    State(state): State<WebState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    signed_in.check_csrf(&form)?;
    let id = parse_id(&id)?;
    state.app.checks.delete(id).await?;
    state.app.cancel_queued(id).await;
    tracing::info!(check_id = %id, "check deleted from the dashboard");
    Ok(Redirect::to("/").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn a_form_becomes_the_apis_input_and_is_validated_by_its_rules() {
        let v = Values::from_form(&form(&[
            ("name", " Shop "),
            ("type", "http"),
            ("url", "https://shop.example/health"),
            ("method", "POST"),
            ("expected_status", "201"),
            ("headers", "X-One: 1\n\nX-Two:  two words "),
            ("interval_seconds", "30"),
            ("degraded_ms", ""),
            ("public", "on"),
            ("locations", "default, eu-west"),
            ("alert_locations", "2"),
            ("a1_source", "status_code"),
            ("a1_comparison", "less_than"),
            ("a1_target", "300"),
        ]));
        let (input, rows) = v.input(None).unwrap();
        assert_eq!(rows, vec![1], "the second row is the first assertion");
        let spec = input.create(Default::default()).unwrap();
        assert_eq!(spec.name, "Shop");
        assert_eq!(spec.method, "POST");
        assert_eq!(spec.expected_status, 201);
        assert_eq!(spec.interval_seconds, 30);
        assert_eq!(spec.degraded_ms, None);
        assert!(spec.public);
        assert!(!spec.tls_verify, "an unticked box is false");
        assert_eq!(
            spec.headers.get("X-Two").map(String::as_str),
            Some("two words")
        );
        assert_eq!(spec.locations, vec!["default", "eu-west"]);
        assert_eq!(spec.alert_locations, pulse_core::Quorum::AtLeast(2));
        assert_eq!(spec.assertions.len(), 1);
        assert_eq!(
            spec.assertions[0].describe(),
            "status_code less_than \"300\""
        );
    }

    #[test]
    fn values_that_are_not_even_of_the_right_kind_are_all_named() {
        let v = Values::from_form(&form(&[
            ("name", "x"),
            ("url", "https://x.example/"),
            ("timeout_ms", "soon"),
            ("port", "eighty"),
            ("headers", "no colon here"),
        ]));
        let errors = v.input(None).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_ref()).collect();
        assert_eq!(fields, vec!["timeout_ms", "port", "headers"]);
        assert_eq!(errors[0].message, "must be a whole number");
    }

    #[test]
    fn an_slo_out_of_range_is_named_by_the_core_rules_and_shown_by_its_input() {
        let v = Values::from_form(&form(&[
            ("name", "x"),
            ("url", "https://x.example/"),
            ("slo_objective", "100"),
        ]));
        let (input, rows) = v.input(None).unwrap();
        let e = input.create(Default::default()).unwrap_err();
        assert_eq!(error_key(&e.field, &rows), "slo_objective");
        let v = Values::from_form(&form(&[("name", "x"), ("slo_objective", "lots")]));
        let errors = v.input(None).unwrap_err();
        assert_eq!(errors[0].field, "slo.objective");
    }

    #[test]
    fn an_error_goes_next_to_the_input_it_names() {
        assert_eq!(error_key("url", &[]), "url");
        assert_eq!(error_key("assertions[0].target", &[2]), "a2_target");
        assert_eq!(error_key("assertions[1]", &[0, 3]), "a3_source");
        assert_eq!(error_key("assertions", &[]), "assertions");
        assert_eq!(error_key("slo.objective", &[]), "slo_objective");
        assert_eq!(error_key("slo.window_days", &[]), "slo_window_days");
    }

    #[test]
    fn a_spec_fills_the_form_and_reads_back_unchanged() {
        let mut spec = CheckSpec::defaults();
        spec.name = "Round trip".into();
        spec.description = "Line one.\nLine <two>.".into();
        spec.url = "https://rt.example/".into();
        spec.headers.insert("X-A".into(), "1".into());
        spec.headers
            .insert("Authorization".into(), "Bearer s3cret".into());
        spec.headers.insert("X-Key".into(), "k-s3cret".into());
        spec.secret_headers = vec!["x-key".into()];
        spec.degraded_ms = Some(800);
        spec.public = true;
        spec.slo = Some(pulse_core::slo::Slo {
            objective: 99.5,
            window_days: 7,
        });
        spec.slo_alerts = true;
        spec.assertions = vec![serde_json::from_value(
            json!({"source": "header", "property": "x-version", "comparison": "equals", "target": "7"}),
        )
        .unwrap()];
        let v = Values::from_spec(&spec);
        let page = FormPage::new(
            Chrome::default(),
            "Edit".into(),
            "/checks/x/edit".into(),
            "/checks/x".into(),
            v.clone(),
            HashMap::new(),
            false,
        );
        let html = page.render().unwrap();
        let mut pairs = Vec::new();
        // Read the rendered inputs back as a browser would post them.
        for (k, val) in [
            ("name", &v.name),
            ("description", &v.description),
            ("url", &v.url),
            ("headers", &v.headers),
            ("secret_headers", &v.secret_headers),
            ("degraded_ms", &v.degraded_ms),
            ("expected_status", &v.expected_status),
            ("interval_seconds", &v.interval_seconds),
            ("timeout_ms", &v.timeout_ms),
            ("retries", &v.retries),
            ("alert_threshold", &v.alert_threshold),
            ("tls_expiry_days", &v.tls_expiry_days),
            ("locations", &v.locations),
            ("alert_locations", &v.alert_locations),
            ("slo_objective", &v.slo_objective),
            ("slo_window_days", &v.slo_window_days),
        ] {
            pairs.push((k.to_string(), val.clone()));
        }
        for (k, val) in [
            ("type", "http"),
            ("method", "GET"),
            ("location_strategy", "all"),
            ("public", "on"),
            ("slo_alerts", "on"),
            ("tls_verify", "on"),
            ("a0_source", "header"),
            ("a0_property", "x-version"),
            ("a0_comparison", "equals"),
            ("a0_target", "7"),
        ] {
            pairs.push((k.into(), val.into()));
        }
        assert!(
            !html.contains("s3cret"),
            "a credential is never shown: {html}"
        );
        assert!(v.headers.contains("Authorization: ***"), "{}", v.headers);
        assert!(v.headers.contains("X-Key: ***"), "{}", v.headers);
        assert!(html.contains("value=\"x-key\""), "{html}");
        assert!(
            html.contains(">Line one.\nLine &#60;two&#62;.</textarea>"),
            "{html}"
        );
        assert!(html.contains("value=\"x-version\""), "{html}");
        assert!(html.contains("<option selected>header</option>"), "{html}");
        assert!(
            html.contains("id=\"public\" name=\"public\" type=\"checkbox\" checked"),
            "{html}"
        );
        let (input, _) = Values::from_form(&FormData(pairs)).input(None).unwrap();
        assert_eq!(
            // An edit: the masked credential keeps the stored value.
            input.apply(spec.clone(), Default::default()).unwrap(),
            spec
        );
    }

    #[test]
    fn the_form_shows_each_message_right_after_its_input() {
        let page = FormPage::new(
            Chrome::default(),
            "New check".into(),
            "/checks/new".into(),
            "/".into(),
            Values::from_spec(&CheckSpec::defaults()),
            HashMap::from([
                ("url".to_string(), "must name a host".to_string()),
                (
                    "a1_target".to_string(),
                    "is required for comparison equals".to_string(),
                ),
                (
                    "slo".to_string(),
                    "a rule the form has no input for".to_string(),
                ),
            ]),
            false,
        );
        let html = page.render().unwrap();
        let input = html.find("<input id=\"url\"").unwrap();
        let err = html
            .find("<p class=\"err\" id=\"url-err\" role=\"alert\">must name a host</p>")
            .unwrap();
        let next = html.find("<label for=\"method\">").unwrap();
        assert!(input < err && err < next, "{html}");
        assert!(html.contains("id=\"url\" name=\"url\" type=\"url\" value=\"\" aria-invalid=\"true\" aria-describedby=\"url-err\""), "{html}");
        let row = html.find("name=\"a1_target\"").unwrap();
        let row_err = html
            .find("id=\"a1_target-err\" role=\"alert\">is required for comparison equals")
            .unwrap();
        assert!(row < row_err && row_err < html.find("name=\"a2_source\"").unwrap());
        assert!(
            html.contains(
                "<p class=\"err\" role=\"alert\">slo: a rule the form has no input for</p>"
            ),
            "{html}"
        );
        assert!(html.contains("The check was not saved"));
    }
}
