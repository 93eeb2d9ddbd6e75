//! The catalogue REST API: an axum [`Router`] that `lambda_http` runs behind the API
//! Gateway HTTP API and the local server mounts in process. The handlers' extractor types
//! are the ones the OpenAPI document describes (utoipa-axum collects both from the same
//! functions), and `openapi.yaml` at the repository root is that output.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use catalog_core::auth::{bearer, TokenVerifier};
use catalog_core::aws::{clients, DynamoProducts, Guarded, S3Photos, SqsPhotoJobs};
use catalog_core::breaker::CircuitBreaker;
use catalog_core::ports::{
    photos, CatalogReader, PhotoBucket, PhotoJob, PhotoJobQueue, PhotoRecords,
};
use catalog_core::settings::RestApiSettings;
use catalog_core::Product;
use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod cursor;
pub mod errors;
pub mod extract;
pub mod photo;

pub use catalog_core::presign::{presign_cache_from, PresignCache};
use errors::{ApiError, ErrorBody};
use extract::{ApiPath, ApiQuery};
use photo::ImageKind;

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

/// Product ids, categories and cursor positions: short and plain (the spec's `^[A-Za-z0-9_-]{1,64}$`).
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

/// `GET /products`. Values arrive as text and are checked by [`ListQuery::read`], so each
/// bad one gets its own error code; the `param` attributes state the same rules in the spec.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `nextCursor` from the previous page, unchanged.
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Only products of this category.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub category: Option<String>,
}

/// A [`ListQuery`] once read.
struct Listing {
    limit: usize,
    category: Option<String>,
    after: Option<catalog_core::ports::PageKey>,
}

impl ListQuery {
    fn read(self) -> Result<Listing, ApiError> {
        let limit = match self.limit {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n) && !raw.starts_with('+'))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "bad_limit",
                        format!("limit must be a whole number from 1 to {MAX_LIMIT}, got {raw:?}"),
                    )
                })?,
        };
        if let Some(c) = &self.category {
            if !valid_id(c) {
                return Err(ApiError::bad_request(
                    "bad_category",
                    format!("category must be 1–64 letters, digits, '-' or '_', got {c:?}"),
                ));
            }
        }
        let after = self
            .cursor
            .map(|c| cursor::decode(&c, self.category.as_deref()))
            .transpose()?;
        Ok(Listing {
            limit,
            category: self.category,
            after,
        })
    }
}

/// `GET /products/{productId}/photo`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PhotoQuery {
    /// Which photo (default `full`).
    #[param(value_type = Option<PhotoSize>)]
    pub size: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum PhotoSize {
    Full,
    Thumb,
}

impl PhotoQuery {
    fn read(&self) -> Result<PhotoSize, ApiError> {
        match self.size.as_deref() {
            None | Some("full") => Ok(PhotoSize::Full),
            Some("thumb") => Ok(PhotoSize::Thumb),
            Some(other) => Err(ApiError::bad_request(
                "bad_size",
                format!("size must be \"full\" or \"thumb\", got {other:?}"),
            )),
        }
    }
}

type Api = State<Arc<RestApi>>;

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, Json(value)).into_response()
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
pub async fn list_products(
    State(api): Api,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let listing = query.read()?;
    let page = api
        .products
        .page(
            listing.category.as_deref(),
            listing.limit,
            listing.after.as_ref(),
        )
        .await?;
    Ok(json(
        StatusCode::OK,
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
pub async fn get_product(
    State(api): Api,
    ApiPath(product_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let product = find(&api, &product_id).await?;
    Ok(json(StatusCode::OK, &ProductView::from(product)))
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
    State(api): Api,
    ApiPath(product_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<PhotoQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let size = query.read()?;
    let product = find(&api, &product_id).await?;
    let key = match size {
        PhotoSize::Full => product.photo_key,
        PhotoSize::Thumb => product.thumb_key.ok_or_else(|| {
            ApiError::new(
                404,
                "photo_not_found",
                format!("{product_id} has no thumbnail yet"),
            )
        })?,
    };
    let etag = photo::etag(&key);
    let cache_control = format!("private, max-age={}", api.presigned.max_age_secs());
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if photo::none_match(if_none_match, &etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)],
        )
            .into_response());
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
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, url),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache_control),
            (PRESIGN_CACHE_HEADER, cache.to_owned()),
        ],
    )
        .into_response())
}

/// Tells the metrics whether a photo request reused a presigned URL (`hit` or `miss`).
pub const PRESIGN_CACHE_HEADER: header::HeaderName =
    header::HeaderName::from_static("x-presign-cache");

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
    State(api): Api,
    ApiPath(product_id): ApiPath<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let claims = api
        .verifier
        .verify(bearer(header(header::AUTHORIZATION)))
        .map_err(|e| ApiError::new(401, "unauthorized", e.to_string()))?;
    let declared = header(header::CONTENT_TYPE)
        .and_then(ImageKind::from_content_type)
        .ok_or_else(|| {
            ApiError::new(
                415,
                "unsupported_media_type",
                "Content-Type must be image/jpeg or image/png",
            )
        })?;
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
    if ImageKind::sniff(&bytes) != Some(declared) {
        return Err(ApiError::new(
            415,
            "not_an_image",
            format!("the body is not a {} image", declared.extension()),
        ));
    }
    // The version counter's condition is the existence check: no separate read.
    if !valid_id(&product_id) {
        return Err(ApiError::product_not_found(&product_id));
    }
    let version = api
        .products
        .next_photo_version(&product_id)
        .await?
        .ok_or_else(|| ApiError::product_not_found(&product_id))?;
    let key = photos::original_key(&product_id, version, declared.extension());
    api.bucket
        .put(&key, bytes.to_vec(), declared.content_type())
        .await?;
    let job = PhotoJob::new(&product_id, &key, version);
    api.jobs.enqueue(&job).await?;
    info!(product_id, version, key, job_id = %job.job_id, user = %claims.sub, bytes = bytes.len(), "photo stored; thumbnail queued");
    Ok(json(
        StatusCode::ACCEPTED,
        &UploadAccepted {
            job_id: job.job_id,
            product_id,
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
    components(schemas(PhotoSize)),
    modifiers(&BearerScheme),
    tags((name = "catalogue"), (name = "photos"))
)]
struct ApiDoc;

/// The documented routes: each handler and the spec of its parameters and answers.
fn documented_routes() -> OpenApiRouter<Arc<RestApi>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_products))
        .routes(routes!(get_product))
        .routes(routes!(get_photo, put_photo))
}

/// The OpenAPI 3.1 document, generated from the handlers above.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().split_for_parts().1
}

async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        404,
        "route_not_found",
        format!("no route {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        405,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

impl RestApi {
    /// The API over the deployed table, bucket and queue; also returns the table's breaker
    /// for the metrics. Open, the breaker answers 503 at once instead of letting every
    /// request wait out the retries.
    pub fn connect(
        sdk: &aws_config::SdkConfig,
        settings: RestApiSettings,
        verifier: TokenVerifier,
    ) -> (Self, Arc<CircuitBreaker>) {
        let breaker = Arc::new(CircuitBreaker::new("dynamodb", settings.breaker));
        let api = RestApi {
            products: Box::new(Guarded::new(
                DynamoProducts::new(aws_sdk_dynamodb::Client::new(sdk), settings.products_table),
                breaker.clone(),
            )),
            bucket: Box::new(S3Photos::new(
                clients::s3_client(sdk),
                settings.photos_bucket,
            )),
            jobs: Box::new(SqsPhotoJobs::new(
                aws_sdk_sqs::Client::new(sdk),
                settings.photo_jobs_queue_url,
            )),
            verifier,
            presigned: presign_cache_from(settings.photo_url_ttl_seconds),
            max_photo_bytes: settings.max_photo_bytes,
        };
        (api, breaker)
    }
}

/// The whole API, `GET /openapi.json` included.
pub fn router(api: Arc<RestApi>) -> Router {
    let (routes, spec) = documented_routes().split_for_parts();
    let spec = Json(spec);
    routes
        .route("/openapi.json", axum::routing::get(move || async { spec }))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Uploads are checked against `max_photo_bytes` by the handler, with its own error.
        .layer(DefaultBodyLimit::disable())
        .with_state(api)
}

/// The request with its path below the API's stage: an HTTP API with a named stage
/// delivers `/v1/products` as the raw path (lambda_http keeps it, whatever
/// `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` says), and the routes start at `/products`.
pub fn below_stage<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
        return request;
    };
    let Some(stage) = context.stage.as_deref().filter(|s| *s != "$default") else {
        return request;
    };
    let prefix = format!("/{stage}");
    let uri = request.uri();
    let Some(rest) = uri.path().strip_prefix(&prefix) else {
        return request;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return request;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("/{}?{query}", rest.trim_start_matches('/')),
        None => format!("/{}", rest.trim_start_matches('/')),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}

#[cfg(test)]
mod tests;
