//! Who is asking and what they may do.
//!
//! - **Sessions**: every browser gets a session in an `HttpOnly; SameSite=Strict` cookie, sealed
//!   with the portal's session key ([`crate::session`]), so every replica with the key reads it and
//!   none keeps state. The session holds the CSRF token and, after the login page, the user's token.
//!   Tokens never reach the page (nor, sealed, the browser's scripts).
//! - **Authentication**: standalone mode is open on loopback, or checks a basic-auth user/password or a
//!   shared bearer token ([`LocalAuth`]). Kubernetes mode checks the bearer token (header or session)
//!   with a TokenReview and keeps user, uid and groups.
//! - **Authorization**: standalone users may do everything. Kubernetes users are checked with a
//!   SubjectAccessReview on their own rights to `scheduledjobs.jobtrigger.io` in the job's namespace:
//!   `list`/`get` to read, `create`, `patch` (edit, pause), `delete`, and the custom verb `trigger`
//!   for Run Now (so people may be let run jobs without being let change them). Listing is allowed
//!   cluster-wide when the user may list in all namespaces; otherwise it is filtered to the namespaces
//!   in which a per-namespace `list` check passes.
//! - **CSRF**: unsafe requests from browsers must come from this origin (`Origin`, `Sec-Fetch-Site`),
//!   and requests authenticated by the cookie must also carry the session's token (hidden form field
//!   `csrf`, or the `X-CSRF-Token` header for the API). Bearer-token API calls carry no ambient
//!   credential and need neither.
//!
//! Results of TokenReview and SubjectAccessReview are cached briefly (see the constants) so a page
//! view costs no API call in the common case, while a revoked right takes effect within seconds.
//! Both caches are bounded and age entry by entry ([`AgedCache`]): a flood of new keys evicts single
//! entries, never the whole cache. Only accepted tokens are cached; failed authentications are
//! limited per client address ([`FailureLimiter`]): past the limit a client gets `429` with
//! `Retry-After` for any credential the portal has not already accepted.

use crate::config::LocalAuth;
use crate::error::AppError;
use crate::{AppState, Mode};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;
use rand::Rng;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "jtp_session";
/// Header carrying the CSRF token on cookie-authenticated API calls.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Hidden form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// Name of the cookie of a one-time message.
pub const FLASH_COOKIE: &str = "jtp_flash";
/// How long a browser session lives from its login (or its first page).
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The purposes sealed cookies are bound to.
const SESSION_PURPOSE: &str = "jtp-session-v1";
const FLASH_PURPOSE: &str = "jtp-flash-v1";
/// How long a TokenReview answer is trusted.
const TOKEN_REVIEW_TTL: Duration = Duration::from_secs(60);
/// How long a SubjectAccessReview answer is trusted.
const ACCESS_REVIEW_TTL: Duration = Duration::from_secs(20);
/// At most this many TokenReview and SubjectAccessReview answers are kept (each cache).
const MAX_CACHED_ANSWERS: usize = 20_000;
/// Failed authentications a client address may have per [`FAILURE_WINDOW`] before it gets 429.
const MAX_FAILURES: u32 = 10;
/// The window in which [`MAX_FAILURES`] are counted.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// At most this many client addresses are tracked for failed authentications.
const MAX_TRACKED_CLIENTS: usize = 10_000;
/// Largest form body read when checking CSRF.
const MAX_FORM_BYTES: usize = 1 << 20;

/// The verbs the portal checks, as Kubernetes names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    List,
    Get,
    Create,
    Patch,
    Delete,
    /// Run Now: the custom verb that lets someone start runs without the right to change the job.
    Trigger,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Get => "get",
            Self::Create => "create",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::Trigger => "trigger",
        }
    }
}

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// Standalone, open on loopback.
    Anonymous,
    /// Standalone with credentials: the basic-auth user, or `token` for the shared token.
    Local(String),
    /// A Kubernetes identity confirmed by TokenReview.
    Kube(KubeUser),
}

/// What TokenReview said about a token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KubeUser {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl Principal {
    /// A name to show in the header of the page.
    pub fn display(&self) -> String {
        match self {
            Self::Anonymous => "local user".to_owned(),
            Self::Local(user) => user.clone(),
            Self::Kube(user) => user.username.clone(),
        }
    }

    /// The name recorded as the requester of a Run Now: the Kubernetes user name, the basic-auth
    /// user (or `token` for the shared token), `local` on an open standalone portal.
    pub fn requester(&self) -> String {
        match self {
            Self::Anonymous => "local".to_owned(),
            Self::Local(user) => user.clone(),
            Self::Kube(user) => user.username.clone(),
        }
    }
}

/// A browser session, as sealed in its cookie.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub csrf: String,
    /// The token pasted on the login page (Kubernetes mode, or standalone with a shared token).
    pub token: Option<String>,
    /// Unix seconds after which the cookie opens as no session.
    expires: i64,
}

/// A one-time message shown at the top of the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    /// `success`, `info` or `error` (a CSS class).
    pub kind: &'static str,
    pub message: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SealedFlash {
    kind: String,
    message: String,
}

/// What the handlers of one request did with flash messages: the middleware turns it into the
/// flash cookie (set, or removed once shown).
#[derive(Debug, Default)]
struct FlashOutbox {
    set: Option<Flash>,
    taken: bool,
}

/// The request's caller, put in the request's extensions by [`authenticate`].
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub session: Option<Session>,
    /// True when the browser session is what authenticates (so CSRF rules apply).
    pub by_cookie: bool,
    /// The message this browser's flash cookie holds.
    flash: Option<Flash>,
    outbox: std::sync::Arc<Mutex<FlashOutbox>>,
}

impl Caller {
    /// The CSRF token to put in forms (empty when there is no session).
    pub fn csrf(&self) -> String {
        self.session.as_ref().map(|s| s.csrf.clone()).unwrap_or_default()
    }

    /// Checks that the caller may `verb` ScheduledJobs in `namespace`; the error says who may not do what.
    pub async fn require(
        &self,
        state: &AppState,
        verb: Verb,
        namespace: &str,
        what: &str,
    ) -> Result<(), AppError> {
        if state.allowed(&self.principal, verb, Some(namespace)).await? {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "{} may not {what}: that needs the \"{}\" right on scheduledjobs.jobtrigger.io in namespace \"{namespace}\"",
                self.principal.display(),
                verb.as_str(),
            )))
        }
    }

    /// Checks that the caller may read run `id` of a job in `namespace`. A run id names no
    /// namespace, so a refusal is the same 404 as a run that does not exist: a caller cannot learn
    /// by guessing ids which namespaces hold runs.
    pub async fn require_run(&self, state: &AppState, namespace: &str, id: i64) -> Result<(), AppError> {
        if state.allowed(&self.principal, Verb::Get, Some(namespace)).await? {
            Ok(())
        } else {
            Err(AppError::NotFound(format!("no run #{id}")))
        }
    }

    /// Which namespaces the caller may list: `None` means all.
    pub async fn readable_namespaces(&self, state: &AppState) -> Result<Option<Vec<String>>, AppError> {
        if state.allowed(&self.principal, Verb::List, None).await? {
            return Ok(None);
        }
        let mut allowed = Vec::new();
        for ns in state.cached_namespaces().await? {
            if state.allowed(&self.principal, Verb::List, Some(&ns)).await? {
                allowed.push(ns);
            }
        }
        Ok(Some(allowed))
    }
}

/// The whole user (name, uid, groups, extra: the authorizer decides on all of them, so two
/// tokens with one name but other groups must not share an answer), verb, namespace (`None`: all
/// namespaces).
type AccessKey = (KubeUser, Verb, Option<String>);

fn access_key(user: &KubeUser, verb: Verb, namespace: Option<&str>) -> AccessKey {
    (user.clone(), verb, namespace.map(str::to_owned))
}

/// A bounded cache whose entries age one by one: an entry older than its `ttl` is not returned
/// (and is dropped), and past `capacity` single entries are evicted (quick_cache's CLOCK-Pro keeps
/// the often-used ones), never the whole map.
pub struct AgedCache<K, V> {
    entries: quick_cache::sync::Cache<K, (Instant, V)>,
    ttl: Duration,
}

impl<K: Eq + std::hash::Hash + Clone, V: Clone> AgedCache<K, V> {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity),
            ttl,
        }
    }

    /// The value for `key`, if it is younger than the cache's ttl.
    pub fn get(&self, key: &K) -> Option<V> {
        let (at, value) = self.entries.get(key)?;
        if at.elapsed() < self.ttl {
            Some(value)
        } else {
            self.entries.remove(key);
            None
        }
    }

    pub fn insert(&self, key: K, value: V) {
        self.entries.insert(key, (Instant::now(), value));
    }

    /// How many entries are held (young or not yet found old).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Who a failed authentication is counted against: the client's IP address, an IPv6 address by
/// its /64 (one host usually holds a whole /64); `None` when the server did not say (in-process
/// tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(Option<std::net::IpAddr>);

impl ClientKey {
    pub fn of(addr: Option<std::net::IpAddr>) -> Self {
        Self(addr.map(|ip| match ip.to_canonical() {
            std::net::IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                std::net::IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
            v4 => v4,
        }))
    }
}

/// Failed authentications per client in fixed windows of [`FAILURE_WINDOW`]: the TokenReview a
/// made-up token costs, or a guessed password, is limited to [`MAX_FAILURES`] a window per client.
pub struct FailureLimiter {
    windows: quick_cache::sync::Cache<ClientKey, (Instant, u32)>,
    max: u32,
    window: Duration,
}

impl FailureLimiter {
    pub fn new(max: u32, window: Duration, clients: usize) -> Self {
        Self {
            windows: quick_cache::sync::Cache::new(clients),
            max,
            window,
        }
    }

    /// `429` when `client` has used up its failures in the current window.
    pub fn check(&self, client: ClientKey) -> Result<(), AppError> {
        match self.windows.get(&client) {
            Some((start, count)) if count >= self.max && start.elapsed() < self.window => {
                let retry_after = (self.window.saturating_sub(start.elapsed())).as_secs().max(1);
                Err(AppError::TooManyRequests {
                    message: format!(
                        "too many failed logins from this address ({count} in {} s); try again in {retry_after} s",
                        self.window.as_secs()
                    ),
                    retry_after,
                })
            }
            _ => Ok(()),
        }
    }

    /// Counts one failed authentication of `client`.
    pub fn failed(&self, client: ClientKey) {
        let next = match self.windows.get(&client) {
            Some((start, count)) if start.elapsed() < self.window => (start, count.saturating_add(1)),
            _ => (Instant::now(), 1),
        };
        self.windows.insert(client, next);
    }
}

/// The key of a token in the TokenReview cache: its SHA-256, so the cache holds no tokens.
fn token_key(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// In-memory sessions and short-lived answers of the Kubernetes API.
pub struct AuthCache {
    /// Accepted tokens only: a made-up token is not kept, it is counted by `failures`.
    token_reviews: AgedCache<[u8; 32], KubeUser>,
    access_reviews: AgedCache<AccessKey, bool>,
    failures: FailureLimiter,
    namespaces: Mutex<Option<(Instant, Vec<String>)>>,
}

impl Default for AuthCache {
    fn default() -> Self {
        Self {
            token_reviews: AgedCache::new(MAX_CACHED_ANSWERS, TOKEN_REVIEW_TTL),
            access_reviews: AgedCache::new(MAX_CACHED_ANSWERS, ACCESS_REVIEW_TTL),
            failures: FailureLimiter::new(MAX_FAILURES, FAILURE_WINDOW, MAX_TRACKED_CLIENTS),
            namespaces: Mutex::default(),
        }
    }
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AppState {
    /// A new browser session (holding `token` after the login page), valid for [`SESSION_TTL`].
    fn new_session(&self, token: Option<String>) -> Session {
        let ttl = i64::try_from(SESSION_TTL.as_secs()).unwrap_or(i64::MAX);
        Session {
            csrf: random_token(),
            token,
            expires: chrono::Utc::now().timestamp().saturating_add(ttl),
        }
    }

    /// The session a cookie holds, if it opens under our keys and has not expired.
    fn open_session(&self, cookie: &str) -> Option<Session> {
        let plain = self.inner.config.session_keys.open(SESSION_PURPOSE, cookie)?;
        let session: Session = serde_json::from_slice(&plain).ok()?;
        (session.expires > chrono::Utc::now().timestamp()).then_some(session)
    }

    fn open_flash(&self, cookie: &str) -> Option<Flash> {
        let plain = self.inner.config.session_keys.open(FLASH_PURPOSE, cookie)?;
        let flash: SealedFlash = serde_json::from_slice(&plain).ok()?;
        let kind = match flash.kind.as_str() {
            "success" => "success",
            "error" => "error",
            _ => "info",
        };
        Some(Flash {
            kind,
            message: flash.message,
        })
    }

    /// A `Set-Cookie` value of `name` with `value` (`None`: one that removes the cookie).
    fn cookie(&self, name: &str, value: Option<&str>, max_age: Option<u64>) -> HeaderValue {
        let secure = if self.inner.config.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        let text = match (value, max_age) {
            (Some(v), Some(age)) => {
                format!("{name}={v}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}")
            }
            (Some(v), None) => format!("{name}={v}; Path=/; HttpOnly; SameSite=Strict{secure}"),
            (None, _) => format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
        };
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// Constant-time comparison, so a wrong token or password leaks nothing through timing.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

enum Credential {
    Bearer(String),
    Basic(String, String),
}

fn header_credential(headers: &HeaderMap) -> Option<Credential> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(Credential::Bearer(rest.trim().to_owned())),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (user, password) = decoded.split_once(':')?;
            Some(Credential::Basic(user.to_owned(), password.to_owned()))
        }
        _ => None,
    }
}

impl AppState {
    /// Checks a token from `from`: the shared token in standalone mode, TokenReview in Kubernetes
    /// mode. A token not accepted before is checked only while `from` has failures left (else 429);
    /// a refused one counts as a failure.
    pub(crate) async fn principal_for_token(
        &self,
        token: &str,
        from: ClientKey,
    ) -> Result<Option<Principal>, AppError> {
        let principal = match (&self.inner.mode, &self.inner.config.local_auth) {
            (Mode::Kubernetes { .. }, _) => {
                if let Some(user) = self.inner.auth.token_reviews.get(&token_key(token)) {
                    return Ok(Some(Principal::Kube(user)));
                }
                self.inner.auth.failures.check(from)?;
                self.token_review(token).await?.map(Principal::Kube)
            }
            (Mode::Standalone { .. }, LocalAuth::Token(expected)) => {
                self.inner.auth.failures.check(from)?;
                same(token, expected).then(|| Principal::Local("token".to_owned()))
            }
            (Mode::Standalone { .. }, _) => {
                self.inner.auth.failures.check(from)?;
                None
            }
        };
        if principal.is_none() {
            self.inner.auth.failures.failed(from);
        }
        Ok(principal)
    }

    /// Checks basic-auth credentials (standalone with a user and password) from `from`, limited
    /// like tokens.
    fn principal_for_password(
        &self,
        user: &str,
        password: &str,
        from: ClientKey,
    ) -> Result<Option<Principal>, AppError> {
        self.inner.auth.failures.check(from)?;
        match &self.inner.config.local_auth {
            LocalAuth::Basic { user: u, password: p }
                if matches!(self.inner.mode, Mode::Standalone { .. })
                    && same(user, u)
                    && same(password, p) =>
            {
                Ok(Some(Principal::Local(user.to_owned())))
            }
            _ => {
                self.inner.auth.failures.failed(from);
                Ok(None)
            }
        }
    }

    async fn token_review(&self, token: &str) -> Result<Option<KubeUser>, AppError> {
        let Mode::Kubernetes { client, .. } = &self.inner.mode else {
            return Ok(None);
        };
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let api: kube::Api<TokenReview> = kube::Api::all(client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        let user = answer
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user)
            .and_then(|u| {
                Some(KubeUser {
                    username: u.username?,
                    uid: u.uid,
                    groups: u.groups.unwrap_or_default(),
                    extra: u.extra.unwrap_or_default().into_iter().collect(),
                })
            });
        if let Some(user) = &user {
            self.inner
                .auth
                .token_reviews
                .insert(token_key(token), user.clone());
        }
        Ok(user)
    }

    /// May `principal` do `verb` on ScheduledJobs in `namespace` (`None`: in every namespace)?
    pub(crate) async fn allowed(
        &self,
        principal: &Principal,
        verb: Verb,
        namespace: Option<&str>,
    ) -> Result<bool, AppError> {
        let user = match principal {
            Principal::Anonymous | Principal::Local(_) => return Ok(true),
            Principal::Kube(user) => user,
        };
        let Mode::Kubernetes { client, .. } = &self.inner.mode else {
            return Ok(false);
        };
        let key = access_key(user, verb, namespace);
        if let Some(allowed) = self.inner.auth.access_reviews.get(&key) {
            return Ok(allowed);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.username.clone()),
                uid: user.uid.clone(),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone().into_iter().collect()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(jtp_crds::GROUP.to_owned()),
                    resource: Some("scheduledjobs".to_owned()),
                    verb: Some(verb.as_str().to_owned()),
                    namespace: namespace.map(str::to_owned),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let api: kube::Api<SubjectAccessReview> = kube::Api::all(client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        self.inner.auth.access_reviews.insert(key, allowed);
        Ok(allowed)
    }

    /// The namespaces to check per-namespace `list` rights in, cached like access reviews.
    pub(crate) async fn cached_namespaces(&self) -> Result<Vec<String>, AppError> {
        if let Some((at, names)) = lock(&self.inner.auth.namespaces).as_ref()
            && at.elapsed() < ACCESS_REVIEW_TTL
        {
            return Ok(names.clone());
        }
        let names = self.store_namespaces().await?;
        *lock(&self.inner.auth.namespaces) = Some((Instant::now(), names.clone()));
        Ok(names)
    }

    /// Starts a browser session holding `token` (the login page).
    pub(crate) fn login_session(&self, token: String) -> Session {
        self.new_session(Some(token))
    }

    /// Leaves a message for the next page of this caller's browser (no-op without a session).
    pub(crate) fn set_flash(&self, caller: &Caller, kind: &'static str, message: String) {
        if caller.session.is_some() {
            lock(&caller.outbox).set = Some(Flash { kind, message });
        }
    }

    /// The message left for this page, once.
    pub(crate) fn take_flash(&self, caller: &Caller) -> Option<Flash> {
        let flash = caller.flash.clone()?;
        lock(&caller.outbox).taken = true;
        Some(flash)
    }

    /// The `Set-Cookie` value for a session (or, with `None`, one that removes the cookie). The
    /// logout button removes it; a copy kept elsewhere stays valid until its expiry, but only
    /// with a token that TokenReview still accepts.
    pub(crate) fn session_cookie(&self, session: Option<&Session>) -> HeaderValue {
        let sealed = session
            .and_then(|s| serde_json::to_vec(s).ok())
            .and_then(|plain| self.inner.config.session_keys.seal(SESSION_PURPOSE, &plain));
        self.cookie(SESSION_COOKIE, sealed.as_deref(), None)
    }

    /// The `Set-Cookie` value that carries `flash` to the next page (`None`: removes it).
    fn flash_cookie(&self, flash: Option<&Flash>) -> HeaderValue {
        let sealed = flash
            .and_then(|f| {
                serde_json::to_vec(&SealedFlash {
                    kind: f.kind.to_owned(),
                    message: f.message.clone(),
                })
                .ok()
            })
            .and_then(|plain| self.inner.config.session_keys.seal(FLASH_PURPOSE, &plain));
        self.cookie(FLASH_COOKIE, sealed.as_deref(), Some(60))
    }
}

/// True for paths that anyone may fetch: the login page, static files, the health check, the
/// API description.
fn is_public(path: &str) -> bool {
    path == "/login" || path.starts_with("/static/") || path == "/healthz" || path == "/api/v1/openapi.json"
}

/// Refuses unsafe requests that a browser sent from another site.
fn check_same_origin(headers: &HeaderMap) -> Result<(), AppError> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(AppError::Csrf(format!(
            "refused: this request came from another site (Sec-Fetch-Site: {site}); reload the portal and try again"
        )));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or("");
        if origin == "null" || origin_host != host {
            return Err(AppError::Csrf(format!(
                "refused: this request came from another origin ({origin}); reload the portal and try again"
            )));
        }
    }
    Ok(())
}

/// True when `Host` names this machine: an open portal answers only to those, so a web page cannot
/// reach it through DNS rebinding.
fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let name = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| h.trim_start_matches('['))
            .unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The authentication middleware of the whole app: finds the caller, enforces login and CSRF, keeps
/// the browser session cookie.
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match authenticate_inner(&state, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

/// The client's address, which [`crate::http::serve`] puts in every request's extensions.
fn client_of(request: &Request) -> ClientKey {
    ClientKey::of(
        request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip()),
    )
}

async fn authenticate_inner(state: &AppState, request: Request, next: Next) -> Result<Response, Response> {
    let path = request.uri().path().to_owned();
    let from = client_of(&request);
    let is_api = path.starts_with("/api/");
    let unsafe_method = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let open = matches!(state.inner.mode, Mode::Standalone { .. })
        && !state.inner.config.local_auth.requires_credentials();

    if open && !host_is_loopback(request.headers()) {
        return Err(AppError::Forbidden(
            "this portal runs without login and answers only to localhost / 127.0.0.1".to_owned(),
        )
        .into_response());
    }
    if unsafe_method {
        check_same_origin(request.headers()).map_err(IntoResponse::into_response)?;
    }

    let cookie_session =
        cookie_value(request.headers(), SESSION_COOKIE).and_then(|value| state.open_session(&value));
    let flash = cookie_value(request.headers(), FLASH_COOKIE).and_then(|value| state.open_flash(&value));
    let credential = header_credential(request.headers());
    let cookie_session_present = cookie_session.is_some();
    let mut new_session = None;

    // Who is it?
    let (principal, by_cookie) = match (&credential, open) {
        (_, true) => (Some(Principal::Anonymous), credential.is_none()),
        (Some(Credential::Bearer(token)), false) => (
            state
                .principal_for_token(token, from)
                .await
                .map_err(IntoResponse::into_response)?,
            false,
        ),
        (Some(Credential::Basic(user, password)), false) => {
            let principal = state
                .principal_for_password(user, password, from)
                .map_err(IntoResponse::into_response)?;
            // Browsers resend basic credentials by themselves, like a cookie: CSRF rules apply.
            let by_cookie = principal.is_some();
            (principal, by_cookie)
        }
        (None, false) => match cookie_session.as_ref().and_then(|s| s.token.clone()) {
            Some(token) => (
                state
                    .principal_for_token(&token, from)
                    .await
                    .map_err(IntoResponse::into_response)?,
                true,
            ),
            None => (None, false),
        },
    };

    if is_public(&path) {
        let mut request = request;
        request.extensions_mut().insert(from);
        if let Some(principal) = principal {
            request.extensions_mut().insert(Caller {
                principal,
                session: cookie_session,
                by_cookie,
                flash: None,
                outbox: std::sync::Arc::default(),
            });
        }
        return Ok(next.run(request).await);
    }

    let Some(principal) = principal else {
        return Err(unauthenticated(
            state,
            is_api,
            credential.is_some() || cookie_session.is_some(),
        ));
    };

    // Browsers need a session for the CSRF token, even when the header authenticates them.
    let session = match cookie_session {
        Some(s) => Some(s),
        None if !is_api
            && credential
                .as_ref()
                .is_none_or(|c| matches!(c, Credential::Basic(..))) =>
        {
            let s = state.new_session(None);
            new_session = Some(s.clone());
            Some(s)
        }
        None => None,
    };

    // Forms always carry the token; the API needs it only when the session cookie is what
    // authenticates it (a bearer or basic header, or no credential at all on an open portal, is sent
    // by a program, and browsers' cross-site attempts are stopped by the origin checks above).
    let needs_token = unsafe_method && (!is_api || (credential.is_none() && cookie_session_present));
    let mut request = request;
    if needs_token {
        request = check_csrf_token(request, session.as_ref(), is_api)
            .await
            .map_err(IntoResponse::into_response)?;
    }
    let caller = Caller {
        principal,
        session,
        by_cookie,
        flash,
        outbox: std::sync::Arc::default(),
    };
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    if let Some(s) = new_session {
        response
            .headers_mut()
            .append(header::SET_COOKIE, state.session_cookie(Some(&s)));
    }
    let outbox = std::mem::take(&mut *lock(&caller.outbox));
    match outbox.set {
        Some(flash) => {
            response
                .headers_mut()
                .append(header::SET_COOKIE, state.flash_cookie(Some(&flash)));
        }
        None if outbox.taken => {
            response
                .headers_mut()
                .append(header::SET_COOKIE, state.flash_cookie(None));
        }
        None => {}
    }
    // For the HTML error pages, which are rendered outside this middleware.
    response.extensions_mut().insert(caller);
    Ok(response)
}

fn unauthenticated(state: &AppState, is_api: bool, tried: bool) -> Response {
    let basic = matches!(state.inner.config.local_auth, LocalAuth::Basic { .. })
        && matches!(state.inner.mode, Mode::Standalone { .. });
    if is_api || basic {
        let message = if tried {
            "the credentials were not accepted"
        } else if basic {
            "log in with the portal's user and password"
        } else {
            "send a bearer token: Authorization: Bearer <token>"
        };
        let mut response = AppError::Unauthorized(message.to_owned()).into_response();
        let challenge = if basic {
            HeaderValue::from_static("Basic realm=\"Job Trigger Portal\", charset=\"UTF-8\"")
        } else {
            HeaderValue::from_static("Bearer realm=\"Job Trigger Portal\"")
        };
        response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        return response;
    }
    let target = if tried { "/login?expired=1" } else { "/login" };
    Redirect::to(target).into_response()
}

/// Checks the session's CSRF token: the `X-CSRF-Token` header, or the `csrf` field of a form body
/// (the body is read and put back for the handler).
async fn check_csrf_token(
    request: Request,
    session: Option<&Session>,
    is_api: bool,
) -> Result<Request, AppError> {
    let Some(session) = session else {
        return Err(AppError::Csrf(
            "refused: no session; reload the page and submit the form again".to_owned(),
        ));
    };
    if let Some(token) = request.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return if same(token, &session.csrf) {
            Ok(request)
        } else {
            Err(AppError::Csrf(
                "refused: the CSRF token does not match".to_owned(),
            ))
        };
    }
    if is_api {
        return Err(AppError::Csrf(format!(
            "refused: API calls authenticated by the session cookie need the {CSRF_HEADER} header"
        )));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| AppError::BadRequest("the form is too large".to_owned()))?;
    let token = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned());
    match token {
        Some(token) if same(&token, &session.csrf) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Some(_) => Err(AppError::Csrf(
            "refused: the form's CSRF token does not match this session; reload the page and submit again"
                .to_owned(),
        )),
        None => Err(AppError::Csrf(
            "refused: the form has no CSRF token; reload the page and submit again".to_owned(),
        )),
    }
}

/// `401` for a caller that the handler needed but the middleware did not find (public routes).
pub fn require_caller(caller: Option<Caller>) -> Result<Caller, AppError> {
    caller.ok_or_else(|| AppError::Unauthorized("log in first".to_owned()))
}

/// Response status for a refused login.
pub const LOGIN_REFUSED: StatusCode = StatusCode::UNAUTHORIZED;

#[cfg(test)]
mod access_key_tests {
    use super::*;

    fn user(groups: &[&str]) -> KubeUser {
        KubeUser {
            username: "alice".into(),
            uid: Some("1".into()),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            extra: Default::default(),
        }
    }

    #[test]
    fn answers_are_cached_per_whole_user_not_per_name() {
        let admins = user(&["admins"]);
        let viewers = user(&["viewers"]);
        let key = |u: &KubeUser| access_key(u, Verb::Patch, Some("ops"));
        assert_ne!(key(&admins), key(&viewers), "groups");
        let mut other_uid = admins.clone();
        other_uid.uid = Some("2".into());
        assert_ne!(key(&admins), key(&other_uid), "uid");
        let mut with_extra = admins.clone();
        with_extra.extra.insert("scopes".into(), vec!["read-only".into()]);
        assert_ne!(key(&admins), key(&with_extra), "extra");
        assert_eq!(key(&admins), key(&admins.clone()));
        assert_ne!(key(&admins), access_key(&admins, Verb::Patch, None), "namespace");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod cache_tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn entries_age_one_by_one() {
        let cache = AgedCache::new(100, Duration::from_millis(200));
        cache.insert("old", 1);
        std::thread::sleep(Duration::from_millis(120));
        cache.insert("new", 2);
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(cache.get(&"old"), None, "past its ttl");
        assert_eq!(cache.get(&"new"), Some(2), "the younger entry is still there");
    }

    #[test]
    fn a_flood_of_new_keys_evicts_single_entries_not_the_whole_cache() {
        let cache = AgedCache::new(1_000, Duration::from_secs(60));
        cache.insert(u64::MAX, true);
        for key in 0..10_000u64 {
            cache.insert(key, true);
            // A session in use is looked up between the flood's inserts.
            if key % 10 == 0 {
                assert_eq!(
                    cache.get(&u64::MAX),
                    Some(true),
                    "the entry in use was evicted at {key}"
                );
            }
        }
        // Bounded, and never emptied: what was evicted went one entry at a time.
        assert!((500..=1_100).contains(&cache.len()), "{} entries", cache.len());
    }

    #[test]
    fn failed_authentications_are_limited_per_client_and_window() {
        let limiter = FailureLimiter::new(3, Duration::from_millis(300), 100);
        let a = ClientKey::of(Some("10.0.0.1".parse().unwrap()));
        let b = ClientKey::of(Some("10.0.0.2".parse().unwrap()));
        for _ in 0..3 {
            limiter.check(a).unwrap();
            limiter.failed(a);
        }
        let refused = limiter.check(a).unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            refused.to_string().contains("too many failed logins"),
            "{refused}"
        );
        assert!(matches!(
            refused,
            AppError::TooManyRequests { retry_after: 1, .. }
        ));
        limiter.check(b).unwrap();
        std::thread::sleep(Duration::from_millis(350));
        limiter.check(a).unwrap();
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_prefix() {
        let ip = |s: &str| ClientKey::of(Some(s.parse::<IpAddr>().unwrap()));
        assert_eq!(ip("2001:db8:1:2::1"), ip("2001:db8:1:2:ffff::9"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(
            ip("::ffff:10.0.0.1"),
            ip("10.0.0.1"),
            "a v4-mapped address is the v4 one"
        );
    }
}
