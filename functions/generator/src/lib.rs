//! The event generator: each run changes the price and/or stock of a few random
//! products and publishes one `ProductChanged` per product.

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use catalog_core::generate::{pick_random, plan_change, Rng};
use catalog_core::ports::{ChangePublisher, DownstreamError, GeneratorStore};
use catalog_core::StockAndPrice;
use serde::Serialize;
use tracing::{info, warn};

/// One published change, as reported in the invocation's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub change_id: String,
    pub product_id: String,
    pub version: u64,
    pub previous: StockAndPrice,
    pub current: StockAndPrice,
    pub message_id: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub published: Vec<Published>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the catalogue is empty; seed it first (scripts/dev does)")]
    EmptyCatalogue,
    #[error("reading the catalogue failed: {0}")]
    Read(DownstreamError),
    /// SNS refused a change even after the SDK's retries. Nothing about that change
    /// was recorded; changes published before it were.
    #[error("publishing change {change_id} of {product_id} failed after retries ({published_before} published before it): {source}")]
    Publish {
        change_id: String,
        product_id: String,
        published_before: usize,
        source: DownstreamError,
    },
}

/// The id of the EventBridge scheduled event that started this run, for the
/// invocation's span; "manual" for a hand-made payload (e.g. `{}` from the CLI).
pub fn trigger_id(payload: &serde_json::Value) -> String {
    serde_json::from_value::<CloudWatchEvent>(payload.clone())
        .ok()
        .and_then(|event| event.id)
        .unwrap_or_else(|| "manual".to_owned())
}

pub async fn run_once<S: GeneratorStore, P: ChangePublisher>(
    store: &S,
    publisher: &P,
    rng: &mut Rng,
    products_per_run: usize,
) -> Result<RunReport, RunError> {
    let states = store.generator_states().await.map_err(RunError::Read)?;
    if states.is_empty() {
        return Err(RunError::EmptyCatalogue);
    }
    let mut report = RunReport::default();
    for state in pick_random(rng, &states, products_per_run) {
        let change = plan_change(
            rng,
            &state,
            uuid::Uuid::new_v4().to_string(),
            chrono::Utc::now(),
        );
        let message_id = publisher
            .publish(&change)
            .await
            .map_err(|source| RunError::Publish {
                change_id: change.change_id.clone(),
                product_id: change.product_id.clone(),
                published_before: report.published.len(),
                source,
            })?;
        // Only a published version is recorded, so a failed publish never burns a version.
        match store
            .record_published(&change.product_id, change.version)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                warn!(product_id = %change.product_id, version = change.version, "a newer version was already recorded; another generator run overlapped")
            }
            // The change is out; failing now would make the scheduler re-run and double it.
            Err(e) => {
                warn!(product_id = %change.product_id, version = change.version, error = %e, "published but not recorded; the next run re-reads versions from the table")
            }
        }
        info!(change_id = %change.change_id, product_id = %change.product_id, version = change.version,
              price_cents = change.current.price_cents, stock = change.current.stock, "published");
        report.published.push(Published {
            change_id: change.change_id,
            product_id: change.product_id,
            version: change.version,
            previous: change.previous,
            current: change.current,
            message_id,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use catalog_core::fakes::{product, MemoryProducts, RecordingPublisher};

    use super::*;

    fn catalogue(n: usize) -> MemoryProducts {
        MemoryProducts::with((0..n).map(|i| product(&format!("p-{i:03}"), 1000 + i as i64, 10)))
    }

    #[test]
    fn trigger_id_comes_from_a_real_scheduled_event() {
        let event: aws_lambda_events::event::cloudwatch_events::CloudWatchEvent =
            serde_json::from_str(&catalog_core::event_fixtures::load(
                "generator",
                "scheduled",
            ))
            .unwrap();
        let event = serde_json::to_value(event).unwrap();
        assert_eq!(trigger_id(&event), "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa");
        assert_eq!(trigger_id(&serde_json::json!({})), "manual");
    }

    #[tokio::test]
    async fn publishes_one_valid_change_per_picked_product_and_records_versions() {
        let store = catalogue(50);
        let publisher = RecordingPublisher::default();
        let report = run_once(&store, &publisher, &mut Rng::with_seed(1), 5)
            .await
            .unwrap();
        let published = publisher.published.lock().unwrap();
        assert_eq!((report.published.len(), published.len()), (5, 5));
        let distinct: std::collections::BTreeSet<_> =
            published.iter().map(|c| &c.product_id).collect();
        assert_eq!(distinct.len(), 5);
        for change in published.iter() {
            change.validate().unwrap();
            assert_eq!(change.version, 1);
            assert_eq!(store.published(&change.product_id), 1);
        }
    }

    #[tokio::test]
    async fn versions_keep_increasing_while_changes_are_in_flight() {
        let store = catalogue(1);
        let publisher = RecordingPublisher::default();
        for _ in 0..3 {
            run_once(&store, &publisher, &mut Rng::with_seed(2), 1)
                .await
                .unwrap();
        }
        let versions: Vec<u64> = publisher
            .published
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.version)
            .collect();
        assert_eq!(
            versions,
            [1, 2, 3],
            "nothing was applied yet, so versions come from the published record"
        );
    }

    #[tokio::test]
    async fn a_failed_publish_fails_the_run_and_records_nothing_for_that_change() {
        let store = catalogue(10);
        let publisher = RecordingPublisher {
            fail_after: Some(2),
            ..Default::default()
        };
        let err = run_once(&store, &publisher, &mut Rng::with_seed(3), 4)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RunError::Publish {
                    published_before: 2,
                    ..
                }
            ),
            "{err}"
        );
        let recorded = (0..10)
            .filter(|i| store.published(&format!("p-{i:03}")) > 0)
            .count();
        assert_eq!(recorded, 2);
    }

    #[tokio::test]
    async fn an_empty_catalogue_is_an_error() {
        let err = run_once(
            &catalogue(0),
            &RecordingPublisher::default(),
            &mut Rng::with_seed(4),
            3,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RunError::EmptyCatalogue));
    }
}
