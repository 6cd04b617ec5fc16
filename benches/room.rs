//! The cost of people on a call, per 20 ms tick: the actor's fan-out of every leg and each
//! participant's own mix (an agent and two supervisors, one whispering), plus what the caller
//! hears.
//!
//! `cargo bench --bench room -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion};
use media::mixer::Mixer;
use switchboard::call::room::{caller_mix, MonitorMode, Role, Room, SideAudio, TickRole, FRAME_SAMPLES};
use switchboard::center::AgentId;

fn frame(seed: i16) -> Vec<i16> {
    (0..FRAME_SAMPLES as i16).map(|i| i.wrapping_mul(seed)).collect()
}

fn tick(c: &mut Criterion) {
    let mut room = Room::new();
    let agent = room.join(Role::Agent { agent_id: AgentId("a".into()) }).unwrap();
    let listen = room.join(Role::Supervisor { name: "s1".into(), mode: MonitorMode::Listen }).unwrap();
    let whisper = room.join(Role::Supervisor { name: "s2".into(), mode: MonitorMode::Whisper }).unwrap();
    let (caller, bot, mic) = (frame(3), frame(5), frame(7));
    let mut mixer = Mixer::new(FRAME_SAMPLES);
    let mut out = vec![0i16; FRAME_SAMPLES];
    let mut to_caller = vec![0i16; FRAME_SAMPLES];

    c.bench_function("room tick: fan-out of caller, bot, agent, 2 supervisors", |b| {
        b.iter(|| {
            room.caller.push(&caller);
            room.bot.push(&bot);
            for who in [&agent.id, &listen.id, &whisper.id] {
                room.on_side_audio(SideAudio { from: who.clone(), samples: mic.clone() });
            }
            let frames = room.tick(false);
            caller_mix(&frames, &mut mixer, &mut to_caller);
            std::hint::black_box(&to_caller);
        })
    });

    let mut ticks = agent.ticks.resubscribe();
    room.caller.push(&caller);
    room.bot.push(&bot);
    for who in [&agent.id, &listen.id, &whisper.id] {
        room.on_side_audio(SideAudio { from: who.clone(), samples: mic.clone() });
    }
    room.tick(false);
    let frames = ticks.try_recv().unwrap();
    c.bench_function("participant mix: what the agent hears (caller, bot, whisper)", |b| {
        b.iter(|| {
            frames.mix_for(&agent.id, TickRole::Agent, &mut mixer, &mut out);
            std::hint::black_box(&out);
        })
    });
}

criterion_group!(benches, tick);
criterion_main!(benches);
