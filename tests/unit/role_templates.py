"""A Jinja2 environment that renders a role's templates like Ansible's template module,
with the core and qvc filters, for the template unit tests."""
from __future__ import annotations

from pathlib import Path

import jinja2
from ansible.plugins.filter.core import FilterModule as CoreFilters

from qvc import FilterModule as QvcFilters

ROLES = Path(__file__).resolve().parents[2] / "roles"


def template_env(role: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROLES / role / "templates")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,  # Ansible's template module defaults
        keep_trailing_newline=True,
    )
    # Ansible 2.19's `default` expects Ansible's own Undefined: keep Jinja's.
    env.filters.update({k: v for k, v in CoreFilters().filters().items() if k not in ("default", "d")})
    env.filters.update(QvcFilters().filters())
    return env
