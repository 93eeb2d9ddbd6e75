//! The photo-jobs log: who processes each job and whether it is done (one worker per job).

use async_trait::async_trait;

use super::DownstreamError;

/// What a worker may do with a job it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// It holds the job's lease now: process it.
    Acquired,
    /// The job was finished before (a redelivery, or a duplicate enqueue of the same job).
    AlreadyDone,
    /// Another worker holds a live lease: leave the message for later.
    Busy,
}

/// The photo-jobs log: who processes each job, and whether it is done. It is what makes
/// the point-to-point queue "one worker per job" although SQS delivers at least once.
#[async_trait]
pub trait JobLog: Send + Sync {
    async fn claim(
        &self,
        job_id: &str,
        worker: &str,
        lease_secs: i64,
    ) -> Result<Claim, DownstreamError>;
    /// Marks the job finished; `runs` counts completions, so a second one would show.
    async fn complete(
        &self,
        job_id: &str,
        worker: &str,
        outcome: &str,
    ) -> Result<(), DownstreamError>;
}

/// The in-memory stand-in the functions' unit tests use.
#[cfg(any(test, feature = "fakes"))]
pub mod fake {
    use std::sync::Arc;

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::ports::DownstreamError;

    /// A job's record: (status, worker, completed runs).
    pub type JobRecord = (String, String, u32);

    /// Job records by job id. Leases never expire here.
    #[derive(Clone, Default)]
    pub struct MemoryJobLog {
        pub jobs: Arc<Mutex<BTreeMap<String, JobRecord>>>,
    }

    #[async_trait]
    impl JobLog for MemoryJobLog {
        async fn claim(
            &self,
            job_id: &str,
            worker: &str,
            _lease_secs: i64,
        ) -> Result<Claim, DownstreamError> {
            let mut jobs = self.jobs.lock().unwrap();
            match jobs.get(job_id) {
                Some((status, _, _)) if status == "done" => Ok(Claim::AlreadyDone),
                Some(_) => Ok(Claim::Busy),
                None => {
                    jobs.insert(job_id.to_owned(), ("running".into(), worker.to_owned(), 0));
                    Ok(Claim::Acquired)
                }
            }
        }

        async fn complete(
            &self,
            job_id: &str,
            _worker: &str,
            _outcome: &str,
        ) -> Result<(), DownstreamError> {
            let mut jobs = self.jobs.lock().unwrap();
            let job = jobs.get_mut(job_id).expect("completed after a claim");
            job.0 = "done".into();
            job.2 += 1;
            Ok(())
        }
    }
}
