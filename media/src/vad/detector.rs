//! The speech state machine shared by every engine:
//!
//! ```text
//! QUIET --speech--> STARTING --speech for `start`--> SPEAKING --silence--> STOPPING
//!   ^                  |                               ^                      |
//!   +--silence for ----+                               +-------speech---------+
//!      `start_gap`
//!   +<-------------------------- silence for `stop` ------------------------+
//! ```
//!
//! A frame counts as speech when the engine's score reaches `threshold` *and* its level reaches
//! `min_volume_dbfs` (so faint background talk or line noise does not trigger barge-in).
//! Events carry the timestamp of the first frame of the run that caused them: the onset of
//! speech, or the first silent frame after it, so they are exact to the frame start on the
//! stream's sample clock even though they are reported `start` / `stop` later.

use std::time::Duration;

use super::{Vad, VadError, rms_dbfs};
use crate::Timestamp;

/// Tuning for [`VoiceDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Speech must last this long before `SpeechStarted` (filters clicks and coughs).
    pub start: Duration,
    /// A silence shorter than this while STARTING does not cancel the start: the closure
    /// before a stop consonant ("thank") is a few silent frames inside a word.
    pub start_gap: Duration,
    /// Silence must last this long before `SpeechEnded` (bridges pauses between words).
    pub stop: Duration,
    /// Frames quieter than this are silence whatever the engine says.
    pub min_volume_dbfs: f32,
    /// Engine score at or above which a frame is speech.
    pub threshold: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            start: Duration::from_millis(200),
            start_gap: Duration::from_millis(60),
            stop: Duration::from_millis(500),
            min_volume_dbfs: -45.0,
            threshold: 0.5,
        }
    }
}

/// Where the state machine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadState {
    Quiet,
    /// Speech began at `onset` but has not lasted `start` yet; `silence` is set while a
    /// short gap (less than `start_gap`) is in progress.
    Starting {
        onset: Timestamp,
        silence: Option<Timestamp>,
    },
    /// Speech confirmed since `onset`.
    Speaking {
        onset: Timestamp,
    },
    /// Speech since `onset`, silent since `silence`, for less than `stop` so far.
    Stopping {
        onset: Timestamp,
        silence: Timestamp,
    },
}

/// What the caller should react to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began at `at` (confirmed `start` later).
    SpeechStarted { at: Timestamp },
    /// Speech ended at `at` (the first silent sample), after lasting `duration`.
    SpeechEnded { at: Timestamp, duration: Duration },
}

/// Voice activity state machine over any [`Vad`] engine.
#[derive(Debug)]
pub struct VoiceDetector<V> {
    engine: V,
    config: VadConfig,
    state: VadState,
    last_score: f32,
    last_dbfs: f32,
}

impl<V: Vad> VoiceDetector<V> {
    pub fn new(engine: V, config: VadConfig) -> Self {
        Self {
            engine,
            config,
            state: VadState::Quiet,
            last_score: 0.0,
            last_dbfs: f32::NEG_INFINITY,
        }
    }

    /// Feeds one frame (10, 20 or 30 ms at the engine's rate) that starts at `at`.
    pub fn push(&mut self, frame: &[i16], at: Timestamp) -> Result<Option<VadEvent>, VadError> {
        let score = self.engine.score(frame)?;
        let dbfs = rms_dbfs(frame);
        self.last_score = score;
        self.last_dbfs = dbfs;
        let speech = score >= self.config.threshold && dbfs >= self.config.min_volume_dbfs;
        let end = at.add_samples(frame.len() as u64);
        let (state, event) = step(self.state, &self.config, speech, at, end);
        if let Some(ev) = &event {
            tracing::debug!(engine = self.engine.name(), ?ev, "vad");
        }
        tracing::trace!(score, dbfs, speech, state = ?state, "vad frame");
        self.state = state;
        Ok(event)
    }

    /// [`Self::push`] for a whole [`AudioFrame`](crate::AudioFrame) at its own timestamp.
    pub fn push_frame(&mut self, frame: &crate::AudioFrame) -> Result<Option<VadEvent>, VadError> {
        self.push(frame.samples(), frame.timestamp())
    }

    /// True from `SpeechStarted` until `SpeechEnded`.
    pub fn is_speaking(&self) -> bool {
        matches!(
            self.state,
            VadState::Speaking { .. } | VadState::Stopping { .. }
        )
    }

    pub fn state(&self) -> VadState {
        self.state
    }

    /// The engine's score and the level of the last frame (for meters and tuning).
    pub fn last_frame(&self) -> (f32, f32) {
        (self.last_score, self.last_dbfs)
    }

    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    pub fn engine(&self) -> &V {
        &self.engine
    }

    /// Back to QUIET with a fresh engine, without an event.
    pub fn reset(&mut self) {
        self.engine.reset();
        self.state = VadState::Quiet;
    }
}

/// One transition. `at..end` is the frame just classified.
fn step(
    state: VadState,
    cfg: &VadConfig,
    speech: bool,
    at: Timestamp,
    end: Timestamp,
) -> (VadState, Option<VadEvent>) {
    use VadState::*;
    match (state, speech) {
        (Quiet, false) => (Quiet, None),
        (Quiet, true) => confirm_start(at, cfg, end),
        (Starting { onset, .. }, true) => confirm_start(onset, cfg, end),
        (Starting { onset, silence }, false) => {
            let silence = silence.unwrap_or(at);
            if end.saturating_since(silence) >= cfg.start_gap {
                (Quiet, None)
            } else {
                (
                    Starting {
                        onset,
                        silence: Some(silence),
                    },
                    None,
                )
            }
        }
        (Speaking { onset }, true) => (Speaking { onset }, None),
        (Speaking { onset }, false) => confirm_stop(onset, at, cfg, end),
        (Stopping { onset, .. }, true) => (Speaking { onset }, None),
        (Stopping { onset, silence }, false) => confirm_stop(onset, silence, cfg, end),
    }
}

fn confirm_start(
    onset: Timestamp,
    cfg: &VadConfig,
    end: Timestamp,
) -> (VadState, Option<VadEvent>) {
    if end.saturating_since(onset) >= cfg.start {
        (
            VadState::Speaking { onset },
            Some(VadEvent::SpeechStarted { at: onset }),
        )
    } else {
        (
            VadState::Starting {
                onset,
                silence: None,
            },
            None,
        )
    }
}

fn confirm_stop(
    onset: Timestamp,
    silence: Timestamp,
    cfg: &VadConfig,
    end: Timestamp,
) -> (VadState, Option<VadEvent>) {
    if end.saturating_since(silence) >= cfg.stop {
        let duration = silence.saturating_since(onset);
        (
            VadState::Quiet,
            Some(VadEvent::SpeechEnded {
                at: silence,
                duration,
            }),
        )
    } else {
        (VadState::Stopping { onset, silence }, None)
    }
}

#[cfg(test)]
mod tests;
