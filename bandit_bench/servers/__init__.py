"""Local OpenAI-compatible servers: the simulator and the llama.cpp launcher."""
