// Agent module
