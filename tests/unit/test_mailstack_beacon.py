"""Unit tests for the ``mailstack`` beacon: which findings fire which events."""

import pathlib

import pytest

from tests.support.loader import load_salt_module

REPO = pathlib.Path(__file__).resolve().parents[2]

HEALTHY = {"time": 1_700_000_000, "result": "ok", "detail": "sent to ops@example.org"}
EMPTY_QUEUE = {"total": 0, "active": 0, "deferred": 0, "hold": 0, "oldest_age": None, "deferral_reasons": []}


@pytest.fixture
def node():
    state = {"mode": "relay", "queue": dict(EMPTY_QUEUE), "health": dict(HEALTHY)}
    beacon = load_salt_module(REPO / "_beacons" / "mailstack.py", "mailstack_beacon_under_test")
    calls = []

    def status(check_next_hop=True):
        calls.append(check_next_hop)
        return state

    beacon.__salt__ = {"mailstack.status": status}
    return beacon, state, calls


def test_a_healthy_node_fires_nothing_and_never_probes_the_network(node):
    beacon, _state, calls = node
    assert beacon.beacon([{"interval": 60}]) == []
    assert calls == [False]


def test_more_deferred_messages_than_the_threshold_fire_a_deferred_event(node):
    beacon, state, _calls = node
    state["queue"].update(total=3, deferred=3, oldest_age=30)
    assert beacon.beacon([{"deferred": 3}]) == []
    events = beacon.beacon([{"deferred": 2}])
    assert [event["tag"] for event in events] == ["deferred"]
    assert events[0]["queue"]["deferred"] == 3 and "threshold 2" in events[0]["problem"]


def test_an_old_message_fires_a_queue_age_event(node):
    beacon, state, _calls = node
    state["queue"].update(total=1, active=1, oldest_age=7200)
    assert [event["tag"] for event in beacon.beacon([{"max_age": 3600}])] == ["queue_age"]


def test_a_failed_health_mail_fires_a_health_event_unless_turned_off(node):
    beacon, state, _calls = node
    state["health"] = {"time": 1, "result": "failed", "detail": "sendmail exited 69 after 1 attempts"}
    events = beacon.beacon([])
    assert [event["tag"] for event in events] == ["health"] and "exited 69" in events[0]["problem"]
    assert beacon.beacon([{"health": False}]) == []


def test_a_node_without_postfix_or_health_mail_fires_nothing(node):
    beacon, state, _calls = node
    state.update(queue=None, health=None)
    assert beacon.beacon([{"deferred": 0, "max_age": 0}]) == []


@pytest.mark.parametrize(
    "config, problem",
    [
        ({"deferred": 10}, "must be a list"),
        ([{"deferred": -1}], "deferred must be a whole number"),
        ([{"max_age": "1h"}], "max_age must be a whole number"),
        ([{"health": "yes"}], "health must be true or false"),
    ],
)
def test_validate_names_what_is_wrong_with_the_configuration(node, config, problem):
    beacon, _state, _calls = node
    valid, message = beacon.validate(config)
    assert valid is False and problem in message


def test_validate_accepts_the_documented_example(node):
    beacon, _state, _calls = node
    assert beacon.validate([{"interval": 300}, {"deferred": 10}, {"max_age": 3600}, {"health": True}])[0]
