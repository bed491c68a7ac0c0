"""`farm up`: embedded services, Ray, and the Serve application, stopped together."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from config.settings import Settings
from pipelines.embedded import EmbeddedServices
from pipelines.farm.control.ports import FARM_RESOURCE
from pipelines.logs import configure_logging
from serve.cluster_auth import prepare_local_token

log = logging.getLogger("farm.up")


def on_stop_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def resolve(settings: Settings, services: EmbeddedServices) -> Settings:
    """Start what is not configured and return settings that point at it."""
    overrides = services.start(mongo=settings.embedded_mongo, s3=settings.embedded_s3,
                               smtp=settings.embedded_smtp)
    return Settings(**(settings.model_dump() | overrides))


def up(settings: Settings) -> int:
    configure_logging(settings.log_level)
    stop = threading.Event()
    on_stop_signals(stop)
    services = EmbeddedServices(settings.data_dir.resolve())
    own_cluster = settings.ray_address is None
    # Before Ray is imported: it reads its auth variables then.
    token_file = prepare_local_token(settings.data_dir) if own_cluster else None
    import ray

    mail = (f"{settings.mail_dir.resolve()} (embedded server: every message is a file here)"
            if settings.embedded_smtp else f"{settings.smtp_host}:{settings.smtp_port}")
    try:
        settings = resolve(settings, services)
        slots = settings.farm_local_slots if own_cluster else 0
        context = ray.init(
            address=settings.ray_address or "local",
            namespace="studio-farm",
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=settings.ray_dashboard_port,
            logging_level=logging.WARNING,
            # This machine is a farm node too, unless told otherwise (FARM_LOCAL_SLOTS=0).
            **({"resources": {FARM_RESOURCE: slots}} if slots > 0 else {}),
        )
        on_stop_signals(stop)  # ray.init installs its own SIGTERM handler; ours wins
        from serve import deployments  # imports ray.serve, only needed here

        deployments.start(settings)
        dashboard = getattr(context, "dashboard_url", "") or ""
        print(_banner(settings, f"http://{dashboard}", ray.get_runtime_context().gcs_address,
                      token_file, ray.nodes(), mail), flush=True)
        stop.wait()
        print("stopping…", file=sys.stderr, flush=True)
        return 0
    finally:
        try:
            _stop_ray(own_cluster=own_cluster)
        finally:
            services.stop()
            print("Studio Farm stopped.", file=sys.stderr, flush=True)


def _banner(settings: Settings, dashboard: str, cluster: str, token_file: Path | None,
            nodes: list[dict], mail: str) -> str:
    base = f"http://{settings.api_host}:{settings.api_port}"
    farm = [n for n in nodes if n.get("Alive") and n.get("Resources", {}).get(FARM_RESOURCE)]
    slots = sum(n["Resources"][FARM_RESOURCE] for n in farm)
    token = f" --token-file {token_file}" if token_file else ""
    return (f"Studio Farm is up.\n  API:            {base}/api/v1\n"
            f"  Docs:           {base}/docs\n  Ready:          {base}/ready\n"
            f"  Uploads:        {settings.upload_url}/api/v1 (file bytes)\n"
            f"  Live events:    {_ws(settings.upload_url)}/api/v1/ws (large rooms; also "
            f"{_ws(base)}/api/v1/ws)\n"
            f"  Ray dashboard:  {dashboard}\n  Data:           {settings.data_dir}\n"
            f"  Mail:           {mail}\n"
            f"  Farm:           {len(farm)} node(s), {slots:g} slot(s)"
            f"{'' if farm else ' (nothing renders until a node joins)'}\n"
            f"  Cluster:        {cluster}\n"
            f"  Token file:     {token_file or 'none (RAY_AUTH_TOKEN or auth disabled)'}\n"
            f"  Join a node:    farm join {cluster}{token} --slots N\n"
            "Ctrl-C stops everything.")


def _ws(url: str) -> str:
    return "ws" + url.removeprefix("http") if url.startswith("http") else url


def _stop_ray(own_cluster: bool) -> None:
    import ray

    if not ray.is_initialized():
        return
    if not own_cluster:
        # A shared cluster outlives us: take our application off it, leave the rest.
        from serve import deployments

        deployments.stop_app()
    else:
        # A cluster we started goes as a whole; Serve's state lived in it. Tasks still
        # running are stopped first (their processes would outlive the node) and are
        # requeued, uncharged, by the next start's dispatcher.
        from actors import dispatcher
        from actors.node_agent import stop_agents

        dispatcher.stop_dispatcher()
        stop_agents()
    ray.shutdown()
