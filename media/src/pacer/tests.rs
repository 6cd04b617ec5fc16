use super::*;

const RATE: SampleRate = SampleRate::HZ_8000;
const PT: Duration = Duration::from_millis(20);

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Debug, Default)]
struct Sent {
    frames: usize,
    audio: Vec<i16>,
    /// (frame index, mark)
    marks: Vec<(usize, String)>,
    silence_frames: usize,
    /// Audio samples sent up to and including each frame.
    audio_after: Vec<usize>,
}

fn drain(p: &mut Pacer, now: Instant, sent: &mut Sent) {
    while let Some(f) = p.poll(now) {
        assert_eq!(f.samples.len(), 160, "never a short frame");
        assert_eq!(
            f.timestamp.samples(),
            160 * sent.frames as u64,
            "steady sample clock"
        );
        match f.kind {
            FrameKind::Audio { audio } => sent.audio.extend_from_slice(&f.samples[..audio]),
            FrameKind::Silence => {
                assert!(f.samples.iter().all(|&s| s == 0));
                sent.silence_frames += 1;
            }
        }
        sent.marks
            .extend(f.marks.iter().map(|m| (sent.frames, m.clone())));
        sent.audio_after.push(sent.audio.len());
        sent.frames += 1;
    }
}

#[test]
fn chunks_of_any_size_become_exact_frames_with_marks_in_place() {
    let t0 = Instant::now();
    let mut p = Pacer::new(PacerConfig::new(RATE));
    let mut rng = Rng(0xDEAD_BEEF_1234_5678);
    let mut sent = Sent::default();
    let mut pushed = Vec::new();
    let mut want_marks = Vec::new();
    let mut counter = 0i16;
    // 300 ticks; the timer jitters by up to 15 ms; TTS chunks of 1..900 samples arrive
    // at random ticks, each followed by a mark.
    for tick in 0..300u32 {
        if rng.below(3) == 0 {
            let len = 1 + rng.below(900) as usize;
            let chunk: Vec<i16> = (0..len)
                .map(|_| {
                    counter = counter.wrapping_add(1) | 1; // never 0, so audio is visible
                    counter
                })
                .collect();
            p.push(&chunk).expect("under the queue limit");
            pushed.extend_from_slice(&chunk);
            let name = format!("m{}", want_marks.len());
            p.mark(&name);
            want_marks.push((pushed.len(), name));
        }
        let now = t0 + PT * tick + Duration::from_millis(rng.below(15));
        drain(&mut p, now, &mut sent);
    }
    // Let the queue run dry.
    let mut tick = 300;
    while p.queued_samples() > 0 || p.pending_marks().next().is_some() {
        drain(&mut p, t0 + PT * tick, &mut sent);
        tick += 1;
    }
    assert_eq!(
        sent.audio, pushed,
        "all audio, in order, nothing added or lost"
    );
    assert!(
        sent.silence_frames > 0,
        "silence was inserted while the queue was empty"
    );
    // Each mark comes with the frame that carries the sample just before it.
    let sent_marks: Vec<String> = sent.marks.iter().map(|(_, m)| m.clone()).collect();
    let names: Vec<String> = want_marks.iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(sent_marks, names);
    // Each mark rides on the first frame whose cumulative audio reaches the mark's position.
    for ((frame, name), (pos, want)) in sent.marks.iter().zip(&want_marks) {
        assert_eq!(name, want);
        let first = sent
            .audio_after
            .iter()
            .position(|&n| n >= *pos)
            .expect("all audio was sent");
        assert_eq!(*frame, first, "mark {name} at sample {pos}");
    }
}

#[test]
fn marks_ride_on_the_frame_that_ends_their_chunk() {
    let t0 = Instant::now();
    let mut p = Pacer::new(PacerConfig::new(RATE));
    p.push(&[1; 200]).expect("room");
    p.mark("a");
    p.push(&[2; 120]).expect("room");
    p.mark("b");
    let mut kinds = Vec::new();
    let mut marks = Vec::new();
    for k in 0..4u32 {
        let f = p.poll(t0 + PT * k).expect("a frame is due every 20 ms");
        kinds.push(f.kind);
        marks.push(f.marks.to_vec());
    }
    assert_eq!(
        kinds,
        vec![
            FrameKind::Audio { audio: 160 },
            FrameKind::Audio { audio: 160 }, // samples 160..320 hold the end of "a"
            FrameKind::Silence,
            FrameKind::Silence,
        ]
    );
    assert_eq!(
        marks,
        vec![
            vec![],
            vec!["a".to_string(), "b".to_string()],
            vec![],
            vec![]
        ]
    );
    // A mark placed on an empty queue goes out with the next frame.
    p.mark("c");
    let f = p.poll(t0 + PT * 4).expect("due");
    assert_eq!(
        (f.kind, f.marks),
        (FrameKind::Silence, &["c".to_string()][..])
    );
}

#[test]
fn not_due_means_none_and_late_timers_catch_up_or_skip() {
    let t0 = Instant::now();
    let mut p = Pacer::new(PacerConfig::new(RATE));
    assert!(p.poll(t0).is_some(), "the first poll starts the clock");
    assert!(p.poll(t0 + Duration::from_millis(19)).is_none());
    assert_eq!(p.next_due(), Some(t0 + PT));
    // 70 ms late (under max_lag): the missed frames come out now, one call each.
    let mut n = 0;
    while p.poll(t0 + Duration::from_millis(90)).is_some() {
        n += 1;
    }
    assert_eq!(n, 4, "frames due at 20, 40, 60 and 80 ms");
    // Far behind: one frame now, the clock restarts from here.
    let later = t0 + Duration::from_secs(5);
    assert!(p.poll(later).is_some());
    assert!(p.poll(later).is_none());
    assert_eq!(p.next_due(), Some(later + PT));
}

#[test]
fn clear_drops_audio_at_once_and_reports_the_marks() {
    let t0 = Instant::now();
    let mut p = Pacer::new(PacerConfig::new(RATE));
    p.push(&[5; 400]).expect("room");
    p.mark("first");
    p.push(&[5; 400]).expect("room");
    p.mark("second");
    let f = p.poll(t0).expect("due");
    assert!(f.marks.is_empty());
    assert_eq!(p.queued(), Duration::from_millis(80));
    let cleared = p.clear();
    assert_eq!(
        cleared.marks,
        vec!["first".to_string(), "second".to_string()]
    );
    assert_eq!(cleared.dropped, Duration::from_millis(80));
    let f = p.poll(t0 + PT).expect("due");
    assert!(
        f.is_silence() && f.marks.is_empty(),
        "the next frame is silence"
    );
    assert_eq!(f.timestamp.samples(), 160, "the clock kept running");
    // Marks after the clear attach to new audio as usual.
    p.push(&[7; 100]).expect("room");
    p.mark("third");
    let f = p.poll(t0 + PT * 2).expect("due");
    assert_eq!(
        (f.kind, f.marks),
        (FrameKind::Audio { audio: 100 }, &["third".to_string()][..])
    );
}

#[test]
fn the_queue_is_bounded() {
    let mut p = Pacer::new(PacerConfig {
        max_queued: Duration::from_millis(100),
        ..PacerConfig::new(RATE)
    });
    p.push(&[0; 800]).expect("exactly 100 ms fits");
    assert_eq!(
        p.push(&[0; 1]),
        Err(PacerError::Full {
            queued: Duration::from_millis(100),
            max: Duration::from_millis(100)
        })
    );
}
