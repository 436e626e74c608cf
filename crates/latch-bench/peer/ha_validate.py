"""Home Assistant's own access-token validation, timed for `cargo xtask bench --peer
home-assistant`.

Runs inside the virtual environment the bench makes (homeassistant==2024.3.3). Loads the
`.storage` directory latch wrote into Home Assistant's AuthManager, exactly as Home
Assistant starts it (its registries first, then `auth_manager_from_config` with the `homeassistant` provider and the
`totp` module), checks that every access token latch minted validates there, then times
`AuthManager.async_validate_access_token` on one thread:

- first: the tokens in turn, more of them than Home Assistant's JWT caches hold (16 each,
  `homeassistant/auth/jwt_wrapper.py`), so every call decodes and verifies;
- repeat: one token again and again, so Home Assistant's caches answer what they can
  (the unverified decode and the payload's JSON; the signature and claims are checked on
  every call).

Usage: python ha_validate.py CONFIG_DIR TOKENS_JSON SECONDS
TOKENS_JSON is {"tokens": [...], "repeat": "..."}. Prints one JSON line:
{"version", "first_ops", "repeat_ops", "tokens", "jwt_cache_size"}.
"""

import asyncio
import json
import sys
import time


def rate(call, seconds):
    """Calls per second of `call(i)` over about `seconds`, after a warm-up."""
    batch = 1000
    for i in range(batch):
        call(i)
    n = 0
    start = time.perf_counter()
    while True:
        for i in range(n, n + batch):
            call(i)
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


async def main(config_dir, tokens_path, seconds):
    from homeassistant.auth import auth_manager_from_config, jwt_wrapper
    from homeassistant.const import __version__
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers import area_registry, device_registry, entity_registry

    with open(tokens_path, encoding="utf-8") as f:
        spec = json.load(f)
    tokens = spec["tokens"]
    repeat = spec["repeat"]
    if len(tokens) <= 4 * jwt_wrapper.JWT_TOKEN_CACHE_SIZE:
        raise SystemExit(
            f"{len(tokens)} tokens do not defeat a {jwt_wrapper.JWT_TOKEN_CACHE_SIZE}-entry cache"
        )

    hass = HomeAssistant(config_dir)
    # As Home Assistant starts (bootstrap.async_load_base_functionality): the registries
    # the auth store's permission lookup reads, then the auth manager.
    for registry in (area_registry, device_registry, entity_registry):
        await registry.async_load(hass)
    manager = await auth_manager_from_config(hass, [{"type": "homeassistant"}], [{"type": "totp"}])
    validate = manager.async_validate_access_token

    for token in tokens + [repeat]:
        if validate(token) is None:
            raise SystemExit("Home Assistant refuses an access token latch minted")
    if validate(repeat[:-2] + ("AA" if not repeat.endswith("AA") else "BA")) is not None:
        raise SystemExit("Home Assistant accepts a token with a damaged signature")

    count = len(tokens)
    first_ops = rate(lambda i: validate(tokens[i % count]), seconds)
    repeat_ops = rate(lambda _i: validate(repeat), seconds)
    print(
        json.dumps(
            {
                "version": __version__,
                "first_ops": first_ops,
                "repeat_ops": repeat_ops,
                "tokens": count,
                "jwt_cache_size": jwt_wrapper.JWT_TOKEN_CACHE_SIZE,
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
