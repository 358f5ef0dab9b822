"""The HTML pages' templates (jinja2, autoescaped): one base with the one stylesheet, the report page and the
comparison page extend it."""

from __future__ import annotations

from typing import Any

import jinja2

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("tfperf.render", "templates"),
                          autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)


def render(name: str, **values: Any) -> str:
    return _ENV.get_template(name).render(**values)
