#!/usr/bin/python3
"""plot_runs.py: plot `lowbit train` runs side by side from their RUN_DIR/metrics.jsonl.

One PNG: a top row with test accuracy and loss (test solid, train dashed) per epoch, one line per
run; then, for every quantized run, a row of panels (wrapping after 4) with its quantizer
parameters per epoch, one panel per parameter kind (the quantizer slot and the parameter:
act_quantizer.alpha = PACT clip, weight_quantizer.alpha_w = SAWB scale, c / d / gamma = QIL
interval, s = LSQ step, max_abs = the first layer's input range) and one line per layer. float32
runs (no "quantizers" in metrics.jsonl) only appear in the top row. During float warm-up epochs
(--float-epochs) lowbit logs the quantizers' initial values (e.g. alpha_w 0, PACT alpha 10),
hence the jump after them. Needs Debian's python3-matplotlib (tools/setup.sh installs it); draws
off-screen (Agg), no display needed.
"""
import argparse
import json
import math
import os
import sys

EPILOG = """\
examples:
  build/tools/lowbit train --epochs 5 --out runs/fp32
  build/tools/lowbit train --method pact-sawb --wbits 2 --abits 2 --epochs 5 --out runs/w2a2
  tools/plot_runs.py runs/fp32 runs/w2a2 --out runs/compare.png
  tools/plot_runs.py runs/a runs/b --label "lr 0.05" --label "lr 0.1" --out ab.png --json-summary

reads RUN_DIR/metrics.jsonl, one JSON object per epoch as `lowbit train` writes it:
  {"epoch": 1, "train_loss": ..., "test_loss": ..., "test_acc": ..., ...,
   "quantizers": {"3.act_quantizer.alpha": 4.1, "3.weight_quantizer.alpha_w": 0.08, ...}}
A quantizer key is LAYER.SLOT.PARAM: panels are per SLOT.PARAM, lines per LAYER.

--json-summary prints one JSON object to stdout:
  {"out": FILE, "runs": [{"dir", "label", "epochs", "quantized"}],
   "panels": [{"title", "run", "kind", "lines", "labels"}]}
("run" is null for the shared accuracy/loss panels, "kind" is "test_acc", "loss" or SLOT.PARAM).
Errors (missing dir, missing or malformed metrics.jsonl, unwritable FILE) print one "error: ..."
line and exit 1; a usage mistake exits 2."""

# What each parameter is, for the panel titles (quant-methods.md has the rules).
PARAM_NAMES = {
    "alpha": "PACT clip alpha",
    "alpha_w": "SAWB scale alpha_w",
    "c": "QIL centre c",
    "d": "QIL half-width d",
    "gamma": "QIL gamma",
    "s": "LSQ step s",
    "max_abs": "input range max|x|",
}
SLOT_NAMES = {"act_quantizer": "activations", "weight_quantizer": "weights"}
MAX_COLS = 4


class UsageError(Exception):
    """A caller's mistake: reported as one `error: ...` line, exit status 1."""


def number(value, where):
    """A metric value as float; null (how lowbit writes NaN/inf) becomes NaN."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{where}: expected a number, got {json.dumps(value)}")
    return float(value)


def read_run(run_dir):
    """The epochs of one run: a list of dicts with epoch, test_acc, test_loss, train_loss and
    quantizers {(slot.param): {layer: value}}."""
    if not os.path.isdir(run_dir):
        raise UsageError(f"{run_dir}: no such run directory")
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: missing (is {run_dir} a `lowbit train --out` directory?)")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read: {e}") from None
    epochs = []
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            msg = e.msg.removesuffix(" at")  # "Unterminated string starting at" -> "... starting"
            raise UsageError(f"{where}: malformed JSON at column {e.colno}: {msg}") from None
        if not isinstance(obj, dict):
            raise UsageError(f"{where}: expected a JSON object per line, got {type(obj).__name__}")
        for key in ("epoch", "test_acc", "test_loss"):
            if key not in obj:
                raise UsageError(f"{where}: no \"{key}\" field")
        row = {key: number(obj.get(key), f"{where}: \"{key}\"") for key in ("epoch", "test_acc", "test_loss")}
        row["train_loss"] = number(obj.get("train_loss"), f"{where}: \"train_loss\"")
        quantizers = obj.get("quantizers", {})
        if not isinstance(quantizers, dict):
            raise UsageError(f"{where}: \"quantizers\" must be an object of LAYER.SLOT.PARAM: value")
        row["quantizers"] = {}
        for key, value in quantizers.items():
            parts = key.rsplit(".", 2)
            # A quantizer registered at the top level (no layer prefix) plots under "(model)".
            layer, kind = (parts[0], ".".join(parts[1:])) if len(parts) == 3 else ("(model)", key)
            row["quantizers"].setdefault(kind, {})[layer] = number(value, f"{where}: \"quantizers\".\"{key}\"")
        epochs.append(row)
    if not epochs:
        raise UsageError(f"{path}: no epochs (empty file)")
    return epochs


def kind_title(kind):
    slot, _, param = kind.rpartition(".")
    name = PARAM_NAMES.get(param, param)
    return f"{name} ({SLOT_NAMES.get(slot, slot)})" if slot else name


def layer_order(name):
    """Layers in model order: dotted names compare numerically part by part ("3.0.conv1" < "10")."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in name.split(".")]


def plot(runs, out, dpi):
    """Draws every panel into out; returns the panel list for --json-summary."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("matplotlib is missing: sudo apt-get install python3-matplotlib "
                         "(tools/setup.sh does), and run with Debian's /usr/bin/python3") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Per quantized run: its parameter kinds in a stable order (weights, activations, input range).
    run_kinds = []
    for run in runs:
        kinds = sorted({k for e in run["epochs"] for k in e["quantizers"]},
                       key=lambda k: (k.rpartition(".")[0] != "weight_quantizer", k.endswith(".max_abs"), k))
        run_kinds.append(kinds)
    # A run's panels wrap after MAX_COLS so that QIL (up to 7 kinds) keeps a readable width.
    ncols = min(MAX_COLS, max([2] + [len(k) for k in run_kinds]))
    run_rows = [-(-len(k) // ncols) for k in run_kinds]  # rows per run, 0 for float32
    nrows = 1 + sum(run_rows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows), squeeze=False,
                             layout="constrained")
    panels = []
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def finish(ax, title, ylabel, legend_title=None, outside=False, **extra):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.yaxis.get_major_formatter().set_useOffset(False)  # QIL gamma ~ 1: "0.99999", not "1e-6+1"
        labels = ax.get_legend_handles_labels()[1]
        if outside:  # many layers: a legend beside the panel never covers a line
            ax.legend(fontsize=7, title=legend_title, title_fontsize=7, loc="upper left",
                      bbox_to_anchor=(1.01, 1.0), ncols=1 + len(labels) // 16, frameon=False)
        else:
            ax.legend(fontsize=8, title=legend_title, title_fontsize=8, loc="best")
        panels.append({"title": title, "lines": len(ax.get_lines()), "labels": labels, **extra})

    acc, loss = axes[0][0], axes[0][1]
    for i, run in enumerate(runs):
        color = colors[i % len(colors)]
        x = [e["epoch"] for e in run["epochs"]]
        acc.plot(x, [e["test_acc"] for e in run["epochs"]], marker="o", ms=3, color=color, label=run["label"])
        loss.plot(x, [e["test_loss"] for e in run["epochs"]], marker="o", ms=3, color=color,
                  label=f"{run['label']} test")
        if any(not math.isnan(e["train_loss"]) for e in run["epochs"]):
            loss.plot(x, [e["train_loss"] for e in run["epochs"]], ls="--", color=color, alpha=0.7,
                      label=f"{run['label']} train")
    finish(acc, "test accuracy", "accuracy (%)", run=None, kind="test_acc")
    finish(loss, "loss (test solid, train dashed)", "cross-entropy", run=None, kind="loss")
    for ax in axes[0][2:]:
        ax.set_visible(False)

    first_row = 1
    for i, run in enumerate(runs):
        cells = [axes[first_row + r][c] for r in range(run_rows[i]) for c in range(ncols)]
        first_row += run_rows[i]
        for ax, kind in zip(cells, run_kinds[i]):
            layers = sorted({l for e in run["epochs"] for l in e["quantizers"].get(kind, {})}, key=layer_order)
            for layer in layers:
                pts = [(e["epoch"], e["quantizers"][kind][layer]) for e in run["epochs"]
                       if layer in e["quantizers"].get(kind, {})]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=layer)
            finish(ax, f"{run['label']}: {kind_title(kind)}", kind.rpartition(".")[2], legend_title="layer",
                   outside=True, run=run["label"], kind=kind)
        for ax in cells[len(run_kinds[i]):]:
            ax.set_visible(False)

    try:
        fig.savefig(out, dpi=dpi)
    except OSError as e:
        raise UsageError(f"{out}: cannot write the plot: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return panels


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="plot_runs.py", description=__doc__.split("\n\n", 1)[1].strip(), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="`lowbit train --out` directories to compare")
    parser.add_argument("--out", required=True, metavar="FILE.png", help="the PNG to write")
    parser.add_argument("--label", action="append", default=[], metavar="NAME",
                        help="name of a run in the legends, once per RUN_DIR in order (default: the dir's name)")
    parser.add_argument("--dpi", type=int, default=110, help="resolution of the PNG (default: %(default)s)")
    parser.add_argument("--json-summary", action="store_true",
                        help="print the panels drawn (titles, line counts, labels) as JSON on stdout")
    args = parser.parse_args(argv)
    try:
        if args.label and len(args.label) != len(args.runs):
            raise UsageError(f"--label given {len(args.label)} times for {len(args.runs)} RUN_DIRs: "
                             "give it once per run, or not at all")
        runs = []
        for i, run_dir in enumerate(args.runs):
            label = args.label[i] if args.label else os.path.basename(os.path.normpath(run_dir))
            runs.append({"dir": run_dir, "label": label, "epochs": read_run(run_dir)})
        panels = plot(runs, args.out, args.dpi)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json_summary:
        print(json.dumps({
            "out": args.out,
            "runs": [{"dir": r["dir"], "label": r["label"], "epochs": len(r["epochs"]),
                      "quantized": any(e["quantizers"] for e in r["epochs"])} for r in runs],
            "panels": panels}))
    else:
        print(f"plot_runs: wrote {args.out} ({len(panels)} panels, {len(runs)} runs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
