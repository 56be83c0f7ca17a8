from simstudy.app import main

main()
