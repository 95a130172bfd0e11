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
Install PyTorch with: apt-get install python3-torch (run with Debian's /usr/bin/python3).
"""
import argparse
import json
import statistics
import subprocess
import sys
import time


ARCHS = ("convnet", "resnet20")


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


def torch_worker(arch, engine, threads, batch, seconds, warmup):
    import torch
    torch.set_num_threads(threads)
    model = build_int8_model(arch, engine, batch)
    x, x1 = torch.randn(batch, 1, 28, 28), torch.randn(1, 1, 28, 28)
    with torch.inference_mode():
        ips, cpu_ips = time_calls(lambda: model(x), batch, seconds, warmup)
        b1, b1_cpu = time_calls(lambda: model(x1), 1, seconds, 10 * warmup)
    print(json.dumps({"images_per_s": ips, "images_per_cpu_s": cpu_ips, "batch1_ms": 1000.0 / b1,
                      "batch1_cpu_ms": 1000.0 / b1_cpu, "torch": torch.__version__, "arch": arch}))


def last_json(out):
    return json.loads(out.strip().splitlines()[-1])


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
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        torch_worker(a.arch or "convnet", a.worker, a.worker_threads, a.batch, a.seconds, a.warmup)
        return
    detected = detect_arch(a.lowbit, a.model)
    arch = a.arch or detected or "convnet"
    if a.arch is None:
        print(f"arch {arch} ({'read from the model' if detected else 'default: lowbit inspect gave no answer'})",
              file=sys.stderr)
    elif detected and detected != a.arch:
        print(f"warning: --arch {a.arch}, but {a.model} looks like a {detected}", file=sys.stderr)
    engines = a.engines
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
                out = subprocess.run([sys.executable, __file__, "--model", a.model, "--arch", arch, "--worker", e,
                                      "--worker-threads", str(t), "--batch", str(a.batch), "--seconds",
                                      str(a.seconds), "--warmup", str(a.warmup)],
                                     check=True, capture_output=True, text=True).stdout
                runs[e].append(last_json(out))
            print(f"threads {t} run {r + 1}: " + ", ".join(
                f"{k} {v[-1]['images_per_s']:.0f} img/s {v[-1]['batch1_ms']:.3f} ms" for k, v in runs.items()),
                file=sys.stderr)
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
        summary.append(row)
    if a.json:
        print(json.dumps({"results": summary}))


if __name__ == "__main__":
    main()
