//! Jitter buffer for RTP-like input, sans-IO: `push(now, seq, ts, payload)` as packets
//! arrive, and `pop(now)` in a loop on every tick until it returns `None`.
//!
//! Playout is driven by RTP timestamps on a local clock: the first packet is played
//! `target_delay` after it arrived, and every later timestamp at the matching offset from it.
//! Each 20 ms slot yields exactly one [`Playout`]: the packet whose timestamp has come, or
//! `Missing` (the caller runs its decoder's concealment, or plays silence) when nothing
//! arrived in time. Packets arriving after their slot are dropped as late; duplicates are
//! dropped; out-of-order packets are put in place. The buffer holds at most `capacity`
//! packets. In adaptive mode a late packet adds one packet time of delay (up to
//! `max_delay`), and a long run without late packets takes one away again (down to
//! `target_delay`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::SampleRate;

/// Tuning for [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// The RTP clock (8 kHz for G.711, 48 kHz for Opus).
    pub clock: SampleRate,
    /// Packet duration.
    pub ptime: Duration,
    /// Delay from the first packet's arrival to its playout (and the adaptive minimum).
    pub target_delay: Duration,
    /// The adaptive maximum.
    pub max_delay: Duration,
    pub adaptive: bool,
    /// Most packets held at once.
    pub capacity: usize,
}

impl JitterConfig {
    /// 20 ms packets, fixed 60 ms delay, 50 packets (one second) at most.
    pub fn new(clock: SampleRate) -> Self {
        Self {
            clock,
            ptime: Duration::from_millis(20),
            target_delay: Duration::from_millis(60),
            max_delay: Duration::from_millis(200),
            adaptive: false,
            capacity: 50,
        }
    }
}

/// A packet handed out for playout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub seq: u16,
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

/// What to play in the next slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    Packet(Packet),
    /// Nothing arrived for the slot at this RTP timestamp: conceal or play silence.
    Missing {
        timestamp: u32,
    },
}

/// What became of a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Buffered,
    /// Its slot was already played (it was concealed); dropped.
    Late,
    Duplicate,
    /// Buffered, but the buffer was full so the oldest packet was dropped.
    Overflowed,
    /// Far away from the current stream (a new source or a restart): the buffer started over.
    Resynced,
}

/// Counters since creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub played: u64,
    /// Sequence numbers skipped at playout (never arrived, or arrived late).
    pub lost: u64,
    pub late: u64,
    pub duplicate: u64,
    /// Arrived after a packet with a higher sequence number, but in time.
    pub reordered: u64,
    pub overflow: u64,
    pub resync: u64,
    /// Interarrival jitter (RFC 3550 estimator).
    pub jitter: Duration,
    /// The current playout delay.
    pub delay: Duration,
}

#[derive(Debug)]
struct Slot {
    seq: u16,
    ts: u32,
    ext_ts: u64,
    payload: Vec<u8>,
}

/// A sequence jump this large means a new stream rather than loss or reordering.
const RESYNC_DISTANCE: u64 = 3000;
/// Packets in a row without a late one before adaptive mode gives back one packet of delay.
const SHRINK_AFTER: u32 = 500;

/// Reorders, de-duplicates and paces RTP-like packets.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    ptime_ticks: u64,
    slots: BTreeMap<u64, Slot>,
    /// Playout instant of `anchor_ts` (moves with adaptive delay).
    anchor: Option<(Instant, u64)>,
    /// Next sequence number and timestamp to play (extended, never wrapping).
    next_seq: u64,
    next_ts: u64,
    highest_seq: u64,
    started: bool,
    delay: Duration,
    epoch: Option<Instant>,
    last_transit: Option<f64>,
    jitter_ticks: f64,
    since_late: u32,
    stats: JitterStats,
}

/// The extended value of `value` (a counter of `bits` bits) nearest to `reference`.
fn extend(value: u64, reference: u64, bits: u32) -> u64 {
    let span = 1u64 << bits;
    let base = reference & !(span - 1);
    let candidates = [base.wrapping_sub(span), base, base + span];
    candidates
        .into_iter()
        .filter(|c| *c < u64::MAX - span) // skips the wrapped-below-zero candidate
        .map(|c| c + value)
        .min_by_key(|c| c.abs_diff(reference))
        .expect("at least `base + value` is a candidate")
}

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> Self {
        let ptime_ticks = config.clock.samples_in(config.ptime).max(1);
        Self {
            config,
            ptime_ticks,
            slots: BTreeMap::new(),
            anchor: None,
            next_seq: 0,
            next_ts: 0,
            highest_seq: 0,
            started: false,
            delay: config.target_delay,
            epoch: None,
            last_transit: None,
            jitter_ticks: 0.0,
            since_late: 0,
            stats: JitterStats {
                delay: config.target_delay,
                ..JitterStats::default()
            },
        }
    }

    pub fn stats(&self) -> JitterStats {
        JitterStats {
            jitter: self.config.clock.duration_of(self.jitter_ticks as u64),
            delay: self.delay,
            ..self.stats
        }
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// When the next slot is due, for the caller's timer (`None` before the first packet).
    pub fn next_due(&self) -> Option<Instant> {
        self.anchor.map(|a| self.due(a, self.next_ts))
    }

    fn due(&self, (at, anchor_ts): (Instant, u64), ts: u64) -> Instant {
        let ticks = ts.saturating_sub(anchor_ts);
        let early = anchor_ts.saturating_sub(ts);
        let clock = self.config.clock;
        (at + clock.duration_of(ticks))
            .checked_sub(clock.duration_of(early))
            .unwrap_or(at)
    }

    fn restart(&mut self, now: Instant, ext_seq: u64, ext_ts: u64) {
        self.slots.clear();
        self.anchor = Some((now + self.delay, ext_ts));
        self.next_seq = ext_seq;
        self.next_ts = ext_ts;
        self.highest_seq = ext_seq;
        self.started = false;
        self.last_transit = None;
    }

    fn update_jitter(&mut self, now: Instant, ext_ts: u64) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = now.duration_since(epoch).as_secs_f64() * f64::from(self.config.clock.hz());
        let transit = arrival - ext_ts as f64;
        if let Some(prev) = self.last_transit {
            let d = (transit - prev).abs();
            self.jitter_ticks += (d - self.jitter_ticks) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// A packet arrived at `now`.
    pub fn push(&mut self, now: Instant, seq: u16, ts: u32, payload: Vec<u8>) -> PushOutcome {
        self.stats.received += 1;
        let Some(_) = self.anchor else {
            let (s, t) = (u64::from(seq) + (1 << 16), u64::from(ts) + (1 << 32));
            self.restart(now, s, t);
            self.update_jitter(now, t);
            self.slots.insert(
                s,
                Slot {
                    seq,
                    ts,
                    ext_ts: t,
                    payload,
                },
            );
            return PushOutcome::Buffered;
        };
        let ext_seq = extend(u64::from(seq), self.highest_seq, 16);
        let ext_ts = extend(u64::from(ts), self.next_ts, 32);
        if ext_seq.abs_diff(self.highest_seq) > RESYNC_DISTANCE {
            tracing::debug!(seq, ts, "jitter buffer resync");
            self.stats.resync += 1;
            self.restart(now, ext_seq, ext_ts);
            self.slots.insert(
                ext_seq,
                Slot {
                    seq,
                    ts,
                    ext_ts,
                    payload,
                },
            );
            return PushOutcome::Resynced;
        }
        self.update_jitter(now, ext_ts);
        // Its slot has passed if it is behind in sequence or in time (a slot concealed
        // while waiting for it).
        if ext_seq < self.next_seq || (self.started && ext_ts < self.next_ts) {
            if !self.started {
                // Reordered ahead of the very first playout: start from it instead.
                self.next_seq = ext_seq;
                self.next_ts = self.next_ts.min(ext_ts);
            } else {
                self.stats.late += 1;
                self.grow_on_late();
                return PushOutcome::Late;
            }
        }
        if self.slots.contains_key(&ext_seq) {
            self.stats.duplicate += 1;
            return PushOutcome::Duplicate;
        }
        if ext_seq < self.highest_seq {
            self.stats.reordered += 1;
        }
        self.highest_seq = self.highest_seq.max(ext_seq);
        let mut outcome = PushOutcome::Buffered;
        if self.slots.len() >= self.config.capacity {
            self.slots.pop_first();
            self.stats.overflow += 1;
            outcome = PushOutcome::Overflowed;
        }
        self.slots.insert(
            ext_seq,
            Slot {
                seq,
                ts,
                ext_ts,
                payload,
            },
        );
        outcome
    }

    fn grow_on_late(&mut self) {
        self.since_late = 0;
        if !self.config.adaptive || self.delay + self.config.ptime > self.config.max_delay {
            return;
        }
        self.delay += self.config.ptime;
        if let Some((at, ts)) = self.anchor {
            self.anchor = Some((at + self.config.ptime, ts));
        }
    }

    fn maybe_shrink(&mut self) {
        self.since_late += 1;
        let cfg = &self.config;
        if !cfg.adaptive
            || self.since_late < SHRINK_AFTER
            || self.delay < cfg.target_delay + cfg.ptime
        {
            return;
        }
        self.since_late = 0;
        self.delay -= cfg.ptime;
        if let Some((at, ts)) = self.anchor {
            self.anchor = Some((at.checked_sub(cfg.ptime).unwrap_or(at), ts));
        }
    }

    /// The next slot's playout if it is due at `now`. Call in a loop until `None`.
    pub fn pop(&mut self, now: Instant) -> Option<Playout> {
        let anchor = self.anchor?;
        if let Some((&seq, slot)) = self.slots.first_key_value()
            && slot.ext_ts <= self.next_ts
        {
            // This packet belongs to the current slot (or is overdue): play it when due.
            if self.due(anchor, slot.ext_ts) > now {
                return None;
            }
            self.started = true;
            self.stats.lost += seq.saturating_sub(self.next_seq);
            let slot = self.slots.pop_first().expect("first entry was just seen").1;
            self.next_seq = seq + 1;
            self.next_ts = slot.ext_ts + self.ptime_ticks;
            self.stats.played += 1;
            self.maybe_shrink();
            return Some(Playout::Packet(Packet {
                seq: slot.seq,
                timestamp: slot.ts,
                payload: slot.payload,
            }));
        }
        if self.due(anchor, self.next_ts) > now {
            return None;
        }
        self.started = true;
        let timestamp = self.next_ts as u32; // back to the 32-bit wire value
        self.next_ts += self.ptime_ticks;
        Some(Playout::Missing { timestamp })
    }
}

#[cfg(test)]
mod tests;
