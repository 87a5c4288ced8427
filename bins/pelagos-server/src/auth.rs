//! HTTP Basic authentication against an htpasswd file of bcrypt entries
//! (`htpasswd -B`), as OpenStack Ironic's `auth_strategy = http_basic`
//! (docs/SECURITY.md).
//!
//! [`Authenticator::load`] reads the file once: `user:hash` lines, `#`
//! comments and blank lines; only bcrypt hashes (`$2y$`, `$2b$`, `$2a$`)
//! are accepted, so an MD5 (`$apr1$`), crypt, SHA or plain-text entry
//! stops the server at start instead of being half supported. Errors name
//! the file, the line and the user, never the hash.
//!
//! [`protect`] wraps the whole app. Open without credentials: `GET`/`HEAD`
//! of `/` and `/version`, of `/tasks/status/<id>` (teuthology polls the
//! absolute `Location` it is given with a bare URL; the random 128-bit
//! task id is the capability) and of the image route (kiwi's install initrd
//! fetches the OS image without credentials; images are not secret).
//! Everything else, unknown paths included, answers 401 with
//! `WWW-Authenticate: Basic realm="pelagos"` and `{"error": "..."}` unless
//! the request carries valid credentials.
//!
//! bcrypt is slow on purpose, so a verification runs on the blocking pool,
//! at most [`BCRYPT_PERMITS`] at once (a flood of bad logins waits for a
//! permit instead of taking every blocking thread), and a success is
//! remembered (a keyed SHA-256 of `user:password`, at most [`CACHE_MAX`]
//! entries) so that repeated requests and teuthology's polling do not pay
//! it again. Failures are never cached. An unknown user costs one bcrypt
//! verification against a dummy hash, like a known one, so timing does not
//! tell which users exist. Failed logins are logged with the client
//! address and the (sanitised) user name, never the password tried.

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Concurrent bcrypt verifications; more wait for a permit.
pub const BCRYPT_PERMITS: usize = 2;
/// Successful verifications remembered; the oldest is forgotten first.
pub const CACHE_MAX: usize = 1024;
/// Longest `Authorization` header looked at; longer is refused unread.
const MAX_HEADER: usize = 4096;
/// Longest user name shown in a log line.
const MAX_LOGGED_USER: usize = 64;
const REALM: &str = "Basic realm=\"pelagos\"";

/// Why an htpasswd file cannot be used. Never holds a hash.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read htpasswd file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: not UTF-8", path.display())]
    NotUtf8 { path: PathBuf, line: usize },
    #[error("{}:{line}: not a `user:hash` line", path.display())]
    Malformed { path: PathBuf, line: usize },
    #[error(
        "{}:{line}: user {user:?} has {scheme}; only bcrypt entries are accepted \
         (create them with `htpasswd -B`)",
        path.display()
    )]
    NotBcrypt {
        path: PathBuf,
        line: usize,
        user: String,
        scheme: &'static str,
    },
    #[error("{}:{line}: user {user:?}: malformed bcrypt hash ({why})", path.display())]
    BadHash {
        path: PathBuf,
        line: usize,
        user: String,
        why: &'static str,
    },
    #[error("{}:{line}: user {user:?} is already defined on line {first}", path.display())]
    Duplicate {
        path: PathBuf,
        line: usize,
        user: String,
        first: usize,
    },
    #[error("{}: no users (add one with `htpasswd -B {}` USER)", path.display(), path.display())]
    Empty { path: PathBuf },
}

/// The users of an htpasswd file and the verification machinery.
/// Shared through an `Arc`; its `Debug` shows no hash.
pub struct Authenticator {
    /// user -> bcrypt hash.
    users: HashMap<String, String>,
    /// Verified when the user is unknown, so that an unknown user costs
    /// as much time as a known one.
    dummy_hash: String,
    /// Per-process key of the success cache: a memory dump does not give
    /// plain SHA-256 digests of passwords.
    cache_key: [u8; 32],
    cache: Mutex<Cache>,
    permits: Semaphore,
    /// bcrypt verifications run so far, and running now (tests, metrics).
    runs: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Cache {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl Cache {
    fn insert(&mut self, key: [u8; 32]) {
        if !self.set.insert(key) {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > CACHE_MAX {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// What the scheme of a non-bcrypt htpasswd hash is, for the error.
fn scheme_of(hash: &str) -> &'static str {
    if hash.starts_with("$apr1$") {
        "an MD5 ($apr1$) hash"
    } else if hash.starts_with("{SHA}") {
        "a SHA-1 ({SHA}) hash"
    } else if hash.starts_with("$1$") {
        "an MD5-crypt ($1$) hash"
    } else if hash.starts_with("$5$") {
        "a SHA-256-crypt ($5$) hash"
    } else if hash.starts_with("$6$") {
        "a SHA-512-crypt ($6$) hash"
    } else if hash.starts_with("$2x$") {
        "a legacy bcrypt ($2x$) hash"
    } else if hash.starts_with('$') || hash.starts_with('{') {
        "an unsupported hash"
    } else if hash.is_empty() {
        "an empty password field"
    } else {
        "a crypt(3) DES hash or a plain-text password"
    }
}

impl Authenticator {
    /// Read an htpasswd file of bcrypt entries.
    pub fn load(path: &Path) -> Result<Authenticator, AuthError> {
        let bytes = std::fs::read(path).map_err(|source| AuthError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut users = HashMap::new();
        let mut first_line = HashMap::new();
        let mut first_cost = None;
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            let text = std::str::from_utf8(raw).map_err(|_| AuthError::NotUtf8 {
                path: path.to_owned(),
                line,
            })?;
            let text = text.trim_end_matches('\r');
            if text.trim().is_empty() || text.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, hash)) = text.split_once(':') else {
                return Err(AuthError::Malformed {
                    path: path.to_owned(),
                    line,
                });
            };
            let (user, hash) = (user.trim(), hash.trim());
            if user.is_empty() {
                return Err(AuthError::Malformed {
                    path: path.to_owned(),
                    line,
                });
            }
            let is_bcrypt = ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p));
            if !is_bcrypt {
                return Err(AuthError::NotBcrypt {
                    path: path.to_owned(),
                    line,
                    user: user.to_owned(),
                    scheme: scheme_of(hash),
                });
            }
            let bad = |why| AuthError::BadHash {
                path: path.to_owned(),
                line,
                user: user.to_owned(),
                why,
            };
            let parts: bcrypt::HashParts = hash
                .parse()
                .map_err(|_| bad("expected `$2y$<cost>$` and 53 characters"))?;
            let cost = parts.get_cost();
            if !(4..=31).contains(&cost) {
                return Err(bad("cost outside 4..=31"));
            }
            if let Some(&first) = first_line.get(user) {
                return Err(AuthError::Duplicate {
                    path: path.to_owned(),
                    line,
                    user: user.to_owned(),
                    first,
                });
            }
            first_cost.get_or_insert(cost);
            first_line.insert(user.to_owned(), line);
            users.insert(user.to_owned(), hash.to_owned());
        }
        let Some(cost) = first_cost else {
            return Err(AuthError::Empty {
                path: path.to_owned(),
            });
        };
        // One bcrypt at the users' cost, with a random salt from the OS:
        // the dummy hash, and the seed of the cache key.
        let dummy_hash = match bcrypt::hash(b"pelagos: no such user", cost) {
            Ok(h) => h,
            // Only on a failing OS random source; the dummy still costs
            // time, and the cache key then comes from the file's hashes.
            Err(_) => users.values().next().cloned().unwrap_or_default(),
        };
        let mut seed = Sha256::new();
        seed.update(b"pelagos auth cache\0");
        seed.update(dummy_hash.as_bytes());
        seed.update(std::process::id().to_le_bytes());
        if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            seed.update(t.as_nanos().to_le_bytes());
        }
        Ok(Authenticator {
            users,
            dummy_hash,
            cache_key: seed.finalize().into(),
            cache: Mutex::new(Cache::default()),
            permits: Semaphore::new(BCRYPT_PERMITS),
            runs: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
        })
    }

    /// How many users the file defines (for a start-up log line).
    #[allow(dead_code)]
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// bcrypt verifications run so far (cache hits do not count).
    #[cfg(test)]
    fn bcrypt_runs(&self) -> usize {
        self.runs.load(Ordering::Relaxed)
    }

    fn cache_digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cache_key);
        h.update(user.as_bytes());
        h.update(b":");
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set
            .contains(key)
    }

    /// Whether `password` is `user`'s. A success is cached; a failure is
    /// not. At most [`BCRYPT_PERMITS`] bcrypt runs at once; others wait.
    pub async fn verify(self: &Arc<Self>, user: &str, password: &str) -> bool {
        let key = self.cache_digest(user, password);
        if self.cached(&key) {
            return true;
        }
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        // Another request with the same credentials may have verified
        // them while this one waited.
        if self.cached(&key) {
            return true;
        }
        let me = Arc::clone(self);
        let (user_owned, password) = (user.to_owned(), password.to_owned());
        let ok = tokio::task::spawn_blocking(move || me.bcrypt_verify(&user_owned, &password))
            .await
            .unwrap_or(false);
        if ok {
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key);
        }
        ok
    }

    fn bcrypt_verify(&self, user: &str, password: &str) -> bool {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::Relaxed);
        let ok = match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, &self.dummy_hash);
                false
            }
        };
        self.running.fetch_sub(1, Ordering::SeqCst);
        ok
    }
}

/// Credentials of a `Basic` Authorization header, or why there are none
/// usable (a reason safe to log: it holds no secret).
fn basic_credentials(value: &HeaderValue) -> Result<(String, String), &'static str> {
    let bytes = value.as_bytes();
    if bytes.len() > MAX_HEADER {
        return Err("over-long Authorization header");
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "non-UTF-8 Authorization header")?;
    let (scheme, rest) = text
        .trim()
        .split_once(' ')
        .ok_or("Authorization header without credentials")?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("Authorization scheme is not Basic");
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = engine
        .decode(rest.trim())
        .map_err(|_| "Basic credentials are not base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "Basic credentials are not UTF-8")?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or("Basic credentials without a colon")?;
    Ok((user.to_owned(), password.to_owned()))
}

/// A user name fit for a log line: printable ASCII but quotes and
/// backslashes, others as `?`, at most [`MAX_LOGGED_USER`] characters.
fn loggable_user(user: &str) -> String {
    let mut out: String = user
        .chars()
        .take(MAX_LOGGED_USER)
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if user.chars().count() > MAX_LOGGED_USER {
        out.push_str("...");
    }
    out
}

fn unauthorized(msg: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, HeaderValue::from_static(REALM))],
        axum::Json(crate::wire::Error { error: msg }),
    )
        .into_response()
}

/// Whether `path` is open without credentials for a GET/HEAD.
fn is_open(path: &str, image_route: Option<&str>) -> bool {
    if path == "/" || path == "/version" {
        return true;
    }
    if let Some(id) = path.strip_prefix("/tasks/status/") {
        return !id.is_empty() && !id.contains('/');
    }
    if let Some(route) = image_route
        && let Some(rest) = path.strip_prefix(route)
    {
        return rest.starts_with('/');
    }
    false
}

struct Guard {
    auth: Arc<Authenticator>,
    image_route: Option<String>,
}

/// Wrap the whole app: routes not open answer 401 with
/// `WWW-Authenticate: Basic realm="pelagos"` and a JSON body
/// `{"error": "..."}` without valid credentials. Apply it last: routes
/// merged into the result afterwards are not protected.
pub fn protect(app: Router, auth: Arc<Authenticator>, image_route: Option<String>) -> Router {
    // `/images/` or `images` as `/images`; an empty route opens nothing.
    let image_route = image_route
        .map(|r| format!("/{}", r.trim().trim_matches('/')))
        .filter(|r| r.len() > 1);
    let guard = Arc::new(Guard { auth, image_route });
    Router::new()
        .fallback_service(app)
        .layer(axum::middleware::from_fn_with_state(guard, check))
}

async fn check(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let read_only = req.method() == Method::GET || req.method() == Method::HEAD;
    if read_only && is_open(req.uri().path(), guard.image_route.as_deref()) {
        return next.run(req).await;
    }
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.to_string());
    let Some(value) = req.headers_mut().remove(AUTHORIZATION) else {
        tracing::debug!(%client, method = %req.method(), path = req.uri().path(), "no credentials");
        return unauthorized("authentication required");
    };
    let (user, password) = match basic_credentials(&value) {
        Ok(c) => c,
        Err(why) => {
            tracing::warn!(%client, "authentication failed: {why}");
            return unauthorized("authentication required");
        }
    };
    if guard.auth.verify(&user, &password).await {
        return next.run(req).await;
    }
    tracing::warn!(
        %client,
        user = %loggable_user(&user),
        method = %req.method(),
        path = req.uri().path(),
        "authentication failed: wrong user or password"
    );
    unauthorized("invalid credentials")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    const COST: u32 = 4;

    fn hash(pw: &str) -> String {
        bcrypt::hash(pw, COST).unwrap()
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("htpasswd");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn load_text(text: &str) -> Result<Authenticator, AuthError> {
        let dir = tempfile::tempdir().unwrap();
        Authenticator::load(&write(&dir, text))
    }

    fn basic(user: &str, pw: &str) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        format!("Basic {b}")
    }

    #[test]
    fn loads_bcrypt_variants_comments_and_crlf() {
        let h = hash("s3cret");
        let y = h.replacen("$2b$", "$2y$", 1);
        let a = h.replacen("$2b$", "$2a$", 1);
        let text =
            format!("# lab users\n\nalice:{h}\r\nbob:{y}\n  # indented comment\ncarol:{a}\n");
        let auth = load_text(&text).unwrap();
        assert_eq!(auth.user_count(), 3);
        assert!(!format!("{auth:?}").contains("$2"), "Debug shows a hash");
    }

    #[test]
    fn rejects_other_schemes_naming_line_and_user_never_the_hash() {
        let good = hash("pw");
        for (entry, scheme) in [
            ("$apr1$abcdefgh$0123456789abcdefghijkl", "$apr1$"),
            ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "{SHA}"),
            ("$1$saltsalt$0123456789abcdefghijkl", "$1$"),
            (
                "$5$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFG",
                "$5$",
            ),
            (
                "$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFG",
                "$6$",
            ),
            ("abJnggxhB/yWI", "crypt(3)"),
            ("plaintextpassword", "plain-text"),
            ("", "empty"),
        ] {
            let text = format!("ok:{good}\n# c\nmallory:{entry}\n");
            let err = load_text(&text).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, AuthError::NotBcrypt { line: 3, .. }), "{msg}");
            assert!(msg.contains(":3:") && msg.contains("\"mallory\""), "{msg}");
            assert!(msg.contains(scheme), "{msg} does not name {scheme}");
            assert!(msg.contains("htpasswd -B"), "{msg}");
            if !entry.is_empty() {
                assert!(!msg.contains(entry), "{msg} shows the hash");
            }
            assert!(!msg.contains(&good), "{msg} shows a hash");
        }
    }

    #[test]
    fn rejects_broken_files() {
        let good = hash("pw");
        let cases: Vec<(String, &str)> = vec![
            (
                format!("a:{good}\nno colon here\n"),
                ":2: not a `user:hash`",
            ),
            (format!(":{good}\n"), ":1: not a `user:hash`"),
            (
                format!("a:{good}\nb:$2y$10$short\n"),
                ":2: user \"b\": malformed bcrypt",
            ),
            (
                format!("a:{}\n", good.replacen("$04$", "$99$", 1)),
                ":1: user \"a\": malformed bcrypt hash (cost",
            ),
            (
                format!("a:{good}\n\na:{good}\n"),
                ":3: user \"a\" is already defined on line 1",
            ),
            ("# nobody\n\n".to_owned(), "no users"),
        ];
        for (text, want) in cases {
            let msg = load_text(&text).unwrap_err().to_string();
            assert!(msg.contains(want), "{msg:?} lacks {want:?}");
            assert!(msg.contains("htpasswd"), "{msg} does not name the file");
            assert!(!msg.contains(&good[7..]), "{msg} shows a hash");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("htpasswd");
        std::fs::write(&p, [b"a:".as_slice(), &[0xff, 0xfe], b"\n"].concat()).unwrap();
        let msg = Authenticator::load(&p).unwrap_err().to_string();
        assert!(msg.ends_with(":1: not UTF-8"), "{msg}");
        let missing = dir.path().join("missing");
        let msg = Authenticator::load(&missing).unwrap_err().to_string();
        assert!(
            msg.contains("cannot read htpasswd file") && msg.contains("missing"),
            "{msg}"
        );
    }

    /// A line written by Apache's own `htpasswd -B` (apache2-utils).
    #[tokio::test]
    async fn real_htpasswd_b_line_loads_and_verifies() {
        let out = std::process::Command::new("htpasswd")
            .args(["-nbB", "-C", "5", "labuser", "Pa:ss wörd"])
            .output()
            .expect("htpasswd (apache2-utils) is not installed: run scripts/install-test-deps.sh");
        assert!(out.status.success(), "htpasswd -nbB failed: {out:?}");
        let line = String::from_utf8(out.stdout).unwrap();
        assert!(line.starts_with("labuser:$2y$05$"), "{line}");
        let auth = Arc::new(load_text(&line).unwrap());
        assert!(auth.verify("labuser", "Pa:ss wörd").await);
        assert!(!auth.verify("labuser", "Pa:ss word").await);
    }

    #[tokio::test]
    async fn successes_are_cached_failures_are_not() {
        let auth = Arc::new(load_text(&format!("u:{}\n", hash("right"))).unwrap());
        assert!(auth.verify("u", "right").await);
        assert_eq!(auth.bcrypt_runs(), 1);
        assert!(auth.verify("u", "right").await);
        assert_eq!(auth.bcrypt_runs(), 1, "a cached success ran bcrypt again");
        assert!(!auth.verify("u", "wrong").await);
        assert!(!auth.verify("u", "wrong").await);
        assert_eq!(auth.bcrypt_runs(), 3, "a failure was cached");
        // The key binds user and password together.
        assert!(!auth.verify("v", "right").await);
        assert!(!auth.verify("u:right", "").await);
        assert!(!auth.verify("u", "righ").await);
        assert!(!auth.verify("", "u:right").await);
    }

    #[test]
    fn cache_is_bounded() {
        let mut c = Cache::default();
        for i in 0..(CACHE_MAX + 10) {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            c.insert(k);
        }
        assert_eq!(c.set.len(), CACHE_MAX);
        assert_eq!(c.order.len(), CACHE_MAX);
        assert!(!c.set.contains(&[0u8; 32]), "the oldest entry stays");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_verifications_are_bounded() {
        let h = bcrypt::hash("right", 8).unwrap();
        let auth = Arc::new(load_text(&format!("u:{h}\n")).unwrap());
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let auth = Arc::clone(&auth);
                tokio::spawn(async move { auth.verify("u", &format!("wrong{i}")).await })
            })
            .collect();
        for t in tasks {
            assert!(!t.await.unwrap());
        }
        assert_eq!(auth.bcrypt_runs(), 8);
        let max = auth.max_running.load(Ordering::SeqCst);
        assert!(
            (1..=BCRYPT_PERMITS).contains(&max),
            "{max} bcrypt runs at once"
        );
    }

    #[tokio::test]
    async fn unknown_users_cost_a_bcrypt_run_too() {
        let auth = Arc::new(load_text(&format!("u:{}\n", hash("right"))).unwrap());
        assert!(!auth.verify("nobody", "right").await);
        assert_eq!(auth.bcrypt_runs(), 1);
        assert!(
            auth.dummy_hash.starts_with("$2b$04$"),
            "dummy at the users' cost"
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        let hv = |s: &str| HeaderValue::from_str(s).unwrap();
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        assert_eq!(
            basic_credentials(&hv(&basic("u", "p:w"))).unwrap(),
            ("u".to_owned(), "p:w".to_owned())
        );
        let unpadded = format!("basic {}", b64(b"u:pw").trim_end_matches('='));
        assert_eq!(basic_credentials(&hv(&unpadded)).unwrap().1, "pw");
        for bad in [
            hv("Bearer abc"),
            hv("Basic"),
            hv("Basic !!!not-base64"),
            hv(&format!("Basic {}", b64(b"nocolon"))),
            hv(&format!("Basic {}", b64(&[b'u', b':', 0xff, 0xfe]))),
            hv(&format!("Basic {}", "QUFB".repeat(2000))),
            HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
        ] {
            assert!(basic_credentials(&bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn logged_user_names_are_sanitised() {
        assert_eq!(loggable_user("alice"), "alice");
        assert_eq!(loggable_user("a\"b\n\x1b[31mc d"), "a?b??[31mc?d");
        let long = "x".repeat(500);
        assert_eq!(loggable_user(&long), format!("{}...", "x".repeat(64)));
    }

    #[test]
    fn open_paths() {
        let img = Some("/images");
        for p in [
            "/",
            "/version",
            "/tasks/status/abc",
            "/images/sle/x.xz",
            "/images/",
        ] {
            assert!(is_open(p, img), "{p} should be open");
        }
        for p in [
            "/nodes",
            "/node/a",
            "/version/",
            "//version",
            "/tasks/status/",
            "/tasks/status/a/b",
            "/tasks/statuses",
            "/tasks/log/abc",
            "/check_image/sle",
            "/images",
            "/imagesX/a",
            "/nope",
        ] {
            assert!(!is_open(p, img), "{p} should need credentials");
        }
        assert!(!is_open("/images/a", None));
    }

    fn app() -> Router {
        let ok = |what: &'static str| move || async move { what };
        Router::new()
            .route("/", get(ok("index")))
            .route("/version", get(ok("version")))
            .route("/nodes", get(ok("nodes")))
            .route("/tasks/status/{id}", get(ok("status")))
            .route("/node/provision", post(ok("provision")))
            .route("/images/{*path}", get(ok("image")))
            .fallback(|| async { (StatusCode::NOT_FOUND, "no route") })
    }

    async fn send(app: &Router, method: &str, path: &str, auth: Option<&str>) -> Response {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        app.clone()
            .oneshot(b.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn body(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    async fn assert_401(r: Response, what: &str) {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(r.headers()[WWW_AUTHENTICATE], REALM, "{what}");
        let v: serde_json::Value = serde_json::from_str(&body(r).await).unwrap();
        assert!(v["error"].is_string(), "{what}: {v}");
    }

    #[tokio::test]
    async fn router_protects_all_but_open_routes() {
        let auth = Arc::new(load_text(&format!("lab:{}\n", hash("s3cret"))).unwrap());
        let app = protect(app(), auth.clone(), Some("/images/".to_owned()));
        for (m, p, want) in [
            ("GET", "/", "index"),
            ("HEAD", "/", ""),
            ("GET", "/version", "version"),
            ("GET", "/tasks/status/0123", "status"),
            ("GET", "/images/sle/disk.xz", "image"),
            ("HEAD", "/images/sle/disk.xz", ""),
        ] {
            let r = send(&app, m, p, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{m} {p}");
            assert_eq!(body(r).await, want, "{m} {p}");
        }
        let good = basic("lab", "s3cret");
        for (m, p) in [
            ("GET", "/nodes"),
            ("POST", "/node/provision"),
            ("POST", "/version"),
            ("POST", "/tasks/status/0123"),
            ("POST", "/images/sle/disk.xz"),
            ("GET", "/nope"),
        ] {
            assert_401(send(&app, m, p, None).await, &format!("{m} {p} bare")).await;
            let wrong = basic("lab", "S3cret");
            assert_401(
                send(&app, m, p, Some(&wrong)).await,
                &format!("{m} {p} wrong"),
            )
            .await;
            let nobody = basic("nobody", "s3cret");
            assert_401(
                send(&app, m, p, Some(&nobody)).await,
                &format!("{m} {p} user"),
            )
            .await;
        }
        assert_eq!(
            send(&app, "GET", "/nodes", Some(&good)).await.status(),
            StatusCode::OK
        );
        let r = send(&app, "POST", "/node/provision", Some(&good)).await;
        assert_eq!(body(r).await, "provision");
        let r = send(&app, "GET", "/nope", Some(&good)).await;
        assert_eq!(
            r.status(),
            StatusCode::NOT_FOUND,
            "unknown path with credentials"
        );
        let r = send(&app, "POST", "/version", Some(&good)).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            auth.bcrypt_runs(),
            1 + 6 * 2,
            "one run for all the good requests"
        );
        for bad in [
            "Bearer x",
            "Basic ###",
            "Basic Zm9v",
            "Digest username=\"lab\"",
        ] {
            assert_401(send(&app, "GET", "/nodes", Some(bad)).await, bad).await;
        }
        let huge = format!("Basic {}", "A".repeat(MAX_HEADER * 2));
        assert_401(send(&app, "GET", "/nodes", Some(&huge)).await, "huge").await;
    }

    #[tokio::test]
    async fn the_authorization_header_does_not_reach_the_app() {
        let auth = Arc::new(load_text(&format!("lab:{}\n", hash("s3cret"))).unwrap());
        let inner = Router::new().route(
            "/nodes",
            get(
                |req: Request| async move { req.headers().contains_key(AUTHORIZATION).to_string() },
            ),
        );
        let app = protect(inner, auth, None);
        let r = send(&app, "GET", "/nodes", Some(&basic("lab", "s3cret"))).await;
        assert_eq!(body(r).await, "false");
        let r = send(&app, "GET", "/images/x", None).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "no image route: not open"
        );
    }

    #[tokio::test]
    async fn failed_logins_are_logged_with_client_never_the_password() {
        use tracing_subscriber::layer::SubscriberExt;
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || w.clone()),
        );
        let _g = tracing::subscriber::set_default(sub);
        let good = hash("s3cret");
        let auth = Arc::new(load_text(&format!("lab:{good}\n")).unwrap());
        let app = protect(app(), auth, None);
        let peer: SocketAddr = "192.0.2.7:41234".parse().unwrap();
        let mut req = Request::get("/nodes")
            .header(AUTHORIZATION, basic("lab\nINJECTED", "Wr0ngPassw0rd"))
            .body(Body::empty())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        assert_eq!(
            app.clone().oneshot(req).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        let r = send(&app, "GET", "/nodes", Some(&basic("lab", "Wr0ngPassw0rd"))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("authentication failed"), "{log}");
        assert!(
            log.contains("192.0.2.7:41234") && log.contains("lab?INJECTED"),
            "{log}"
        );
        assert!(log.contains("client=unknown"), "{log}");
        assert!(
            !log.contains("Wr0ngPassw0rd") && !log.contains("s3cret"),
            "{log}"
        );
        assert!(
            !log.contains(&good[7..]) && !log.contains("\nINJECTED"),
            "{log}"
        );
    }
}
