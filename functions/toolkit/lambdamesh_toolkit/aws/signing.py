"""Requests to an IAM-authorised API Gateway route, signed with AWS Signature Version 4.

A route that requires IAM authorisation (``authorizationType: AWS_IAM``; in Chalice,
``authorizer=IAMAuthorizer()``) answers only requests signed by a principal whose policy allows
``execute-api:Invoke`` on it. :class:`SigV4Signer` is the signing half:
:class:`~lambdamesh_toolkit.http_client.ServiceHttpClient` hands it each attempt's method, URL,
headers and body once every other header is set, and sends what it returns: the same headers
plus ``Authorization`` (``AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/execute-api/
aws4_request, SignedHeaders=..., Signature=...``), ``X-Amz-Date`` and, with temporary
credentials, ``X-Amz-Security-Token``.

What is signed is what botocore's ``SigV4Auth`` signs: the method, the path, the query, the
body's SHA-256 and every header present, ``Host`` included, except those a hop on the way may
legitimately rewrite (``User-Agent``, ``traceparent``, ``tracestate``, ``X-Amzn-Trace-Id``, …:
botocore's list). The correlation id and the deadline are signed; a retry is signed afresh, with
its own date and its own span's ``traceparent``. Nothing is cached but the credentials object,
which botocore refreshes itself: in Lambda, the function role's temporary credentials from the
environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``); elsewhere
botocore's default chain (profile, container or instance role).

botocore is imported on first use, as boto3 is by :mod:`.clients`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from botocore.credentials import Credentials
    from botocore.session import Session

EXECUTE_API: Final = "execute-api"
"""The service name API Gateway's invoke endpoint signs and authorises under."""

SIGV4_ALGORITHM: Final = "AWS4-HMAC-SHA256"
"""The first word of a Signature Version 4 ``Authorization`` header."""


class RequestSigner(Protocol):
    """Signs one HTTP request: what :class:`~lambdamesh_toolkit.http_client.ServiceHttpClient`
    calls for every attempt, after every other header is set."""

    def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        """The headers to send: ``headers`` and the signature's own.

        Parameters
        ----------
        method : str
            The HTTP method, upper case.
        url : str
            The full URL, query included.
        headers : Mapping[str, str]
            Every header the request will carry; none may change after signing.
        body : bytes | None
            The body (``None``: none).
        """
        ...


class SigV4Signer:
    """Signs requests with Signature Version 4 (botocore's ``SigV4Auth``).

    Parameters
    ----------
    region : str | None
        The region of the API called; default the function's own (``AWS_REGION``, else
        ``AWS_DEFAULT_REGION``, else the AWS config's), read when the signer is made.
    credentials : Credentials | None
        The credentials to sign with; default botocore's credential chain, resolved on the
        first signature and kept (botocore refreshes temporary credentials before they expire).
    service : str
        The signing service name: :data:`EXECUTE_API` for API Gateway.

    Raises
    ------
    ValueError
        When no region is given and none is configured.

    Examples
    --------
    >>> from botocore.credentials import Credentials
    >>> signer = SigV4Signer(region="eu-west-1", credentials=Credentials("AKIDEXAMPLE", "s"))
    >>> headers = signer.sign("GET", "https://api.example/api/users/u-1", {}, None)
    >>> key, date, *scope = headers["Authorization"].split(",")[0].split("/")
    >>> key, scope
    ('AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE', ['eu-west-1', 'execute-api', 'aws4_request'])
    >>> date == headers["X-Amz-Date"][:8]
    True
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        credentials: Credentials | None = None,
        service: str = EXECUTE_API,
    ) -> None:
        if region is None:
            from lambdamesh_toolkit.aws.clients import default_region

            region = default_region()
        if not region:
            raise ValueError("SigV4Signer: no region given and none configured (AWS_REGION)")
        self.region = region
        self.service = service
        self._credentials = credentials
        self._session: Session | None = None

    def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        """The headers to send: ``headers``, ``Authorization``, ``X-Amz-Date`` and, with
        temporary credentials, ``X-Amz-Security-Token`` (see :class:`RequestSigner`).

        Raises
        ------
        botocore.exceptions.NoCredentialsError
            When the credential chain finds no credentials.
        """
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, headers=dict(headers), data=body or b"")
        # Frozen: key, secret and token read together, so a refresh cannot split them.
        SigV4Auth(self.credentials().get_frozen_credentials(), self.service, self.region).add_auth(
            request
        )
        return dict(request.headers.items())

    def credentials(self) -> Credentials:
        """The credentials signatures are made with (resolved once, refreshed by botocore).

        Raises
        ------
        botocore.exceptions.NoCredentialsError
            When the credential chain finds none.
        """
        if self._credentials is None:
            from botocore.exceptions import NoCredentialsError
            from botocore.session import Session

            # A session of its own: its credential chain is the default one, and it is kept
            # so that the credentials are resolved once per container.
            self._session = self._session or Session()
            found = self._session.get_credentials()
            if found is None:
                raise NoCredentialsError()
            self._credentials = found
        return self._credentials


def is_sigv4_authorization(value: str | None) -> bool:
    """Whether an ``Authorization`` header's value is a Signature Version 4 signature.

    Only its form: whether it is valid is for API Gateway to check (the emulator checks nothing).

    >>> is_sigv4_authorization("AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/...")
    True
    >>> is_sigv4_authorization("Bearer abc"), is_sigv4_authorization(None)
    (False, False)
    """
    return value is not None and value.startswith(f"{SIGV4_ALGORITHM} ")
