//! The live monitoring page: `web/` embedded in the binary, served at `/` and `/static/…`.
//!
//! No build step and no CDN: the page is plain HTML, CSS and JavaScript modules with a
//! vendored uPlot, so it works on a closed network. In debug builds rust-embed reads the
//! files from `web/` at run time (edits show on reload); release builds carry them inside.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

/// The files of `web/`.
#[derive(RustEmbed)]
#[folder = "web/"]
struct Web;

/// The page allows only its own origin: scripts, styles, API and WebSocket.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// `GET /`: the page itself.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /static/{*path}`: scripts, styles and the vendored chart library.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// Answers one embedded file with its content type and an ETag.
///
/// Asset names carry no content hash, so a browser must not cache them blindly across a
/// vigil upgrade: `no-cache` makes it revalidate every time, and the ETag (the file's
/// SHA-256) turns that revalidation into a bodiless 304 when nothing changed.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Web::get(path) else {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    let etag = etag(&file.metadata.sha256_hash());
    let mut response = if if_none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mime = file.metadata.mimetype();
        let mut r = file.data.into_owned().into_response();
        let content_type = content_type(mime);
        r.headers_mut().insert(header::CONTENT_TYPE, content_type);
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path == "index.html" {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    response
}

/// A strong ETag from the file's hash (the first 16 bytes are plenty to tell versions apart).
fn etag(sha256: &[u8; 32]) -> String {
    let hex: String = sha256[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether the client already holds this version (`If-None-Match` lists it, or is `*`).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// Text types get an explicit charset: the sources are UTF-8 (units such as `°C`).
fn content_type(mime: &str) -> HeaderValue {
    let full = if mime.starts_with("text/") || mime == "application/javascript" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    };
    HeaderValue::from_str(&full).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use axum::Router;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/", get(index))
            .route("/static/{*path}", get(asset))
    }

    async fn fetch(uri: &str, inm: Option<&str>) -> Response {
        let mut req = Request::get(uri);
        if let Some(tag) = inm {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        app()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header_of(r: &Response, name: header::HeaderName) -> String {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_page_is_html_with_a_policy_and_its_assets_have_their_types() {
        let page = fetch("/", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            header_of(&page, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert!(header_of(&page, header::CONTENT_SECURITY_POLICY).contains("default-src 'self'"));
        let body = page.into_body().collect().await.unwrap().to_bytes();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains("/static/js/main.js"), "{html}");

        for (uri, ty) in [
            ("/static/js/main.js", "text/javascript; charset=utf-8"),
            ("/static/app.css", "text/css; charset=utf-8"),
            (
                "/static/vendor/uplot/uPlot.iife.min.js",
                "text/javascript; charset=utf-8",
            ),
        ] {
            let r = fetch(uri, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{uri}");
            assert_eq!(header_of(&r, header::CONTENT_TYPE), ty, "{uri}");
            assert_eq!(header_of(&r, header::CACHE_CONTROL), "no-cache", "{uri}");
        }
    }

    #[tokio::test]
    async fn a_known_version_is_answered_304_and_a_changed_one_in_full() {
        let first = fetch("/static/app.css", None).await;
        let tag = header_of(&first, header::ETAG);
        assert!(tag.starts_with('"') && tag.len() > 10, "{tag}");

        let again = fetch("/static/app.css", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let body = again.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty());

        let stale = fetch("/static/app.css", Some("\"0000\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_files_and_escapes_are_404() {
        for uri in [
            "/static/nope.js",
            "/static/../Cargo.toml",
            "/static/%2e%2e/Cargo.toml",
        ] {
            assert_eq!(
                fetch(uri, None).await.status(),
                StatusCode::NOT_FOUND,
                "{uri}"
            );
        }
    }
}
