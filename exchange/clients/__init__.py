"""What department systems call: publisher, reader, department session."""
