"""Unit tests for ``_utils/mailstack_queue.py``: reading ``postqueue -j``."""

import json
import pathlib

import pytest

from tests.support.loader import load_salt_module

REPO = pathlib.Path(__file__).resolve().parents[2]
mailstack_queue = load_salt_module(REPO / "_utils" / "mailstack_queue.py", "mailqueue_under_test")

NOW = 1_764_158_400
REFUSED = "connect to 127.0.0.1[127.0.0.1]:2525: Connection refused"
TIMEOUT = (
    "conversation with mail.example.org[192.0.2.7] timed out while receiving the initial server greeting"
)


def _message(queue, arrival, *reasons, queue_id="4ABC"):
    recipients = [
        {"address": f"r{i}@example.org", "delay_reason": reason} for i, reason in enumerate(reasons)
    ]
    return {
        "queue_name": queue,
        "queue_id": queue_id,
        "arrival_time": arrival,
        "message_size": 420,
        "forced_expire": False,
        "sender": "root@node.example.org",
        "recipients": recipients or [{"address": "ops@example.org"}],
    }


def _postqueue_output(*messages):
    return "".join(json.dumps(message) + "\n" for message in messages)


def test_an_empty_queue_prints_nothing_and_summarizes_to_zeros_with_no_age():
    messages = mailstack_queue.parse_postqueue_json("")
    assert messages == []
    assert mailstack_queue.summarize(messages, NOW) == {
        "total": 0,
        "active": 0,
        "deferred": 0,
        "hold": 0,
        "oldest_age": None,
    }


def test_each_line_is_one_message_and_is_counted_in_its_queue():
    output = _postqueue_output(
        _message("active", NOW - 5),
        _message("deferred", NOW - 3600, REFUSED),
        _message("deferred", NOW - 60, REFUSED),
        _message("hold", NOW - 10),
        _message("incoming", NOW - 1),
    )
    summary = mailstack_queue.summarize(mailstack_queue.parse_postqueue_json(output), NOW)
    assert summary == {"total": 5, "active": 1, "deferred": 2, "hold": 1, "oldest_age": 3600}


def test_a_clock_behind_the_arrival_time_gives_age_zero_not_a_negative_age():
    messages = [_message("active", NOW + 30)]
    assert mailstack_queue.summarize(messages, NOW)["oldest_age"] == 0


def test_deferral_reasons_are_counted_per_recipient_most_frequent_first():
    messages = [
        _message("deferred", NOW, REFUSED, REFUSED),
        _message("deferred", NOW, TIMEOUT),
        _message("deferred", NOW, REFUSED),
        _message("active", NOW),
    ]
    assert mailstack_queue.deferral_reasons(messages) == [
        {"reason": REFUSED, "count": 3},
        {"reason": TIMEOUT, "count": 1},
    ]


def test_deferral_reasons_are_limited_and_ties_are_ordered_by_text():
    messages = [_message("deferred", NOW, f"reason {letter}") for letter in "dcba"]
    assert mailstack_queue.deferral_reasons(messages, limit=2) == [
        {"reason": "reason a", "count": 1},
        {"reason": "reason b", "count": 1},
    ]


@pytest.mark.parametrize("line", ["postqueue: fatal: Queue report unavailable", "[1, 2]"])
def test_output_that_is_not_one_json_object_per_line_names_the_line(line):
    output = _postqueue_output(_message("active", NOW)) + line + "\n"
    with pytest.raises(ValueError, match="line 2"):
        mailstack_queue.parse_postqueue_json(output)
