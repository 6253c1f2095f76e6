#!/usr/bin/env python3
"""Summarises a bench/race.sh CSV: medians per workload and server, ratios hookbox / peer, as a
Markdown file; and PNG plots next to it when matplotlib is available.

Usage: plot.py RACE.csv RACE.md
"""
import statistics
import sys
from collections import defaultdict
from pathlib import Path

FIELDS = [
    ("srv_cpu_ns_per_delivery", "CPU µs / delivery", 1000.0),
    ("srv_cpu_ns_per_publish", "CPU µs / publish", 1000.0),
    ("lat_p50_us", "p50 ms", 1000.0),
    ("lat_p99_us", "p99 ms", 1000.0),
    ("lat_p999_us", "p99.9 ms", 1000.0),
    ("lost", "lost", 1.0),
    ("subs_failed", "refused subscribers", 1.0),
    ("srv_rss_per_conn_b", "RSS / conn KB", 1000.0),
    ("connects_per_s", "accepted connects / s", 1.0),
    ("login_p99_us", "CONNECT→CONNECTED p99 ms", 1000.0),
    ("srv_cpu_us_per_connect", "CPU µs / connect", 1.0),
    ("all_back_ms", "storm: all back, ms", 1.0),
    ("reconnect_p99_us", "storm: reconnect p99 ms", 1000.0),
    ("hooks_per_reconnect", "storm: webhooks / reconnect", 1.0),
    ("srv_cpu_us_per_reconnect", "storm: CPU µs / reconnect", 1.0),
    ("return_failed", "storm: failed returns", 1.0),
]


def load(path):
    rows = defaultdict(lambda: defaultdict(list))  # (workload, server) -> field -> values
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        _round, workload, server, rest = line.split(",", 3)
        for kv in rest.split():
            k, _, v = kv.partition("=")
            try:
                rows[(workload, server)][k].append(float(v))
            except ValueError:
                pass
    return rows


def main():
    csv, md = sys.argv[1], sys.argv[2]
    rows = load(csv)
    workloads = sorted({w for w, _ in rows})
    servers = []
    for _, s in rows:
        if s not in servers:
            servers.append(s)
    out = [f"# Race: {Path(csv).stem}", "", "Medians over the rounds; ratio = hookbox / peer.", ""]
    for w in workloads:
        present = [s for s in servers if (w, s) in rows]
        fields = [(k, label, scale) for k, label, scale in FIELDS
                  if any(k in rows[(w, s)] for s in present)]
        peers = [s for s in present if s != "hookbox"]
        header = ["metric"] + present + [f"hookbox / {s}" for s in peers]
        out.append(f"## {w}")
        out.append("")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for k, label, scale in fields:
            med = {s: statistics.median(rows[(w, s)][k]) / scale
                   for s in present if rows[(w, s)].get(k)}
            cells = [f"{med[s]:.2f}" if s in med else "–" for s in present]
            ratios = []
            for s in present:
                if s == "hookbox":
                    continue
                if "hookbox" in med and s in med and med[s] > 0:
                    ratios.append(f"{med['hookbox'] / med[s]:.2f}")
                else:
                    ratios.append("–")
            out.append("| " + " | ".join([label] + cells + ratios) + " |")
        out.append("")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        def save(fig, suffix, alt):
            """Writes the figure next to the Markdown; returns its image line."""
            png = Path(md).with_name(Path(md).stem + suffix)
            fig.savefig(png, dpi=100, bbox_inches="tight")
            plt.close(fig)
            return f"![{alt}]({png.name})"
        for k, label, scale in [FIELDS[0], FIELDS[2], FIELDS[3]]:
            fig, ax = plt.subplots(figsize=(7, 4))
            ws = [w for w in workloads if w[0] in "bc"]
            width = 0.8 / max(1, len(servers))
            for i, s in enumerate(servers):
                vals = [statistics.median(rows[(w, s)][k]) / scale if rows[(w, s)].get(k) else 0
                        for w in ws]
                ax.bar([j + i * width for j in range(len(ws))], vals, width, label=s)
            ax.set_xticks([j + width * (len(servers) - 1) / 2 for j in range(len(ws))], ws)
            ax.set_ylabel(label)
            ax.legend()
            out.append(save(fig, f"-{k}.png", label))
        # Latency CDFs (workloads B and C): the share of deliveries within a latency.
        for w in [w for w in workloads if w[0] in "bc" and "-r" not in w]:
            if not any(k.startswith("lat_cdf_") for s in servers for k in rows.get((w, s), {})):
                continue
            fig, ax = plt.subplots(figsize=(7, 4))
            for s in servers:
                row = rows.get((w, s))
                if not row:
                    continue
                pts = sorted((int(k.split("_")[2]), statistics.median(v) / 1000.0)
                             for k, v in row.items() if k.startswith("lat_cdf_"))
                if pts:
                    ax.plot([v for _, v in pts], [q / 10000 for q, _ in pts], marker=".", label=s)
            ax.set_xscale("log")
            ax.set_xlabel(f"{w}: end-to-end latency, ms (log)")
            ax.set_ylabel("share of deliveries")
            ax.legend()
            out.append(save(fig, f"-cdf-{w}.png", f"latency CDF, {w}"))
        # CPU per delivery against the publish rate (b1k at several rates).
        sweep = [w for w in workloads if w == "b1k" or w.startswith("b1k-r")]
        if len(sweep) > 1:
            fig, ax = plt.subplots(figsize=(7, 4))
            for s in servers:
                pts = sorted((statistics.median(rows[(w, s)]["rate_target"]),
                              statistics.median(rows[(w, s)]["srv_cpu_ns_per_delivery"]) / 1000.0)
                             for w in sweep if rows.get((w, s), {}).get("srv_cpu_ns_per_delivery"))
                if len(pts) > 1:
                    ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=s)
            ax.set_xlabel("publishes / s to 1,000 subscribers")
            ax.set_ylabel("server CPU µs / delivery")
            ax.set_ylim(bottom=0)
            ax.legend()
            out.append(save(fig, "-cpu-vs-rate.png", "CPU per delivery against rate"))
        # Idle footprint: RSS per connection against the number of connections.
        aw = sorted((w for w in workloads if w.startswith("a")),
                    key=lambda w: statistics.median(next(iter(
                        rows[(w, s)]["subs"] for s in servers if rows[(w, s)].get("subs")))))
        if aw:
            fig, ax = plt.subplots(figsize=(7, 4))
            for s in servers:
                pts = [(statistics.median(rows[(w, s)]["subs"]),
                        statistics.median(rows[(w, s)]["srv_rss_per_conn_b"]) / 1000.0)
                       for w in aw if rows[(w, s)].get("srv_rss_per_conn_b")]
                if pts:
                    ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=s)
            ax.set_xlabel("idle connections")
            ax.set_ylabel("server RSS / connection, KB")
            ax.set_ylim(bottom=0)
            ax.legend()
            out.append(save(fig, "-rss.png", "RSS per idle connection"))
        out.append("")
    except ImportError:
        out.append("(no plots: matplotlib is not installed)")
    Path(md).write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
