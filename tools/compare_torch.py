#!/usr/bin/python3
"""compare_torch.py: lowbit vs PyTorch (Debian's python3-torch) training throughput on the
identical convnet, measured side by side in one run.

Each measurement runs in its own process (so peak RSS is per run): PyTorch trains the same
architecture (conv3x3 no bias + BN + ReLU + maxpool x3, linear), SGD momentum 0.9, weight decay
5e-4, batch 128, on synthetic 1x28x28 data; lowbit runs `lowbit bench train` with the same
settings. Runs alternate (lowbit, torch, lowbit, torch, ...) so machine noise hits both; the
report gives medians and the ratio. Usage:
  /usr/bin/python3 tools/compare_torch.py [--lowbit build/tools/lowbit] [--threads 1 2] [--repeats 3]
Install PyTorch with: apt-get install python3-torch (run with Debian's /usr/bin/python3).
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def torch_worker(threads, batch, seconds, warmup):
    import torch
    import torch.nn as nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers, c = [], 1
    for out in (32, 64, 128):
        layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
        c = out
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 3 * 3, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    for _ in range(warmup):
        step()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or steps < 3:
        step()
        steps += 1
    el = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"images_per_s": steps * batch / el, "peak_rss_mb": rss, "torch": torch.__version__}))


def last_json(out):
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lowbit", default="build/tools/lowbit")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        torch_worker(a.worker_threads, a.batch, a.seconds, a.warmup)
        return
    summary = []
    for t in a.threads:
        lb, pt = [], []
        for r in range(a.repeats):
            out = subprocess.run([a.lowbit, "bench", "train", "--model", "convnet", "--batch", str(a.batch),
                                  "--threads", str(t), "--seconds", str(a.seconds), "--warmup", str(a.warmup),
                                  "--json"], check=True, capture_output=True, text=True).stdout
            lb.append(last_json(out))
            out = subprocess.run([sys.executable, __file__, "--worker", "--worker-threads", str(t), "--batch",
                                  str(a.batch), "--seconds", str(a.seconds), "--warmup", str(a.warmup)],
                                 check=True, capture_output=True, text=True).stdout
            pt.append(last_json(out))
            print(f"threads {t} run {r + 1}: lowbit {lb[-1]['images_per_s']:.0f} img/s, "
                  f"torch {pt[-1]['images_per_s']:.0f} img/s", file=sys.stderr)
        row = {
            "threads": t,
            "lowbit_images_per_s": statistics.median(x["images_per_s"] for x in lb),
            "torch_images_per_s": statistics.median(x["images_per_s"] for x in pt),
            "lowbit_peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in lb),
            "torch_peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in pt),
            "torch_version": pt[0]["torch"],
        }
        row["ratio"] = row["lowbit_images_per_s"] / row["torch_images_per_s"]
        summary.append(row)
        print(f"threads {t}: lowbit {row['lowbit_images_per_s']:.0f} img/s ({row['lowbit_peak_rss_mb']:.0f} MiB), "
              f"torch {row['torch_version']} {row['torch_images_per_s']:.0f} img/s ({row['torch_peak_rss_mb']:.0f} MiB), "
              f"ratio {row['ratio']:.2f}x (medians of {a.repeats})")
    if a.json:
        print(json.dumps({"results": summary}))


if __name__ == "__main__":
    main()
