"""The Serve application. The only module that imports ray.serve."""

from __future__ import annotations

from ray import serve
from ray.serve import Application

from actors import dispatcher
from actors.broadcaster import broadcaster
from actors.metrics_hub import metrics_hub
from config.loader import load_settings
from config.settings import Settings
from serve import gateway

APP_NAME = "studio-farm"


@serve.deployment(name="Api")
@serve.ingress()
class Api:
    """Stateless FastAPI ingress; the app is built on the replica, after `__init__`."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def __serve_build_asgi_app__(self):
        from serve.app import create_app
        from serve.ray_link import RayLink

        return create_app(self.settings, RayLink(), behind_serve_proxy=True)


def build_app(settings: Settings) -> Application:
    return Api.options(
        num_replicas=settings.api_replicas,
        max_ongoing_requests=settings.api_max_ongoing_requests,
        ray_actor_options={"num_cpus": settings.api_replica_cpus},
    ).bind(settings)


def launch_farm(settings: Settings):
    """The cluster's long-lived parts beside the Api: upload gateway, metrics hub,
    broadcaster and dispatcher. The one start path of `farm up` (`start`) and of `serve
    deploy` (`app_from_env`), so neither can start a backend without a farm. Returns the
    gateway's handle without waiting for it to serve."""
    upload_gateway = gateway.launch_gateway(settings)  # the byte routes' server
    metrics_hub()
    broadcaster()
    dispatcher.ensure_dispatcher(settings)
    return upload_gateway


def app_from_env(args: dict[str, str] | None = None) -> Application:
    """Application builder for `serve deploy config/serve.yaml`: settings come from FARM_*."""
    settings = load_settings(**(args or {}))
    launch_farm(settings)
    return build_app(settings)


def start(settings: Settings) -> None:
    """Start Serve's HTTP proxy on the configured address and deploy the application,
    with everything `launch_farm` starts beside it (docs/assets.md, "Where bytes go")."""
    upload_gateway = launch_farm(settings)
    serve.start(http_options={"host": settings.api_host, "port": settings.api_port})
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
    gateway.wait_gateway(upload_gateway)


def stop_app() -> None:
    serve.delete(APP_NAME)
    dispatcher.stop_dispatcher()
    gateway.stop_gateway()
