"""LLM class descriptions: the prompt recipe, an OpenAI-compatible client with retries, a resumable cache and the driver."""
