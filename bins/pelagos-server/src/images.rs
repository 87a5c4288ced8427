//! The image tree served over HTTP, read-only, for kiwi's install initrd
//! (`rd.kiwi.install.image=http://<server>:<port>/images/<dir>/<image>`),
//! so a lab needs no separate web server.
//!
//! Only regular files inside image dirs of the TFTP root are served
//! ([`Catalog::servable`] decides):
//! `<route>/<image dir>/<file>` (the `<name>` symlink to the current version
//! works as a dir too). Boot records (`pxelinux.cfg/`, `grub/`, `ipxe/`),
//! `boot/`, files at the top of the root, hidden files (add-image's staging
//! dirs) and directories are not: no listing, a 404. Names are checked with
//! pelagos-pxe's [`validate_name`] after percent-decoding, so `..`,
//! `%2e%2e`, `..%2f` and absolute paths are refused with 400. The path is
//! then resolved with symlinks followed and must still be a file in an
//! image dir under the (canonical) root, else 404: a symlink pointing out
//! of the tree, or into the records, serves nothing.
//!
//! The file is answered by tower-http's `ServeFile` on the resolved path:
//! Range (206, `Content-Range`, 416), HEAD, `Content-Length`,
//! `Last-Modified`/`If-Modified-Since`. tower-http's `ServeDir` is not used
//! directly because it follows symlinks wherever they lead. The tree is
//! written by add-image (stage + rename), so a file is never seen half
//! written; the check and the open are two steps, which is safe as long as
//! only the lab's administrator can write the tree.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pelagos_pxe::Catalog;
use pelagos_pxe::catalog::validate_name;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;
use tower_http::services::ServeFile;

/// First path segments the REST API uses: an image route there would
/// shadow or conflict with its routes.
const API_SEGMENTS: &[&str] = &["node", "nodes", "tasks", "check_image", "version"];

/// Read buffer per response. tower-http's default is 64 KiB; larger
/// chunks mean fewer blocking-pool round trips per GiB of image
/// (`cargo xtask bench-images --dense`, 1 GiB over loopback on 2 shared
/// cores: 816 MB/s median with 64 KiB, 1838 MB/s with 1 MiB).
const CHUNK: usize = 1 << 20;

/// `--image-route`: the URL path of the image tree, `None` when off.
#[derive(Debug, Clone, PartialEq)]
pub struct Route(pub Option<String>);

/// Parse `--image-route`: `/images`, `boot/images/` ... as `/images`,
/// `/boot/images`; `none` (or empty) turns the route off.
pub fn parse_route(s: &str) -> Result<Route, String> {
    parse_route_path(s).map(Route)
}

fn parse_route_path(s: &str) -> Result<Option<String>, String> {
    if s.trim().is_empty() || s.trim() == "none" {
        return Ok(None);
    }
    let t = s.trim().trim_matches('/');
    if t.is_empty() {
        return Err(format!(
            "--image-route {s:?}: the root belongs to the REST API; use a path like /images"
        ));
    }
    for seg in t.split('/') {
        let ok = !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c));
        if !ok {
            return Err(format!(
                "--image-route {s:?}: segment {seg:?} must be non-empty letters, digits, '-', '_', '.', '~'"
            ));
        }
    }
    let first = t.split('/').next().unwrap_or_default();
    if API_SEGMENTS.contains(&first) {
        return Err(format!(
            "--image-route {s:?}: /{first} belongs to the REST API"
        ));
    }
    Ok(Some(format!("/{t}")))
}

/// The served tree: the TFTP root's image dirs.
#[derive(Debug)]
pub struct ImageTree {
    catalog: Catalog,
}

impl ImageTree {
    /// `root` must exist; it is resolved once, so later symlink checks
    /// compare real paths.
    pub fn new(root: &Path) -> io::Result<Self> {
        Ok(Self {
            catalog: Catalog::new(root.canonicalize()?),
        })
    }

    /// The file a request path (after the route, percent-decoded) may be
    /// answered with: [`Catalog::servable`]'s resolved path.
    async fn resolve(&self, rel: &str) -> Result<PathBuf, Refusal> {
        let not_found = || Refusal::NotFound(format!("No image file [{rel}]"));
        let parts: Vec<&str> = rel.split('/').collect();
        // `<dir>/` or `a//b`: a directory or nothing, never listed.
        if parts.iter().any(|p| p.is_empty()) {
            return Err(not_found());
        }
        // `..`, `%2e%2e`, hidden names: say why.
        for p in &parts {
            if let Err(e) = validate_name(p) {
                return Err(Refusal::Bad(format!("bad image path [{rel}]: {e}")));
            }
        }
        let catalog = self.catalog.clone();
        let rel_owned = rel.to_owned();
        tokio::task::spawn_blocking(move || catalog.servable(&rel_owned))
            .await
            .ok()
            .flatten()
            .ok_or_else(not_found)
    }
}

enum Refusal {
    Bad(String),
    NotFound(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            Refusal::Bad(m) => (StatusCode::BAD_REQUEST, m),
            Refusal::NotFound(m) => (StatusCode::NOT_FOUND, m),
        };
        (code, axum::Json(crate::wire::Error { error: &msg })).into_response()
    }
}

/// `GET`/`HEAD <route>/{*path}` over `tree`.
pub fn router(route: &str, tree: ImageTree) -> Router {
    Router::new()
        .route(&format!("{route}/{{*path}}"), get(serve))
        .with_state(Arc::new(tree))
}

async fn serve(
    State(tree): State<Arc<ImageTree>>,
    UrlPath(rel): UrlPath<String>,
    req: Request,
) -> Response {
    let file = match tree.resolve(&rel).await {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    match ServeFile::new(&file)
        .with_buf_chunk_size(CHUNK)
        .oneshot(req)
        .await
    {
        Ok(resp) => resp.map(Body::new),
        Err(e) => match e {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        assert_eq!(
            parse_route_path("/images").unwrap().as_deref(),
            Some("/images")
        );
        assert_eq!(
            parse_route_path("boot/img/").unwrap().as_deref(),
            Some("/boot/img")
        );
        assert_eq!(parse_route_path("none").unwrap(), None);
        assert_eq!(parse_route_path("").unwrap(), None);
        for bad in [
            "/",
            "/a/../b",
            "/a//b",
            "/{x}",
            "/tasks",
            "/node/img",
            "/a b",
        ] {
            assert!(parse_route_path(bad).is_err(), "{bad} accepted");
        }
    }
}
