//! Per-call counters and samples, merged into one run summary with percentiles.

use std::collections::BTreeMap;

use serde::Serialize;

/// What one call observed. Latency samples are microseconds.
#[derive(Debug, Default, Clone)]
pub struct CallStats {
    pub connected: bool,
    pub handshake_us: Option<u32>,
    pub eos_to_audio_us: Vec<u32>,
    pub barge_to_clear_us: Vec<u32>,
    /// `clear` arrival minus the send time of the last frame before it.
    pub clear_after_send_us: Vec<u32>,
    pub dtmf_to_audio_us: Vec<u32>,
    /// Per bot frame: how much later it arrived than the best 20 ms schedule of its utterance.
    pub lateness_us: Vec<u32>,
    /// Per steady-state bot frame: |inter-arrival - 20 ms|.
    pub interarrival_dev_us: Vec<u32>,
    pub frames_sent: u64,
    pub frames_received: u64,
    /// Our own frames sent more than 20 ms after they were due (the generator fell behind).
    pub late_sends: u64,
    pub underruns: u64,
    pub turns: u64,
    pub unanswered_turns: u64,
    pub barge_attempts: u64,
    pub barge_missed: u64,
    pub clears: u64,
    pub marks_received: u64,
    pub marks_echoed: u64,
    pub violations: Vec<String>,
    pub failures: Vec<String>,
}

impl CallStats {
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.failures.push(reason.into());
    }

    pub fn violation(&mut self, what: String) {
        if self.violations.len() < 8 {
            self.violations.push(what);
        }
    }

    pub fn failed(&self) -> bool {
        !self.connected || !self.failures.is_empty() || !self.violations.is_empty()
    }
}

/// Percentiles of one latency, in milliseconds.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Dist {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Dist {
    pub fn of(mut us: Vec<u32>) -> Self {
        if us.is_empty() {
            return Self::default();
        }
        us.sort_unstable();
        // Nearest-rank percentiles: always a value that was observed.
        let pick = |q: f64| {
            let rank = (q * us.len() as f64).ceil() as usize;
            f64::from(us[rank.clamp(1, us.len()) - 1]) / 1000.0
        };
        let sum: u64 = us.iter().map(|v| u64::from(*v)).sum();
        Self {
            count: us.len(),
            p50: pick(0.50),
            p95: pick(0.95),
            p99: pick(0.99),
            max: f64::from(*us.last().expect("checked non-empty above")) / 1000.0,
            mean: sum as f64 / us.len() as f64 / 1000.0,
        }
    }
}

/// The whole run's figures from the calls' side.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub calls: usize,
    pub connected: usize,
    pub failed_calls: usize,
    pub failure_reasons: BTreeMap<String, usize>,
    pub handshake_ms: Dist,
    pub eos_to_first_audio_ms: Dist,
    pub barge_in_to_clear_ms: Dist,
    /// `clear` arrival minus the send time of the last caller frame before it: the server's
    /// time for the triggering frame when it answers within 20 ms.
    pub clear_after_last_send_ms: Dist,
    pub dtmf_to_first_audio_ms: Dist,
    pub outbound_frame_lateness_ms: Dist,
    pub outbound_interarrival_jitter_ms: Dist,
    pub frames_sent: u64,
    pub frames_received: u64,
    /// Bot frames later than 20 ms against their utterance's schedule.
    pub late_frames_over_20ms: u64,
    pub underruns: u64,
    pub generator_late_sends: u64,
    pub turns: u64,
    pub unanswered_turns: u64,
    pub barge_attempts: u64,
    pub barge_missed: u64,
    pub clears: u64,
    pub marks_received: u64,
    pub marks_echoed: u64,
    pub violations: Vec<String>,
}

impl Summary {
    pub fn merge(calls: Vec<CallStats>) -> Self {
        let mut s = Summary {
            calls: calls.len(),
            ..Default::default()
        };
        let (mut hs, mut eos, mut barge, mut dtmf, mut late, mut ia) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        let mut after_send = Vec::new();
        for c in calls {
            s.connected += usize::from(c.connected);
            if c.failed() {
                s.failed_calls += 1;
            }
            if !c.connected && c.failures.is_empty() {
                *s.failure_reasons.entry("not connected".into()).or_default() += 1;
            }
            for f in &c.failures {
                *s.failure_reasons.entry(f.clone()).or_default() += 1;
            }
            if !c.violations.is_empty() {
                *s.failure_reasons
                    .entry("protocol violation".into())
                    .or_default() += 1;
            }
            if s.violations.len() < 16 {
                s.violations
                    .extend(c.violations.iter().take(16 - s.violations.len()).cloned());
            }
            hs.extend(c.handshake_us);
            eos.extend(c.eos_to_audio_us);
            barge.extend(c.barge_to_clear_us);
            after_send.extend(c.clear_after_send_us);
            dtmf.extend(c.dtmf_to_audio_us);
            s.late_frames_over_20ms += c.lateness_us.iter().filter(|l| **l > 20_000).count() as u64;
            late.extend(c.lateness_us);
            ia.extend(c.interarrival_dev_us);
            s.frames_sent += c.frames_sent;
            s.frames_received += c.frames_received;
            s.underruns += c.underruns;
            s.generator_late_sends += c.late_sends;
            s.turns += c.turns;
            s.unanswered_turns += c.unanswered_turns;
            s.barge_attempts += c.barge_attempts;
            s.barge_missed += c.barge_missed;
            s.clears += c.clears;
            s.marks_received += c.marks_received;
            s.marks_echoed += c.marks_echoed;
        }
        s.handshake_ms = Dist::of(hs);
        s.eos_to_first_audio_ms = Dist::of(eos);
        s.barge_in_to_clear_ms = Dist::of(barge);
        s.clear_after_last_send_ms = Dist::of(after_send);
        s.dtmf_to_first_audio_ms = Dist::of(dtmf);
        s.outbound_frame_lateness_ms = Dist::of(late);
        s.outbound_interarrival_jitter_ms = Dist::of(ia);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Dist::of((1..=100).map(|v| v * 1000).collect());
        assert_eq!((d.p50, d.p95, d.p99, d.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(d.count, 100);
        assert_eq!(Dist::of(vec![]), Dist::default());
        assert_eq!(Dist::of(vec![7000]).p99, 7.0);
    }

    #[test]
    fn merge_counts_failures_and_late_frames() {
        let ok = CallStats {
            connected: true,
            lateness_us: vec![0, 21_000, 5_000],
            ..Default::default()
        };
        let mut bad = CallStats {
            connected: true,
            ..Default::default()
        };
        bad.fail("a turn got no answer");
        let never = CallStats::default();
        let s = Summary::merge(vec![ok, bad, never]);
        assert_eq!((s.calls, s.connected, s.failed_calls), (3, 2, 2));
        assert_eq!(s.late_frames_over_20ms, 1);
        assert_eq!(s.failure_reasons["a turn got no answer"], 1);
        assert_eq!(s.failure_reasons["not connected"], 1);
    }
}
