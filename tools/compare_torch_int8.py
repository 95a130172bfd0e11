#!/usr/bin/python3
"""compare_torch_int8.py: lowbit's integer runtime vs PyTorch's int8 model (Debian's
python3-torch, eager-mode static post-training quantization) on the identical convnet, measured
side by side in one run.

PyTorch builds the architecture lowbit exports (conv3x3 32/64/128 + BN + ReLU + maxpool2 x3,
flatten, linear 1152->10, input 1x28x28), fuses conv+BN+ReLU, calibrates on random images and
converts to int8 for each quantized engine asked for (onednn by default; fbgemm / x86 / qnnpack
when the build has them). The weights are random: speed does not depend on them. lowbit runs
`lowbit bench infer --json` on an exported model (e.g. the W2A2 PACT-SAWB convnet). Every
measurement is its own process; runs alternate (lowbit, torch engine 1, engine 2, ..., lowbit,
...) so machine noise hits all of them; warm-up calls are excluded; the report gives medians
over the repeats and the ratios at batch N (throughput) and batch 1 (latency), by wall clock and
by process CPU time (steadier on a shared machine). Usage:
  /usr/bin/python3 tools/compare_torch_int8.py --model w2a2.safetensors \\
      [--lowbit build/tools/lowbit] [--threads 1 2] [--batch 256] [--repeats 3] [--engines onednn]
Install PyTorch with: apt-get install python3-torch (run with Debian's /usr/bin/python3).
"""
import argparse
import json
import statistics
import subprocess
import sys
import time


def build_int8_model(engine, batch):
    import torch
    import torch.nn as nn
    import torch.ao.quantization as tq

    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [], 1
            for out in (32, 64, 128):
                layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
                c = out
            self.quant = tq.QuantStub()
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(128 * 3 * 3, 10)
            self.dequant = tq.DeQuantStub()

        def forward(self, x):
            x = self.features(self.quant(x))
            return self.dequant(self.fc(torch.flatten(x, 1)))

    torch.manual_seed(0)
    torch.backends.quantized.engine = engine
    model = ConvNet().eval()
    tq.fuse_modules(model.features, [[str(i), str(i + 1), str(i + 2)] for i in (0, 4, 8)], inplace=True)
    model.qconfig = tq.get_default_qconfig(engine)
    tq.prepare(model, inplace=True)
    with torch.inference_mode():
        for _ in range(4):  # calibration: activation ranges on random images
            model(torch.randn(batch, 1, 28, 28))
    tq.convert(model, inplace=True)
    return model


def time_calls(f, images, seconds, warmup):
    """Images per second by wall clock and by process CPU time, warm-up calls excluded."""
    for _ in range(warmup):
        f()
    calls, c0, t0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds or calls < 3:
        f()
        calls += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return calls * images / wall, calls * images / max(cpu, 1e-9)


def torch_worker(engine, threads, batch, seconds, warmup):
    import torch
    torch.set_num_threads(threads)
    model = build_int8_model(engine, batch)
    x, x1 = torch.randn(batch, 1, 28, 28), torch.randn(1, 1, 28, 28)
    with torch.inference_mode():
        ips, cpu_ips = time_calls(lambda: model(x), batch, seconds, warmup)
        b1, b1_cpu = time_calls(lambda: model(x1), 1, seconds, 10 * warmup)
    print(json.dumps({"images_per_s": ips, "images_per_cpu_s": cpu_ips, "batch1_ms": 1000.0 / b1,
                      "batch1_cpu_ms": 1000.0 / b1_cpu, "torch": torch.__version__}))


def last_json(out):
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="exported lowbit model (lowbit export --out ...)")
    ap.add_argument("--lowbit", default="build/tools/lowbit")
    ap.add_argument("--engines", nargs="+", default=None,
                    help="PyTorch quantized engines (default: onednn, fbgemm, x86 where available)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        torch_worker(a.worker, a.worker_threads, a.batch, a.seconds, a.warmup)
        return
    engines = a.engines
    if engines is None:
        import torch
        engines = [e for e in ("onednn", "fbgemm", "x86") if e in torch.backends.quantized.supported_engines]
    keys = ("images_per_s", "images_per_cpu_s", "batch1_ms", "batch1_cpu_ms")
    summary = []
    for t in a.threads:
        runs = {"lowbit": [], **{e: [] for e in engines}}
        for r in range(a.repeats):
            # bench infer's --seconds is split over its rounds (3 by default), three kinds each.
            out = subprocess.run([a.lowbit, "bench", "infer", "--model", a.model, "--batch", str(a.batch),
                                  "--threads", str(t), "--seconds", str(a.seconds), "--json"],
                                 check=True, capture_output=True, text=True).stdout
            runs["lowbit"].append(last_json(out))
            for e in engines:
                out = subprocess.run([sys.executable, __file__, "--model", a.model, "--worker", e,
                                      "--worker-threads", str(t), "--batch", str(a.batch), "--seconds",
                                      str(a.seconds), "--warmup", str(a.warmup)],
                                     check=True, capture_output=True, text=True).stdout
                runs[e].append(last_json(out))
            print(f"threads {t} run {r + 1}: " + ", ".join(
                f"{k} {v[-1]['images_per_s']:.0f} img/s {v[-1]['batch1_ms']:.3f} ms" for k, v in runs.items()),
                file=sys.stderr)
        med = {k: {f: statistics.median(x[f] for x in v) for f in keys} for k, v in runs.items()}
        row = {"threads": t, "batch": a.batch, "lowbit": med["lowbit"],
               "lowbit_vs_float32": statistics.median(x["ratio"] for x in runs["lowbit"]),
               "torch_version": runs[engines[0]][0]["torch"] if engines else None, "torch": {}}
        print(f"threads {t}, batch {a.batch} (medians of {a.repeats}): lowbit {med['lowbit']['images_per_s']:.0f} "
              f"img/s ({row['lowbit_vs_float32']:.2f}x its float32), batch-1 {med['lowbit']['batch1_ms']:.3f} ms")
        for e in engines:
            m, lb = med[e], med["lowbit"]
            ratios = {"throughput": lb["images_per_s"] / m["images_per_s"],
                      "throughput_cpu": lb["images_per_cpu_s"] / m["images_per_cpu_s"],
                      "latency": m["batch1_ms"] / lb["batch1_ms"],
                      "latency_cpu": m["batch1_cpu_ms"] / lb["batch1_cpu_ms"]}
            row["torch"][e] = {**m, "lowbit_speedup": ratios}
            print(f"  torch {row['torch_version']} int8 {e}: {m['images_per_s']:.0f} img/s, batch-1 "
                  f"{m['batch1_ms']:.3f} ms -> lowbit {ratios['throughput']:.2f}x throughput "
                  f"({ratios['throughput_cpu']:.2f}x by CPU time), {ratios['latency']:.2f}x lower batch-1 latency "
                  f"({ratios['latency_cpu']:.2f}x by CPU time)")
        summary.append(row)
    if a.json:
        print(json.dumps({"results": summary}))


if __name__ == "__main__":
    main()
