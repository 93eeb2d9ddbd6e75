//! Where the metrics page's figures come from locally: the functions' log groups (their EMF
//! lines, as CloudWatch would ingest them) and the queues' attributes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use catalog_core::config::{self, ConfigError};
use serde_json::{json, Value};

use crate::figures::{EmfLine, Figures};

/// The figures cover the last minute, as the dashboard's 60 s period does.
const WINDOW: Duration = Duration::from_secs(60);

pub struct MetricsSource {
    logs: aws_sdk_cloudwatchlogs::Client,
    sqs: aws_sdk_sqs::Client,
    consumer_log_group: String,
    rest_log_group: String,
    queues: [(&'static str, String); 3],
    depth_alarm: u64,
}

impl MetricsSource {
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let log_group = |name| config::required(name).map(|f| format!("/aws/lambda/{f}"));
        Ok(Self {
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            consumer_log_group: log_group("CONSUMER_FUNCTION_NAME")?,
            rest_log_group: log_group("REST_API_FUNCTION_NAME")?,
            queues: [
                ("changes", config::required("CHANGES_QUEUE_URL")?),
                (
                    "changesDeadLetters",
                    config::required("CHANGES_DEAD_LETTER_QUEUE_URL")?,
                ),
                (
                    "photoJobsDeadLetters",
                    config::required("PHOTO_JOBS_DEAD_LETTER_QUEUE_URL")?,
                ),
            ],
            depth_alarm: config::parsed_or("QUEUE_DEPTH_ALARM_THRESHOLD", 1000)?,
        })
    }

    /// Every EMF line a log group received in the window (a group not created yet has none).
    async fn emf_lines(&self, group: &str, since_ms: i64) -> Result<Vec<EmfLine>, String> {
        let mut lines = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .logs
                .filter_log_events()
                .log_group_name(group)
                .start_time(since_ms)
                .set_next_token(token)
                .send()
                .await;
            let page = match page {
                Ok(page) => page,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    return Ok(lines)
                }
                Err(e) => return Err(format!("{group}: {e}")),
            };
            lines.extend(
                page.events()
                    .iter()
                    .filter_map(|event| EmfLine::parse(event.message()?)),
            );
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(lines);
            }
        }
    }

    async fn depth(&self, url: &str) -> Result<u64, String> {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(attributes
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    async fn read(&self) -> Result<Value, String> {
        let since = chrono::Utc::now().timestamp_millis() - WINDOW.as_millis() as i64;
        let (consumer, rest) = futures::try_join!(
            self.emf_lines(&self.consumer_log_group, since),
            self.emf_lines(&self.rest_log_group, since)
        )?;
        let figures = Figures::from_lines(&consumer, &rest, WINDOW.as_secs_f64());
        let mut queues = serde_json::Map::new();
        for (name, url) in &self.queues {
            queues.insert((*name).to_owned(), json!(self.depth(url).await?));
        }
        Ok(json!({
            "figures": figures,
            "queues": queues,
            "queueDepthAlarm": self.depth_alarm,
            "readAt": chrono::Utc::now().to_rfc3339(),
        }))
    }
}

pub async fn metrics_json(
    State(source): State<Arc<MetricsSource>>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    source.read().await.map(Json).map_err(|message| {
        (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": {"code": "metrics_unavailable", "message": message}})),
        )
    })
}
