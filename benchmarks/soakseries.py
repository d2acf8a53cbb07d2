"""`python -m benchmarks.soakseries PROBE.jsonl [--minutes 1,5,10,...] [--json OUT]`: a soak's memory record (the
lines `benchmarks/memprobe.py` writes) as the table of docs/load-soak.md, one row at each chosen minute, and as the
compact series kept in `benchmarks/results/soak-*.json` (one entry per sample).
"""
import argparse
import json
from pathlib import Path

MIB = 2 ** 20


def compact(line: dict) -> dict:
    """Return one probe line as the series' entry: sizes in MiB, the collector's counts, long-lived functions."""
    entry = {"t_s": line["t"], "rss_mib": round(line["rss"] / MIB), "malloc_in_use_mib": round(line["malloc"]["in_use"] / MIB),
             "malloc_free_mib": round(line["malloc"]["free"] / MIB), "python_blocks": line["py_blocks"],
             "gc_collections": line["gc"]["collections"], "frozen": line["gc"]["frozen"]}
    if "types" in line:
        entry["functions"] = line["types"].get("function", 0)
    return entry


def read_series(path: str) -> list[dict]:
    """Return the compact series of a probe file (a line cut short by the server's end is left out)."""
    series = []
    for text in Path(path).read_text().splitlines():
        try:
            series.append(compact(json.loads(text)))
        except json.JSONDecodeError:
            continue
    return series


def nearest(series: list[dict], seconds: float, key: str | None = None) -> dict:
    """Return the entry closest in time to `seconds` (among those that have `key`)."""
    return min((e for e in series if key is None or key in e), key=lambda e: abs(e["t_s"] - seconds))


def table(series: list[dict], minutes: list[float]) -> list[str]:
    """Return the Markdown rows of the series at the given minutes (those the record reaches)."""
    rows = ["| minute | RSS MiB | malloc in use MiB | malloc free MiB | Python heap blocks | functions (oldest generation) |",
            "| --- | --- | --- | --- | --- | --- |"]
    for minute in (m for m in minutes if m * 60 <= series[-1]["t_s"] + 15):
        e, f = nearest(series, minute * 60), nearest(series, minute * 60, "functions")
        rows.append(f"| {minute:g} | {e['rss_mib']:,} | {e['malloc_in_use_mib']:,} | {e['malloc_free_mib']:,} | "
                    f"{e['python_blocks'] / 1e6:.2f} M | {f['functions']:,} |")
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soakseries", description=__doc__)
    p.add_argument("probe", help="the file given to python -m benchmarks.load --memory-probe")
    p.add_argument("--minutes", default="1,5,10,20,30,40,50,60", help="comma-separated minutes for the table")
    p.add_argument("--json", default=None, help="write the compact series here")
    args = p.parse_args(argv)
    series = read_series(args.probe)
    print("\n".join(table(series, [float(m) for m in args.minutes.split(",")])))
    if args.json:
        Path(args.json).write_text(json.dumps(series) + "\n")


if __name__ == "__main__":
    main()
