//! Who is calling, and may they call this.
//!
//! Every call carries `authorization: Bearer …` (gRPC metadata and HTTP header
//! alike). Two kinds of credential:
//!
//! - **API keys** (`sbk_…`) for intake clients (web-form back ends, the CTI
//!   adapter). The config holds only each key's SHA-256, compared in constant
//!   time.
//! - **JWTs** for staff: HS256 with a shared secret, or RS256/ES256 against a
//!   JWKS file as identity providers such as Entra ID publish. `exp`, `nbf`,
//!   `iss` and `aud` are checked; roles come from the `roles` claim.
//!
//! [`Policy`] maps every gRPC method path and HTTP route to the roles allowed,
//! denying anything it does not list. [`AuthLayer`] is one tower layer over
//! `http::Request`, so the same code guards the tonic and the axum servers:
//! missing or invalid credentials answer `UNAUTHENTICATED` / 401, a caller
//! without an allowed role `PERMISSION_DENIED` / 403, and an admitted call
//! finds its [`Principal`] in the request extensions.

use std::{
    collections::BTreeSet,
    fmt,
    path::{Path, PathBuf},
    pin::Pin,
    str::FromStr,
    sync::{Arc, RwLock},
    task::{Context, Poll},
    time::SystemTime,
};

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use crate::{
    config::{ApiKeySettings, AuthSettings, JwtSettings},
    error::{RuntimeError, RuntimeResult},
    problem::Problem,
};

/// Every API key starts with this, which is how a bearer credential is told
/// apart from a JWT (a JWT starts with `eyJ`), and how secret scanners spot a
/// leaked key.
pub const API_KEY_PREFIX: &str = "sbk_";

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Handles contacts and cases.
    Agent,
    /// Oversees agents and queues; everything an agent does.
    Supervisor,
    /// Reads aggregates and reports, no personal data.
    Analyst,
    /// Runs the system: configuration, metrics; not residents' records.
    Admin,
    /// A system that submits contacts (web forms, CTI adapter).
    IntakeClient,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Agent,
        Role::Supervisor,
        Role::Analyst,
        Role::Admin,
        Role::IntakeClient,
    ];

    /// The form used in config files and the `roles` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
            Role::IntakeClient => "intake_client",
        }
    }

    /// Case-insensitive, `-` or `_` alike, so an identity provider's app role
    /// `Intake-Client` or `Agent` works as written there.
    pub fn parse(value: &str) -> Option<Role> {
        let normalised = value.trim().to_ascii_lowercase().replace('-', "_");
        Role::ALL.into_iter().find(|role| role.as_str() == normalised)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Role::parse(value).ok_or_else(|| "unknown role".to_owned())
    }
}

/// The authenticated caller, found in request extensions after [`AuthLayer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`, or `api-key:<name>` for an API key. An identifier of
    /// staff or a system, never of a resident.
    pub subject: String,
    pub roles: BTreeSet<Role>,
}

impl Principal {
    pub fn new(subject: impl Into<String>, roles: impl IntoIterator<Item = Role>) -> Principal {
        Principal {
            subject: subject.into(),
            roles: roles.into_iter().collect(),
        }
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn has_any_role(&self, roles: &BTreeSet<Role>) -> bool {
        !self.roles.is_disjoint(roles)
    }

    /// The principal of a gRPC call that went through [`AuthLayer`] (tonic
    /// carries the HTTP extensions into its `Request`).
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&Principal> {
        request.extensions().get::<Principal>()
    }

    /// Like [`Principal::of`], for handlers that must have one: a call that
    /// reached them without it is refused rather than served anonymously.
    pub fn require<T>(request: &tonic::Request<T>) -> Result<&Principal, tonic::Status> {
        Principal::of(request).ok_or_else(|| tonic::Status::unauthenticated("missing credentials"))
    }
}

/// `Principal` as an axum extractor; 401 when the request was not admitted
/// with credentials (a public route called anonymously).
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                Some("missing credentials".to_owned()),
            )
        })
    }
}

/// `Option<Principal>`, for public routes that behave differently for staff.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

/// Why a credential was not accepted. The client sees [`Self::client_message`];
/// logs get [`Self::reason`]; neither includes the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    MissingCredentials,
    MalformedCredentials,
    UnknownApiKey,
    InvalidToken,
    ExpiredToken,
    /// Signed with a key or algorithm this server does not trust.
    UntrustedToken,
}

impl AuthFailure {
    pub fn reason(self) -> &'static str {
        match self {
            AuthFailure::MissingCredentials => "missing credentials",
            AuthFailure::MalformedCredentials => "malformed authorization header",
            AuthFailure::UnknownApiKey => "unknown api key",
            AuthFailure::InvalidToken => "invalid token",
            AuthFailure::ExpiredToken => "expired token",
            AuthFailure::UntrustedToken => "token signed by an untrusted key",
        }
    }

    /// Deliberately coarse: a caller learns to fetch a new token or to send
    /// one, not which check its forgery failed.
    pub fn client_message(self) -> &'static str {
        match self {
            AuthFailure::MissingCredentials => "missing credentials: send authorization: Bearer <token>",
            AuthFailure::MalformedCredentials => "malformed authorization header: expected Bearer <token>",
            AuthFailure::ExpiredToken => "the token has expired",
            AuthFailure::UnknownApiKey | AuthFailure::InvalidToken | AuthFailure::UntrustedToken => {
                "invalid credentials"
            }
        }
    }
}

/// A new random API key: the prefix and 256 bits, base64url.
pub fn generate_api_key() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{API_KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What the config file stores for a key.
pub fn api_key_sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// [`api_key_sha256`] as the hex the config file holds.
pub fn api_key_sha256_hex(key: &str) -> String {
    hex::encode(api_key_sha256(key))
}

/// Claims of a token minted here (development credentials and tests).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenClaims {
    pub sub: String,
    pub roles: Vec<Role>,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
}

/// Signs `claims` with HS256.
pub fn mint_hs256_token(secret: &SecretString, claims: &TokenClaims) -> RuntimeResult<String> {
    let key = EncodingKey::from_secret(secret.expose_secret().as_bytes());
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &key,
    )?)
}

/// Checks credentials against the configured API keys and token keys.
pub struct Authenticator {
    api_keys: Vec<ApiKeySettings>,
    jwt: Option<JwtVerifier>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("api_keys", &self.api_keys.len())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

impl Authenticator {
    /// Reads the JWKS file, if one is configured; a file without a usable
    /// signing key stops the start.
    pub fn new(settings: &AuthSettings) -> RuntimeResult<Authenticator> {
        let jwt = settings.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        Ok(Authenticator {
            api_keys: settings.api_keys.clone(),
            jwt,
        })
    }

    /// Checks the `authorization` header.
    pub fn authenticate_headers(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        match bearer_token(headers)? {
            Some(token) => self.authenticate(token),
            None => Err(AuthFailure::MissingCredentials),
        }
    }

    /// Checks one bearer credential.
    pub fn authenticate(&self, token: &str) -> Result<Principal, AuthFailure> {
        if token.starts_with(API_KEY_PREFIX) {
            return self.authenticate_api_key(token);
        }
        match &self.jwt {
            Some(verifier) => verifier.verify(token),
            None => Err(AuthFailure::InvalidToken),
        }
    }

    fn authenticate_api_key(&self, key: &str) -> Result<Principal, AuthFailure> {
        let presented = api_key_sha256(key);
        // Every configured key is compared, without stopping at a match, so
        // the time taken says nothing about which (or whether one) matched.
        let mut found: Option<&ApiKeySettings> = None;
        for candidate in &self.api_keys {
            if bool::from(candidate.sha256.ct_eq(&presented)) {
                found = Some(candidate);
            }
        }
        found
            .map(|key| Principal::new(format!("api-key:{}", key.name), [key.role]))
            .ok_or(AuthFailure::UnknownApiKey)
    }
}

/// The token from `authorization: Bearer <token>`; `Ok(None)` when there is no
/// such header.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthFailure> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthFailure::MalformedCredentials);
    }
    let value = value.to_str().map_err(|_| AuthFailure::MalformedCredentials)?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(AuthFailure::MalformedCredentials)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthFailure::MalformedCredentials);
    }
    Ok(Some(token))
}

struct JwtVerifier {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksFile>,
    issuer: String,
    audience: String,
    leeway_seconds: u64,
}

#[derive(Deserialize)]
struct VerifiedClaims {
    sub: String,
    #[serde(default)]
    roles: RolesClaim,
}

/// Identity providers send `roles` as an array; some send one string.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum RolesClaim {
    #[default]
    Absent,
    One(String),
    Many(Vec<String>),
}

impl RolesClaim {
    /// Known roles only: a role of another application in the same token is
    /// none of ours to interpret.
    fn into_roles(self) -> BTreeSet<Role> {
        match self {
            RolesClaim::Absent => BTreeSet::new(),
            RolesClaim::One(role) => Role::parse(&role).into_iter().collect(),
            RolesClaim::Many(roles) => roles.iter().filter_map(|role| Role::parse(role)).collect(),
        }
    }
}

impl JwtVerifier {
    fn new(settings: &JwtSettings) -> RuntimeResult<JwtVerifier> {
        let hs256 = settings
            .hs256_secret
            .as_ref()
            .map(|secret| DecodingKey::from_secret(secret.expose_secret().as_bytes()));
        let jwks = settings.jwks_file.as_deref().map(JwksFile::load).transpose()?;
        Ok(JwtVerifier {
            hs256,
            jwks,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway_seconds: settings.leeway_seconds,
        })
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway_seconds;
        validation
    }

    fn verify(&self, token: &str) -> Result<Principal, AuthFailure> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::InvalidToken)?;
        // The key is chosen by the algorithm family we configured, never by
        // the header alone: an RS256 public key is never used as an HS256
        // secret (the classic algorithm-confusion forgery).
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.clone().ok_or(AuthFailure::UntrustedToken)?,
            Algorithm::RS256 | Algorithm::ES256 => self
                .jwks
                .as_ref()
                .and_then(|jwks| jwks.key_for(header.kid.as_deref(), header.alg))
                .ok_or(AuthFailure::UntrustedToken)?,
            _ => return Err(AuthFailure::UntrustedToken),
        };
        let data = jsonwebtoken::decode::<VerifiedClaims>(token, &key, &self.validation(header.alg))
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => AuthFailure::ExpiredToken,
                _ => AuthFailure::InvalidToken,
            })?;
        let subject = data.claims.sub.trim().to_owned();
        if subject.is_empty() {
            return Err(AuthFailure::InvalidToken);
        }
        Ok(Principal {
            subject,
            roles: data.claims.roles.into_roles(),
        })
    }
}

/// The identity provider's public keys, from a file something else keeps
/// fresh (a sidecar or cron fetching the provider's `jwks_uri`): this process
/// makes no outbound calls to verify a token.
struct JwksFile {
    path: PathBuf,
    /// A std lock: held only to clone a key or swap the set, never across an
    /// await.
    state: RwLock<JwksState>,
}

struct JwksState {
    modified: Option<SystemTime>,
    keys: Vec<JwksKey>,
}

#[derive(Clone)]
struct JwksKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

impl JwksFile {
    fn load(path: &Path) -> RuntimeResult<JwksFile> {
        let state = read_jwks(path)?;
        if state.keys.is_empty() {
            return Err(RuntimeError::config(
                "auth.jwt.jwks_file",
                "holds no RS256 or ES256 signing key",
            ));
        }
        Ok(JwksFile {
            path: path.to_path_buf(),
            state: RwLock::new(state),
        })
    }

    fn key_for(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<DecodingKey> {
        if let Some(key) = self.find(kid, algorithm) {
            return Some(key);
        }
        // An unknown key id usually means the provider rotated its keys: re-read
        // the file if it changed since, then look once more.
        if self.reload_if_changed() {
            self.find(kid, algorithm)
        } else {
            None
        }
    }

    fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<DecodingKey> {
        let state = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut candidates = state.keys.iter().filter(|key| key.algorithm == algorithm);
        match kid {
            Some(kid) => candidates
                .find(|key| key.kid.as_deref() == Some(kid))
                .map(|key| key.key.clone()),
            // Without a key id, only an unambiguous key set can be used.
            None => {
                let first = candidates.next()?;
                candidates.next().is_none().then(|| first.key.clone())
            }
        }
    }

    fn reload_if_changed(&self) -> bool {
        let modified = std::fs::metadata(&self.path)
            .and_then(|metadata| metadata.modified())
            .ok();
        {
            let state = self
                .state
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if modified.is_none() || state.modified == modified {
                return false;
            }
        }
        match read_jwks(&self.path) {
            Ok(fresh) if !fresh.keys.is_empty() => {
                tracing::info!(keys = fresh.keys.len(), "reloaded jwks file");
                *self
                    .state
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
                true
            }
            Ok(_) => {
                tracing::warn!("jwks file holds no usable key; keeping the previous keys");
                false
            }
            Err(error) => {
                tracing::warn!(error.message = %error, "cannot reload jwks file; keeping the previous keys");
                false
            }
        }
    }
}

fn read_jwks(path: &Path) -> RuntimeResult<JwksState> {
    let modified = std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok();
    let bytes =
        std::fs::read(path).map_err(|error| RuntimeError::file("cannot read jwks file", path, error))?;
    let set: JwkSet = serde_json::from_slice(&bytes).map_err(|_| {
        RuntimeError::config("auth.jwt.jwks_file", "is not a JWKS document ({\"keys\": [...]})")
    })?;
    let keys = set.keys.iter().filter_map(signing_key).collect();
    Ok(JwksState { modified, keys })
}

/// A JWKS entry we can verify with, or `None` for encryption keys and
/// algorithms we do not accept.
fn signing_key(jwk: &Jwk) -> Option<JwksKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(KeyAlgorithm::RS256), AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(ec))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        // Entra ID and others omit `alg`; the key type says it.
        (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (None, AlgorithmParameters::EllipticCurve(ec)) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(JwksKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}

/// Who may call a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials.
    Public,
    /// Callers holding at least one of these roles.
    Roles(BTreeSet<Role>),
}

/// One line of the policy table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// A gRPC method path (`/switchboard.v1.CaseService/GetCase`) or HTTP
    /// route. A `{name}` segment matches any one segment; a final `*` matches
    /// the rest of the path.
    pub pattern: String,
    pub access: Access,
}

/// Which roles may call which routes. Deny by default: a path no rule matches
/// is refused to everyone, whatever their roles.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<Rule>,
}

/// Staff who handle residents' contacts and cases.
const CONTACT_HANDLERS: &[Role] = &[Role::Agent, Role::Supervisor];
/// Who may submit a contact: intake systems, and staff recording a call or visit.
const CONTACT_SUBMITTERS: &[Role] = &[Role::IntakeClient, Role::Agent, Role::Supervisor];
/// Who runs the contact-centre floor.
const SUPERVISORS: &[Role] = &[Role::Supervisor];
/// Who may change who is skilled for what and the routing rules, and read
/// why a contact went where it went.
const ROUTING_ADMINS: &[Role] = &[Role::Supervisor, Role::Admin];
/// Who reports a waiting resident's position, hang-up or callback choice:
/// the telephony adapter and web back end, and staff at the desk.
const QUEUE_REPORTERS: &[Role] = &[Role::IntakeClient, Role::Agent, Role::Supervisor];
/// Who oversees the handling of residents' data: undoing a merge of two
/// residents' records (the data of two people at stake), reading who looked
/// at a resident's data, and exporting it for a subject access request.
const DATA_OVERSEERS: &[Role] = &[Role::Supervisor, Role::Admin];
/// Who may erase a resident's personal data: irreversible, so only admins
/// (the role a council gives its data protection staff).
const ERASERS: &[Role] = &[Role::Admin];
/// Who may read operational metrics (a Prometheus scraper gets an API key
/// with one of these roles).
const OPERATORS: &[Role] = &[Role::Analyst, Role::Admin];

impl Policy {
    /// The Switchboard table. Every method in `proto/` must appear here; a
    /// test walks the descriptor set to make sure.
    pub fn standard() -> Policy {
        Policy::default()
            // Probes and tooling: load balancers and grpcurl call these
            // without credentials, and they reveal nothing about residents.
            .public("/grpc.health.v1.Health/*")
            .public("/grpc.reflection.v1.ServerReflection/*")
            .public("/grpc.reflection.v1alpha.ServerReflection/*")
            .public("/healthz")
            .public("/readyz")
            // Residents fill these in; they have no account.
            .public("/forms")
            .public("/forms/*")
            .allow("/metrics", OPERATORS)
            // Intake.
            .allow("/switchboard.v1.IntakeService/SubmitContact", CONTACT_SUBMITTERS)
            .allow("/v1/contacts", CONTACT_SUBMITTERS)
            .allow("/v1/contacts/{contact_id}", CONTACT_SUBMITTERS)
            // Cases: residents' records, for the staff who serve them.
            .allow("/switchboard.v1.CaseService/GetContact", CONTACT_HANDLERS)
            .allow("/switchboard.v1.CaseService/GetCase", CONTACT_HANDLERS)
            .allow(
                "/switchboard.v1.CaseService/GetCustomerTimeline",
                CONTACT_HANDLERS,
            )
            .allow("/switchboard.v1.CaseService/SearchCustomers", CONTACT_HANDLERS)
            .allow("/switchboard.v1.CaseService/UpdateCaseStatus", CONTACT_HANDLERS)
            .allow("/switchboard.v1.CaseService/AddCaseNote", CONTACT_HANDLERS)
            // Linking identities: agents confirm or dismiss suggested matches;
            // undoing a merge is for supervisors and admins.
            .allow(
                "/switchboard.v1.CaseService/ListMatchSuggestions",
                CONTACT_HANDLERS,
            )
            .allow(
                "/switchboard.v1.CaseService/DismissMatchSuggestion",
                CONTACT_HANDLERS,
            )
            .allow("/switchboard.v1.CaseService/MergeCustomers", CONTACT_HANDLERS)
            .allow("/switchboard.v1.CaseService/ListCustomerMerges", CONTACT_HANDLERS)
            .allow("/switchboard.v1.CaseService/UnmergeCustomers", DATA_OVERSEERS)
            .allow(
                "/switchboard.v1.CaseService/ListPersonalDataReads",
                DATA_OVERSEERS,
            )
            .allow("/switchboard.v1.CaseService/ExportCustomerData", DATA_OVERSEERS)
            .allow("/switchboard.v1.CaseService/EraseCustomer", ERASERS)
            .allow("/switchboard.v1.CaseService/MakeReferral", CONTACT_HANDLERS)
            .allow(
                "/switchboard.v1.CaseService/RecordReferralOutcome",
                CONTACT_HANDLERS,
            )
            // Needs and consent are recorded with the resident, by whoever
            // is serving them.
            .allow(
                "/switchboard.v1.CaseService/UpdateCustomerNeeds",
                CONTACT_HANDLERS,
            )
            .allow("/switchboard.v1.CaseService/RecordConsent", CONTACT_HANDLERS)
            .allow("/switchboard.v1.CaseService/WithdrawConsent", CONTACT_HANDLERS)
            .allow("/switchboard.v1.CaseService/ListConsents", CONTACT_HANDLERS)
            .allow("/switchboard.v1.CaseService/ListRetentionRuns", DATA_OVERSEERS)
            // Routing: an agent's desktop acts for the agent signed in to it
            // (the token's subject); supervisors also take contacts.
            .allow("/switchboard.v1.AgentService/SignIn", CONTACT_HANDLERS)
            .allow("/switchboard.v1.AgentService/SignOut", CONTACT_HANDLERS)
            .allow("/switchboard.v1.AgentService/SetPresence", CONTACT_HANDLERS)
            .allow("/switchboard.v1.AgentService/StreamUpdates", CONTACT_HANDLERS)
            .allow("/switchboard.v1.AgentService/AcceptOffer", CONTACT_HANDLERS)
            .allow("/switchboard.v1.AgentService/RejectOffer", CONTACT_HANDLERS)
            .allow("/switchboard.v1.AgentService/EndContact", CONTACT_HANDLERS)
            .allow("/switchboard.v1.AgentService/CompleteContact", CONTACT_HANDLERS)
            .allow("/switchboard.v1.AgentService/TransferContact", CONTACT_HANDLERS)
            // The live floor and moving work: supervisors.
            .allow("/switchboard.v1.SupervisorService/GetLiveState", SUPERVISORS)
            .allow("/switchboard.v1.SupervisorService/ExplainContact", ROUTING_ADMINS)
            .allow("/switchboard.v1.SupervisorService/MoveContact", SUPERVISORS)
            .allow("/switchboard.v1.SupervisorService/SetAgentPresence", SUPERVISORS)
            // Who is skilled for what, and the routing rules: supervisors
            // and administrators.
            .allow(
                "/switchboard.v1.SupervisorService/PutAgentProfile",
                ROUTING_ADMINS,
            )
            .allow(
                "/switchboard.v1.SupervisorService/ListAgentProfiles",
                ROUTING_ADMINS,
            )
            .allow(
                "/switchboard.v1.SupervisorService/GetRoutingConfig",
                ROUTING_ADMINS,
            )
            .allow(
                "/switchboard.v1.SupervisorService/UpdateRoutingConfig",
                ROUTING_ADMINS,
            )
            // The channels report what residents do while they wait.
            .allow("/switchboard.v1.QueueService/GetPosition", QUEUE_REPORTERS)
            .allow("/switchboard.v1.QueueService/ReportAbandoned", QUEUE_REPORTERS)
            .allow("/switchboard.v1.QueueService/AcceptCallback", QUEUE_REPORTERS)
    }

    /// Adds (or replaces) a rule open to everyone.
    pub fn public(self, pattern: &str) -> Policy {
        self.with_rule(pattern, Access::Public)
    }

    /// Adds (or replaces) a rule for callers holding any of `roles`.
    pub fn allow(self, pattern: &str, roles: &[Role]) -> Policy {
        self.with_rule(pattern, Access::Roles(roles.iter().copied().collect()))
    }

    fn with_rule(mut self, pattern: &str, access: Access) -> Policy {
        debug_assert!(pattern.starts_with('/'), "policy patterns are absolute paths");
        match self.rules.iter_mut().find(|rule| rule.pattern == pattern) {
            Some(rule) => rule.access = access,
            None => self.rules.push(Rule {
                pattern: pattern.to_owned(),
                access,
            }),
        }
        self
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule for `path`: an exact pattern wins over a wildcard one, then
    /// the first wildcard rule in table order. Paths with `.` or `..`
    /// segments match nothing, so no router's normalisation can walk from a
    /// public prefix to a protected route.
    pub fn rule_for(&self, path: &str) -> Option<&Rule> {
        if path.split('/').any(|segment| segment == "." || segment == "..") {
            return None;
        }
        self.rules.iter().find(|rule| rule.pattern == path).or_else(|| {
            self.rules
                .iter()
                .find(|rule| is_wildcard(&rule.pattern) && matches(&rule.pattern, path))
        })
    }

    pub fn is_public(&self, path: &str) -> bool {
        matches!(
            self.rule_for(path),
            Some(Rule {
                access: Access::Public,
                ..
            })
        )
    }

    /// Whether a caller holding `roles` may call `path`.
    pub fn allows(&self, path: &str, roles: &BTreeSet<Role>) -> bool {
        match self.rule_for(path) {
            Some(Rule {
                access: Access::Public,
                ..
            }) => true,
            Some(Rule {
                access: Access::Roles(allowed),
                ..
            }) => !allowed.is_disjoint(roles),
            None => false,
        }
    }
}

fn is_wildcard(pattern: &str) -> bool {
    pattern.ends_with("/*") || pattern.contains('{')
}

fn matches(pattern: &str, path: &str) -> bool {
    let mut pattern_segments = pattern.split('/').peekable();
    let mut path_segments = path.split('/');
    while let Some(expected) = pattern_segments.next() {
        if expected == "*" && pattern_segments.peek().is_none() {
            return path_segments.next().is_some();
        }
        let Some(actual) = path_segments.next() else {
            return false;
        };
        let is_parameter = expected.starts_with('{') && expected.ends_with('}');
        if is_parameter && actual.is_empty() {
            return false;
        }
        if !is_parameter && expected != actual {
            return false;
        }
    }
    path_segments.next().is_none()
}

/// Whether the request is gRPC (including gRPC-Web), which decides whether a
/// refusal is a gRPC status or a problem document.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// Guards a tonic or axum service with an [`Authenticator`] and a [`Policy`].
#[derive(Clone)]
pub struct AuthLayer {
    state: Arc<AuthState>,
}

struct AuthState {
    authenticator: Arc<Authenticator>,
    policy: Arc<Policy>,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("rules", &self.state.policy.rules.len())
            .finish()
    }
}

impl AuthLayer {
    pub fn new(authenticator: Arc<Authenticator>, policy: Arc<Policy>) -> AuthLayer {
        AuthLayer {
            state: Arc::new(AuthState {
                authenticator,
                policy,
            }),
        }
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.state.policy
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    state: Arc<AuthState>,
}

enum Refusal {
    Unauthenticated(AuthFailure),
    Forbidden,
}

impl AuthState {
    /// `Ok(principal)` admits the call (`None`: a public route called without
    /// credentials).
    fn admit(&self, path: &str, headers: &HeaderMap) -> Result<Option<Principal>, Refusal> {
        let rule = self.policy.rule_for(path);
        if let Some(Rule {
            access: Access::Public,
            ..
        }) = rule
        {
            // Credentials on a public route are optional; a bad one is ignored
            // rather than refused, so a stale token cannot break a health probe.
            return Ok(self.authenticator.authenticate_headers(headers).ok());
        }
        let principal = self
            .authenticator
            .authenticate_headers(headers)
            .map_err(Refusal::Unauthenticated)?;
        match rule {
            Some(Rule {
                access: Access::Roles(allowed),
                ..
            }) if principal.has_any_role(allowed) => Ok(Some(principal)),
            _ => Err(Refusal::Forbidden),
        }
    }
}

type ResponseFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<Either<ResBody, Full<Bytes>>>;
    type Error = S::Error;
    type Future = ResponseFuture<Either<ResBody, Full<Bytes>>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        match self.state.admit(path, request.headers()) {
            Ok(principal) => {
                if let Some(principal) = principal {
                    request.extensions_mut().insert(principal);
                }
                let future = self.inner.call(request);
                Box::pin(async move { Ok(future.await?.map(Either::Left)) })
            }
            Err(refusal) => {
                let route = self.state.policy.rule_for(path).map(|rule| rule.pattern.as_str());
                let grpc = is_grpc(request.headers());
                log_refusal(&refusal, grpc, path, route);
                let response = refusal_response(&refusal, grpc).map(Either::Right);
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }
}

fn log_refusal(refusal: &Refusal, grpc: bool, path: &str, route: Option<&str>) {
    // gRPC paths are method names; an HTTP path is logged only as the policy
    // pattern it matched, since a raw path might carry a reference or postcode.
    let route = match (grpc, route) {
        (true, _) => path,
        (false, Some(route)) => route,
        (false, None) => "unmatched",
    };
    match refusal {
        Refusal::Unauthenticated(failure) => {
            tracing::info!(
                route,
                reason = failure.reason(),
                "request refused: unauthenticated"
            );
        }
        Refusal::Forbidden => tracing::info!(route, "request refused: permission denied"),
    }
}

fn refusal_response(refusal: &Refusal, grpc: bool) -> Response<Full<Bytes>> {
    if grpc {
        // Trailers-only: HTTP 200 with grpc-status in the headers, which is
        // how a gRPC server answers a call it refuses before any message.
        let status = match refusal {
            Refusal::Unauthenticated(failure) => tonic::Status::unauthenticated(failure.client_message()),
            Refusal::Forbidden => tonic::Status::permission_denied("your roles do not allow this call"),
        };
        return status.into_http::<Full<Bytes>>();
    }
    let (problem, challenge) = match refusal {
        Refusal::Unauthenticated(failure) => (
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                Some(failure.client_message().to_owned()),
            ),
            match failure {
                AuthFailure::MissingCredentials => "Bearer",
                _ => "Bearer error=\"invalid_token\"",
            },
        ),
        Refusal::Forbidden => (
            Problem::new(
                StatusCode::FORBIDDEN,
                "permission denied",
                Some("your roles do not allow this request".to_owned()),
            ),
            "Bearer error=\"insufficient_scope\"",
        ),
    };
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::FORBIDDEN);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use switchboard_proto::FILE_DESCRIPTOR_SET;

    const ISSUER: &str = "https://login.example/tenant/v2.0";
    const AUDIENCE: &str = "api://switchboard";
    const SECRET: &str = "an-hs256-test-secret-of-at-least-32-bytes";

    /// The roles the test expects for every gRPC method. A new method must be
    /// added here as well as in `Policy::standard`: the two are reviewed
    /// together, which is the point.
    fn expected_grpc_roles(path: &str) -> Option<&'static [Role]> {
        match path {
            "/switchboard.v1.IntakeService/SubmitContact" => {
                Some(&[Role::IntakeClient, Role::Agent, Role::Supervisor])
            }
            "/switchboard.v1.CaseService/GetContact"
            | "/switchboard.v1.CaseService/GetCase"
            | "/switchboard.v1.CaseService/GetCustomerTimeline"
            | "/switchboard.v1.CaseService/SearchCustomers"
            | "/switchboard.v1.CaseService/UpdateCaseStatus"
            | "/switchboard.v1.CaseService/AddCaseNote"
            | "/switchboard.v1.CaseService/ListMatchSuggestions"
            | "/switchboard.v1.CaseService/DismissMatchSuggestion"
            | "/switchboard.v1.CaseService/MergeCustomers"
            | "/switchboard.v1.CaseService/ListCustomerMerges"
            | "/switchboard.v1.CaseService/MakeReferral"
            | "/switchboard.v1.CaseService/RecordReferralOutcome"
            | "/switchboard.v1.CaseService/UpdateCustomerNeeds"
            | "/switchboard.v1.CaseService/RecordConsent"
            | "/switchboard.v1.CaseService/WithdrawConsent"
            | "/switchboard.v1.CaseService/ListConsents" => Some(&[Role::Agent, Role::Supervisor]),
            "/switchboard.v1.CaseService/UnmergeCustomers"
            | "/switchboard.v1.CaseService/ListPersonalDataReads"
            | "/switchboard.v1.CaseService/ExportCustomerData"
            | "/switchboard.v1.CaseService/ListRetentionRuns" => Some(&[Role::Supervisor, Role::Admin]),
            "/switchboard.v1.CaseService/EraseCustomer" => Some(&[Role::Admin]),
            "/switchboard.v1.AgentService/SignIn"
            | "/switchboard.v1.AgentService/SignOut"
            | "/switchboard.v1.AgentService/SetPresence"
            | "/switchboard.v1.AgentService/StreamUpdates"
            | "/switchboard.v1.AgentService/AcceptOffer"
            | "/switchboard.v1.AgentService/RejectOffer"
            | "/switchboard.v1.AgentService/EndContact"
            | "/switchboard.v1.AgentService/CompleteContact"
            | "/switchboard.v1.AgentService/TransferContact" => Some(&[Role::Agent, Role::Supervisor]),
            "/switchboard.v1.SupervisorService/GetLiveState"
            | "/switchboard.v1.SupervisorService/MoveContact"
            | "/switchboard.v1.SupervisorService/SetAgentPresence" => Some(&[Role::Supervisor]),
            "/switchboard.v1.SupervisorService/ExplainContact"
            | "/switchboard.v1.SupervisorService/PutAgentProfile"
            | "/switchboard.v1.SupervisorService/ListAgentProfiles"
            | "/switchboard.v1.SupervisorService/GetRoutingConfig"
            | "/switchboard.v1.SupervisorService/UpdateRoutingConfig" => {
                Some(&[Role::Supervisor, Role::Admin])
            }
            "/switchboard.v1.QueueService/GetPosition"
            | "/switchboard.v1.QueueService/ReportAbandoned"
            | "/switchboard.v1.QueueService/AcceptCallback" => {
                Some(&[Role::IntakeClient, Role::Agent, Role::Supervisor])
            }
            _ => None,
        }
    }

    fn method_paths() -> Vec<String> {
        let set =
            prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
        let mut paths = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    paths.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        paths
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn claims(roles: &[Role]) -> TokenClaims {
        TokenClaims {
            sub: "staff-1".to_owned(),
            roles: roles.to_vec(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now(),
            nbf: now(),
            exp: now() + 600,
        }
    }

    fn hs256_settings() -> AuthSettings {
        AuthSettings {
            api_keys: vec![ApiKeySettings {
                name: "web-forms".to_owned(),
                role: Role::IntakeClient,
                sha256: api_key_sha256("sbk_the-right-key"),
            }],
            jwt: Some(JwtSettings {
                hs256_secret: Some(SecretString::from(SECRET)),
                jwks_file: None,
                issuer: ISSUER.to_owned(),
                audience: AUDIENCE.to_owned(),
                leeway_seconds: 0,
            }),
        }
    }

    fn hs256_token(claims: &TokenClaims) -> String {
        mint_hs256_token(&SecretString::from(SECRET), claims).expect("mint")
    }

    #[test]
    fn every_grpc_method_in_the_descriptor_set_has_a_policy_and_the_expected_roles() {
        let policy = Policy::standard();
        let paths = method_paths();
        assert!(
            paths.len() >= 5,
            "descriptor set should list the intake and case methods: {paths:?}"
        );
        for path in &paths {
            let rule = policy
                .rule_for(path)
                .unwrap_or_else(|| panic!("no policy entry for {path}"));
            assert_eq!(
                &rule.pattern, path,
                "{path} must have its own entry, not a wildcard"
            );
            let expected = expected_grpc_roles(path)
                .unwrap_or_else(|| panic!("{path} is in the policy but not in this test: review its roles"));
            for role in Role::ALL {
                let allowed = policy.allows(path, &BTreeSet::from([role]));
                assert_eq!(allowed, expected.contains(&role), "{path} for {role}");
            }
            assert!(!policy.allows(path, &BTreeSet::new()), "{path} without roles");
            assert!(!policy.is_public(path), "{path} must not be public");
        }
        // And nothing in the table names a switchboard method that no longer exists.
        for rule in policy.rules() {
            if rule.pattern.starts_with("/switchboard.") {
                assert!(
                    paths.contains(&rule.pattern),
                    "stale policy entry {}",
                    rule.pattern
                );
            }
        }
    }

    #[test]
    fn http_routes_and_probes_have_the_expected_access() {
        let policy = Policy::standard();
        for public in [
            "/healthz",
            "/readyz",
            "/forms",
            "/forms/council-tax",
            "/forms/council-tax/submit",
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(policy.is_public(public), "{public} should be public");
        }
        let expected: &[(&str, &[Role])] = &[
            ("/metrics", &[Role::Analyst, Role::Admin]),
            (
                "/v1/contacts",
                &[Role::IntakeClient, Role::Agent, Role::Supervisor],
            ),
            (
                "/v1/contacts/0190f0e2-5a3b-7c4d-8e9f-0a1b2c3d4e5f",
                &[Role::IntakeClient, Role::Agent, Role::Supervisor],
            ),
        ];
        for (path, roles) in expected {
            assert!(!policy.is_public(path));
            for role in Role::ALL {
                assert_eq!(
                    policy.allows(path, &BTreeSet::from([role])),
                    roles.contains(&role),
                    "{path} {role}"
                );
            }
        }
    }

    #[test]
    fn unknown_and_sneaky_paths_are_denied_to_every_role() {
        let policy = Policy::standard();
        let everyone: BTreeSet<Role> = Role::ALL.into_iter().collect();
        for path in [
            "/",
            "/admin",
            "/v1/contacts/extra/more",
            "/healthz/x",
            "/forms/../v1/contacts",
            "/forms/./x",
            "/switchboard.v1.CaseService/DeleteEverything",
            "/switchboard.v1.RoutingService/Anything",
            "/grpc.health.v1.Healthy/Check",
        ] {
            assert!(!policy.allows(path, &everyone), "{path} should be denied");
        }
    }

    #[test]
    fn parameter_segments_match_one_segment() {
        let policy = Policy::default().allow("/v1/contacts/{reference}", &[Role::Agent]);
        let agent = BTreeSet::from([Role::Agent]);
        assert!(policy.allows("/v1/contacts/SB-1", &agent));
        assert!(!policy.allows("/v1/contacts/", &agent));
        assert!(!policy.allows("/v1/contacts/SB-1/notes", &agent));
    }

    #[test]
    fn roles_parse_loosely_and_print_canonically() {
        assert_eq!(Role::parse("Intake-Client"), Some(Role::IntakeClient));
        assert_eq!(Role::parse(" SUPERVISOR "), Some(Role::Supervisor));
        assert_eq!(Role::parse("clerk"), None);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }

    #[test]
    fn api_keys_are_matched_by_hash() {
        let authenticator = Authenticator::new(&hs256_settings()).expect("authenticator");
        let principal = authenticator
            .authenticate("sbk_the-right-key")
            .expect("known key");
        assert_eq!(
            principal,
            Principal::new("api-key:web-forms", [Role::IntakeClient])
        );
        assert_eq!(
            authenticator.authenticate("sbk_the-wrong-key"),
            Err(AuthFailure::UnknownApiKey)
        );
        let generated = generate_api_key();
        assert!(
            generated.starts_with(API_KEY_PREFIX) && generated.len() == 4 + 43,
            "{generated}"
        );
        assert_eq!(api_key_sha256_hex("abc").len(), 64);
    }

    #[test]
    fn hs256_tokens_are_checked_for_signature_expiry_issuer_audience_and_nbf() {
        let authenticator = Authenticator::new(&hs256_settings()).expect("authenticator");
        let principal = authenticator
            .authenticate(&hs256_token(&claims(&[Role::Agent])))
            .expect("valid token");
        assert_eq!(principal, Principal::new("staff-1", [Role::Agent]));

        let expired = TokenClaims {
            exp: now() - 10,
            iat: now() - 100,
            nbf: now() - 100,
            ..claims(&[Role::Agent])
        };
        assert_eq!(
            authenticator.authenticate(&hs256_token(&expired)),
            Err(AuthFailure::ExpiredToken)
        );
        let wrong_issuer = TokenClaims {
            iss: "someone-else".to_owned(),
            ..claims(&[Role::Agent])
        };
        assert_eq!(
            authenticator.authenticate(&hs256_token(&wrong_issuer)),
            Err(AuthFailure::InvalidToken)
        );
        let wrong_audience = TokenClaims {
            aud: "another-app".to_owned(),
            ..claims(&[Role::Agent])
        };
        assert_eq!(
            authenticator.authenticate(&hs256_token(&wrong_audience)),
            Err(AuthFailure::InvalidToken)
        );
        let not_yet = TokenClaims {
            nbf: now() + 600,
            ..claims(&[Role::Agent])
        };
        assert_eq!(
            authenticator.authenticate(&hs256_token(&not_yet)),
            Err(AuthFailure::InvalidToken)
        );
        let forged = mint_hs256_token(
            &SecretString::from("another-secret-that-is-also-32-bytes-long"),
            &claims(&[Role::Admin]),
        )
        .expect("mint");
        assert_eq!(
            authenticator.authenticate(&forged),
            Err(AuthFailure::InvalidToken)
        );
        assert_eq!(
            authenticator.authenticate("not.a.jwt"),
            Err(AuthFailure::InvalidToken)
        );
    }

    #[test]
    fn roles_claim_may_be_a_string_and_unknown_roles_are_ignored() {
        let authenticator = Authenticator::new(&hs256_settings()).expect("authenticator");
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let token = |roles: serde_json::Value| {
            let body = serde_json::json!({
                "sub": "staff-2", "roles": roles, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 60,
            });
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &body, &key).expect("mint")
        };
        let one = authenticator
            .authenticate(&token(serde_json::json!("Supervisor")))
            .expect("valid");
        assert_eq!(one.roles, BTreeSet::from([Role::Supervisor]));
        let many = authenticator
            .authenticate(&token(serde_json::json!(["agent", "SharePoint.Read"])))
            .expect("valid");
        assert_eq!(many.roles, BTreeSet::from([Role::Agent]));
    }

    // Test keys made with `openssl genpkey`; they sign nothing but these tests.
    const RSA_PRIVATE_PEM: &str = include_str!("../tests/fixtures/rsa-private.pem");
    const EC_PRIVATE_PEM: &str = include_str!("../tests/fixtures/ec-private.pem");
    const JWKS: &str = include_str!("../tests/fixtures/jwks.json");

    fn jwks_settings(dir: &Path) -> AuthSettings {
        let path = dir.join("jwks.json");
        std::fs::write(&path, JWKS).expect("write jwks");
        AuthSettings {
            api_keys: Vec::new(),
            jwt: Some(JwtSettings {
                hs256_secret: None,
                jwks_file: Some(path),
                issuer: ISSUER.to_owned(),
                audience: AUDIENCE.to_owned(),
                leeway_seconds: 0,
            }),
        }
    }

    fn signed(algorithm: Algorithm, kid: &str, key: &EncodingKey, claims: &TokenClaims) -> String {
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, key).expect("sign")
    }

    #[test]
    fn rs256_and_es256_tokens_verify_against_the_jwks_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let authenticator = Authenticator::new(&jwks_settings(dir.path())).expect("authenticator");
        let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).expect("rsa key");
        let ec = EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).expect("ec key");

        let token = signed(Algorithm::RS256, "rsa-1", &rsa, &claims(&[Role::Analyst]));
        assert_eq!(
            authenticator.authenticate(&token).expect("rs256").roles,
            BTreeSet::from([Role::Analyst])
        );
        let token = signed(Algorithm::ES256, "ec-1", &ec, &claims(&[Role::Supervisor]));
        assert_eq!(
            authenticator.authenticate(&token).expect("es256").roles,
            BTreeSet::from([Role::Supervisor])
        );

        // A kid the file does not hold, a key under the wrong kid, and HS256
        // when no secret is configured are all refused.
        let token = signed(Algorithm::RS256, "rsa-2", &rsa, &claims(&[Role::Agent]));
        assert_eq!(
            authenticator.authenticate(&token),
            Err(AuthFailure::UntrustedToken)
        );
        let token = signed(Algorithm::ES256, "rsa-1", &ec, &claims(&[Role::Agent]));
        assert_eq!(
            authenticator.authenticate(&token),
            Err(AuthFailure::UntrustedToken)
        );
        assert_eq!(
            authenticator.authenticate(&hs256_token(&claims(&[Role::Admin]))),
            Err(AuthFailure::UntrustedToken)
        );
    }

    #[test]
    fn a_jwks_file_without_signing_keys_is_refused_at_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = jwks_settings(dir.path());
        let path = settings
            .jwt
            .as_ref()
            .and_then(|jwt| jwt.jwks_file.clone())
            .expect("path");
        std::fs::write(&path, r#"{"keys": []}"#).expect("write");
        let error = Authenticator::new(&settings).expect_err("no keys");
        assert!(
            error.to_string().starts_with("auth.jwt.jwks_file: holds no"),
            "{error}"
        );
        std::fs::write(&path, "not json").expect("write");
        let error = Authenticator::new(&settings).expect_err("not json");
        assert!(
            error.to_string().starts_with("auth.jwt.jwks_file: is not a JWKS"),
            "{error}"
        );
    }

    #[test]
    fn bearer_header_parsing() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), Ok(None));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer_token(&headers), Ok(Some("abc")));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), Err(AuthFailure::MalformedCredentials));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&headers), Err(AuthFailure::MalformedCredentials));
    }

    mod layer {
        use super::*;
        use axum::{Router, body::Body, routing::get};
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;

        fn app() -> Router {
            let authenticator = Arc::new(Authenticator::new(&hs256_settings()).expect("authenticator"));
            Router::new()
                .route(
                    "/v1/contacts",
                    get(|principal: Principal| async move { principal.subject }),
                )
                .route(
                    "/forms/council-tax",
                    get(|principal: Option<Principal>| async move {
                        principal.map_or("anonymous".to_owned(), |principal| principal.subject)
                    }),
                )
                .route("/unlisted", get(|| async { "should never be reached" }))
                .layer(AuthLayer::new(authenticator, Arc::new(Policy::standard())))
        }

        async fn call(path: &str, authorization: Option<&str>, grpc: bool) -> (Response<Body>, String) {
            let mut request = Request::builder().uri(path);
            if let Some(authorization) = authorization {
                request = request.header(header::AUTHORIZATION, authorization);
            }
            if grpc {
                request = request.header(header::CONTENT_TYPE, "application/grpc");
            }
            let response = app()
                .oneshot(request.body(Body::empty()).expect("request"))
                .await
                .expect("infallible");
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.expect("body").to_bytes();
            (
                Response::from_parts(parts, Body::empty()),
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        }

        #[tokio::test]
        async fn http_refusals_are_problem_documents_and_admitted_calls_see_the_principal() {
            let (response, body) = call("/v1/contacts", None, false).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/problem+json"
            );
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
            assert!(body.contains("missing credentials"), "{body}");

            let analyst = format!("Bearer {}", hs256_token(&claims(&[Role::Analyst])));
            let (response, body) = call("/v1/contacts", Some(&analyst), false).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
            assert!(body.contains("\"status\":403"), "{body}");

            let (response, body) = call("/v1/contacts", Some("Bearer sbk_the-right-key"), false).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(body, "api-key:web-forms");

            let (response, _) = call("/v1/contacts", Some("Bearer sbk_nope"), false).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                response.headers()[header::WWW_AUTHENTICATE],
                "Bearer error=\"invalid_token\""
            );
        }

        #[tokio::test]
        async fn public_routes_admit_anyone_and_unlisted_routes_no_one() {
            let (response, body) = call("/forms/council-tax", None, false).await;
            assert_eq!((response.status(), body.as_str()), (StatusCode::OK, "anonymous"));
            let (response, body) = call("/forms/council-tax", Some("Bearer garbage"), false).await;
            assert_eq!((response.status(), body.as_str()), (StatusCode::OK, "anonymous"));
            let (_, body) = call("/forms/council-tax", Some("Bearer sbk_the-right-key"), false).await;
            assert_eq!(body, "api-key:web-forms");

            let supervisor = format!("Bearer {}", hs256_token(&claims(&Role::ALL)));
            let (response, _) = call("/unlisted", Some(&supervisor), false).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
            let (response, _) = call("/unlisted", None, false).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }

        #[tokio::test]
        async fn grpc_refusals_are_trailers_only_statuses() {
            let (response, _) = call("/switchboard.v1.CaseService/GetCase", None, true).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["grpc-status"], "16");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/grpc");
            let intake = "Bearer sbk_the-right-key";
            let (response, _) = call("/switchboard.v1.CaseService/GetCase", Some(intake), true).await;
            assert_eq!(response.headers()["grpc-status"], "7");
        }
    }
}
