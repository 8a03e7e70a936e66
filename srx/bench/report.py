"""Human-readable bench tables and the comparison with an earlier run (--compare)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srx.errors import BadInput, SrxError

if TYPE_CHECKING:
    from srx.bench.result import BenchResult


def _si(x: float | None, unit: str = "", digits: int = 2) -> str:
    if x is None:
        return "-"
    for div, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:.{digits}f} {prefix}{unit}"
    return f"{x:.{digits}f} {unit}".strip()


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def format_table(result: BenchResult) -> str:
    """What `srx bench` prints: the setting, a row per backend, then the notes on the rows."""
    lines = _setting_lines(result)
    rows, notes = _table_rows(result.results)
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines.append("")
    for j, row in enumerate(rows):
        cells = [
            str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells))
        if j == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    if notes:
        lines.append("")
        lines.extend(notes)
    lines += _footnotes(result)
    if any("profile" in r for r in result.results):
        from srx.bench.breakdown import format_profiles

        lines.append(format_profiles(result.results))
    return "\n".join(lines)


def _setting_lines(result: BenchResult) -> list[str]:
    """What ran on what: model, input, runs, device, complexity, the accuracy reference."""
    m, dev, cx = result.model, result.device, result.complexity
    lines = [f"srx bench: {m['label']}"]
    if result.untrained:
        lines.append(f"  NOTE: {result.note or 'untrained model'}; pass --weights CKPT for a trained model")
    lines.append(
        f"  input {result.input} -> {result.output}, batch {result.batch}, {result.runs} timed runs "
        f"after {result.warmup} warm-up, {result.inputs['count']} inputs ({result.inputs['source']})"
    )
    if result.rounds > 1:
        lines.append(
            f"  timed in {result.rounds} rounds, the backends taking turns (order reversed every other round), "
            "all loaded at once"
        )
    if result.batch > 1:
        lines.append(f"  latency is per batch of {result.batch}; FPS counts frames (batch / median)")
    flags = ", ".join(dev.get("cpu_flags", [])) or "-"
    where = dev["name"] if dev["kind"] == "cuda" else f"{dev['cpu']} ({dev['cpus']} CPUs; {flags})"
    lines.append(f"  device {dev['kind']}: {where}")
    if cx.get("macs") is not None:
        lines.append(
            f"  params {_si(cx['params'])}, multiply-adds {cx['macs'] / 1e9:.3f} G, "
            f"activations {_si(cx['activations'])} (fvcore rules, as the paper)"
        )
    acc = result.accuracy
    if acc.get("reference"):
        lines.append(f"  accuracy vs {acc['reference']} on the first {acc['inputs']} inputs; PSNR on outputs in [0, 1]")
    else:
        lines.append(f"  accuracy: {acc.get('note', 'no reference')}")
    return lines


def _table_rows(results: list[dict[str, Any]]) -> tuple[list[tuple[str, ...]], list[str]]:
    """The header and a row per backend that ran; a note per backend that did not."""
    header = ("backend", "precision", "mode", "median ms", "p90 ms", "mean ms", "min ms", "FPS")
    header += ("vs eager FP32", "vs best peer", "peak MB", "max |diff|", "PSNR dB")
    rows = [header]
    notes = []
    for r in results:
        if r["status"] != "ok":
            notes.append(f"  {r['backend']:<19} {r['status']}: {r['reason']}")
            continue
        lat = r["latency_ms"]
        if r.get("identical_to_fp32"):
            diff, psnr = "0", "identical"
        else:
            diff = _num(r.get("max_abs_diff_vs_fp32"), ".3g")
            psnr = _num(r.get("psnr_vs_fp32"), ".2f")
            if r.get("nonfinite_outputs"):
                diff = f"{r['nonfinite_outputs']} non-finite"
        speedups = [
            _num(r.get(k), ".2f") + ("x" if r.get(k) else "") for k in ("speedup_vs_torch", "speedup_vs_best_peer")
        ]
        rows.append(
            (r["backend"], r["precision"], r.get("mode", ""),
             *(f"{lat[k]:.2f}" for k in ("median", "p90", "mean", "min")), f"{r['fps']:.2f}",
             *speedups, _num(r.get("peak_memory_mb"), ".1f"), diff, psnr)
        )  # fmt: skip
    return rows, notes


def _footnotes(result: BenchResult) -> list[str]:
    """Under the table: the best peer, compile times, graph pools, how memory was measured."""
    ok = result.rows("ok")
    if not ok:
        return []
    method = {r.get("memory_method") for r in ok} - {None}
    lines = [""]
    best = result.best_peer
    if best:
        lines.append(
            f"  best peer (fastest row without srx: plain PyTorch): {best['backend']}, {best['median_ms']:.2f} ms"
        )
    for r in ok:
        mode = r.get("settings", {}).get("compile_mode")
        if mode is not None and r.get("first_run_seconds") is not None:
            lines.append(
                f"  {r['backend']}: torch.compile mode {mode}, compiled in the first run: {r['first_run_seconds']:.1f} s"
            )
        if r.get("graph_pool_mb") is not None:
            lines.append(f"  {r['backend']}: peak memory includes its CUDA graph pool ({r['graph_pool_mb']:.1f} MB)")
    lines.append("  peak memory: " + "; ".join(sorted(method)))
    return lines


def load_result(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except FileNotFoundError as e:
        raise BadInput(f"--compare {p}: file does not exist; check the path") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"--compare {p}: not a JSON file written by srx bench --json ({e})") from e
    if not isinstance(d, dict) or not isinstance(d.get("results"), list):
        raise BadInput(f"--compare {p}: not a srx bench result (no 'results' list)")
    return d


def compare(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Per backend present and ok in both: old and new median latency, memory and PSNR, and the change."""
    old_rows = {r.get("backend"): r for r in old["results"] if r.get("status") == "ok"}
    rows = []
    for r in new["results"]:
        o = old_rows.get(r["backend"])
        if r["status"] != "ok" or o is None:
            continue
        new_ms, old_ms = r["latency_ms"]["median"], o["latency_ms"]["median"]
        row = {
            "backend": r["backend"],
            "median_ms_old": old_ms,
            "median_ms_new": new_ms,
            "latency_change_pct": round(100.0 * (new_ms - old_ms) / old_ms, 2),
            "speedup": round(old_ms / new_ms, 3),
        }
        mo, mn = o.get("peak_memory_mb"), r.get("peak_memory_mb")
        row["peak_memory_mb_old"], row["peak_memory_mb_new"] = mo, mn
        row["memory_change_mb"] = None if mo is None or mn is None else round(mn - mo, 2)
        row["psnr_old"], row["psnr_new"] = o.get("psnr_vs_fp32"), r.get("psnr_vs_fp32")
        rows.append(row)
    return {"rows": rows, "caveats": caveats(new, old)}


# Versions that change the numbers of some backend.
_VERSIONED = ("srx", "torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "tensorrt-rtx-cu13", "triton", "numpy")


def caveats(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """Why the two runs may not be comparable: another model, input, device or version."""
    out = []
    om, nm = old.get("model", {}), new.get("model", {})
    if om.get("spec") != nm.get("spec"):
        out.append(f"model differs ({om.get('label')} before, {nm.get('label')} now)")
    if om.get("source") != nm.get("source"):
        out.append(f"model file differs ({om.get('source') or 'embedded default'} before)")
    if None not in (om.get("precision"), nm.get("precision")) and om.get("precision") != nm.get("precision"):
        out.append(f"model precision differs ({om.get('precision')} before, {nm.get('precision')} now)")
    old_prec = {r.get("backend"): r.get("precision") for r in old["results"] if r.get("status") == "ok"}
    for r in new["results"]:
        before = old_prec.get(r["backend"])
        if r["status"] == "ok" and before is not None and before != r.get("precision"):
            out.append(f"{r['backend']} ran {before} before and {r.get('precision')} now")
    for key in ("input", "scale", "batch"):
        if old.get(key) != new.get(key):
            out.append(f"{key} differs ({old.get(key)} before, {new.get(key)} now)")
    if old.get("rounds", 1) != new.get("rounds", 1):  # runs before --rounds existed took 1
        out.append(f"rounds differ ({old.get('rounds', 1)} before, {new.get('rounds', 1)} now)")
    if old.get("inputs", {}).get("source") != new.get("inputs", {}).get("source"):
        out.append(f"inputs differ ({old.get('inputs', {}).get('source')} before)")
    od, nd = old.get("device", {}), new.get("device", {})
    if (od.get("kind"), od.get("name")) != (nd.get("kind"), nd.get("name")):
        out.append(f"device differs ({od.get('kind')} {od.get('name')} before, {nd.get('kind')} {nd.get('name')} now)")
    ov, nv = old.get("versions", {}), new.get("versions", {})
    changed = [f"{k} {ov.get(k, '-')} -> {nv.get(k, '-')}" for k in _VERSIONED if ov.get(k) != nv.get(k)]
    if changed:
        out.append("versions differ: " + ", ".join(changed))
    return out


def format_compare(cmp: dict[str, Any], old_path: str) -> str:
    lines = [f"  compared with {old_path}:"]
    for c in cmp["caveats"]:
        lines.append(f"  WARNING: {c}")
    if not cmp["rows"]:
        lines.append("  no backend ran in both")
    for r in cmp["rows"]:
        mem = "" if r["memory_change_mb"] is None else f", memory {r['memory_change_mb']:+.1f} MB"
        lines.append(
            f"  {r['backend']:<19} {r['median_ms_old']:.2f} -> {r['median_ms_new']:.2f} ms "
            f"({r['latency_change_pct']:+.1f}%, {r['speedup']:.2f}x){mem}"
        )
    return "\n".join(lines)


def add_comparison(result: BenchResult, old: dict[str, Any], old_path: str) -> None:
    """--compare: the change against an earlier run `old` goes into `result.compare` (its JSON
    and, under the table, its text)."""
    result.compare = {"old": old_path, **compare(result.to_json(), old)}


def check_outcome(result: BenchResult, origin: str, requested: list[str]) -> None:
    """After the table is shown: no backend could run (bad input, exit 2) or one failed (exit 1)."""
    if all(r["status"] == "skipped" for r in result.results):
        # One or two backends asked for by name: their reasons fit in the line itself.
        why = "; ".join(f"{r['backend']}: {r['reason']}" for r in result.results if r["backend"] in requested)
        raise BadInput(
            f"no backend can run {origin} on {result.device['kind']} here ("
            + (why if why and len(requested) <= 2 else "reasons in the table above")
            + "): install what a row asks for, or choose another --model, --backends or --device"
        )
    _check_failed(result.results, "reasons in the table above")


def check_video_outcome(result: dict[str, Any]) -> None:
    """`srx bench --video`'s version of `check_outcome`."""
    if all(r["status"] == "skipped" for r in result["results"]):
        raise BadInput("no backend can run here (reasons above): install what a row asks for, or choose --backends")
    _check_failed(result["results"], "reasons above")


def _check_failed(results: list[dict[str, Any]], where: str) -> None:
    failed = [r["backend"] for r in results if r["status"] == "failed"]
    if failed:
        raise SrxError(f"backend(s) failed: {', '.join(failed)} ({where})")
