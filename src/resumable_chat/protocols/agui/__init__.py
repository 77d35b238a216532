"""AG-UI runs as TanStack's ``AGUIConnection`` speaks them: the run wire form and durable runs
(one run id per thread, joined and resumed by id)."""
