//! Per-20 ms-frame costs of the media core, and per-call memory.
//!
//! `cargo bench -p media --bench frame` prints a memory and allocation report first (measured
//! with a counting allocator), then the criterion timings.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use media::codec::g711::{G711Decoder, G711Encoder, Law};
use media::codec::opus::{OpusDecoder, OpusEncoder};
use media::vad::{EarshotVad, WebRtcVad, WebRtcVadMode};
use media::{
    Decoder, Encoder, JitterBuffer, JitterConfig, Pacer, PacerConfig, SampleRate, StreamResampler,
    Timestamp, VadConfig, VoiceDetector,
};

/// Counts live heap bytes and allocation calls, to measure per-call memory and to show
/// that the per-frame paths do not allocate.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const R8: SampleRate = SampleRate::HZ_8000;
const R16: SampleRate = SampleRate::HZ_16000;
const R24: SampleRate = SampleRate::HZ_24000;
const R48: SampleRate = SampleRate::HZ_48000;

/// A voiced, speech-like test signal: a 140 Hz buzz with formant-ish harmonics, amplitude
/// modulated at 4 Hz (syllables), plus a little noise.
fn speechlike(rate: SampleRate, len: usize) -> Vec<i16> {
    let mut seed = 0x1234_5678u32;
    (0..len)
        .map(|i| {
            let t = i as f64 / f64::from(rate.hz());
            let env = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
            let mut v = 0.0;
            for (h, a) in [(1.0, 1.0), (2.0, 0.6), (4.0, 0.5), (5.0, 0.4), (11.0, 0.2)] {
                v += a * (2.0 * std::f64::consts::PI * 140.0 * h * t).sin();
            }
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let noise = f64::from(seed % 401) - 200.0;
            (3500.0 * env * v + noise) as i16
        })
        .collect()
}

fn ulaw_frames(n: usize) -> Vec<Vec<u8>> {
    let pcm = speechlike(R8, 160 * n);
    let mut enc = G711Encoder::new(Law::Ulaw);
    pcm.chunks(160)
        .map(|c| {
            let mut out = Vec::new();
            enc.encode(c, &mut out).expect("G.711 encoding cannot fail");
            out
        })
        .collect()
}

/// The inbound Twilio chain state for one call.
struct Inbound {
    dec: G711Decoder,
    up: StreamResampler,
    vad: VoiceDetector<WebRtcVad>,
    pcm8: Vec<i16>,
    pcm16: Vec<i16>,
    at: Timestamp,
}

impl Inbound {
    fn new() -> Self {
        Self {
            dec: G711Decoder::new(Law::Ulaw),
            up: StreamResampler::new(R8, R16).expect("supported pair"),
            vad: VoiceDetector::new(
                WebRtcVad::new(R16, WebRtcVadMode::Aggressive).expect("16 kHz works"),
                VadConfig::default(),
            ),
            pcm8: Vec::with_capacity(160),
            pcm16: Vec::with_capacity(320),
            at: Timestamp::zero(R16),
        }
    }

    fn frame(&mut self, payload: &[u8]) -> bool {
        self.pcm8.clear();
        self.pcm16.clear();
        self.dec
            .decode(payload, &mut self.pcm8)
            .expect("G.711 decoding cannot fail");
        self.up
            .process(&self.pcm8, &mut self.pcm16)
            .expect("resampling works");
        let ev = self
            .vad
            .push(&self.pcm16, self.at)
            .expect("320 samples is a valid frame");
        self.at = self.at.add_samples(320);
        ev.is_some()
    }
}

/// The outbound Twilio chain state for one call: TTS 24 kHz -> 8 kHz -> pacer -> μ-law.
struct Outbound {
    down: StreamResampler,
    pacer: Pacer,
    enc: G711Encoder,
    pcm8: Vec<i16>,
    ulaw: Vec<u8>,
    now: Instant,
}

impl Outbound {
    fn new() -> Self {
        Self {
            down: StreamResampler::new(R24, R8).expect("supported pair"),
            pacer: Pacer::new(PacerConfig::new(R8)),
            enc: G711Encoder::new(Law::Ulaw),
            pcm8: Vec::with_capacity(160),
            ulaw: Vec::with_capacity(160),
            now: Instant::now(),
        }
    }

    fn frame(&mut self, tts: &[i16]) -> usize {
        self.pcm8.clear();
        self.down
            .process(tts, &mut self.pcm8)
            .expect("resampling works");
        self.pacer
            .push(&self.pcm8)
            .expect("the queue is drained every frame");
        let mut sent = 0;
        while let Some(f) = self.pacer.poll(self.now) {
            self.ulaw.clear();
            self.enc
                .encode(f.samples, &mut self.ulaw)
                .expect("G.711 encoding cannot fail");
            sent += self.ulaw.len();
        }
        self.now += Duration::from_millis(20);
        sent
    }
}

/// Live heap bytes that `make` leaves behind after `warm` has run a few frames on it.
fn heap_of<T>(make: impl FnOnce() -> T, warm: impl FnOnce(&mut T)) -> (usize, T) {
    let before = LIVE.load(Ordering::SeqCst);
    let mut obj = make();
    warm(&mut obj);
    let after = LIVE.load(Ordering::SeqCst);
    ((after - before).max(0) as usize, obj)
}

unsafe extern "C" {
    // From the libopus that the `opus` crate links (opusic-sys builds it).
    fn opus_decoder_get_size(channels: std::ffi::c_int) -> std::ffi::c_int;
    fn opus_encoder_get_size(channels: std::ffi::c_int) -> std::ffi::c_int;
}

/// sizeof(struct Fvad) from libfvad's headers on x86_64 (the one malloc per WebRTC VAD).
const FVAD_BYTES: usize = 740;

fn memory_report() {
    // SAFETY: pure size queries with a valid channel count.
    let (opus_dec_c, opus_enc_c) = unsafe {
        (
            opus_decoder_get_size(1) as usize,
            opus_encoder_get_size(1) as usize,
        )
    };
    let ulaw = ulaw_frames(100);
    let tts = speechlike(R24, 480 * 100);
    let speech16 = speechlike(R16, 320 * 10);
    println!("## per-call memory (size_of + Rust heap live after 10 warm frames + C heap)");
    macro_rules! row {
        ($name:expr, $make:expr, $warm:expr) => {{ row!($name, 0usize, $make, $warm) }};
        ($name:expr, $c_heap:expr, $make:expr, $warm:expr) => {{
            let (heap, obj) = heap_of($make, $warm);
            let size = std::mem::size_of_val(&obj);
            let total = size + heap + $c_heap;
            println!(
                "| {} | {} | {} | {} | {} |",
                $name, size, heap, $c_heap, total
            );
            drop(obj);
            total
        }};
    }
    println!("| object | size_of (B) | Rust heap (B) | C heap (B) | total (B) |");
    let mut twilio = 0;
    twilio += row!(
        "G711Decoder (μ-law)",
        || G711Decoder::new(Law::Ulaw),
        |d: &mut G711Decoder| {
            let mut out = Vec::new();
            for p in &ulaw[..10] {
                d.decode(p, &mut out).expect("decodes");
            }
        }
    );
    twilio += row!(
        "StreamResampler 8k->16k",
        || StreamResampler::new(R8, R16).expect("ok"),
        |r: &mut StreamResampler| {
            let mut out = Vec::new();
            for _ in 0..10 {
                r.process(&[0; 160], &mut out).expect("ok");
            }
        }
    );
    twilio += row!(
        "VoiceDetector<WebRtcVad>",
        FVAD_BYTES,
        || VoiceDetector::new(
            WebRtcVad::new(R16, WebRtcVadMode::Aggressive).expect("ok"),
            VadConfig::default()
        ),
        |v: &mut VoiceDetector<WebRtcVad>| {
            for (i, f) in speech16.chunks(320).enumerate() {
                v.push(f, Timestamp::new(i as u64 * 320, R16)).expect("ok");
            }
        }
    );
    row!(
        "VoiceDetector<EarshotVad>",
        || VoiceDetector::new(EarshotVad::new(), VadConfig::default()),
        |v: &mut VoiceDetector<EarshotVad>| {
            for (i, f) in speech16.chunks(320).enumerate() {
                v.push(f, Timestamp::new(i as u64 * 320, R16)).expect("ok");
            }
        }
    );
    twilio += row!(
        "StreamResampler 24k->8k",
        || StreamResampler::new(R24, R8).expect("ok"),
        |r: &mut StreamResampler| {
            let mut out = Vec::new();
            r.process(&tts[..4800], &mut out).expect("ok");
        }
    );
    twilio += row!(
        "Pacer 8k (1 s queued)",
        || Pacer::new(PacerConfig::new(R8)),
        |p: &mut Pacer| {
            p.push(&[1; 8000]).expect("room");
            p.mark("utterance-1");
            p.poll(Instant::now());
        }
    );
    row!(
        "StreamResampler 48k->16k",
        || StreamResampler::new(R48, R16).expect("ok"),
        |r: &mut StreamResampler| {
            let mut out = Vec::new();
            r.process(&[0; 9600], &mut out).expect("ok");
        }
    );
    row!(
        "OpusDecoder 16k",
        opus_dec_c,
        || OpusDecoder::new(R16).expect("ok"),
        |_: &mut OpusDecoder| {}
    );
    row!(
        "OpusEncoder 16k",
        opus_enc_c,
        || OpusEncoder::new(R16, 24_000).expect("ok"),
        |_: &mut OpusEncoder| {}
    );
    row!(
        "JitterBuffer (3 packets held)",
        || JitterBuffer::new(JitterConfig::new(R48)),
        |j: &mut JitterBuffer| {
            let now = Instant::now();
            for i in 0..3u16 {
                j.push(now, i, u32::from(i) * 960, vec![0; 80]);
            }
        }
    );
    println!("Twilio call (μ-law decode + 8k->16k + WebRTC VAD + 24k->8k + pacer): {twilio} B");

    println!("## resampler delays");
    for (from, to) in [
        (R8, R16),
        (R16, R8),
        (R24, R8),
        (SampleRate::HZ_22050, R8),
        (SampleRate::HZ_22050, R16),
        (R48, R16),
        (R16, R48),
    ] {
        let rs = StreamResampler::new(from, to).expect("supported pair");
        println!(
            "{from} -> {to}: {} output samples = {:?}",
            rs.delay_samples(),
            rs.delay()
        );
    }
    println!("## allocations per frame after warm-up");
    let mut inbound = Inbound::new();
    let mut outbound = Outbound::new();
    for i in 0..50 {
        inbound.frame(&ulaw[i]);
        outbound.frame(&tts[i * 480..(i + 1) * 480]);
    }
    let before = ALLOCS.load(Ordering::SeqCst);
    for payload in &ulaw[50..100] {
        black_box(inbound.frame(payload));
    }
    let mid = ALLOCS.load(Ordering::SeqCst);
    for i in 50..100 {
        black_box(outbound.frame(&tts[i * 480..(i + 1) * 480]));
    }
    let after = ALLOCS.load(Ordering::SeqCst);
    println!("inbound chain: {} allocations in 50 frames", mid - before);
    println!("outbound chain: {} allocations in 50 frames", after - mid);
}

fn frame_benches(c: &mut Criterion) {
    let ulaw = ulaw_frames(50);
    let pcm8 = speechlike(R8, 160 * 50);
    let pcm16 = speechlike(R16, 320 * 50);
    let tts24 = speechlike(R24, 480 * 50);
    let pcm48 = speechlike(R48, 960 * 50);

    c.bench_function("ulaw_decode_160", |b| {
        let mut dec = G711Decoder::new(Law::Ulaw);
        let mut out = Vec::with_capacity(160);
        let mut i = 0;
        b.iter(|| {
            out.clear();
            dec.decode(black_box(&ulaw[i % 50]), &mut out)
                .expect("decodes");
            i += 1;
        })
    });
    c.bench_function("ulaw_encode_160", |b| {
        let mut enc = G711Encoder::new(Law::Ulaw);
        let mut out = Vec::with_capacity(160);
        let mut i = 0;
        b.iter(|| {
            out.clear();
            enc.encode(black_box(&pcm8[(i % 50) * 160..][..160]), &mut out)
                .expect("encodes");
            i += 1;
        })
    });
    c.bench_function("resample_8k_to_16k", |b| {
        let mut rs = StreamResampler::new(R8, R16).expect("supported pair");
        let mut out = Vec::with_capacity(320);
        let mut i = 0;
        b.iter(|| {
            out.clear();
            rs.process(black_box(&pcm8[(i % 50) * 160..][..160]), &mut out)
                .expect("ok");
            i += 1;
        })
    });
    c.bench_function("resample_24k_to_8k", |b| {
        let mut rs = StreamResampler::new(R24, R8).expect("supported pair");
        let mut out = Vec::with_capacity(160);
        let mut i = 0;
        b.iter(|| {
            out.clear();
            rs.process(black_box(&tts24[(i % 50) * 480..][..480]), &mut out)
                .expect("ok");
            i += 1;
        })
    });
    c.bench_function("resample_48k_to_16k", |b| {
        let mut rs = StreamResampler::new(R48, R16).expect("supported pair");
        let mut out = Vec::with_capacity(320);
        let mut i = 0;
        b.iter(|| {
            out.clear();
            rs.process(black_box(&pcm48[(i % 50) * 960..][..960]), &mut out)
                .expect("ok");
            i += 1;
        })
    });
    c.bench_function("vad_webrtc_detector", |b| {
        let engine = WebRtcVad::new(R16, WebRtcVadMode::Aggressive).expect("16 kHz works");
        let mut vad = VoiceDetector::new(engine, VadConfig::default());
        let mut i = 0u64;
        b.iter(|| {
            let f = &pcm16[(i as usize % 50) * 320..][..320];
            black_box(
                vad.push(black_box(f), Timestamp::new(i * 320, R16))
                    .expect("ok"),
            );
            i += 1;
        })
    });
    c.bench_function("vad_earshot_detector", |b| {
        let mut vad = VoiceDetector::new(EarshotVad::new(), VadConfig::default());
        let mut i = 0u64;
        b.iter(|| {
            let f = &pcm16[(i as usize % 50) * 320..][..320];
            black_box(
                vad.push(black_box(f), Timestamp::new(i * 320, R16))
                    .expect("ok"),
            );
            i += 1;
        })
    });
    c.bench_function("inbound_chain_twilio", |b| {
        let mut chain = Inbound::new();
        let mut i = 0;
        b.iter(|| {
            black_box(chain.frame(black_box(&ulaw[i % 50])));
            i += 1;
        })
    });
    c.bench_function("outbound_chain_twilio", |b| {
        let mut chain = Outbound::new();
        let mut i = 0;
        b.iter(|| {
            black_box(chain.frame(black_box(&tts24[(i % 50) * 480..][..480])));
            i += 1;
        })
    });
    let packets: Vec<Vec<u8>> = {
        let mut enc = OpusEncoder::new(R48, 32_000).expect("valid settings");
        pcm48
            .chunks(960)
            .map(|c| {
                let mut p = Vec::new();
                enc.encode(c, &mut p).expect("encodes");
                p
            })
            .collect()
    };
    c.bench_function("opus_decode_48k_packet_to_16k", |b| {
        let mut dec = OpusDecoder::new(R16).expect("valid settings");
        let mut out = Vec::with_capacity(320);
        let mut i = 0;
        b.iter(|| {
            out.clear();
            dec.decode(black_box(&packets[i % 50]), &mut out)
                .expect("decodes");
            i += 1;
        })
    });
    c.bench_function("opus_encode_16k", |b| {
        let mut enc = OpusEncoder::new(R16, 24_000).expect("valid settings");
        let mut out = Vec::with_capacity(4000);
        let mut i = 0;
        b.iter(|| {
            out.clear();
            enc.encode(black_box(&pcm16[(i % 50) * 320..][..320]), &mut out)
                .expect("encodes");
            i += 1;
        })
    });
}

criterion_group!(benches, frame_benches);

fn main() {
    memory_report();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
