"""Configuration: the demo has what a newcomer needs; a bad file is refused with the key named."""

from __future__ import annotations

import pytest

from protocol.model import Acceptance, Channel
from server.config import ConfigError, Directory, decode, exposure, load, with_environment

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


def test_the_demo_credentials_keep_a_server_on_this_machine():
    demo = load(None)
    problems, warning = exposure(demo, "127.0.0.1", demo=False)
    assert problems == [] and warning is not None and "token secret and API key" in warning
    for host in ("0.0.0.0", "::", "10.1.2.3", "switchboard.example.com"):
        problems, _ = exposure(demo, host, demo=False)
        assert [p.rpartition(": ")[2] for p in problems] == [
            "set SWITCHBOARD_SECRET, or server.secret in --config",
            "set SWITCHBOARD_API_KEY, or server.api_keys in --config",
        ], host
    for host in ("localhost", "::1", "127.0.0.2"):
        assert exposure(demo, host, demo=True)[0] == [], host


def test_own_credentials_may_listen_anywhere_but_the_demo_sign_in_list_may_not():
    own = with_environment(load(None), {"SWITCHBOARD_SECRET": "x" * 40, "SWITCHBOARD_API_KEY": "k2"})
    assert exposure(own, "0.0.0.0", demo=False) == ([], None)
    assert exposure(own, "127.0.0.1", demo=False) == ([], None)
    problems, _ = exposure(own, "0.0.0.0", demo=True)
    assert len(problems) == 1 and "demo sign-in" in problems[0]
    half = with_environment(load(None), {"SWITCHBOARD_SECRET": "x" * 40})
    assert ["API key" in p for p in exposure(half, "0.0.0.0", demo=False)[0]] == [True]


def test_the_old_demo_sign_in_setting_is_refused_with_what_replaced_it():
    with pytest.raises(ConfigError, match=r"server\.demo_signin: .*switchboard demo"):
        decode(GOOD.replace('api_keys = ["k"]', 'api_keys = ["k"]\ndemo_signin = true'))


@pytest.mark.parametrize(
    ("line", "names"),
    [("[limits]\ntranscript_fragments = 0", "limits.transcript_fragments"), ("[server]\nretention_s = 5", "")],
)
def test_limits_and_retention_are_checked(line: str, names: str):
    text = GOOD + "\n" + line if line.startswith("[limits]") else GOOD.replace("[server]", line)
    with pytest.raises(ConfigError, match=names or "server.retention_s"):
        decode(text)
