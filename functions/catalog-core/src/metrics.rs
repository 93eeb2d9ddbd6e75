//! CloudWatch Embedded Metric Format (EMF): one structured JSON line per
//! invocation on stdout, which CloudWatch Logs turns into metrics without any
//! PutMetricData call on the hot path. docs/operations.md lists every metric.

use serde_json::{json, Map, Value};

/// EMF accepts at most 100 values per metric in one line.
const MAX_VALUES: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Metric {
    name: String,
    unit: Unit,
    values: Vec<f64>,
}

/// Where a function's metrics go: read once per container from `METRICS_NAMESPACE` and
/// `AWS_LAMBDA_FUNCTION_NAME` (the Lambda runtime sets it; `default_name` elsewhere).
#[derive(Clone, Debug)]
pub struct MetricsTarget {
    namespace: String,
    function_name: String,
}

impl MetricsTarget {
    pub fn from_env(default_name: &str) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            namespace: crate::config::parsed_or("METRICS_NAMESPACE", "LiveCatalogue".to_owned())?,
            function_name: crate::config::parsed_or(
                "AWS_LAMBDA_FUNCTION_NAME",
                default_name.to_owned(),
            )?,
        })
    }

    /// An empty set for one invocation.
    pub fn set(&self) -> MetricSet {
        MetricSet::new(&self.namespace, &self.function_name)
    }
}

/// The metrics of one invocation, in one namespace, with `FunctionName` as dimension.
#[derive(Clone, Debug)]
pub struct MetricSet {
    namespace: String,
    function_name: String,
    metrics: Vec<Metric>,
}

impl MetricSet {
    pub fn new(namespace: impl Into<String>, function_name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            function_name: function_name.into(),
            metrics: Vec::new(),
        }
    }

    pub fn count(&mut self, name: impl Into<String>, value: usize) -> &mut Self {
        self.metrics.push(Metric {
            name: name.into(),
            unit: Unit::Count,
            values: vec![value as f64],
        });
        self
    }

    pub fn gauge(&mut self, name: impl Into<String>, value: f64) -> &mut Self {
        self.metrics.push(Metric {
            name: name.into(),
            unit: Unit::None,
            values: vec![value],
        });
        self
    }

    /// Every sample is kept (up to EMF's 100), so CloudWatch can compute percentiles.
    pub fn milliseconds(&mut self, name: impl Into<String>, samples: &[f64]) -> &mut Self {
        if !samples.is_empty() {
            let values = samples.iter().take(MAX_VALUES).copied().collect();
            self.metrics.push(Metric {
                name: name.into(),
                unit: Unit::Milliseconds,
                values,
            });
        }
        self
    }

    pub fn to_emf(&self, timestamp_ms: i64) -> Value {
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()}))
            .collect();
        let mut root = Map::new();
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["FunctionName"]],
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert("FunctionName".to_owned(), json!(self.function_name));
        for m in &self.metrics {
            let value = if m.values.len() == 1 {
                json!(m.values[0])
            } else {
                json!(m.values)
            };
            root.insert(m.name.clone(), value);
        }
        Value::Object(root)
    }

    /// State (0 closed, 1 half-open, 2 open), openings and refusals of a breaker since the last line,
    /// as `BreakerState<Name>`, `BreakerOpenings<Name>` and `BreakerRejected<Name>`.
    pub fn breaker(&mut self, name: &str, breaker: &crate::breaker::CircuitBreaker) -> &mut Self {
        let report = breaker.report();
        self.gauge(
            format!("BreakerState{name}"),
            f64::from(report.state.as_gauge()),
        )
        .count(format!("BreakerOpenings{name}"), report.openings as usize)
        .count(format!("BreakerRejected{name}"), report.rejected as usize)
    }

    /// Writes the EMF line to stdout, where the Lambda runtime ships it to CloudWatch Logs.
    pub fn emit(&self) {
        println!("{}", self.to_emf(chrono::Utc::now().timestamp_millis()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_declares_every_metric_and_carries_its_values() {
        let mut set = MetricSet::new("LiveCatalogue", "consumer-fn");
        set.count("ChangesApplied", 3)
            .gauge("BreakerStateDynamoDb", 2.0)
            .milliseconds("EndToEndLagMs", &[12.5, 40.0]);
        set.milliseconds("Empty", &[]);
        let doc = set.to_emf(1_700_000_000_000);
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(cw["Namespace"], "LiveCatalogue");
        assert_eq!(cw["Dimensions"], json!([["FunctionName"]]));
        assert_eq!(
            cw["Metrics"],
            json!([
                {"Name": "ChangesApplied", "Unit": "Count"},
                {"Name": "BreakerStateDynamoDb", "Unit": "None"},
                {"Name": "EndToEndLagMs", "Unit": "Milliseconds"},
            ])
        );
        assert_eq!(doc["FunctionName"], "consumer-fn");
        assert_eq!(doc["ChangesApplied"], 3.0);
        assert_eq!(doc["EndToEndLagMs"], json!([12.5, 40.0]));
        assert!(
            doc.get("Empty").is_none(),
            "a metric without samples is left out"
        );
    }

    #[test]
    fn at_most_100_samples_per_line() {
        let samples: Vec<f64> = (0..250).map(f64::from).collect();
        let doc = MetricSet::new("n", "f")
            .milliseconds("Lag", &samples)
            .to_emf(0);
        assert_eq!(doc["Lag"].as_array().unwrap().len(), 100);
    }
}
