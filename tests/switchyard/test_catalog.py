"""The catalog loader: any file gives a Catalog or a ConfigError naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchyard.catalog import Catalog
from switchyard.errors import ConfigError

VALID = {"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "max_concurrency": 4}},
         "models": [{"id": "m1", "provider": "p", "usd_per_mtok_input": 0.1, "context_length": 4096}]}

_yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=10)

# (path into the catalog, the field an error must name)
_FIELDS = [(("providers",), "providers"), (("providers", "p"), "providers"),
           (("providers", "p", "kind"), "providers.p.kind"),
           (("providers", "p", "max_concurrency"), "providers.p.max_concurrency"),
           (("providers", "p", "options"), "providers.p.options"),
           (("models",), "models"), (("models", 0), "models"), (("models", 0, "id"), "models.0.id"),
           (("models", 0, "provider"), "models"), (("models", 0, "usd_per_mtok_input"), "models.0.usd_per_mtok_input"),
           (("models", 0, "context_length"), "models.0.context_length"), (("extra",), "extra")]


def _mutated(path: tuple[str | int, ...], value: object) -> dict[str, object]:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data  # type: ignore[no-any-return]


def _load(tmp: Path, raw: bytes) -> Catalog | ConfigError:
    path = tmp / "catalog.yaml"
    path.write_bytes(raw)
    try:
        return Catalog.load(path)
    except ConfigError as e:  # anything else fails the test: a raw traceback
        assert str(path) in str(e), e
        return e


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(_FIELDS), _yaml_values)
def test_a_wrong_value_anywhere_names_file_and_field(tmp_path: Path, where: tuple[tuple[str | int, ...], str],
                                                     value: object) -> None:
    path, field = where
    res = _load(tmp_path, yaml.safe_dump(_mutated(path, value)).encode())
    if isinstance(res, ConfigError):
        assert field in str(res) or (field == "models" and "provider" in str(res)), res


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_never_raise_a_traceback(tmp_path: Path, raw: bytes) -> None:
    _load(tmp_path, raw)


@pytest.mark.parametrize("raw", [
    b"\xff\xfe providers: {}",                        # not UTF-8
    b"models: " + b"[" * 5000 + b"]" * 5000,            # deep nesting
    b"models: &a [*a]",                                 # a recursive alias
    b"providers: {p: {kind: openai}}\nmodels:\n  - {id: m, provider: p}\n  - {id: m, provider: p}\n",
    b"a: " + b"x" * 2_000_000,                          # a huge line
    b"!!python/object/apply:os.system ['true']",      # code execution is refused
])
def test_hostile_files_give_a_config_error(tmp_path: Path, raw: bytes) -> None:
    assert isinstance(_load(tmp_path, raw), ConfigError)


def test_duplicate_model_ids_name_the_field(tmp_path: Path) -> None:
    raw = b"providers: {p: {kind: openai}}\nmodels:\n  - {id: m, provider: p}\n  - {id: m, provider: p}\n"
    err = _load(tmp_path, raw)
    assert isinstance(err, ConfigError) and "appears twice" in str(err)


def test_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SWITCHYARD_CATALOG_PATH"):
        Catalog.load(tmp_path / "nope.yaml")
