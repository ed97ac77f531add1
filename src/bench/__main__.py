from src.bench.run import main

main()
