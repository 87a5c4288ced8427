//! The teuthology-compatible REST routes (docs/REST.md) as thin handlers
//! over the engine; the bodies they answer are the types of [`wire`], the
//! one home of the compatible wire format. [`router`] merges the versioned
//! API ([`crate::api_v1`]) beside them; [`ApiError`] is both's refusal.

use crate::wire;
use axum::extract::{Form, FromRequest, Multipart, Path, Request, State};
use axum::http::header::{CONTENT_TYPE, HOST, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use pelagos_provision::{Engine, EngineError, ProvisionRequest, ReloadError, Reloader};
use std::collections::HashMap;
use std::sync::Arc;

// Declared here, beside its only user, so main.rs is left alone.

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Base of absolute URLs (`Location`); else the request's Host (checked
    /// by the serve loop: a host name or address and a port, nothing else).
    pub public_url: Option<String>,
    /// `http` or `https`: how clients reach us, for absolute URLs built from Host.
    pub scheme: &'static str,
    /// `POST /api/v1/reload` reloads the lab config through it; without
    /// one the route answers 404.
    pub reloader: Option<Arc<Reloader>>,
}

/// What the handlers share: the state given to [`router`] and the cached
/// views built from it.
struct Api {
    state: AppState,
    views: wire::Views,
}

type Shared = State<Arc<Api>>;

pub fn router(state: AppState) -> Router {
    let api = Arc::new(Api {
        state,
        views: wire::Views::default(),
    });
    Router::new()
        .route("/", get(index))
        .route("/version", get(version))
        .route("/nodes", get(nodes))
        .route("/node/{name}", get(node))
        .route("/check_image/{os}", get(check_image))
        .route("/node/bootrecord/{name}/{os}", get(bootrecord))
        .route("/node/rmbootrecord/{name}", get(rmbootrecord))
        .route("/node/provision", post(provision))
        .route("/node/dismiss", post(dismiss))
        .route("/tasks/node/dismiss", post(dismiss))
        .route("/tasks/status/{id}", get(task_status))
        .route("/tasks/statuses", get(statuses))
        .route("/tasks/log/{id}", get(task_log))
        .with_state(api.clone())
        // The versioned API (`/api/v1/...`, its reload too), beside these.
        .merge(crate::api_v1::router(api.state.clone()))
        .fallback(not_found)
}

/// Every refusal as `{"error": "..."}` with its status code.
#[derive(Debug)]
pub enum ApiError {
    Engine(EngineError),
    BadRequest(String),
    NotFound(String),
    /// A body in another media type than the route takes: 415.
    UnsupportedMediaType(String),
    /// The lab config does not load: 422 with its problems.
    Reload(ReloadError),
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError::Engine(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            // A disabled node's 409 lists the problems that disable it.
            ApiError::Engine(e) if !e.problems().is_empty() => {
                let code = StatusCode::from_u16(e.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let body = wire::ErrorWithProblems {
                    error: &e.to_string(),
                    problems: e.problems(),
                };
                return (code, Json(body)).into_response();
            }
            ApiError::Reload(e) => {
                let body = wire::ErrorWithProblems {
                    error: &e.error,
                    problems: &e.problems,
                };
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
            }
            ApiError::Engine(e) => (e.http_status(), e.to_string()),
            ApiError::BadRequest(m) => (400, m),
            ApiError::NotFound(m) => (404, m),
            ApiError::UnsupportedMediaType(m) => (415, m),
        };
        let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, Json(wire::Error { error: &msg })).into_response()
    }
}

fn json_bytes(code: StatusCode, body: Bytes) -> Response {
    (
        code,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!(
        "No route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn index() -> &'static str {
    wire::INDEX
}

async fn version() -> Response {
    Json(wire::Version::CURRENT).into_response()
}

async fn nodes(State(s): Shared) -> Response {
    json_bytes(StatusCode::OK, s.views.nodes(&s.state.engine))
}

async fn node(State(s): Shared, Path(name): Path<String>) -> Result<Response, ApiError> {
    let engine = &s.state.engine;
    let node = engine.known_node(&name)?;
    let pxe = engine.pxe_of(&node);
    Ok(Json(wire::NodeInfo {
        node: wire::NodeRecord(&node),
        pxe: (&pxe).into(),
    })
    .into_response())
}

async fn check_image(State(s): Shared, Path(os): Path<String>) -> Result<Response, ApiError> {
    let os = s.state.engine.resolve_os(&os)?;
    Ok(Json(wire::CheckImage { os: &os }).into_response())
}

async fn bootrecord(
    State(s): Shared,
    Path((name, os)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (node, os) = s.state.engine.set_boot_record(&name, &os).await?;
    Ok(Json(wire::BootRecordSet::new(&node, &os)).into_response())
}

async fn rmbootrecord(State(s): Shared, Path(name): Path<String>) -> Result<Response, ApiError> {
    let node = s.state.engine.remove_boot_record(&name).await?;
    Ok(Json(wire::BootRecordRemoved::new(&node)).into_response())
}

/// Form fields from an urlencoded or a multipart body.
pub struct FormFields(pub HashMap<String, String>);

impl FormFields {
    fn required(&self, name: &str) -> Result<String, ApiError> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::BadRequest(format!("missing form field `{name}`")))
    }
}

impl<S: Send + Sync> FromRequest<S> for FormFields {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ct = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if ct.starts_with("multipart/form-data") {
            let mut mp = Multipart::from_request(req, state).await.map_err(|e| {
                ApiError::BadRequest(format!("bad multipart body: {}", e.body_text()))
            })?;
            let mut fields = Vec::new();
            while let Some(field) = mp.next_field().await.map_err(|e| {
                ApiError::BadRequest(format!("bad multipart body: {}", e.body_text()))
            })? {
                let name = field.name().unwrap_or_default().to_owned();
                let text = field.text().await.map_err(|e| {
                    ApiError::BadRequest(format!("bad form field `{name}`: {}", e.body_text()))
                })?;
                fields.push((name, text));
            }
            FormFields::unique(fields)
        } else {
            let Form(fields) = Form::<Vec<(String, String)>>::from_request(req, state)
                .await
                .map_err(|e| ApiError::BadRequest(format!("bad form body: {}", e.body_text())))?;
            FormFields::unique(fields)
        }
    }
}

impl FormFields {
    /// A field given twice is refused: which of the two values a check saw
    /// and which one was used must never differ.
    fn unique(fields: Vec<(String, String)>) -> Result<Self, ApiError> {
        let mut map = HashMap::with_capacity(fields.len());
        for (name, value) in fields {
            if map.contains_key(&name) {
                let shown: String = name
                    .chars()
                    .take(64)
                    .flat_map(char::escape_default)
                    .collect();
                return Err(ApiError::BadRequest(format!(
                    "form field `{shown}` given twice"
                )));
            }
            map.insert(name, value);
        }
        Ok(FormFields(map))
    }
}

pub fn base_url(s: &AppState, headers: &HeaderMap) -> String {
    match &s.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            // The serve loop answered 400 to an invalid Host and filled in a
            // missing one; the fallback is for in-process callers.
            let host = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| crate::serve::valid_host(h))
                .unwrap_or("localhost");
            format!("{}://{host}", s.scheme)
        }
    }
}

fn header(v: impl ToString) -> HeaderValue {
    HeaderValue::from_str(&v.to_string()).unwrap_or_else(|_| HeaderValue::from_static("?"))
}

async fn provision(
    State(s): Shared,
    headers: HeaderMap,
    form: FormFields,
) -> Result<Response, ApiError> {
    let node = form.required("node")?;
    let os = form.required("os")?;
    // `extra_sls` wins over its alias `add_sls`; a refusal names the one used.
    let (extra_sls_field, extra_sls) = ["extra_sls", "add_sls"]
        .into_iter()
        .find_map(|f| form.0.get(f).map(|v| (f.to_owned(), v.clone())))
        .unwrap_or_default();
    let id = s
        .state
        .engine
        .provision(ProvisionRequest {
            node,
            os,
            extra_sls,
            extra_sls_field,
        })
        .await?;
    let location = format!("{}/tasks/status/{id}", base_url(&s.state, &headers));
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(wire::Accepted {
            task_id: &id,
            location: &location,
        }),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(LOCATION, header(&location));
    h.insert(HeaderName::from_static("taskid"), header(&id));
    Ok(resp)
}

async fn task_status(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = s
        .state
        .engine
        .status(&id)
        .ok_or_else(|| ApiError::Engine(EngineError::TaskNotFound(id.clone())))?;
    if let Some(end) = t.end {
        let r = end.result;
        let code = StatusCode::from_u16(r.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Ok(json_bytes(code, r.body));
    }
    let location = format!("{}/tasks/status/{id}", base_url(&s.state, &headers));
    let stopped = if t.stopped() { "True" } else { "False" };
    let mut resp = (StatusCode::ACCEPTED, Json(wire::Running::new(&id, &t))).into_response();
    let h = resp.headers_mut();
    h.insert(LOCATION, header(&location));
    h.insert(HeaderName::from_static("starttime"), header(t.start_time));
    h.insert(HeaderName::from_static("endtime"), header(t.end_time()));
    h.insert(HeaderName::from_static("taskid"), header(&id));
    h.insert(HeaderName::from_static("node"), header(&t.node));
    h.insert(HeaderName::from_static("os"), header(&t.os));
    h.insert(HeaderName::from_static("stopped"), header(stopped));
    h.insert(
        HeaderName::from_static("status"),
        HeaderValue::from_static(wire::NOT_COMPLETED),
    );
    Ok(resp)
}

async fn statuses(State(s): Shared) -> Response {
    json_bytes(StatusCode::OK, s.views.statuses(&s.state.engine))
}

async fn task_log(State(s): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let log = s.state.engine.log(&id).await?;
    Ok(Json(wire::TaskLog {
        task_id: &id,
        log_data: &log,
    })
    .into_response())
}

async fn dismiss(State(s): Shared, form: FormFields) -> Result<Response, ApiError> {
    let node = form.required("node")?;
    let id = s.state.engine.dismiss(&node).await?;
    Ok(Json(wire::Dismissed {
        stopped_task: &id,
        node: &node,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    //! The routes in process, with a boot-record driver that can pause a
    //! `/nodes` build at a chosen point.

    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use pelagos_config::{LabConfig, Node};
    use pelagos_provision::sim::{SimLab, SimMode};
    use pelagos_provision::{
        BootRecordWriter, BootRecords, DriverError, OsNotFound, ResolvedOs, SqliteStore, TaskLogs,
    };
    use std::path::PathBuf;
    use std::sync::Mutex;
    use std::sync::mpsc::{Receiver, Sender, channel};
    use tower::ServiceExt;

    const LAB: &str = r#"{"nodes": [
        {"node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1"},
        {"node": "n2.lab", "mac": "aa:bb:cc:dd:ee:02", "ip": "10.0.0.2"}
    ]}"#;

    /// On the first read of the armed node's record: say so on the first
    /// channel, then wait for the second.
    type Pause = (String, Sender<()>, Receiver<()>);

    /// Real boot records, with a pause point in `configured_os`.
    struct Paused {
        inner: Arc<BootRecords>,
        pause: Mutex<Option<Pause>>,
    }

    impl BootRecordWriter for Paused {
        fn root(&self) -> PathBuf {
            self.inner.root()
        }
        fn resolve_os(&self, os: &str) -> Result<ResolvedOs, OsNotFound> {
            BootRecordWriter::resolve_os(self.inner.as_ref(), os)
        }
        fn write(&self, node: &Node, os: &ResolvedOs) -> Result<(), DriverError> {
            BootRecordWriter::write(self.inner.as_ref(), node, os)
        }
        fn remove(&self, node: &Node) -> Result<(), DriverError> {
            BootRecordWriter::remove(self.inner.as_ref(), node)
        }
        fn configured_os(&self, node: &Node) -> String {
            let armed = {
                let mut p = self.pause.lock().unwrap();
                match p.as_ref() {
                    Some((n, _, _)) if *n == node.node => p.take(),
                    _ => None,
                }
            };
            if let Some((_, reached, release)) = armed {
                reached.send(()).unwrap();
                release.recv().unwrap();
            }
            BootRecordWriter::configured_os(self.inner.as_ref(), node)
        }
        fn record_path(&self, node: &Node) -> PathBuf {
            BootRecordWriter::record_path(self.inner.as_ref(), node)
        }
        fn os_identity(
            &self,
            os: &ResolvedOs,
        ) -> Result<Option<pelagos_provision::OsIdentity>, String> {
            BootRecordWriter::os_identity(self.inner.as_ref(), os)
        }
    }

    async fn app(dir: &std::path::Path) -> (Router, Arc<Paused>) {
        let lab = Arc::new(LabConfig::parse(LAB).unwrap());
        let tftp = dir.join("tftp");
        std::fs::create_dir_all(&tftp).unwrap();
        let timing = SimMode::Fast.timing(&lab.timing);
        let records = Arc::new(Paused {
            inner: Arc::new(BootRecords::new(&tftp, &lab)),
            pause: Mutex::new(None),
        });
        let drivers = SimLab::new(SimMode::Fast, timing.clone(), dir.join("console"))
            .drivers(records.clone());
        let store = Arc::new(SqliteStore::in_memory().await.unwrap());
        let engine = Engine::start(lab, timing, drivers, store, TaskLogs::new())
            .await
            .unwrap();
        let app = router(AppState {
            engine,
            public_url: None,
            scheme: "http",
            reloader: None,
        });
        (app, records)
    }

    async fn get(app: &Router, path: &str) -> (StatusCode, serde_json::Value) {
        let req = axum::http::Request::get(path).body(Body::empty()).unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let code = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (code, serde_json::from_slice(&body).unwrap())
    }

    /// A record change that lands while a `/nodes` view is being built
    /// (after the build read that node) must not leave the view built
    /// before it cached: the next `/nodes` shows the change.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_change_during_a_nodes_build_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let (app, records) = app(dir.path()).await;
        let default = "Default config is used: pxelinux.cfg/default";

        // Pause the build at n2, after it has read n1's record.
        let (reached_tx, reached) = channel();
        let (release, release_rx) = channel();
        *records.pause.lock().unwrap() = Some(("n2.lab".into(), reached_tx, release_rx));
        let building = {
            let app = app.clone();
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap()
                    .block_on(async { get(&app, "/nodes").await })
            })
        };
        tokio::task::spawn_blocking(move || reached.recv().unwrap())
            .await
            .unwrap();

        // The change, between the build's read of n1 and its end.
        let (code, _) = get(&app, "/node/bootrecord/n1.lab/local").await;
        assert_eq!(code, StatusCode::OK);
        release.send(()).unwrap();
        let (code, built) = building.join().unwrap();
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            built["pxe"]["n1.lab"]["os"], default,
            "built before the change"
        );

        let (_, v) = get(&app, "/nodes").await;
        assert_eq!(v["pxe"]["n1.lab"]["os"], "local", "stale /nodes served");
        let (_, v) = get(&app, "/node/n1.lab").await;
        assert_eq!(v["pxe"]["os"], "local");
    }
}
