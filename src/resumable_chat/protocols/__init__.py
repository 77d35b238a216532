"""Protocol dialects: what differs between the AI SDK and TanStack on the same chat core."""
