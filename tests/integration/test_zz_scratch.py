import json
PILLAR = {"mail": {"container": False, "relay": {"relayhost": "smtp.relay.test", "user": "relayuser", "password": "itest-Pw-5eed-d0nt-l3ak"}}}
def test_scratch(os_minion):
    for prof in ("fedora40", "debian12"):
        m = os_minion(prof)
        r = m.call("state.apply", "mail", "test=True", pillar=PILLAR)
        print(prof, r.returncode)
        print(json.dumps(r.data, indent=1)[:6000])
        print(r.stderr[-3000:])
