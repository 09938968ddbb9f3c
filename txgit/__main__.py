from txgit.cli import main

main()
