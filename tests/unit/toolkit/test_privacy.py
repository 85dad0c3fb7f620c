"""Personal data is masked in log lines and failure reasons."""

from __future__ import annotations

import io
import json
import uuid

from lambdamesh_toolkit.logging import get_logger
from lambdamesh_toolkit.privacy import mask_json_text, mask_personal, mask_text


def _logged(emit: str) -> dict[str, object]:
    stream = io.StringIO()
    logger = get_logger(f"privacy-{uuid.uuid4().hex[:8]}", stream=stream)
    if emit == "extra":
        logger.info("mail sent", extra={"email": "ada@example.com", "recipient": "Ada Lovelace"})
    elif emit == "message":
        logger.warning("SES refused ada@example.com")
    else:
        try:
            raise ValueError("cannot send to ada@example.com")
        except ValueError:
            logger.exception("mail failed")
    return json.loads(stream.getvalue().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_log_lines_personal_fields_are_masked() -> None:
    # GIVEN a logger  WHEN a line carries an address and a recipient's name as extra keys
    line = _logged("extra")
    # THEN both are masked, the rest of the line kept
    assert line["email"] == "a***@example.com"
    assert line["recipient"] == "A***"
    assert line["message"] == "mail sent"


def test_an_address_in_a_message_or_an_exception_is_masked() -> None:
    # GIVEN a logger  WHEN an address is in the message, or in an exception's text
    message, exception = _logged("message"), _logged("exception")
    # THEN the address is masked in both, the traceback included
    assert message["message"] == "SES refused a***@example.com"
    assert "ada@example.com" not in json.dumps(exception)
    assert "a***@example.com" in str(exception["exception"])


def test_text_without_personal_data_is_left_as_it_is() -> None:
    # GIVEN text and documents with no address and no personal field
    # WHEN masked  THEN nothing changes
    assert mask_text("order o-1 confirmed") == "order o-1 confirmed"
    assert mask_personal({"order_id": "o-1", "lines": [1, 2]}) == {
        "order_id": "o-1",
        "lines": [1, 2],
    }
    assert mask_json_text("[1, 2]") == "[1, 2]"


def test_personal_fields_are_masked_at_any_depth_and_in_lists() -> None:
    # GIVEN an envelope whose data names a user and lists recipients
    envelope = {"data": {"name": "Ada", "to": ["a@x.io", "b@y.io"], "user": {"email": "c@z.io"}}}
    # WHEN masked
    masked = mask_personal(envelope)
    # THEN every name and address is masked
    assert masked == {
        "data": {"name": "A***", "to": ["a***@x.io", "b***@y.io"], "user": {"email": "c***@z.io"}}
    }
