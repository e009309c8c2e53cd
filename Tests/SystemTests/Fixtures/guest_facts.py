"""Shared by the system tests' in-guest checks (kitchen-sink-check.py,
demo-check.py): runs a shell script over SSH whose `fact NAME 'COMMAND'`
lines print NAME=VALUE, and returns them as a dict with the script's exit
status and the tail of its stderr."""
import subprocess


def collect(ssh, remote, timeout=300):
    r = subprocess.run(ssh + [remote], capture_output=True, text=True, timeout=timeout)
    facts = {}
    for line in r.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts[key] = value
    facts["remote_status"] = r.returncode
    facts["remote_errors"] = r.stderr.strip()[-2000:]
    return facts
