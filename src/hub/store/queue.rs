//! The store's queue: operations in order, handed to the store thread in batches.
//!
//! An operation someone awaits (a new job's id, a terminal state, a sync) wakes the thread at
//! once. One nobody awaits (an assignment, a job that started) does not: it waits up to
//! [`LATER`] for company, so under load it rides in the transaction of the next awaited
//! operation instead of costing a transaction and two thread wake-ups of its own. Only the
//! first one after the thread went idle wakes it, to start that clock.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Longest an operation nobody awaits waits for a transaction to share.
pub const LATER: Duration = Duration::from_millis(5);

pub struct Queue<T> {
    state: Mutex<Pending<T>>,
    wake: Condvar,
    max_batch: usize,
    later: Duration,
}

struct Pending<T> {
    ops: Vec<T>,
    /// Some operation in `ops` is awaited.
    urgent: bool,
    /// The thread waits without a deadline: the next operation must wake it.
    idle: bool,
    /// No operation will come (every handle dropped), or the thread is gone.
    closed: bool,
}

/// The queue was closed: the store thread has stopped.
#[derive(Debug)]
pub struct Closed;

impl<T> Queue<T> {
    /// A queue whose batches hold at most `max_batch` operations and whose operations nobody
    /// awaits wait up to `later` (the store's is [`LATER`]).
    pub fn new(max_batch: usize, later: Duration) -> Arc<Queue<T>> {
        Arc::new(Queue {
            state: Mutex::new(Pending {
                ops: Vec::new(),
                urgent: false,
                idle: false,
                closed: false,
            }),
            wake: Condvar::new(),
            max_batch,
            later,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pending<T>> {
        // A panic while the lock is held leaves plain data behind: go on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `op` after everything queued before it. `urgent`: someone awaits it.
    pub fn push(&self, op: T, urgent: bool) -> Result<(), Closed> {
        let mut st = self.lock();
        if st.closed {
            return Err(Closed);
        }
        st.ops.push(op);
        st.urgent |= urgent;
        if st.urgent || st.idle || st.ops.len() >= self.max_batch {
            st.idle = false;
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Stops the queue: what is queued is still taken, nothing more is accepted.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// The store thread's side: waits for a batch (at most `max_batch` operations, in order)
    /// that is due, i.e. holds an awaited operation, is full, or has waited `later`. `None`
    /// once the queue is closed and empty.
    pub fn take(&self) -> Option<Vec<T>> {
        let mut st = self.lock();
        let mut deadline = None;
        loop {
            let due = st.urgent || st.ops.len() >= self.max_batch || st.closed;
            if due || deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if st.ops.is_empty() {
                st.idle = true;
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let d = *deadline.get_or_insert_with(|| Instant::now() + self.later);
            let left = d.saturating_duration_since(Instant::now());
            st = self
                .wake
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        st.idle = false;
        if st.ops.is_empty() {
            return None; // closed
        }
        let n = st.ops.len().min(self.max_batch);
        let batch: Vec<T> = st.ops.drain(..n).collect();
        // Whether what is left is awaited is not known any more: take it at once.
        st.urgent = !st.ops.is_empty();
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const FOREVER: Duration = Duration::from_secs(3600);

    /// `take` on another thread; its batch, or a panic if none comes within 10 s.
    fn take_within<T: Send + 'static>(q: &Arc<Queue<T>>) -> mpsc::Receiver<Option<Vec<T>>> {
        let (tx, rx) = mpsc::channel();
        let q = q.clone();
        std::thread::spawn(move || tx.send(q.take()));
        rx
    }

    fn got<T>(rx: mpsc::Receiver<Option<Vec<T>>>) -> Option<Vec<T>> {
        rx.recv_timeout(Duration::from_secs(10)).expect("a batch")
    }

    fn wait_idle<T>(q: &Queue<T>) {
        let until = Instant::now() + Duration::from_secs(10);
        while !q.lock().idle {
            assert!(Instant::now() < until, "the taker never went idle");
            std::thread::yield_now();
        }
    }

    #[test]
    fn an_awaited_op_takes_everything_before_it_at_once() {
        // Ops nobody awaits would wait an hour: the awaited one takes them along.
        let q = Queue::new(100, FOREVER);
        q.push(1, false).unwrap();
        q.push(2, false).unwrap();
        let rx = take_within(&q);
        q.push(3, true).unwrap();
        assert_eq!(got(rx), Some(vec![1, 2, 3]));
    }

    #[test]
    fn ops_nobody_awaits_wait_for_company_then_go_alone() {
        let q = Queue::new(100, Duration::from_millis(20));
        let rx = take_within(&q);
        wait_idle(&q);
        // The first wakes the idle taker, which waits `later` for more (the second, unless
        // this thread was slower than that), then takes what it has.
        q.push(7, false).unwrap();
        q.push(8, false).unwrap();
        let mut taken = got(rx).unwrap();
        if taken.len() < 2 {
            taken.extend(got(take_within(&q)).unwrap());
        }
        assert_eq!(taken, [7, 8]);
    }

    #[test]
    fn a_full_batch_goes_at_once_and_the_rest_follows() {
        let q = Queue::new(2, FOREVER);
        for i in 0..5 {
            q.push(i, false).unwrap();
        }
        assert_eq!(got(take_within(&q)), Some(vec![0, 1]));
        // What was left behind a full batch is not known to be unawaited: taken at once.
        assert_eq!(got(take_within(&q)), Some(vec![2, 3]));
        assert_eq!(got(take_within(&q)), Some(vec![4]));
    }

    #[test]
    fn closing_hands_over_what_is_queued_then_refuses() {
        let q = Queue::new(10, FOREVER);
        q.push("a", false).unwrap();
        q.close();
        assert!(q.push("b", true).is_err());
        assert_eq!(got(take_within(&q)), Some(vec!["a"]));
        assert_eq!(got(take_within(&q)), None);
    }
}
