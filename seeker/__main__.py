from seeker.cli.commands import main

main()
