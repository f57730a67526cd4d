"""bench/RESULTS.md names the machine most sections were measured on, and a
section recorded on another machine names its own: one benchmark can be
recorded again elsewhere without the others seeming to have run there."""

from __future__ import annotations

from bench.render import document

XEON = {"cpu": "Intel Xeon", "cores": 2}
EPYC = {"cpu": "AMD EPYC", "cores": 2}


def result(title: str, machine: dict | None = None) -> dict:
    r = {"title": title, "date": "2026-12-04 14:09 UTC", "rows": [["a row", "1", "2", "0.50x"]]}
    return {**r, "machine": machine} if machine else r


def test_a_section_recorded_on_another_machine_names_it():
    results = {"overhead": result("Overhead", EPYC), "dispatch": result("Dispatch")}
    results["pull"] = result("Pull", XEON)
    doc = document(results, XEON)  # results without their own machine ran on XEON
    assert "- cpu: Intel Xeon" in doc and "- cpu: AMD EPYC" not in doc
    overhead = doc[doc.index("## Overhead") : doc.index("## Pull")]
    assert "Machine: cpu AMD EPYC; cores 2." in overhead
    assert doc.count("Machine: ") == 1


def test_the_header_names_the_machine_most_sections_ran_on():
    results = {name: result(name, EPYC) for name in ("overhead", "dispatch", "pull")}
    doc = document(results, XEON)
    assert "- cpu: AMD EPYC" in doc and "Machine: " not in doc
