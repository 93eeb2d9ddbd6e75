//! How long each injected fault held changes back: from the fault's end until every change
//! it held reached the clients that got it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use e2e::percentile;
use serde_json::{json, Value};

/// One injected fault, from when it began to when it was over.
pub struct FaultWindow {
    pub kind: &'static str,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    pub what: String,
}

/// Changes published from shortly before a fault began until it ended count as held by it.
const HELD_FROM_BEFORE: chrono::Duration = chrono::Duration::seconds(2);

/// Per fault kind, over the changes each fault held that reached a client after it ended:
/// the time from the fault's end to the change's last first-receipt (its slowest client),
/// as p50, p99 and max in milliseconds.
///
/// `published`: each change id with when its publish returned; `last_receipt`: each change
/// id with the latest time a session first received it.
pub fn by_kind(
    faults: &[FaultWindow],
    published: &[(&str, DateTime<Utc>)],
    last_receipt: &BTreeMap<&str, DateTime<Utc>>,
) -> Value {
    let mut per_kind: BTreeMap<&str, (usize, Vec<f64>)> = BTreeMap::new();
    for fault in faults {
        let entry = per_kind.entry(fault.kind).or_default();
        entry.0 += 1;
        for (change_id, returned) in published {
            if *returned < fault.started - HELD_FROM_BEFORE || *returned > fault.ended {
                continue;
            }
            if let Some(received) = last_receipt.get(change_id).filter(|r| **r > fault.ended) {
                let ms = (*received - fault.ended).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                entry.1.push(ms);
            }
        }
    }
    let kinds: serde_json::Map<String, Value> = per_kind
        .into_iter()
        .map(|(kind, (faults, mut ms))| {
            ms.sort_by(f64::total_cmp);
            let figures = json!({
                "faults": faults,
                "changes_held": ms.len(),
                "p50_ms": (!ms.is_empty()).then(|| percentile(&ms, 50.0)),
                "p99_ms": (!ms.is_empty()).then(|| percentile(&ms, 99.0)),
                "max_ms": ms.last(),
            });
            (kind.to_owned(), figures)
        })
        .collect();
    Value::Object(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_change_held_by_a_fault_counts_from_the_faults_end_to_its_last_receipt() {
        let faults = [FaultWindow {
            kind: "outage",
            started: at(100),
            ended: at(120),
            what: "502 for 20 s".into(),
        }];
        let published = [
            ("before", at(90)),
            ("during", at(110)),
            ("quick", at(119)),
            ("after", at(130)),
        ];
        let receipts = BTreeMap::from([
            ("before", at(91)),
            ("during", at(123)),
            ("quick", at(119)),
            ("after", at(131)),
        ]);
        let figures = by_kind(&faults, &published, &receipts);
        assert_eq!(figures["outage"]["faults"], 1);
        assert_eq!(figures["outage"]["changes_held"], 1, "{figures}");
        assert_eq!(figures["outage"]["max_ms"], 3000.0);
    }
}
