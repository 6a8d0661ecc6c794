"""Local dev server: every function target of main.py under /<target> on one port, plus /health."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import functions_framework
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from shared.config import project_dir

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def _not_found(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    return Response('{"code":"AD004","error":"not_found","message":"no such function"}', status=404,
                    content_type="application/json")(environ, start_response)


class _RootPath:
    """Mounted apps see an empty PATH_INFO for `/<target>`; Flask would answer 308 without this."""

    def __init__(self, app: WSGIApplication):
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not environ.get("PATH_INFO"):
            environ["PATH_INFO"] = "/"
        return self.app(environ, start_response)


def build_app() -> DispatcherMiddleware:
    import importlib.util

    source = project_dir() / "main.py"
    spec = importlib.util.spec_from_file_location("autodoctor_main_targets", source)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mounts: dict[str, WSGIApplication] = {
        f"/{target}": _RootPath(functions_framework.create_app(target=target, source=str(source)))
        for target in module.TARGETS
    }
    return DispatcherMiddleware(_not_found, mounts)


def serve(host: str, port: int, schedules_url: str | None = None) -> None:
    """Serves until interrupted; with `schedules_url`, runs the schedules on that database meanwhile
    (shared/dev/schedules.py) and stops them with the server."""
    from werkzeug.serving import run_simple

    app = build_app()
    scheduler = None
    if schedules_url:
        from shared.dev.schedules import Scheduler

        scheduler = Scheduler(schedules_url, app)
        scheduler.start()
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        if scheduler is not None:
            scheduler.stop()
