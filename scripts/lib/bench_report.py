#!/usr/bin/env python3
"""Turns the measurements of scripts/bench-peers into its results.

Reads WORK/raw.tsv (one line per run, written by bench-peers) and
WORK/meta.tsv (the machine, the versions, the commands), keeps the best run
of each tool in each case, and writes WORK/results.md, results.csv,
results.json and, when gnuplot is installed, results.png.

Only the standard library is used, so any python3 runs it.
"""

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

PEERS = ["curl", "aria2", "wget2", "rclone"]
TOOLS = ["ferry"] + PEERS
CEILING = "h2load"
MIB = 1 << 20
GIB = 1 << 30

# The rate a data set is judged by: files/s for many small files, MiB/s for
# a few large ones.
RATE = {"small": "files_per_s", "large": "mib_per_s"}
RATE_NAME = {"files_per_s": "files/s", "mib_per_s": "MiB/s"}

RAW_FIELDS = ["case", "set", "tool", "run", "files", "bytes", "wall", "user",
              "sys", "rss_kib", "nginx_s", "result", "detail"]

# Colours of the chart's bars: ferry stands out, the ceiling is grey.
COLOURS = {"ferry": "#c0392b", "curl": "#2e86c1", "aria2": "#28b463",
           "wget2": "#d4ac0d", "rclone": "#8e44ad", CEILING: "#7f8c8d"}


def read_tsv(path):
    with open(path, newline="") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def read_raw(path):
    runs = []
    for fields in read_tsv(path):
        if len(fields) != len(RAW_FIELDS):
            sys.exit(f"bench_report: {path}: bad line: {fields}")
        runs.append(dict(zip(RAW_FIELDS, fields)))
    return runs


def read_meta(path):
    """Each line is a key and its values: dest, version and command become
    tables keyed by their first field(s); the counts become numbers; the
    rest stay strings, or lists of them."""
    meta = {"dest": {}, "version": {}, "command": {}}
    for fields in read_tsv(path):
        kind, rest = fields[0], fields[1:]
        if kind == "dest":
            meta["dest"][rest[0]] = {"path": rest[1], "fs": rest[2]}
        elif kind == "version":
            meta["version"][rest[0]] = rest[1]
        elif kind == "command":
            meta["command"][tuple(rest[:3])] = rest[3]
        elif kind in ("streams", "runs", "per_file", "connections"):
            values = [int(v) for v in rest]
            meta[kind] = values[0] if len(values) == 1 else values
        else:
            meta[kind] = rest[0] if len(rest) == 1 else rest
    return meta


def number(text):
    return None if text in ("", "-") else float(text)


def summarize(runs):
    """One row per case, data set and tool: the fastest passing run (the
    fastest run when none passed), FAILED when any run failed."""
    groups = {}
    for run in runs:
        groups.setdefault((run["case"], run["set"], run["tool"]), []).append(run)
    rows = []
    for (case, set_, tool), group in groups.items():
        direction, where = case.split("/")
        row = {"direction": direction, "where": where, "set": set_,
               "tool": tool, "result": "ok", "detail": ""}
        if group[0]["result"] == "n/a":
            row.update(result="n/a", detail=group[0]["detail"])
            rows.append(row)
            continue
        failed = [r for r in group if r["result"] != "ok"]
        passing = [r for r in group if r["result"] == "ok"]
        best = min(passing or group, key=lambda r: float(r["wall"]))
        if failed:
            row.update(result="FAILED", detail=failed[0]["detail"])
        files, size = int(best["files"]), int(best["bytes"])
        wall = float(best["wall"])
        cpu = float(best["user"]) + float(best["sys"])
        row.update(
            runs=len(group), files=files, mib=size / MIB, wall_s=wall,
            files_per_s=files / wall if wall > 0 else None,
            mib_per_s=size / MIB / wall if wall > 0 else None,
            cpu_s=cpu, cpu_s_per_gib=cpu / (size / GIB) if size else None,
            peak_rss_mib=float(best["rss_kib"]) / 1024,
            nginx_cpu_s=number(best["nginx_s"]))
        if not passing:
            # A run stopped short or wrong moved no honest bytes per second.
            row.update(files_per_s=None, mib_per_s=None, cpu_s_per_gib=None)
        rows.append(row)
    add_shares(rows)
    return rows


def add_shares(rows):
    """Each tool's rate as a share of h2load's in the same direction."""
    ceilings = {(r["direction"], r["set"]): r for r in rows
                if r["tool"] == CEILING and r["result"] == "ok"}
    for row in rows:
        ceiling = ceilings.get((row["direction"], row["set"]))
        rate = RATE[row["set"]]
        if ceiling and row.get(rate) and ceiling.get(rate):
            row["share_of_ceiling"] = row[rate] / ceiling[rate]


def case_rows(rows, direction, where, set_):
    """The rows of one table group in tool order, the ceiling last."""
    order = TOOLS + [CEILING]
    found = [r for r in rows if r["direction"] == direction and r["set"] == set_
             and (r["where"] == where or r["tool"] == CEILING)]
    return sorted(found, key=lambda r: order.index(r["tool"]))


def ratios(group):
    """ferry against the best peer that passed: by the data set's rate,
    and by the lowest CPU per GiB and peak memory (each peer may differ)."""
    ferry = next((r for r in group if r["tool"] == "ferry"), None)
    peers = [r for r in group if r["tool"] in PEERS and r["result"] == "ok"]
    if not ferry or ferry["result"] != "ok" or not peers:
        return None
    rate = RATE[ferry["set"]]
    out = {"set": ferry["set"], "direction": ferry["direction"],
           "where": ferry["where"]}
    fast = max(peers, key=lambda r: r.get(rate) or 0)
    if ferry.get(rate) and fast.get(rate):
        out["rate"] = (ferry[rate] / fast[rate], fast["tool"])
        out["wall"] = (ferry["wall_s"] / fast["wall_s"], fast["tool"])
    for key in ("cpu_s_per_gib", "peak_rss_mib"):
        lean = [r for r in peers if r.get(key)]
        if ferry.get(key) and lean:
            low = min(lean, key=lambda r: r[key])
            out[key] = (ferry[key] / low[key], low["tool"])
    return out


# --- Markdown ---------------------------------------------------------------

def fmt(value, digits=2):
    return "" if value is None else f"{value:.{digits}f}"


def fmt_rate(value):
    # A few large files make fewer than 10 files per second: keep digits.
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def fmt_ratio(pair):
    return "n/a" if not pair else f"{pair[0]:.2f}x ({pair[1]})"


def table(rows, direction, where, sets, notes):
    head = ("| data set | tool | files | MiB | wall s | files/s | MiB/s | CPU s "
            "(user+sys) | CPU s per GiB | peak RSS MiB | nginx CPU s | "
            "share of ceiling | result |")
    lines = [head, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for set_ in sets:
        group = case_rows(rows, direction, where, set_)
        if not group:
            continue
        for r in group:
            name = "h2load (ceiling)" if r["tool"] == CEILING else r["tool"]
            if r["result"] == "n/a":
                notes.setdefault((r["tool"], r["detail"]), []).append(set_)
                lines.append(f"| {set_} | {name} |" + " |" * 10 + " n/a (below) |")
                continue
            share = r.get("share_of_ceiling")
            result = r["result"] + (f": {r['detail']}" if r["detail"] else "")
            lines.append(
                f"| {set_} | {name} | {r['files']} | {r['mib']:.1f} | "
                f"{r['wall_s']:.3f} | {fmt_rate(r['files_per_s'])} | "
                f"{fmt(r['mib_per_s'], 1) or '-'} | {r['cpu_s']:.2f} | "
                f"{fmt(r['cpu_s_per_gib']) or '-'} | {r['peak_rss_mib']:.1f} | "
                f"{fmt(r['nginx_cpu_s'])} | "
                f"{'' if share is None else f'{share:.0%}'} | {result} |")
        ratio = ratios(group)
        if ratio:
            lines.append(
                f"| {set_} | **ferry / best peer** | | | "
                f"{fmt_ratio(ratio.get('wall'))} | {fmt_ratio(ratio.get('rate'))} | "
                f"{fmt_ratio(ratio.get('rate'))} | | "
                f"{fmt_ratio(ratio.get('cpu_s_per_gib'))} | "
                f"{fmt_ratio(ratio.get('peak_rss_mib'))} | | | |")
    return lines


def how_tools_ran(meta):
    streams = meta["streams"]
    conns, per_conn = meta["connections"]
    per_file, aria2_per_file = meta["per_file"]
    return {
        "ferry": f"`ferry get/put --streams {streams}`: HTTP/2 streams over "
                 "its default of at most 4 connections; a large file moves on "
                 "one stream.",
        "curl": f"`curl --parallel --parallel-max {streams} --http2` from a "
                "config file of url/output pairs (uploads: upload-file/url, "
                "that is -T, a PUT each), multiplexed over one connection; a "
                "large file moves on one stream.",
        "aria2": "`aria2c` 1.36 speaks HTTP/1.1 only, so each transfer has a "
                 f"connection of its own: small files `-j {streams} -x 1 -s 1`; "
                 f"large files split into ranges, `-x {aria2_per_file} -s "
                 f"{aria2_per_file} -k 1M` per file (at most 16, aria2c's "
                 "limit); `--deferred-input`, `--file-allocation=none`, "
                 "`--auto-save-interval=0` (no control file while a file "
                 "downloads). aria2c fsyncs every file it finishes, which no "
                 "option turns off: on a disk that is most of its time with "
                 "small files. It cannot upload.",
        "wget2": f"`wget2 --max-threads={conns} --http2-request-window="
                 f"{per_conn}`: {conns} HTTP/2 connections of up to {per_conn} "
                 "streams; `--no-xattr` (the others write no extended "
                 "attributes), no HSTS, HPKP, OCSP or cookies. A large file "
                 "moves on one stream: `--chunk-size` asks for the same ranges "
                 "again and again in wget2 1.99.1 and never finishes. It "
                 "cannot upload.",
        "rclone": "`rclone copy --files-from-raw MANIFEST --no-traverse "
                  f"--no-check-dest --transfers {streams} --checkers {streams}` "
                  "from an `http` remote, which then asks for each file by "
                  "name and needs no listing; HTTP/2 from Go's client. Small "
                  "files with `--http-no-head` (one GET per file, no HEAD "
                  "first); large ones with a HEAD (the size) and "
                  f"`--multi-thread-streams {per_file}` ranges per file.",
        CEILING: f"{conns} `h2load -c 1 -m {per_conn} -t 1` at once, each "
                 "over its own slice of the file list (dealt round-robin), so "
                 "that every file is asked for once over as many connections "
                 "as ferry uses, with every body read and thrown away: what "
                 "the collection can serve on this machine. A tool can pass "
                 "it (h2load's requests are not free either). Uploads PUT one "
                 "body to every path: a file of the set's mean size (small) "
                 "or the first large file. CPU s is all of them, peak RSS the "
                 "largest.",
    }


def markdown(rows, meta, sets):
    present = {r["tool"] for r in rows}
    dests = meta["dest"]
    load = meta.get("load", ["?", "?"])
    measured = [t for t in TOOLS if t in present]
    if CEILING in present:
        measured.append("h2load (the ceiling)")
    out = ["## ferry and its peers", ""]
    out += [f"- tools: {', '.join(measured)}",
            f"- date: {meta['date']}",
            f"- kernel: {meta['kernel']}",
            f"- CPU: {meta['cpu']}",
            f"- load average (1, 5, 15 min): {load[0]} at the start, "
            f"{load[1]} at the end",
            f"- nginx: {meta['nginx']}"]
    for tool in TOOLS + [CEILING]:
        if tool in meta["version"]:
            out.append(f"- {tool}: {meta['version'][tool]}")
    out.append(f"- streams: {meta['streams']} transfers in flight for every "
               "tool, wherever it allows it (see below)")
    runs = int(meta["runs"])
    out.append(f"- runs: {runs}" + (f" (best wall time of {runs}; CPU and memory "
                                     "of that run)" if runs > 1 else ""))

    notes = {}
    cases = [("download", w) for w in ("ext4", "tmpfs") if w in dests]
    cases.append(("upload", "collection"))
    for direction, where in cases:
        if not any(r["direction"] == direction for r in rows):
            continue
        if direction == "download":
            d = dests[where]
            out += ["", f"### Downloads to {where} ({d['path']}, {d['fs']})", ""]
        else:
            out += ["", "### Uploads (PUT into empty folders of the collection, "
                    f"which nginx writes to {dests['collection']['fs']})", ""]
        out += table(rows, direction, where, sets, notes)

    if notes:
        out += ["", "n/a: the tool cannot move data in that direction here:", ""]
        for (tool, why), in_sets in notes.items():
            out.append(f"- {tool} ({', '.join(sorted(set(in_sets)))}): {why}")
    out += ["", "### How each tool ran", ""]
    described = how_tools_ran(meta)
    for tool in TOOLS + [CEILING]:
        if tool in present:
            out.append(f"- {tool}: {described[tool]}")
    out += ["", "Every tool fetched the same files from the same local nginx "
            "collection over TLS on loopback (127.0.0.1) with the data in "
            "nginx's warm page cache, each destination emptied and `sync`ed "
            "before every run, and every download and upload compared with its "
            "source (diff -r). A run that exited non-zero or differed marks its "
            "row FAILED. No proxy variables reached any tool, and none read a "
            "configuration file of the user's.",
            "",
            "The ratio row compares ferry with the best peer that passed, named "
            "in brackets: wall s, files/s and MiB/s with the fastest (files/s "
            "above 1: ferry is faster), CPU s per GiB and peak RSS with the "
            "leanest in each (below 1: ferry needs less). Share of ceiling is "
            "files/s (small) or MiB/s (large) over h2load's. nginx CPU s is "
            "what the collection's two workers spent during the run."]
    commands = meta["command"]
    if commands:
        out += ["", "### Commands", "", "```"]
        def order(item):
            direction, set_, tool = item[0]
            return (direction, ["small", "large"].index(set_),
                    (TOOLS + [CEILING]).index(tool))
        for (direction, set_, tool), line in sorted(commands.items(), key=order):
            out.append(f"# {direction}, {set_}, {tool}")
            out.append(line)
        out.append("```")
    return "\n".join(out) + "\n"


# --- CSV and JSON -------------------------------------------------------------

CSV_FIELDS = ["direction", "destination", "filesystem", "set", "tool", "files",
              "mib", "wall_s", "files_per_s", "mib_per_s", "cpu_s",
              "cpu_s_per_gib", "peak_rss_mib", "nginx_cpu_s",
              "share_of_ceiling", "result", "detail"]


def flat(row, meta):
    where = row["where"]
    fs = meta["dest"].get(where, {}).get("fs", "") if where != "ceiling" else ""
    out = {k: row.get(k) for k in CSV_FIELDS}
    out.update(destination="none (bodies discarded)" if where == "ceiling" else where,
               filesystem=fs)
    if row["direction"] == "upload" and where == "ceiling":
        out["destination"] = "collection"
    return out


def write_csv(path, rows, meta):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (round(v, 4) if isinstance(v, float) else v)
                             for k, v in flat(row, meta).items()})


def write_json(path, rows, meta, groups):
    doc = {
        "meta": {k: v for k, v in meta.items() if k != "command"},
        "commands": [{"direction": d, "set": s, "tool": t, "command": c}
                     for (d, s, t), c in meta["command"].items()],
        "rows": [flat(r, meta) for r in rows],
        # Each ratio is ferry's over the best peer's, named beside it:
        # "speed" is files/s for small files and MiB/s for large ones.
        "ferry_vs_best_peer": [
            {"direction": g["direction"], "destination": g["where"],
             "set": g["set"], "speed_in": RATE_NAME[RATE[g["set"]]],
             **{name: {"ratio": g[k][0], "peer": g[k][1]}
                for k, name in (("wall", "wall_s"), ("rate", "speed"),
                                ("cpu_s_per_gib", "cpu_s_per_gib"),
                                ("peak_rss_mib", "peak_rss_mib"))
                if k in g}}
            for g in groups],
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


# --- chart --------------------------------------------------------------------

def chart_script(rows, meta, sets, png):
    """A gnuplot script: one panel per data set, a cluster of bars per case
    (where the files went), one bar per tool; n/a and FAILED are written
    where their bar would stand."""
    dests = meta["dest"]
    cases = [("download", w) for w in ("ext4", "tmpfs") if w in dests
             and any(r["direction"] == "download" for r in rows)]
    if any(r["direction"] == "upload" for r in rows):
        cases.append(("upload", "collection"))
    tools = [t for t in TOOLS + [CEILING] if any(r["tool"] == t for r in rows)]
    width = 0.8 / max(len(tools), 1)
    # Fixed margins keep the panels of equal size; the one key, above them,
    # belongs to the first.
    lines = [f"set terminal pngcairo size {80 + 560 * len(sets)},600 "
             "font 'DejaVu Sans,10'",
             f"set output '{png}'",
             "set style fill solid 0.9 border -1",
             f"set boxwidth {width * 0.9}",
             "set grid ytics lc rgb '#dddddd'",
             "set border 3", "set tics nomirror", "set xtics scale 0",
             f"set multiplot layout 1,{len(sets)} margins 0.08,0.98,0.1,0.8 "
             "spacing 0.1 title "
             f"'ferry and its peers, {meta['streams']} streams, local nginx over "
             f"TLS (HTTP/2; aria2c: HTTP/1.1), {meta['date']}'",
             "set key at screen 0.5,0.89 center center horizontal maxcols 6 reverse Left samplen 2 width 2"]
    for set_ in sets:
        rate = RATE[set_]
        blocks, top = {}, 0.0
        for t_index, tool in enumerate(tools):
            points = []
            for c_index, (direction, where) in enumerate(cases):
                x = c_index + (t_index - (len(tools) - 1) / 2) * width
                group = case_rows(rows, direction, where, set_)
                row = next((r for r in group if r["tool"] == tool), None)
                if row is None:
                    continue
                value = row.get(rate) if row["result"] == "ok" else None
                if value is None:
                    label = "n/a" if row["result"] == "n/a" else "FAILED"
                    points.append(f'{x:.4f} 0 "{label}"')
                else:
                    top = max(top, value)
                    points.append(f'{x:.4f} {value:.4f} "{value:.0f}"')
            blocks[tool] = points
        labels = ", ".join(
            f"'{'download to ' + w if d == 'download' else 'upload'}' {i}"
            for i, (d, w) in enumerate(cases))
        lines += [f"set xtics ({labels})",
                  f"set xrange [-0.6:{len(cases) - 0.4}]",
                  f"set yrange [0:{top * 1.25 if top else 1}]",
                  f"set ylabel '{RATE_NAME[rate]}'",
                  f"set title '{set_} files ({RATE_NAME[rate]}, higher is better)'"]
        plots = []
        for tool, points in blocks.items():
            name = f"${set_}_{tool}"
            lines += [f"{name} << EOD"] + (points or ["-1 0 \"\""]) + ["EOD"]
            title = "h2load (ceiling)" if tool == CEILING else tool
            plots.append(f"{name} using 1:2 with boxes lc rgb '{COLOURS[tool]}' "
                         f"title '{title}'")
            plots.append(f"{name} using 1:2:3 with labels rotate by 90 left "
                         "offset 0,0.4 font ',8' notitle")
        lines.append("plot " + ", \\\n     ".join(plots))
        lines.append("unset key")
    lines.append("unset multiplot")
    return "\n".join(lines) + "\n"


def draw_chart(work, rows, meta, sets):
    if not shutil.which("gnuplot"):
        print("bench_report: gnuplot not found (scripts/install-deps installs "
              "gnuplot-nox); no results.png", file=sys.stderr)
        return
    script = work / "results.gp"
    script.write_text(chart_script(rows, meta, sets, work / "results.png"))
    done = subprocess.run(["gnuplot", str(script)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench_report: gnuplot failed:\n{done.stderr}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path,
                        help="bench-peers' work folder")
    args = parser.parse_args()
    work = args.work
    rows = summarize(read_raw(work / "raw.tsv"))
    meta = read_meta(work / "meta.tsv")
    sets = [s for s in ("small", "large") if any(r["set"] == s for r in rows)]

    groups = []
    cases = [("download", "ext4"), ("download", "tmpfs"), ("upload", "collection")]
    for direction, where in cases:
        for set_ in sets:
            ratio = ratios(case_rows(rows, direction, where, set_))
            if ratio:
                groups.append(ratio)

    (work / "results.md").write_text(markdown(rows, meta, sets))
    write_csv(work / "results.csv", rows, meta)
    write_json(work / "results.json", rows, meta, groups)
    if rows:
        draw_chart(work, rows, meta, sets)


if __name__ == "__main__":
    main()
