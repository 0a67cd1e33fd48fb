//! Built-in web UI: framework-free HTML/CSS/JS from `ui/`, compiled into the
//! binary so `strand serve` needs no files beside it. Asset names carry no
//! content hash, so every response is `no-cache` with a strong ETag: browsers
//! revalidate with a cheap 304 and never run stale scripts after an upgrade.
//! Client-side routes (`/search`, `/trace/{id}`, `/compare/{a}/{b}`,
//! `/dependencies`, `/monitor`) all get index.html; the router in `ui/app.js` picks the
//! page. `GET /api/ui/links` renders the `[[ui.links]]` correlation
//! templates (`links`, config in `config`) for a trace or a span.

pub mod config;
pub mod links;

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $ct:expr) => {
        Asset {
            name: $name,
            content_type: $ct,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `ui/` (a unit test checks none is missing).
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("axis.js", JS),
    asset!("chart.js", JS),
    asset!("colors.js", JS),
    asset!("compare.js", JS),
    asset!("critical.js", JS),
    asset!("deps.js", JS),
    asset!("diff.js", JS),
    asset!("dom.js", JS),
    asset!("layout.js", JS),
    asset!("links.js", JS),
    asset!("minimap.js", JS),
    asset!("model.js", JS),
    asset!("monitor.js", JS),
    asset!("monitor-model.js", JS),
    asset!("search.js", JS),
    asset!("spanpanel.js", JS),
    asset!("table.js", JS),
    asset!("trace.js", JS),
    asset!("tree.js", JS),
    asset!("virtual.js", JS),
];

/// Everything the page loads comes from this server: the policy makes the
/// browser refuse any other origin. Inline `style` attributes position the
/// timeline bars, hence 'unsafe-inline' for styles only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
                   frame-ancestors 'none'";

fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(a.body)))
            .collect()
    })
}

/// Mounts the UI routes. The query API's routes (`/api/...`) are separate.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/search", web::get().to(index))
        .route("/dependencies", web::get().to(index))
        .route("/trace/{id}", web::get().to(index))
        .route("/compare", web::get().to(index))
        .route("/compare/{a}/{b}", web::get().to(index))
        .route("/monitor", web::get().to(index))
        .route("/static/{file}", web::get().to(static_file))
        .route("/api/ui/links", web::get().to(ui_links));
}

/// Query of `GET /api/ui/links`: which scope and the values to fill in.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LinksQuery {
    scope: String,
    trace_id: String,
    span_id: Option<String>,
    service: String,
    #[serde(default)]
    operation: String,
    /// Unix ms.
    start: i64,
    end: i64,
}

fn is_hex(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `{"links":[{"name","url"}]}` for the trace header (`scope=trace`) or the
/// span panel (`scope=span`, with `spanId`); no templates configured → `[]`.
async fn ui_links(
    q: web::Query<LinksQuery>,
    links: Option<web::Data<links::Links>>,
) -> crate::error::Result<HttpResponse> {
    use crate::error::Error;
    let bad = |m: String| Error::InvalidArgument(m);
    let scope = links::Scope::parse(&q.scope)
        .ok_or_else(|| bad(format!("scope must be span or trace, got {:?}", q.scope)))?;
    if !is_hex(&q.trace_id, 32) {
        return Err(bad(format!(
            "traceId {:?} is not a hex trace id",
            q.trace_id
        )));
    }
    let span_id = match (scope, &q.span_id) {
        (links::Scope::Span, Some(s)) if is_hex(s, 16) => Some(s.clone()),
        (links::Scope::Span, _) => return Err(bad("scope=span needs a hex spanId".into())),
        (links::Scope::Trace, _) => None,
    };
    if q.end < q.start {
        return Err(bad(format!("end {} is before start {}", q.end, q.start)));
    }
    let values = links::Values {
        trace_id: q.trace_id.clone(),
        span_id,
        service: q.service.clone(),
        operation: q.operation.clone(),
        start_ms: q.start,
        end_ms: q.end,
    };
    let rendered: Vec<serde_json::Value> = links
        .map(|l| l.render(scope, &values))
        .unwrap_or_default()
        .into_iter()
        .map(|(name, url)| serde_json::json!({ "name": name, "url": url }))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "links": rendered })))
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, 0)
}

async fn static_file(req: HttpRequest, file: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().position(|a| a.name == file.as_str()) {
        Some(i) => serve(&req, i),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such asset"),
    }
}

fn serve(req: &HttpRequest, i: usize) -> HttpResponse {
    let (Some(asset), Some(etag)) = (ASSETS.get(i), etags().get(i)) else {
        return HttpResponse::NotFound().finish();
    };
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if asset.name == "index.html" {
        res.insert_header((header::CONTENT_SECURITY_POLICY, CSP));
    }
    if fresh {
        return res.finish();
    }
    res.content_type(asset.content_type).body(asset.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as atest, App};

    async fn get(
        path: &str,
        inm: Option<&str>,
    ) -> (u16, actix_web::http::header::HeaderMap, Vec<u8>) {
        let app = atest::init_service(App::new().configure(configure)).await;
        let mut req = atest::TestRequest::get().uri(path);
        if let Some(v) = inm {
            req = req.insert_header((header::IF_NONE_MATCH, v));
        }
        let res = atest::call_service(&app, req.to_request()).await;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = atest::read_body(res).await.to_vec();
        (status, headers, body)
    }

    fn hv(h: &actix_web::http::header::HeaderMap, k: header::HeaderName) -> &str {
        h.get(k).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    #[actix_web::test]
    async fn every_asset_is_served_with_type_and_cache_headers() {
        for a in ASSETS {
            let (status, h, body) = get(&format!("/static/{}", a.name), None).await;
            assert_eq!(status, 200, "{}", a.name);
            assert_eq!(hv(&h, header::CONTENT_TYPE), a.content_type, "{}", a.name);
            assert_eq!(hv(&h, header::CACHE_CONTROL), "no-cache", "{}", a.name);
            assert_eq!(body, a.body, "{}", a.name);
            let etag = hv(&h, header::ETAG).to_string();
            assert!(
                etag.starts_with('"') && etag.len() == 18,
                "{}: {etag}",
                a.name
            );
            let (status, h, body) = get(&format!("/static/{}", a.name), Some(&etag)).await;
            assert_eq!(status, 304, "{}", a.name);
            assert_eq!(hv(&h, header::ETAG), etag);
            assert!(body.is_empty());
        }
    }

    #[actix_web::test]
    async fn spa_routes_get_index_html() {
        let index = ASSETS[0].body;
        for path in [
            "/",
            "/search",
            "/search?service=a&run=1",
            "/dependencies",
            "/trace/abc123",
            "/compare",
            "/compare/abc123/def456",
            "/monitor",
            "/monitor?service=a&operation=b",
        ] {
            let (status, h, body) = get(path, None).await;
            assert_eq!(status, 200, "{path}");
            assert_eq!(body, index, "{path}");
            assert!(
                hv(&h, header::CONTENT_TYPE).starts_with("text/html"),
                "{path}"
            );
            assert!(
                hv(&h, header::CONTENT_SECURITY_POLICY).contains("default-src 'self'"),
                "{path}"
            );
        }
        let (status, _, _) = get("/static/nope.js", None).await;
        assert_eq!(status, 404);
        let (status, _, _) = get("/static/..%2Fsrc%2Flib.rs", None).await;
        assert_eq!(status, 404);
    }

    #[actix_web::test]
    async fn links_endpoint_renders_the_asked_scope_and_rejects_bad_values() {
        let cfg = config::UiConfig {
            links: vec![
                config::LinkConfig {
                    name: "Logs".into(),
                    url: "https://loki/x?span={span_id}&svc={service}&from={start}".into(),
                    scope: "span".into(),
                },
                config::LinkConfig {
                    name: "Trace logs".into(),
                    url: "https://kibana/{trace_id}?to={end_iso}".into(),
                    scope: "trace".into(),
                },
            ],
        };
        let data = web::Data::new(links::Links::compile(&cfg).unwrap());
        let app = atest::init_service(App::new().app_data(data).configure(configure)).await;
        let call = |uri: String| {
            let req = atest::TestRequest::get().uri(&uri).to_request();
            atest::call_service(&app, req)
        };
        let tid = "0af7651916cd43dd8448eb211c80319c";
        let res = call(format!(
            "/api/ui/links?scope=span&traceId={tid}&spanId=b7ad6b7169203331&service=a%20b&operation=op&start=5&end=9"
        ))
        .await;
        assert_eq!(res.status().as_u16(), 200);
        let body: serde_json::Value = atest::read_body_json(res).await;
        assert_eq!(
            body,
            serde_json::json!({"links": [{"name": "Logs", "url": "https://loki/x?span=b7ad6b7169203331&svc=a%20b&from=5"}]})
        );
        let res = call(format!(
            "/api/ui/links?scope=trace&traceId={tid}&service=a&start=0&end=1000"
        ))
        .await;
        let body: serde_json::Value = atest::read_body_json(res).await;
        assert_eq!(
            body["links"][0]["url"],
            format!("https://kibana/{tid}?to=1970-01-01T00%3A00%3A01.000Z")
        );
        for bad in [
            format!("/api/ui/links?scope=page&traceId={tid}&service=a&start=0&end=1"),
            format!("/api/ui/links?scope=span&traceId={tid}&service=a&start=0&end=1"),
            "/api/ui/links?scope=trace&traceId=xyz&service=a&start=0&end=1".to_string(),
            format!("/api/ui/links?scope=trace&traceId={tid}&service=a&start=5&end=1"),
            format!("/api/ui/links?scope=trace&traceId={tid}&service=a&start=x&end=1"),
        ] {
            let res = call(bad.clone()).await;
            assert_eq!(res.status().as_u16(), 400, "{bad}");
        }
    }

    #[test]
    fn every_file_in_ui_dir_is_embedded_and_every_import_resolves() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        for n in &names {
            assert!(
                ASSETS.iter().any(|a| a.name == n),
                "ui/{n} is not in ASSETS"
            );
        }
        assert_eq!(names.len(), ASSETS.len());
        // Static references in index.html and relative imports between modules.
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).unwrap();
            let refs = text
                .split("/static/")
                .skip(1)
                .chain(text.split("from './").skip(1));
            for r in refs {
                let file: String = r
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '.' || *c == '_' || *c == '-')
                    .collect();
                if file.ends_with(".js") || file.ends_with(".css") || file.ends_with(".svg") {
                    assert!(
                        ASSETS.iter().any(|x| x.name == file),
                        "{} refers to missing {file}",
                        a.name
                    );
                }
            }
        }
    }
}
