//! The versioned REST API, `/api/v1/...` (docs/REST.md): proper verbs,
//! JSON in and out, beside the compatible routes of [`crate::api`] (which
//! it does not change). Its handlers call the same engine methods as the
//! compatible ones, so checks and status codes are the same; refusals are
//! [`ApiError`]s, `{"error": ...}`. The OpenAPI document
//! (`GET /api/v1/openapi.json`) is derived from the handlers'
//! `#[utoipa::path]` and the [`types`] by utoipa, built once.

mod types;

use crate::api::{ApiError, AppState, base_url};
use crate::wire;
use axum::Json;
use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use pelagos_provision::{EngineError, ProvisionRequest};
use pelagos_pxe::Catalog;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use types::*;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

type Shared = State<Arc<AppState>>;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/nodes", get(nodes))
        .route("/api/v1/nodes/{node}", get(node))
        .route(
            "/api/v1/nodes/{node}/provision",
            post(provision).delete(dismiss),
        )
        .route("/api/v1/tasks", get(tasks))
        .route("/api/v1/tasks/{id}", get(task))
        .route("/api/v1/tasks/{id}/log", get(task_log))
        .route("/api/v1/images", get(images))
        .route("/api/v1/reload", post(reload))
        .with_state(Arc::new(state))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pelagos",
        description = "Pelagos' versioned REST API (docs/REST.md). Under `--htpasswd` every route \
                       needs HTTP Basic credentials, this document too.",
    ),
    paths(nodes, node, provision, dismiss, tasks, task, task_log, images, reload, openapi),
    modifiers(&BasicAuth),
    tags((name = "v1", description = "Pelagos API v1"))
)]
struct ApiDoc;

/// HTTP Basic, for every operation (enforced when the server runs with
/// `--htpasswd`).
struct BasicAuth;

impl utoipa::Modify for BasicAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        doc.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "basic",
            Vec::<String>::new(),
        )]);
    }
}

/// The OpenAPI document, as served.
pub fn openapi_doc() -> &'static Bytes {
    static DOC: OnceLock<Bytes> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        let mut doc = serde_json::to_value(&doc).unwrap_or_default();
        add_links(&mut doc);
        Bytes::from(serde_json::to_vec_pretty(&doc).unwrap_or_default())
    })
}

/// The OpenAPI links between operations (a node of the list to its
/// routes, a started task to its routes), which utoipa does not derive:
/// clients and fuzzers follow them from one answer to the next request.
fn add_links(doc: &mut serde_json::Value) {
    let node = serde_json::json!({"node": "$response.body#/nodes/0/node"});
    let id = serde_json::json!({"id": "$response.body#/id"});
    let links = [
        ("/api/v1/nodes", "get", "200", "node", &node, "GetNode"),
        (
            "/api/v1/nodes",
            "get",
            "200",
            "provision",
            &node,
            "ProvisionNode",
        ),
        (
            "/api/v1/nodes",
            "get",
            "200",
            "dismiss",
            &node,
            "DismissNode",
        ),
        (
            "/api/v1/nodes/{node}/provision",
            "post",
            "202",
            "task",
            &id,
            "GetTask",
        ),
        (
            "/api/v1/nodes/{node}/provision",
            "post",
            "202",
            "task_log",
            &id,
            "GetTaskLog",
        ),
        (
            "/api/v1/nodes/{node}/provision",
            "delete",
            "200",
            "task",
            &id,
            "GetTask",
        ),
    ];
    for (path, method, status, op, params, name) in links {
        if let Some(resp) = doc.pointer_mut(&format!(
            "/paths/{}/{method}/responses/{status}",
            path.replace('~', "~0").replace('/', "~1")
        )) && let Some(resp) = resp.as_object_mut()
        {
            let links = resp.entry("links").or_insert_with(|| serde_json::json!({}));
            links[name] = serde_json::json!({"operationId": op, "parameters": params});
        }
    }
}

fn json_bytes(body: Bytes) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

fn bad_path(e: PathRejection) -> ApiError {
    ApiError::BadRequest(format!("bad path: {}", e.body_text()))
}

/// This OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "v1",
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json",
         body = Object),
        (status = 401, description = "No or wrong credentials (`--htpasswd`)", body = ErrorBody),
    ))]
async fn openapi() -> Response {
    json_bytes(openapi_doc().clone())
}

/// The running task of each node that has one.
fn active_tasks(s: &AppState) -> HashMap<String, String> {
    s.engine.with_tasks(|rows| {
        rows.iter()
            .filter(|r| r.end.is_none())
            .map(|r| (r.node.clone(), r.id.clone()))
            .collect()
    })
}

/// Every node of the lab served now, in lab order.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "v1",
    responses(
        (status = 200, description = "The nodes", body = NodeList),
        (status = 401, description = "No or wrong credentials (`--htpasswd`)", body = ErrorBody),
    ))]
async fn nodes(State(s): Shared) -> Json<NodeList> {
    let mut active = active_tasks(&s);
    let (lab, pxe) = s.engine.pxe_of_all();
    let nodes = lab
        .nodes
        .iter()
        .zip(pxe)
        .map(|(n, p)| NodeView::new(n, p.os, active.remove(&n.node)))
        .collect();
    Json(NodeList { nodes })
}

/// One node.
#[utoipa::path(get, path = "/api/v1/nodes/{node}", tag = "v1",
    params(("node" = String, Path, description = "The node's name")),
    responses(
        (status = 200, description = "The node", body = NodeView),
        (status = 400, description = "Bad path", body = ErrorBody),
        (status = 401, description = "No or wrong credentials (`--htpasswd`)", body = ErrorBody),
        (status = 404, description = "Unknown node", body = ErrorBody),
    ))]
async fn node(
    State(s): Shared,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<NodeView>, ApiError> {
    let Path(name) = name.map_err(bad_path)?;
    let node = s.engine.known_node(&name)?;
    let os = s.engine.pxe_of(&node).os;
    let active = active_tasks(&s).remove(&node.node);
    Ok(Json(NodeView::new(&node, os, active)))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"))
}

/// Start a provision of the node (dismissing its running one first).
/// The same checks and codes as `POST /node/provision`.
#[utoipa::path(post, path = "/api/v1/nodes/{node}/provision", tag = "v1",
    params(("node" = String, Path, description = "The node's name")),
    request_body(content = ProvisionBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Started", body = Task,
         headers(("Location" = String, description = "Absolute URL of `/api/v1/tasks/{id}`"))),
        (status = 400, description = "Bad body, OS name or salt state names", body = ErrorBody),
        (status = 401, description = "No or wrong credentials (`--htpasswd`)", body = ErrorBody),
        (status = 404, description = "Unknown node or OS; an image a node cannot install from",
         body = ErrorBody),
        (status = 409, description = "The node has no `mac` or is disabled by the lab config",
         body = ErrorBody),
        (status = 413, description = "Body over `--body-limit`", body = ErrorBody),
        (status = 415, description = "Body not `application/json`", body = ErrorBody),
        (status = 503, description = "The server is stopping", body = ErrorBody),
    ))]
async fn provision(
    State(s): Shared,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Path(node) = name.map_err(bad_path)?;
    if !is_json(&headers) {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be application/json: {\"os\": ..., \"extra_sls\": [...]}".into(),
        ));
    }
    let body: ProvisionBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("bad JSON body: {e}")))?;
    // The engine takes the states space-separated: a name with a space (or
    // an empty one) would not reach it as written.
    if let Some(bad) = body
        .extra_sls
        .iter()
        .find(|n| n.is_empty() || n.contains(char::is_whitespace))
    {
        let error =
            pelagos_config::check_sls_name(bad)
                .err()
                .map(|error| EngineError::InvalidSls {
                    field: "extra_sls".into(),
                    error,
                });
        return Err(match error {
            Some(e) => e.into(),
            None => ApiError::BadRequest(format!("`extra_sls`: {bad:?} is not a salt state name")),
        });
    }
    let id = s
        .engine
        .provision(ProvisionRequest {
            node,
            os: body.os,
            extra_sls: body.extra_sls.join(" "),
            extra_sls_field: "extra_sls".into(),
        })
        .await?;
    let row = s
        .engine
        .status(&id)
        .ok_or_else(|| EngineError::TaskNotFound(id.clone()))?;
    let location = format!("{}/api/v1/tasks/{id}", base_url(&s, &headers));
    let mut resp = (StatusCode::ACCEPTED, Json(Task::of(&row))).into_response();
    resp.headers_mut().insert(
        LOCATION,
        HeaderValue::from_str(&location).unwrap_or_else(|_| HeaderValue::from_static("?")),
    );
    Ok(resp)
}

/// Dismiss the node's running provision and wait until it has stopped;
/// the dismissed task. The same as `POST /node/dismiss`.
#[utoipa::path(delete, path = "/api/v1/nodes/{node}/provision", tag = "v1",
    params(("node" = String, Path, description = "The node's name")),
    responses(
        (status = 200, description = "The dismissed task", body = Task),
        (status = 400, description = "Bad path", body = ErrorBody),
        (status = 401, description = "No or wrong credentials (`--htpasswd`)", body = ErrorBody),
        (status = 404, description = "Unknown node, or no provision of it runs", body = ErrorBody),
    ))]
async fn dismiss(
    State(s): Shared,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Task>, ApiError> {
    let Path(node) = name.map_err(bad_path)?;
    s.engine.known_node(&node)?;
    let id = s.engine.dismiss(&node).await?;
    let row = s
        .engine
        .status(&id)
        .ok_or_else(|| EngineError::TaskNotFound(id.clone()))?;
    Ok(Json(Task::of(&row)))
}

/// The tasks known (finished ones for `data_life_time`), oldest first.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "v1",
    params(TasksQuery),
    responses(
        (status = 200, description = "The tasks", body = TaskList),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No or wrong credentials (`--htpasswd`)", body = ErrorBody),
    ))]
async fn tasks(
    State(s): Shared,
    q: Result<Query<TasksQuery>, QueryRejection>,
) -> Result<Json<TaskList>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(format!("bad query: {}", e.body_text())))?;
    let tasks = s.engine.with_tasks(|rows| {
        rows.iter()
            .filter(|r| q.node.as_ref().is_none_or(|n| *n == r.node))
            .map(|r| Task::of(r))
            .filter(|t| q.state.is_none_or(|st| st == t.state))
            .collect()
    });
    Ok(Json(TaskList { tasks }))
}

/// One task.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "v1",
    params(("id" = String, Path, description = "The task id")),
    responses(
        (status = 200, description = "The task", body = Task),
        (status = 400, description = "Bad path", body = ErrorBody),
        (status = 401, description = "No or wrong credentials (`--htpasswd`)", body = ErrorBody),
        (status = 404, description = "Unknown task", body = ErrorBody),
    ))]
async fn task(
    State(s): Shared,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Task>, ApiError> {
    let Path(id) = id.map_err(bad_path)?;
    let row = s.engine.status(&id).ok_or(EngineError::TaskNotFound(id))?;
    Ok(Json(Task::of(&row)))
}

/// A task's log.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/log", tag = "v1",
    params(("id" = String, Path, description = "The task id")),
    responses(
        (status = 200, description = "The log", body = TaskLog),
        (status = 400, description = "Bad path", body = ErrorBody),
        (status = 401, description = "No or wrong credentials (`--htpasswd`)", body = ErrorBody),
        (status = 404, description = "Unknown task", body = ErrorBody),
    ))]
async fn task_log(
    State(s): Shared,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TaskLog>, ApiError> {
    let Path(id) = id.map_err(bad_path)?;
    let log = s.engine.log(&id).await?;
    Ok(Json(TaskLog { id, log }))
}

/// The image catalog: every image dir with a manifest (`add-image`'s);
/// hand-made dirs are not listed.
#[utoipa::path(get, path = "/api/v1/images", tag = "v1",
    responses(
        (status = 200, description = "The images", body = ImageList),
        (status = 401, description = "No or wrong credentials (`--htpasswd`)", body = ErrorBody),
    ))]
async fn images(State(s): Shared) -> Result<Json<ImageList>, ApiError> {
    let catalog = Catalog::new(s.engine.drivers().boot_records.root());
    let entries = tokio::task::spawn_blocking(move || catalog.images())
        .await
        .map_err(|e| EngineError::Internal(format!("image listing failed: {e}")))?
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    Ok(Json(ImageList {
        images: entries.iter().map(Image::from).collect(),
    }))
}

/// Reload the lab config file (as SIGHUP does): what changed; 422 with
/// every problem when the file does not load, the lab served before
/// staying as it was.
#[utoipa::path(post, path = "/api/v1/reload", tag = "v1",
    responses(
        (status = 200, description = "Reloaded", body = Reloaded),
        (status = 401, description = "No or wrong credentials (`--htpasswd`)", body = ErrorBody),
        (status = 404, description = "No config file to reload (in-process servers)",
         body = ErrorBody),
        (status = 422, description = "The file does not load", body = ErrorBody),
    ))]
async fn reload(State(s): Shared) -> Result<Response, ApiError> {
    let Some(reloader) = &s.reloader else {
        return Err(ApiError::NotFound(
            "No route for POST /api/v1/reload".into(),
        ));
    };
    let summary = reloader.reload().await.map_err(ApiError::Reload)?;
    let nodes = s.engine.lab().nodes.len();
    Ok(Json(wire::Reloaded::new(nodes, &summary)).into_response())
}
