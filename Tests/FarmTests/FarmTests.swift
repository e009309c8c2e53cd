// Multi-process and farm tests (tree streaming: TreeStreamTests.swift).
