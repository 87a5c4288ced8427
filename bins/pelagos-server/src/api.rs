//! The teuthology-compatible REST routes (docs/REST.md) as thin
//! handlers over the engine.

use axum::extract::{Form, FromRequest, Multipart, Path, Request, State};
use axum::http::header::{CONTENT_TYPE, HOST, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use pelagos_provision::{Engine, EngineError, ProvisionRequest};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Base of absolute URLs (`Location`); else the request's Host (checked
    /// by the serve loop: a host name or address and a port, nothing else).
    pub public_url: Option<String>,
    /// `http` or `https`: how clients reach us, for absolute URLs built from Host.
    pub scheme: &'static str,
}

pub fn router(state: AppState) -> Router {
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
        .fallback(not_found)
        .with_state(state)
}

/// Every refusal as `{"error": "..."}` with its status code.
#[derive(Debug)]
pub enum ApiError {
    Engine(EngineError),
    BadRequest(String),
    NotFound(String),
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError::Engine(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            ApiError::Engine(e) => (e.http_status(), e.to_string()),
            ApiError::BadRequest(m) => (400, m),
            ApiError::NotFound(m) => (404, m),
        };
        let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, Json(json!({ "error": msg }))).into_response()
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
    "Network controller service\n\
     use http://<host>:<port>/pxe/api/tasks\n\
     for access to REST functionality\n"
}

async fn version() -> Json<Value> {
    Json(json!({ "app": "pelagos", "version": env!("CARGO_PKG_VERSION") }))
}

async fn nodes(State(s): State<AppState>) -> Response {
    json_bytes(StatusCode::OK, s.engine.nodes_json())
}

async fn node(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(s.engine.node_json(&name)?))
}

async fn check_image(
    State(s): State<AppState>,
    Path(os): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "os": s.engine.resolve_os(&os)? })))
}

async fn bootrecord(
    State(s): State<AppState>,
    Path((name, os)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (node, os) = s.engine.set_boot_record(&name, &os).await?;
    Ok(Json(
        json!({ "status": "single boot record set", "node": node, "os": os }),
    ))
}

async fn rmbootrecord(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let node = s.engine.remove_boot_record(&name).await?;
    Ok(Json(
        json!({ "status": "dedicated boot record removed", "node": node }),
    ))
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

fn base_url(s: &AppState, headers: &HeaderMap) -> String {
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
    State(s): State<AppState>,
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
        .engine
        .provision(ProvisionRequest {
            node,
            os,
            extra_sls,
            extra_sls_field,
        })
        .await?;
    let location = format!("{}/tasks/status/{id}", base_url(&s, &headers));
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(json!({ "TaskID": id, "Location": location })),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(LOCATION, header(&location));
    h.insert(HeaderName::from_static("taskid"), header(&id));
    Ok(resp)
}

async fn task_status(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = s
        .engine
        .status(&id)
        .ok_or_else(|| ApiError::Engine(EngineError::TaskNotFound(id.clone())))?;
    if let Some(r) = t.result {
        let code = StatusCode::from_u16(r.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Ok(json_bytes(code, r.body));
    }
    let location = format!("{}/tasks/status/{id}", base_url(&s, &headers));
    let stopped = if t.stopped { "True" } else { "False" };
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "not completed", "TaskID": id, "Node": t.node, "OS": t.os,
            "StartTime": t.start_time, "EndTime": t.end_time, "stopped": t.stopped,
        })),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(LOCATION, header(&location));
    h.insert(HeaderName::from_static("starttime"), header(t.start_time));
    h.insert(HeaderName::from_static("endtime"), header(t.end_time));
    h.insert(HeaderName::from_static("taskid"), header(&id));
    h.insert(HeaderName::from_static("node"), header(&t.node));
    h.insert(HeaderName::from_static("os"), header(&t.os));
    h.insert(HeaderName::from_static("stopped"), header(stopped));
    h.insert(HeaderName::from_static("status"), header("not completed"));
    Ok(resp)
}

async fn statuses(State(s): State<AppState>) -> Response {
    json_bytes(StatusCode::OK, s.engine.statuses_json())
}

async fn task_log(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let log = s.engine.log(&id).await?;
    Ok(Json(json!({ "TaskID": id, "LogData": log })))
}

async fn dismiss(State(s): State<AppState>, form: FormFields) -> Result<Json<Value>, ApiError> {
    let node = form.required("node")?;
    let id = s.engine.dismiss(&node).await?;
    Ok(Json(json!({ "stopped_task": id, "node": node })))
}
