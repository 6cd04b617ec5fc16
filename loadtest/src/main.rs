//! `switchboard-loadgen`: many concurrent, paced Twilio Media Streams calls against a
//! switchboard server on loopback, one tokio task per call, with the k6 script's measurements
//! (end of speech -> first bot audio, barge-in -> `clear`, outbound frame lateness and jitter,
//! handshake time, failed calls) plus the server's CPU and memory from `/proc/<pid>`.
//!
//! ```text
//! switchboard-loadgen --url ws://127.0.0.1:8080/twilio/stream/load --calls 500 \
//!     --ramp 10s --hold 30s --server-pid 1234 --metrics-url http://127.0.0.1:8080/metrics --out run.json
//! ```

mod caller;
mod server;
mod session;
mod stats;
mod wire;

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use serde::Serialize;
use tokio::time::Instant;

use caller::{Audio, Script};
use session::CallPlan;
use stats::Summary;

/// Most calls one run may start: each is a socket and a task, and the run must stay bounded.
const MAX_CALLS: usize = 20_000;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Concurrent paced Twilio Media Streams calls against a switchboard server"
)]
struct Args {
    /// Stream endpoint, `ws://HOST:PORT/twilio/stream/<token>`. Loopback hosts only.
    #[arg(long)]
    url: String,
    /// Concurrent calls.
    #[arg(long, default_value_t = 10)]
    calls: usize,
    /// Connects are spread evenly over this long.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    ramp: Duration,
    /// After the ramp, all calls run together this long; only this window is measured.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    hold: Duration,
    /// Headerless 8 kHz μ-law speech the callers say (see loadtest/audio/make_speech.sh).
    #[arg(long, default_value = "loadtest/audio/caller.ulaw")]
    speech: PathBuf,
    /// Sent as `start.customParameters.flow` (unset: the server's default flow).
    #[arg(long)]
    flow: Option<String>,
    /// Silence after the bot's answer has played before the caller speaks again.
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
    pause: Duration,
    /// Every n-th turn talks over the bot's answer (0: never).
    #[arg(long, default_value_t = 3)]
    barge_every: u32,
    /// How far into the bot's answer a barge-in starts.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    barge_delay: Duration,
    /// This turn presses a key instead of speaking (0: none).
    #[arg(long, default_value_t = 2)]
    dtmf_turn: u32,
    /// A turn without an answer in this long fails the call.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    turn_timeout: Duration,
    /// The server's pid, for its CPU and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The server's Prometheus page, for its own stage latencies.
    #[arg(long)]
    metrics_url: Option<String>,
    /// Also write the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads for the generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Debug, Serialize)]
struct ServerUsage {
    pid: u32,
    cpu_percent: f64,
    cpu_percent_per_call: f64,
    rss_mib_before: f64,
    rss_mib_after: f64,
    rss_kib_per_call: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    url: String,
    calls: usize,
    ramp_s: f64,
    hold_s: f64,
    speech_ms: u64,
    summary: Summary,
    server: Option<ServerUsage>,
    generator_cpu_percent: f64,
    server_inbound_to_stt: Option<server::StageLatency>,
    server_tts_to_first_frame: Option<server::StageLatency>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

fn check_loopback(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("ws://")
        .context("only ws:// URLs (loopback, no TLS)")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let with_port = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addrs: Vec<_> = with_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        bail!(
            "{authority} is not a loopback address: this tool only loads servers on this machine"
        );
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    check_loopback(&args.url)?;
    if args.calls == 0 || args.calls > MAX_CALLS {
        bail!("--calls must be between 1 and {MAX_CALLS}");
    }
    let speech = std::fs::read(&args.speech)
        .with_context(|| format!("reading {}", args.speech.display()))?;
    if speech.is_empty() {
        bail!("{} is empty", args.speech.display());
    }
    let audio = Arc::new(Audio::new(&speech));
    let mut params = serde_json::Map::new();
    if let Some(flow) = &args.flow {
        params.insert("flow".into(), flow.clone().into());
    }
    let params = Arc::new(params);
    let ticks = server::clock_ticks_per_second();

    let begin = Instant::now() + Duration::from_millis(200);
    // Measure once everyone is connected and has had a moment to get past the greeting.
    let measure_from = begin + args.ramp + Duration::from_secs(2).min(args.hold / 4);
    let end_at = begin + args.ramp + args.hold;
    let hard_deadline = end_at + Duration::from_secs(10);
    let run_id = std::process::id();
    let mut tasks = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let connect_at = begin + args.ramp.mul_f64(i as f64 / args.calls as f64);
        let plan = CallPlan {
            url: args.url.clone(),
            sids: wire::Sids::for_call(run_id, i),
            params: params.clone(),
            audio: audio.clone(),
            script: Script {
                pause: args.pause,
                barge_every: args.barge_every,
                barge_delay: args.barge_delay,
                dtmf_turn: (args.dtmf_turn > 0).then_some(args.dtmf_turn),
                turn_timeout: args.turn_timeout,
                measure_from: measure_from.into_std(),
                end_at: end_at.into_std(),
            },
            connect_at,
            hard_deadline,
        };
        tasks.push(tokio::spawn(session::run_call(plan)));
    }

    tokio::time::sleep_until(measure_from).await;
    let srv_before = args.server_pid.map(server::sample).transpose()?;
    let gen_before = server::sample(std::process::id())?;
    let metrics_before = match &args.metrics_url {
        Some(u) => Some(server::fetch_metrics(u).await?),
        None => None,
    };
    tokio::time::sleep_until(end_at).await;
    let srv_after = args.server_pid.map(server::sample).transpose()?;
    let gen_after = server::sample(std::process::id())?;
    let metrics_after = match &args.metrics_url {
        Some(u) => Some(server::fetch_metrics(u).await?),
        None => None,
    };

    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        // Every call ends by its hard deadline; the extra second covers the close handshake.
        match tokio::time::timeout_at(hard_deadline + Duration::from_secs(5), t).await {
            Ok(Ok(stats)) => results.push(stats),
            Ok(Err(e)) => {
                let mut s = stats::CallStats::default();
                s.fail(format!("call task failed: {e}"));
                results.push(s);
            }
            Err(_) => {
                let mut s = stats::CallStats::default();
                s.fail("call task did not finish");
                results.push(s);
            }
        }
    }

    let summary = Summary::merge(results);
    let server = match (args.server_pid, srv_before, srv_after) {
        (Some(pid), Some(a), Some(b)) => {
            let cpu = server::cpu_percent(&a, &b, ticks);
            Some(ServerUsage {
                pid,
                cpu_percent: cpu,
                cpu_percent_per_call: cpu / args.calls as f64,
                rss_mib_before: a.rss_kib as f64 / 1024.0,
                rss_mib_after: b.rss_kib as f64 / 1024.0,
                rss_kib_per_call: b.rss_kib as f64 / args.calls as f64,
            })
        }
        _ => None,
    };
    let stage = |name: &str| {
        let label = format!("stage=\"{name}\"");
        match (&metrics_before, &metrics_after) {
            (Some(a), Some(b)) => Some(server::stage_latency(
                &server::histogram(a, "switchboard_stage_latency_seconds", &label),
                &server::histogram(b, "switchboard_stage_latency_seconds", &label),
            )),
            _ => None,
        }
    };
    let report = Report {
        url: args.url.clone(),
        calls: args.calls,
        ramp_s: args.ramp.as_secs_f64(),
        hold_s: args.hold.as_secs_f64(),
        speech_ms: audio.speech_duration().as_millis() as u64,
        summary,
        server,
        generator_cpu_percent: server::cpu_percent(&gen_before, &gen_after, ticks),
        server_inbound_to_stt: stage("inbound_to_stt"),
        server_tts_to_first_frame: stage("tts_to_first_frame"),
    };
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.out {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{json}");
    if report.summary.failed_calls > 0 {
        eprintln!(
            "{} of {} calls failed",
            report.summary.failed_calls, report.summary.calls
        );
    }
    Ok(())
}
