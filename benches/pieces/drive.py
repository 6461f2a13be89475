#!/usr/bin/env python3
"""Drives one split-upload measurement through labelgate: the same file as one PUT, then as
Content-Range fragments of one session (Google-style), over one keep-alive connection each.

  drive.py PROXY_PORT ORIGIN_PORT FILE FRAGMENT MODE     MODE: whole | pieces | separate
(separate: the same fragments as independent uploads without Content-Range, each inspected as a
file of its own: the cost of the requests themselves, without reassembly)
Prints one JSON line: {"mode", "requests", "seconds", "statuses"}.
"""
import json, sys, time
import requests

proxy_port, origin_port, path, fragment, mode = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
data = open(path, "rb").read()
s = requests.Session()
s.trust_env = False
s.proxies = {"http": f"http://127.0.0.1:{proxy_port}"}
name = f"{mode}-{time.time_ns()}.docx"
url = f"http://127.0.0.1:{origin_port}/dav/{name}"
statuses = {}
start = time.monotonic()
if mode == "whole":
    r = s.put(url, data=data)
    statuses[r.status_code] = 1
    requests_sent = 1
else:
    requests_sent = 0
    for a in range(0, len(data), fragment):
        b = min(a + fragment, len(data))
        if mode == "separate":
            r = s.put(f"{url}.{a}", data=data[a:b])
        else:
            r = s.put(url, data=data[a:b], headers={"Content-Range": f"bytes {a}-{b - 1}/{len(data)}"})
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        requests_sent += 1
print(json.dumps({"mode": mode, "requests": requests_sent, "seconds": round(time.monotonic() - start, 3), "statuses": statuses}), flush=True)
