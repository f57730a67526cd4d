"""bench dispatch's per-task CPU target: a third of what the issue's code
spent on the machine the benchmark runs on, where that was measured."""

import pytest

from bench.dispatch import ISSUE_CODE, ISSUE_CPU_MS, cpu_target


@pytest.mark.parametrize("cpu", sorted(ISSUE_CPU_MS))
def test_a_processor_the_issues_code_ran_on_gets_a_third_of_its_figure(cpu):
    ms, says = cpu_target(cpu)
    assert ms == pytest.approx(ISSUE_CPU_MS[cpu] / 3)
    assert ISSUE_CODE in says and cpu in says


def test_another_processor_gets_the_issues_figure_and_is_told_so():
    ms, says = cpu_target("Some Other CPU @ 3.0GHz")
    assert ms == pytest.approx(19.3 / 3)
    assert "was not run on this processor (Some Other CPU @ 3.0GHz)" in says
    assert "two machines" in says


def test_the_figure_the_issue_gives_is_the_filed_machines():
    assert ISSUE_CPU_MS["AMD EPYC"] == 19.3
    assert cpu_target("Intel(R) Xeon(R) Processor")[0] < cpu_target("AMD EPYC")[0]
