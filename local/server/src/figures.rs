//! The local metrics page's figures: the same metrics the CloudWatch dashboard draws, worked
//! out from the functions' EMF log lines and the queues. Pure: lines in, figures out.

use serde::Serialize;
use serde_json::Value;

/// The source design's targets, shown beside each figure.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Targets {
    pub latency_ms: f64,
    pub throughput_per_second: f64,
    pub loss_percent: f64,
}

pub const TARGETS: Targets = Targets {
    latency_ms: 500.0,
    throughput_per_second: 5000.0,
    loss_percent: 0.01,
};

/// One EMF line of one function: its metric values by name (a metric may carry many samples).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EmfLine {
    pub timestamp_ms: i64,
    pub values: Vec<(String, Vec<f64>)>,
}

impl EmfLine {
    /// Reads a log message; `None` unless it is an EMF line.
    pub fn parse(message: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(message.trim()).ok()?;
        let aws = value.get("_aws")?;
        let timestamp_ms = aws.get("Timestamp")?.as_i64()?;
        let names = aws["CloudWatchMetrics"][0]["Metrics"].as_array()?;
        let values = names
            .iter()
            .filter_map(|m| m["Name"].as_str())
            .map(|name| {
                let samples = match &value[name] {
                    Value::Array(items) => items.iter().filter_map(Value::as_f64).collect(),
                    other => other.as_f64().into_iter().collect(),
                };
                (name.to_owned(), samples)
            })
            .collect();
        Some(Self {
            timestamp_ms,
            values,
        })
    }

    fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = f64> + 'a {
        self.values
            .iter()
            .filter(move |(n, _)| n == name)
            .flat_map(|(_, v)| v.iter().copied())
    }
}

/// Change → client latency over the window; `None` without traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Percentages of what was attempted; `None` when nothing was.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ErrorRates {
    /// Changes that failed or were malformed, of those processed.
    pub changes: Option<f64>,
    /// REST requests answered 5xx.
    pub rest: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Pushes {
    pub sent: f64,
    pub gone: f64,
    pub failed: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub window_seconds: f64,
    pub targets: Targets,
    pub latency: Percentiles,
    pub changes_applied: f64,
    pub throughput_per_second: f64,
    pub error_percent: ErrorRates,
    pub pushes: Pushes,
    /// The latest state of each breaker (0 closed, 1 half-open, 2 open), as `function → downstream`.
    pub breakers: Vec<(String, f64)>,
}

/// Each breaker's latest state in one function's lines, named `function → downstream`.
fn latest_breakers(function: &str, lines: &[EmfLine]) -> Vec<(String, f64)> {
    let mut by_time: Vec<&EmfLine> = lines.iter().collect();
    by_time.sort_by_key(|l| l.timestamp_ms);
    let mut breakers: Vec<(String, f64)> = Vec::new();
    for line in by_time {
        for (name, values) in &line.values {
            let (Some(downstream), Some(&state)) =
                (name.strip_prefix("BreakerState"), values.last())
            else {
                continue;
            };
            let name = format!("{function} → {downstream}");
            match breakers.iter_mut().find(|(n, _)| *n == name) {
                Some(entry) => entry.1 = state,
                None => breakers.push((name, state)),
            }
        }
    }
    breakers
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| 100.0 * part / whole)
}

impl Figures {
    /// From the consumer's and the REST API's EMF lines of the last `window_seconds`.
    pub fn from_lines(consumer: &[EmfLine], rest: &[EmfLine], window_seconds: f64) -> Self {
        let sum = |lines: &[EmfLine], name: &str| -> f64 {
            lines
                .iter()
                .flat_map(|l| l.samples(name).collect::<Vec<_>>())
                .sum()
        };
        let mut lag: Vec<f64> = consumer
            .iter()
            .flat_map(|l| l.samples("EndToEndLagMs").collect::<Vec<_>>())
            .collect();
        lag.sort_by(f64::total_cmp);
        let applied = sum(consumer, "ChangesApplied");
        let mut breakers = latest_breakers("consumer", consumer);
        breakers.extend(latest_breakers("REST API", rest));
        Figures {
            window_seconds,
            targets: TARGETS,
            latency: Percentiles {
                p50_ms: percentile(&lag, 50.0),
                p99_ms: percentile(&lag, 99.0),
            },
            changes_applied: applied,
            throughput_per_second: applied / window_seconds.max(1.0),
            error_percent: ErrorRates {
                changes: percent(
                    sum(consumer, "ChangesFailed") + sum(consumer, "ChangesMalformed"),
                    sum(consumer, "ChangesProcessed"),
                ),
                rest: percent(sum(rest, "ServerErrors"), sum(rest, "Requests")),
            },
            pushes: Pushes {
                sent: sum(consumer, "PushesSent"),
                gone: sum(consumer, "PushesGone"),
                failed: sum(consumer, "PushesFailed"),
            },
            breakers,
        }
    }
}

#[cfg(test)]
mod tests {
    use catalog_core::metrics::MetricSet;

    use super::*;

    /// A line as the consumer writes it, through the real emitter.
    fn consumer_line(at: i64, applied: usize, failed: usize, lag: &[f64], breaker: f64) -> String {
        let mut set = MetricSet::new("LiveCatalogue", "consumer");
        set.count("ChangesProcessed", applied + failed)
            .count("ChangesApplied", applied)
            .count("ChangesFailed", failed)
            .count("ChangesMalformed", 0)
            .count("PushesSent", applied * 10)
            .milliseconds("EndToEndLagMs", lag)
            .gauge("BreakerStateManagementApi", breaker);
        set.to_emf(at).to_string()
    }

    #[test]
    fn figures_from_the_functions_emf_lines() {
        let consumer: Vec<EmfLine> = [
            consumer_line(1_000, 10, 0, &[100.0; 10], 0.0),
            consumer_line(2_000, 9, 1, &[300.0; 9], 2.0),
            "a plain log line".to_owned(),
        ]
        .iter()
        .filter_map(|m| EmfLine::parse(m))
        .collect();
        assert_eq!(consumer.len(), 2, "only EMF lines are read");
        let mut rest = MetricSet::new("LiveCatalogue", "rest-api");
        rest.count("Requests", 50).count("ServerErrors", 1);
        let rest = [EmfLine::parse(&rest.to_emf(1_500).to_string()).unwrap()];

        let figures = Figures::from_lines(&consumer, &rest, 60.0);
        assert_eq!(figures.latency.p50_ms, Some(100.0));
        assert_eq!(figures.latency.p99_ms, Some(300.0));
        assert_eq!(figures.changes_applied, 19.0);
        assert!((figures.throughput_per_second - 19.0 / 60.0).abs() < 1e-9);
        assert_eq!(figures.error_percent.changes, Some(5.0));
        assert_eq!(figures.error_percent.rest, Some(2.0));
        assert_eq!(figures.pushes.sent, 190.0);
        assert_eq!(
            figures.breakers,
            [("consumer → ManagementApi".to_owned(), 2.0)],
            "the latest state"
        );
    }

    #[test]
    fn no_traffic_is_no_figure_rather_than_zero() {
        let figures = Figures::from_lines(&[], &[], 60.0);
        assert_eq!(figures.latency.p99_ms, None);
        assert_eq!(figures.error_percent.changes, None);
        assert_eq!(figures.throughput_per_second, 0.0);
    }
}
