"""PNG plot of a bench result: median latency (p90 whisker) and peak memory per backend,
accuracy written above each latency bar, and with --profile a stacked bar per backend of
where the time goes (ms per run by operation kind). matplotlib is imported here only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srx.errors import MissingDependency
from srx.fileio import atomic_path


def plot_result(result: dict[str, Any], path: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise MissingDependency("matplotlib", "plot", "--plot") from e

    ok = [r for r in result["results"] if r["status"] == "ok"]
    skipped = [r for r in result["results"] if r["status"] != "ok"]
    names = [r["backend"] for r in ok]
    med = [r["latency_ms"]["median"] for r in ok]
    p90 = [r["latency_ms"]["p90"] - r["latency_ms"]["median"] for r in ok]
    mem = [r.get("peak_memory_mb") or 0.0 for r in ok]

    profiled = [r for r in ok if r.get("profile", {}).get("status") == "ok"]
    panels = 3 if profiled else 2
    fig, axes = plt.subplots(1, panels, figsize=(max(8, 2.2 * len(ok) + 4) * panels / 2, 4.8))
    ax1, ax2 = axes[0], axes[1]
    bars = ax1.bar(names, med, yerr=[[0] * len(ok), p90], capsize=4, color="#4878d0")
    ax1.set_ylabel("latency, median (ms); whisker: p90")
    for bar, r, up in zip(bars, ok, p90, strict=True):
        if r.get("identical_to_fp32"):
            text = "identical"
        elif r.get("psnr_vs_fp32") is not None:
            text = f"{r['psnr_vs_fp32']:.1f} dB\n|d|={r.get('max_abs_diff_vs_fp32') or 0:.2g}"
        else:
            text = "accuracy n/a"
        # Above the p90 whisker, not the bar, so the label and the whisker do not overlap.
        top = bar.get_height() + up
        ax1.annotate(text, (bar.get_x() + bar.get_width() / 2, top), xytext=(0, 3), textcoords="offset points",
                     ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax1.set_ylim(0, max(m + u for m, u in zip(med, p90, strict=True)) * 1.3 if ok else 1)
    ax1.set_title("latency (accuracy vs FP32 above)", fontsize=10)
    ax2.bar(names, mem, color="#ee854a")
    what = _memory_label({r.get("memory_method") or "" for r in ok})
    ax2.set_ylabel(f"{what} (MB)")
    ax2.set_title(what, fontsize=10)
    if profiled:
        _stacked_profile(axes[2], profiled)
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)
    dev = result["device"]["name"]
    title = f"{result['model']['label']}\n{result['input']} x{result['scale']}, {dev}"
    fig.suptitle(title, fontsize=10)
    if skipped:
        fig.text(0.01, 0.01, "skipped: " + ", ".join(r["backend"] for r in skipped), fontsize=7, color="gray")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def _stacked_profile(ax: Any, rows: list[dict[str, Any]]) -> None:
    """One stacked bar per profiled backend: ms per run of each operation kind."""
    from srx.bench.breakdown import OP_KINDS

    names = [r["backend"] for r in rows]
    bottom = [0.0] * len(rows)
    for kind, label in OP_KINDS:
        ms = [r["profile"]["categories"][kind]["ms"] for r in rows]
        if any(ms):
            ax.bar(names, ms, bottom=bottom, label=label)
            bottom = [b + m for b, m in zip(bottom, ms, strict=True)]
    ax.set_ylabel("profiled ms per run")
    ax.set_title("where the time goes (--profile)", fontsize=10)
    ax.legend(fontsize=7)


def _memory_label(methods: set[str]) -> str:
    """What the memory bars are: on the CPU the growth of the process's peak RSS, not a peak."""
    if methods and all(m.startswith("peak RSS growth") for m in methods):
        return "peak RSS growth"
    if methods and all(m.startswith("device memory") for m in methods):
        return "peak device memory"
    return "peak memory"
