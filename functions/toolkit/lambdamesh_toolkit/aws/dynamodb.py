"""What DynamoDB's refusals mean, read once for every service.

A conditional write that does not hold fails with ``ConditionalCheckFailedException``; a
transaction fails whole with ``TransactionCanceledException`` and one reason per item, in the
order of the request's items (``None`` where that item was fine), the failed item's old image
beside the reason when the request asked for it.

>>> from botocore.exceptions import ClientError
>>> refused = ClientError(
...     {"Error": {"Code": "TransactionCanceledException"},
...      "CancellationReasons": [{"Code": "None"}, {"Code": "ConditionalCheckFailed"}]},
...     "TransactWriteItems")
>>> condition_failed(refused), failed_items(refused)
(True, [1])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Unpack, cast

from lambdamesh_toolkit.aws.errors import error_code
from lambdamesh_toolkit.paging import decode_token, encode_token

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        PutItemInputTypeDef,
        QueryInputTypeDef,
    )

CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELLED = "TransactionCanceledException"
#: The code of a transaction item whose condition did not hold.
ITEM_CONDITION_FAILED = "ConditionalCheckFailed"


@dataclass(frozen=True, slots=True)
class CancellationReason:
    """Why one item of a cancelled transaction was refused.

    Attributes
    ----------
    code : str
        ``ConditionalCheckFailed``, ``TransactionConflict``, ``None`` (the item was fine), ...
    item : Mapping[str, Any] | None
        The item's old image, when the request asked for it
        (``ReturnValuesOnConditionCheckFailure: ALL_OLD``) and there was one.
    """

    code: str
    item: Mapping[str, Any] | None = None

    @property
    def condition_failed(self) -> bool:
        """Whether this item's condition did not hold."""
        return self.code == ITEM_CONDITION_FAILED


def cancellation_reasons(error: ClientError) -> list[CancellationReason] | None:
    """One reason per item of a cancelled transaction, in request order; ``None`` otherwise."""
    if error_code(error) != TRANSACTION_CANCELLED:
        return None
    raw = cast(list[Mapping[str, Any]], error.response.get("CancellationReasons") or [])
    return [
        CancellationReason(code=str(reason.get("Code") or "None"), item=reason.get("Item"))
        for reason in raw
    ]


def failed_items(error: ClientError) -> list[int]:
    """Indexes of the transaction items whose condition did not hold (empty if none)."""
    reasons = cancellation_reasons(error) or []
    return [index for index, reason in enumerate(reasons) if reason.condition_failed]


def condition_failed(error: ClientError) -> bool:
    """Whether a write, or a transaction, was refused because a condition did not hold.

    A transaction cancelled for another reason only (a conflict, throttling) is not.
    """
    if error_code(error) == CONDITION_FAILED:
        return True
    return bool(failed_items(error))


def conditional_put(client: DynamoDBClient, **request: Unpack[PutItemInputTypeDef]) -> bool:
    """``PutItem`` with a condition: whether it was written (``False``: the condition failed).

    Any other error is raised as it came.
    """
    from botocore.exceptions import ClientError

    try:
        client.put_item(**request)
    except ClientError as error:
        if condition_failed(error):
            return False
        raise
    return True


def put_if_absent(
    client: DynamoDBClient, table: str, item: Mapping[str, AttributeValueTypeDef], key: str
) -> bool:
    """Put ``item`` unless an item with its key ``key`` exists; whether it was written."""
    return conditional_put(
        client,
        TableName=table,
        Item=item,
        ConditionExpression="attribute_not_exists(#key)",
        ExpressionAttributeNames={"#key": key},
    )


class UnprocessedItemsError(RuntimeError):
    """DynamoDB kept leaving part of a batch request unprocessed (throttling)."""


def until_processed[R: Mapping[str, Any]](
    send: Callable[[R], Mapping[str, Any]],
    request: R,
    *,
    leftover: str,
    what: str = "items",
    attempts: int = 4,
    first_pause_s: float = 0.05,
) -> Iterator[Mapping[str, Any]]:
    """Send a batch request, then what DynamoDB left unprocessed, with backoff; yield answers.

    Written here: botocore retries throttled calls, not the part of a batch call
    (``BatchGetItem``, ``BatchWriteItem``) that DynamoDB accepted but did not process.

    Parameters
    ----------
    send : Callable
        Sends one request (``lambda part: client.batch_get_item(RequestItems=part)``).
    request : R
        The ``RequestItems``.
    leftover : str
        The answer's field holding what is left: ``UnprocessedKeys`` or ``UnprocessedItems``.
    what : str
        What the request reads or writes, for the error's message.
    attempts : int
        Requests sent at most.
    first_pause_s : float
        The pause before the second request, doubled before each further one.

    Raises
    ------
    UnprocessedItemsError
        When something is still left after ``attempts`` requests.
    """
    for attempt in range(attempts):
        if attempt:
            time.sleep(first_pause_s * 2 ** (attempt - 1))
        answer = send(request)
        yield answer
        # The unprocessed part has the request's shape (typed as an output shape).
        request = cast(R, answer.get(leftover))
        if not request:
            return
    raise UnprocessedItemsError(f"DynamoDB left {what} unprocessed after {attempts} requests")


def query_page(
    client: DynamoDBClient,
    request: QueryInputTypeDef,
    *,
    partition: Mapping[str, AttributeValueTypeDef],
    position: tuple[str, ...],
    after: str | None,
) -> tuple[list[dict[str, AttributeValueTypeDef]], str | None]:
    """One page of a query and the token of the next (:mod:`lambdamesh_toolkit.paging`).

    Parameters
    ----------
    client : DynamoDBClient
        The client.
    request : QueryInputTypeDef
        The query of one partition, its ``Limit`` the page's size.
    partition : Mapping[str, AttributeValueTypeDef]
        The queried partition's key (``{"user_id": {"S": ...}}``): with ``position`` it makes
        the key a page continues after.
    position : tuple[str, ...]
        The other attributes of that key (all text): the table's key and the index's sort key.
    after : str | None
        The token of the page to continue after; ``None`` for the first page.

    Returns
    -------
    tuple
        The page's items and the next page's token (``None`` when DynamoDB says there is none).

    Raises
    ------
    InvalidRequest
        Naming ``next_token`` when ``after`` is not a token this service handed out.
    """
    if after is not None:
        continued = decode_token(after, position)
        request = {
            **request,
            "ExclusiveStartKey": {
                **partition,
                **{name: {"S": value} for name, value in continued.items()},
            },
        }
    answer = client.query(**request)
    last = answer.get("LastEvaluatedKey")
    token = (
        None if last is None else encode_token({name: str(last[name]["S"]) for name in position})
    )
    return list(answer.get("Items", [])), token
