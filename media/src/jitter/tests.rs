use super::*;

const PT: Duration = Duration::from_millis(20);

fn cfg() -> JitterConfig {
    JitterConfig::new(SampleRate::HZ_8000)
}

/// A seeded xorshift generator, so the lossy link is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn extends_wrapping_counters() {
    assert_eq!(extend(5, 65_530 + (1 << 16), 16), 5 + (2 << 16));
    assert_eq!(extend(65_530, 5 + (2 << 16), 16), 65_530 + (1 << 16));
    assert_eq!(extend(7, 3, 16), 7);
}

#[test]
fn in_order_stream_plays_after_the_target_delay() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(cfg());
    assert_eq!(jb.pop(t0), None, "nothing before the first packet");
    for i in 0..5u16 {
        let now = t0 + PT * u32::from(i);
        assert_eq!(
            jb.push(now, 100 + i, 1000 + 160 * u32::from(i), vec![i as u8]),
            PushOutcome::Buffered
        );
    }
    // The first packet plays 60 ms after it arrived, then one per 20 ms.
    assert_eq!(jb.pop(t0 + Duration::from_millis(59)), None);
    let mut got = Vec::new();
    for k in 0..5u32 {
        let now = t0 + Duration::from_millis(60) + PT * k;
        while let Some(p) = jb.pop(now) {
            got.push((k, p));
        }
    }
    let seqs: Vec<(u32, u16)> = got
        .iter()
        .map(|(k, p)| match p {
            Playout::Packet(p) => (*k, p.seq),
            Playout::Missing { .. } => panic!("nothing was lost"),
        })
        .collect();
    assert_eq!(seqs, vec![(0, 100), (1, 101), (2, 102), (3, 103), (4, 104)]);
    // And then the stream has dried up: the next slot is Missing, at the right timestamp.
    assert_eq!(
        jb.pop(t0 + Duration::from_millis(160)),
        Some(Playout::Missing { timestamp: 1800 })
    );
}

#[test]
fn seeded_lossy_reordering_link() {
    // 1000 packets sent every 20 ms over a link with 5 % loss, 2 % duplication and 0-40 ms
    // of random extra delay (which reorders packets), starting near both wrap points.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let t0 = Instant::now();
    let (seq0, ts0) = (65_000u16, u32::MAX - 50_000);
    let mut arrivals = Vec::new();
    let mut sent_lost = 0;
    let mut dups = 0;
    for i in 0..1000u32 {
        let sent = t0 + PT * i;
        if rng.chance(5) {
            sent_lost += 1;
            continue;
        }
        let copies = if rng.chance(2) { 2 } else { 1 };
        dups += copies - 1;
        for _ in 0..copies {
            let delay = Duration::from_millis(20 + rng.below(41));
            arrivals.push((sent + delay, i));
        }
    }
    arrivals.sort_by_key(|(at, i)| (*at, *i));
    let mut jb = JitterBuffer::new(cfg());
    let mut out = Vec::new();
    let mut next_arrival = 0;
    // Tick every 20 ms, delivering every packet that arrived before the tick.
    for tick in 0..1100u32 {
        let now = t0 + PT * tick;
        while next_arrival < arrivals.len() && arrivals[next_arrival].0 <= now {
            let (at, i) = arrivals[next_arrival];
            let seq = seq0.wrapping_add(i as u16);
            let ts = ts0.wrapping_add(160 * i);
            jb.push(at, seq, ts, i.to_be_bytes().to_vec());
            next_arrival += 1;
        }
        while let Some(p) = jb.pop(now) {
            out.push(p);
        }
        assert!(jb.len() <= cfg().capacity);
    }
    // Every slot once, in order: timestamps step by exactly 160.
    let ts_of = |p: &Playout| match p {
        Playout::Packet(p) => p.timestamp,
        Playout::Missing { timestamp } => *timestamp,
    };
    for w in out.windows(2) {
        assert_eq!(ts_of(&w[1]).wrapping_sub(ts_of(&w[0])), 160);
    }
    assert_eq!(ts_of(&out[0]), ts0);
    // With 60 ms of delay and at most 60 ms of link delay nothing is late: every packet that
    // arrived was played with its own payload in its own slot, and only real losses were
    // concealed.
    let played: Vec<u32> = out
        .iter()
        .filter_map(|p| match p {
            Playout::Packet(p) => {
                let i = u32::from_be_bytes(p.payload[..4].try_into().expect("4-byte payload"));
                assert_eq!(p.timestamp, ts0.wrapping_add(160 * i));
                assert_eq!(p.seq, seq0.wrapping_add(i as u16));
                Some(i)
            }
            Playout::Missing { .. } => None,
        })
        .collect();
    assert_eq!(played.len(), 1000 - sent_lost);
    assert!(played.windows(2).all(|w| w[0] < w[1]));
    let stats = jb.stats();
    assert_eq!(stats.late, 0);
    assert_eq!(stats.duplicate, dups);
    assert_eq!(stats.played, 1000 - sent_lost as u64);
    // Losses after the last played packet are never counted (the stream just stops).
    let trailing = 999 - u64::from(*played.last().expect("something played"));
    assert_eq!(stats.lost + trailing, sent_lost as u64);
    assert!(
        stats.reordered > 50,
        "the link reordered {} packets",
        stats.reordered
    );
    assert!(
        stats.jitter > Duration::from_millis(3),
        "jitter {:?}",
        stats.jitter
    );
}

#[test]
fn late_packets_are_dropped_and_adaptive_mode_adds_delay() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig {
        adaptive: true,
        ..cfg()
    });
    let mut out = Vec::new();
    for i in 0..14u32 {
        let now = t0 + PT * i;
        // Packet 5 is held back by 150 ms.
        if i != 5 && i < 10 {
            jb.push(now, i as u16, 160 * i, vec![]);
        }
        if i == 9 {
            let outcome = jb.push(t0 + PT * 5 + Duration::from_millis(150), 5, 800, vec![]);
            assert_eq!(outcome, PushOutcome::Late);
        }
        while let Some(p) = jb.pop(now) {
            out.push(p);
        }
    }
    assert!(out.contains(&Playout::Missing { timestamp: 800 }));
    let stats = jb.stats();
    assert_eq!((stats.late, stats.lost), (1, 1));
    assert_eq!(
        stats.delay,
        Duration::from_millis(80),
        "one packet time was added"
    );
}

#[test]
fn duplicates_and_overflow_are_bounded() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig {
        capacity: 10,
        ..cfg()
    });
    assert_eq!(jb.push(t0, 1, 160, vec![1]), PushOutcome::Buffered);
    assert_eq!(jb.push(t0, 1, 160, vec![1]), PushOutcome::Duplicate);
    for i in 2..=20u16 {
        jb.push(t0, i, 160 * u32::from(i), vec![]);
    }
    assert_eq!(jb.len(), 10);
    let stats = jb.stats();
    assert_eq!((stats.duplicate, stats.overflow), (1, 10));
    // The oldest went: their ten slots are missing, then playout resumes at packet 11.
    let now = t0 + Duration::from_secs(1);
    for k in 1..=10u32 {
        assert_eq!(jb.pop(now), Some(Playout::Missing { timestamp: 160 * k }));
    }
    let first = jb.pop(now);
    assert!(
        matches!(first, Some(Playout::Packet(Packet { seq: 11, .. }))),
        "{first:?}"
    );
    assert_eq!(jb.stats().lost, 10);
}

#[test]
fn a_far_jump_restarts_the_stream() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(cfg());
    jb.push(t0, 10, 0, vec![]);
    assert_eq!(
        jb.push(t0 + PT, 40_000, 123_456, vec![]),
        PushOutcome::Resynced
    );
    assert_eq!(jb.len(), 1);
    let p = jb.pop(t0 + PT + Duration::from_millis(60));
    assert!(
        matches!(p, Some(Playout::Packet(Packet { seq: 40_000, .. }))),
        "{p:?}"
    );
}

#[test]
fn adaptive_delay_shrinks_back_after_a_calm_run() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig {
        adaptive: true,
        ..cfg()
    });
    jb.push(t0, 0, 0, vec![]);
    jb.push(t0 + PT, 1, 160, vec![]);
    let mut n = 0;
    while jb.pop(t0 + Duration::from_millis(100)).is_some() {
        n += 1;
    }
    assert!(n >= 2);
    // A packet whose slot has passed: late, and the delay grows by one packet time.
    assert_eq!(
        jb.push(t0 + Duration::from_millis(100), 2, 320, vec![]),
        PushOutcome::Late
    );
    assert_eq!(jb.stats().delay, Duration::from_millis(80));
    // A long calm run (more than SHRINK_AFTER packets) gives the packet time back.
    for i in 3..(SHRINK_AFTER + 20) {
        let now = t0 + PT * i;
        jb.push(now, i as u16, 160 * i, vec![]);
        while jb.pop(now).is_some() {}
    }
    assert_eq!(jb.stats().delay, Duration::from_millis(60));
    assert_eq!(jb.stats().late, 1);
}
