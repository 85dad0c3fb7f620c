"""Contracts: strict validation naming the field, JSON Schema export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from moto.ses.utils import is_valid_address as ses_address_problem
from pydantic import BaseModel, ValidationError

from lambdamesh_toolkit.contracts.catalog import Product
from lambdamesh_toolkit.contracts.orders import CreateOrder, Order
from lambdamesh_toolkit.contracts.reviews import CreateReview
from lambdamesh_toolkit.contracts.rpc import RpcResponse
from lambdamesh_toolkit.contracts.schemas import all_contracts, export_json_schemas, main
from lambdamesh_toolkit.contracts.users import CreateUser
from lambdamesh_toolkit.errors import invalid_request_from


def field_of(model: type[BaseModel], data: object) -> str | None:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(data)
    return invalid_request_from(raised.value).field


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (CreateUser, {"email": "not-an-email", "name": "Ada"}, "email"),
        (CreateUser, {"email": "a@example.com", "name": "   "}, "name"),
        (CreateReview, {"author": "Ada", "rating": 6, "text": "great"}, "rating"),
        (CreateReview, {"author": "Ada", "rating": 0, "text": "great"}, "rating"),
        (CreateOrder, {"user_id": "u-1", "items": []}, "items"),
        (
            CreateOrder,
            {"user_id": "u-1", "items": [{"product_id": "p", "quantity": 0}]},
            "items[0].quantity",
        ),
        (CreateOrder, {"user_id": "u 1", "items": [{"product_id": "p", "quantity": 1}]}, "user_id"),
        (
            Product,
            {"id": "p", "name": "n", "price_cents": 1, "currency": "eur", "stock": 0},
            "currency",
        ),
        (
            Product,
            {"id": "p", "name": "n", "price_cents": -1, "currency": "EUR", "stock": 0},
            "price_cents",
        ),
    ],
)
def test_validation_errors_name_the_field(model: type[BaseModel], data: object, field: str) -> None:
    # GIVEN / WHEN invalid data is validated
    # THEN the error names the offending field
    assert field_of(model, data) == field


def test_orders_allow_at_most_fifty_items() -> None:
    # GIVEN an order of 51 items
    items = [{"product_id": f"p-{n}", "quantity": 1} for n in range(51)]

    # WHEN it is validated
    # THEN it is refused on items
    assert field_of(CreateOrder, {"user_id": "u-1", "items": items}) == "items"


def test_unknown_fields_are_refused() -> None:
    # GIVEN / WHEN a user with an extra field is validated
    # THEN the extra field is named
    assert field_of(CreateUser, {"email": "a@example.com", "name": "Ada", "admin": True}) == "admin"


def test_rpc_response_carries_result_or_error_never_both() -> None:
    # GIVEN / WHEN inconsistent responses are built
    # THEN they are refused
    with pytest.raises(ValidationError):
        RpcResponse(ok=True)
    with pytest.raises(ValidationError):
        RpcResponse.model_validate({"ok": False, "result": {}})


def test_money_is_integer_cents() -> None:
    # GIVEN / WHEN a price with a fractional cent is validated
    # THEN it is refused
    data = {"id": "p", "name": "n", "price_cents": 12.5, "currency": "EUR", "stock": 0}
    assert field_of(Product, data) == "price_cents"


def test_export_writes_one_named_versioned_schema_per_contract(tmp_path: Path) -> None:
    # GIVEN every contract of the system
    contracts = all_contracts()

    # WHEN the schemas are exported
    written = export_json_schemas(tmp_path / "schemas")

    # THEN there is one file per contract, carrying its name and version, valid JSON Schema
    assert len(written) == len(contracts)
    assert {Order.contract_name, CreateOrder.contract_name, "rpc.RpcRequest"} <= {
        contract.contract_name for contract in contracts
    }
    for contract, path in zip(contracts, written, strict=True):
        schema = json.loads(path.read_text())
        assert path.name == f"{contract.contract_name}.v{contract.contract_version}.schema.json"
        assert schema["contract_name"] == contract.contract_name
        assert schema["contract_version"] == contract.contract_version
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False


def test_command_line_writes_the_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN / WHEN the module is run with an output directory
    code = main([str(tmp_path)])

    # THEN it exits 0 and lists the files written
    assert code == 0
    assert len(capsys.readouterr().out.splitlines()) == len(list(tmp_path.glob("*.schema.json")))
    assert main([]) == 2


@pytest.mark.parametrize("quantity", ["true", '"5"', "5.5", "null", "[5]"])
def test_an_integer_field_refuses_what_json_schema_calls_no_integer(quantity: str) -> None:
    # GIVEN an order whose quantity is a boolean, a string, a float or null
    body = f'{{"user_id": "u-1", "items": [{{"product_id": "p-1", "quantity": {quantity}}}]}}'
    # WHEN it is parsed
    with pytest.raises(ValidationError) as refused:
        CreateOrder.model_validate_json(body)
    # THEN the quantity is named
    assert refused.value.errors()[0]["loc"] == ("items", 0, "quantity")


@pytest.mark.parametrize(
    "name",
    [r"Ann\u0000", r"Ann\u200bLee", r"Ann\u202eLee", r"Ann\nLee", r"Ann\u2028Lee", r"A\ufeff"],
)
def test_a_name_refuses_control_and_invisible_characters(name: str) -> None:
    # GIVEN a sign-up whose name holds a control or invisible character (JSON escapes)
    body = f'{{"email": "ann@example.org", "name": "{name}"}}'
    # WHEN it is parsed
    with pytest.raises(ValidationError) as refused:
        CreateUser.model_validate_json(body)
    # THEN the name is named
    assert refused.value.errors()[0]["loc"] == ("name",)


def test_text_is_checked_after_normalising() -> None:
    # GIVEN an email whose case folding makes it longer (ß → ss) past the 254 limit,
    # and one that folds to a valid address, and a decomposed accent in a name
    too_long = "ß" * 127 + "@example.org"
    assert len(too_long) <= 254 < len(too_long.casefold())
    # WHEN they are parsed
    with pytest.raises(ValidationError) as refused:
        CreateUser(email=too_long, name="Ann")
    user = CreateUser(email=" Weiß@Example.ORG ", name=" Rene\u0301 ")
    # THEN the long one is refused naming the email; the others are stored normalised
    assert refused.value.errors()[0]["loc"] == ("email",)
    assert (user.email, user.name) == ("weiss@example.org", "René")


def test_a_review_keeps_its_line_breaks_and_refuses_other_controls() -> None:
    # GIVEN review texts with a line break, and with a bell character
    kept = CreateReview(author="Ann", rating=5, text="Good.\nWould buy again.")
    # WHEN / THEN the first is kept as written, the second refused naming the text
    assert kept.text == "Good.\nWould buy again."
    with pytest.raises(ValidationError) as refused:
        CreateReview(author="Ann", rating=5, text="Good.\u0007")
    assert refused.value.errors()[0]["loc"] == ("text",)


@pytest.mark.parametrize(
    "email",
    ["ann@example.org", "a.b+tag@sub.example.co", "o'neil@example.ie", "x_y-z@a-b.example"],
)
def test_an_accepted_email_is_one_the_mail_service_takes(email: str) -> None:
    # GIVEN an address the sign-up contract accepts
    accepted = CreateUser(email=email, name="Ann").email
    # WHEN the mail service (moto's SES, as LocalStack runs it) checks it
    # THEN it takes it
    assert ses_address_problem(accepted) is None


@pytest.mark.parametrize(
    "email",
    [
        '"ann lee"@example.org',
        "ann(comment)@example.org",
        "ann@localhost",
        "ann@exa_mple.org",
        "ann@-example.org",
        "anné@example.org",
        "ann@@example.org",
        "<ann@example.org>",
    ],
)
def test_an_address_the_mail_service_may_refuse_is_refused_at_sign_up(email: str) -> None:
    # GIVEN an address with quotes, comments, no dot, bad labels, or beyond 7-bit ASCII
    # WHEN it signs up THEN it is refused naming the email, before any user exists
    with pytest.raises(ValidationError) as refused:
        CreateUser(email=email, name="Ann")
    assert refused.value.errors()[0]["loc"] == ("email",)


def test_an_integer_field_takes_a_number_without_a_fraction_as_json_schema_does() -> None:
    # GIVEN an order whose quantity is written 2.0
    body = '{"user_id": "u-1", "items": [{"product_id": "p-1", "quantity": 2.0}]}'
    # WHEN it is parsed THEN the quantity is the integer 2
    assert CreateOrder.model_validate_json(body).items[0].quantity == 2
