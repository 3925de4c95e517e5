"""Real kernel NFS between the nfs-server and nfs-client QEMU guests.

The tests drive both guests explicitly (not through the per-host ``host`` fixture)
because every check needs one side to act and the other to observe.
"""

import os
import uuid

import pytest

SERVER_ADDR = "10.77.0.1"
CLIENT_ADDR = "10.77.0.2"
OUTSIDER_ADDR = "10.77.0.3"  # on the private link, but in no inventory group
ROOT = "/srv/qvc"  # export root on the server
MNT = "/srv/qvc"  # mount root on the client: qvc_shared_root, as playbooks/storage.yml mounts it
DATA_UID = 2000
NOBODY = 65534


def as_data_user(cmd):
    """Run cmd on the client as the (unprivileged) data account uid/gid 2000."""
    return f"setpriv --reuid={DATA_UID} --regid={DATA_UID} --clear-groups sh -c '{cmd}'"


def test_server_exports_only_inventory_clients(server):
    text = server.file("/etc/exports.d/qvc.exports").content_string
    assert "*" not in text.replace("# ", "")
    assert OUTSIDER_ADDR not in text
    live = server.check_output("exportfs -v")
    assert f"{ROOT}/config" in live and f"{ROOT}/models" in live
    assert f"{ROOT}/logs/nfs-client" in live
    for line in live.split("\n"):
        assert "<world>" not in line
    # NFSv4 only by default
    assert server.file("/proc/fs/nfsd/versions").content_string.split()[0] == "-3"


def test_exports_squash_root_and_are_read_only_where_intended(server):
    entries = {}
    path = None
    for tok in server.check_output("exportfs -v").split():
        if tok.startswith("/"):
            path = tok
        else:
            host, opts = tok.rstrip(")").split("(")
            entries[(path, host)] = opts.split(",")
    assert "ro" in entries[(f"{ROOT}/config", CLIENT_ADDR)]
    assert "rw" in entries[(f"{ROOT}/models", CLIENT_ADDR)]  # nfs-client is the model writer
    assert "rw" in entries[(f"{ROOT}/logs/nfs-client", CLIENT_ADDR)]
    for opts in entries.values():
        assert "root_squash" in opts and "no_root_squash" not in opts


@pytest.mark.parametrize(
    "line,message",
    [
        (f"{ROOT}/config {CLIENT_ADDR}(ro,sync,no_subtree_check,qvc_typo)", 'unknown keyword "qvc_typo"'),
        (f"{ROOT}/missing {CLIENT_ADDR}(ro,sync,no_subtree_check)", "Failed to stat"),
        # the classic typo that exports to the world: exportfs only warns (rc 0)
        (f"{ROOT}/config {CLIENT_ADDR} (ro,sync,no_subtree_check)", "No host name given"),
    ],
)
def test_validator_rejects_bad_exports_without_touching_live_ones(server, line, message):
    before = server.check_output("exportfs -v")
    etab = server.file("/var/lib/nfs/etab").content_string
    server.check_output(f"printf '%s\\n' '{line}' > /tmp/qvc-candidate")
    res = server.run("/usr/local/sbin/qvc-exports-check /tmp/qvc-candidate")
    assert res.rc != 0 and message in res.stderr, res.stderr
    # the live file itself passes
    server.check_output("/usr/local/sbin/qvc-exports-check /etc/exports.d/qvc.exports")
    assert server.check_output("exportfs -v") == before
    assert server.file("/var/lib/nfs/etab").content_string == etab


def test_client_mounts_are_hard_nfs4(client):
    mounts = {}
    for line in client.file("/proc/mounts").content_string.splitlines():
        dev, path, fstype, opts = line.split()[:4]
        mounts[path] = (dev, fstype, opts.split(","))
    for name, mode in (("config", "ro"), ("models", "rw"), ("logs", "rw")):
        dev, fstype, opts = mounts[f"{MNT}/{name}"]
        assert fstype == "nfs4"
        assert dev.startswith(f"{SERVER_ADDR}:{ROOT}/")
        assert mode in opts and "hard" in opts and "vers=4.2" in opts
    fstab = client.file("/etc/fstab").content_string
    assert "_netdev" in fstab and "nofail" in fstab


def test_file_written_by_client_appears_on_server(server, client):
    name = f"probe-{uuid.uuid4().hex}"
    client.check_output(as_data_user(f"echo hello-from-client > {MNT}/logs/{name}"))
    f = server.file(f"{ROOT}/logs/nfs-client/{name}")
    assert f.exists
    assert f.content_string == "hello-from-client\n"
    assert f.uid == DATA_UID and f.gid == DATA_UID


def test_root_on_client_is_squashed(server, client):
    # a world-writable directory, so only the squash decides the owner (no sticky bit:
    # fs.protected_regular would refuse root opening a file that nobody owns there)
    d = f"{ROOT}/logs/nfs-client/squash-{uuid.uuid4().hex}"
    server.check_output(f"install -d -m 0777 {d}")
    client_dir = f"{MNT}/logs/{os.path.basename(d)}"
    client.check_output(f"echo root-was-here > {client_dir}/by-root")
    f = server.file(f"{d}/by-root")
    assert f.exists
    assert (f.uid, f.gid) == (NOBODY, NOBODY), "root_squash must map client root to nobody:nogroup"
    # root cannot write where only the data account may (directory owned by 2000, 0755)
    denied = client.run(f"touch {MNT}/logs/root-direct-{uuid.uuid4().hex}")
    assert denied.rc != 0 and "Permission denied" in denied.stderr


def test_models_writable_by_writer(server, client):
    name = f"model-{uuid.uuid4().hex}"
    client.check_output(as_data_user(f"echo weights > {MNT}/models/{name}"))
    assert server.file(f"{ROOT}/models/{name}").content_string == "weights\n"
    server.check_output(f"rm -f {ROOT}/models/{name}")


def test_config_export_is_read_only_on_the_server_side(server, client):
    # The regular mount is ro on the client; prove the *export* is ro by mounting it rw
    # and writing as the owner of a world-writable directory.
    server.check_output(f"install -d -m 0777 {ROOT}/config/rwprobe")
    probe = "/mnt/qvc-rwprobe"
    client.check_output(f"mkdir -p {probe}")
    client.check_output(f"mount -t nfs -o rw,nfsvers=4.2,soft,timeo=50,retrans=1 {SERVER_ADDR}:{ROOT}/config {probe}")
    try:
        assert "rw" in client.check_output(f"findmnt -n -o OPTIONS {probe}").split(",")
        res = client.run(as_data_user(f"echo x > {probe}/rwprobe/f"))
        assert res.rc != 0 and "Read-only file system" in res.stderr
        res = client.run(f"touch {MNT}/config/f")
        assert res.rc != 0 and "Read-only file system" in res.stderr
    finally:
        client.run(f"umount {probe}")
    assert not server.file(f"{ROOT}/config/rwprobe/f").exists


def test_outsider_address_is_refused(client):
    """A host on the storage network that is not in the inventory cannot mount.

    The outsider is a network namespace on the client guest with its own address
    (ipvlan on the private NIC): same wire, same server, only the address differs.
    """
    ns = "qvc-outsider"
    nic = client.check_output(f"ip -o -4 addr show to {CLIENT_ADDR}/32 | cut -d' ' -f2").strip()
    assert nic, "client has no private-link NIC"
    setup = (
        f"ip netns add {ns} && "
        f"ip link add qvcout link {nic} type ipvlan mode l2 && "
        f"ip link set qvcout netns {ns} && "
        f"ip -n {ns} addr add {OUTSIDER_ADDR}/24 dev qvcout && "
        f"ip -n {ns} link set qvcout up && ip -n {ns} link set lo up"
    )
    client.run(f"ip netns del {ns}")
    client.check_output(setup)
    try:
        # the outsider reaches nfsd (so a refusal is the server's decision, not the network's)
        client.check_output(f"ip netns exec {ns} timeout 10 bash -c '</dev/tcp/{SERVER_ADDR}/2049'")
        client.check_output("mkdir -p /mnt/qvc-outsider")
        for export in ("config", "models", "logs/nfs-client"):
            res = client.run(
                f"ip netns exec {ns} timeout 90 mount -t nfs "
                f"-o ro,nfsvers=4.2,soft,timeo=50,retrans=1 {SERVER_ADDR}:{ROOT}/{export} /mnt/qvc-outsider"
            )
            assert res.rc not in (0, 124), f"outsider mounted {export} or hung: rc={res.rc} {res.stderr}"
            assert "access denied by server" in res.stderr, res.stderr
    finally:
        client.run(f"ip netns del {ns}")


def test_mount_survives_server_restart_without_remount(server, client):
    mount_id_before = client.check_output(f"findmnt -n -o ID {MNT}/logs")
    server.check_output("systemctl restart nfs-server.service")
    assert server.service("nfs-server").is_running
    name = f"after-restart-{uuid.uuid4().hex}"
    # hard mount: the write blocks through the server restart and grace period, then succeeds
    client.check_output("timeout 180 " + as_data_user(f"echo back > {MNT}/logs/{name}"))
    assert server.file(f"{ROOT}/logs/nfs-client/{name}").content_string == "back\n"
    assert client.check_output(f"cat {MNT}/logs/{name}") == "back"
    assert client.check_output(f"findmnt -n -o ID {MNT}/logs") == mount_id_before


def test_docker_waits_for_the_mounts_at_boot(client):
    # The drop-in that makes docker.service require the shares' mount units; reboot.yml (side
    # effect) checks what it does across reboots.
    dropin = client.file("/etc/systemd/system/docker.service.d/qvc-nfs-mounts.conf").content_string
    assert f"RequiresMountsFor={MNT}/config {MNT}/models {MNT}/logs" in dropin
