"""
Reading Postfix's mail queue, for the ``mailstack`` execution module and the
``mailstack`` beacon (``__utils__["mailqueue.summarize"]``).

``postqueue -j`` prints one JSON object per queued message (Postfix >= 3.1):
``queue_name``, ``queue_id``, ``arrival_time`` (epoch seconds), ``sender`` and
``recipients``, each recipient with an ``address`` and, once a delivery
attempt failed, a ``delay_reason``.
"""

import json
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
