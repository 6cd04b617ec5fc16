//! Accuracy and cost of the offline speech engines on a generated routing set.
//!
//! `tests/speech/make_routing_set.sh` speaks 12 routing answers with espeak-ng in three
//! voice/speed variants (36 clips) and writes them as 16 kHz PCM and as 8 kHz μ-law. This test
//! runs them through `PocketsphinxStt` in grammar mode exactly as a call would (20 ms chunks,
//! then `Finalize`), prints accuracy, real-time factor, CPU, model load time and espeak-ng's
//! time to first audio, and asserts accuracy floors.
//!
//!     cargo test --release --test speech_accuracy -- --nocapture
//!
//! `SPEECH_NOISE_SWEEP=1` also prints 8 kHz accuracy for a range of telephone-band noise
//! levels (used to pick the default).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use switchboard::speech::stt::pocketsphinx::{PocketsphinxConfig, PocketsphinxMode, PocketsphinxStt};
use switchboard::speech::stt::{SttAudioFormat, SttContext, SttEvent, SttInput, SttProvider};
use switchboard::speech::tts::espeak::{EspeakConfig, EspeakTts};
use switchboard::speech::tts::{TtsContext, TtsEvent, TtsInput, TtsProvider};

struct Clip {
    name: String,
    voice: String,
    wpm: u32,
    phrase: String,
    pcm16k: Vec<i16>,
    mulaw8k: Vec<u8>,
}

fn make_set(dir: &Path) -> Vec<Clip> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/speech/make_routing_set.sh");
    let status = Command::new("sh").arg(&script).arg(dir).status().expect("sh runs");
    assert!(status.success(), "{} failed (needs espeak-ng and sox)", script.display());
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).expect("manifest written");
    manifest
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let raw = std::fs::read(dir.join(format!("{}.16k.raw", f[0]))).expect("16k clip");
            Clip {
                name: f[0].into(),
                voice: f[1].into(),
                wpm: f[2].parse().expect("wpm is a number"),
                phrase: f[3].into(),
                pcm16k: raw.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect(),
                mulaw8k: std::fs::read(dir.join(format!("{}.8k.ul", f[0]))).expect("8k clip"),
            }
        })
        .collect()
}

/// The department a phrase routes to.
fn intent(phrase: &str) -> &'static str {
    if phrase.contains("billing") {
        "billing"
    } else if phrase.contains("sales") {
        "sales"
    } else if phrase.contains("support") {
        "support"
    } else if phrase.contains("agent") || phrase.contains("human") {
        "agent"
    } else {
        "none"
    }
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("linux /proc");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm ends with )") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

#[derive(Default)]
struct Score {
    clips: usize,
    exact: usize,
    intent: usize,
    audio: Duration,
    wall: Duration,
    cpu: Duration,
    misses: Vec<String>,
}

impl Score {
    fn line(&self, label: &str) -> String {
        format!(
            "{label}: {}/{} exact, {}/{} intent; RTF {:.3} (wall), CPU {:.1} ms per s of audio",
            self.exact,
            self.clips,
            self.intent,
            self.clips,
            self.wall.as_secs_f64() / self.audio.as_secs_f64(),
            self.cpu.as_secs_f64() * 1000.0 / self.audio.as_secs_f64(),
        )
    }
}

fn phrases(clips: &[Clip]) -> Vec<String> {
    let mut p: Vec<String> = clips.iter().map(|c| c.phrase.clone()).collect();
    p.dedup();
    p
}

/// Runs every clip through one stream per clip, as separate calls would.
async fn run_set(stt: &PocketsphinxStt, clips: &[Clip], native: SttAudioFormat) -> Score {
    let mut score = Score::default();
    let grammar = phrases(clips);
    for clip in clips {
        let ctx = SttContext {
            call_id: clip.name.clone(),
            phrases: grammar.clone(),
            native_format: Some(native),
            ..Default::default()
        };
        let mut stream = stt.open(ctx).await.expect("stream opens");
        let inputs: Vec<SttInput> = match native {
            SttAudioFormat::Linear16k => clip
                .pcm16k
                .chunks(320)
                .enumerate()
                .map(|(i, c)| SttInput::Linear16k { at_samples: i as u64 * 320, samples: c.to_vec() })
                .collect(),
            SttAudioFormat::Mulaw8k => clip
                .mulaw8k
                .chunks(160)
                .enumerate()
                .map(|(i, c)| SttInput::Mulaw8k { at_samples: i as u64 * 160, bytes: c.to_vec() })
                .collect(),
        };
        let audio = Duration::from_secs_f64(clip.pcm16k.len() as f64 / 16_000.0);
        let (t0, c0) = (Instant::now(), cpu_time());
        for i in inputs {
            stream.input.send(i).await.expect("stream accepts audio");
        }
        stream.input.send(SttInput::Finalize).await.unwrap();
        let text = loop {
            match stream.events.recv().await.expect("stream stays open until Final") {
                SttEvent::Final { text, .. } => break text,
                SttEvent::Error(e) => panic!("{}: {e}", clip.name),
                _ => {}
            }
        };
        score.wall += t0.elapsed();
        score.cpu += cpu_time().saturating_sub(c0);
        score.audio += audio;
        stream.input.send(SttInput::Close).await.unwrap();
        while stream.events.recv().await.is_some() {}
        score.clips += 1;
        score.exact += usize::from(text == clip.phrase);
        score.intent += usize::from(intent(&text) == intent(&clip.phrase));
        if text != clip.phrase {
            score.misses.push(format!("{} ({} {} wpm) {:?} -> {:?}", clip.name, clip.voice, clip.wpm, clip.phrase, text));
        }
    }
    score
}

/// Resident set size of this process.
fn rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("linux /proc");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    line.split_whitespace().nth(1).expect("VmRSS value").parse().expect("a number")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_phrases_offline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clips = make_set(dir.path());
    assert!(clips.len() >= 10);
    let mut report = Vec::new();

    // Model load: what a call pays when no pooled decoder is free.
    let stt = PocketsphinxStt::new(PocketsphinxConfig::default());
    let rss0 = rss_kib();
    let loads = stt.prewarm(3).expect("model loads");
    report.push(format!(
        "grammar-mode decoder load (acoustic model + dictionary): median {:?} of {:?}; RSS +{} MiB for 3 decoders",
        median(loads.clone()),
        loads,
        (rss_kib() - rss0) / 1024
    ));

    let s16 = run_set(&stt, &clips, SttAudioFormat::Linear16k).await;
    report.push(s16.line("16 kHz, grammar"));
    let s8 = run_set(&stt, &clips, SttAudioFormat::Mulaw8k).await;
    let level = PocketsphinxConfig::default().telephone_noise_dbfs;
    report.push(s8.line(&format!("8 kHz mu-law -> 16 kHz, grammar, telephone-band noise {level} dBFS (default)")));
    let off = PocketsphinxStt::new(PocketsphinxConfig { telephone_band: Some(false), ..Default::default() });
    let s8_off = run_set(&off, &clips, SttAudioFormat::Mulaw8k).await;
    report.push(s8_off.line("8 kHz mu-law -> 16 kHz, grammar, no noise"));

    if std::env::var_os("SPEECH_NOISE_SWEEP").is_some() {
        for dbfs in [-70.0, -60.0, -55.0, -50.0, -45.0, -40.0, -35.0] {
            let cfg = PocketsphinxConfig { telephone_noise_dbfs: dbfs, ..Default::default() };
            let s = run_set(&PocketsphinxStt::new(cfg), &clips, SttAudioFormat::Mulaw8k).await;
            report.push(s.line(&format!("  sweep: 8 kHz, noise {dbfs} dBFS")));
        }
    }

    // Free-form LM mode on the en-us voice only: slow to load, and documented as inaccurate.
    let lm = PocketsphinxStt::new(PocketsphinxConfig { mode: PocketsphinxMode::LanguageModel, ..Default::default() });
    let rss0 = rss_kib();
    let lm_load = lm.prewarm(1).expect("LM loads")[0];
    let lm_rss = (rss_kib() - rss0) / 1024;
    let us: Vec<Clip> = clips.into_iter().filter(|c| c.voice == "en-us").collect();
    let slm = run_set(&lm, &us, SttAudioFormat::Linear16k).await;
    report.push(format!("language-model decoder load: {lm_load:?}; RSS +{lm_rss} MiB"));
    report.push(slm.line("16 kHz, free-form language model (en-us voice only)"));

    // espeak-ng: time from text to the first PCM chunk, and synthesis speed.
    let tts = EspeakTts::new(EspeakConfig::default()).expect("espeak-ng");
    let (mut ttfa, mut synth, mut audio) = (Vec::new(), Duration::ZERO, 0usize);
    for c in &us {
        let mut s = tts.open(TtsContext::default()).await.unwrap();
        let t0 = Instant::now();
        s.input.send(TtsInput::Text(format!("You said {}.", c.phrase))).await.unwrap();
        s.input.send(TtsInput::Finish).await.unwrap();
        let mut first = None;
        while let Some(ev) = s.events.recv().await {
            match ev {
                TtsEvent::Pcm { samples, .. } => {
                    first.get_or_insert(t0.elapsed());
                    audio += samples.len();
                }
                TtsEvent::Done => break,
                other => panic!("{other:?}"),
            }
        }
        synth += t0.elapsed();
        ttfa.push(first.expect("audio before Done"));
    }
    report.push(format!(
        "espeak-ng: time to first audio median {:?}; synthesis RTF {:.3}",
        median(ttfa),
        synth.as_secs_f64() / (audio as f64 / 22_050.0)
    ));

    println!("\n== offline speech ==");
    for l in &report {
        println!("{l}");
    }
    for (label, s) in [("16k", &s16), ("8k", &s8), ("8k no fix", &s8_off), ("lm", &slm)] {
        for m in &s.misses {
            println!("  miss [{label}] {m}");
        }
    }

    assert!(s16.exact * 100 >= s16.clips * 90, "{}", s16.line("16 kHz"));
    assert!(s8.intent * 100 >= s8.clips * 85, "{}", s8.line("8 kHz"));
}
