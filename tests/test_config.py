"""Configuration: the demo has what a newcomer needs; a bad file is refused with the key named."""

from __future__ import annotations

import pytest

from protocol.model import Acceptance, Channel
from server.config import ConfigError, Directory, decode, load, with_environment

GOOD = """
[server]
secret = "a-secret-that-is-at-least-thirty-two-chars"
api_keys = ["k"]

[[queues]]
id = "calls"
channel = "voice"

[[agents]]
id = "ann"
queues = ["calls"]
"""


def test_the_demo_configuration_has_every_kind_of_queue():
    config = load(None)
    d = Directory(config)
    voice = [q for q in config.queues if q.channel is Channel.VOICE and q.acceptance is Acceptance.MANUAL]
    assert any(len(d.members[q.id]) >= 3 for q in voice)
    assert any(q.channel is Channel.CHAT and q.acceptance is Acceptance.AUTO for q in config.queues)
    assert any(q.channel is Channel.VIDEO for q in config.queues)
    assert any(q.channel is Channel.EMAIL and len(d.members[q.id]) >= 2 for q in config.queues)
    assert any(q.dispositions for q in config.queues)
    assert len(config.address_book) >= 3
    assert d.lookup_contact(None, "+33612345678", None) is not None
    assert d.lookup_contact(None, None, "MEI.CHEN@example.net") is not None


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (GOOD.replace('channel = "voice"', 'channel = "fax"'), "queues[0].channel"),
        (GOOD.replace('channel = "voice"', 'channel = "voice"\nrign_timeout_s = 3'), "rign_timeout_s"),
        (GOOD.replace('queues = ["calls"]', 'queues = ["cals"]'), "agents[0].queues[0]: unknown queue 'cals'"),
        (GOOD + '\n[[agents]]\nid = "ann"\n', "agents[1].id: duplicate agent id 'ann'"),
        (GOOD.replace('id = "calls"', 'id = "calls"\nring_timeout_s = -1'), "queues[0].ring_timeout_s"),
        (GOOD.replace('id = "calls"', 'id = "calls"\ndisposition_required = true'), "disposition_required"),
        (GOOD.replace('id = "calls"', 'id = "calls"\noverflow = {after_s = 5, queue = "x"}'), "overflow.queue"),
        (GOOD.replace("[server]", "[server]\ngrace_s = 'long'"), "server.grace_s"),
        (GOOD.replace('queues = ["calls"]', 'queues = [{id = "calls", priority = "top"}]'), "agents[0].queues[0]"),
        (GOOD.replace('id = "calls"', 'id = "calls"\nservice_level_target = 80'), "queues[0].service_level_target"),
        (GOOD.replace('id = "calls"', 'id = "calls"\nservice_level_threshold_s = -20'), "service_level_threshold_s"),
        ("this is = = not toml", "not valid TOML"),
    ],
)
def test_a_bad_config_names_the_key(text: str, names: str):
    with pytest.raises(ConfigError) as caught:
        decode(text, "center.toml")
    assert names in str(caught.value)
    assert str(caught.value).startswith("center.toml: ")


def test_environment_overrides_secret_and_key():
    config = decode(GOOD)
    env = {"SWITCHBOARD_SECRET": "s" * 40, "SWITCHBOARD_API_KEY": "from-env"}
    overridden = with_environment(config, env)
    assert overridden.server.secret == "s" * 40
    assert overridden.server.api_keys == ["from-env"]
    with pytest.raises(ConfigError, match="at least 32"):
        with_environment(config, {"SWITCHBOARD_SECRET": "short"})


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "nope.toml")
