"""`python -m bench [--quick] [--profile] [NAME ...]`: run the benchmarks
(all, or those named) and write bench/RESULTS.md.

A full run merges its figures into bench/results.json and rewrites
bench/RESULTS.md from it, so running one benchmark updates only its
section. `--quick` only prints (a smoke test is no measurement).
`--profile` runs the named benchmarks' profiling scenario instead and
writes bench/profiles/NAME.txt (needs pyinstrument or py-spy)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback

from bench import BENCHMARKS
from bench.common import machine
from bench.render import HERE, document, section

RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"


def load() -> dict:
    if RESULTS_JSON.exists():
        return json.loads(RESULTS_JSON.read_text())
    return {"machine": {}, "results": {}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "names",
        nargs="*",
        choices=[[], *BENCHMARKS],
        metavar="NAME",
        help=f"some of: {', '.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: print, write nothing")
    parser.add_argument("--profile", action="store_true", help="profile instead of measuring")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    if args.profile:
        from bench.profiling import profile

        for name in names:
            print(profile(name))
        return 0
    saved = load()
    failed = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"--- {name}{' (quick)' if args.quick else ''}", flush=True)
        started = time.monotonic()
        try:
            result = module.run(args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        result["elapsed_s"] = round(time.monotonic() - started, 1)
        print(section(result), flush=True)
        print(f"({result['elapsed_s']} s)\n", flush=True)
        if not args.quick:
            result["machine"] = machine()  # each section says where it ran
            saved["results"][name] = result
            # the machine of the results recorded before each named its own
            saved["machine"] = saved.get("machine") or result["machine"]
            RESULTS_JSON.write_text(json.dumps(saved, indent=1, default=str) + "\n")
            RESULTS_MD.write_text(document(saved["results"], saved["machine"]))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
