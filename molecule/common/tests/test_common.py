"""Behaviour of the common role on a converged test host."""
import json


def test_extra_ca_is_trusted_by_the_system_store(host):
    # Python's default context reads the system bundle that update-ca-certificates rebuilt.
    subjects = host.check_output(
        "python3 -c \"import json,ssl; c=ssl.create_default_context(); "
        "print(json.dumps([dict(x[0] for x in s['subject']) for s in c.get_ca_certs()]))\""
    )
    assert {"commonName": "qvc test CA", "organizationName": "qvc molecule"} in json.loads(subjects)


def test_apt_proxy_setting_in_effect(host):
    dump = host.check_output("apt-config dump Acquire::http::Proxy")
    assert 'Acquire::http::Proxy "DIRECT";' in dump


def test_apt_uses_the_mirror_and_still_works(host):
    sources = host.file("/etc/apt/sources.list").content_string
    assert "deb http://deb.debian.org/debian bookworm main contrib non-free-firmware" in sources
    assert "bookworm-updates" in sources
    policy = host.check_output("apt-cache policy jq")
    assert "Installed: (none)" not in policy


def test_extra_package_usable(host):
    assert host.check_output("echo '{\"a\": 1}' | jq .a") == "1"


def test_waited_for_cloud_init(host):
    # The stand-in cloud-init (prepare.yml) records when `cloud-init status --wait` returned.
    assert host.file("/var/tmp/qvc-cloud-init-waited").exists


def test_needrestart_lists_only(host):
    conf = host.file("/etc/needrestart/conf.d/90-qvc.conf").content_string
    assert "$nrconf{restart} = 'l';" in conf
    assert host.run("perl -c /etc/needrestart/conf.d/90-qvc.conf").rc == 0


def test_unattended_upgrades_blacklist_in_apt_config(host):
    dump = host.check_output("apt-config dump Unattended-Upgrade::Package-Blacklist")
    for pattern in ("nvidia-", "libnvidia-", "linux-modules-nvidia-", "docker-ce", "containerd"):
        assert f'Unattended-Upgrade::Package-Blacklist:: "{pattern}";' in dump, dump
