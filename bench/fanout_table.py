#!/usr/bin/python3
"""Markdown table of bench/fanout's JSON lines (stdin or files), one row per server and case,
with pushwire's ratios against every peer of the same case (delivered msg/s, and server CPU
per delivered message, which stays meaningful when pw-bench itself is saturated).
  bench/fanout_table.py /tmp/fanout.jsonl"""
import fileinput
import json

rows = [json.loads(line) for line in fileinput.input() if line.strip().startswith("{")]
cases = {}
for r in rows:
    key = (r["subs"], r["size"], r["topics"], r.get("server_threads", 1), r.get("rate", 0),
           r.get("server_cpus", "0"))
    cases.setdefault(key, []).append(r)

print("| subscribers | size | topics | loop threads | publishes/s | server | delivered msg/s | "
      "pushwire / it | p50 ms | p99 ms | server CPU % | server ns/msg | pw-bench CPU % | gaps |")
print("| " + " | ".join(["---"] * 14) + " |")
for (subs, size, topics, threads, rate, cpus), rs in cases.items():
    pw = next((r for r in rs if r["server"] == "pushwire"), None)
    for r in rs:
        ratio = ""
        if pw and r is not pw and r["msgs_per_s"]:
            ratio = "%.2fx" % (pw["msgs_per_s"] / r["msgs_per_s"])
        ns = r.get("server_cpu_us_per_op", 0) * 1000
        print("| %d | %d | %d | %d%s | %s | %s | %s | %s | %.1f | %.1f | %s | %s | %s | %s |" % (
            subs, size, topics, threads, " (cores %s)" % cpus if cpus != "0" else "",
            rate or "max", r["server"], format(int(r["msgs_per_s"]), ","), ratio,
            r["lat_p50_us"] / 1000, r["lat_p99_us"] / 1000, r["cpu_server_pct"],
            "%.0f" % ns if ns else "", r["cpu_pwbench_pct"], r["gaps"]))
