"""The AWS backend: Bedrock (chat, Titan), Kendra, knowledge bases and DynamoDB; boto3 is imported lazily."""
