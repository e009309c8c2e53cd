#!/usr/bin/env python3
"""Run by `ops/boot-test --run` while a kitchen-sink VM is up: logs in over
SSH (port BOOT_TEST_PORT_22, key KILN_SSH_KEY, user alice), collects what a
user would look at inside the machine, probes the firewall from the host
(BOOT_TEST_PORT_8080 is allowed, BOOT_TEST_PORT_8081 is not) and prints
one JSON object of facts. The Swift test asserts on them; this script only
fails when it cannot log in at all."""
import json
import os
import socket
import subprocess
import sys
import time

import guest_facts

PORT = os.environ["BOOT_TEST_PORT_22"]
KEY = os.environ["KILN_SSH_KEY"]
DEADLINE = time.monotonic() + float(os.environ.get("KILN_SSH_TIMEOUT", "600"))
SSH = ["ssh", "-p", PORT, "-i", KEY, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
       "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "alice@127.0.0.1"]

REMOTE = r'''
fact() { printf '%s=%s\n' "$1" "$(eval "$2" 2>&1 | tr '\n' ' ' | sed 's/ *$//')"; }
for i in $(seq 1 120); do test -e /var/lib/kiln/first-boot.done && break; sleep 1; done
fact hostname 'hostname'
fact codename '. /etc/os-release; echo "$VERSION_CODENAME"'
fact architecture 'dpkg --print-architecture'
fact alice_id 'id alice'
fact alice_passwd 'getent passwd alice'
fact alice_hash 'sudo getent shadow alice | cut -d: -f2 | cut -c1-3'
fact bob_passwd 'getent passwd bob'
fact bob_shadow 'sudo getent shadow bob | cut -d: -f3,8'
fact bob_keys 'sudo cat /home/bob/.ssh/authorized_keys'
fact developers 'getent group developers'
fact timezone 'readlink /etc/localtime'
fact ntp 'cat /etc/systemd/timesyncd.conf.d/50-kiln.conf | grep ^NTP='
fact timesyncd 'systemctl is-enabled systemd-timesyncd.service'
fact lang 'cat /etc/default/locale'
fact locales 'locale -a'
fact keyboard 'grep ^XKBLAYOUT= /etc/default/keyboard'
fact nftables 'systemctl is-active nftables.service'
fact hello_socket 'systemctl is-enabled kiln-hello.socket'
fact e2scrub 'systemctl is-enabled e2scrub_reap.service'
fact apt_daily 'systemctl is-enabled apt-daily.timer'
fact srv_data 'stat -c "%U %G %a" /srv/data'
fact readme 'sudo stat -c "%U %G %a" /srv/data/README'
fact readme_text 'sudo cat /srv/data/README'
fact deep 'stat -c "%U %G %a" /opt/kiln/deep/tree'
fact sudoers 'sudo stat -c "%U %G %a" /etc/sudoers.d/alice'
fact repo 'cat /etc/apt/sources.list.d/backports.sources'
fact repo_key 'head -1 /etc/apt/keyrings/backports.asc'
fact pin 'cat /etc/apt/preferences.d/backports.pref'
fact cmdline 'cat /proc/cmdline'
fact mount_root 'findmnt -bno SIZE,FSTYPE /'
fact mount_home 'findmnt -bno SIZE,FSTYPE /home'
fact mount_varlog 'findmnt -bno SIZE,FSTYPE /var/log'
fact root_source 'findmnt -no SOURCE /'
fact lvs 'sudo lvs --noheadings -o lv_name,vg_name'
fact cacert 'test -e /etc/ssl/certs/kiln-1.pem && echo linked'
fact sshd_password 'sudo sshd -T | grep -i ^passwordauthentication'
fact sshd_alive 'sudo sshd -T | grep -i ^clientaliveinterval'
fact firstboot 'cat /var/lib/kiln-first-boot.log'
fact firstboot_done 'test -e /var/lib/kiln/first-boot.done && echo yes'
fact nocloud 'cat /var/lib/kiln-nocloud'
fact hostkey 'sudo cat /etc/ssh/ssh_host_ed25519_key.pub'
fact task 'dpkg-query -W -f="\${Status}" task-ssh-server'
fact system_state 'timeout 300 systemctl is-system-running --wait'
fact failed_units 'systemctl --failed --no-legend --plain | cut -d" " -f1'
'''


def ssh(command, timeout=300):
    return subprocess.run(SSH + [command], capture_output=True, text=True, timeout=timeout)


def probe(port):
    """What a TCP client on the host receives from the guest port within 15 s."""
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=15) as s:
            s.settimeout(15)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.decode(errors="replace").strip()
    except OSError as e:
        return f"error: {e.__class__.__name__}"


last = ""
while True:
    r = ssh("true", timeout=60)
    if r.returncode == 0:
        break
    last = r.stderr.strip()
    if time.monotonic() > DEADLINE:
        print(f"kitchen-sink-check: no SSH login as alice: {last}", file=sys.stderr)
        sys.exit(1)
    time.sleep(5)

facts = guest_facts.collect(SSH, REMOTE)
facts["port_8080"] = probe(os.environ["BOOT_TEST_PORT_8080"])
facts["port_8081"] = probe(os.environ["BOOT_TEST_PORT_8081"])
print(json.dumps(facts, indent=1))
