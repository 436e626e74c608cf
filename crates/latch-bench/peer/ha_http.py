"""Home Assistant's own HTTP server for `cargo xtask bench --peer home-assistant`.

Started by latch-bench with the Python of the peer's virtual environment (Home
Assistant 2024.3.3). It runs Home Assistant's real `http` and `auth` components in this
process (the `homeassistant` provider, no MFA, nothing else loaded) on a free loopback
port, creates a user and signs it in through the HTTP API as an app would (login flow,
then the authorization code for tokens), prints one JSON line
`{"port": …, "refresh_token": …, "client_id": …}` and serves until its standard input
closes. latch-bench then sends it the same refresh-grant load as latch-http.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import tempfile

import aiohttp

from homeassistant.core import HomeAssistant  # first: the others import it
from homeassistant import config_entries, loader  # isort: skip
from homeassistant.auth import auth_manager_from_config  # isort: skip
from homeassistant.components import http as _http  # noqa: F401  (an import cycle)
from homeassistant.helpers import (  # isort: skip
    area_registry,
    device_registry,
    entity_registry,
    floor_registry,
    issue_registry,
    label_registry,
    translation,
)
from homeassistant.setup import async_setup_component

CLIENT_ID = "http://127.0.0.1:8123/"
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main() -> None:
    hass = HomeAssistant(tempfile.mkdtemp(prefix="ha-bench-"))
    hass.config.skip_pip = True
    loader.async_setup(hass)
    translation.async_setup(hass)
    hass.config_entries = config_entries.ConfigEntries(hass, {})
    await hass.config_entries.async_initialize()
    for registry in (
        area_registry,
        device_registry,
        entity_registry,
        floor_registry,
        issue_registry,
        label_registry,
    ):
        await registry.async_load(hass)
    hass.auth = await auth_manager_from_config(hass, [{"type": "homeassistant"}], [])
    port = free_port()
    http = {"server_host": ["127.0.0.1"], "server_port": port}
    assert await async_setup_component(hass, "http", {"http": http})
    assert await async_setup_component(hass, "auth", {})
    await hass.async_start()
    await hass.async_block_till_done()

    provider = hass.auth.get_auth_provider("homeassistant", None)
    user = await hass.auth.async_create_user("Bench", group_ids=["system-admin"])
    await provider.async_add_auth("bench", PASSWORD)
    credential = await provider.async_get_or_create_credentials({"username": "bench"})
    await hass.auth.async_link_user(user, credential)

    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        start = {"client_id": CLIENT_ID, "handler": ["homeassistant", None], "redirect_uri": CLIENT_ID}
        async with session.post(f"{base}/auth/login_flow", json=start) as resp:
            flow = await resp.json()
        step = {"client_id": CLIENT_ID, "username": "bench", "password": PASSWORD}
        async with session.post(f"{base}/auth/login_flow/{flow['flow_id']}", json=step) as resp:
            entry = await resp.json()
        grant = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": entry["result"]}
        async with session.post(f"{base}/auth/token", data=grant) as resp:
            tokens = await resp.json()

    print(
        json.dumps({"port": port, "refresh_token": tokens["refresh_token"], "client_id": CLIENT_ID}),
        flush=True,
    )
    # Serve until latch-bench closes our standard input.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await hass.async_stop()


if __name__ == "__main__":
    asyncio.run(main())
