from sgmodels.cli import main

main()
