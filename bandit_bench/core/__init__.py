"""The library core: specs, instances, prompts, parsing, agents, episodes, metrics.

Imports nothing from the layers above, nor pytest or openai."""
