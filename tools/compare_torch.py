#!/usr/bin/python3
"""compare_torch.py: lowbit vs PyTorch (Debian's python3-torch) training throughput on the
identical model, measured side by side in one run.

Each measurement runs in its own process (so peak RSS is per run): PyTorch trains the same
architecture as lowbit's zoo model (--model convnet: conv3x3 no bias + BN + ReLU + maxpool x3,
linear; --model resnet20: the CIFAR ResNet-20, 3x3 convs without bias, BN, 1x1 conv + BN
shortcuts where the shape changes, global average pool, linear), SGD momentum 0.9, weight decay
5e-4, batch 128, on synthetic 1x28x28 data; lowbit runs `lowbit bench train` with the same
settings. Runs alternate (lowbit, torch, lowbit, torch, ...) so machine noise hits both; the
report gives medians and the ratio. --baseline OTHER_LOWBIT adds a third alternating column
(e.g. the build of another commit) and its ratio. Usage:
  /usr/bin/python3 tools/compare_torch.py [--model convnet|resnet20] [--lowbit build/tools/lowbit]
                                          [--threads 1 2] [--repeats 3] [--baseline OLD/lowbit]
Install PyTorch with: apt-get install python3-torch (run with Debian's /usr/bin/python3).
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def torch_convnet(nn):
    layers, c = [], 1
    for out in (32, 64, 128):
        layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
        c = out
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 3 * 3, 10))


def torch_resnet20(nn):
    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))
            self.relu = nn.ReLU()

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(y + self.shortcut(x))

    layers, c = [nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for out, stride in ((16, 1), (32, 2), (64, 2)):
        for b in range(3):
            layers.append(BasicBlock(c, out, stride if b == 0 else 1))
            c = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def torch_worker(model_name, threads, batch, seconds, warmup):
    import torch
    import torch.nn as nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch_resnet20(nn) if model_name == "resnet20" else torch_convnet(nn)
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
    ap.add_argument("--model", choices=["convnet", "resnet20"], default="convnet")
    ap.add_argument("--lowbit", default="build/tools/lowbit")
    ap.add_argument("--baseline", help="another lowbit binary, timed in the same alternation")
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
        torch_worker(a.model, a.worker_threads, a.batch, a.seconds, a.warmup)
        return
    summary = []
    for t in a.threads:
        lb, pt, base = [], [], []

        def bench_lowbit(binary):
            out = subprocess.run([binary, "bench", "train", "--model", a.model, "--batch", str(a.batch),
                                  "--threads", str(t), "--seconds", str(a.seconds), "--warmup", str(a.warmup),
                                  "--json"], check=True, capture_output=True, text=True).stdout
            return last_json(out)

        for r in range(a.repeats):
            lb.append(bench_lowbit(a.lowbit))
            out = subprocess.run([sys.executable, __file__, "--worker", "--model", a.model, "--worker-threads", str(t),
                                  "--batch", str(a.batch), "--seconds", str(a.seconds), "--warmup", str(a.warmup)],
                                 check=True, capture_output=True, text=True).stdout
            pt.append(last_json(out))
            if a.baseline:
                base.append(bench_lowbit(a.baseline))
            print(f"threads {t} run {r + 1}: lowbit {lb[-1]['images_per_s']:.0f} img/s, "
                  f"torch {pt[-1]['images_per_s']:.0f} img/s"
                  + (f", baseline {base[-1]['images_per_s']:.0f} img/s" if base else ""), file=sys.stderr)
        row = {
            "model": a.model,
            "threads": t,
            "lowbit_images_per_s": statistics.median(x["images_per_s"] for x in lb),
            "torch_images_per_s": statistics.median(x["images_per_s"] for x in pt),
            "lowbit_peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in lb),
            "torch_peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in pt),
            "torch_version": pt[0]["torch"],
        }
        row["ratio"] = row["lowbit_images_per_s"] / row["torch_images_per_s"]
        if base:
            row["baseline_images_per_s"] = statistics.median(x["images_per_s"] for x in base)
            row["ratio_vs_baseline"] = row["lowbit_images_per_s"] / row["baseline_images_per_s"]
        summary.append(row)
        print(f"threads {t}: lowbit {row['lowbit_images_per_s']:.0f} img/s ({row['lowbit_peak_rss_mb']:.0f} MiB), "
              f"torch {row['torch_version']} {row['torch_images_per_s']:.0f} img/s ({row['torch_peak_rss_mb']:.0f} MiB), "
              f"ratio {row['ratio']:.2f}x (medians of {a.repeats})"
              + (f", {row['ratio_vs_baseline']:.2f}x the baseline" if base else ""))
    if a.json:
        print(json.dumps({"results": summary}))


if __name__ == "__main__":
    main()
