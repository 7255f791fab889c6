"""Operations tooling: local servers, the command-line interface, the demo runner."""
