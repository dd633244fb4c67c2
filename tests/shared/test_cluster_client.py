"""How the Kubernetes client is configured from the settings (no request is made)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from shared.cloud.cluster import api_client
from shared.settings import Settings, SettingsError

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def settings(**env: str) -> Settings:
    return Settings.from_env({"GC_BUCKET_NAME": "b", "ACCESS_CONTROL": "off", **env})


def test_the_ca_of_a_gke_endpoint_comes_from_its_base64_data():
    client = api_client(
        settings(
            KUBERNETES_API_URL="https://10.0.0.1/",
            KUBERNETES_API_KEY="secret",
            KUBERNETES_CA_DATA=base64.b64encode(PEM).decode(),
        )
    )
    assert client.configuration.host == "https://10.0.0.1"
    assert Path(client.configuration.ssl_ca_cert).read_bytes() == PEM
    assert client.configuration.api_key == {"authorization": "Bearer secret"}


def test_ca_data_that_is_not_base64_is_a_settings_error():
    with pytest.raises(SettingsError, match="KUBERNETES_CA_DATA"):
        api_client(settings(KUBERNETES_API_URL="https://h", KUBERNETES_CA_DATA="not base64!"))
