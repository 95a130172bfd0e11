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

ISA matrix (--isa-matrix; --classes implies it): the same alternating measurement once per SIMD class
this CPU can run, set for the child processes only (the approach of compare_torch_int8.py):
  class   lowbit             PyTorch (oneDNN)           /proc/cpuinfo flags it needs
  native  default level      default                    -
  avx2    LOWBIT_ISA=avx2    ONEDNN_MAX_CPU_ISA=AVX2    avx2 fma
(ONEDNN_MAX_CPU_ISA is also set as DNNL_MAX_CPU_ISA for older oneDNN; the native class runs with
neither variable, nor LOWBIT_ISA, whatever the caller's environment holds.) avx2 is "emulated" on a
CPU with AVX-512 and "real" otherwise (then it is the native class for float training and is
skipped). Each class is checked on both sides first: `lowbit --version` under its environment must
succeed (lowbit refuses a level the CPU lacks) and name the level, and one short torch worker trains
one step under ONEDNN_VERBOSE=1: the float convolutions oneDNN executed (e.g. jit:avx2,
jit:avx512_core) are recorded, and for avx2 every name that carries an ISA must say avx2 and not
avx512, and oneDNN's isa line must not claim AVX-512; a mismatch is a loud warning and "isa_check":
false, the class is still measured. Every row names the class, the real CPU (model name, family,
model, AMX / VNNI / AVX-512 present) and whether the class is emulated on it, with medians of img/s
and peak RSS per class; a markdown table of all rows follows (and with --json one JSON line).
  /usr/bin/python3 tools/compare_torch.py --model resnet20 --threads 1 2 --repeats 3 --seconds 6 --isa-matrix
Install PyTorch with: apt-get install python3-torch (run with Debian's /usr/bin/python3).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from compare_common import (check_class_kernels, clean_env, cpu_info, flush_c_stdout, last_json, lowbit_level,
                            onednn_conv_kernels, print_matrix_trailer)

# --isa-matrix classes, in order: (class, LOWBIT_ISA, ONEDNN_MAX_CPU_ISA, /proc/cpuinfo flags needed);
# None: the default of that side.
ISA_CLASSES = (
    ("native", None, None, ()),
    ("avx2", "avx2", "AVX2", ("avx2", "fma")),
)
# Flags above the class for float training: a CPU with one runs the class emulated.
ISA_ABOVE = {"native": (), "avx2": ("avx512f",)}
VERBOSE_MARK = "### compare_torch: timed part"


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


def torch_worker(model_name, threads, batch, seconds, warmup, kernel_check=False):
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

    if kernel_check:  # --isa-matrix: one training step under ONEDNN_VERBOSE, after the mark
        flush_c_stdout()
        print(VERBOSE_MARK, flush=True)
        step()
        flush_c_stdout()
        print(json.dumps({"torch": torch.__version__}), flush=True)
        return
    for _ in range(warmup):
        step()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or steps < 3:
        step()
        steps += 1
    el = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"images_per_s": steps * batch / el, "peak_rss_mb": rss, "torch": torch.__version__}))




def measure(a, t, lowbit_env=None, torch_env=None, label=""):
    """Alternating runs (lowbit, torch[, baseline]) x repeats at t threads, each its own process; the medians row."""
    lb, pt, base = [], [], []

    def bench_lowbit(binary):
        out = subprocess.run([binary, "bench", "train", "--model", a.model, "--batch", str(a.batch),
                              "--threads", str(t), "--seconds", str(a.seconds), "--warmup", str(a.warmup),
                              "--json"], check=True, capture_output=True, text=True, env=lowbit_env).stdout
        return last_json(out)

    for r in range(a.repeats):
        lb.append(bench_lowbit(a.lowbit))
        out = subprocess.run([sys.executable, __file__, "--worker", "--model", a.model, "--worker-threads", str(t),
                              "--batch", str(a.batch), "--seconds", str(a.seconds), "--warmup", str(a.warmup)],
                             check=True, capture_output=True, text=True, env=torch_env).stdout
        pt.append(last_json(out))
        if a.baseline:
            base.append(bench_lowbit(a.baseline))
        print(f"{label}threads {t} run {r + 1}: lowbit {lb[-1]['images_per_s']:.0f} img/s, "
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
    print(f"{label}threads {t}: lowbit {row['lowbit_images_per_s']:.0f} img/s ({row['lowbit_peak_rss_mb']:.0f} MiB), "
          f"torch {row['torch_version']} {row['torch_images_per_s']:.0f} img/s ({row['torch_peak_rss_mb']:.0f} MiB), "
          f"ratio {row['ratio']:.2f}x (medians of {a.repeats})"
          + (f", {row['ratio_vs_baseline']:.2f}x the baseline" if base else ""))
    return row


def kernel_matches(cls, name):
    """Whether a oneDNN float convolution implementation (e.g. jit:avx2) may run in the class.

    Names without an ISA tag (gemm:jit, ref) follow oneDNN's ISA cap, which the isa line checks."""
    n = name.lower()
    if cls != "avx2":
        return True
    tagged = any(k in n for k in ("avx", "sse", "amx"))
    return not tagged or ("avx2" in n and "avx512" not in n)


def isa_matrix(a, classes):
    """--isa-matrix: per class the CPU can run, lowbit (LOWBIT_ISA) against PyTorch (ONEDNN_MAX_CPU_ISA)."""
    cpu = cpu_info()
    flags = set(cpu["flags"])
    print(f"CPU: {cpu['label']}; {cpu['features_label']}", file=sys.stderr)
    base_env = clean_env(os.environ)
    rows, skipped, failed_checks = [], [], []
    for cls, lowbit_isa, onednn_isa, needs in ISA_CLASSES:
        if cls not in classes:
            continue
        missing = [f for f in needs if f not in flags]
        above = [f for f in ISA_ABOVE[cls] if f in flags]
        if missing:
            skipped.append({"class": cls, "reason": f"the CPU lacks {', '.join(missing)} (/proc/cpuinfo flags)"})
        elif cls != "native" and not above:
            skipped.append({"class": cls, "reason": "the CPU has nothing above it for float: the native class is it"})
        if skipped and skipped[-1]["class"] == cls:
            print(f"skipping {cls}: {skipped[-1]['reason']}", file=sys.stderr)
            continue
        lowbit_env = dict(base_env, **({"LOWBIT_ISA": lowbit_isa} if lowbit_isa else {}))
        torch_env = dict(base_env, **({"ONEDNN_MAX_CPU_ISA": onednn_isa, "DNNL_MAX_CPU_ISA": onednn_isa}
                                      if onednn_isa else {}))
        level, err = lowbit_level(a.lowbit, lowbit_env)
        if err is None and lowbit_isa and level not in (lowbit_isa, "unknown"):
            err = f"`LOWBIT_ISA={lowbit_isa} lowbit --version` reports kernel level {level}, not {lowbit_isa}"
        if err is not None:
            skipped.append({"class": cls, "reason": f"lowbit refuses it: {err}"})
            print(f"skipping {cls}: lowbit refuses it: {err}", file=sys.stderr)
            continue
        # One training step under ONEDNN_VERBOSE: which float convolution kernels oneDNN really ran.
        r = subprocess.run([sys.executable, __file__, "--worker", "--worker-kernel-check", "--model", a.model,
                            "--worker-threads", str(a.threads[0]), "--batch", str(a.batch)],
                           capture_output=True, text=True, timeout=600,
                           env=dict(torch_env, ONEDNN_VERBOSE="1", DNNL_VERBOSE="1"))
        if r.returncode != 0:
            raise SystemExit(f"{cls}: the ONEDNN_VERBOSE torch worker failed (exit status {r.returncode}):\n"
                             + r.stderr[-2000:])
        kernels, onednn_cpu_isa = onednn_conv_kernels(r.stdout, VERBOSE_MARK, src_type="f32")
        wrong = [k for k in kernels if not kernel_matches(cls, k)]
        if cls == "avx2" and onednn_cpu_isa and "512" in onednn_cpu_isa:
            wrong.append(f"isa line '{onednn_cpu_isa}'")
        print(f"{cls}: lowbit {'LOWBIT_ISA=' + lowbit_isa if lowbit_isa else 'default'} runs level {level}; "
              f"oneDNN ({'ONEDNN_MAX_CPU_ISA=' + onednn_isa if onednn_isa else 'default'}, isa: {onednn_cpu_isa}) "
              f"ran float convolutions {{{', '.join(kernels)}}}", file=sys.stderr)
        isa_check = check_class_kernels(cls, kernels, wrong, "float", failed_checks)
        cpu_kind = "emulated" if above else "real"
        cpu_note = f"{cpu['label']}; {cpu['features_label']}; {cpu_kind}" + (
            f" (the CPU also has {', '.join(above)})" if above else "")
        for t in a.threads:
            print(f"== {cls}: lowbit {'LOWBIT_ISA=' + lowbit_isa if lowbit_isa else 'default'} (level {level}) vs "
                  f"torch {'ONEDNN_MAX_CPU_ISA=' + onednn_isa if onednn_isa else 'default'} (oneDNN ran "
                  f"{', '.join(kernels) or 'no float convolution'}{'' if isa_check else '; ISA CHECK FAILED'}), "
                  f"on {cpu_note}")
            row = measure(a, t, lowbit_env=lowbit_env, torch_env=torch_env, label=f"{cls} ")
            rows.append({"class": cls, "lowbit_isa": lowbit_isa, "lowbit_level": level,
                         "onednn_max_cpu_isa": onednn_isa, "onednn_isa": onednn_cpu_isa, "onednn_kernels": kernels,
                         "isa_check": isa_check, "cpu": cpu["label"], "cpu_model_name": cpu["model_name"],
                         "cpu_family": cpu["family"], "cpu_model": cpu["model"], "cpu_features": cpu["features"],
                         "cpu_kind": cpu_kind, "cpu_above_class": above, **row})
    print()
    print(f"CPU: {cpu['label']}; {cpu['features_label']}")
    print("| class | CPU | emulated | model | threads | lowbit img/s | PyTorch img/s | lowbit / PyTorch "
          "| peak RSS lowbit / PyTorch | lowbit level | oneDNN conv kernels |"
          + (" baseline img/s | vs baseline |" if a.baseline else ""))
    print("|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if a.baseline else ""))
    for row in rows:
        kern = ", ".join(row["onednn_kernels"]) or "none seen"
        print(f"| {row['class']} | {row['cpu']}, {cpu['features_label']} | "
              f"{'yes' if row['cpu_kind'] == 'emulated' else 'no'} | {row['model']} | {row['threads']} "
              f"| {row['lowbit_images_per_s']:.0f} | {row['torch_images_per_s']:.0f} | {row['ratio']:.2f}x "
              f"| {row['lowbit_peak_rss_mb']:.0f} / {row['torch_peak_rss_mb']:.0f} MiB | {row['lowbit_level']} "
              f"| {kern}{'' if row['isa_check'] else ' **ISA CHECK FAILED**'} |"
              + (f" {row['baseline_images_per_s']:.0f} | {row['ratio_vs_baseline']:.2f}x |" if a.baseline else ""))
    print_matrix_trailer(rows, skipped, failed_checks)
    if a.json:
        print(json.dumps({"isa_matrix": True, "cpu": {k: cpu[k] for k in ("label", "model_name", "family", "model",
                                                                         "features")},
                          "results": rows, "skipped": skipped}))


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
    ap.add_argument("--isa-matrix", action="store_true",
                    help="per ISA class the CPU has: native (defaults) and avx2 (LOWBIT_ISA / ONEDNN_MAX_CPU_ISA)")
    ap.add_argument("--classes", nargs="+", choices=[c[0] for c in ISA_CLASSES], default=None,
                    help="ISA classes for --isa-matrix (default: all; implies --isa-matrix)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--worker-kernel-check", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        torch_worker(a.model, a.worker_threads, a.batch, a.seconds, a.warmup, kernel_check=a.worker_kernel_check)
        return
    if a.isa_matrix or a.classes is not None:
        isa_matrix(a, a.classes or [c[0] for c in ISA_CLASSES])
        return
    summary = [measure(a, t) for t in a.threads]
    if a.json:
        print(json.dumps({"results": summary}))


if __name__ == "__main__":
    main()
