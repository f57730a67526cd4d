"""The helper's side of its credential: kept in its data directory (0600),
used after a restart, dropped when the seeker refuses it, and the one before
honoured only for the seeker's grace period."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from helper.agent import HelperAgent
from helper.config import HelperConfig
from serving.clock import utc_now
from serving.http import ApiError


class NoDocker:
    def ping(self):
        pass

    def image_references(self):
        return []


class Answers:
    """Stands in for SeekerClient.register_helper: answers in turn, and
    records the Authorization each registration was sent with."""

    def __init__(self, agent, *answers):
        self.agent, self.answers, self.sent_with = agent, list(answers), []

    def __call__(self, registration):
        self.sent_with.append(self.agent.seeker.session.headers["Authorization"])
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def make(tmp_path):
    made = []

    def make_agent(clock=utc_now) -> HelperAgent:
        cfg = HelperConfig("http://seeker:1", "http://channel:1", "op-token", tmp_path,
                           port=0, join_token="join")  # fmt: skip
        made.append(HelperAgent(cfg, runtime=NoDocker(), clock=clock))
        return made[-1]

    yield make_agent
    for a in made:
        a.server.stop()


def test_the_credential_is_kept_0600_and_used_after_a_restart(make, tmp_path):
    first = make()
    first.seeker.register_helper = Answers(first, {"credential": "hc1.a"})
    assert first.register()
    kept = tmp_path / "credential"
    assert kept.read_text().strip() == "hc1.a" and kept.stat().st_mode & 0o777 == 0o600

    again = make()  # a restarted process: registers with what it kept
    again.seeker.register_helper = answers = Answers(again, {"credential": "hc1.b"})
    assert again.register()
    assert answers.sent_with == ["Bearer hc1.a"]
    assert kept.read_text().strip() == "hc1.b"


def test_a_refused_credential_is_forgotten_and_the_join_token_used(make, tmp_path):
    agent = make()
    agent.seeker.register_helper = Answers(agent, {"credential": "hc1.a"})
    agent.register()
    agent.seeker.register_helper = answers = Answers(
        agent, ApiError(401, "invalid token"), {"credential": "hc1.new"}
    )
    assert agent.register()
    assert answers.sent_with == ["Bearer hc1.a", "Bearer join"]
    assert agent.seeker_credentials()[0] == "hc1.new"
    assert (tmp_path / "credential").read_text().strip() == "hc1.new"


def test_the_credential_before_is_honoured_only_during_the_grace(make):
    now = [datetime(2024, 5, 1, tzinfo=timezone.utc)]
    agent = make(lambda: now[0])
    agent.seeker.register_helper = Answers(agent, {"credential": "hc1.a"}, {"credential": "hc1.b"})
    agent.register()
    agent.register()
    assert agent.seeker_credentials() == ("hc1.b", "hc1.a")
    now[0] += timedelta(seconds=61)
    assert agent.seeker_credentials() == ("hc1.b",)
