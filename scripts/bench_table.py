"""Formats the RESULT lines of scripts/bench.sh as a markdown table.

usage: bench_table.py RESULTS_FILE MACHINE_LINE [COMMIT]

Each line is `RESULT <system> <bench> <value> <unit> <method...>` with system `rust`,
`native-rust`, `native-c`, `lua` (Spindle's Rust, native plugin and Lua processes) or `erlang`.
Lines whose unit is `-` describe a version and go above the table. Each Spindle column gets a
ratio against Erlang, oriented so that above 1 always means Spindle did better: spindle/erlang
for rates, erlang/spindle for times and memory. Columns of systems with no rows are left out.
"""

import sys

SYSTEMS = ("rust", "native-rust", "native-c", "lua", "erlang")
SPINDLE = (("rust", "Rust"), ("native-rust", "native Rust"), ("native-c", "native C"), ("lua", "Lua"))
HIGHER_IS_BETTER = {"per_s", "msgs_per_s"}


def parse(path):
    rows, info = {}, {}
    for line in open(path, encoding="utf-8"):
        parts = line.split(maxsplit=5)
        if len(parts) < 5 or parts[0] != "RESULT" or parts[1] not in SYSTEMS:
            continue
        _, system, bench, value, unit = parts[:5]
        method = parts[5].strip() if len(parts) > 5 else ""
        if unit == "-":
            info[system] = f"{bench} {value} ({method})"
            continue
        row = rows.setdefault(bench, {"unit": unit})
        row[system] = value
    return rows, info


def ratio(unit, rust, erlang):
    try:
        r, e = float(rust), float(erlang)
    except (TypeError, ValueError):
        return "—"
    if r <= 0 or e <= 0:
        return "—"
    return f"{(r / e if unit in HIGHER_IS_BETTER else e / r):.2f}"


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    rows, info = parse(sys.argv[1])
    print(f"Machine: {sys.argv[2]}")
    if len(sys.argv) == 4:
        print(f"Commit: {sys.argv[3]}")
    for system, label in (("rust", "Rust"), ("erlang", "Erlang")):
        if system in info:
            print(f"{label}: {info[system]}")
    print()
    shown = [(k, label) for k, label in SPINDLE if any(k in row for row in rows.values())]
    head = ["bench", "unit"] + [label for _, label in shown] + ["Erlang/OTP"]
    head += [f"{label} ratio" if len(shown) > 1 else "ratio" for _, label in shown]
    print("| " + " | ".join(head) + " |")
    print("| --- | --- |" + " ---: |" * (len(head) - 2))
    for bench, row in rows.items():
        erlang = row.get("erlang")
        cells = [bench, row["unit"]] + [row.get(k) or "—" for k, _ in shown] + [erlang or "—"]
        cells += [ratio(row["unit"], row.get(k), erlang) for k, _ in shown]
        print("| " + " | ".join(cells) + " |")
    print()
    print("ratio > 1: Spindle is better (rates: Spindle/Erlang; times and memory: Erlang/Spindle).")


if __name__ == "__main__":
    main()
