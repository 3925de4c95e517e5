"""The webui role's shared files on real NFS, as site.yml writes them (qvc_storage_backend: nfs).

converge.yml runs playbooks/storage.yml and then roles/webui/tasks/storage.yml on the client
(group gpu_nodes, the model writer). The server exports the tree with root_squash, so
everything the client writes must be written by the service account (uid/gid 2000), and the
shared config must be written on the server itself (the config export is read-only).
Checked on the server's export and through the client's mount.
"""

import hashlib
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = "/srv/qvc"  # qvc_shared_root: export root on the server, mount root on the client
DATA_UID = 2000  # webui_uid / nfs_server_data_uid
SERVICE_USER = "qvc-webui"
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "tiny-model"
MODEL = f"{ROOT}/models/local/{FIXTURE.name}"
FINGERPRINT = ".qvc-source-fingerprint"
INSTANCES = ["nfs-client-0", "nfs-client-1"]  # webui_cpu_instances: 2 on nfs-client
SERVICE_CONFIG = {"warmup": False, "concurrency": 3}  # webui_config in molecule.yml


def fixture_files():
    return sorted(p.relative_to(FIXTURE).as_posix() for p in FIXTURE.rglob("*") if p.is_file())


def as_service_user(cmd):
    """Run cmd on the client as the webui service account (by name, as Ansible's become does)."""
    return f"sudo -u {SERVICE_USER} sh -c '{cmd}'"


def test_service_account_has_the_data_uid(client):
    # NFS (sec=sys) compares numeric ids: the account must be the uid/gid the server's tree belongs to
    assert client.check_output(f"id -u {SERVICE_USER}") == str(DATA_UID)
    assert client.check_output(f"id -g {SERVICE_USER}") == str(DATA_UID)


def test_model_copy_on_the_export_is_the_source_owned_by_the_service_account(server):
    assert fixture_files(), f"empty fixture {FIXTURE}"
    listed = server.check_output(f"cd {MODEL} && find . -type f -printf '%P\\n' | LC_ALL=C sort").splitlines()
    assert listed == sorted(fixture_files() + [FINGERPRINT]), "stray or missing files in the model copy"
    for rel in fixture_files():
        f = server.file(f"{MODEL}/{rel}")
        assert (f.uid, f.gid) == (DATA_UID, DATA_UID), rel
        assert f.mode == 0o644, f"{rel}: {oct(f.mode)}"
        assert f.sha256sum == hashlib.sha256((FIXTURE / rel).read_bytes()).hexdigest(), rel
    dirs = server.check_output(f"find {ROOT}/models/local -type d -printf '%u:%g:%m %p\\n'").splitlines()
    assert len(dirs) >= 3  # local/, the model, its shards/ subdirectory
    for line in dirs:
        assert line.startswith(f"{DATA_UID}:{DATA_UID}:755 "), line


def test_fingerprint_records_the_source(server):
    expected = subprocess.run(
        'find . -type f -printf "%P %s %T@\\n" | LC_ALL=C sort | sha256sum',
        shell=True,
        cwd=FIXTURE,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[0]
    f = server.file(f"{MODEL}/{FINGERPRINT}")
    assert f.content_string.strip() == expected
    assert (f.uid, f.gid) == (DATA_UID, DATA_UID)


def test_instance_log_dirs_belong_to_the_service_account_on_the_export(server):
    for inst in INSTANCES:
        d = server.file(f"{ROOT}/logs/nfs-client/{inst}")
        assert d.is_directory, inst
        assert (d.uid, d.gid, d.mode) == (DATA_UID, DATA_UID, 0o755), inst
    # and nowhere else: the instance dirs live in this host's own log export only
    assert not server.file(f"{ROOT}/logs/{INSTANCES[0]}").exists


def test_service_config_is_root_owned_on_the_server_and_readable_through_the_mount(server, client):
    on_server = server.file(f"{ROOT}/config/webui.yaml")
    assert (on_server.uid, on_server.gid, on_server.mode) == (0, 0, 0o644)
    text = on_server.content_string
    assert text.startswith("# Managed by Ansible")
    assert yaml.safe_load(text) == SERVICE_CONFIG
    # the containers run as the service account and read it through the read-only config mount
    assert client.check_output(as_service_user(f"cat {ROOT}/config/webui.yaml")) == text.rstrip("\n")


def test_service_account_writes_its_log_dir_and_root_cannot(server, client):
    name = f"probe-{uuid.uuid4().hex}"
    client.check_output(as_service_user(f"echo from-instance > {ROOT}/logs/{INSTANCES[0]}/{name}"))
    f = server.file(f"{ROOT}/logs/nfs-client/{INSTANCES[0]}/{name}")
    assert f.content_string == "from-instance\n"
    assert (f.uid, f.gid) == (DATA_UID, DATA_UID)
    denied = client.run(f"touch {ROOT}/logs/{INSTANCES[1]}/root-{name}")
    assert denied.rc != 0 and "Permission denied" in denied.stderr, denied.stderr
    assert not server.file(f"{ROOT}/logs/nfs-client/{INSTANCES[1]}/root-{name}").exists


@pytest.mark.parametrize(
    "cmd,message",
    [
        # root_squash: root is nobody on the (rw) models export, which belongs to uid 2000
        (f"echo x >> {MODEL}/config.json", "Permission denied"),
        (f"touch {MODEL}/root-was-here", "Permission denied"),
        (f"mkdir {ROOT}/models/root-was-here", "Permission denied"),
        # the config export is mounted (and exported) read-only
        (f"echo x >> {ROOT}/config/webui.yaml", "Read-only file system"),
        (f"touch {ROOT}/config/root-was-here", "Read-only file system"),
    ],
)
def test_root_on_the_client_cannot_change_model_or_config(server, client, cmd, message):
    before = server.check_output(f"cd {ROOT} && find models config -printf '%p %s %T@\\n' | LC_ALL=C sort")
    res = client.run(cmd)
    assert res.rc != 0 and message in res.stderr, f"rc={res.rc} {res.stderr}"
    after = server.check_output(f"cd {ROOT} && find models config -printf '%p %s %T@\\n' | LC_ALL=C sort")
    assert after == before
