from seeker.cli import main

main()
