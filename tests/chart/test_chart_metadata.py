"""Chart.yaml as Artifact Hub and ct expect it, the LICENSE it names, what `helm package` ships."""

from __future__ import annotations

import subprocess
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helm import CHART_DIR, REPO, find_helm

pytestmark = pytest.mark.chart

CHART: dict[str, Any] = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
VALUES: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
ANNOTATIONS: dict[str, str] = CHART["annotations"]
# Artifact Hub's change kinds (https://artifacthub.io/docs/topics/annotations/helm/).
CHANGE_KINDS = {"added", "changed", "deprecated", "removed", "fixed", "security"}


def image_ref(image: dict[str, str], tag: str) -> str:
    ref = f"{image['repository']}:{tag}"
    return f"{ref}@{image['digest']}" if image.get("digest") else ref


def test_it_has_home_sources_icon_and_a_maintainer_to_contact() -> None:
    assert CHART["home"].startswith("https://")
    assert CHART["sources"]
    assert all(source.startswith("https://") for source in CHART["sources"])
    assert CHART["icon"].startswith("https://")
    assert CHART["icon"].endswith("/charts/ping/icon.svg")
    assert (CHART_DIR / "icon.svg").read_text().startswith("<svg")
    for maintainer in CHART["maintainers"]:
        assert maintainer.get("email") or maintainer.get("url"), maintainer


def test_artifacthub_images_are_every_image_values_yaml_pins() -> None:
    listed = {i["name"]: i["image"] for i in yaml.safe_load(ANNOTATIONS["artifacthub.io/images"])}
    uri = VALUES["model"]["uri"]
    assert listed == {
        "ping": image_ref(VALUES["image"], VALUES["image"]["tag"] or CHART["appVersion"]),
        "aws-cli": image_ref(uri["s3Image"], uri["s3Image"]["tag"]),
        "google-cloud-cli": image_ref(uri["gcsImage"], uri["gcsImage"]["tag"]),
    }


def test_the_license_is_the_one_pyproject_and_the_image_name() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert ANNOTATIONS["artifacthub.io/license"] == pyproject["project"]["license"] == "Apache-2.0"
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in (REPO / "Dockerfile").read_text()


def test_the_repository_has_the_full_apache_2_license_text() -> None:
    text = (REPO / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    for section in ("1. Definitions.", "4. Redistribution.", "9. Accepting Warranty"):
        assert section in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(text) > 11000


def test_artifacthub_changes_are_well_formed() -> None:
    changes = yaml.safe_load(ANNOTATIONS["artifacthub.io/changes"])
    assert changes
    for change in changes:
        assert set(change) == {"kind", "description"}
        assert change["kind"] in CHANGE_KINDS


def test_ct_checks_the_version_increment() -> None:
    ct = yaml.safe_load((REPO / "ct.yaml").read_text())
    assert ct["check-version-increment"] is True
    assert ct["target-branch"] == "main"


def test_the_package_ships_the_platform_presets_but_not_the_ci_scenarios(tmp_path: Path) -> None:
    subprocess.run(
        [find_helm(), "package", str(CHART_DIR), "--destination", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (package,) = tmp_path.glob("ping-*.tgz")
    with tarfile.open(package) as tar:
        names = set(tar.getnames())
    presets = {f"ping/values/{p.name}" for p in (CHART_DIR / "values").glob("*.yaml")}
    assert presets <= names, "values/ is packaged on purpose (see .helmignore)"
    assert not [n for n in names if n.startswith("ping/ci/")]
    assert {
        "ping/Chart.yaml",
        "ping/values.yaml",
        "ping/values.schema.json",
        "ping/README.md",
    } <= names
