"""lb_ha: keepalived VIP in front of two nginx_lb hosts; failover with a client running.

Runs from the controller and drives the containers with `docker exec` (faster than the
testinfra backend when polling). The client is qvc-ha-client.py on the backend host
(prepare.yml): one POST /v1/chat/completions through the VIP every 50 ms.
The measured numbers are printed and written to $MOLECULE_EPHEMERAL_DIRECTORY/lb_ha_failover.json.
"""

import json
import os
import subprocess
import time

LB1, LB2, CLIENT = "qvc-ha-lb1", "qvc-ha-lb2", "qvc-ha-backend"
ADDR = {LB1: "172.29.88.11", LB2: "172.29.88.12"}
VIP = "172.29.88.100"
URL = f"http://{VIP}/v1/chat/completions"
INTERVAL = 0.05
# Failover bounds: check interval 1 s x fall 2 (nginx down) or 3 adverts + skew (LB gone),
# plus the slow shared CI machine.
MAX_OUTAGE_S = 6.0
MAX_FAILED = int(MAX_OUTAGE_S / INTERVAL)
RESULTS = {}


def sh(container, cmd, check=True, timeout=30):
    res = subprocess.run(["docker", "exec", container, "sh", "-c", cmd], capture_output=True, text=True, timeout=timeout)
    if check:
        assert res.returncode == 0, f"{container}: {cmd}: rc={res.returncode} {res.stdout} {res.stderr}"
    return res


def has_vip(container):
    res = subprocess.run(["docker", "exec", container, "ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=10)
    return res.returncode == 0 and f" {VIP}/" in res.stdout


def wait_vip(container, timeout):
    """Seconds until `container` holds the VIP (None: not within timeout)."""
    start = time.time()
    while time.time() - start < timeout:
        if has_vip(container):
            return round(time.time() - start, 2)
        time.sleep(0.1)
    return None


def start_client(duration):
    return subprocess.Popen(
        ["docker", "exec", CLIENT, "python3", "/usr/local/bin/qvc-ha-client.py", URL, str(duration), str(INTERVAL), "1"],
        stdout=subprocess.PIPE, text=True)


def client_results(proc):
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return json.loads(out)["results"]


def summarize(results, t_from, t_to):
    """Requests sent in [t_from, t_to): count, failures, outage window (first to last failure)."""
    window = [r for r in results if t_from <= r["t"] < t_to]
    failed = [r for r in window if not r["ok"]]
    outage = round(failed[-1]["t"] + failed[-1]["dt"] - failed[0]["t"], 2) if failed else 0.0
    return {
        "sent": len(window),
        "failed": len(failed),
        "outage_s": outage,
        "errors": sorted({r["error"].split(">")[0] for r in failed}),
        "via": {v: sum(1 for r in window if r.get("via") == v) for v in sorted({r.get("via") for r in window if r["ok"]})},
    }


def record(name, data, results):
    RESULTS[name] = dict(data, failed_requests=[r for r in results if not r["ok"]])
    print(f"\n[lb_ha] {name}: {json.dumps(data)}")
    t0 = results[0]["t"] if results else 0
    for r in results:
        if not r["ok"]:
            print(f"[lb_ha]   failed at +{r['t'] - t0:6.2f}s ({r['dt']:.2f}s): {r['error']}")
    eph = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if eph:
        with open(os.path.join(eph, "lb_ha_failover.json"), "w", encoding="utf-8") as fh:
            json.dump(RESULTS, fh, indent=2)


def nopreempt():
    """The configured mode (lb_ha_nopreempt, QVC_LB_HA_NOPREEMPT in molecule.yml)."""
    return "\n    nopreempt\n" in sh(LB1, "cat /etc/keepalived/keepalived.conf").stdout


def holder():
    """The LB holding the VIP now (exactly one), and the other one."""
    held = [lb for lb in (LB1, LB2) if has_vip(lb)]
    assert len(held) == 1, f"VIP held by {held}"
    return held[0], LB2 if held[0] == LB1 else LB1


def stays(container, seconds):
    """The VIP stays on `container` for `seconds`."""
    end = time.time() + seconds
    while time.time() < end:
        if not has_vip(container):
            return False
        time.sleep(0.2)
    return True


def test_keepalived_running_with_valid_config():
    for lb, peer, prio in ((LB1, LB2, 150), (LB2, LB1, 140)):
        assert sh(lb, "systemctl is-active keepalived && systemctl is-enabled keepalived").returncode == 0
        assert sh(lb, "stat -c %a /etc/keepalived/keepalived.conf").stdout.strip() == "600"
        # keepalived 2.2.7: 143 (SIGTERM) with nothing printed = valid (acassen/keepalived#2587)
        res = sh(lb, "keepalived -t -f /etc/keepalived/keepalived.conf", check=False)
        assert res.returncode in (0, 143) and res.stdout.strip() == "" and res.stderr.strip() in ("", "Terminated"), res
        conf = sh(lb, "cat /etc/keepalived/keepalived.conf").stdout
        assert f"unicast_src_ip {ADDR[lb]}" in conf
        assert f"        {ADDR[peer]}\n" in conf
        assert f"priority {prio}\n" in conf
        assert f"{VIP}/32 dev eth0" in conf
        assert "init_fail" in conf
        # the check runs unprivileged and passes
        assert sh(lb, "runuser -u keepalived_script -- /etc/keepalived/qvc-check-nginx.sh").returncode == 0


def test_identical_nginx_configs_listening_on_all_addresses():
    files = "/etc/nginx/nginx.conf /etc/nginx/conf.d/qvc-lb.conf"
    sums = {lb: sh(lb, f"sha256sum {files}").stdout for lb in (LB1, LB2)}
    assert sums[LB1] == sums[LB2], sums
    site = sh(LB1, "cat /etc/nginx/conf.d/qvc-lb.conf").stdout
    assert "server 172.29.88.20:8001 " in site
    # listen <port> without an address: the VIP is served without ip_nonlocal_bind
    assert "    listen 80 default_server;" in site


def test_vip_on_first_lb_and_served():
    assert wait_vip(LB1, 15) is not None, "the VIP never came up on the first LB"
    assert not has_vip(LB2)
    out = sh(CLIENT, f"curl -fsS --max-time 5 -XPOST -H 'Content-Type: application/json' -d '{{}}' {URL}").stdout
    assert json.loads(out)["via"] == ADDR[LB1]


def test_failover_on_nginx_stop_and_failback():
    master, backup = holder()
    assert master == LB1
    proc = start_client(20)
    time.sleep(3)
    t_stop = time.time()
    sh(master, "systemctl stop nginx")
    moved = wait_vip(backup, 15)
    assert moved is not None, "the VIP did not move to the backup"
    assert not has_vip(master)
    time.sleep(max(0.0, t_stop + 8 - time.time()))
    t_start = time.time()
    sh(master, "systemctl start nginx")
    if nopreempt():
        back = None
        kept = stays(backup, 6)
    else:
        back = wait_vip(master, 15)
        kept = None
    results = client_results(proc)
    t_end = results[-1]["t"] + 1
    failover = summarize(results, t_stop, t_start)
    failback = summarize(results, t_start, t_end)
    record("nginx_stop", {"nopreempt": nopreempt(), "vip_moved_after_s": moved, "vip_back_after_s": back,
                          "vip_stayed_on_backup": kept, "failover": failover, "after_nginx_start": failback}, results)
    assert failover["failed"] <= MAX_FAILED and failover["outage_s"] <= MAX_OUTAGE_S, failover
    assert failover["via"].get(ADDR[backup], 0) > 0, failover
    assert failback["failed"] <= 10, failback
    if nopreempt():
        assert kept, "nopreempt: the VIP left the backup although it is healthy"
        new_holder = backup
    else:
        assert back is not None, "the VIP did not return to the first LB (preempt) after nginx came back"
        new_holder = master
    settled = t_start + (back or 0) + 1
    tail = [r for r in results if r["t"] >= settled]
    assert tail and all(r["ok"] for r in tail), tail
    assert all(r.get("via") == ADDR[new_holder] for r in tail[-5:]), tail[-5:]


def test_failover_on_lb_container_kill():
    """SIGKILL of the whole MASTER container: no goodbye advert, the backup waits ~3 adverts."""
    master, backup = holder()
    proc = start_client(15)
    time.sleep(3)
    t_kill = time.time()
    subprocess.run(["docker", "kill", master], check=True, capture_output=True, timeout=60)
    moved = wait_vip(backup, 20)
    results = client_results(proc)
    failover = summarize(results, t_kill, results[-1]["t"] + 1)
    subprocess.run(["docker", "start", master], check=True, capture_output=True, timeout=120)
    # preempt: the VIP ends on LB1 (highest priority) whichever was killed; nopreempt: it stays
    final = backup if nopreempt() else LB1
    back = wait_vip(final, 90) if final == master else None
    if final != master:
        # give the restarted peer time to boot and (wrongly) take the VIP
        assert wait_vip_peer_backup(master, 60), f"{master} did not come back as a healthy BACKUP"
        assert stays(final, 5)
    record("container_kill", {"killed": master, "vip_moved_after_s": moved, "failover": failover,
                              "vip_back_after_restart_s": back, "vip_holder_at_end": final}, results)
    assert moved is not None, "the VIP did not move to the backup"
    assert failover["outage_s"] <= MAX_OUTAGE_S, failover
    assert results[-1]["ok"] and results[-1]["via"] == ADDR[backup]
    if final == master:
        assert back is not None, f"the VIP did not return to {master} within 90 s of its restart"
    out = sh(CLIENT, f"curl -fsS --max-time 5 -XPOST -d '{{}}' {URL}").stdout
    assert json.loads(out)["via"] == ADDR[final]


def wait_vip_peer_backup(container, timeout):
    """The restarted container's keepalived is up with a passing check (BACKUP)."""
    end = time.time() + timeout
    while time.time() < end:
        res = sh(container, "journalctl -u keepalived -b --no-pager | grep -q 'Entering BACKUP STATE'", check=False)
        if res.returncode == 0:
            return True
        time.sleep(0.5)
    return False
