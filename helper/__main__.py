from helper.cli import main

main()
