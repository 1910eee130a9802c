import AdjointCLI

AdjointCommand.main()
