#!/usr/bin/env python3
"""bench/run.sh's report for issue 19 (python3 standard library only).

    bench/report.py LOAD_TSV FLOW_TSV SIGN_PER_SEC CORES SVG_OUT

LOAD_TSV: one row per light-client point (`device-fleet load`):
    server conc requests valid invalid valid_per_sec p50 p90 p99 server_cpu_ms client_cpu_ms rss_mib
FLOW_TSV: one row per whole-device-flow point (`device-fleet`, the issue 8 table).
Prints the targets table (each point as a ratio to this run's OpenSSL bound), the points
table, the device-flow table, and writes valid/s and p99 against concurrency per server as SVG.
"""
import sys

LABELS = {
    "plain": "ndes-proxy plain",
    "full": "full pipeline (SQLite)",
    "full-pg": "full pipeline (PostgreSQL)",
    "micromdm": "micromdm scepserver",
}
COLORS = {"plain": "#1f77b4", "full": "#2ca02c", "full-pg": "#9467bd", "micromdm": "#d62728"}


def rows(path):
    try:
        return [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
    except OSError:
        return []


def main():
    load_tsv, flow_tsv, sign, cores, svg_out = sys.argv[1:6]
    sign, cores = float(sign), int(cores)
    bound = sign / 3 if sign else 0.0
    # CPU of the 3 RSA private operations of one enrollment, ms (all cores were busy in speed).
    rsa_ms = 3 * 1000.0 * cores / sign if sign else 0.0
    pts = {}
    for r in rows(load_tsv):
        server, conc = r[0], int(r[1])
        pts[(server, conc)] = {
            "requests": int(r[2]), "valid": int(r[3]), "invalid": int(r[4]),
            "rate": float(r[5]), "p50": float(r[6]), "p90": float(r[7]), "p99": float(r[8]),
            "scpu": float(r[9]) if r[9] != "-" else None, "ccpu": float(r[10]),
            "rss": int(r[11]) if r[11] != "-" else None,
        }
    print(f"OpenSSL RSA-2048 private ops/s on {cores} cores: {sign:.0f}; 3 per enrollment on the "
          f"server -> bound {bound:.0f} enrollments/s; 3 RSA operations = {rsa_ms:.2f} ms of CPU")
    print()
    print("Targets (issue 19), each against this run's bound:")
    print()
    print("| target | point | measured | goal | verdict |")
    print("|---|---|---:|---:|---|")

    def target(name, key, measure, fmt, goal, ok):
        p = pts.get(key)
        if p is None:
            print(f"| {name} | {LABELS.get(key[0], key[0])} c={key[1]} | not run | {goal} | - |")
            return
        v = measure(p)
        if v is None:
            print(f"| {name} | {LABELS.get(key[0], key[0])} c={key[1]} | - | {goal} | - |")
            return
        verdict = "met" if ok(v) and p["invalid"] == 0 else "missed"
        print(f"| {name} | {LABELS.get(key[0], key[0])} c={key[1]} | {fmt(v)} | {goal} | {verdict} |")

    pct = lambda p: 100 * p["rate"] / bound if bound else 0.0
    for server, goal in [("plain", 50), ("full", 30), ("full-pg", 20)]:
        for c in (16, 64):
            target("valid/s as % of bound", (server, c), pct,
                   lambda v: f"{v:.0f}%", f">= {goal}%", lambda v, g=goal: v >= g)
    for server, times in [("plain", 2.0), ("full", 3.5)]:
        target("server CPU per valid enrollment / CPU of 3 RSA ops", (server, 16),
               lambda p: p["scpu"] / rsa_ms if p["scpu"] is not None and rsa_ms else None,
               lambda v: f"{v:.1f}x", f"<= {times}x", lambda v, t=times: v <= t)
    target("p99 (quiet machine)", ("plain", 16), lambda p: p["p99"], lambda v: f"{v:.0f} ms",
           "<= 40 ms", lambda v: v <= 40)
    for server in ("plain", "full", "full-pg"):
        target("server peak RSS", (server, 64), lambda p: p["rss"],
               lambda v: f"{v} MiB", "<= 64 MiB", lambda v: v is not None and v <= 64)
    mm = pts.get(("micromdm", 1))
    if mm and mm["rate"]:
        target("x micromdm valid/s at c=1", ("plain", 1), lambda p: p["rate"] / mm["rate"],
               lambda v: f"{v:.1f}x", ">= 2x", lambda v: v >= 2)
    else:
        print("| x micromdm valid/s at c=1 | - | micromdm not run | >= 2x | - |")
    above = [k for k in pts if k[1] > 1 and k[0] != "micromdm"]
    bad = [k for k in above if pts[k]["invalid"]]
    print(f"| every point above c=1 100% valid | {len(above)} points | "
          f"{len(above) - len(bad)} all valid | all | {'met' if above and not bad else 'missed' if bad else '-'} |")
    print()
    print("Points (light client: requests built before the window, every CertRep checked after):")
    print()
    print("| server | conc | requests | valid | invalid | valid/s | % of bound | p50 ms | p90 ms | "
          "p99 ms | server CPU ms/enr | x 3 RSA | client CPU ms/enr | server peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (server, c), p in sorted(pts.items(), key=lambda kv: (list(LABELS).index(kv[0][0])
                                                                if kv[0][0] in LABELS else 9, kv[0][1])):
        scpu = f"{p['scpu']:.2f}" if p["scpu"] is not None else "-"
        times = f"{p['scpu'] / rsa_ms:.1f}" if p["scpu"] is not None and rsa_ms else "-"
        print(f"| {LABELS.get(server, server)} | {c} | {p['requests']} | {p['valid']} | {p['invalid']} | "
              f"{p['rate']:.1f} | {pct(p):.0f}% | {p['p50']:.1f} | {p['p90']:.1f} | {p['p99']:.1f} | "
              f"{scpu} | {times} | {p['ccpu']:.2f} | {p['rss'] if p['rss'] is not None else '-'} |")
    flow = rows(flow_tsv)
    if flow:
        print()
        print("Whole device flow (`device-fleet`: the device's own work, registration and check-in "
              "inside the timing; the issue 8 points):")
        print()
        print("| server | conc | devices | valid | invalid | valid/s | p50 ms | p99 ms | CPU ms/enr | "
              "peak RSS MiB |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in flow:
            print("| " + " | ".join(r[:10]) + " |")
    if pts:
        with open(svg_out, "w") as f:
            f.write(svg(pts, bound))
        print()
        print(f"chart: {svg_out}")


def svg(pts, bound):
    """Two panels: valid/s and p99 against concurrency (log scale), one line per server."""
    servers = [s for s in LABELS if any(k[0] == s for k in pts)]
    concs = sorted({k[1] for k in pts})
    W, H, M = 460, 300, 55
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W + 20}" height="{H + 70}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{2 * W + 20}" height="{H + 70}" fill="white"/>']

    def panel(x0, title, value, unit, ref=None):
        vals = [value(p) for p in pts.values()] + ([ref] if ref else [])
        top = max(vals + [1.0]) * 1.1
        px = lambda c: x0 + M + (concs.index(c) / max(len(concs) - 1, 1)) * (W - M - 15)
        py = lambda v: 20 + (H - 40) * (1 - v / top)
        out.append(f'<text x="{x0 + W / 2}" y="14" text-anchor="middle" font-weight="bold">{title}</text>')
        out.append(f'<line x1="{x0 + M}" y1="{H - 20}" x2="{x0 + W - 15}" y2="{H - 20}" stroke="black"/>')
        out.append(f'<line x1="{x0 + M}" y1="20" x2="{x0 + M}" y2="{H - 20}" stroke="black"/>')
        for i in range(6):
            v = top * i / 5
            out.append(f'<text x="{x0 + M - 5}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>')
            out.append(f'<line x1="{x0 + M}" y1="{py(v):.1f}" x2="{x0 + W - 15}" y2="{py(v):.1f}" stroke="#eee"/>')
        for c in concs:
            out.append(f'<text x="{px(c):.1f}" y="{H - 5}" text-anchor="middle">{c}</text>')
        out.append(f'<text x="{x0 + W / 2}" y="{H + 10}" text-anchor="middle">concurrency</text>')
        out.append(f'<text x="{x0 + 12}" y="{H / 2}" transform="rotate(-90 {x0 + 12} {H / 2})" '
                   f'text-anchor="middle">{unit}</text>')
        if ref:
            out.append(f'<line x1="{x0 + M}" y1="{py(ref):.1f}" x2="{x0 + W - 15}" y2="{py(ref):.1f}" '
                       'stroke="gray" stroke-dasharray="4 3"/>')
            out.append(f'<text x="{x0 + W - 17}" y="{py(ref) - 4:.1f}" text-anchor="end" fill="gray">'
                       'OpenSSL bound</text>')
        for s in servers:
            line = [(c, value(pts[(s, c)])) for c in concs if (s, c) in pts]
            d = " ".join(f"{px(c):.1f},{py(v):.1f}" for c, v in line)
            out.append(f'<polyline points="{d}" fill="none" stroke="{COLORS[s]}" stroke-width="2"/>')
            for c, v in line:
                out.append(f'<circle cx="{px(c):.1f}" cy="{py(v):.1f}" r="3" fill="{COLORS[s]}"/>')

    panel(0, "valid enrollments/s", lambda p: p["rate"], "valid/s", bound)
    panel(W + 20, "p99 latency", lambda p: p["p99"], "ms")
    for i, s in enumerate(servers):
        x = 20 + i * 220
        out.append(f'<rect x="{x}" y="{H + 30}" width="12" height="12" fill="{COLORS[s]}"/>')
        out.append(f'<text x="{x + 16}" y="{H + 41}">{LABELS[s]}</text>')
    out.append("</svg>\n")
    return "\n".join(out)


if __name__ == "__main__":
    main()
