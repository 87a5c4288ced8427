"""Drive pelagos-server with teuthology's own provisioner client, unmodified.

Only its waiting is shortened: the 2 s grace sleep and the 15 s poll interval of
safe_while. Usage: client_check.py <endpoint/> <lab_domain> <os_type> <os_version> <short1,short2,...>
Exits non-zero with a message on the first failed check.
"""
import sys
import time
import types

from teuthology.config import config
import teuthology.parallel as parallel
import teuthology.provision.pelagos as pelagos

endpoint, lab_domain, os_type, os_version, shorts = sys.argv[1:6]
shorts = shorts.split(",")
config.pelagos = {"endpoint": endpoint, "machine_types": "tc-a,tc-b"}
config.lab_domain = lab_domain

_orig_safe_while = pelagos.safe_while


def quick_safe_while(*args, **kwargs):
    kwargs["sleep"] = 0.1
    kwargs["tries"] = 1200
    return _orig_safe_while(*args, **kwargs)


_real_sleep = time.sleep
pelagos.safe_while = quick_safe_while
pelagos.time = types.SimpleNamespace(sleep=lambda s: _real_sleep(min(s, 0.1)))


def check(cond, what):
    if not cond:
        print("FAIL: " + what, flush=True)
        sys.exit(1)
    print("ok: " + what, flush=True)


def raises(fn, what):
    try:
        fn()
    except Exception as e:  # the client raises requests' HTTPError
        print("ok: %s (raised %s: %s)" % (what, type(e).__name__, e), flush=True)
        return
    check(False, what + " should raise")


check(pelagos.enabled(), "enabled() with endpoint and machine_types")
check(pelagos.get_types() == ["tc-a", "tc-b"], "get_types()")

first = pelagos.Pelagos(shorts[0], os_type, os_version)
resp = first.do_request("nodes")
body = resp.json()
names = sorted(n["node"] for n in body["nodes"])
want = sorted("%s.%s" % (s, lab_domain) for s in shorts)
check(set(want) <= set(names), "do_request('nodes') lists the lab's nodes: %s" % names)
check(all(n in body["pxe"] for n in want), "do_request('nodes') has a pxe entry per node")

raises(lambda: pelagos.Pelagos("no-such-node", os_type, os_version).create(), "create() of an unknown node")
raises(lambda: pelagos.Pelagos(shorts[0], "no-such-os", "1.0").create(), "create() of an unknown OS")

r = first.create()
check(r.status_code == 200, "create() answers 200 (got %s)" % r.status_code)
check(r.json()["status"] == "done", "create() result status done: %s" % r.text)
check(r.json()["os"].startswith(os_type), "create() result names the os: %s" % r.json()["os"])

results = {}


def provision(short):
    results[short] = pelagos.Pelagos(short, os_type, os_version).create()


with parallel.parallel() as p:
    for s in shorts[:4]:
        p.spawn(provision, s)
check(len(results) == 4, "four parallel create() calls returned")
check(all(r.status_code == 200 and r.json()["status"] == "done" for r in results.values()),
      "four parallel provisions done: %s" % {k: v.status_code for k, v in results.items()})

parked = pelagos.Pelagos(shorts[1], "maintenance_image").create(wait=False)
check(parked.status_code == 202, "park (create(wait=False)) answers 202 (got %s)" % parked.status_code)
check(parked.headers["Location"].startswith("http"), "Location is absolute: %s" % parked.headers["Location"])
pelagos.park_node(shorts[2])
print("ok: park_node() returned", flush=True)
print("ALL CHECKS PASSED", flush=True)
