"""The benchmarks page's plots and tables, drawn from the committed ``--json`` results.

``conf.py`` calls :func:`make_benchmark_page` at every docs build: it reads the JSON files that
``scripts/benchmark_*.py --json`` wrote into this folder and writes PNGs and a Markdown file of
tables into ``docs/notes/_generated/``, which ``notes/benchmarks.md`` includes. A missing file
leaves its section out with a line that says which command writes it.
"""
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = {"inference": "inference.json", "int8": "int8.json", "train": "train.json", "data": "data.json",
         "coco_scale": "coco_scale.json", "coco_eval": "coco_eval.json"}
COMMANDS = {
    "inference": "OMP_NUM_THREADS=2 python scripts/benchmark_inference.py --onnx --json docs/benchmarks/inference.json",
    "int8": "OMP_NUM_THREADS=2 python scripts/benchmark_inference.py --variants gluoncv ours --int8 --no-torchvision --json docs/benchmarks/int8.json",
    "train": "OMP_NUM_THREADS=2 python scripts/benchmark_train.py --json docs/benchmarks/train.json",
    "data": "OMP_NUM_THREADS=2 python scripts/benchmark_data.py --json docs/benchmarks/data.json",
    "coco_scale": "python scripts/benchmark_data.py --coco-scale --root /tmp/coco-scale --json docs/benchmarks/coco_scale.json",
    "coco_eval": "python scripts/benchmark_data.py --coco-eval --root /tmp/coco-val-scale --json docs/benchmarks/coco_eval.json",
}
IMPL_LABELS = {"gluoncv": "GluonCV default (masks for 1000)", "gluoncv100": "GluonCV rcnn_max_dets=100",
               "ours": "ours", "onnx": "ours, ONNX Runtime", "int8": "ours, int8", "torchvision": "torchvision"}
COLORS = {"gluoncv": "#9e9e9e", "gluoncv100": "#c7c7c7", "ours": "#1f77b4", "onnx": "#6baed6",
          "int8": "#2ca02c", "torchvision": "#ff7f0e"}


def short_name(model):
    """'mask_rcnn_fpn_resnet50_v1b_coco' -> 'FPN R50'."""
    head = "FPN" if "fpn" in model else "C4"
    for depth in ("101", "50", "18"):
        if "resnet" + depth in model:
            return "%s R%s" % (head, depth)
    return model


def load(kind, folder=HERE):
    path = os.path.join(folder, FILES[kind])
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _save(fig, out_dir, name):
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), dpi=110)
    plt.close(fig)
    return name


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _grouped_bars(ax, groups, impls, value, ylabel):
    """Bars of ``value(group, impl)`` for each group (x) and implementation (colour)."""
    width = 0.8 / len(impls)
    for k, impl in enumerate(impls):
        xs = [i + (k - (len(impls) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, [value(g, impl) or 0 for g in groups], width, label=IMPL_LABELS.get(impl, impl),
               color=COLORS.get(impl))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(["%s\n%s" % g for g in groups])
    ax.set_ylabel(ylabel)


def inference_section(record, out_dir):
    rows = record["results"]
    groups = list(dict.fromkeys((short_name(r["model"]), r["size"]) for r in rows if r["impl"] != "torchvision"))
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    by = {(short_name(r["model"]), r["size"], r["impl"]): r for r in rows}

    def get(field):
        return lambda g, impl: (by.get(g + (impl,)) or {}).get(field)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    _grouped_bars(axes[0], groups, impls, get("seconds"), "seconds per image (median)")
    _grouped_bars(axes[1], groups, impls, get("peak_rss_gb"), "peak resident memory (GB)")
    axes[0].legend(fontsize=8)
    image = _save(fig, out_dir, "inference.png")
    table = _table(["model", "input"] + [IMPL_LABELS.get(i, i) for i in impls] + ["ours vs GluonCV default",
                                                                                   "top 100 of GluonCV reproduced (ours)"],
                   [[g[0], g[1]] + ["%.2f s, %.1f GB" % (by[g + (i,)]["seconds"], by[g + (i,)]["peak_rss_gb"])
                                    if g + (i,) in by else "" for i in impls]
                    + ["%.1fx" % by[g + ("gluoncv",)]["speedup_of_ours"] if g + ("gluoncv",) in by else "",
                       "%.0f%%" % (100 * by[g + ("ours",)]["top100_vs_gluoncv_imperative"])]
                    for g in groups])
    text = ("Random weights saved by GluonCV and loaded by every implementation, one process per "
            "measurement (so each peak memory is its own), hybridized, warm-up %d, median of %d. "
            "The last column is the share of imperative GluonCV's top 100 detections that ours "
            "reproduces (same class, box IoU, score)." % (record["settings"]["warmup"], record["settings"]["runs"]))
    return "## Inference\n\n%s\n\n![inference](_generated/%s)\n\n%s\n" % (text, image, table)


def int8_section(record, out_dir):
    rows = record["results"]
    by = {(short_name(r["model"]), r["size"], r["impl"]): r for r in rows}
    groups = list(dict.fromkeys((short_name(r["model"]), r["size"]) for r in rows))
    impls = [impl for impl in ("gluoncv", "ours", "int8") if any(g + (impl,) in by for g in groups)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    _grouped_bars(ax, groups, impls, lambda g, impl: (by.get(g + (impl,)) or {}).get("seconds"),
                  "seconds per image (median)")
    ax.legend(fontsize=8)
    image = _save(fig, out_dir, "int8.png")

    def seconds(g, impl):
        return by[g + (impl,)]["seconds"] if g + (impl,) in by else None

    def cell(value, fmt):
        return fmt % value if value is not None else "-"

    table = _table(["model", "input", "GluonCV default", "ours float32", "ours int8", "int8 vs float32",
                    "int8 vs GluonCV", "peak RSS float32 / int8"],
                   [[g[0], g[1], cell(seconds(g, "gluoncv"), "%.2f s"), "%.2f s" % seconds(g, "ours"),
                     "%.2f s" % seconds(g, "int8"), "%.2fx" % (seconds(g, "ours") / seconds(g, "int8")),
                     cell(seconds(g, "gluoncv") and seconds(g, "gluoncv") / seconds(g, "int8"), "%.2fx"),
                     "%.1f / %.1f GB" % (by[g + ("ours",)]["peak_rss_gb"], by[g + ("int8",)]["peak_rss_gb"])]
                    for g in groups if g + ("int8",) in by and g + ("ours",) in by])
    text = ("Our network in float32 and quantized to int8 (calibrated on two images of the input's size; "
            "random weights, so only the speed is meant), beside GluonCV's, the same process protocol as "
            "above. The int8 model is quantized and exported by one process and timed by another that "
            "loads the export, so its peak memory is inference's. The CPU's int8 instructions: **%s**."
            % record["machine"]["int8"])
    return "## INT8 inference\n\n%s\n\n![int8](_generated/%s)\n\n%s\n" % (text, image, table)


def train_section(record, out_dir):
    rows = [r for r in record["results"] if r["impl"] in ("gluoncv", "ours")]
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for k, impl in enumerate(("gluoncv", "ours")):
        for i, model in enumerate(models):
            row = next(r for r in rows if r["model"] == model and r["impl"] == impl)
            x = i + (k - 0.5) * 0.38
            ax.bar(x, row["seconds_per_iter"], 0.36, color=COLORS[impl],
                   label=(IMPL_LABELS[impl] if i == 0 else None))
            turns = row["seconds_each_turn"]
            ax.plot([x] * len(turns), turns, "k.", ms=5)
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels([short_name(m) for m in models])
    ax.set_ylabel("seconds per training step")
    ax.legend(fontsize=8)
    image = _save(fig, out_dir, "train.png")
    table_rows = []
    for model in models:
        g, o = (next(r for r in rows if r["model"] == model and r["impl"] == impl) for impl in ("gluoncv", "ours"))
        table_rows.append([short_name(model), "%.2f s (%.2f-%.2f)" % (g["seconds_per_iter"], min(g["seconds_each_turn"]),
                                                                      max(g["seconds_each_turn"])),
                           "%.2f s (%.2f-%.2f)" % (o["seconds_per_iter"], min(o["seconds_each_turn"]),
                                                   max(o["seconds_each_turn"])),
                           "%.2fx" % g["speedup_of_ours"], "%.1f / %.1f GB" % (g["peak_rss_gb"], o["peak_rss_gb"]),
                           "%.0f%% / %.0f%%" % (100 * g["layer_share"], 100 * o["layer_share"])])
    table = _table(["model", "GluonCV: median (range)", "ours: median (range)", "ours vs GluonCV",
                    "peak RSS GluonCV / ours", "time in conv, deconv and FC layers: GluonCV / ours"], table_rows)
    s = record["settings"]
    text = ("One image (short side %d, long side at most %d), the same weights; GluonCV's own model, "
            "targets and losses against ours with our trainer's optimizer; both hybridized with "
            "`static_alloc`. The two run as live processes that take turns step by step, so both see "
            "the same machine: warm-up %d turns, then %d timed turns each (the dots; the bars are the "
            "medians). Three profiled steps of each give the share of time in the layers."
            % (s["short"], s["max_size"], s["warmup"], s["runs"]))
    return "## Training step\n\n%s\n\n![train](_generated/%s)\n\n%s\n" % (text, image, table)


def data_section(record, out_dir):
    r = record["results"]
    fig, ax = plt.subplots(figsize=(6, 2.8))
    for i, (who, label) in enumerate((("gluoncv", "GluonCV"), ("ours", "ours"))):
        t, b = r[who + "_transform_ms"], r[who + "_batchify_ms"]
        ax.barh(i, t, color=COLORS[who], label="transform" if i == 0 else None)
        ax.barh(i, b, left=t, color=COLORS[who], alpha=0.5, hatch="//", label="RPN targets and batching" if i == 0 else None)
    ax.set_yticks([0, 1])
    ax.set_yticklabels(["GluonCV", "ours"])
    ax.set_xlabel("milliseconds per image")
    ax.legend(fontsize=8)
    image = _save(fig, out_dir, "data.png")
    text = ("The training transform, RPN targets and batching per image, %s preset (short side 800, "
            "long side at most 1333), the same images, one process: ours %.1f ms against GluonCV's "
            "%.1f ms, **%.1fx**. Our loader: %.1f images/s with 1 worker, %.1f with 2."
            % (short_name(record["settings"]["model"]), r["ours_transform_ms"] + r["ours_batchify_ms"],
               r["gluoncv_transform_ms"] + r["gluoncv_batchify_ms"], r["speedup_per_image"],
               r["ours_loader_1_workers_img_per_s"], r["ours_loader_2_workers_img_per_s"]))
    return "## Data pipeline\n\n%s\n\n![data](_generated/%s)\n" % (text, image)


LOADER_LABELS = {"ours": "ours: parse in a child, write the cache", "ours, cached": "ours, cache present",
                 "pycocotools": "pycocotools COCO()", "gluoncv": "GluonCV COCOInstance"}


def coco_scale_section(record, out_dir):
    loaders = record["results"]["loaders"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for row in loaders:
        memory = max(row["peak_rss_mb"], row["child_peak_rss_mb"] if row["loader"] == "ours" else 0)
        ax.plot(row["seconds"], row["peak_rss_mb"], "o", ms=9, color=COLORS["ours" if "ours" in row["loader"] else "gluoncv"])
        ax.annotate(LOADER_LABELS.get(row["loader"], row["loader"]), (row["seconds"], row["peak_rss_mb"]),
                    textcoords="offset points", xytext=(6, 6), fontsize=8)
        if memory != row["peak_rss_mb"]:
            ax.plot([row["seconds"]] * 2, [row["peak_rss_mb"], memory], ":", color=COLORS["ours"])
    ax.set_xlabel("seconds to load COCO train's annotations")
    ax.set_ylabel("peak RSS of the loading process (MB)")
    ax.set_xlim(0, 1.4 * max(row["seconds"] for row in loaders))  # room for the labels
    ax.set_ylim(bottom=0)
    image = _save(fig, out_dir, "coco_scale.png")
    table = _table(["loader", "load", "peak RSS of the loading process", "and of its child"],
                   [[LOADER_LABELS.get(r["loader"], r["loader"]), "%.1f s" % r["seconds"], "%.0f MB" % r["peak_rss_mb"],
                     "%.0f MB" % r["child_peak_rss_mb"] if r["loader"] == "ours" else ""] for r in loaders])
    workers = record["results"]["worker_memory"]
    s = record["settings"]
    text = ("An `instances_train2017.json` written from a seed with COCO train's counts (%d images, %d "
            "annotations, 80 categories, 1%% crowd RLE, polygons of 6 to 60 vertices), each loader in a "
            "fresh process; peak memory above the imports'. The dotted line is the child process that "
            "parses the file once and writes the cache." % (s["coco_images"], s["coco_annotations"]))
    memory = "; ".join("%d images read: main %.0f MB, workers %.0f MB" % (w["images_read"], w["main_private_mb"],
                                                                          w["workers_private_mb"]) for w in workers)
    return ("## Annotations at COCO train's size\n\n%s\n\n![coco scale](_generated/%s)\n\n%s\n\nPrivate memory (USS) "
            "of 4 DataLoader workers streaming the annotations: %s.\n" % (text, image, table, memory))


def coco_eval_section(record, out_dir):
    r = record["results"]
    bars = [("paste and RLE-encode, before (full-image paste)", r.get("paste_and_encode_before"), COLORS["gluoncv"]),
            ("paste and RLE-encode, ours (from each box)", r["paste_and_encode"], COLORS["ours"])]
    for evaluator, color in (("pycocotools", COLORS["gluoncv"]), ("faster-coco-eval", COLORS["ours"])):
        if evaluator in r:
            bars.append(("COCOeval bbox + segm, %s" % evaluator, r[evaluator][0], color))
    bars = [b for b in bars if b[1] is not None]
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.barh(range(len(bars)), [b[1] for b in bars], color=[b[2] for b in bars])
    ax.set_yticks(range(len(bars)))
    ax.set_yticklabels([b[0] for b in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds for 5,000 images x 100 detections")
    image = _save(fig, out_dir, "coco_eval.png")
    lines = ["%s: %.1f s" % (b[0], b[1]) for b in bars]
    if "pycocotools" in r and "faster-coco-eval" in r:
        p, f = r["pycocotools"], r["faster-coco-eval"]
        lines.append("segm AP %.4f / %.4f and bbox AP %.4f / %.4f (pycocotools / faster-coco-eval)"
                     % (p[1]["segm"]["AP"], f[1]["segm"]["AP"], p[1]["bbox"]["AP"], f[1]["bbox"]["AP"]))
    if "identical" in r:
        lines.append("the two encodings' results identical: %s" % ("yes" if r["identical"] else "NO"))
    text = ("COCO val's size: %d images, 100 detections each with masks, scored as our evaluation does "
            "(one thread encoding)." % record["settings"]["eval_images"])
    return "## Evaluation at COCO val's size\n\n%s\n\n![coco eval](_generated/%s)\n\n%s\n" % (
        text, image, "\n".join("- " + line for line in lines))


SECTIONS = (("inference", inference_section), ("int8", int8_section), ("train", train_section), ("data", data_section),
            ("coco_scale", coco_scale_section), ("coco_eval", coco_eval_section))


def machine_text(records):
    """The hardware, versions and dates, once; a benchmark run elsewhere is named."""
    machines = {json.dumps(r["machine"], sort_keys=True) for r in records.values()}
    first = next(iter(records.values()))["machine"]
    text = ("CPU: %s, %d logical cores, int8 instructions: %s; `OMP_NUM_THREADS=%s`; Python %s, MXNet %s, "
            "GluonCV %s (its `__version__`), NumPy %s. Dates: %s." % (
                first["cpu"], first["logical_cores"], first["int8"], first["omp_num_threads"], first["python"],
                first["mxnet"], first["gluoncv"], first["numpy"],
                ", ".join("%s %s" % (k, r["date"]) for k, r in records.items())))
    if len(machines) > 1:
        text += " Not every file comes from this machine: %s." % ", ".join(
            "%s on %s (%s threads)" % (k, r["machine"]["cpu"], r["machine"]["omp_num_threads"]) for k, r in records.items())
    return text


def make_benchmark_page(out_dir, folder=HERE):
    """Write the plots and ``benchmark_figures.md`` into ``out_dir``; returns the sections made."""
    os.makedirs(out_dir, exist_ok=True)
    records = {kind: load(kind, folder) for kind, _ in SECTIONS}
    present = {k: r for k, r in records.items() if r is not None}
    parts = [machine_text(present)] if present else []
    for kind, section in SECTIONS:
        if records[kind] is None:
            parts.append("*Not measured yet: `%s` writes it.*" % COMMANDS[kind])
        else:
            parts.append(section(records[kind], out_dir))
    with open(os.path.join(out_dir, "benchmark_figures.md"), "w") as f:
        f.write("\n\n".join(parts) + "\n")
    return sorted(present)


if __name__ == "__main__":
    print(make_benchmark_page(os.path.join(HERE, "..", "notes", "_generated")))
