//! Live output: what a run in flight has written so far, read by its page while the run goes on.
//!
//! The standalone runner writes each run's output into a [`SharedOutput`] as it reads the pipe
//! (the head and the tail within the output cap, [`CapturedOutput`]) and registers it here under
//! the run's id until the run's end is recorded; the portal of the same process reads it. The
//! page asks `GET /api/v1/runs/{id}/live?offset=N` once a second for what came after byte `N`
//! ([`chunk`]) and appends it; once the run has ended the answer says so and the page shows the
//! stored output instead. In a cluster the same capture is filled from the run's pod log by
//! [`crate::follow`].

use crate::ansi::{self, Segment};
use jtp_store::{CapturedOutput, SharedOutput};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The live output of the runs in flight in this process, by run id, and the way to stop them
/// ([`LiveRuns::stop`]). Cheap to clone.
#[derive(Clone, Default)]
pub struct LiveRuns {
    runs: Arc<Mutex<HashMap<i64, SharedOutput>>>,
    stopper: Arc<std::sync::OnceLock<Stopper>>,
}

/// Stops run `run_id` of this process, as asked by the person named: true when the run was in
/// flight here and has been told to stop (it ends as FAILURE "stopped by <who>").
pub type Stopper = Box<dyn Fn(i64, &str) -> bool + Send + Sync>;

impl LiveRuns {
    /// A new, empty output for run `run_id`, readable here until [`LiveRuns::end`].
    pub fn start(&self, run_id: i64) -> SharedOutput {
        let output = SharedOutput::default();
        self.lock().insert(run_id, output.clone());
        output
    }

    /// Run `run_id`'s end is recorded: its page reads the stored output from now on.
    pub fn end(&self, run_id: i64) {
        self.lock().remove(&run_id);
    }

    /// The output of run `run_id`, if it is in flight here.
    pub fn get(&self, run_id: i64) -> Option<SharedOutput> {
        self.lock().get(&run_id).cloned()
    }

    /// The runner of this process says how its runs are stopped (once, at its start).
    pub fn set_stopper(&self, stopper: Stopper) {
        let _ = self.stopper.set(stopper);
    }

    /// Asks the runner of this process to stop run `run_id` for `by`; false when no runner here
    /// has that run in flight (it ended, has not started yet, or runs in another process).
    pub fn stop(&self, run_id: i64, by: &str) -> bool {
        self.stopper.get().is_some_and(|stop| stop(run_id, by))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, SharedOutput>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a run wrote after byte `offset` of its output, rendered as the stored output is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Chunk {
    /// Pass this as `offset` next time: every byte the run has written so far.
    pub offset: u64,
    /// The new text in styled pieces (the ANSI codes as classes), not escaped: the page sets it
    /// as text.
    pub segments: Vec<Segment>,
    /// Bytes the cap dropped before the client saw them (a line in `segments` says so too).
    pub skipped: u64,
}

/// The text of `output` after byte `offset`. The capture keeps the head and the tail within the
/// cap: bytes between them are gone, and a client that had not read them yet gets one line saying
/// how many instead. Styles (colours) carry over from everything before `offset` that is still
/// kept, the way the stored output reads.
pub fn chunk(output: &CapturedOutput, offset: u64, cap: usize) -> Chunk {
    let head = output.head.as_slice();
    let (front, back) = output.tail.as_slices();
    let head_end = head.len() as u64;
    let tail_start = output.total - output.tail.len() as u64;
    let offset = if offset > output.total { 0 } else { offset };
    let skipped = if offset < tail_start {
        tail_start - offset.max(head_end)
    } else {
        0
    };
    let marker = (skipped > 0).then(|| {
        format!(
            "\n[jtp: {skipped} bytes of output skipped here while the run was in flight (cap {cap} bytes)]\n"
        )
    });
    let mut pieces: Vec<(u64, &[u8])> = vec![(0, head)];
    if let Some(marker) = &marker {
        pieces.push((offset.max(head_end), marker.as_bytes()));
    }
    pieces.push((tail_start, front));
    pieces.push((tail_start + front.len() as u64, back));
    Chunk {
        offset: output.total,
        segments: ansi::segments_since(&pieces, offset),
        skipped,
    }
}
