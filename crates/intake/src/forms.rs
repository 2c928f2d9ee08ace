//! The public web form residents fill in: no credentials, no JavaScript.
//!
//! Follows the GOV.UK Design System patterns: every input has a `<label>`, hints
//! and errors are tied to it with `aria-describedby`, grouped choices sit in a
//! `<fieldset>` with a `<legend>`, an error summary at the top links to each
//! failing field, the page title starts with "Error:" when there are errors,
//! and what the resident typed is kept when the form comes back. Personal
//! fields carry `autocomplete` tokens (WCAG 2.2 SC 1.3.5).
//!
//! A hidden idempotency key, made when the form is shown, turns a double
//! submission (double click, refresh, flaky connection) into one contact and
//! the same reference.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use switchboard_domain::{Channel, ContactReference, ServiceDefinition, ValidationErrors};
use switchboard_proto::v1::{self, submit_contact_request::Origin};
use switchboard_runtime::problem::Problem;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::PeerIpKeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use crate::api::MAX_HTTP_BODY_BYTES;
use crate::error::IntakeError;
use crate::service::{Intake, check_idempotency_key};

/// The form's id, recorded as the contact's web origin.
pub const CONTACT_FORM_ID: &str = "contact";

const FORM_PATH: &str = "/forms/contact";
const STYLESHEET_PATH: &str = "/forms/assets/forms.css";
const STYLESHEET: &str = include_str!("../assets/forms.css");

/// How hard one client address may use the public pages.
#[derive(Debug, Clone)]
pub struct FormRateLimit {
    /// Requests one address may make at once before it has to wait.
    pub burst: u32,
    /// How often one more request is allowed after the burst is used.
    pub replenish_every: Duration,
}

impl Default for FormRateLimit {
    /// Generous: a library or council office puts many residents behind one
    /// address, and a form takes a couple of requests per attempt.
    fn default() -> Self {
        FormRateLimit {
            burst: 30,
            replenish_every: Duration::from_secs(2),
        }
    }
}

/// The residents' pages, for the binary to merge into its HTTP server:
/// `GET /forms/contact`, `POST /forms/contact`,
/// `GET /forms/contact/sent/{reference}` and the stylesheet.
///
/// Rate limited per peer address, so the server must be run with
/// `into_make_service_with_connect_info::<SocketAddr>()`; behind a reverse proxy
/// every resident shares the proxy's address, so size `limit` for that or put
/// the limit on the proxy.
pub fn public_router(intake: Intake, limit: FormRateLimit) -> Router {
    let metrics = intake.metrics().clone();
    let routes = Router::new()
        .route(FORM_PATH, get(show_form).post(submit_form))
        .route("/forms/contact/sent/{reference}", get(show_sent))
        .route(STYLESHEET_PATH, get(stylesheet))
        .with_state(intake)
        .layer(DefaultBodyLimit::max(MAX_HTTP_BODY_BYTES));
    // Zero would mean "no requests ever"; the smallest real limit is meant.
    let config = GovernorConfigBuilder::default()
        .period(limit.replenish_every.max(Duration::from_millis(1)))
        .burst_size(limit.burst.max(1))
        .key_extractor(PeerIpKeyExtractor)
        .finish();
    let limited = match config {
        Some(config) => {
            let config = Arc::new(config);
            let weak = Arc::downgrade(&config);
            every_minute(move || {
                weak.upgrade()
                    .map(|config| config.limiter().retain_recent())
                    .is_some()
            });
            routes.layer(GovernorLayer::new(config).error_handler(move |error| {
                metrics.rejected("rate_limited");
                too_many_requests(error)
            }))
        }
        None => {
            // Cannot happen with the clamped values above; serving the pages
            // without a limit is safer for residents than not serving them.
            tracing::error!("invalid form rate limit, public pages are not rate limited");
            routes
        }
    };
    // Outermost, so the rate limiter's pages get the headers too.
    limited.layer(axum::middleware::map_response(security_headers))
}

/// Runs `task` every minute until it answers `false`. The rate limiter keeps a
/// cell per address it has seen; forgetting the fully recovered ones now and then
/// keeps memory to current traffic. The task holds only a weak reference to the
/// limiter, so it ends with the router.
fn every_minute(mut task: impl FnMut() -> bool + Send + 'static) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(60));
        interval.tick().await;
        loop {
            interval.tick().await;
            if !task() {
                return;
            }
        }
    });
}

// ---- handlers -------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct ShowQuery {
    service: Option<String>,
}

async fn show_form(State(intake): State<Intake>, Query(query): Query<ShowQuery>) -> Response {
    let fields = FormFields {
        service: query.service.unwrap_or_default(),
        idempotency_key: new_form_key(),
        ..FormFields::default()
    };
    page_response(StatusCode::OK, contact_form_page(&intake, &fields, &[]))
}

#[tracing::instrument(name = "intake.forms.submit", skip_all)]
async fn submit_form(
    State(intake): State<Intake>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let pairs = match form {
        Ok(Form(pairs)) => pairs,
        Err(rejection) => {
            let status = rejection.status();
            let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "malformed"
            };
            intake.metrics().rejected(reason);
            return Problem::new(status, "form submission refused", rejection.body_text()).into_response();
        }
    };
    let mut fields = FormFields::from_pairs(pairs);
    // The key is ours (made when the form was shown); one that was tampered with
    // is dropped rather than shown to the resident as an error.
    if check_idempotency_key(&fields.idempotency_key, "idempotency_key").is_err() {
        fields.idempotency_key = new_form_key();
    }

    match intake.submit(fields.to_request()).await {
        Ok(accepted) => {
            Redirect::to(&format!("/forms/contact/sent/{}", accepted.reference.as_str())).into_response()
        }
        Err(IntakeError::Invalid(errors)) => {
            let errors = form_errors(&errors, &fields);
            page_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                contact_form_page(&intake, &fields, &errors),
            )
        }
        Err(IntakeError::IdempotencyKeyReused) => {
            // The resident came back to a sent form and changed it: that is a new
            // message, so give it a new key, and say so before sending it.
            fields.idempotency_key = new_form_key();
            let errors = vec![FormError {
                field: "summary",
                message: "You have already sent a message from this page. Check your answers, then select \
                          ‘Send message’ to send this as a new message"
                    .to_owned(),
            }];
            page_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                contact_form_page(&intake, &fields, &errors),
            )
        }
        Err(error) => {
            // Logged (with its cause chain, never the resident's data) by to_problem.
            let problem = error.to_problem();
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            page_response(status, problem_page())
        }
    }
}

async fn show_sent(Path(reference): Path<String>) -> Response {
    match ContactReference::parse(&reference) {
        Ok(reference) => page_response(StatusCode::OK, sent_page(&reference)),
        Err(_) => page_response(StatusCode::NOT_FOUND, not_found_page()),
    }
}

async fn stylesheet() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        STYLESHEET,
    )
        .into_response()
}

fn too_many_requests(error: GovernorError) -> Response {
    let (wait_seconds, headers) = match error {
        GovernorError::TooManyRequests { wait_time, headers } => (wait_time, headers),
        GovernorError::UnableToExtractKey | GovernorError::Other { .. } => {
            tracing::error!(error.message = %error, "cannot rate limit a public form request");
            return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None).into_response();
        }
    };
    let mut response = page_response(StatusCode::TOO_MANY_REQUESTS, rate_limited_page(wait_seconds));
    if let Some(retry_after) = headers
        .as_ref()
        .and_then(|headers| headers.get(header::RETRY_AFTER))
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after.clone());
    }
    response
}

/// Public pages may hold what a resident typed: never cached, never framed,
/// nothing loaded from elsewhere.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn page_response(status: StatusCode, page: Markup) -> Response {
    (status, Html(page.into_string())).into_response()
}

fn new_form_key() -> String {
    format!("form-{}", uuid::Uuid::now_v7())
}

// ---- the form's fields ----------------------------------------------------

/// The needs a resident can tick, as (form value, label, hint).
const NEEDS: &[(&str, &str, Option<&str>)] = &[
    ("british_sign_language", "British Sign Language (BSL)", None),
    ("interpreter", "An interpreter", None),
    ("large_print", "Letters in large print", None),
    ("hearing_loop", "A hearing loop when you visit", None),
    ("wheelchair_access", "Step-free access when you visit", None),
    ("assisted_digital", "Help using our online services", None),
];

/// Languages offered, as (BCP 47 tag, name in English and in the language).
const LANGUAGES: &[(&str, &str)] = &[
    ("", "English (no preference)"),
    ("cy", "Welsh (Cymraeg)"),
    ("pl", "Polish (Polski)"),
    ("ro", "Romanian (Română)"),
    ("pa", "Punjabi (ਪੰਜਾਬੀ)"),
    ("ur", "Urdu (اردو)"),
    ("bn", "Bengali (বাংলা)"),
    ("ar", "Arabic (العربية)"),
    ("pt", "Portuguese (Português)"),
    ("lt", "Lithuanian (Lietuvių)"),
    ("uk", "Ukrainian (Українська)"),
];

/// What the resident typed, kept as typed so the form can be shown again.
#[derive(Debug, Clone, Default)]
struct FormFields {
    service: String,
    summary: String,
    message: String,
    name: String,
    email: String,
    phone: String,
    postcode: String,
    address_line: String,
    language: String,
    needs: Vec<String>,
    vulnerable: bool,
    vulnerability_consent: bool,
    idempotency_key: String,
}

impl FormFields {
    /// Unknown names are ignored: browsers and extensions add their own.
    fn from_pairs(pairs: Vec<(String, String)>) -> FormFields {
        let mut fields = FormFields::default();
        for (name, value) in pairs {
            match name.as_str() {
                "service" => fields.service = value,
                "summary" => fields.summary = value,
                "message" => fields.message = value,
                "name" => fields.name = value,
                "email" => fields.email = value,
                "phone" => fields.phone = value,
                "postcode" => fields.postcode = value,
                "address_line" => fields.address_line = value,
                "language" => fields.language = value,
                "needs" if NEEDS.iter().any(|(need, _, _)| *need == value) => fields.needs.push(value),
                "vulnerable" => fields.vulnerable = true,
                "vulnerability_consent" => fields.vulnerability_consent = true,
                "idempotency_key" => fields.idempotency_key = value,
                _ => {}
            }
        }
        fields
    }

    fn needs(&self, need: &str) -> bool {
        self.needs.iter().any(|ticked| ticked == need)
    }

    fn to_request(&self) -> v1::SubmitContactRequest {
        let mut details = BTreeMap::new();
        if !self.message.trim().is_empty() {
            details.insert("message".to_owned(), self.message.clone());
        }
        v1::SubmitContactRequest {
            channel: v1::Channel::Web as i32,
            service: self.service.clone(),
            customer: Some(v1::Customer {
                name: self.name.clone(),
                phone: self.phone.clone(),
                email: self.email.clone(),
                postcode: self.postcode.clone(),
                address_line: self.address_line.clone(),
                uprn: String::new(),
            }),
            summary: self.summary.clone(),
            details,
            needs: Some(v1::Needs {
                language: self.language.clone(),
                british_sign_language: self.needs("british_sign_language"),
                interpreter: self.needs("interpreter"),
                large_print: self.needs("large_print"),
                hearing_loop: self.needs("hearing_loop"),
                assisted_digital: self.needs("assisted_digital"),
                wheelchair_access: self.needs("wheelchair_access"),
                vulnerable: self.vulnerable,
                vulnerability_consent: self.vulnerability_consent,
            }),
            idempotency_key: self.idempotency_key.clone(),
            origin: Some(Origin::Web(v1::WebOrigin {
                form_id: CONTACT_FORM_ID.to_owned(),
                page_url: FORM_PATH.to_owned(),
            })),
        }
    }
}

/// One error as the resident sees it: the id of the input to link to and a
/// message in plain words.
#[derive(Debug, Clone)]
struct FormError {
    field: &'static str,
    message: String,
}

/// The domain's violations (named by proto field path) as form errors, one per
/// input, in the order the inputs appear.
fn form_errors(errors: &ValidationErrors, fields: &FormFields) -> Vec<FormError> {
    const ORDER: &[&str] = &[
        "service",
        "summary",
        "message",
        "name",
        "email",
        "phone",
        "address_line",
        "postcode",
        "language",
        "vulnerability_consent",
    ];
    let mut found: Vec<FormError> = Vec::new();
    for violation in &errors.violations {
        let field = form_field(&violation.field);
        if found.iter().any(|error| error.field == field) {
            continue;
        }
        found.push(FormError {
            field,
            message: form_message(field, &violation.field, &violation.description, fields),
        });
    }
    found.sort_by_key(|error| {
        ORDER
            .iter()
            .position(|name| *name == error.field)
            .unwrap_or(ORDER.len())
    });
    found
}

fn form_field(proto_path: &str) -> &'static str {
    match proto_path {
        "service" | "channel" => "service",
        "customer.name" => "name",
        "customer.phone" => "phone",
        "customer.postcode" => "postcode",
        "customer.address_line" => "address_line",
        // "customer": neither phone nor email given; the email input comes first.
        "customer.email" | "customer" => "email",
        "needs.language" => "language",
        "needs.vulnerable" | "needs.vulnerability_consent" => "vulnerability_consent",
        path if path.starts_with("details") => "message",
        _ => "summary",
    }
}

fn form_message(field: &str, proto_path: &str, description: &str, fields: &FormFields) -> String {
    let too_long = |value: &str, limit: usize| value.trim().chars().count() > limit;
    match field {
        "service" if fields.service.is_empty() => "Select which service your message is about".to_owned(),
        "service" => "Select a service from the list".to_owned(),
        "summary" if proto_path == "summary" && fields.summary.trim().is_empty() => {
            "Enter what your message is about".to_owned()
        }
        "summary" if proto_path == "summary" && too_long(&fields.summary, 500) => {
            "What your message is about must be 500 characters or fewer".to_owned()
        }
        "message" if too_long(&fields.message, 4000) => "Your message must be 4,000 characters or fewer".to_owned(),
        "name" if too_long(&fields.name, 200) => "Your name must be 200 characters or fewer".to_owned(),
        "email" if proto_path == "customer" => {
            "Enter an email address or a telephone number so we can reply to you".to_owned()
        }
        "email" => "Enter an email address in the correct format, like name@example.com".to_owned(),
        "phone" => "Enter a telephone number, like 01632 960 001 or +44 808 157 0192".to_owned(),
        "postcode" => "Enter a full UK postcode, like SO43 7PN".to_owned(),
        "language" => "Select a language from the list".to_owned(),
        "vulnerability_consent" => {
            "Tick the box to agree that we can record that you may need extra support, or untick ‘I may need extra support’"
                .to_owned()
        }
        _ => sentence(description),
    }
}

/// "not a valid thing" → "Not a valid thing": the domain's lowercase
/// descriptions, as a sentence.
fn sentence(description: &str) -> String {
    let mut characters = description.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => "Check this answer".to_owned(),
    }
}

// ---- pages ----------------------------------------------------------------

fn layout(title: &str, has_errors: bool, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { @if has_errors { "Error: " } (title) " – Contact the council" }
                link rel="stylesheet" href=(STYLESHEET_PATH);
            }
            body {
                a.skip-link href="#main-content" { "Skip to main content" }
                header.site-header {
                    div.width-container {
                        a.site-header__name href=(FORM_PATH) { "Contact the council" }
                    }
                }
                div.width-container {
                    main #main-content {
                        (content)
                    }
                }
                footer.site-footer {
                    div.width-container {
                        p { "If you cannot use this form, phone us or visit a council office. We will help you." }
                    }
                }
            }
        }
    }
}

fn contact_form_page(intake: &Intake, fields: &FormFields, errors: &[FormError]) -> Markup {
    let error_for = |field: &str| {
        errors
            .iter()
            .find(|error| error.field == field)
            .map(|error| error.message.as_str())
    };
    let services: Vec<_> = intake
        .catalogue()
        .services()
        .iter()
        .filter(|service| service.channels.contains(&Channel::Web))
        .collect();
    let content = html! {
        @if !errors.is_empty() {
            // Focus moves here on load (autofocus, no script needed), so screen
            // reader users hear the problems first; each links to its input.
            div.error-summary role="alert" tabindex="-1" autofocus aria-labelledby="error-summary-title" {
                h2 #error-summary-title { "There is a problem" }
                ul {
                    @for error in errors {
                        li { a href={ "#" (error.field) } { (error.message) } }
                    }
                }
            }
        }
        h1 { "Contact the council" }
        p { "Send us a message and we will reply by email or phone. You will get a reference number when you send it." }
        form method="post" action=(FORM_PATH) novalidate {
            input type="hidden" name="idempotency_key" value=(fields.idempotency_key);

            (service_select(&services, &fields.service, error_for("service")))

            (text_input(TextInput { id: "summary", label: "What is your message about?", hint: Some("In a few words, for example ‘Missed bin collection on Tuesday’"), value: &fields.summary, error: error_for("summary"), kind: "text", autocomplete: None, short: false }))

            (textarea("message", "Your message (optional)", Some("Include anything that will help us, such as dates or account numbers. Do not include bank or card details."), &fields.message, error_for("message")))

            fieldset.form-group {
                legend { "How can we contact you?" }
                span.hint { "Give us an email address or a telephone number, or both, so we can reply." }
                (text_input(TextInput { id: "name", label: "Full name (optional)", hint: None, value: &fields.name, error: error_for("name"), kind: "text", autocomplete: Some("name"), short: false }))
                (text_input(TextInput { id: "email", label: "Email address", hint: None, value: &fields.email, error: error_for("email"), kind: "email", autocomplete: Some("email"), short: false }))
                (text_input(TextInput { id: "phone", label: "Telephone number", hint: Some("For international numbers include the country code"), value: &fields.phone, error: error_for("phone"), kind: "tel", autocomplete: Some("tel"), short: false }))
                (text_input(TextInput { id: "address_line", label: "First line of your address (optional)", hint: None, value: &fields.address_line, error: error_for("address_line"), kind: "text", autocomplete: Some("address-line1"), short: false }))
                (text_input(TextInput { id: "postcode", label: "Postcode (optional)", hint: None, value: &fields.postcode, error: error_for("postcode"), kind: "text", autocomplete: Some("postal-code"), short: true }))
            }

            fieldset.form-group {
                legend { "Do you need any help to contact us or use our services?" }
                (select("language", "Language you would like us to use", &fields.language, error_for("language")))
                div.form-group {
                    span.hint #needs-hint { "Select all that apply." }
                    @for (index, (need, label, hint)) in NEEDS.iter().enumerate() {
                        @let id = if index == 0 { "needs".to_owned() } else { format!("needs-{need}") };
                        div.choice {
                            input #(id) type="checkbox" name="needs" value=(need) checked[fields.needs(need)] aria-describedby="needs-hint";
                            label for=(id) { (label) @if let Some(hint) = hint { span.hint { (hint) } } }
                        }
                    }
                }
            }

            @let consent_error = error_for("vulnerability_consent");
            div.form-group.form-group--error[consent_error.is_some()] {
                fieldset aria-describedby={ "vulnerability-hint" @if consent_error.is_some() { " vulnerability_consent-error" } } {
                    legend { "Is there anything else we should know?" }
                    span.hint #vulnerability-hint { "For example because of your health, a disability, or a difficult time in your life. We will only record this if you agree." }
                    @if let Some(message) = consent_error {
                        p.error-message #vulnerability_consent-error { span.visually-hidden { "Error:" } " " (message) }
                    }
                    div.choice {
                        input #vulnerable type="checkbox" name="vulnerable" value="yes" checked[fields.vulnerable];
                        label for="vulnerable" { "I may need extra support" }
                    }
                    div.choice {
                        input #vulnerability_consent type="checkbox" name="vulnerability_consent" value="yes" checked[fields.vulnerability_consent];
                        label for="vulnerability_consent" { "I agree that the council can record that I may need extra support" }
                    }
                }
            }

            button.button type="submit" { "Send message" }
        }
    };
    layout("Send us a message", !errors.is_empty(), content)
}

struct TextInput<'a> {
    id: &'a str,
    label: &'a str,
    hint: Option<&'a str>,
    value: &'a str,
    error: Option<&'a str>,
    kind: &'a str,
    autocomplete: Option<&'a str>,
    short: bool,
}

fn described_by(id: &str, hint: bool, error: bool) -> Option<String> {
    let mut ids = Vec::new();
    if hint {
        ids.push(format!("{id}-hint"));
    }
    if error {
        ids.push(format!("{id}-error"));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

fn error_message(id: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = error {
            p.error-message id={ (id) "-error" } { span.visually-hidden { "Error:" } " " (message) }
        }
    }
}

fn text_input(input: TextInput<'_>) -> Markup {
    let TextInput {
        id,
        label,
        hint,
        value,
        error,
        kind,
        autocomplete,
        short,
    } = input;
    html! {
        div.form-group.form-group--error[error.is_some()] {
            label for=(id) { (label) }
            @if let Some(hint) = hint { span.hint id={ (id) "-hint" } { (hint) } }
            (error_message(id, error))
            input #(id) .input--short[short] type=(kind) name=(id) value=(value)
                autocomplete=[autocomplete] spellcheck=[(kind == "email").then_some("false")]
                aria-describedby=[described_by(id, hint.is_some(), error.is_some())]
                aria-invalid=[error.map(|_| "true")];
        }
    }
}

fn textarea(id: &str, label: &str, hint: Option<&str>, value: &str, error: Option<&str>) -> Markup {
    html! {
        div.form-group.form-group--error[error.is_some()] {
            label for=(id) { (label) }
            @if let Some(hint) = hint { span.hint id={ (id) "-hint" } { (hint) } }
            (error_message(id, error))
            textarea #(id) name=(id) rows="6"
                aria-describedby=[described_by(id, hint.is_some(), error.is_some())]
                aria-invalid=[error.map(|_| "true")] { (value) }
        }
    }
}

fn select(id: &str, label: &str, value: &str, error: Option<&str>) -> Markup {
    html! {
        div.form-group.form-group--error[error.is_some()] {
            label for=(id) { (label) }
            (error_message(id, error))
            select #(id) name=(id) aria-describedby=[described_by(id, false, error.is_some())] {
                @for (tag, name) in LANGUAGES {
                    option value=(tag) selected[*tag == value] lang=[(!tag.is_empty()).then_some(*tag)] { (name) }
                }
            }
        }
    }
}

/// A select rather than radios: the catalogue offers dozens of services on the
/// web, too many to scan as radios (the GOV.UK guidance), and a select needs
/// no JavaScript.
fn service_select(services: &[&ServiceDefinition], value: &str, error: Option<&str>) -> Markup {
    html! {
        div.form-group.form-group--error[error.is_some()] {
            label for="service" { "Which service is your message about?" }
            span.hint #service-hint { "If you are not sure, choose ‘General enquiry’ or the closest match." }
            (error_message("service", error))
            select #service name="service" aria-describedby=(described_by("service", true, error.is_some()).unwrap_or_default())
                aria-invalid=[error.map(|_| "true")] {
                option value="" selected[value.is_empty()] { "Choose a service" }
                @for service in services {
                    option value=(service.id.as_str()) selected[service.id.as_str() == value] { (service.name) }
                }
            }
        }
    }
}

fn sent_page(reference: &ContactReference) -> Markup {
    layout(
        "Message sent",
        false,
        html! {
            div.panel {
                h1 { "Message sent" }
                div.panel__body { "Your reference number is" strong { (reference.as_str()) } }
            }
            p { "Keep this reference. Quote it if you contact us about this message, by phone, online or in person." }
            h2 { "What happens next" }
            p { "We will reply by email or phone. If you told us about any help you need, we will use it when we contact you." }
            p { a href=(FORM_PATH) { "Send another message" } }
        },
    )
}

fn rate_limited_page(wait_seconds: u64) -> Markup {
    layout(
        "Too many attempts",
        false,
        html! {
            h1 { "Too many attempts from your connection" }
            p { "To protect this service we limit how often messages can be sent from one connection." }
            p { "Wait " (wait_seconds.max(1)) " seconds, then try again. What you typed has not been sent." }
            p { "If you need help now, phone us or visit a council office." }
        },
    )
}

fn problem_page() -> Markup {
    layout(
        "Sorry, there is a problem",
        false,
        html! {
            h1 { "Sorry, there is a problem with the service" }
            p { "Your message has not been sent. Go back and try again in a few minutes; what you typed may still be in the form." }
            p { "If you need help now, phone us or visit a council office." }
        },
    )
}

fn not_found_page() -> Markup {
    layout(
        "Page not found",
        false,
        html! {
            h1 { "Page not found" }
            p { "If you typed the web address, check it is correct." }
            p { a href=(FORM_PATH) { "Send us a message" } }
        },
    )
}
