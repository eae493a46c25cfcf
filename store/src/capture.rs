//! A run's output kept within the cap while the process writes it: the head and the tail, however
//! much it writes. The standalone executor fills one per run, and the portal reads it while the
//! run is in flight ([`SharedOutput`]).

use crate::output::NOTE_PREFIX;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Output kept within the cap while the process writes it, however much it writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    pub head: Vec<u8>,
    pub tail: VecDeque<u8>,
    /// Every byte the process wrote, kept or not.
    pub total: u64,
}

/// A [`CapturedOutput`] that the writer and the readers of a run in flight share.
pub type SharedOutput = Arc<Mutex<CapturedOutput>>;

impl CapturedOutput {
    /// Appends what the process wrote: the first `cap / 2` bytes stay as the head, the last
    /// `cap - cap / 2` as the tail.
    pub fn push(&mut self, chunk: &[u8], cap: usize) {
        self.total += chunk.len() as u64;
        let head_room = (cap / 2).saturating_sub(self.head.len());
        let (to_head, rest) = chunk.split_at(head_room.min(chunk.len()));
        self.head.extend_from_slice(to_head);
        let tail_cap = cap - cap / 2;
        self.tail.extend(rest.iter().rev().take(tail_cap).rev());
        let excess = self.tail.len().saturating_sub(tail_cap);
        self.tail.drain(..excess);
    }

    /// Appends a line the runner writes itself (why it stopped the run, a start error), on a line
    /// of its own: after a line break only if the output so far does not end with one, so a run
    /// that wrote nothing does not start with a blank line.
    pub fn note(&mut self, line: &str) {
        let last = self.tail.back().or(self.head.last());
        let sep = if matches!(last, None | Some(b'\n')) {
            ""
        } else {
            "\n"
        };
        let text = format!("{sep}{NOTE_PREFIX}{line}\n");
        self.tail.extend(text.as_bytes());
        self.total += text.len() as u64;
    }

    /// The kept bytes in order, with how many were dropped between head and tail.
    pub fn into_parts(self) -> (Vec<u8>, Vec<u8>, u64) {
        let kept = (self.head.len() + self.tail.len()) as u64;
        (self.head, self.tail.into(), self.total.saturating_sub(kept))
    }
}
