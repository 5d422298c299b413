"""Development tools: throwaway servers for tests, benchmarks and examples.

Nothing in the bus's runtime imports this package.
"""
