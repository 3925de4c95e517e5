#!/usr/bin/python3
"""Print, as one JSON object, what the molecule/nfs reboot test asserts on a GPU node after a
boot: systemd states and timestamps of docker.service and the NFS mount units, the NFS mounts in
/proc/mounts, containerd shims, the stand-in instance's /healthz and model file, and optionally
the container as Docker sees it. One Ansible round trip instead of a dozen under TCG.

It never talks to the Docker socket unless --container is given: docker.socket would start
docker.service (and so pull in the mounts) behind the test's back.

  boot_state.py --mounts P [P ...] --url URL [--settle S] [--wait-healthy S] [--container NAME]
"""
import argparse
import calendar
import json
import os
import subprocess
import time
import urllib.error
import urllib.request

PROPS = ["ActiveState", "SubState", "Result", "ActiveEnterTimestampMonotonic",
         "InactiveExitTimestampMonotonic"]


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()


def unit_state(unit):
    out = run("systemctl", "show", unit, *[f"--property={p}" for p in PROPS])
    state = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    for key in ("ActiveEnterTimestampMonotonic", "InactiveExitTimestampMonotonic"):
        state[key] = int(state.get(key) or 0)
    return state


def jobs():
    return [line for line in run("systemctl", "list-jobs", "--no-legend", "--no-pager").splitlines() if line]


def nfs_mounts():
    found = {}
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            src, path, fstype = line.split()[:3]
            if fstype.startswith("nfs"):
                found[path] = src
    return found


def shims():
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8") as comm:
                count += comm.read().startswith("containerd-shim")
        except OSError:
            pass
    return count


def get(url):
    """(status, body) or (error text, None); a 503 is an answer, a refused connection is not."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, OSError) as err:
        return f"no answer: {getattr(err, 'reason', err)}", None


def mono_us():
    return int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)


def container(name):
    out = run("docker", "inspect", "--format", "{{json .State}}", name)
    if not out:
        return None
    state = json.loads(out)
    # StartedAt (RFC 3339, ns) on the CLOCK_MONOTONIC scale of systemd's *TimestampMonotonic
    started = state["StartedAt"].rstrip("Z")
    whole, _, frac = started.partition(".")
    wall = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))
    state["StartedMonotonic"] = int(mono_us() - (time.time() - wall) * 1e6)
    return {k: state.get(k) for k in ("Status", "Running", "StartedAt", "StartedMonotonic")} | {
        "Health": (state.get("Health") or {}).get("Status")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mounts", nargs="+", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--settle", type=int, default=0, help="wait up to S s until systemd has no jobs left")
    ap.add_argument("--wait-healthy", type=int, default=0, help="wait up to S s for /healthz 200")
    ap.add_argument("--container")
    args = ap.parse_args()

    report = {"boot_id": open("/proc/sys/kernel/random/boot_id", encoding="utf-8").read().strip(),
              "uptime_s": float(open("/proc/uptime", encoding="utf-8").read().split()[0]),
              "jobs_at_start": jobs()}
    t0 = time.monotonic()
    while args.settle and jobs() and time.monotonic() - t0 < args.settle:
        time.sleep(2)
    report["jobs"] = jobs()
    report["settle_waited_s"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    while args.wait_healthy and get(args.url + "/healthz")[0] != 200 and time.monotonic() - t0 < args.wait_healthy:
        time.sleep(3)
    report["healthy_waited_s"] = round(time.monotonic() - t0, 1)

    mount_units = {path: run("systemd-escape", "--path", "--suffix=mount", path) for path in args.mounts}
    report["units"] = {unit: unit_state(unit) for unit in ["docker.service", *mount_units.values()]}
    report["mount_units"] = list(mount_units.values())
    report["nfs_mounts"] = nfs_mounts()
    # what an instance would see under a missing mount (listing a mounted hard NFS dir could block)
    report["local_dirs"] = {p: sorted(os.listdir(p)) for p in args.mounts if p not in report["nfs_mounts"]}
    report["shims"] = shims()
    report["healthz"] = get(args.url + "/healthz")
    report["model_config"] = get(args.url + "/model/config.json")
    if args.container:
        report["container"] = container(args.container)
    print(json.dumps(report, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
