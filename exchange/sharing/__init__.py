"""The sharing workflow (共享): command limits, grant book, policy, working days."""
