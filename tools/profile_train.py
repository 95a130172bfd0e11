#!/usr/bin/python3
"""profile_train.py: where a lowbit training step's CPU time goes, by function family.

Runs `perf record -e cpu-clock` (a software timer: works without hardware counters, e.g. in a VM)
on `lowbit bench train --model M --batch 128 --threads 1 --seconds 0 --warmup 8 [--method ...
--wbits W --abits A]` (start-up, the warm-up steps and the few measured steps bench train always runs),
reads the samples per symbol with
`perf report`, and prints two markdown tables: the share of samples per function family (FAMILIES
below: the first pattern that matches a symbol's demangled name wins; kernel-mode samples are
"kernel") and the top symbols. One sample is 0.25 ms of CPU time (-c 250000 ns), so the sample
count is the CPU time of the run. With --baseline OTHER_LOWBIT the other binary is profiled the
same way and both get a column side by side (baseline first: before / after). The child inherits
the environment; --isa sets LOWBIT_ISA for it (e.g. avx2 on an AVX-512 CPU), --env KEY=VALUE any
other variable. Usage:
  /usr/bin/python3 tools/profile_train.py [--lowbit build/tools/lowbit] [--model resnet20]
      [--method pact-sawb --wbits 2 --abits 2] [--isa avx2] [--threads 1] [--batch 128] [--warmup 8]
      [--top 25] [--baseline OLD/lowbit] [--keep DIR] [--json]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

# (family, regex searched in the demangled symbol); the first match wins, so the specific families
# come first: a quantizer's lambda inside batch_sum<..., pact_quantize> is a quantizer, not BN.
FAMILIES = (
    ("quantizers (pact/sawb/lsq/qil/dorefa, clip search)",
     r"pact_|sawb_|lsq_|qil_|dorefa_|quant_detail::|mse_optimal_clip|positive_sample|positive_percentile"
     r"|percentile_threshold|kl_threshold|max_abs_tanh|nearbyint|Quantizer"),
    ("optimizer", r"SGD::|Adam|sgd_|adam_kernel|Optimizer::|clip_grad_norm|update_param|zero_grad"),
    ("batch norm", r"batch_norm|batch_sum|BatchNorm|lane_sums|plane_buffer"),
    ("packing (NCHW<->blocked pack/unpack/transpose, im2col, BLAS copies)",
     r"pack_|pad_blocked|transpose|im2col|col2im|gemm_[io][nt]copy|gemm_beta|convert<|to_layout|nchw16c"),
    ("conv arithmetic (direct kernels / sgemm)",
     r"forward_image|forward_block|forward_row|forward_out_blocks|forward_variant|forward_strided|backward_data"
     r"|weight_grad|direct_forward|direct_backward"
     r"|conv_reference|bias_gradient|gemm_kernel|sgemm|cblas_"),
    ("ReLU / residual add", r"add_relu|relu|mask_where_positive|map_binary|map_unary"),
    ("memset / memmove", r"memset|memmove|memcpy|__bzero"),
)
KERNEL = "kernel (page faults, scheduling, syscalls)"
OTHER = "other"
FAMILY_ORDER = [f for f, _ in FAMILIES] + [KERNEL, OTHER]
PERIOD_NS = 250000  # one sample = 0.25 ms of CPU time
REPORT_LINE = re.compile(r"^\s*(\d+)\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$")


def family_of(dso, mode, sym):
    if mode == "k" or dso.startswith("[kernel"):
        return KERNEL
    for fam, pat in FAMILIES:
        if re.search(pat, sym):
            return fam
    return OTHER


def short_name(sym, width=110):
    """A readable symbol: the callable inside std::function's wrapper, argument lists elided."""
    s = sym
    if s.startswith("std::_Function_handler<") and s.endswith(">::_M_invoke") and "), " in s:
        s = s[s.index("), ") + 3:-len(">::_M_invoke")]  # drop the wrapper and the call signature
    prev = None
    while prev != s:  # innermost argument lists of functions and lambdas: f(lowbit::Tensor const&, ...) -> f()
        prev, s = s, re.sub(r"(?<=[\w>\])])\((?=[^)])(?:[^()]|\(\))+\)", "()", s)
    return s if len(s) <= width else s[:width - 3] + "..."


def profile(binary, a, workdir, tag):
    """perf record + perf report on one binary: {'samples', 'symbols': [(samples, dso, mode, sym)], 'bench'}."""
    data = os.path.join(workdir, f"{tag}.perf.data")
    env = dict(os.environ)
    if a.isa:
        env["LOWBIT_ISA"] = a.isa
    for kv in a.env:
        k, _, v = kv.partition("=")
        env[k] = v
    cmd = [binary, "bench", "train", "--model", a.model, "--batch", str(a.batch), "--threads", str(a.threads),
           "--seconds", "0", "--warmup", str(a.warmup)]
    if a.method:
        cmd += ["--method", a.method]
    if a.wbits is not None:
        cmd += ["--wbits", str(a.wbits)]
    if a.abits is not None:
        cmd += ["--abits", str(a.abits)]
    r = subprocess.run([a.perf, "record", "-q", "-e", "cpu-clock", "-c", str(PERIOD_NS), "-o", data, "--"] + cmd,
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} under perf record failed (exit status {r.returncode}):\n{r.stderr[-2000:]}")
    bench = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("bench train")]
    rep = subprocess.run([a.perf, "report", "-i", data, "--stdio", "--no-children", "-q", "-F", "sample,dso,sym",
                          "--percent-limit", "0"], capture_output=True, text=True)
    if rep.returncode != 0:
        raise SystemExit(f"perf report failed (exit status {rep.returncode}):\n{rep.stderr[-2000:]}")
    symbols = []
    for line in rep.stdout.splitlines():
        m = REPORT_LINE.match(line)
        if m:
            symbols.append((int(m.group(1)), m.group(2), m.group(3), m.group(4)))
    total = sum(s[0] for s in symbols)
    if total == 0:
        raise SystemExit(f"perf report of {data} has no samples")
    fams = {f: 0 for f in FAMILY_ORDER}
    for n, dso, mode, sym in symbols:
        fams[family_of(dso, mode, sym)] += n
    return {"binary": binary, "command": " ".join(cmd), "samples": total, "cpu_s": total * PERIOD_NS / 1e9,
            "families": fams, "symbols": symbols, "bench": bench[-1] if bench else ""}


def pct(n, total):
    return f"{100.0 * n / total:.1f} %" if total else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lowbit", default="build/tools/lowbit")
    ap.add_argument("--baseline", help="another lowbit binary, profiled the same way, shown first (before)")
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--method", default=None, help="passed to bench train (fp32, pact-sawb, lsq, ...)")
    ap.add_argument("--wbits", type=int, default=None)
    ap.add_argument("--abits", type=int, default=None)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=8, help="steps profiled (bench train runs with --seconds 0)")
    ap.add_argument("--isa", default=None, help="LOWBIT_ISA for the profiled process (scalar, avx2, avx512, ...)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="more environment for the child")
    ap.add_argument("--top", type=int, default=25, help="symbols in the second table")
    ap.add_argument("--perf", default="perf")
    ap.add_argument("--keep", default=None, help="keep the perf.data files in this folder")
    ap.add_argument("--json", action="store_true", help="print families and top symbols as one JSON line")
    a = ap.parse_args()
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = a.keep or tmp
        runs = []
        if a.baseline:
            runs.append(("baseline", profile(a.baseline, a, workdir, "baseline")))
        runs.append(("this", profile(a.lowbit, a, workdir, "this")))
    names = [f"{tag} ({os.path.relpath(r['binary'])})" if a.baseline else tag for tag, r in runs]
    isa = a.isa or os.environ.get("LOWBIT_ISA") or "default"
    quant = f"{a.method or 'fp32'}" + (f" W{a.wbits}" if a.wbits else "") + (f"A{a.abits}" if a.abits else "")
    print(f"profile: {a.model} {quant}, batch {a.batch}, {a.threads} thread(s), start-up + {a.warmup} warm-up steps + "
          f"bench train's minimum measured steps (--seconds 0), "
          f"LOWBIT_ISA={isa}, perf record -e cpu-clock")
    for (tag, r), name in zip(runs, names):
        print(f"  {name}: {r['samples']} samples = {r['cpu_s']:.2f} s CPU; {r['bench']}")
    print()
    print("| family | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(runs))
    for fam in FAMILY_ORDER:
        print(f"| {fam} | " + " | ".join(pct(r['families'][fam], r['samples']) for _, r in runs) + " |")
    print("| samples (0.25 ms CPU each) | " + " | ".join(str(r['samples']) for _, r in runs) + " |")
    print()
    this = runs[-1][1]
    base_by_sym = {}
    if a.baseline:
        for n, dso, mode, sym in runs[0][1]["symbols"]:
            base_by_sym[(dso, sym)] = base_by_sym.get((dso, sym), 0) + n
    print(f"Top {a.top} symbols ({names[-1]}):")
    print()
    print("| # | share | " + ("baseline share | " if a.baseline else "") + "family | symbol | dso |")
    print("|---|---|" + ("---|" if a.baseline else "") + "---|---|---|")
    top = sorted(this["symbols"], key=lambda s: -s[0])[:a.top]
    for i, (n, dso, mode, sym) in enumerate(top, 1):
        fam = family_of(dso, mode, sym).split(" (")[0]
        b = (pct(base_by_sym.get((dso, sym), 0), runs[0][1]["samples"]) + " | ") if a.baseline else ""
        print(f"| {i} | {pct(n, this['samples'])} | {b}{fam} | `{short_name(sym)}` | {dso} |")
    if a.json:
        print(json.dumps({"model": a.model, "method": a.method or "fp32", "wbits": a.wbits, "abits": a.abits,
                          "isa": isa, "runs": [{"tag": tag, "binary": r["binary"], "samples": r["samples"],
                                                "cpu_s": r["cpu_s"], "families": r["families"], "bench": r["bench"],
                                                "top": [{"samples": s[0], "dso": s[1], "symbol": s[3]}
                                                        for s in sorted(r["symbols"], key=lambda s: -s[0])[:a.top]]}
                                               for tag, r in runs]}))


if __name__ == "__main__":
    sys.exit(main())
