use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use super::item::{conditional, get_opt_s, n, s};
use crate::ports::jobs::*;
use crate::ports::DownstreamError;

#[derive(Clone)]
pub struct DynamoJobLog {
    client: Client,
    table: String,
    /// How long job records are kept (TTL on `expiresAt`).
    retention_secs: i64,
}

impl DynamoJobLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention_secs: 7 * 24 * 3600,
        }
    }
}

#[async_trait]
impl JobLog for DynamoJobLog {
    async fn claim(
        &self,
        job_id: &str,
        worker: &str,
        lease_secs: i64,
    ) -> Result<Claim, DownstreamError> {
        let now = chrono::Utc::now().timestamp();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("jobId", s(job_id))
            .update_expression(
                "SET #status = :running, worker = :worker, leaseUntil = :until, expiresAt = :expires \
                 ADD attempts :one",
            )
            .condition_expression(
                "attribute_not_exists(jobId) OR (#status <> :done AND leaseUntil < :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s("running"))
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":worker", s(worker))
            .expression_attribute_values(":until", n(now + lease_secs))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":expires", n(now + self.retention_secs))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        if conditional(result, "UpdateItem job claim")?.is_some() {
            return Ok(Claim::Acquired);
        }
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("jobId", s(job_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DownstreamError::aws("GetItem job", e))?
            .item
            .unwrap_or_default();
        Ok(match get_opt_s(&item, "status").as_deref() {
            Some("done") => Claim::AlreadyDone,
            _ => Claim::Busy,
        })
    }

    async fn complete(
        &self,
        job_id: &str,
        worker: &str,
        outcome: &str,
    ) -> Result<(), DownstreamError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("jobId", s(job_id))
            .update_expression(
                "SET #status = :done, outcome = :outcome, completedBy = :worker, completedAt = :at ADD runs :one",
            )
            .condition_expression("worker = :worker")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":outcome", s(outcome))
            .expression_attribute_values(":worker", s(worker))
            .expression_attribute_values(":at", s(chrono::Utc::now().to_rfc3339()))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|e| DownstreamError::aws("UpdateItem job complete", e))?;
        Ok(())
    }
}
