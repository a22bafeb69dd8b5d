//! `GET /api/v1/jobs`: the jobs a caller may see, filtered by the query, as one JSON array
//! (all of them, or with `last=N` the newest N), and how many matched in the
//! [`TOTAL_COUNT_HEADER`]. Only the jobs in the answer are serialized: the rest are counted.
//!
//! The array is serialized straight from the hub's records into the response body, a batch of
//! jobs per hold of the state lock, off the async runtime; it never copies every record first,
//! and never holds the lock for the whole list. The body is sent whole, with its length.
//! Each record is written by `list_json`, which writes what serde would, faster.
//! A job that changes between two batches is listed as it was when its batch was written, so
//! the list is a picture of each job, not one instant of the whole hub.

use super::auth::Principal;
use super::respond::{self, HubResponse};
use super::routes::query;
use super::state::Hub;
use super::Ctx;
use crate::wire::{has_label, JobId, JobRecord, JobState, TOTAL_COUNT_HEADER};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;

/// Jobs serialized per hold of the state lock: short enough that slaves and other requests
/// wait for at most a fraction of a millisecond, long enough that relocking costs nothing.
const BATCH: usize = 512;

/// Which jobs a list request wants; every filter given must match.
#[derive(Debug, Default)]
struct Filter {
    state: Option<JobState>,
    labels: Vec<String>,
    name: Option<String>,
    group: Option<String>,
    slave: Option<String>,
    owner: Option<String>,
}

impl Filter {
    /// The filters of a query string (`state`, `label` (comma-separated, all must match),
    /// `name`, `group`, `slave`, `owner`); an unknown state is an error, and so is a parameter
    /// that is none of these (`last` taken out before): ignored, a misspelt filter, or
    /// `limit=5` for `last=5`, would answer every job as if it had been applied.
    fn from_query(mut q: HashMap<String, String>) -> Result<Filter, String> {
        let state = match q.remove("state") {
            Some(s) => Some(JobState::parse(&s).ok_or_else(|| {
                format!("unknown state {s:?}: a state is {}", JobState::one_of())
            })?),
            None => None,
        };
        let labels = q
            .remove("label")
            .map(|l| {
                l.split(',')
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let filter = Filter {
            state,
            labels,
            name: q.remove("name"),
            group: q.remove("group"),
            slave: q.remove("slave"),
            owner: q.remove("owner"),
        };
        // The first in order, so that the answer does not depend on the map's.
        if let Some(key) = q.keys().min() {
            let hint = match key.as_str() {
                "limit" => " (for only the newest N jobs: last=N)",
                "labels" => " (label=A,B requires both)",
                _ => "",
            };
            return Err(format!(
                "unknown query parameter {key:?}{hint}: GET /api/v1/jobs takes state, label, \
                 name, group, owner, slave and last"
            ));
        }
        Ok(filter)
    }

    fn keep(&self, who: &Principal, j: &JobRecord) -> bool {
        fn eq(want: &Option<String>, have: &Option<String>) -> bool {
            want.is_none() || want == have
        }
        who.can_see(j)
            && self.state.is_none_or(|s| j.state == s)
            && self.labels.iter().all(|l| has_label(&j.spec.labels, l))
            && eq(&self.name, &j.spec.name)
            && eq(&self.group, &j.group)
            && eq(&self.slave, &j.slave)
            && eq(&self.owner, &j.owner)
    }
}

/// Answers `GET /api/v1/jobs`.
pub async fn jobs(ctx: &Ctx, req: &Request<Incoming>, who: &Arc<Principal>) -> HubResponse {
    let mut q = query(req);
    // `last=N`: only the N newest of the jobs that match (the web interface's list).
    let last = match q.remove("last").map(|v| v.parse::<usize>()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return respond::error(StatusCode::BAD_REQUEST, "last= takes a number of jobs")
        }
    };
    let filter = match Filter::from_query(q) {
        Ok(f) => f,
        Err(e) => return respond::error(StatusCode::BAD_REQUEST, e),
    };
    let (hub, who) = (ctx.hub.clone(), who.clone());
    let keep = move |j: &JobRecord| filter.keep(&who, j);
    // Serializing 100,000 jobs takes a good part of a second: not on the runtime.
    let list = move || match last {
        Some(n) => hub.list_json_last(keep, n),
        None => hub.list_json(keep),
    };
    match tokio::task::spawn_blocking(list).await {
        Ok((body, total)) => {
            let mut resp = respond::json_body(StatusCode::OK, body);
            resp.headers_mut()
                .insert(TOTAL_COUNT_HEADER, hyper::header::HeaderValue::from(total));
            resp
        }
        Err(e) => respond::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("listing jobs: {e}"),
        ),
    }
}

impl Hub {
    /// The jobs `keep` accepts, in id order, as a JSON array, [`BATCH`] jobs per lock hold;
    /// and how many they are.
    fn list_json(&self, keep: impl Fn(&JobRecord) -> bool) -> (Vec<u8>, usize) {
        let mut out = vec![b'['];
        let mut from: JobId = 0;
        let mut done = 0usize;
        let mut total = 0usize;
        loop {
            let st = self.lock();
            let mut batch = st.jobs.range(from..).take(BATCH + 1);
            for (_, job) in batch.by_ref().take(BATCH) {
                if keep(&job.rec) {
                    if total > 0 {
                        out.push(b',');
                    }
                    total += 1;
                    super::list_json::write_record(&mut out, &job.rec);
                }
            }
            done += BATCH;
            let Some((&next, _)) = batch.next() else {
                break;
            };
            if done == BATCH {
                // After the first batch the size of the rest is a fair guess: grow once.
                let left = st.jobs.len().saturating_sub(done);
                out.reserve(out.len() / BATCH * left);
            }
            from = next;
        }
        out.push(b']');
        (out, total)
    }

    /// The newest `n` jobs `keep` accepts, in id order, as a JSON array: read from the newest
    /// back, [`BATCH`] jobs per lock hold; and how many it accepts in all. Past the newest `n`
    /// jobs are only counted, which costs a filter check each, not a record's JSON.
    fn list_json_last(&self, keep: impl Fn(&JobRecord) -> bool, n: usize) -> (Vec<u8>, usize) {
        let mut picked: Vec<Vec<u8>> = Vec::new();
        let mut total = 0usize;
        let mut below = JobId::MAX;
        loop {
            let st = self.lock();
            let mut seen = 0;
            for (&id, job) in st.jobs.range(..below).rev().take(BATCH) {
                below = id;
                seen += 1;
                if keep(&job.rec) {
                    total += 1;
                    if picked.len() < n {
                        let mut one = Vec::new();
                        super::list_json::write_record(&mut one, &job.rec);
                        picked.push(one);
                    }
                }
            }
            if seen < BATCH {
                break;
            }
        }
        let mut out = vec![b'['];
        for (i, one) in picked.iter().rev().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(one);
        }
        out.push(b']');
        (out, total)
    }
}
