from __future__ import annotations

import pytest

from hubforge.errors import SpecError
from hubforge.spec import available_specs, load_spec


def test_shipped_specs_validate():
    names = available_specs()
    assert "all-minilm-l6-v2" in names
    for name in names:
        spec = load_spec(name)
        assert spec.id == name


def test_digest_is_stable_and_sensitive():
    a, b = load_spec("all-minilm-l6-v2"), load_spec("all-minilm-l6-v2")
    assert a.digest() == b.digest()
    changed = a.model_copy(update={"max_length": 256})
    assert changed.digest() != a.digest()


def test_yaml_syntax_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("id: x\nsource: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(str(path))


def test_spec_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(str(path))
