"""Summarises benches/peer/run.sh results: medians over reps, % of direct within each rep,
labelgate's ratios against Squid ssl-bump and mitmproxy, and the memory figures."""
import collections
import statistics
import sys

path, lg_before, lg_after, squid_rss = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
by = collections.defaultdict(dict)  # (case, path) -> rep -> (rps, p50, p99, cpu, ok, n)
for rep, case, p, rps, p50, p99, cpu, ok, n in rows:
    by[(case, p)][rep] = (float(rps), float(p50), float(p99), float(cpu), int(ok), int(n))

med = statistics.median
order = ["direct-http", "squid-http", "mitmproxy-http", "labelgate-http", "direct-https", "squid-bump", "mitmproxy-intercept", "labelgate-intercept"]
cases = []
for case, _ in by:
    if case not in cases and case != "200x10MiB c200":
        cases.append(case)
print("| case | path | rps | % of direct | p50 ms | p99 ms | proxy CPU ms/req | 2xx |")
print("|---|---|---|---|---|---|---|---|")
for case in cases:
    for p in order:
        reps = by.get((case, p))
        if not reps:
            continue
        direct = by[(case, "direct-https" if p.endswith(("https", "bump", "intercept")) else "direct-http")]
        pct = med([reps[r][0] / direct[r][0] * 100 for r in reps if r in direct])
        cpu = "-" if p.startswith("direct") else f"{med([v[3] for v in reps.values()]):.2f}"
        ok = sum(v[4] for v in reps.values()); n = sum(v[5] for v in reps.values())
        print(f"| {case} | {p} | {med([v[0] for v in reps.values()]):.0f} | {pct:.0f}% | {med([v[1] for v in reps.values()]):.1f} | {med([v[2] for v in reps.values()]):.1f} | {cpu} | {ok}/{n} |")
print()
for case in cases:
    lg = by.get((case, "labelgate-intercept"))
    for peer in ("squid-bump", "mitmproxy-intercept"):
        other = by.get((case, peer))
        if lg and other:
            ratio = med([lg[r][0] / other[r][0] for r in lg if r in other])
            print(f"- {case}: labelgate intercepted throughput = {ratio:.2f}x {peer}")
    plain, direct = by.get((case, "labelgate-http")), by.get((case, "direct-http"))
    if plain and direct and "64KiB" not in case:
        print(f"- {case}: labelgate plain HTTP = {med([plain[r][0] / direct[r][0] for r in plain if r in direct]):.2f}x direct")
for kind, d in (("http", "direct-http"), ("intercept", "direct-https")):
    lg, dd = by.get(("64KiB c1", f"labelgate-{kind}")), by.get(("64KiB c1", d))
    if lg and dd:
        print(f"- 64 KiB upload, c1: labelgate-{kind} adds {med([lg[r][1] - dd[r][1] for r in lg if r in dd]):.2f} ms to the median latency")
mem = by.get(("200x10MiB c200", "labelgate-intercept"), {}).get("mem")
if mem:
    print(f"- 200 concurrent 10 MiB intercepted uploads: labelgate peak RSS {lg_after} MiB (idle before: {lg_before} MiB), {mem[4]}/{mem[5]} 2xx, {mem[3]:.2f} ms CPU/req")
sq = by.get(("200x10MiB c200", "squid-bump"), {}).get("mem")
if sq:
    print(f"- the same through Squid ssl-bump: peak RSS {squid_rss} MiB, {sq[4]}/{sq[5]} 2xx")
