"""Settings come from PING_* variables, are validated, and are all documented."""

import ast
import inspect
import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.conftest import REPO

from ping import settings as settings_module
from ping.settings import Settings

pytestmark = pytest.mark.unit


def test_defaults_serve_the_bundled_model_on_9696() -> None:
    settings = Settings()

    assert settings.port == 9696
    assert settings.model_dir == Path("models/iris")
    assert settings.allow_version_mismatch is False


def test_environment_variables_with_prefix_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PING_PORT", "8081")
    monkeypatch.setenv("PING_ALLOW_VERSION_MISMATCH", "true")
    monkeypatch.setenv("PING_MODEL_DIR", "/srv/model")

    settings = Settings()

    assert (settings.port, settings.allow_version_mismatch) == (8081, True)
    assert settings.model_dir == Path("/srv/model")


@pytest.mark.parametrize(
    ("name", "value"),
    [("PING_PORT", "0"), ("PING_PORT", "http"), ("PING_LOG_LEVEL", "loud"), ("PING_MAX_ROWS", "0")],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError):
        Settings()


def field_docstrings() -> dict[str, str]:
    """Each Settings field's attribute docstring (the string right under it), read from
    the source as pydantic's ``use_attribute_docstrings`` would, which Settings leaves off."""
    tree = ast.parse(inspect.getsource(settings_module))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    docs = {}
    for field, after in zip(cls.body, cls.body[1:], strict=False):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[field.target.id] = inspect.cleandoc(after.value.value)
    return docs


def test_every_setting_is_documented_and_in_the_readme_config_table() -> None:
    readme = (REPO / "README.md").read_text()
    table = dict(re.findall(r"^\| `(PING_[A-Z_]+)` \| [^|]+ \| (.*) \|$", readme, re.MULTILINE))
    docs = field_docstrings()

    for name in Settings.model_fields:
        assert docs.get(name), f"{name} has no docstring"
        assert table.get(f"PING_{name.upper()}"), f"PING_{name.upper()} missing from README"
    assert len(table) == len(Settings.model_fields)


def test_trusted_types_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PING_TRUSTED_TYPES", "mylib.Clip, mylib.text.Tokenizer,")

    assert Settings().trusted_types == ("mylib.Clip", "mylib.text.Tokenizer")
    assert Settings().allow_pickle is False
