"""lambdamesh: the project's command line, deploy tooling and embedded LocalStack launcher."""
