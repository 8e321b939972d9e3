"""The MCP face: tools, resources and prompts over the memory core."""
