"""One provision through teuthology's own client (teuthology.provision.pelagos),
unmodified but for its waits (2 s grace, 15 s polls shortened), then a look
at the node over SSH (paramiko, a teuthology dependency) when it succeeded.

Usage: provision.py <endpoint/> <lab_domain> <short name> <os_type> <os_version> <node ip> <salt mark>
The node's root password comes from $E2E_NODE_PASSWORD. Prints one JSON
line: {"ok": bool, "code": int, "body": ..., "error": str, "os_release": str,
"image_id": str, "salt_mark": str}.
"""
import json
import os
import sys
import time
import types

from teuthology.config import config
import teuthology.provision.pelagos as pelagos

endpoint, lab_domain, short, os_type, os_version, node_ip, mark = sys.argv[1:8]
config.pelagos = {"endpoint": endpoint, "machine_types": "e2e"}
config.lab_domain = lab_domain

_orig_safe_while = pelagos.safe_while


def quick_safe_while(*args, **kwargs):
    kwargs["sleep"] = 0.2
    kwargs["tries"] = 6000
    return _orig_safe_while(*args, **kwargs)


_real_sleep = time.sleep
pelagos.safe_while = quick_safe_while
pelagos.time = types.SimpleNamespace(sleep=lambda s: _real_sleep(min(s, 0.2)))

out = {"ok": False, "code": 0, "body": None, "error": "", "os_release": "",
       "image_id": "", "salt_mark": ""}
client = pelagos.Pelagos(short, os_type, os_version)
try:
    r = client.create()
    out["ok"] = True
    out["code"] = r.status_code
    out["body"] = r.json()
except Exception as e:  # the client raises on a failed deploy
    out["error"] = "%s: %s" % (type(e).__name__, e)
    r = getattr(client, "task_status_response", None)
    if r is not None and hasattr(r, "status_code"):
        out["code"] = r.status_code
        try:
            out["body"] = r.json()
        except ValueError:
            out["body"] = r.text

if out["ok"]:
    import paramiko
    ssh = paramiko.SSHClient()
    ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    ssh.connect(node_ip, username="root", password=os.environ["E2E_NODE_PASSWORD"],
                look_for_keys=False, allow_agent=False, timeout=30)

    def cat(path):
        _, stdout, _ = ssh.exec_command("cat %s 2>/dev/null" % path, timeout=60)
        return stdout.read().decode(errors="replace")

    out["os_release"] = cat("/etc/os-release")
    out["image_id"] = cat("/etc/ImageID").strip()
    out["salt_mark"] = cat(mark).strip()
    ssh.close()

print(json.dumps(out), flush=True)
