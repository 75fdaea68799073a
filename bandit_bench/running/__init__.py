"""Running a case: the openai-backed agent and the episode runner."""
