//! Watching the server under test: CPU time and resident memory from `/proc/<pid>`, and the
//! stage-latency histograms from its Prometheus `/metrics`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A process's CPU time and memory at one instant.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub at: Instant,
    /// user + system, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kib: u64,
}

pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let cpu_ticks = parse_stat_cpu(&stat).context("unexpected /proc/<pid>/stat format")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(ProcSample {
        at: Instant::now(),
        cpu_ticks,
        rss_kib,
    })
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name may contain spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat_cpu(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU use between two samples, in percent of one core.
pub fn cpu_percent(a: &ProcSample, b: &ProcSample, ticks_per_s: u64) -> f64 {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    (b.cpu_ticks.saturating_sub(a.cpu_ticks)) as f64 / ticks_per_s as f64 / secs * 100.0
}

/// Cumulative bucket counts of one histogram series: upper bound -> count.
pub type Buckets = BTreeMap<String, (f64, u64)>;

/// Fetches `/metrics` with a plain HTTP/1.0 GET (loopback only, no TLS).
pub async fn fetch_metrics(base: &str) -> anyhow::Result<String> {
    let rest = base
        .strip_prefix("http://")
        .context("metrics URL must be http://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    let io = async {
        let mut conn = tokio::net::TcpStream::connect(host).await?;
        conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await?;
        let mut body = Vec::new();
        // A metrics page is a few hundred KiB at most; the take keeps a broken server bounded.
        conn.take(16 << 20).read_to_end(&mut body).await?;
        anyhow::Ok(body)
    };
    let body = tokio::time::timeout(Duration::from_secs(5), io)
        .await
        .context("metrics fetch timed out")??;
    let text = String::from_utf8_lossy(&body).into_owned();
    let Some(split) = text.find("\r\n\r\n") else {
        bail!("no HTTP body from {base}")
    };
    if !text.starts_with("HTTP/1.1 200") && !text.starts_with("HTTP/1.0 200") {
        bail!("{base}: {}", text.lines().next().unwrap_or(""));
    }
    Ok(text[split + 4..].to_string())
}

/// The `_bucket` lines of `metric` whose labels contain `label`, keyed by `le`.
pub fn histogram(page: &str, metric: &str, label: &str) -> Buckets {
    let prefix = format!("{metric}_bucket{{");
    let mut out = Buckets::new();
    for line in page
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(label))
    {
        let Some(le_at) = line.find("le=\"") else {
            continue;
        };
        let le = &line[le_at + 4..];
        let Some(end) = le.find('"') else { continue };
        let le = &le[..end];
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::NAN)
        };
        let count = line
            .rsplit(' ')
            .next()
            .and_then(|c| c.parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        out.insert(le.to_string(), (bound, count));
    }
    out
}

/// One stage's latency over a window, from the difference of two bucket snapshots.
#[derive(Debug, Default, Serialize)]
pub struct StageLatency {
    pub count: u64,
    /// The smallest bucket bound holding at least 50 % / 99 % of the window's samples (ms).
    pub p50_upper_ms: Option<f64>,
    pub p99_upper_ms: Option<f64>,
}

pub fn stage_latency(before: &Buckets, after: &Buckets) -> StageLatency {
    let mut rows: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, (bound, n))| (*bound, n.saturating_sub(before.get(le).map_or(0, |b| b.1))))
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = rows.last().map_or(0, |r| r.1);
    let upper = |q: f64| {
        let need = (q * total as f64).ceil() as u64;
        rows.iter()
            .find(|r| r.1 >= need)
            .map(|r| r.0 * 1000.0)
            .filter(|v| v.is_finite())
    };
    if total == 0 {
        return StageLatency::default();
    }
    StageLatency {
        count: total,
        p50_upper_ms: upper(0.5),
        p99_upper_ms: upper(0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_odd_command_name() {
        let line = "1234 (switch board) (x) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 8 0 100 1000 200";
        assert_eq!(parse_stat_cpu(line), Some(300));
    }

    #[test]
    fn histogram_window_percentiles() {
        let page = |a: u64, b: u64, c: u64| {
            format!(
                "# TYPE x histogram\nx_bucket{{stage=\"s\",le=\"0.001\"}} {a}\nx_bucket{{stage=\"s\",le=\"0.005\"}} {b}\nx_bucket{{stage=\"s\",le=\"+Inf\"}} {c}\nx_bucket{{stage=\"t\",le=\"+Inf\"}} 9\n"
            )
        };
        let before = histogram(&page(10, 10, 10), "x", "stage=\"s\"");
        let after = histogram(&page(108, 110, 110), "x", "stage=\"s\"");
        assert_eq!(after.len(), 3);
        let s = stage_latency(&before, &after);
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_upper_ms, Some(1.0));
        assert_eq!(s.p99_upper_ms, Some(5.0));
    }
}
