"""gRPC transport: messages in, use-case calls, messages or statuses out. No SQL, no rules."""
