#!/usr/bin/python3
"""compare_torch_int8.py: lowbit's integer runtime vs PyTorch's int8 model (Debian's
python3-torch, static post-training quantization) on the identical network, measured side by
side in one run.

Two architectures (--arch; by default read from the model file through `lowbit inspect`: 9
residual `add` ops mean resnet20, other resnets are refused, anything else is the convnet):
  convnet   conv3x3 32/64/128 + BN + ReLU + maxpool2 x3, flatten, linear 1152->10. PyTorch
            quantizes it in eager mode: fuse conv+BN+ReLU, QuantStub/DeQuantStub, prepare/convert
            with get_default_qconfig(engine).
  resnet20  lowbit's CIFAR-style ResNet-20 (models/resnet.cpp, layers/residual.cpp): conv3x3 16 +
            BN + ReLU, 3 stages x 3 BasicBlocks of 16/32/64 channels (conv3x3 + BN + ReLU, conv3x3
            + BN, shortcut = identity or, at the first block of stages 2 and 3, conv1x1 stride 2 +
            BN; add, ReLU), stride 2 in the first conv of stages 2 and 3, global average pool,
            linear 64->10; convs without bias. PyTorch quantizes it in FX graph mode
            (quantize_fx.prepare_fx / convert_fx with get_default_qconfig_mapping(engine)): conv+BN
            (+ReLU) fold into quantized Conv2d / ConvReLU2d, every add+ReLU becomes
            quantized::add_relu, one quantize at the input and one dequantize at the output. The
            converted graph is checked for exactly that (no float fallback); --print-graph prints it.
Both take a 1x28x28 input and give 10 classes. PyTorch builds the network, calibrates on random
images and converts to int8 for each quantized engine asked for (onednn, fbgemm, x86 where the
build has them; qnnpack on request). The weights are random: speed does not depend on them. lowbit
runs `lowbit bench infer --json` on an exported model (e.g. the W2A2 PACT-SAWB convnet or
resnet20). Every measurement is its own process; runs alternate (lowbit, torch engine 1, engine
2, ..., lowbit, ...) so machine noise hits all of them; warm-up calls are excluded; the report
gives medians over the repeats and the ratios at batch N (throughput) and batch 1 (latency), by
wall clock and by process CPU time (steadier on a shared machine). Usage:
  /usr/bin/python3 tools/compare_torch_int8.py --model model.lbm [--arch convnet|resnet20] \\
      [--lowbit build/tools/lowbit] [--threads 1 2] [--batch 256] [--seconds 3] [--repeats 3] \\
      [--engines onednn] [--print-graph] [--json]
e.g. /usr/bin/python3 tools/compare_torch_int8.py --model /work/bm/resnet20-w2.lbm --threads 1

ISA matrix (--isa-matrix; --classes implies it): the same alternating measurement once per SIMD
class this CPU can run, lowbit pinned with LOWBIT_ISA and PyTorch's oneDNN engine capped with
ONEDNN_MAX_CPU_ISA (also set as DNNL_MAX_CPU_ISA for older oneDNN), both for the child processes
only:
  class  LOWBIT_ISA  ONEDNN_MAX_CPU_ISA  /proc/cpuinfo flags it needs
  avx2   avx2        AVX2                avx2 fma
  vnni   avx512      AVX512_CORE_VNNI    avx512f avx512bw avx512vl avx512_vnni
  amx    amx         AVX512_CORE_AMX     amx_tile amx_int8
A class whose flags the CPU lacks is skipped (named, with the missing flags). Each class is checked
on both sides first: `LOWBIT_ISA=X lowbit --version` must succeed and name level X (lowbit refuses
a level the CPU lacks; the class is then skipped with lowbit's one-line error), and one short torch
worker runs with ONEDNN_VERBOSE=1: the implementations of the int8 convolutions it executed (e.g.
jit_uni_int8:avx2, jit_int8:avx512_core_vnni, brgconv:avx512_core_amx) must match the class (avx2:
"avx2" and no "avx512"; vnni: "avx512_core" + "vnni" and no "amx"; amx: "amx"); a mismatch is a
loud warning on stderr and "isa_check": false in the JSON row, the class is still measured. Only the
onednn engine is compared. An emulated class is not that CPU: every row names the real CPU (model
name, family, model from /proc/cpuinfo) and says "real" (the CPU has nothing above the class) or
"emulated" (a lower class on a higher CPU, e.g. avx2 on an AVX-512 CPU, vnni on an AMX CPU). After
the per-class blocks comes a markdown table (class, CPU, model, threads, img/s both sides, ratio,
batch-1 latencies, the oneDNN kernels); with --json one JSON line with all rows follows it.
  /usr/bin/python3 tools/compare_torch_int8.py --model model.lbm --isa-matrix [--classes avx2 vnni amx] \\
      [--threads 1] [--batch 256] [--seconds 3] [--repeats 3] [--json]
e.g. /usr/bin/python3 tools/compare_torch_int8.py --model /work/bm/resnet20-w2a2.lbm --isa-matrix --threads 1
Install PyTorch with: apt-get install python3-torch (run with Debian's /usr/bin/python3).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from compare_common import (check_class_kernels, clean_env, cpu_info, flush_c_stdout, last_json, lowbit_level,
                            onednn_conv_kernels, print_matrix_trailer)


ARCHS = ("convnet", "resnet20")

# --isa-matrix classes, in order: (class, LOWBIT_ISA, ONEDNN_MAX_CPU_ISA, /proc/cpuinfo flags needed)
ISA_CLASSES = (
    ("avx2", "avx2", "AVX2", ("avx2", "fma")),
    ("vnni", "avx512", "AVX512_CORE_VNNI", ("avx512f", "avx512bw", "avx512vl", "avx512_vnni")),
    ("amx", "amx", "AVX512_CORE_AMX", ("amx_tile", "amx_int8")),
)
# Flags of a level above the class: a CPU that has one runs the class emulated (a lower class on a
# higher CPU). avx_vnni is lowbit's level between avx2 and avx512 (Alder Lake, Zen 5 and later).
ISA_ABOVE = {"avx2": ("avx512f", "avx_vnni"), "vnni": ("amx_tile",), "amx": ()}
VERBOSE_MARK = "### compare_torch_int8: timed part"


def build_int8_model(arch, engine, batch):
    if arch == "resnet20":
        return build_int8_resnet20(engine, batch)
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


def build_int8_resnet20(engine, batch):
    """lowbit's resnet20 (see the module docstring), FX-graph-mode static PTQ for `engine`."""
    import torch
    import torch.nn as nn
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    class BasicBlock(nn.Module):  # layers/residual.cpp
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1, self.relu1 = nn.BatchNorm2d(cout), nn.ReLU()
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = None
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))
            self.relu2 = nn.ReLU()

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
            return self.relu2(y + (x if self.shortcut is None else self.shortcut(x)))

    class ResNet20(nn.Module):  # models/resnet.cpp, make_cifar_resnet(20)
        def __init__(self, blocks=3):
            super().__init__()
            self.conv = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
            self.bn, self.relu = nn.BatchNorm2d(16), nn.ReLU()
            stages, c = [], 16
            for out, stride in ((16, 1), (32, 2), (64, 2)):
                stages.append(nn.Sequential(*[BasicBlock(c if b == 0 else out, out, stride if b == 0 else 1)
                                              for b in range(blocks)]))
                c = out
            self.stages = nn.Sequential(*stages)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.pool(self.stages(self.relu(self.bn(self.conv(x)))))
            return self.fc(torch.flatten(x, 1))

    torch.manual_seed(0)
    torch.backends.quantized.engine = engine
    model = ResNet20().eval()
    model = prepare_fx(model, get_default_qconfig_mapping(engine), (torch.randn(1, 1, 28, 28),))
    with torch.inference_mode():
        for _ in range(4):  # calibration: activation ranges on random images
            model(torch.randn(batch, 1, 28, 28))
    model = convert_fx(model)
    check_resnet20_graph(model)
    return model


def graph_op_kinds(gm):
    """Counts of the converted FX graph's computing nodes: module class or function / method name."""
    kinds = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            k = type(gm.get_submodule(n.target)).__module__.replace("torch.ao.nn.", "").replace("torch.nn.", "") \
                + "." + type(gm.get_submodule(n.target)).__name__
        elif n.op == "call_function":
            k = getattr(n.target, "__name__", str(n.target))
            if str(n.target).startswith("quantized."):
                k = str(n.target)
        elif n.op == "call_method":
            k = "." + n.target
        else:
            continue
        kinds[k] = kinds.get(k, 0) + 1
    return kinds


def check_resnet20_graph(gm):
    """Every conv and linear quantized, the 9 joins quantized::add_relu, one quantize in, one dequantize out."""
    import torch.nn as nn
    try:
        import torch.ao.nn.quantized as nnq
        import torch.ao.nn.intrinsic.quantized as nniq
    except ImportError:  # torch < 2.0
        import torch.nn.quantized as nnq
        import torch.nn.intrinsic.quantized as nniq
    mods = [gm.get_submodule(n.target) for n in gm.graph.nodes if n.op == "call_module"]
    fns = [str(n.target) for n in gm.graph.nodes if n.op in ("call_function", "call_method")]
    conv_relu = sum(type(m) is nniq.ConvReLU2d for m in mods)
    conv = sum(type(m) is nnq.Conv2d for m in mods)
    problems = []
    if (conv_relu, conv) != (10, 11):
        problems.append(f"expected 10 quantized ConvReLU2d + 11 Conv2d, got {conv_relu} + {conv}")
    if sum(type(m) is nnq.Linear for m in mods) != 1:
        problems.append("linear not quantized")
    others = {type(m).__name__ for m in mods if type(m) not in (nniq.ConvReLU2d, nnq.Conv2d, nnq.Linear,
                                                                  nn.AdaptiveAvgPool2d)}
    if others:
        problems.append(f"unexpected (float) modules left: {sorted(others)}")
    if fns.count("quantized.add_relu") != 9:
        problems.append(f"expected 9 quantized::add_relu, got {fns.count('quantized.add_relu')}")
    if sum("quantize_per_tensor" in f for f in fns) != 1 or fns.count("dequantize") != 1:
        problems.append("float fallback: more than one quantize / dequantize")
    if problems:
        raise SystemExit("resnet20 FX conversion: " + "; ".join(problems) + "\n" + str(gm.graph))


def detect_arch(lowbit, model):
    """'resnet20' / 'convnet' from `lowbit inspect` (op column: residual adds mean a resnet), None if unknown."""
    try:
        out = subprocess.run([lowbit, "inspect", model], check=True, capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    ops = [f[1] for f in (line.split() for line in out.splitlines()[1:]) if len(f) > 1]
    if "add" in ops:
        if ops.count("add") != 9:
            raise SystemExit(f"{model}: a resnet with {ops.count('add')} residual adds; only resnet20 (9) is built")
        return "resnet20"
    if "conv" in ops and "maxpool" in ops:
        return "convnet"
    return None


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


def torch_worker(arch, engine, threads, batch, seconds, warmup, kernel_check=False):
    import torch
    torch.set_num_threads(threads)
    model = build_int8_model(arch, engine, batch)
    x, x1 = torch.randn(batch, 1, 28, 28), torch.randn(1, 1, 28, 28)
    if kernel_check:  # --isa-matrix: one call per shape under ONEDNN_VERBOSE, calibration (float) excluded
        flush_c_stdout()  # oneDNN prints through C stdio: its calibration lines go before the mark
        print(VERBOSE_MARK, flush=True)
        with torch.inference_mode():
            model(x)
            model(x1)
        flush_c_stdout()
        print(json.dumps({"torch": torch.__version__, "arch": arch}), flush=True)
        return
    with torch.inference_mode():
        ips, cpu_ips = time_calls(lambda: model(x), batch, seconds, warmup)
        b1, b1_cpu = time_calls(lambda: model(x1), 1, seconds, 10 * warmup)
    print(json.dumps({"images_per_s": ips, "images_per_cpu_s": cpu_ips, "batch1_ms": 1000.0 / b1,
                      "batch1_cpu_ms": 1000.0 / b1_cpu, "torch": torch.__version__, "arch": arch}))


def kernel_matches(cls, name):
    """Whether a oneDNN implementation name (e.g. jit_uni_int8:avx2) belongs to the ISA class."""
    n = name.lower()
    if cls == "avx2":
        return "avx2" in n and "avx512" not in n
    if cls == "vnni":
        return "avx512_core" in n and "vnni" in n and "amx" not in n
    return "amx" in n


def measure(a, arch, engines, t, lowbit_env=None, torch_env=None, label=""):
    """Per repeat: lowbit, then each torch engine, every one its own process; the raw runs."""
    runs = {"lowbit": [], **{e: [] for e in engines}}
    for r in range(a.repeats):
        # bench infer's --seconds is split over its rounds (3 by default), three kinds each.
        out = subprocess.run([a.lowbit, "bench", "infer", "--model", a.model, "--batch", str(a.batch),
                              "--threads", str(t), "--seconds", str(a.seconds), "--json"],
                             check=True, capture_output=True, text=True, env=lowbit_env).stdout
        runs["lowbit"].append(last_json(out))
        for e in engines:
            out = subprocess.run([sys.executable, __file__, "--model", a.model, "--arch", arch, "--worker", e,
                                  "--worker-threads", str(t), "--batch", str(a.batch), "--seconds",
                                  str(a.seconds), "--warmup", str(a.warmup)],
                                 check=True, capture_output=True, text=True, env=torch_env).stdout
            runs[e].append(last_json(out))
        print(f"{label}threads {t} run {r + 1}: " + ", ".join(
            f"{k} {v[-1]['images_per_s']:.0f} img/s {v[-1]['batch1_ms']:.3f} ms" for k, v in runs.items()),
            file=sys.stderr)
    return runs


def report(a, arch, engines, t, runs):
    """Prints the medians block for one thread count; returns its summary row."""
    keys = ("images_per_s", "images_per_cpu_s", "batch1_ms", "batch1_cpu_ms")
    med = {k: {f: statistics.median(x[f] for x in v) for f in keys} for k, v in runs.items()}
    row = {"arch": arch, "threads": t, "batch": a.batch, "lowbit": med["lowbit"],
           "lowbit_vs_float32": statistics.median(x["ratio"] for x in runs["lowbit"]),
           "torch_version": runs[engines[0]][0]["torch"] if engines else None, "torch": {}}
    print(f"{arch}, threads {t}, batch {a.batch} (medians of {a.repeats}): lowbit {med['lowbit']['images_per_s']:.0f} "
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
    return row


def isa_matrix(a, arch, classes):
    """--isa-matrix: per class the CPU can run, lowbit at LOWBIT_ISA=X against oneDNN int8 at ONEDNN_MAX_CPU_ISA=Y."""
    cpu = cpu_info()
    flags = set(cpu["flags"])
    print(f"CPU: {cpu['label']}", file=sys.stderr)
    rows, skipped, runnable = [], [], []
    for cls, lowbit_isa, onednn_isa, needs in ISA_CLASSES:
        if cls not in classes:
            continue
        missing = [f for f in needs if f not in flags]
        if missing:
            skipped.append({"class": cls, "reason": f"the CPU lacks {', '.join(missing)} (/proc/cpuinfo flags)"})
            continue
        above = [f for f in ISA_ABOVE[cls] if f in flags]
        runnable.append((cls, lowbit_isa, onednn_isa, above))
    for sk in skipped:
        print(f"skipping {sk['class']}: {sk['reason']}", file=sys.stderr)
    base = clean_env(os.environ)
    failed_checks = []
    for cls, lowbit_isa, onednn_isa, above in runnable:
        lowbit_env = dict(base, LOWBIT_ISA=lowbit_isa)
        torch_env = dict(base, ONEDNN_MAX_CPU_ISA=onednn_isa, DNNL_MAX_CPU_ISA=onednn_isa)
        level, err = lowbit_level(a.lowbit, lowbit_env)
        if err is None and level not in (lowbit_isa, "unknown"):
            err = f"`LOWBIT_ISA={lowbit_isa} lowbit --version` reports integer kernels {level}, not {lowbit_isa}"
        if err is not None:
            skipped.append({"class": cls, "reason": f"lowbit refuses LOWBIT_ISA={lowbit_isa}: {err}"})
            print(f"skipping {cls}: lowbit refuses LOWBIT_ISA={lowbit_isa}: {err}", file=sys.stderr)
            continue
        # One short torch worker under ONEDNN_VERBOSE: which int8 convolution kernels oneDNN really ran.
        r = subprocess.run([sys.executable, __file__, "--model", a.model, "--arch", arch, "--worker", "onednn",
                            "--worker-kernel-check", "--worker-threads", str(a.threads[0]), "--batch", str(a.batch)],
                           capture_output=True, text=True, timeout=600,
                           env=dict(torch_env, ONEDNN_VERBOSE="1", DNNL_VERBOSE="1"))
        if r.returncode != 0:
            raise SystemExit(f"{cls}: the ONEDNN_VERBOSE torch worker failed (exit status {r.returncode}):\n"
                             + r.stderr[-2000:])
        kernels, onednn_cpu_isa = onednn_conv_kernels(r.stdout, VERBOSE_MARK)
        wrong = [k for k in kernels if not kernel_matches(cls, k)]
        print(f"{cls}: lowbit LOWBIT_ISA={lowbit_isa} runs integer kernels {level}; oneDNN "
              f"(ONEDNN_MAX_CPU_ISA={onednn_isa}, isa: {onednn_cpu_isa}) ran int8 convolutions "
              f"{{{', '.join(kernels)}}}", file=sys.stderr)
        isa_check = check_class_kernels(cls, kernels, wrong, "int8", failed_checks)
        real = not above
        cpu_kind = "real" if real else "emulated"
        cpu_note = (f"{cpu['label']}, {cpu_kind}" + ("" if real else f" (the CPU also has {', '.join(above)})"))
        for t in a.threads:
            print(f"== {cls}: lowbit LOWBIT_ISA={lowbit_isa} vs torch int8 onednn ONEDNN_MAX_CPU_ISA={onednn_isa} "
                  f"(oneDNN ran {', '.join(kernels) or 'no int8 convolution'}"
                  f"{'' if isa_check else '; ISA CHECK FAILED'}), on {cpu_note}")
            runs = measure(a, arch, ["onednn"], t, lowbit_env=lowbit_env, torch_env=torch_env, label=f"{cls} ")
            row = report(a, arch, ["onednn"], t, runs)
            rows.append({"class": cls, "lowbit_isa": lowbit_isa, "lowbit_kernels": level,
                         "onednn_max_cpu_isa": onednn_isa, "onednn_isa": onednn_cpu_isa, "onednn_kernels": kernels,
                         "isa_check": isa_check, "cpu": cpu["label"], "cpu_model_name": cpu["model_name"],
                         "cpu_family": cpu["family"], "cpu_model": cpu["model"], "cpu_kind": cpu_kind,
                         "cpu_above_class": above, "model": a.model, **row})
    print()
    print("| class | CPU (real/emulated) | model | threads | lowbit img/s | onednn int8 img/s | ratio "
          "| batch-1 lowbit / onednn ms | oneDNN kernel |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        lb, od = row["lowbit"], row["torch"]["onednn"]
        sp = od["lowbit_speedup"]
        kern = ", ".join(row["onednn_kernels"]) or "none seen"
        print(f"| {row['class']} | {row['cpu']}, {row['cpu_kind']} | {row['arch']} ({os.path.basename(row['model'])}) "
              f"| {row['threads']} | {lb['images_per_s']:.0f} | {od['images_per_s']:.0f} "
              f"| {sp['throughput']:.2f}x ({sp['throughput_cpu']:.2f}x CPU time) "
              f"| {lb['batch1_ms']:.3f} / {od['batch1_ms']:.3f} | "
              f"{kern}{'' if row['isa_check'] else ' **ISA CHECK FAILED**'} |")
    print_matrix_trailer(rows, skipped, failed_checks)
    if a.json:
        print(json.dumps({"isa_matrix": True, "cpu": {k: cpu[k] for k in ("label", "model_name", "family", "model")},
                          "results": rows, "skipped": skipped}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="exported lowbit model (lowbit export --out ...)")
    ap.add_argument("--arch", choices=ARCHS, default=None,
                    help="network PyTorch builds (default: read from the model with `lowbit inspect`, else convnet)")
    ap.add_argument("--lowbit", default="build/tools/lowbit")
    ap.add_argument("--engines", nargs="+", default=None,
                    help="PyTorch quantized engines (default: onednn, fbgemm, x86 where available)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    ap.add_argument("--print-graph", action="store_true",
                    help="print each engine's converted PyTorch model (the FX graph for resnet20) to stderr first")
    ap.add_argument("--isa-matrix", action="store_true",
                    help="per ISA class the CPU has: lowbit at LOWBIT_ISA vs torch onednn at ONEDNN_MAX_CPU_ISA")
    ap.add_argument("--classes", nargs="+", choices=[c[0] for c in ISA_CLASSES], default=None,
                    help="ISA classes for --isa-matrix (default: all; implies --isa-matrix)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--worker-kernel-check", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        torch_worker(a.arch or "convnet", a.worker, a.worker_threads, a.batch, a.seconds, a.warmup,
                     kernel_check=a.worker_kernel_check)
        return
    matrix = a.isa_matrix or a.classes is not None
    detected = detect_arch(a.lowbit, a.model)
    arch = a.arch or detected or "convnet"
    if a.arch is None:
        print(f"arch {arch} ({'read from the model' if detected else 'default: lowbit inspect gave no answer'})",
              file=sys.stderr)
    elif detected and detected != a.arch:
        print(f"warning: --arch {a.arch}, but {a.model} looks like a {detected}", file=sys.stderr)
    engines = a.engines
    if matrix:
        import torch
        if "onednn" not in torch.backends.quantized.supported_engines:
            raise SystemExit(f"--isa-matrix compares against the onednn engine; torch {torch.__version__} has only "
                             f"{torch.backends.quantized.supported_engines}")
        if engines is not None and engines != ["onednn"]:
            print(f"warning: --isa-matrix compares against onednn only; --engines {' '.join(engines)} ignored",
                  file=sys.stderr)
        engines = ["onednn"]
    if engines is None:
        import torch
        engines = [e for e in ("onednn", "fbgemm", "x86") if e in torch.backends.quantized.supported_engines]
    if a.print_graph:
        for e in engines:
            m = build_int8_model(arch, e, a.batch)
            print(f"--- torch int8 {arch} {e}:", file=sys.stderr)
            print(m.graph if arch == "resnet20" else m, file=sys.stderr)
            if arch == "resnet20":
                print("op kinds: " + ", ".join(f"{k} x{v}" for k, v in graph_op_kinds(m).items()), file=sys.stderr)
    if matrix:
        isa_matrix(a, arch, a.classes or [c[0] for c in ISA_CLASSES])
        return
    summary = []
    for t in a.threads:
        runs = measure(a, arch, engines, t)
        summary.append(report(a, arch, engines, t, runs))
    if a.json:
        print(json.dumps({"results": summary}))


if __name__ == "__main__":
    main()
