"""The one way to AWS: every boto3 client is built in :mod:`.clients`; DynamoDB's answers
that services act on (a failed condition, a cancelled transaction) are read in :mod:`.dynamodb`;
SQS's addresses in :mod:`.sqs`.
"""
