//! `GET /metrics`: the Prometheus text format (version 0.0.4) of what the
//! server records (docs/REST.md lists the series). The engine and the state
//! machine emit through the `metrics` facade (`pelagos_provision::metrics`);
//! this module installs the recorder (metrics-exporter-prometheus, the
//! renderer only), serves it, and counts HTTP requests: `serve.rs` calls
//! [`http_request`] for every answer, front-door refusals included, with the
//! route template [`mark_routes`] left on the answer (never the raw path, so
//! a client cannot grow the label sets).

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, header::CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pelagos_provision::Engine;
use pelagos_provision::metrics as pm;
use std::sync::Arc;
use std::time::Duration;

/// Counter by `route`, `method` and `status`: HTTP requests answered.
pub const HTTP_REQUESTS: &str = "pelagos_http_requests_total";
/// Gauge: nodes of the lab served now that are disabled (problems of
/// their own in the lab config).
pub const NODES_DISABLED: &str = "pelagos_nodes_disabled";
/// The `route` of a request no route answered: none matched, or the front
/// door (framing, `Host`, authentication) answered first.
pub const NO_ROUTE: &str = "none";
/// The path this module serves.
pub const PATH: &str = "/metrics";

/// Install the process-wide recorder (with the histograms' buckets) and
/// start its upkeep; the handle renders the text. Call once, in the
/// runtime.
pub fn install() -> Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(pm::STAGE_SECONDS.to_owned()),
            pm::STAGE_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(pm::BMC_SECONDS.to_owned()), pm::BMC_BUCKETS)
        })
        .context("metrics buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    pm::describe();
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status"
    );
    metrics::describe_gauge!(NODES_DISABLED, "Nodes of the lab that are disabled");
    metrics::gauge!(NODES_DISABLED).set(0.0);
    // Histogram samples wait in a queue until a render or an upkeep folds
    // them in: fold them regularly, so a server nobody scrapes stays small.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The `/metrics` route. Merged before `auth::protect`, so it needs
/// credentials whenever `--htpasswd` is given.
pub fn router(handle: PrometheusHandle, engine: Arc<Engine>) -> Router {
    Router::new().route(
        PATH,
        get(move || {
            let (handle, engine) = (handle.clone(), engine.clone());
            async move { render(&handle, &engine) }
        }),
    )
}

fn render(handle: &PrometheusHandle, engine: &Engine) -> Response {
    // Read at each scrape from the lab served now (a reload changes it).
    let disabled = engine
        .lab()
        .nodes
        .iter()
        .filter(|n| n.is_disabled())
        .count();
    metrics::gauge!(NODES_DISABLED).set(disabled as f64);
    let mut resp = handle.render().into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// The route template that answered a request (`/tasks/status/{id}`), left
/// on the response for [`http_request`].
#[derive(Debug, Clone)]
pub struct RouteLabel(pub String);

/// Leave each answer's route template on it ([`RouteLabel`]). Layered on
/// the routes (before `auth::protect`, which routes everything to them as
/// a fallback), where axum knows the template.
pub fn mark_routes(app: Router) -> Router {
    app.layer(axum::middleware::from_fn(mark))
}

async fn mark(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(route) = route {
        resp.extensions_mut()
            .insert(RouteLabel(route.as_str().to_owned()));
    }
    resp
}

/// The `method` label: the standard methods, anything else `other`.
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Count one answered request: its route template (from [`mark_routes`],
/// else [`NO_ROUTE`]), method and status.
pub fn http_request(method: &'static str, resp: &Response) {
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map_or_else(|| NO_ROUTE.to_owned(), |r| r.0.clone());
    metrics::counter!(HTTP_REQUESTS, "route" => route, "method" => method,
        "status" => resp.status().as_u16().to_string())
    .increment(1);
}
