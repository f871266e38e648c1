"""
Reading Postfix's mail queue, for the ``mailstack`` execution module and the
``mailstack`` beacon (``__utils__["mailstack_queue.summarize"]``).

``postqueue -j`` prints one JSON object per queued message (Postfix >= 3.1):
``queue_name``, ``queue_id``, ``arrival_time`` (epoch seconds), ``sender`` and
``recipients``, each recipient with an ``address`` and, once a delivery
attempt failed, a ``delay_reason``.
"""

import json
import re
from collections import Counter

COUNTED_QUEUES = ("active", "deferred", "hold")


def parse_postqueue_json(text):
    """
    The messages in the output of ``postqueue -j``, as a list of dicts.

    Raises ``ValueError`` naming the line when a line is not a JSON object.
    """
    messages = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except ValueError as error:
            raise ValueError(f"postqueue -j printed line {number} that is not JSON: {error}") from None
        if not isinstance(message, dict):
            raise ValueError(f"postqueue -j printed line {number} that is not a JSON object")
        messages.append(message)
    return messages


def summarize(messages, now):
    """
    Queue counts ``total``, ``active``, ``deferred`` and ``hold``, and
    ``oldest_age``: the age in seconds of the oldest message at ``now``
    (epoch seconds), or ``None`` for an empty queue.
    """
    counts = Counter(message.get("queue_name") for message in messages)
    arrivals = [
        message["arrival_time"] for message in messages if isinstance(message.get("arrival_time"), int)
    ]
    summary = {"total": len(messages)}
    summary.update({queue: counts.get(queue, 0) for queue in COUNTED_QUEUES})
    summary["oldest_age"] = max(0, int(now) - min(arrivals)) if arrivals else None
    return summary


def deferral_reasons(messages, limit=5):
    """
    The most frequent reasons why recipients wait in the queue, most frequent
    first: a list of ``{"reason": ..., "count": ...}`` of at most ``limit``.
    """
    reasons = Counter(
        recipient["delay_reason"]
        for message in messages
        for recipient in message.get("recipients") or []
        if recipient.get("delay_reason")
    )
    ranked = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    return [{"reason": reason, "count": count} for reason, count in ranked[:limit]]


_QUEUE_ID = r"(?P<queue_id>[0-9A-Za-z]+)"
_DELIVERY_RE = re.compile(_QUEUE_ID + r": to=<[^>]*>,.* status=(?P<status>[a-z]+) \((?P<detail>.*)\)\s*$")
_MSMTP_FIELD_RE = re.compile(r"(\w+)=('(?:[^']*)'|\S+)")

# Postfix's delivery status -> send_test's result.
_OUTCOMES = {"sent": "delivered", "deferred": "deferred", "bounced": "failed", "expired": "failed"}


def queue_id_of(lines, message_id):
    """The queue ID that Postfix's cleanup logged for ``message_id``, or ``None``."""
    pattern = re.compile(_QUEUE_ID + r": message-id=<?" + re.escape(message_id.strip("<>")) + r">?\s*$")
    for line in lines:
        found = pattern.search(line)
        if found:
            return found.group("queue_id")
    return None


def delivery_outcome(lines, queue_id):
    """
    The latest delivery attempt Postfix logged for ``queue_id``: a dict with
    ``result`` (``delivered``, ``deferred`` or ``failed``) and ``detail`` (the
    remote server's reply or the reason), or ``None`` before the first attempt.
    """
    outcome = None
    for line in lines:
        found = _DELIVERY_RE.search(line)
        if found and found.group("queue_id") == queue_id and found.group("status") in _OUTCOMES:
            outcome = {"result": _OUTCOMES[found.group("status")], "detail": found.group("detail")}
    return outcome


def msmtp_log_fields(line):
    """The ``key=value`` fields of one msmtp log line (quotes removed)."""
    return {key: value.strip("'") for key, value in _MSMTP_FIELD_RE.findall(line)}
