//! The catalogue REST API behind an API Gateway HTTP API. Handlers are plain async
//! functions over small store traits; `openapi()` is generated from them and their
//! types (utoipa), and `openapi.yaml` at the repository root is that output.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use catalog_core::auth::{bearer, TokenVerifier};
use catalog_core::aws::{
    photos, CatalogReader, PhotoBucket, PhotoJob, PhotoJobQueue, PhotoRecords,
};
use catalog_core::Product;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use tracing::info;
use utoipa::{IntoParams, OpenApi, ToSchema};

pub mod cursor;
pub mod errors;
pub mod photo;

use errors::{ApiError, ErrorBody};
use photo::{ImageKind, PresignCache};

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// The products table as the API sees it.
pub trait ProductRecords: CatalogReader + PhotoRecords {}
impl<T: CatalogReader + PhotoRecords> ProductRecords for T {}

pub struct RestApi {
    pub products: Box<dyn ProductRecords>,
    pub bucket: Box<dyn PhotoBucket>,
    pub jobs: Box<dyn PhotoJobQueue>,
    pub verifier: TokenVerifier,
    pub presigned: PresignCache,
    /// Largest accepted upload, in bytes (API Gateway and Lambda cap a request at 6 MB after base64).
    pub max_photo_bytes: usize,
}

/// Product ids, categories and cursor positions: short and plain.
pub fn valid_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhotoLinks {
    /// This API's photo URL for the original (redirects to S3).
    pub full: String,
    /// This API's photo URL for the thumbnail; null until the thumbnailer has made it.
    pub thumb: Option<String>,
}

/// A product with its current version and photo URLs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductView {
    #[schema(example = "p-001")]
    pub product_id: String,
    pub name: String,
    pub category: String,
    /// Price in the currency's minor unit.
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
    /// Version of the last applied change; clients drop pushes with a version they have.
    pub version: u64,
    pub updated_at: String,
    pub photo_version: u64,
    pub photos: PhotoLinks,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> Self {
        let link = |size: &str| format!("/products/{}/photo?size={size}", p.product_id);
        ProductView {
            photos: PhotoLinks {
                full: link("full"),
                thumb: p.thumb_key.as_ref().map(|_| link("thumb")),
            },
            product_id: p.product_id,
            name: p.name,
            category: p.category,
            price_cents: p.price_cents,
            currency: p.currency,
            stock: p.stock,
            version: p.version,
            updated_at: p.updated_at,
            photo_version: p.photo_version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductPage {
    pub items: Vec<ProductView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadAccepted {
    /// The thumbnail job; its `ProductPhotoChanged` event carries this id as `changeId`.
    pub job_id: String,
    pub product_id: String,
    pub photo_version: u64,
    pub photo_key: String,
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string; the handler reads it from the raw query
struct ListQuery {
    /// Page size, 1–100 (default 20).
    limit: Option<u32>,
    /// `nextCursor` from the previous page, unchanged.
    cursor: Option<String>,
    /// Only products of this category.
    category: Option<String>,
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct PhotoQuery {
    /// `full` (default) or `thumb`.
    size: Option<PhotoSize>,
}

#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum PhotoSize {
    Full,
    Thumb,
}

type Query = HashMap<String, String>;

fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(
            serde_json::to_string(value).expect("responses serialize"),
        ))
        .expect("a valid response")
}

/// Lists products in id order, a page at a time, optionally of one category (a GSI query, not a scan).
#[utoipa::path(
    get,
    path = "/products",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of products", body = ProductPage),
        (status = 400, description = "Bad limit, cursor or category", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable; try again", body = ErrorBody),
    ),
    tag = "catalogue"
)]
pub async fn list_products(api: &RestApi, query: &Query) -> Result<Response<Body>, ApiError> {
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad_limit",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}, got {raw:?}"),
                )
            })?,
    };
    let category = query.get("category").map(String::as_str);
    if let Some(c) = category {
        if !valid_id(c) {
            return Err(ApiError::bad_request(
                "bad_category",
                "category must be 1–64 letters, digits, '-' or '_'",
            ));
        }
    }
    let after = query
        .get("cursor")
        .map(|c| cursor::decode(c, category))
        .transpose()?;
    let page = api.products.page(category, limit, after.as_ref()).await?;
    Ok(json(
        200,
        &ProductPage {
            items: page.products.into_iter().map(ProductView::from).collect(),
            next_cursor: page.next.as_ref().map(cursor::encode),
        },
    ))
}

/// One product with its current version and photo URLs.
#[utoipa::path(
    get,
    path = "/products/{productId}",
    params(("productId" = String, Path, description = "e.g. p-001")),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable; try again", body = ErrorBody),
    ),
    tag = "catalogue"
)]
pub async fn get_product(api: &RestApi, product_id: &str) -> Result<Response<Body>, ApiError> {
    let product = find(api, product_id).await?;
    Ok(json(200, &ProductView::from(product)))
}

async fn find(api: &RestApi, product_id: &str) -> Result<Product, ApiError> {
    if !valid_id(product_id) {
        return Err(ApiError::product_not_found(product_id));
    }
    api.products
        .product(product_id)
        .await?
        .ok_or_else(|| ApiError::product_not_found(product_id))
}

/// Redirects to a short-lived presigned S3 URL of the photo. `ETag` names the photo
/// version, so `If-None-Match` is answered with 304 and no S3 work at all.
#[utoipa::path(
    get,
    path = "/products/{productId}/photo",
    params(("productId" = String, Path, description = "e.g. p-001"), PhotoQuery),
    responses(
        (status = 302, description = "Redirect to the photo in S3",
            headers(("Location" = String), ("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "The client's copy is current",
            headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 400, description = "Bad size", body = ErrorBody),
        (status = 404, description = "No such product, or no thumbnail yet", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable; try again", body = ErrorBody),
    ),
    tag = "photos"
)]
pub async fn get_photo(
    api: &RestApi,
    product_id: &str,
    query: &Query,
    if_none_match: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let thumb = match query.get("size").map(String::as_str) {
        None | Some("full") => false,
        Some("thumb") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_size",
                format!("size must be \"full\" or \"thumb\", got {other:?}"),
            ))
        }
    };
    let product = find(api, product_id).await?;
    let key = if thumb {
        product.thumb_key.ok_or_else(|| {
            ApiError::new(
                404,
                "photo_not_found",
                format!("{product_id} has no thumbnail yet"),
            )
        })?
    } else {
        product.photo_key
    };
    let etag = photo::etag(&key);
    let cache_control = format!("private, max-age={}", api.presigned.max_age_secs());
    if photo::none_match(if_none_match, &etag) {
        return Ok(Response::builder()
            .status(304)
            .header("etag", &etag)
            .header("cache-control", &cache_control)
            .body(Body::Empty)
            .expect("a valid response"));
    }
    let now = Instant::now();
    let (url, cache) = match api.presigned.lookup(&key, now) {
        Some(url) => (url, "hit"),
        None => {
            let url = api.bucket.presign_get(&key, api.presigned.ttl).await?;
            api.presigned.store(&key, url.clone(), now);
            (url, "miss")
        }
    };
    Ok(Response::builder()
        .status(302)
        .header("location", url)
        .header("etag", &etag)
        .header("cache-control", &cache_control)
        .header("x-presign-cache", cache)
        .body(Body::Empty)
        .expect("a valid response"))
}

/// Stores a new original photo (JPEG or PNG) and queues its thumbnail job.
#[utoipa::path(
    put,
    path = "/products/{productId}/photo",
    params(("productId" = String, Path, description = "e.g. p-001")),
    request_body(description = "The photo", content(
        (Vec<u8> = "image/jpeg"),
        (Vec<u8> = "image/png"),
    )),
    responses(
        (status = 202, description = "Stored; the thumbnail is on its way", body = UploadAccepted),
        (status = 400, description = "Empty body", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 413, description = "Larger than the limit", body = ErrorBody),
        (status = 415, description = "Not a JPEG or PNG", body = ErrorBody),
        (status = 503, description = "A downstream is unavailable; try again", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "photos"
)]
pub async fn put_photo(
    api: &RestApi,
    product_id: &str,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let claims = api
        .verifier
        .verify(bearer(header("authorization")))
        .map_err(|e| ApiError::new(401, "unauthorized", e.to_string()))?;
    let declared = header("content-type")
        .and_then(ImageKind::from_content_type)
        .ok_or_else(|| {
            ApiError::new(
                415,
                "unsupported_media_type",
                "Content-Type must be image/jpeg or image/png",
            )
        })?;
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > api.max_photo_bytes {
        return Err(ApiError::new(
            413,
            "photo_too_large",
            format!(
                "the photo is {} bytes; the limit is {}",
                bytes.len(),
                api.max_photo_bytes
            ),
        ));
    }
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "the request has no photo",
        ));
    }
    if ImageKind::sniff(bytes) != Some(declared) {
        return Err(ApiError::new(
            415,
            "not_an_image",
            format!("the body is not a {} image", declared.extension()),
        ));
    }
    // The version counter's condition is the existence check: no separate read.
    if !valid_id(product_id) {
        return Err(ApiError::product_not_found(product_id));
    }
    let version = api
        .products
        .next_photo_version(product_id)
        .await?
        .ok_or_else(|| ApiError::product_not_found(product_id))?;
    let key = photos::original_key(product_id, version, declared.extension());
    api.bucket
        .put(&key, bytes.to_vec(), declared.content_type())
        .await?;
    let job = PhotoJob::new(product_id, &key, version);
    api.jobs.enqueue(&job).await?;
    info!(product_id, version, key, job_id = %job.job_id, user = %claims.sub, bytes = bytes.len(), "photo stored; thumbnail queued");
    Ok(json(
        202,
        &UploadAccepted {
            job_id: job.job_id,
            product_id: product_id.to_owned(),
            photo_version: version,
            photo_key: key,
        },
    ))
}

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "HS256, issuer live-catalogue; `scripts/token` prints one for the local stack",
                        ))
                        .build(),
                ),
            );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Live catalogue API", version = "1.0.0",
        description = "Products and photos of the live catalogue. Live updates: the WebSocket API."),
    paths(list_products, get_product, get_photo, put_photo),
    modifiers(&BearerScheme),
    tags((name = "catalogue"), (name = "photos"))
)]
struct ApiDoc;

/// The OpenAPI 3.1 document, generated from the handlers above.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The request path below the stage (`/v1/products` arrives as `/products`).
fn api_path(request: &Request) -> String {
    let path = request.uri().path();
    if let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() {
        if let Some(stage) = context.stage.as_deref().filter(|s| *s != "$default") {
            if let Some(rest) = path.strip_prefix(&format!("/{stage}")) {
                if rest.is_empty() || rest.starts_with('/') {
                    return rest.to_owned();
                }
            }
        }
    }
    path.to_owned()
}

fn query_of(request: &Request) -> Query {
    form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

impl RestApi {
    pub async fn handle(&self, request: &Request) -> Response<Body> {
        let path = api_path(request);
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let query = query_of(request);
        let method = request.method().as_str();
        let result = match (method, segments.as_slice()) {
            ("GET", ["products"]) => list_products(self, &query).await,
            ("GET", ["products", id]) => get_product(self, id).await,
            ("GET", ["products", id, "photo"]) => {
                let if_none_match = request
                    .headers()
                    .get("if-none-match")
                    .and_then(|v| v.to_str().ok());
                get_photo(self, id, &query, if_none_match).await
            }
            ("PUT", ["products", id, "photo"]) => put_photo(self, id, request).await,
            ("GET", ["openapi.json"]) => Ok(json(200, &openapi())),
            (_, ["products"] | ["products", _] | ["products", _, "photo"]) => Err(ApiError::new(
                405,
                "method_not_allowed",
                format!("{method} is not allowed on {path}"),
            )),
            _ => Err(ApiError::new(
                404,
                "route_not_found",
                format!("no route {method} {path}"),
            )),
        };
        result.unwrap_or_else(|e| {
            if e.status >= 500 {
                tracing::error!(status = e.status, code = e.code, "request failed");
            }
            e.into_response()
        })
    }
}

/// How long presigned photo URLs live, and how early the cache replaces them.
pub fn presign_cache_from(ttl_secs: u64) -> PresignCache {
    let ttl = Duration::from_secs(ttl_secs.max(120));
    PresignCache::new(ttl, ttl / 5)
}

#[cfg(test)]
mod tests;
