"""``python -m qvc_webui`` / ``qvc-webui``: load config, set up logging, run uvicorn."""
from __future__ import annotations

import argparse
import os
import sys

from . import __version__


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    ap = argparse.ArgumentParser(prog="qvc-webui", description="Qwen3-VL WebUI / OpenAI-compatible API")
    ap.add_argument("--config", help="YAML config (default: $QVC_WEBUI_CONFIG or /etc/qvc-webui/config.yaml)")
    ap.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    ap.add_argument("--version", action="version", version=__version__)
    args = ap.parse_args(argv)

    from .config import ConfigError, apply_hf_environment, load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"qvc-webui: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print(settings.model_dump_json(indent=2))
        return 0
    apply_hf_environment(settings)

    import uvicorn

    from .app import create_app
    from .logging_setup import setup_logging
    from .metrics import Metrics  # noqa: F401  (import cost before serving)

    app = create_app(settings, freeze_gc=True)
    metrics = app.state.metrics if hasattr(app, "state") else None
    setup_logging(settings.log_level, settings.log_dir, settings.instance_id,
                  {"instance": settings.instance_id, "version": settings.version_label},
                  settings.log_queue_size,
                  on_drop=(lambda sink: metrics.log_dropped.labels(sink).inc()) if metrics else None)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=30, lifespan="on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
