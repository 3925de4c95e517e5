"""nginx_lb alone: TLS, API keys, basic auth, stub_status, config in place."""

testinfra_hosts = ["ansible://qvc-cl-lbonly"]


def curl(host, *args):
    return host.run("curl -sk -o /dev/null -w '%{http_code}' --max-time 5 " + " ".join(args)).stdout.strip()


def test_nginx_running_and_config_valid(host):
    assert host.service("nginx").is_running
    assert host.service("nginx").is_enabled
    assert host.run("nginx -t").rc == 0
    conf = host.file("/etc/nginx/conf.d/qvc-lb.conf")
    assert conf.mode == 0o600
    for backend in ("10.99.0.11:8001", "10.99.0.11:8002", "10.99.0.12:8001"):
        assert conf.content_string.count(f"server {backend} ") == 2


def test_no_backup_files_left(host):
    assert host.run("ls /etc/nginx/*~ /etc/nginx/conf.d/*~ 2>/dev/null").stdout == ""


def test_health_and_redirect(host):
    assert curl(host, "http://127.0.0.1/healthz") == "200"
    assert curl(host, "http://127.0.0.1/") == "301"
    assert curl(host, "http://127.0.0.1:8090/stub_status") == "200"


def test_api_key_and_basic_auth(host):
    assert curl(host, "https://127.0.0.1/v1/models") == "401"
    # right key: passes auth and is proxied (the backends are fake: whatever answers, not our 401)
    assert curl(host, "-H 'Authorization: Bearer ci-token-0123456789abcdef'", "https://127.0.0.1/v1/models") != "401"
    assert '"api_client":"ci"' in host.file("/var/log/nginx/access.log").content_string
    assert curl(host, "https://127.0.0.1/") == "401"
    assert curl(host, "-u ops:secret-ops", "https://127.0.0.1/") != "401"
    assert curl(host, "-u ops:wrong", "https://127.0.0.1/") == "401"


def test_server_tokens_off(host):
    out = host.run("curl -sI http://127.0.0.1/healthz").stdout
    assert "Server: nginx\r" in out


def _get(host, *args):
    """Status line, headers and body of one request (curl -i)."""
    out = host.run("curl -sk -i --max-time 20 " + " ".join(args)).stdout
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    return head.lower(), body  # HTTP/2: header names are lower case


def test_lb_errors_are_openai_json(host):
    import json

    # the LB's own 401 (API key): JSON with a Bearer challenge
    head, body = _get(host, "https://127.0.0.1/v1/models")
    assert " 401" in head.splitlines()[0] and "www-authenticate: bearer" in head
    assert json.loads(body)["error"]["code"] == "invalid_api_key"
    # the UI keeps nginx's basic-auth challenge (a browser login prompt)
    head, _ = _get(host, "https://127.0.0.1/")
    assert "www-authenticate: basic" in head
    # the per-key rate limit (1 r/s, burst 1 in this scenario): the LB's 429 is JSON + Retry-After
    # (the fake backends' addresses are answered by whatever the test network does; not checked)
    out = host.run("for i in 1 2 3 4 5; do curl -sk -i --max-time 5 -H 'Authorization: Bearer "
                   "ci-token-0123456789abcdef' https://127.0.0.1/v1/models; echo '=====' ; done").stdout
    limited = [r for r in out.replace("\r\n", "\n").split("=====") if r.strip().startswith("HTTP/2 429")]
    assert limited, out[:2000]
    head, _, body = limited[0].strip().partition("\n\n")
    assert "retry-after: 1" in head.lower() and "application/json" in head.lower()
    assert json.loads(body)["error"]["code"] == "rate_limited"
    # body over client_max_body_size: 413 JSON
    head, body = _get(host, "-H 'Authorization: Bearer ci-token-0123456789abcdef'",
                      "-H 'Content-Type: application/json'", "-d x -H 'Content-Length: 999999999'",
                      "https://127.0.0.1/v1/chat/completions")
    assert " 413" in head.splitlines()[0], head
    assert json.loads(body)["error"]["code"] == "body_too_large"
