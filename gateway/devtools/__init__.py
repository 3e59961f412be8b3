"""Development tools: a fake reasoning backend that speaks the OpenAI and Anthropic wire formats."""
