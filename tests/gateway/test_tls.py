"""TLS termination in the gateway, with the certificate laid out as the TLS Secret is mounted."""

from __future__ import annotations

import ssl

import httpx
import pytest

from .conftest import KEYS, GatewayFactory

pytestmark = pytest.mark.gateway


def test_the_gateway_terminates_tls_with_the_mounted_certificate(
    gateway_factory: GatewayFactory,
) -> None:
    proxy = gateway_factory({"gateway": {"tls": {"enabled": True, "secretName": "ping-tls"}}})
    assert proxy.tls_port is not None
    trust = ssl.create_default_context(cafile=str(proxy.log_path.parent / "tls" / "gateway.pem"))
    url = f"https://127.0.0.1:{proxy.tls_port}"
    with httpx.Client(verify=trust) as client:
        response = client.post(
            f"{url}/models/forest/predict",
            json={"instances": [[5.1, 3.5, 1.4, 0.2]]},
            headers={"X-API-Key": KEYS["alice"]},
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": [0]}
        assert client.get(f"{url}/predict").status_code == 401
