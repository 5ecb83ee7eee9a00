from rampup.cli.main import main

main()
