from rampup.cli.entry import main

main()
