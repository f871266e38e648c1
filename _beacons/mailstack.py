"""
Fire an event on the master's bus when this node's mail is stuck, so that a
reactor can alert through another channel: a mail alert cannot arrive while
mail itself is broken.

Events are tagged ``salt/beacon/<minion>/mailstack/<what>``:

- ``deferred``: more than ``deferred`` messages wait in the deferred queue;
- ``queue_age``: the oldest queued message is older than ``max_age`` seconds;
- ``health``: the last health mail (``mail.health``) failed.

Each event carries the queue counts, the most frequent deferral reasons and
the last health result (``mailstack.status`` without the network probe). An
event fires at every interval while its condition holds.

.. code-block:: yaml

    beacons:
      mailstack:
        - interval: 300      # seconds between checks
        - deferred: 10       # default 10
        - max_age: 3600      # seconds, default 3600
        - health: true       # default true
"""

import salt.utils.beacons

__virtualname__ = "mailstack"

DEFAULTS = {"deferred": 10, "max_age": 3600, "health": True}


def __virtual__():
    return __virtualname__


def _config(config):
    return {**DEFAULTS, **salt.utils.beacons.list_to_dict(config)}


def validate(config):
    """Check the beacon's configuration: a list of single-key mappings."""
    if not isinstance(config, list) or not all(isinstance(item, dict) for item in config):
        return False, "Configuration for the mailstack beacon must be a list of mappings"
    merged = _config(config)
    for key in ("deferred", "max_age"):
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return False, f"mailstack beacon: {key} must be a whole number of at least 0, got {value!r}"
    if not isinstance(merged["health"], bool):
        return False, f"mailstack beacon: health must be true or false, got {merged['health']!r}"
    return True, "Valid beacon configuration"


def _findings(conf, queue, health):
    if queue and queue["deferred"] > conf["deferred"]:
        yield "deferred", f"{queue['deferred']} deferred messages (threshold {conf['deferred']})"
    if queue and queue["oldest_age"] is not None and queue["oldest_age"] > conf["max_age"]:
        yield "queue_age", f"oldest message waits for {queue['oldest_age']} s (maximum {conf['max_age']} s)"
    if conf["health"] and health and health["result"] != "ok":
        yield "health", f"the last health mail failed: {health['detail']}"


def beacon(config):
    """Check the queue and the last health mail; one event per finding."""
    conf = _config(config)
    status = __salt__["mailstack.status"](check_next_hop=False)
    queue, health = status.get("queue"), status.get("health")
    return [
        {"tag": tag, "problem": problem, "mode": status["mode"], "queue": queue, "health": health}
        for tag, problem in _findings(conf, queue, health)
    ]
