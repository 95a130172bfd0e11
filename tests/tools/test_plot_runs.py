#!/usr/bin/python3
"""test_plot_runs.py: tools/plot_runs.py on two real tiny `lowbit train` runs (float32 and W2A2
PACT-SAWB on a small synthetic IDX data set): the panels it reports drawing (titles, line counts,
layer labels) match what the runs' metrics.jsonl hold, the PNG is a real PNG of a sensible size,
and a missing dir, a missing, empty or malformed metrics.jsonl and a wrong --label count each
give exit 1 with one `error: ...` line naming the path.
Env: LOWBIT_EXE (the built CLI), PLOT_RUNS (the script). Exit 77 (meson: skipped) without
Debian's python3-matplotlib."""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def write_idx(dir_, prefix, images, labels, size):
    """IDX ubyte files as lowbit's idx:DIR reader expects (train-* / t10k-*)."""
    with open(os.path.join(dir_, f"{prefix}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(images), size, size))
        for img in images:
            f.write(img)
    with open(os.path.join(dir_, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, len(labels)) + bytes(labels))


def synthetic_data(dir_, size=28, classes=4):
    """A learnable toy set: class k is a faint square in quadrant k over strong noise (not 100 %
    after 2 tiny epochs, so the accuracy/loss lines move)."""
    os.makedirs(dir_)
    rng = random.Random(7)
    for prefix, n in (("train", 256), ("t10k", 128)):
        images, labels = [], []
        for i in range(n):
            k = i % classes
            px = bytearray(rng.randrange(0, 180) for _ in range(size * size))
            y0, x0 = (k // 2) * size // 2, (k % 2) * size // 2
            for y in range(y0 + 3, y0 + size // 2 - 3):
                for x in range(x0 + 3, x0 + size // 2 - 3):
                    px[y * size + x] = min(255, px[y * size + x] + 70)
            images.append(bytes(px))
            labels.append(k)
        write_idx(dir_, prefix, images, labels, size)
    return "idx:" + dir_


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def train(lowbit, data, out, extra):
    cmd = [lowbit, "train", "--model", "mlp", "--data", data, "--epochs", "2", "--max-steps", "5",
           "--batch", "32", "--threads", "1", "--out", out] + extra
    rc, _, err = run(cmd)
    if rc != 0:
        sys.exit(f"FAIL {' '.join(cmd)} exited {rc}:\n{err}")
    return [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl")) if line.strip()]


def expected_quant_panels(epochs):
    """{SLOT.PARAM: sorted layers}, from the real metrics.jsonl keys LAYER.SLOT.PARAM."""
    kinds = {}
    for e in epochs:
        for key in e.get("quantizers", {}):
            layer, slot, param = key.rsplit(".", 2)
            kinds.setdefault(f"{slot}.{param}", set()).add(layer)
    return {k: sorted(v) for k, v in kinds.items()}


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    ok = head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR"
    return (ok,) + (struct.unpack(">II", head[16:24]) if ok else (0, 0))


def check_error(plot, args, path_named, what, tmp):
    out = os.path.join(tmp, "never.png")
    rc, stdout, stderr = run([sys.executable, plot] + args + ["--out", out])
    lines = stderr.strip().splitlines()
    check(rc == 1, f"{what}: exit 1 (got {rc})")
    check(len(lines) == 1 and lines[0].startswith("error: ") and path_named in lines[0],
          f"{what}: one 'error: ...' line naming {path_named} (got {stderr.strip()!r})")
    check(not os.path.exists(out), f"{what}: no PNG written")


def main():
    lowbit, plot = os.environ.get("LOWBIT_EXE"), os.environ.get("PLOT_RUNS")
    if not lowbit or not plot:
        sys.exit("set LOWBIT_EXE and PLOT_RUNS (meson test does)")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("skipped: python3-matplotlib is not installed (tools/setup.sh installs it)")
        return 77
    tmp = tempfile.mkdtemp(prefix="lowbit_plot_test_")
    try:
        data = synthetic_data(os.path.join(tmp, "data"))
        fp32_dir, q_dir = os.path.join(tmp, "fp32"), os.path.join(tmp, "w2a2")
        fp32 = train(lowbit, data, fp32_dir, [])
        quant = train(lowbit, data, q_dir, ["--method", "pact-sawb", "--wbits", "2", "--abits", "2"])
        check(len(fp32) == 2 and "quantizers" not in fp32[0], "fp32 run: 2 epochs, no quantizers")
        expected = expected_quant_panels(quant)
        # The field names the plot is about: a rename in training.cpp must show up here.
        check("weight_quantizer.alpha_w" in expected and "act_quantizer.alpha" in expected,
              f"pact-sawb run logs SAWB alpha_w and PACT alpha (got {sorted(expected)})")

        png = os.path.join(tmp, "plot.png")
        rc, stdout, stderr = run([sys.executable, plot, fp32_dir, q_dir, "--out", png, "--json-summary"])
        check(rc == 0, f"plot_runs exit 0 (got {rc}: {stderr.strip()})")
        summary = json.loads(stdout) if rc == 0 else {"panels": [], "runs": []}
        panels = {(p["run"], p["kind"]): p for p in summary["panels"]}
        check([r["label"] for r in summary["runs"]] == ["fp32", "w2a2"], "runs labelled by their dir names")
        acc, loss = panels.get((None, "test_acc")), panels.get((None, "loss"))
        check(acc is not None and acc["lines"] == 2 and acc["labels"] == ["fp32", "w2a2"],
              "test accuracy panel: one line per run")
        check(loss is not None and loss["lines"] == 4, "loss panel: test and train line per run")
        quant_panels = {k: p for (r, k), p in panels.items() if r is not None}
        check(all(r in (None, "w2a2") for r, _ in panels), "no quantizer panels for the fp32 run")
        check(sorted(quant_panels) == sorted(expected),
              f"one panel per parameter kind: {sorted(quant_panels)} == {sorted(expected)}")
        for kind, layers in expected.items():
            p = quant_panels.get(kind, {"lines": -1, "labels": [], "title": ""})
            check(p["lines"] == len(layers) and sorted(p["labels"]) == layers,
                  f"{kind}: one line per layer {layers} (got {p['labels']})")
            check(p["title"].startswith("w2a2: "), f"{kind}: title names the run ({p['title']!r})")
        check(len(summary["panels"]) == 2 + len(expected), "no other panels")

        ok, width, height = png_size(png)
        size = os.path.getsize(png) if os.path.exists(png) else 0
        check(ok, "the output starts with the PNG signature and an IHDR chunk")
        check(20_000 < size < 5_000_000, f"PNG file size is sensible ({size} bytes)")
        check(1000 <= width <= 4000 and 600 <= height <= 3000, f"PNG dimensions are sensible ({width}x{height})")

        rc, stdout, _ = run([sys.executable, plot, fp32_dir, "--label", "baseline", "--out",
                             os.path.join(tmp, "fp32.png"), "--json-summary"])
        s = json.loads(stdout) if rc == 0 else {"panels": []}
        check(rc == 0 and [p["kind"] for p in s["panels"]] == ["test_acc", "loss"] and
              s["panels"][0]["labels"] == ["baseline"], "fp32 alone: only accuracy/loss panels, --label used")

        rc, stdout, stderr = run([sys.executable, plot, "--help"])
        check(rc == 0 and "--json-summary" in stdout and "examples:" in stdout and "metrics.jsonl" in stdout,
              "--help explains the input, the summary and shows examples")

        # Error cases: exit 1, one line naming the path.
        missing = os.path.join(tmp, "no_such_run")
        check_error(plot, [fp32_dir, missing], missing, "missing run dir", tmp)
        empty_dir = os.path.join(tmp, "not_a_run")
        os.makedirs(empty_dir)
        check_error(plot, [empty_dir], os.path.join(empty_dir, "metrics.jsonl"), "missing metrics.jsonl", tmp)
        real_lines = open(os.path.join(q_dir, "metrics.jsonl")).read().splitlines()

        def bad_run(name, text):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            with open(os.path.join(d, "metrics.jsonl"), "w") as f:
                f.write(text)
            return d, os.path.join(d, "metrics.jsonl")

        d, path = bad_run("truncated", real_lines[0] + "\n" + real_lines[1][: len(real_lines[1]) // 2] + "\n")
        check_error(plot, [d], path + ":2", "truncated JSON line", tmp)
        d, path = bad_run("empty", "")
        check_error(plot, [d], path, "empty metrics.jsonl", tmp)
        no_acc = json.loads(real_lines[0])
        del no_acc["test_acc"]
        d, path = bad_run("no_acc", json.dumps(no_acc) + "\n")
        check_error(plot, [d], path + ":1", "line without test_acc", tmp)
        d, path = bad_run("array", "[1, 2]\n")
        check_error(plot, [d], path + ":1", "line that is not an object", tmp)
        check_error(plot, [fp32_dir, q_dir, "--label", "one"], "--label", "--label count mismatch", tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
