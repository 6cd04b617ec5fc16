//! One simulated caller as a sans-IO state machine: the socket loop feeds it server messages
//! and clock ticks (`now` is always an argument), and sends what it puts in its outbox.
//!
//! The conversation, turn after turn: wait until the bot's answer has played out (emulating
//! Twilio's playout buffer, marks echoed when the audio before them has played, at once on
//! `clear`), pause, then speak the speech file in 20 ms frames on a drift-free clock (frame `n`
//! goes out at `t0 + (n + 1) * 20 ms`, all frames due are sent on each wake-up), and time the
//! server's answer. Every `barge_every`-th turn talks over the bot's answer instead and times the
//! `clear`; turn `dtmf_turn` presses a key instead of speaking. Silence frames fill every gap,
//! as on a real line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::CallStats;
use crate::wire::{self, Checked, Sids};

pub const FRAME: Duration = Duration::from_millis(20);
/// μ-law plays at 8000 bytes per second.
const MICROS_PER_BYTE: u64 = 125;
/// Bot audio arriving after a gap longer than this starts a new utterance for jitter purposes.
const RUN_GAP: Duration = Duration::from_millis(100);
/// Frames arriving this close to an utterance's first frame are its lead burst (the server
/// sends its first `playout_lead` of audio at once); timing is measured on the frames after it.
const BURST_WINDOW: Duration = Duration::from_millis(5);

/// Pre-encoded audio shared by all calls.
pub struct Audio {
    pub speech: Vec<String>,
    pub silence: String,
}

impl Audio {
    pub fn new(speech_ulaw: &[u8]) -> Self {
        let silence = wire::encode_frames(&[wire::ULAW_SILENCE; wire::FRAME_BYTES]).remove(0);
        Self {
            speech: wire::encode_frames(speech_ulaw),
            silence,
        }
    }

    pub fn speech_duration(&self) -> Duration {
        FRAME * self.speech.len() as u32
    }
}

/// How a call behaves.
#[derive(Debug, Clone)]
pub struct Script {
    /// Silence after the bot's answer has played, before the caller speaks.
    pub pause: Duration,
    /// Every n-th turn talks over the bot (0: never).
    pub barge_every: u32,
    /// How long into the bot's answer a barge-in starts.
    pub barge_delay: Duration,
    /// This turn (counted from 1) presses a key instead of speaking.
    pub dtmf_turn: Option<u32>,
    /// A turn without any answer in this long fails the call.
    pub turn_timeout: Duration,
    /// No measurements are kept before this instant (ramp-up).
    pub measure_from: Instant,
    /// When the caller hangs up.
    pub end_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Silent, waiting for the bot's answer to play out.
    Waiting,
    /// Sending speech frame `next`; `barge` when this turn talks over the bot.
    Speaking { next: usize, barge: bool },
    /// Speech (or a key press) is over; waiting for the first answer frame.
    Answering { since: Instant, dtmf: bool },
    /// `stop` sent.
    Done,
}

/// The emulated far-end playout buffer and the per-utterance timing of arriving frames.
#[derive(Debug, Default)]
struct Playout {
    /// When everything received so far will have played.
    end: Option<Instant>,
    /// Marks waiting for the audio before them to play.
    marks: std::collections::VecDeque<(Instant, String)>,
    last_arrival: Option<Instant>,
    run_start: Option<Instant>,
    run_audio_us: u64,
    run_frames: u32,
    /// Arrival minus audio-before of the first frame after the burst: the utterance's
    /// schedule. A frame later than it is late; one earlier (sent in a pair) counts as on time.
    anchor_us: Option<i64>,
}

pub struct Caller {
    sids: Sids,
    audio: Arc<Audio>,
    script: Script,
    t0: Instant,
    next_frame: u64,
    seq: u64,
    phase: Phase,
    turn: u32,
    /// The bot has started answering the current turn (or greeting) at this time.
    answer_started: Option<Instant>,
    last_media: Option<Instant>,
    barge_started: Option<Instant>,
    /// When the last batch of frames went out (the wake-up time, after any delay of ours).
    last_send: Option<Instant>,
    playout: Playout,
    outbox: Vec<String>,
    pub stats: CallStats,
}

impl Caller {
    /// A caller whose stream started (after `connected` and `start`) at `t0`.
    pub fn new(sids: Sids, audio: Arc<Audio>, script: Script, t0: Instant) -> Self {
        Self {
            sids,
            audio,
            script,
            t0,
            next_frame: 0,
            // `start` was sequence number 1.
            seq: 2,
            phase: Phase::Waiting,
            turn: 0,
            answer_started: None,
            last_media: None,
            barge_started: None,
            last_send: None,
            playout: Playout::default(),
            outbox: Vec::with_capacity(4),
            stats: CallStats::default(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Messages to send, oldest first.
    pub fn drain_outbox(&mut self) -> std::vec::Drain<'_, String> {
        self.outbox.drain(..)
    }

    /// When the next frame is due: the socket loop sleeps until then.
    pub fn next_wake(&self) -> Instant {
        self.t0 + FRAME * (self.next_frame as u32 + 1)
    }

    fn measuring(&self, at: Instant) -> bool {
        at >= self.script.measure_from && at < self.script.end_at
    }

    fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq += 1;
        s
    }

    /// The clock moved: echo marks whose audio has played, send every frame due, move the
    /// conversation on.
    pub fn on_tick(&mut self, now: Instant) {
        if self.phase == Phase::Done {
            return;
        }
        self.echo_played_marks(now);
        if now >= self.script.end_at {
            let seq = self.next_seq();
            self.outbox.push(wire::stop(&self.sids, seq));
            self.phase = Phase::Done;
            return;
        }
        self.advance(now);
        while self.next_wake() <= now {
            let due = self.next_wake();
            if now.duration_since(due) > FRAME {
                self.stats.late_sends += 1;
            }
            let payload = match self.phase {
                Phase::Speaking { next, barge } => {
                    if next == 0 && barge {
                        // The speech's audio began one frame before this frame is due.
                        self.barge_started = Some(due - FRAME);
                    }
                    let p = self.audio.speech[next].clone();
                    if next + 1 == self.audio.speech.len() {
                        self.phase = Phase::Answering {
                            since: due,
                            dtmf: false,
                        };
                        self.answer_started = None;
                    } else {
                        self.phase = Phase::Speaking {
                            next: next + 1,
                            barge,
                        };
                    }
                    p
                }
                _ => self.audio.silence.clone(),
            };
            let chunk = self.next_frame + 1;
            let ts = self.next_frame * 20;
            let seq = self.next_seq();
            self.outbox
                .push(wire::media(&self.sids, seq, chunk, ts, &payload));
            self.next_frame += 1;
            self.stats.frames_sent += 1;
            self.last_send = Some(now);
        }
    }

    /// Starts turns and notices unanswered ones.
    fn advance(&mut self, now: Instant) {
        match self.phase {
            Phase::Waiting => {
                let Some(answer_at) = self.answer_started else {
                    return;
                };
                let turn = self.turn + 1;
                let barge =
                    self.script.barge_every > 0 && turn.is_multiple_of(self.script.barge_every);
                // The server keeps only ~200 ms of audio ahead of playout, so "still playing" is
                // all the buffer can tell.
                let playing = self.playout.end.is_some_and(|e| e > now);
                if barge && playing && now >= answer_at + self.script.barge_delay {
                    self.turn = turn;
                    self.stats.barge_attempts += 1;
                    self.phase = Phase::Speaking {
                        next: 0,
                        barge: true,
                    };
                    return;
                }
                let drained = self.playout.end.is_none_or(|e| e <= now);
                let quiet = self.last_media.is_none_or(|t| now >= t + self.script.pause);
                if drained && quiet {
                    self.turn = turn;
                    self.stats.turns += 1;
                    if self.script.dtmf_turn == Some(turn) {
                        let seq = self.next_seq();
                        self.outbox.push(wire::dtmf(&self.sids, seq, '1'));
                        self.phase = Phase::Answering {
                            since: now,
                            dtmf: true,
                        };
                        self.answer_started = None;
                    } else {
                        self.phase = Phase::Speaking {
                            next: 0,
                            barge: false,
                        };
                    }
                }
            }
            Phase::Answering { since, .. } if now >= since + self.script.turn_timeout => {
                self.stats.unanswered_turns += 1;
                self.stats.fail("a turn got no answer");
                // Go on as if answered, so one lost turn does not end the conversation.
                self.phase = Phase::Waiting;
                self.answer_started = Some(now);
            }
            _ => {}
        }
        if let Some(started) = self.barge_started
            && now >= started + self.script.turn_timeout
        {
            self.barge_started = None;
            self.stats.barge_missed += 1;
            self.stats.fail("a barge-in got no clear");
        }
    }

    /// A text frame from the server arrived at `now`.
    pub fn on_text(&mut self, now: Instant, text: &str) {
        match wire::parse_server(text, &self.sids) {
            Ok(Checked::Media(bytes)) => self.on_media(now, bytes),
            Ok(Checked::Mark(name)) => {
                self.stats.marks_received += 1;
                match self.playout.end.filter(|e| *e > now) {
                    Some(end) => self.playout.marks.push_back((end, name)),
                    None => self.echo(&name),
                }
            }
            Ok(Checked::Clear) => self.on_clear(now),
            Err(violation) => self.stats.violation(violation),
        }
    }

    /// The server sent a binary frame: Twilio flags that as 31950.
    pub fn on_binary(&mut self) {
        self.stats.violation("binary frame (31950)".into());
    }

    fn on_media(&mut self, now: Instant, bytes: usize) {
        self.stats.frames_received += 1;
        self.last_media = Some(now);
        if let Phase::Answering { since, dtmf } = self.phase {
            if self.measuring(since) {
                let us = now.duration_since(since).as_micros() as u32;
                if dtmf {
                    self.stats.dtmf_to_audio_us.push(us)
                } else {
                    self.stats.eos_to_audio_us.push(us)
                }
            }
            self.phase = Phase::Waiting;
        }
        if self.answer_started.is_none() && self.phase == Phase::Waiting {
            self.answer_started = Some(now);
        }
        let measuring = self.measuring(now);
        let p = &mut self.playout;
        // Utterance timing: lateness against the schedule set by the first frame after the burst.
        let new_run = p
            .last_arrival
            .is_none_or(|t| now.duration_since(t) > RUN_GAP);
        if new_run {
            p.run_start = Some(now);
            p.run_audio_us = 0;
            p.run_frames = 0;
            p.anchor_us = None;
        } else if p.end.is_some_and(|e| e < now) && measuring {
            // The buffer ran dry inside an utterance: the caller heard a gap.
            self.stats.underruns += 1;
        }
        let run_start = p.run_start.expect("set on the first frame of every run");
        let in_burst = now.duration_since(run_start) <= BURST_WINDOW;
        if !in_burst {
            let offset = now.duration_since(run_start).as_micros() as i64 - p.run_audio_us as i64;
            let anchor = *p.anchor_us.get_or_insert(offset);
            if measuring {
                self.stats.lateness_us.push((offset - anchor).max(0) as u32);
                let gap = now
                    .duration_since(
                        p.last_arrival
                            .expect("a frame after the burst has one before it"),
                    )
                    .as_micros() as i64;
                self.stats
                    .interarrival_dev_us
                    .push((gap - 20_000).unsigned_abs() as u32);
            }
        }
        p.run_audio_us += bytes as u64 * MICROS_PER_BYTE;
        p.run_frames += 1;
        p.last_arrival = Some(now);
        let start = p.end.filter(|e| *e > now).unwrap_or(now);
        p.end = Some(start + Duration::from_micros(bytes as u64 * MICROS_PER_BYTE));
    }

    fn on_clear(&mut self, now: Instant) {
        self.stats.clears += 1;
        if let Some(started) = self.barge_started.take()
            && self.measuring(started)
        {
            self.stats
                .barge_to_clear_us
                .push(now.duration_since(started).as_micros() as u32);
            // From the frame that triggered it, if the server answered within a frame: this
            // leaves out any delay of ours in sending that frame.
            if let Some(sent) = self.last_send {
                self.stats
                    .clear_after_send_us
                    .push(now.duration_since(sent).as_micros() as u32);
            }
        }
        // Twilio empties its buffer and returns every outstanding mark.
        self.playout.end = Some(now);
        while let Some((_, name)) = self.playout.marks.pop_front() {
            self.echo(&name);
        }
    }

    fn echo_played_marks(&mut self, now: Instant) {
        while self
            .playout
            .marks
            .front()
            .is_some_and(|(due, _)| *due <= now)
        {
            let (_, name) = self
                .playout
                .marks
                .pop_front()
                .expect("front was just checked");
            self.echo(&name);
        }
    }

    fn echo(&mut self, name: &str) {
        let seq = self.next_seq();
        self.outbox.push(wire::mark(&self.sids, seq, name));
        self.stats.marks_echoed += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media_text(sids: &Sids) -> String {
        let payload = wire::encode_frames(&[0x7f; 160]).remove(0);
        format!(
            r#"{{"event":"media","streamSid":"{}","media":{{"payload":"{payload}"}}}}"#,
            sids.stream
        )
    }

    fn caller(t0: Instant, barge_every: u32) -> (Caller, Sids) {
        let sids = Sids::for_call(1, 1);
        let audio = Arc::new(Audio::new(&[0x10; 160 * 5]));
        let script = Script {
            pause: Duration::from_millis(100),
            barge_every,
            barge_delay: Duration::from_millis(100),
            dtmf_turn: None,
            turn_timeout: Duration::from_secs(2),
            measure_from: t0,
            end_at: t0 + Duration::from_secs(60),
        };
        (Caller::new(sids.clone(), audio, script, t0), sids)
    }

    fn bot_says(c: &mut Caller, sids: &Sids, at: Instant, frames: u32, tick: bool) {
        // The server's 200 ms lead: ten frames at once, then one every 20 ms.
        for k in 0..frames {
            let arrival = if k < 10 { at } else { at + FRAME * (k - 9) };
            if tick {
                c.on_tick(arrival);
            }
            c.on_text(arrival, &media_text(sids));
        }
    }

    #[test]
    fn frames_follow_the_wall_clock_without_drift() {
        let t0 = Instant::now();
        let (mut c, _) = caller(t0, 0);
        // A late wake-up sends every frame due so far, not one.
        c.on_tick(t0 + Duration::from_millis(105));
        assert_eq!(c.drain_outbox().count(), 5);
        assert_eq!(c.next_wake(), t0 + Duration::from_millis(120));
        c.on_tick(t0 + Duration::from_millis(120));
        assert_eq!(c.drain_outbox().count(), 1);
        assert_eq!(c.stats.frames_sent, 6);
    }

    #[test]
    fn a_turn_is_timed_from_end_of_speech_to_first_answer_frame() {
        let t0 = Instant::now();
        let (mut c, sids) = caller(t0, 0);
        let greet = t0 + Duration::from_millis(40);
        bot_says(&mut c, &sids, greet, 20, true);
        // 400 ms of greeting plays until greet + 400 ms; the caller pauses 100 ms after the last frame.
        let mut now = greet;
        while !matches!(c.phase, Phase::Answering { .. }) {
            now += Duration::from_millis(20);
            c.on_tick(now);
            assert!(now < t0 + Duration::from_secs(5), "the caller never spoke");
        }
        let Phase::Answering { since: eos, .. } = c.phase else {
            unreachable!()
        };
        assert!(
            eos >= greet + Duration::from_millis(400),
            "spoke over the greeting"
        );
        c.on_text(eos + Duration::from_millis(650), &media_text(&sids));
        assert_eq!(c.stats.eos_to_audio_us, vec![650_000]);
        assert_eq!(c.stats.turns, 1);
        assert!(
            c.stats.lateness_us.iter().all(|l| *l == 0),
            "{:?}",
            c.stats.lateness_us
        );
        assert!(c.stats.failures.is_empty());
    }

    #[test]
    fn late_frames_and_underruns_are_counted() {
        let t0 = Instant::now();
        let (mut c, sids) = caller(t0, 0);
        let at = t0 + Duration::from_millis(40);
        bot_says(&mut c, &sids, at, 12, true);
        // Frames 10 and 11 came at +20 and +40 ms: on schedule. Frame 12 comes with frame 11,
        // in a pair: early, which counts as on time.
        c.on_text(at + FRAME * 2, &media_text(&sids));
        assert_eq!(*c.stats.lateness_us.last().unwrap(), 0);
        // Frame 13 was due at +80 ms and comes 30 ms later; the 200 ms lead still covers it.
        let late = at + FRAME * 4 + Duration::from_millis(30);
        c.on_text(late, &media_text(&sids));
        assert_eq!(*c.stats.lateness_us.last().unwrap(), 30_000);
        assert_eq!(c.stats.underruns, 0);
        // A frame arriving after everything played (but within the run gap) is an underrun.
        c.playout.end = Some(late + Duration::from_millis(10));
        c.on_text(late + Duration::from_millis(60), &media_text(&sids));
        assert_eq!(c.stats.underruns, 1);
    }

    #[test]
    fn marks_echo_after_playout_and_at_once_on_clear() {
        let t0 = Instant::now();
        let (mut c, sids) = caller(t0, 0);
        let at = t0 + Duration::from_millis(40);
        c.on_text(at, &media_text(&sids));
        c.on_text(
            at,
            &format!(
                r#"{{"event":"mark","streamSid":"{}","mark":{{"name":"m1"}}}}"#,
                sids.stream
            ),
        );
        c.on_text(at, &media_text(&sids));
        c.on_text(
            at,
            &format!(
                r#"{{"event":"mark","streamSid":"{}","mark":{{"name":"m2"}}}}"#,
                sids.stream
            ),
        );
        c.drain_outbox().for_each(drop);
        c.on_tick(at + Duration::from_millis(21));
        let sent: Vec<String> = c.drain_outbox().collect();
        assert!(sent.iter().any(|m| m.contains(r#""name":"m1""#)));
        assert!(!sent.iter().any(|m| m.contains(r#""name":"m2""#)));
        c.on_text(
            at + Duration::from_millis(25),
            &format!(r#"{{"event":"clear","streamSid":"{}"}}"#, sids.stream),
        );
        assert!(c.drain_outbox().any(|m| m.contains(r#""name":"m2""#)));
    }

    #[test]
    fn barge_in_is_timed_from_speech_start_to_clear() {
        let t0 = Instant::now();
        let (mut c, sids) = caller(t0, 1);
        let at = t0 + Duration::from_millis(40);
        bot_says(&mut c, &sids, at, 100, false);
        // The answer began at `at`; the caller starts talking 100 ms in.
        let mut now = t0;
        for _ in 0..100 {
            if c.barge_started.is_some() {
                break;
            }
            now += FRAME;
            c.on_tick(now);
        }
        let started = c.barge_started.expect("the caller talked over the bot");
        // The first speech frame is the one sent when the caller decides; its audio began 20 ms earlier.
        assert!(started >= at + Duration::from_millis(100) - FRAME);
        c.on_text(
            started + Duration::from_millis(310),
            &format!(r#"{{"event":"clear","streamSid":"{}"}}"#, sids.stream),
        );
        assert_eq!(c.stats.barge_to_clear_us, vec![310_000]);
        let sent = c.last_send.expect("frames were sent");
        assert_eq!(
            c.stats.clear_after_send_us,
            vec![
                (started + Duration::from_millis(310))
                    .duration_since(sent)
                    .as_micros() as u32
            ]
        );
        assert_eq!(c.stats.barge_attempts, 1);
    }

    #[test]
    fn a_silent_server_fails_the_turn() {
        let t0 = Instant::now();
        let (mut c, _) = caller(t0, 0);
        c.phase = Phase::Answering {
            since: t0,
            dtmf: false,
        };
        c.on_tick(t0 + Duration::from_secs(3));
        assert_eq!(c.stats.unanswered_turns, 1);
        assert_eq!(c.stats.failures.len(), 1);
    }
}
