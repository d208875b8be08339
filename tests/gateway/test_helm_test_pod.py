"""The chart's `helm test` pod against the real gateway: 401 without a key, then a prediction."""

from __future__ import annotations

import pytest
from tests.chart.helm import render_chart, run_test_command

from .conftest import KEYS, VALUES, Stack, keys_text

pytestmark = pytest.mark.gateway


def model_url(stack: Stack) -> str:
    """The release's own model Service, where the test pod reads the sample (/metadata)."""
    iris = stack.pings["iris"]
    return f"http://{iris.host}:{iris.port}"


def test_the_helm_test_pod_passes_through_the_gateway_with_a_key_from_the_secret(
    stack: Stack,
) -> None:
    (pod,) = render_chart(VALUES, show_only=["templates/tests/test-predict.yaml"])
    result = run_test_command(
        pod, stack.url, secret_env={"API_KEYS": keys_text(KEYS)}, model_url=model_url(stack)
    )
    assert result.returncode == 0, result.stderr
    assert "gateway without a key: 401" in result.stdout
    assert 'seed: {"prediction":0}' in result.stdout
    assert KEYS["alice"] not in result.stdout + result.stderr


def test_the_helm_test_pod_fails_when_the_secrets_key_is_unknown(stack: Stack) -> None:
    (pod,) = render_chart(VALUES, show_only=["templates/tests/test-predict.yaml"])
    stale = keys_text({"alice": "revoked-0123456789abcdef"})
    result = run_test_command(
        pod, stack.url, secret_env={"API_KEYS": stale}, model_url=model_url(stack)
    )
    assert result.returncode != 0
    (line,) = result.stderr.splitlines()
    assert "HTTP 401" in line
