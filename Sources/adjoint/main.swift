import AdjointCLI
