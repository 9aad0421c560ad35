"""Run the console: uvicorn over HTTPS only (no plain HTTP listener), housekeeping every few seconds."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path

import uvicorn

from ..errors import ConfigError
from .app import create_app
from .config import ConsoleConfig
from .service import Console

log = logging.getLogger(__name__)
HOUSEKEEPING_S = 5.0


def _check_files(cfg: ConsoleConfig) -> None:
    if not cfg.units:
        raise ConfigError("the console config lists no unit",
                          fix="add a [[units]] table with the unit's id and the public key `appliance keys show` prints")
    for name in ("tls_cert", "tls_key"):
        path = Path(getattr(cfg.console, name))
        if not path.is_file():
            raise ConfigError(f"[console] {name} {path} is missing",
                              fix="create the console's HTTPS certificate with deploy/make-van-certs.sh "
                                  "(<console>-https.crt/.key) and set [console] tls_cert and tls_key")
    for name in ("ca_file", "cert_file", "key_file"):
        path = Path(getattr(cfg.mqtt, name))
        if not path.is_file():
            raise ConfigError(f"[mqtt] {name} {path} is missing",
                              fix="copy the console's MQTT certificate from deploy/make-van-certs.sh")


async def _housekeeping(console: Console) -> None:
    while True:
        await asyncio.sleep(HOUSEKEEPING_S)
        forgotten = await asyncio.to_thread(console.housekeeping)
        if forgotten:
            log.info("forgot the images of %d alerts past retention", forgotten)


def uvicorn_config(console: Console, port: int | None = None) -> uvicorn.Config:
    """The uvicorn settings: TLS 1.2+, the console's certificate, one worker, no access log of URLs."""
    c = console.cfg.console

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        console.hub.attach(asyncio.get_running_loop())
        console.start()
        task = asyncio.create_task(_housekeeping(console))
        try:
            yield
        finally:
            task.cancel()
            console.close()

    return uvicorn.Config(create_app(console, lifespan), host=c.listen_host, port=port or c.listen_port,
                          ssl_certfile=c.tls_cert, ssl_keyfile=c.tls_key, ssl_version=ssl.PROTOCOL_TLS_SERVER,
                          ssl_ciphers="ECDHE+AESGCM:ECDHE+CHACHA20", log_level="warning", access_log=False,
                          lifespan="on", timeout_graceful_shutdown=2)


def serve(cfg: ConsoleConfig) -> None:
    """Run the console until SIGINT/SIGTERM."""
    _check_files(cfg)
    console = Console.build(cfg)
    uvicorn.Server(uvicorn_config(console)).run()
