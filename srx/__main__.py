from srx.cli import main

main()
