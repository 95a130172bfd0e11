"""compare_common.py: what tools/compare_torch.py (float training) and tools/compare_torch_int8.py
(int8 inference) share for their side-by-side runs against PyTorch: the CPU label every --isa-matrix
row carries (/proc/cpuinfo model name, family, model, AMX / VNNI / AVX-512 present), the child
environment without ISA overrides, the kernel level `lowbit --version` reports, the oneDNN
convolution kernels an ONEDNN_VERBOSE=1 run executed, and the last-JSON-line reader.
Plain functions, no state; imported from the scripts' own folder (python puts it on sys.path).
"""
import json
import re
import subprocess
import sys

# Variables that pick or report an ISA; a class's child processes get only the ones it sets.
ISA_ENV_VARS = ("ONEDNN_VERBOSE", "DNNL_VERBOSE", "LOWBIT_ISA", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def last_json(out):
    return json.loads(out.strip().splitlines()[-1])


def flush_c_stdout():
    """oneDNN prints through C stdio: flush it so its lines land on the right side of a mark."""
    try:
        import ctypes
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def cpu_info(path="/proc/cpuinfo"):
    """The first processor's model name, family, model and flags; the label every matrix row carries."""
    fields = {}
    try:
        with open(path) as f:
            block = f.read().split("\n\n")[0]
    except OSError:
        block = ""
    for line in block.splitlines():
        k, _, v = line.partition(":")
        fields.setdefault(k.strip(), v.strip())
    flags = set(fields.get("flags", "").split())
    info = {"model_name": fields.get("model name", "unknown CPU"), "family": fields.get("cpu family"),
            "model": fields.get("model"), "flags": sorted(flags)}
    info["label"] = f"{info['model_name']} (family {info['family']}, model {info['model']})"
    vnni = [f for f in ("avx512_vnni", "avx_vnni") if f in flags]
    info["features"] = {"amx": all(f in flags for f in ("amx_tile", "amx_int8")), "vnni": vnni,
                        "avx512": "avx512f" in flags}
    info["features_label"] = (f"AMX {'yes' if info['features']['amx'] else 'no'}, "
                              f"VNNI {'/'.join(vnni) if vnni else 'no'}, "
                              f"AVX-512 {'yes' if info['features']['avx512'] else 'no'}")
    return info


def clean_env(environ):
    """A copy of environ without any ISA override or verbose switch (the native class's environment)."""
    return {k: v for k, v in environ.items() if k not in ISA_ENV_VARS}


def lowbit_level(lowbit, env):
    """(level `lowbit --version` reports under env, None) or (None, lowbit's one-line error)."""
    try:
        r = subprocess.run([lowbit, "--version"], env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        return None, str(e)
    if r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip() or f"exit status {r.returncode}").splitlines()[-1]
        return None, f"{msg} (exit status {r.returncode})"
    m = re.search(r"\(integer kernels: ([\w-]+)\)", r.stdout)
    return (m.group(1) if m else "unknown"), None


def onednn_conv_kernels(out, mark, src_type=r"[us]8"):
    """(sorted implementation names of the convolutions oneDNN executed after the line `mark` whose
    source type matches src_type (r"[us]8": int8, "f32": float), oneDNN's isa line).

    Verbose lines: onednn_verbose[,timestamp][,primitive],exec,cpu,convolution,<impl>,<prop>,src_u8:...
    (dnnl_verbose before oneDNN 2.5); the implementation is the field after "convolution"."""
    lines = out.splitlines()
    timed = lines[lines.index(mark) + 1:] if mark in lines else lines
    names, isa = set(), None
    for line in lines:
        if line.startswith(("onednn_verbose", "dnnl_verbose")) and ",info," in line and ",isa:" in line:
            isa = line.split(",isa:", 1)[1].strip()
    src = re.compile(r"\bsrc_" + src_type + r"\b")
    for line in timed:
        if not line.startswith(("onednn_verbose", "dnnl_verbose")) or ",exec," not in line:
            continue
        f = line.split(",")
        if "convolution" not in f or not src.search(line):
            continue  # not a convolution, or one of the other type
        i = f.index("convolution")
        if i + 1 < len(f):
            names.add(f[i + 1])
    return sorted(names), isa


def check_class_kernels(cls, kernels, wrong, what, failed_checks):
    """Whether the oneDNN convolutions of one class run belong to it; a failure is appended to
    failed_checks and printed loudly (that class's torch numbers are then not its numbers)."""
    if kernels and not wrong:
        return True
    why = (f"kernels {', '.join(wrong)} do not belong to class {cls}" if kernels
           else f"no {what} convolution in the ONEDNN_VERBOSE output")
    failed_checks.append(f"{cls}: {why}")
    print(f"\n!!! WARNING: oneDNN ISA CHECK FAILED for {cls}: {why}; its torch numbers are not {cls} numbers !!!\n",
          file=sys.stderr)
    return False


def print_matrix_trailer(rows, skipped, failed_checks):
    """After an --isa-matrix table: the classes skipped and why, and the failed ISA checks."""
    for sk in skipped:
        print(f"skipped: {sk['class']}: {sk['reason']}")
    if not rows:
        print("no class ran")
    for f in failed_checks:
        print(f"WARNING: oneDNN ISA check failed: {f}", file=sys.stderr)
