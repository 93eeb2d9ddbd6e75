//! The change log: every event pushed to clients, kept for a retention window (TTL). The
//! SSE stream reads it, and a client that reconnects with `Last-Event-ID` resumes from it.
//!
//! No key is written by every change. The log is split into shards by product (a product's
//! events always land in the same shard, so their order is kept); each shard has its own
//! counter item and its own partition of entries. At 16 shards and 5,000 changes/s each
//! counter and each partition takes about 310 writes/s, well under DynamoDB's 1,000 per
//! partition. A reader's place in the log is a [`LogPosition`]: the last sequence number it
//! has of every shard. That is the SSE event id.

use std::fmt;

use async_trait::async_trait;

use super::DownstreamError;

/// How many shards the log has unless `CHANGE_LOG_SHARDS` says otherwise.
pub const DEFAULT_SHARDS: usize = 16;

/// The shard count every reader and writer of the log must agree on (`CHANGE_LOG_SHARDS`).
pub fn shards_from_env() -> Result<usize, crate::config::ConfigError> {
    shards_of(&crate::config::Env::Process)
}

pub fn shards_of(env: &crate::config::Env) -> Result<usize, crate::config::ConfigError> {
    env.parsed_or("CHANGE_LOG_SHARDS", DEFAULT_SHARDS)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub shard: usize,
    /// Increasing within its shard.
    pub seq: u64,
    /// `productChanged` or `productPhotoChanged`: the SSE `event:` name.
    pub event_type: String,
    pub product_id: String,
    /// The frame as clients receive it over the WebSocket (JSON).
    pub data: String,
    /// When it was logged, in epoch milliseconds.
    pub logged_at_ms: i64,
}

/// Where one entry sits in the log: its shard and its sequence number there. Pushed frames
/// carry it (`"log":{"shard":3,"seq":17}`), so a WebSocket client knows how far it has read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogMark {
    pub shard: usize,
    pub seq: u64,
}

/// The shard a product's events go to: FNV-1a of its id, stable across processes and releases.
pub fn shard_of(product_id: &str, shards: usize) -> usize {
    let hash = product_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % shards.max(1) as u64) as usize
}

/// A place in the log: the last sequence number read of each shard. Written as the numbers
/// joined by dots (`4.0.17.…`), which is the SSE event id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPosition(pub Vec<u64>);

impl LogPosition {
    /// Before the first entry of every shard.
    pub fn start(shards: usize) -> Self {
        Self(vec![0; shards])
    }

    /// Reads an event id of a log with `shards` shards.
    pub fn parse(text: &str, shards: usize) -> Result<Self, String> {
        let parts: Result<Vec<u64>, _> = text.trim().split('.').map(str::parse).collect();
        match parts {
            Ok(parts) if parts.len() == shards => Ok(Self(parts)),
            _ => Err(format!(
                "Last-Event-ID {text:?} is not an event id of this stream ({shards} dot-separated numbers)"
            )),
        }
    }

    /// Whether `next` is this position plus exactly one entry: one shard one further, the
    /// rest the same. Along an unfiltered stream every event's id is its predecessor's plus one.
    pub fn followed_by(&self, next: &LogPosition) -> bool {
        self.0.len() == next.0.len()
            && self
                .0
                .iter()
                .zip(&next.0)
                .map(|(a, b)| b.checked_sub(*a))
                .try_fold(0u64, |sum, step| step.map(|s| sum + s))
                == Some(1)
    }

    /// Whether `next` is at or after this position in every shard and further in one.
    pub fn precedes(&self, next: &LogPosition) -> bool {
        self.0.len() == next.0.len()
            && self.0.iter().zip(&next.0).all(|(a, b)| a <= b)
            && self != next
    }
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seq) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{seq}")?;
        }
        Ok(())
    }
}

#[async_trait]
pub trait ChangeLog: Send + Sync {
    /// How many shards the log is split into.
    fn shards(&self) -> usize;
    /// Takes the next sequence number of the product's shard (its counter, read strongly
    /// by [`ChangeLog::head`]). The entry itself is written by [`ChangeLog::write`]; until
    /// then readers see a hole.
    async fn reserve(&self, product_id: &str) -> Result<LogMark, DownstreamError>;
    /// Writes the entry a [`ChangeLog::reserve`] numbered.
    async fn write(
        &self,
        mark: LogMark,
        event_type: &str,
        product_id: &str,
        data: &str,
    ) -> Result<(), DownstreamError>;
    /// Numbers and writes an entry.
    async fn append(
        &self,
        event_type: &str,
        product_id: &str,
        data: &str,
    ) -> Result<LogMark, DownstreamError> {
        let mark = self.reserve(product_id).await?;
        self.write(mark, event_type, product_id, data).await?;
        Ok(mark)
    }
    /// A shard's entries with a sequence number above `after` and at most `through` (the
    /// shard's head as [`ChangeLog::head`] read it), in order, at most `limit`.
    async fn read_after(
        &self,
        shard: usize,
        after: u64,
        through: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, DownstreamError>;
    /// The last sequence number handed out in each shard.
    async fn head(&self) -> Result<LogPosition, DownstreamError>;
}

/// The in-memory stand-in the functions' unit tests use.
#[cfg(any(test, feature = "fakes"))]
pub mod fake {

    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::ports::DownstreamError;

    /// The change log in memory, sharded like the table (`shards` 0 means the default).
    #[derive(Default)]
    pub struct MemoryChangeLog {
        pub shards: usize,
        pub entries: Mutex<Vec<LogEntry>>,
        /// The last sequence number handed out per shard.
        pub counters: Mutex<std::collections::BTreeMap<usize, u64>>,
    }

    impl MemoryChangeLog {
        pub fn with_shards(shards: usize) -> Self {
            Self {
                shards,
                ..Self::default()
            }
        }
    }

    #[async_trait]
    impl ChangeLog for MemoryChangeLog {
        fn shards(&self) -> usize {
            if self.shards == 0 {
                super::DEFAULT_SHARDS
            } else {
                self.shards
            }
        }

        async fn reserve(&self, product_id: &str) -> Result<LogMark, DownstreamError> {
            let shard = super::shard_of(product_id, self.shards());
            let mut counters = self.counters.lock().unwrap();
            let counter = counters.entry(shard).or_default();
            *counter += 1;
            Ok(LogMark {
                shard,
                seq: *counter,
            })
        }

        async fn write(
            &self,
            mark: LogMark,
            event_type: &str,
            product_id: &str,
            data: &str,
        ) -> Result<(), DownstreamError> {
            self.entries.lock().unwrap().push(LogEntry {
                shard: mark.shard,
                seq: mark.seq,
                event_type: event_type.to_owned(),
                product_id: product_id.to_owned(),
                data: data.to_owned(),
                logged_at_ms: chrono::Utc::now().timestamp_millis(),
            });
            Ok(())
        }

        async fn read_after(
            &self,
            shard: usize,
            after: u64,
            through: u64,
            limit: usize,
        ) -> Result<Vec<LogEntry>, DownstreamError> {
            let mut found: Vec<LogEntry> = self
                .entries
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e.shard == shard && e.seq > after && e.seq <= through)
                .cloned()
                .collect();
            found.sort_by_key(|e| e.seq);
            found.truncate(limit);
            Ok(found)
        }

        async fn head(&self) -> Result<LogPosition, DownstreamError> {
            let mut position = LogPosition::start(self.shards());
            for (shard, seq) in self.counters.lock().unwrap().iter() {
                position.0[*shard] = *seq;
            }
            Ok(position)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_reads_back_what_it_writes_and_refuses_other_shapes() {
        let p = LogPosition(vec![4, 0, 17]);
        assert_eq!(p.to_string(), "4.0.17");
        assert_eq!(LogPosition::parse("4.0.17", 3), Ok(p));
        for bad in ["", "4.0", "4.0.17.1", "a.b.c", "yesterday", "-1.0.0"] {
            assert!(LogPosition::parse(bad, 3).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn followed_by_means_exactly_one_more_entry() {
        let p = LogPosition(vec![4, 0, 17]);
        assert!(p.followed_by(&LogPosition(vec![4, 1, 17])));
        assert!(
            !p.followed_by(&LogPosition(vec![4, 2, 17])),
            "a skipped entry"
        );
        assert!(!p.followed_by(&LogPosition(vec![5, 1, 17])), "two entries");
        assert!(!p.followed_by(&p), "the same entry twice");
        assert!(!p.followed_by(&LogPosition(vec![3, 1, 18])), "going back");
        assert!(p.precedes(&LogPosition(vec![5, 1, 17])));
        assert!(!p.precedes(&LogPosition(vec![3, 9, 99])));
    }

    #[test]
    fn products_spread_over_the_shards_and_keep_theirs() {
        let mut per_shard = [0usize; 16];
        for i in 0..1000 {
            per_shard[shard_of(&format!("p-{i:03}"), 16)] += 1;
        }
        assert!(
            per_shard.iter().all(|&c| (30..=95).contains(&c)),
            "{per_shard:?}"
        );
        assert_eq!(shard_of("p-001", 16), shard_of("p-001", 16));
        assert_eq!(shard_of("anything", 1), 0);
    }
}
