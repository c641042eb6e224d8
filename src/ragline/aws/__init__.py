"""ragline on AWS: Bedrock and Kendra providers, the DynamoDB registry, and the Lambda entry points.

Everything here imports boto3 lazily, so the local paths never pay for it.
"""
