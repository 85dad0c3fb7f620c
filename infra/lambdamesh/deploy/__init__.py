"""``lambdamesh deploy``: every Chalice app in ``functions/`` to one CloudFormation stack each.

The path is the one real AWS takes (``chalice package`` → S3 → SAM template →
CloudFormation), on the embedded LocalStack, another LocalStack, or AWS:

1. :mod:`~lambdamesh.deploy.packaging` runs ``chalice package --merge-template``, cached by a
   hash of the app's sources (:mod:`~lambdamesh.deploy.fingerprint`);
2. :mod:`~lambdamesh.deploy.artifacts` uploads the zip under a content-addressed key;
3. :mod:`~lambdamesh.deploy.template` rewrites ``CodeUri`` and adds what Chalice cannot
   express (partial batch responses on SQS event sources, their queues taken from parameters
   that the messaging stack's Outputs fill, the poller's permissions scoped to those queues);
4. :mod:`~lambdamesh.deploy.wiring` fills each stack's ``Parameters`` from earlier stacks'
   ``Outputs`` (the topology stacks, shared and messaging, go first and offer theirs by name);
5. :mod:`~lambdamesh.deploy.stacks` creates or updates the stack, skipping it when its
   ``lambdamesh:source-hash`` tag says nothing changed;
6. :mod:`~lambdamesh.deploy.records` keeps API URLs and function names for ``lambdamesh status``.

:func:`~lambdamesh.deploy.runner.deploy_all` ties them together.
"""

from lambdamesh.deploy.runner import DeployError, DeployOptions, DeployReport, deploy_all
from lambdamesh.deploy.target import Target

__all__ = ["DeployError", "DeployOptions", "DeployReport", "Target", "deploy_all"]
