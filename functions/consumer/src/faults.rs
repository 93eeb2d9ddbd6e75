//! Test-only failure injection for the fault suite. Without the `fault-injection`
//! feature (every build except `scripts/test`'s) this is an empty type whose
//! hook does nothing, so production code cannot reach it by accident.

#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct Faults {
    /// Crash the invocation after this many records of a batch that has more.
    #[cfg(feature = "fault-injection")]
    pub fail_after_records: Option<usize>,
    /// How many more times to do so in this process.
    #[cfg(feature = "fault-injection")]
    pub remaining: AtomicUsize,
}

impl Faults {
    /// `FAULT_FAIL_AFTER_RECORDS=N` and `FAULT_TIMES` (default 1), read only in fault-injection builds.
    pub fn from_env() -> Self {
        #[cfg(feature = "fault-injection")]
        {
            let fail_after_records = std::env::var("FAULT_FAIL_AFTER_RECORDS")
                .ok()
                .and_then(|v| v.parse().ok());
            let times = std::env::var("FAULT_TIMES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            if fail_after_records.is_some() {
                tracing::warn!(?fail_after_records, times, "FAULT INJECTION ACTIVE");
            }
            Faults {
                fail_after_records,
                remaining: AtomicUsize::new(times),
            }
        }
        #[cfg(not(feature = "fault-injection"))]
        Faults::default()
    }

    /// Called as each record of a batch finishes (`_completed` of `_batch_len` so far);
    /// crashes the invocation the way a timeout or an out-of-memory kill would, so the whole
    /// batch returns to the queue. Records still running at that moment are cut short.
    pub fn after_record(&self, _completed: usize, _batch_len: usize) {
        #[cfg(feature = "fault-injection")]
        if self.fail_after_records == Some(_completed)
            && _batch_len > _completed
            && self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            panic!("injected fault: invocation crashed after {_completed} of {_batch_len} records");
        }
    }
}

#[cfg(all(test, feature = "fault-injection"))]
mod tests {
    use super::*;

    #[test]
    fn crashes_once_after_n_records_of_a_longer_batch() {
        let faults = Faults {
            fail_after_records: Some(2),
            remaining: AtomicUsize::new(1),
        };
        faults.after_record(1, 2);
        faults.after_record(2, 2);
        faults.after_record(1, 5);
        let crash = std::panic::catch_unwind(|| faults.after_record(2, 5));
        assert!(
            crash.is_err(),
            "the second finished record of a five-record batch crashes"
        );
        faults.after_record(2, 5); // only once
    }
}
