"""teuthology's own pelagos client, refused: every call must fail the expected way.

Usage: client_refused.py <endpoint/> <401|certificate> <lab_domain> <os_type> <os_version> <short>
  401          the server answers 401 with WWW-Authenticate: Basic realm="pelagos"
               (no or wrong credentials in the endpoint URL);
  certificate  the TLS handshake fails certificate verification (the lab CA is
               not in the bundle the client trusts).
Prints REFUSED AS EXPECTED when all calls failed that way; exits non-zero otherwise.
"""
import sys

# teuthology first: its __init__ monkey-patches ssl with gevent, which must
# happen before requests imports ssl (else TLS calls recurse without end).
from teuthology.config import config
import teuthology.provision.pelagos as pelagos

import requests

endpoint, expect, lab_domain, os_type, os_version, short = sys.argv[1:7]
assert expect in ("401", "certificate"), expect
config.pelagos = {"endpoint": endpoint, "machine_types": "tc-a"}
config.lab_domain = lab_domain


def fail(what):
    print("FAIL: " + what, flush=True)
    sys.exit(1)


def refused(fn, what):
    try:
        r = fn()
    except requests.exceptions.SSLError as e:
        if expect == "certificate" and "CERTIFICATE_VERIFY_FAILED" in str(e):
            print("ok: %s refused: certificate verify failed" % what, flush=True)
            return
        fail("%s: unexpected TLS error: %s" % (what, e))
    except requests.exceptions.HTTPError as e:
        resp = e.response
        if (
            expect == "401"
            and resp is not None
            and resp.status_code == 401
            and resp.headers.get("WWW-Authenticate") == 'Basic realm="pelagos"'
            and "error" in resp.json()
        ):
            print("ok: %s refused: 401 %s" % (what, resp.json()["error"]), flush=True)
            return
        fail("%s: unexpected HTTP error: %s" % (what, e))
    except Exception as e:
        fail("%s: unexpected %s: %s" % (what, type(e).__name__, e))
    fail("%s was not refused (answered %s)" % (what, getattr(r, "status_code", r)))


node = pelagos.Pelagos(short, os_type, os_version)
refused(lambda: node.do_request("nodes"), "do_request('nodes')")
refused(lambda: node.create(), "create()")
refused(lambda: pelagos.park_node(short), "park_node()")
print("REFUSED AS EXPECTED", flush=True)
