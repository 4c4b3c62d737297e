"""The identity simulators' test registry agrees with the acquirer's test cards and the demo
identity, is checked when it loads, and never shows a number in an error or a repr."""

from __future__ import annotations

import json

import pytest

from devstack.merchant_cli import DEMO_ID_NUMBER, DEMO_NAME
from ivr.config import REPO_ROOT
from simulators.acquirer.testcards import load_test_cards
from simulators.identity.registry import Registry, RegistryError
from simulators.identity.settings import REGISTRY_PATH

DOCUMENT = json.loads(REGISTRY_PATH.read_text(encoding="utf-8"))
OUT_OF_BOOK_CARD = "6221889999999994"  # test_cards.json's example of a card not in the book


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(REGISTRY_PATH)


def test_the_demo_identity_is_known_to_the_police(registry: Registry) -> None:
    assert registry.identity(DEMO_NAME, DEMO_ID_NUMBER) == "match"
    assert registry.identity("Someone Else", DEMO_ID_NUMBER) == "mismatch"


@pytest.mark.parametrize("card", load_test_cards(), ids=lambda c: c.name)
def test_every_test_card_is_bound_to_the_demo_phone_for_the_demo_holder(registry, card) -> None:
    assert registry.binding(card.pan, "13900000001", DEMO_NAME, DEMO_ID_NUMBER) == "bound"
    assert registry.binding(card.pan, "13700000002") == "not_bound"


def test_every_registered_card_is_a_test_card_or_the_documented_out_of_book_one() -> None:
    known = {c.pan for c in load_test_cards()} | {OUT_OF_BOOK_CARD}
    registered = {pan for b in DOCUMENT["bindings"] for pan in b["cards"]}
    assert registered <= known, sorted(registered - known)


def test_the_readme_documents_every_identity_and_mobile() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Identity services (simulated)"):]
    for identity in DOCUMENT["identities"]:
        assert f"`{identity['id_number']}`" in section
        assert ", ".join(identity["names"]) in section
    for binding in DOCUMENT["bindings"]:
        for mobile in binding["mobiles"]:
            # Runs of numbers are written as ranges: the first and last of each are named.
            assert mobile in section or mobile[:-1] in section, mobile


def _write(tmp_path, identities, bindings):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"identities": identities, "bindings": bindings}))
    return path


@pytest.mark.parametrize("identities, bindings, secret", [
    ([{"label": "a", "names": ["A"], "id_number": "110105194912310021"}], [],   # check character
     "110105194912310021"),
    ([{"label": "a", "names": ["A"], "id_number": "11010519491231002X"}],
     [{"label": "b", "holder": "110101199003074477", "cards": [], "mobiles": []}],  # no such holder
     "110101199003074477"),
    ([{"label": "a", "names": ["A"], "id_number": "11010519491231002X"}],
     [{"label": "b", "holder": "11010519491231002X", "cards": ["6221881000000012"], "mobiles": []}],
     "6221881000000012"),                                                    # Luhn
])
def test_a_malformed_registry_is_refused_without_repeating_a_number(tmp_path, identities,
                                                                    bindings, secret) -> None:
    with pytest.raises(RegistryError, match="malformed") as info:
        Registry.load(_write(tmp_path, identities, bindings))
    assert secret not in str(info.value)


def test_repr_shows_no_number(registry: Registry) -> None:
    assert DEMO_ID_NUMBER not in repr(registry)
    assert "identities" in repr(registry)
