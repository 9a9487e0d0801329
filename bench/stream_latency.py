#!/usr/bin/env python3
"""S2: latency from a window's end to its first line on tally's stdout.

A producer writes 1BRC lines into `tally stream --window 100ms` (processing
time) at a fixed rate; a reader notes when the first line of each window
arrives. latency = arrival time - window_end (both wall clock, ms).
"""
import argparse, json, subprocess, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--tally", default="target/release/tally")
ap.add_argument("--rate", type=int, required=True, help="records per second")
ap.add_argument("--seconds", type=float, default=10)
ap.add_argument("--window", default="100ms")
ap.add_argument("--workers", default="2")
args = ap.parse_args()

stations = [f"Station{i:03d}" for i in range(413)]
lines = [f"{stations[i % 413]};{(i * 7919) % 1999 / 10 - 99.9:.1f}\n" for i in range(1 << 16)]
block = "".join(lines).encode()
per_block = len(lines)
offsets = [0]
for l in lines:
    offsets.append(offsets[-1] + len(l))

p = subprocess.Popen([args.tally, "stream", "-d", ";", "--columns", "station,temp",
                      "--by", "station", "--agg", "mean(temp)", "--window", args.window,
                      "--time-format", "ms", "-j", args.workers],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
first_seen = {}

def read():
    for raw in p.stdout:
        now = time.time() * 1000
        end = json.loads(raw)["window_end"]
        first_seen.setdefault(end, now)

t = threading.Thread(target=read, daemon=True)
t.start()
start = time.time()
sent = 0
# Token bucket in 1 ms steps, whole blocks of 65536 lines cut to size.
while True:
    now = time.time()
    if now - start >= args.seconds:
        break
    due = int((now - start) * args.rate)
    if due - sent >= 4096:
        n = min(due - sent, per_block)
        p.stdin.write(block[:offsets[n]])  # whole lines
        p.stdin.flush()
        sent += n
    else:
        time.sleep(0.0005)
achieved = sent / (time.time() - start)
p.stdin.close()
p.wait()
t.join()
lat = sorted(v - k for k, v in first_seen.items())[2:-1]  # drop start-up and the final flush
if not lat:
    print("no windows measured")
else:
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]
    print(f"S2 windows {len(lat)}, offered {achieved:.0f} records/s: latency p50 {q(0.5):.1f} ms, "
          f"p99 {q(0.99):.1f} ms, max {lat[-1]:.1f} ms")
