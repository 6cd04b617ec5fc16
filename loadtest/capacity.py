#!/usr/bin/env python3
"""Turns a capacity sweep (loadtest/capacity.sh) into a table, a plot and the "## Capacity"
section of BENCHMARKS.md.

    python3 loadtest/capacity.py loadtest/results/capacity

Criteria for "carries N calls" (all three):
  (a) p99 outbound frame lateness <= 20 ms,
  (b) p99 server-added latency < 5 ms, measured on barge-in -> clear: the clear is sent while the
      server handles the inbound frame that completes the barge-in, so clear arrival minus that
      frame's actual send time is the server's time plus loopback; beyond one frame, latency minus
      the frame's position (always the same frame of the same speech, a multiple of 20 ms),
  (c) zero failed calls.
"""

import glob
import json
import os
import re
import sys

MODES = {
    "tone": "null STT + tone TTS (media core only)",
    "offline": "pocketsphinx STT + espeak-ng TTS (offline speech)",
}


def load(out_dir):
    runs = {}
    for path in glob.glob(os.path.join(out_dir, "*.json")):
        m = re.match(r"(\w+)-(\d+)\.json$", os.path.basename(path))
        if not m:
            continue
        with open(path) as f:
            report = json.load(f)
        cmd_path = path[:-5] + ".cmd"
        report["cmd"] = open(cmd_path).read().strip() if os.path.exists(cmd_path) else ""
        runs.setdefault(m.group(1), []).append(report)
    for mode in runs:
        runs[mode].sort(key=lambda r: r["calls"])
    return runs


def analyse(runs):
    rows = []
    base = runs[0]
    # The frame that completes a barge-in sits at a whole number of 20 ms frames into the speech:
    # take it from the median of the smallest run with enough barge-ins to have a stable median.
    floor = None
    for r in runs:
        c = r["summary"]["barge_in_to_clear_ms"]
        if c["count"] >= 10:
            floor = 20.0 * int(c["p50"] // 20)
            break
    base_rss = (base.get("server") or {}).get("rss_mib_after")
    for r in runs:
        s, v = r["summary"], r.get("server") or {}
        clear = s["barge_in_to_clear_ms"]
        added = None
        if floor is not None and clear["count"]:
            over = max(0.0, clear["p99"] - floor)
            after = s.get("clear_after_last_send_ms") or {}
            # Within one frame, time from the triggering frame's actual send leaves out any delay
            # of the generator; beyond one frame the frame position is the only reference.
            added = after["p99"] if over < 20.0 and after.get("count") else over
        # No bot frame measured at all (every call failed) is not "on time".
        late = s["outbound_frame_lateness_ms"]["p99"] if s["outbound_frame_lateness_ms"]["count"] else float("inf")
        rss_marginal = None
        if base_rss is not None and r["calls"] > base["calls"] and v:
            rss_marginal = (v["rss_mib_after"] - base_rss) * 1024 / (r["calls"] - base["calls"])
        ok = late <= 20.0 and added is not None and added < 5.0 and s["failed_calls"] == 0
        rows.append(dict(r=r, s=s, v=v, added=added, late=late, rss_marginal=rss_marginal, ok=ok, floor=floor))
    return rows


def fmt(x, digits=1):
    return "-" if x is None or x != x or x in (float("inf"), float("-inf")) else f"{x:.{digits}f}"


def table(rows):
    head = ("| calls | failed | end of speech -> audio p50 / p99 (ms) | barge-in -> clear p50 / p99 (ms) "
            "| server-added p99 (ms) | frame lateness p99 (ms) | jitter p99 (ms) | underruns "
            "| server CPU (% of core) | CPU per call (%) | RSS (MiB) | RSS per added call (KiB) "
            "| generator CPU (%) | generator late sends | passes |")
    lines = [head, "|" + "|".join(["---"] * 15) + "|"]
    for x in rows:
        s, v = x["s"], x["v"]
        e, c = s["eos_to_first_audio_ms"], s["barge_in_to_clear_ms"]
        lines.append(
            f"| {x['r']['calls']} | {s['failed_calls']} | {fmt(e['p50'])} / {fmt(e['p99'])} | {fmt(c['p50'])} / {fmt(c['p99'])} "
            f"| {fmt(x['added'])} | {fmt(x['late'])} | {fmt(s['outbound_interarrival_jitter_ms']['p99'])} | {s['underruns']} "
            f"| {fmt(v.get('cpu_percent'))} | {fmt(v.get('cpu_percent_per_call'), 3)} | {fmt(v.get('rss_mib_after'))} "
            f"| {fmt(x['rss_marginal'], 0)} | {fmt(x['r']['generator_cpu_percent'], 0)} | {s['generator_late_sends']} of {s['frames_sent']} "
            f"| {'yes' if x['ok'] else 'no'} |"
        )
    return "\n".join(lines)


def failures(rows):
    out = []
    for x in rows:
        reasons = x["s"]["failure_reasons"]
        if reasons:
            text = ", ".join(f"{k} ({n})" for k, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:4])
            out.append(f"- {x['r']['calls']} calls: {text}")
    return out


def plot(analysed, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install matplotlib): no plot", file=sys.stderr)
        return False
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for mode, rows in analysed.items():
        n = [x["r"]["calls"] for x in rows]
        label = "tone" if mode == "tone" else "offline speech"
        axes[0].plot(n, [x["added"] if x["added"] is not None else float("nan") for x in rows], "o-", label=f"{label}: server-added p99 (barge-in -> clear)")
        axes[0].plot(n, [x["late"] if x["s"]["outbound_frame_lateness_ms"]["count"] else float("nan") for x in rows], "s--",
                     label=f"{label}: outbound frame lateness p99")
        axes[1].plot(n, [x["v"].get("cpu_percent", float("nan")) for x in rows], "o-", label=f"{label}: server CPU")
    axes[0].axhline(5, color="grey", lw=0.8, ls=":")
    axes[0].axhline(20, color="grey", lw=0.8, ls=":")
    axes[0].set_xlabel("concurrent calls")
    axes[0].set_ylabel("ms")
    axes[0].set_yscale("symlog", linthresh=10)
    axes[0].set_ylim(bottom=0)
    axes[0].set_title("Latency vs concurrent calls (server on one core)")
    axes[0].legend(fontsize=8)
    axes[1].axhline(100, color="grey", lw=0.8, ls=":")
    axes[1].set_xlabel("concurrent calls")
    axes[1].set_ylabel("% of one core")
    axes[1].set_title("Server CPU")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def section(analysed, out_dir, notes):
    run_txt = open(os.path.join(out_dir, "run.txt")).read().strip() if os.path.exists(os.path.join(out_dir, "run.txt")) else ""
    parts = ["## Capacity", "",
             "Whole-server load test: `switchboard-loadgen` (loadtest/) drives concurrent Twilio Media "
             "Streams calls over loopback against a release server pinned to one core (`taskset -c 0`), "
             "the generator pinned to the other (`taskset -c 1`). Each call talks continuously: the bot's "
             "answer plays out (marks echoed as Twilio does), a 2.1 s espeak-ng phrase in 20 ms μ-law "
             "frames, the answer; every third turn talks over the answer (barge-in), the second turn is a "
             "DTMF key. A fresh server per row; figures from the measured window only (after the ramp). "
             "Regenerate with `make bench` (loadtest/capacity.sh, then loadtest/capacity.py).", "",
             "```", run_txt, "```", "",
             "A row passes when (a) p99 outbound frame lateness <= 20 ms, (b) p99 server-added latency "
             "< 5 ms, (c) no call failed. *Server-added* is the time from sending the inbound frame that "
             "completes a barge-in to receiving the `clear` (the generator notes when it actually sent "
             "the frame, so its own delays are left out): the server's time plus loopback. When that is "
             "more than a frame, it is barge-in -> `clear` minus the frame's position instead (always the "
             "same frame of the same speech: the whole 20 ms multiple below the median of the smallest run "
             "with at least 10 barge-ins). "
             "*End of speech -> audio* includes the 600 ms VAD hangover and up to one 20 ms pacing tick. "
             "*Frame lateness*: how much later each bot frame arrived than its utterance's 20 ms schedule, "
             "set by the first frame after the 200 ms lead burst (early frames count as on time). CPU and RSS are the server's (`/proc/<pid>`), over the measured window.", ""]
    for mode, rows in analysed.items():
        # The largest count that passes with every smaller count passing too: one lucky row
        # above a failing one is noise, not capacity.
        best = None
        for x in rows:
            if not x["ok"]:
                break
            best = x["r"]["calls"]
        parts += [f"### {MODES.get(mode, mode)}", ""]
        if best is not None:
            x = next(x for x in rows if x["r"]["calls"] == best)
            parts.append(f"**Largest passing count (it and every smaller count pass): {best} concurrent calls on one core** "
                         f"(server CPU {fmt(x['v'].get('cpu_percent'))} % of a core, "
                         f"{fmt(x['v'].get('cpu_percent_per_call'), 3)} % per call, "
                         f"RSS {fmt(x['v'].get('rss_mib_after'))} MiB, {fmt(x['rss_marginal'], 0)} KiB per added call).")
        else:
            parts.append("**No count passed all three criteria.**")
        parts += ["", table(rows), ""]
        f = failures(rows)
        if f:
            parts += ["Failed calls by reason:", ""] + f + [""]
        parts += [f"Command of the largest row: `{rows[-1]['r']['cmd']}`", ""]
    parts += ["![capacity](loadtest/capacity.png)", ""]
    if notes:
        parts += [notes.strip(), ""]
    return "\n".join(parts)


def replace_section(path, text):
    old = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    m = re.search(r"^## Capacity\n", old, re.M)
    if m:
        nxt = re.search(r"^## ", old[m.end():], re.M)
        end = m.end() + nxt.start() if nxt else len(old)
        new = old[:m.start()] + text + ("\n" if nxt else "") + old[end:]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    with open(path, "w") as f:
        f.write(new.rstrip("\n") + "\n")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "loadtest/results/capacity"
    runs = load(out_dir)
    if not runs:
        sys.exit(f"no runs in {out_dir}")
    analysed = {mode: analyse(runs[mode]) for mode in ("tone", "offline") if mode in runs}
    plot(analysed, "loadtest/capacity.png")
    notes_path = "loadtest/capacity-notes.md"
    notes = open(notes_path).read() if os.path.exists(notes_path) else ""
    text = section(analysed, out_dir, notes)
    with open(os.path.join(out_dir, "capacity.md"), "w") as f:
        f.write(text)
    if os.environ.get("UPDATE_BENCHMARKS", "1") == "1":
        replace_section("BENCHMARKS.md", text)
    print(text)


if __name__ == "__main__":
    main()
