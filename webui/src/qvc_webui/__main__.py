"""``python -m qvc_webui``: load config, set up JSON logging, serve one instance with uvicorn."""
from __future__ import annotations

import argparse
import os
import sys

from . import __version__


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    ap = argparse.ArgumentParser(prog="qvc-webui", description="Qwen3-VL instance: vLLM OpenAI server + UI")
    ap.add_argument("--config", help="YAML config (default: $QVC_WEBUI_CONFIG or /etc/qvc-webui/config.yaml)")
    ap.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    ap.add_argument("--print-vllm-args", action="store_true", help="print vLLM's arguments and exit")
    ap.add_argument("--version", action="version", version=__version__)
    args = ap.parse_args(argv)

    from .config import ConfigError, apply_environment, load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"qvc-webui: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print(settings.model_dump_json(indent=2))
        return 0
    if args.print_vllm_args:
        print(" ".join(settings.vllm_args(None if settings.device == "auto" else settings.device)))
        return 0
    apply_environment(settings)
    for var in ("HOME", "XDG_CACHE_HOME"):  # the image points them at /tmp: any container uid can write
        if os.environ.get(var, "").startswith("/tmp/"):
            os.makedirs(os.environ[var], exist_ok=True)

    from .logging_setup import setup_logging

    setup_logging(settings.log_level, settings.log_dir, settings.instance_id,
                  {"instance": settings.instance_id, "version": settings.version_label},
                  settings.log_queue_size)
    if settings.engine == "sim":
        from pathlib import Path

        sim_dir = Path(__file__).resolve().parents[2] / "sim"  # a source checkout: webui/sim
        if sim_dir.is_dir():
            sys.path.insert(0, str(sim_dir))
        try:
            from qvc_sim import create_sim_app  # the test double (webui/sim), absent from product images
        except ImportError:
            print("qvc-webui: engine 'sim' is a test double (webui/sim/qvc_sim.py); it is not on "
                  "PYTHONPATH here", file=sys.stderr)
            return 2
        app = create_sim_app(settings)
    else:
        from .server import Instance

        app = Instance(settings)

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                                           access_log=False, timeout_graceful_shutdown=30, lifespan="on"))
    if hasattr(app, "uvicorn_server"):
        app.uvicorn_server = server
    server.run()
    # vLLM asks the server to exit when its engine died: exit non-zero so Docker restarts the instance
    dead = getattr(app, "state", "") == "dead" or getattr(getattr(app, "engine_client", None), "errored", False)
    return 3 if dead else 0


if __name__ == "__main__":
    sys.exit(main())
