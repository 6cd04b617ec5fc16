//! Playout pacer, sans-IO: PCM chunks of any size go in; exact frames come out on a steady
//! clock that the caller drives.
//!
//! The call actor asks for frames when its own timer fires, passing `now`, and loops until
//! `poll` returns `None`. Every frame is exactly one frame long: real audio, audio padded with
//! silence at the end of an utterance, or silence when the queue is empty (never a gap).
//! Named marks sit between samples; each is reported with the frame that carries the sample
//! just before it (so a Twilio `mark` can be sent right after that frame's `media`), and
//! `clear` (barge-in) drops the queue at once and says which marks were never played.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::{SampleRate, Timestamp};

/// Tuning for [`Pacer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerConfig {
    pub rate: SampleRate,
    pub frame: Duration,
    /// Most audio queued at once; pushes beyond it are refused.
    pub max_queued: Duration,
    /// If the caller's timer falls further behind than this, the missed slots are skipped
    /// (the clock restarts at `now`) instead of being sent in a burst.
    pub max_lag: Duration,
}

impl PacerConfig {
    /// 20 ms frames, up to 5 minutes queued, up to 100 ms of catch-up.
    pub fn new(rate: SampleRate) -> Self {
        Self {
            rate,
            frame: Duration::from_millis(20),
            max_queued: Duration::from_secs(300),
            max_lag: Duration::from_millis(100),
        }
    }
}

/// Errors from the pacer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PacerError {
    #[error("playout queue full: {queued:?} queued, {max:?} allowed")]
    Full { queued: Duration, max: Duration },
}

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// At least `audio` samples of queued audio (the rest, if any, is padding).
    Audio { audio: usize },
    /// Inserted silence: the queue was empty.
    Silence,
}

/// One paced frame, borrowed from the pacer until the next call.
#[derive(Debug, PartialEq, Eq)]
pub struct PacedFrame<'a> {
    pub samples: &'a [i16],
    /// Position on the pacer's output clock (silence included).
    pub timestamp: Timestamp,
    pub kind: FrameKind,
    /// Marks whose position this frame reached, in order: send them after the frame.
    pub marks: &'a [String],
}

impl PacedFrame<'_> {
    pub fn is_silence(&self) -> bool {
        self.kind == FrameKind::Silence
    }
}

/// What `clear` threw away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleared {
    /// Marks that will never be played, in order.
    pub marks: Vec<String>,
    /// Audio dropped from the queue.
    pub dropped: Duration,
}

/// Turns PCM of any chunk size into exact frames on a steady clock.
#[derive(Debug)]
pub struct Pacer {
    config: PacerConfig,
    frame_len: usize,
    max_queued_samples: usize,
    queue: VecDeque<i16>,
    /// Marks with their position in the audio stream (samples pushed before them).
    marks: VecDeque<(u64, String)>,
    pushed: u64,
    played: u64,
    frame: Vec<i16>,
    frame_marks: Vec<String>,
    next_due: Option<Instant>,
    clock: Timestamp,
}

impl Pacer {
    pub fn new(config: PacerConfig) -> Self {
        let frame_len = config.rate.samples_in(config.frame) as usize;
        assert!(frame_len > 0, "a frame holds at least one sample");
        Self {
            config,
            frame_len,
            max_queued_samples: config.rate.samples_in(config.max_queued) as usize,
            queue: VecDeque::new(),
            marks: VecDeque::new(),
            pushed: 0,
            played: 0,
            frame: vec![0; frame_len],
            frame_marks: Vec::new(),
            next_due: None,
            clock: Timestamp::zero(config.rate),
        }
    }

    /// Queues audio at the pacer's rate.
    pub fn push(&mut self, samples: &[i16]) -> Result<(), PacerError> {
        if self.queue.len() + samples.len() > self.max_queued_samples {
            return Err(PacerError::Full {
                queued: self.queued(),
                max: self.config.max_queued,
            });
        }
        self.queue.extend(samples);
        self.pushed += samples.len() as u64;
        Ok(())
    }

    /// Places a named mark after everything queued so far.
    pub fn mark(&mut self, name: impl Into<String>) {
        self.marks.push_back((self.pushed, name.into()));
    }

    /// Audio waiting to be played.
    pub fn queued(&self) -> Duration {
        self.config.rate.duration_of(self.queue.len() as u64)
    }

    pub fn queued_samples(&self) -> usize {
        self.queue.len()
    }

    /// Marks not yet played.
    pub fn pending_marks(&self) -> impl Iterator<Item = &str> {
        self.marks.iter().map(|(_, m)| m.as_str())
    }

    /// When the next frame is due (`None` until the first `poll` starts the clock).
    pub fn next_due(&self) -> Option<Instant> {
        self.next_due
    }

    /// The next frame if one is due at `now`. The first call starts the clock at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<PacedFrame<'_>> {
        let due = *self.next_due.get_or_insert(now);
        if now < due {
            return None;
        }
        let next = if now.duration_since(due) > self.config.max_lag {
            tracing::debug!(lag = ?now.duration_since(due), "pacer timer fell behind; skipping slots");
            now + self.config.frame
        } else {
            due + self.config.frame
        };
        self.next_due = Some(next);

        let audio = self.queue.len().min(self.frame_len);
        for (dst, src) in self.frame.iter_mut().zip(self.queue.drain(..audio)) {
            *dst = src;
        }
        self.frame[audio..].fill(0);
        self.played += audio as u64;
        self.frame_marks.clear();
        while let Some((pos, _)) = self.marks.front()
            && *pos <= self.played
        {
            let (_, name) = self.marks.pop_front().expect("front was just seen");
            self.frame_marks.push(name);
        }
        let timestamp = self.clock;
        self.clock = self.clock.add_samples(self.frame_len as u64);
        let kind = if audio > 0 {
            FrameKind::Audio { audio }
        } else {
            FrameKind::Silence
        };
        Some(PacedFrame {
            samples: &self.frame,
            timestamp,
            kind,
            marks: &self.frame_marks,
        })
    }

    /// Drops all queued audio and pending marks at once (barge-in). The clock keeps running.
    pub fn clear(&mut self) -> Cleared {
        let dropped = self.queued();
        self.played += self.queue.len() as u64;
        self.queue.clear();
        let marks = self.marks.drain(..).map(|(_, m)| m).collect();
        Cleared { marks, dropped }
    }

    /// Heap bytes held (queue, marks and frame buffers).
    pub fn heap_bytes(&self) -> usize {
        self.queue.capacity() * 2
            + self.frame.capacity() * 2
            + self.marks.capacity() * std::mem::size_of::<(u64, String)>()
            + self.marks.iter().map(|(_, m)| m.capacity()).sum::<usize>()
            + self.frame_marks.capacity() * std::mem::size_of::<String>()
    }
}

#[cfg(test)]
mod tests;
