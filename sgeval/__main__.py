from sgeval.cli import main

main()
