"""The nginx_lb role's templates, rendered like Ansible renders them, checked by nginx itself.

Each case renders roles/nginx_lb/templates/{nginx.conf,qvc-lb.conf}.j2 with the role's
defaults, the qvc filters and Ansible's core filters for an inventory, then runs the
controller's `nginx -t` on the result (in a temporary prefix) and asserts on the content.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jinja2
from role_templates import template_env
import pytest
import yaml

from qvc import qvc_instances

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "nginx_lb"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
MIME_TYPES = "/etc/nginx/mime.types"

needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed on the controller")


# --- inventories --------------------------------------------------------------------------

def gpus(n: int, host: str) -> list[dict]:
    return [{"uuid": f"GPU-{host}-{i:02d}", "index": i} for i in range(n)]


def inventory(spec: dict[str, dict]) -> tuple[dict, dict]:
    """spec: host -> host vars. Returns (hostvars, groups)."""
    hostvars = {h: dict(v) for h, v in spec.items()}
    hostvars["lb1"] = {"ansible_host": "10.9.0.1"}
    groups = {"gpu_nodes": list(spec), "lb": ["lb1"], "all": list(spec) + ["lb1"]}
    return hostvars, groups


ONE_BY_ONE = {"gpu1": {"ansible_host": "10.9.0.11", "nvidia_gpus": gpus(1, "gpu1")}}
THREE_BY_THREE = {f"gpu{h}": {"ansible_host": f"10.9.0.{10 + h}", "nvidia_gpus": gpus(3, f"gpu{h}")} for h in (1, 2, 3)}
MIXED = {
    "gpu1": {"ansible_host": "10.9.0.11", "nvidia_gpus": gpus(4, "gpu1")},
    "gpu2": {"ansible_host": "10.9.0.12", "webui_gpu_ids": [0, 2]},
    "gpu3": {"ansible_host": "10.9.0.13", "qvc_cluster_address": "10.8.0.13", "nvidia_gpus": gpus(1, "gpu3"),
             "webui_base_port": 9100},
    "cpu1": {"ansible_host": "10.9.0.14", "webui_cpu_instances": 2},
    "ipv6": {"ansible_host": "fd00::15", "webui_cpu_instances": 1},
}


# --- rendering ----------------------------------------------------------------------------

def _env() -> jinja2.Environment:
    return template_env("nginx_lb")


def _resolve(env: jinja2.Environment, variables: dict) -> dict:
    """Resolve templated defaults ("{{ nginx_lb_conf_dir }}/...") like Ansible's lazy templating."""
    out = dict(variables)
    for _ in range(5):
        for key, value in out.items():
            if isinstance(value, str) and "{{" in value:
                out[key] = env.from_string(value).render(**out)
    return out


def render(tmp: Path, hostvars: dict, groups: dict, **overrides) -> dict[str, str]:
    env = _env()
    variables = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    variables.update(
        hostvars=hostvars,
        groups=groups,
        inventory_hostname="lb1",
        ansible_managed="Ansible managed (unit test)",
        nginx_lb_conf_dir=str(tmp),
        nginx_lb_site_conf=str(tmp / "conf.d" / "qvc-lb.conf"),
        nginx_lb_mime_types=MIME_TYPES,
        nginx_lb_modules_include="",
        nginx_lb_pid_file=str(tmp / "nginx.pid"),
        nginx_lb_log_dir=str(tmp / "logs"),
        nginx_lb_tls_dir=str(tmp / "tls"),
        # unprivileged ports so `nginx -t` never needs root for the listen check
        nginx_lb_http_port=18080,
        nginx_lb_https_port=18443,
    )
    variables.update(overrides)
    variables = _resolve(env, variables)
    (tmp / "conf.d").mkdir(parents=True, exist_ok=True)
    (tmp / "logs").mkdir(exist_ok=True)
    out = {}
    for name, dest in (("nginx.conf.j2", tmp / "nginx.conf"), ("qvc-lb.conf.j2", tmp / "conf.d" / "qvc-lb.conf")):
        text = env.get_template(name).render(**variables)
        dest.write_text(text)
        out[name] = text
    return out


def nginx_t(tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NGINX, "-t", "-p", str(tmp), "-e", str(tmp / "logs" / "error.log"), "-c", str(tmp / "nginx.conf")],
        capture_output=True, text=True, timeout=30,
    )


def self_signed(tmp: Path) -> tuple[str, str]:
    tls = tmp / "tls"
    tls.mkdir(exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lb1",
         "-keyout", str(tls / "qvc-lb.key"), "-out", str(tls / "qvc-lb.crt")],
        check=True, capture_output=True, timeout=60,
    )
    return str(tls / "qvc-lb.crt"), str(tls / "qvc-lb.key")


def upstream_block(conf: str, name: str) -> str:
    m = re.search(r"upstream %s \{(.*?)\n\}" % re.escape(name), conf, re.S)
    assert m, f"upstream {name} missing"
    return m.group(1)


def servers(block: str) -> list[str]:
    return re.findall(r"^\s*server (\S+) ", block, re.M)


def location(conf: str, path: str) -> str:
    m = re.search(r"location %s \{(.*?)\n    \}" % re.escape(path), conf, re.S)
    assert m, f"location {path} missing"
    return m.group(1)


def expected_endpoints(hostvars: dict, groups: dict) -> list[str]:
    out = []
    for i in qvc_instances(hostvars, groups["gpu_nodes"]):
        addr = f"[{i['address']}]" if ":" in i["address"] else i["address"]
        out.append(f"{addr}:{i['port']}")
    return out


# --- cases --------------------------------------------------------------------------------

CASES = {
    "1host-1gpu": (ONE_BY_ONE, {}),
    "3hosts-3gpus": (THREE_BY_THREE, {}),
    "mixed": (MIXED, {}),
    "affinity-off": (THREE_BY_THREE, {"nginx_lb_ui_affinity": False}),
    "affinity-off-string": (MIXED, {"nginx_lb_ui_affinity": "false"}),
    "api-keys": (THREE_BY_THREE, {"nginx_lb_api_keys": {"alice": "tok-alice-0123456789abcdef", "ci": "tok-ci-0123456789abcdef"}}),
    "ui-auth": (ONE_BY_ONE, {"nginx_lb_ui_users": [{"name": "ops", "password": "x"}]}),
    "no-rate-limit": (ONE_BY_ONE, {"nginx_lb_rate_limit_enabled": "no", "nginx_lb_debug_headers": "true"}),
    "tls-provided": (MIXED, {"nginx_lb_tls_enabled": True}),
    "tls-no-redirect-ipv6": (THREE_BY_THREE, {"nginx_lb_tls_enabled": "yes", "nginx_lb_tls_redirect": "false",
                                              "nginx_lb_listen_ipv6": True}),
}


@needs_nginx
@pytest.mark.parametrize("case", list(CASES))
def test_rendered_config_passes_nginx_t(tmp_path, case):
    spec, overrides = CASES[case]
    hostvars, groups = inventory(spec)
    if str(overrides.get("nginx_lb_tls_enabled", "false")).lower() in ("true", "yes", "1"):
        cert, key = self_signed(tmp_path)
        overrides = {**overrides, "nginx_lb_tls_cert": cert, "nginx_lb_tls_key": key}
    if overrides.get("nginx_lb_ui_users"):
        (tmp_path / "qvc-ui.htpasswd").write_text("ops:{PLAIN}x\n")
    render(tmp_path, hostvars, groups, **overrides)
    res = nginx_t(tmp_path)
    assert res.returncode == 0, f"nginx -t failed for {case}:\n{res.stderr}"


@pytest.mark.parametrize("case", list(CASES))
def test_every_instance_exactly_once_per_upstream(tmp_path, case):
    spec, overrides = CASES[case]
    hostvars, groups = inventory(spec)
    conf = render(tmp_path, hostvars, groups, **overrides)["qvc-lb.conf.j2"]
    want = expected_endpoints(hostvars, groups)
    assert len(want) == len(set(want))
    for up in ("qvc_webui_api", "qvc_webui_ui"):
        got = servers(upstream_block(conf, up))
        assert sorted(got) == sorted(want), up
    # nothing hard-coded: every backend address comes from the inventory
    assert set(re.findall(r"server (\S+):\d+ max_fails", conf)) == {e.rsplit(":", 1)[0] for e in want}


def test_instance_counts_follow_the_inventory(tmp_path):
    hostvars, groups = inventory(MIXED)
    conf = render(tmp_path, hostvars, groups)["qvc-lb.conf.j2"]
    api = servers(upstream_block(conf, "qvc_webui_api"))
    # 4 discovered GPUs + 2 overridden + 1 on a cluster address/base port + 2 CPU + 1 IPv6 CPU
    assert len(api) == 10
    assert "10.8.0.13:9100" in api and "10.9.0.13:9100" not in api
    assert "[fd00::15]:8001" in api
    assert "10.9.0.12:8002" in api and "10.9.0.12:8003" not in api


def test_least_conn_only_in_api_upstream(tmp_path):
    hostvars, groups = inventory(THREE_BY_THREE)
    conf = render(tmp_path, hostvars, groups)["qvc-lb.conf.j2"]
    api, ui = upstream_block(conf, "qvc_webui_api"), upstream_block(conf, "qvc_webui_ui")
    assert "least_conn;" in api and "least_conn" not in ui
    assert conf.count("least_conn") == 1
    for block in (api, ui):
        assert re.search(r"^\s*zone \S+ \S+;", block, re.M)
        assert re.search(r"^\s*keepalive \d+;", block, re.M)
        # balancing method before keepalive (nginx requires it)
        method = "least_conn" if block is api else "hash"
        assert block.index(method) < block.index("keepalive ")
    assert all("max_fails=2 fail_timeout=10s" in line for line in api.splitlines() if "server " in line)


def test_api_location_keepalive_and_retries(tmp_path):
    hostvars, groups = inventory(ONE_BY_ONE)
    conf = render(tmp_path, hostvars, groups)["qvc-lb.conf.j2"]
    api = location(conf, "/v1/")
    assert "proxy_pass http://qvc_webui_api;" in api
    assert "proxy_http_version 1.1;" in api
    assert 'proxy_set_header Connection "";' in api
    # only "never started" failures go to another instance: no 502, no 4xx, no 500
    assert "proxy_next_upstream error timeout http_503 non_idempotent;" in api
    assert "http_502" not in conf and "http_500" not in conf and "http_4" not in conf
    assert re.search(r"proxy_next_upstream_tries \d+;", api)
    assert re.search(r"proxy_next_upstream_timeout \S+;", api)
    assert "proxy_buffering off;" in api
    assert "limit_req" not in conf  # no API keys: no rate limit by default (see defaults/main.yml)
    ui = location(conf, "/")
    assert "proxy_pass http://qvc_webui_ui;" in ui
    assert "proxy_set_header Upgrade $http_upgrade;" in ui
    assert "proxy_set_header Connection $qvc_connection_upgrade;" in ui
    assert "non_idempotent" not in ui
    assert "client_max_body_size 64m;" in conf
    assert 'location = /healthz' in conf
    assert "listen 127.0.0.1:8090;" in conf and "stub_status;" in conf
    main = render(tmp_path, hostvars, groups)["nginx.conf.j2"]
    assert "server_tokens off;" in main


def test_rate_limit_per_api_key_sized_from_the_fleet(tmp_path):
    hostvars, groups = inventory(THREE_BY_THREE)  # 9 instances
    keys = {"alice": "tok-alice-0123456789abcdef"}
    conf = render(tmp_path, hostvars, groups, nginx_lb_api_keys=keys)["qvc-lb.conf.j2"]
    assert "limit_req_zone $qvc_api_client zone=qvc_api:10m rate=180r/s;" in conf
    assert "limit_req zone=qvc_api burst=360 nodelay;" in location(conf, "/v1/")
    conf = render(tmp_path, hostvars, groups, nginx_lb_api_keys=keys, nginx_lb_rate_limit_rate="5r/s",
                  nginx_lb_rate_limit_burst=7)["qvc-lb.conf.j2"]
    assert "rate=5r/s;" in conf and "burst=7 nodelay;" in conf
    conf = render(tmp_path, hostvars, groups, nginx_lb_rate_limit_enabled=True)["qvc-lb.conf.j2"]
    assert "limit_req_zone $binary_remote_addr zone=qvc_api:10m rate=180r/s;" in conf


def test_lb_errors_are_openai_json_with_retry_after(tmp_path):
    import json

    hostvars, groups = inventory(ONE_BY_ONE)
    conf = render(tmp_path, hostvars, groups, nginx_lb_retry_after=3,
                  nginx_lb_api_keys={"a": "tok-a-0123456789abcdef"})["qvc-lb.conf.j2"]
    api = location(conf, "/v1/")
    assert "error_page 401 = @qvc_401;" in api  # not for the UI's basic auth
    # nginx: a location with its own error_page inherits none of the server's; all must be there
    for code in (413, 429, 502, 503, 504):
        assert f"error_page {code} = @qvc_{code};" in api, code
    for code in (401, 413, 429, 502, 503, 504):
        assert f"error_page {code} = @qvc_{code};" in conf
        block = re.search(r"location @qvc_%d \{(.*?)\n    \}" % code, conf, re.S).group(1)
        body = re.search(r"return %d '(.*)\\n';" % code, block).group(1)
        err = json.loads(body)["error"]
        assert set(err) == {"message", "type", "code"}
        assert ("Retry-After 3 always;" in block) is (code in (429, 502, 503, 504))
        assert "default_type application/json;" in block
    assert "proxy_intercept_errors on" not in conf  # the instances' own errors pass through


@pytest.mark.parametrize("value,enabled", [(True, True), ("true", True), ("yes", True), (False, False),
                                           ("false", False), ("False", False), ("no", False), ("0", False)])
def test_affinity_switch_uses_bool(tmp_path, value, enabled):
    hostvars, groups = inventory(THREE_BY_THREE)
    conf = render(tmp_path, hostvars, groups, nginx_lb_ui_affinity=value)["qvc-lb.conf.j2"]
    ui = upstream_block(conf, "qvc_webui_ui")
    assert ("hash $qvc_affinity consistent;" in ui) is enabled
    assert ("Set-Cookie $qvc_affinity_set_cookie" in conf) is enabled
    assert ("map $cookie_qvc_affinity $qvc_affinity" in conf) is enabled


def test_affinity_cookie_set_only_when_absent(tmp_path):
    hostvars, groups = inventory(ONE_BY_ONE)
    conf = render(tmp_path, hostvars, groups)["qvc-lb.conf.j2"]
    m = re.search(r"map \$cookie_qvc_affinity \$qvc_affinity_set_cookie \{(.*?)\n\}", conf, re.S)
    assert m
    body = m.group(1)
    # a valid cookie -> empty value (nginx then sends no header); otherwise a fresh $request_id
    assert re.search(r'"~\^\[0-9a-f\]\{32\}\$"\s+"";', body)
    assert "qvc_affinity=$request_id; Path=/;" in body
    assert "Secure" not in body


@pytest.mark.parametrize("value", ["false", "no", False, "0"])
def test_false_strings_do_not_enable_tls_or_rate_limit(tmp_path, value):
    hostvars, groups = inventory(ONE_BY_ONE)
    conf = render(tmp_path, hostvars, groups, nginx_lb_tls_enabled=value, nginx_lb_rate_limit_enabled=value,
                  nginx_lb_debug_headers=value, nginx_lb_listen_ipv6=value)["qvc-lb.conf.j2"]
    assert "ssl" not in conf
    assert "limit_req" not in conf
    assert "X-QVC-Upstream" not in conf
    assert "[::]" not in conf


def test_tls_on(tmp_path):
    hostvars, groups = inventory(ONE_BY_ONE)
    conf = render(tmp_path, hostvars, groups, nginx_lb_tls_enabled="true")["qvc-lb.conf.j2"]
    assert "listen 18443 ssl http2 default_server;" in conf
    assert f"ssl_certificate {tmp_path}/tls/qvc-lb.crt;" in conf  # self-signed location
    assert "return 301 https://$host:18443$request_uri;" in conf
    assert "; Secure" in conf  # affinity cookie only over HTTPS


def test_api_keys(tmp_path):
    hostvars, groups = inventory(ONE_BY_ONE)
    keys = {"alice": "tok-alice-0123456789abcdef", "ci": "tok-ci-0123456789abcdef"}
    conf = render(tmp_path, hostvars, groups, nginx_lb_api_keys=keys)["qvc-lb.conf.j2"]
    for name, tok in keys.items():
        assert f'"Bearer {tok}" "{name}";' in conf
    api = location(conf, "/v1/")
    assert 'if ($qvc_api_client = "")' in api and "return 401;" in api
    assert 'proxy_set_header Authorization "";' in api
    # no keys -> no check
    conf = render(tmp_path, hostvars, groups)["qvc-lb.conf.j2"]
    assert "return 401" not in conf


def test_ui_basic_auth(tmp_path):
    hostvars, groups = inventory(ONE_BY_ONE)
    conf = render(tmp_path, hostvars, groups, nginx_lb_ui_users=[{"name": "ops", "password": "x"}])["qvc-lb.conf.j2"]
    assert "auth_basic_user_file" in location(conf, "/")
    assert "auth_basic" not in location(conf, "/v1/")
    conf = render(tmp_path, hostvars, groups)["qvc-lb.conf.j2"]
    assert "auth_basic" not in conf


@needs_nginx
def test_nginx_t_rejects_a_broken_config(tmp_path):
    """The check the role relies on really catches errors (an unknown directive here)."""
    hostvars, groups = inventory(ONE_BY_ONE)
    render(tmp_path, hostvars, groups, nginx_lb_client_max_body_size="64m;\n    bogus_directive on")
    res = nginx_t(tmp_path)
    assert res.returncode != 0
    assert "bogus_directive" in res.stderr


@needs_nginx
def test_recorded_drains_render_down_and_survive_a_full_render(tmp_path):
    spec = {h: dict(v) for h, v in THREE_BY_THREE.items()}
    spec["gpu2"]["qvc_instance_drains"] = {"qvc-webui-1": "drain", "qvc-webui-2": "hold"}
    hostvars, groups = inventory(spec)
    conf = render(tmp_path, hostvars, groups)["qvc-lb.conf.j2"]
    for up in ("qvc_webui_api", "qvc_webui_ui"):
        down = re.findall(r"^\s*server (\S+) [^;]*\bdown;", upstream_block(conf, up), re.M)
        assert down == ["10.9.0.12:8002", "10.9.0.12:8003"], up
    assert nginx_t(tmp_path).returncode == 0


def test_unknown_gpus_refuse_a_partial_upstream(tmp_path):
    # gpu3 outside --limit without facts, or with a failed discovery: no partial render
    for gpu3 in ({"ansible_host": "10.9.0.13"},
                 {"ansible_host": "10.9.0.13", "nvidia_gpu_status": "error", "nvidia_gpu_message": "NVML mismatch"}):
        spec = {**THREE_BY_THREE, "gpu3": gpu3}
        hostvars, groups = inventory(spec)
        with pytest.raises(Exception, match="gpu3"):
            render(tmp_path, hostvars, groups)
