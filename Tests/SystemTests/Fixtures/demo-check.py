#!/usr/bin/env python3
"""Run by `ops/boot-test --ssh-key … --check-running --run` while a VM built
from examples/blueprints/demo.toml is up (the system is already `running`):
looks inside over SSH (BOOT_TEST_SSH), probes ports from the host (8000 is
open in the blueprint's firewall; 8001 is not, and the check starts a
listener on it first so that only the firewall can keep it closed) and
prints one JSON object of facts for the Swift test to assert on."""
import json
import os
import shlex
import socket

import guest_facts

SSH = shlex.split(os.environ["BOOT_TEST_SSH"])

REMOTE = r'''
fact() { printf '%s=%s\n' "$1" "$(eval "$2" 2>&1 | tr '\n' ' ' | sed 's/ *$//')"; }
fact demo_result 'systemctl show -P Result demo.service'
fact demo_active 'systemctl is-active demo.service'
fact demo_started 'systemctl show -P ExecMainStartTimestampMonotonic demo.service'
fact network_online 'systemctl show -P ActiveEnterTimestampMonotonic network-online.target'
fact cockpit_socket 'systemctl is-enabled cockpit.socket'
fact firewalld 'systemctl is-active firewalld.service'
fact ports 'firewall-cmd --list-ports'
fact services 'firewall-cmd --list-services'
fact page 'head -1 /srv/demo/index.html'
fact cloud_init 'dpkg-query -W -f="\${Status}" cloud-init 2>/dev/null || echo absent'
fact codename '. /etc/os-release; echo "$VERSION_CODENAME"'
# A listener on 8001, answering inside the guest (polled, at most 60 s) before the host probes it.
systemd-run --unit=kiln-closed-probe --property=DynamicUser=yes --collect python3 -m http.server 8001 >/dev/null 2>&1
fact listener 'for i in $(seq 1 60); do python3 -c "import urllib.request as u; u.urlopen(\"http://127.0.0.1:8001/\", timeout=2)" 2>/dev/null && echo answers && break; sleep 1; done'
fact failed_units 'systemctl --failed --no-legend --plain | cut -d" " -f1'
'''


def probe(port):
    """The first line an HTTP GET from the host gets back within 15 s, or why there is none."""
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=15) as s:
            s.settimeout(15)
            s.sendall(b"GET / HTTP/1.0\r\nHost: demo\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        body = data.decode(errors="replace").split("\r\n\r\n", 1)
        return body[1].strip().splitlines()[0] if len(body) == 2 and body[1].strip() else "closed: no answer"
    except OSError as e:
        return f"closed: {e.__class__.__name__}"


facts = guest_facts.collect(SSH, REMOTE)
facts["port_8000"] = probe(os.environ["BOOT_TEST_PORT_8000"])
facts["port_8001"] = probe(os.environ["BOOT_TEST_PORT_8001"])
print(json.dumps(facts, indent=1))
